"""docs/: every relative link and file path mentioned exists, every `verbund` command parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.cli.main import build_parser
from tests.deploy.metric_names import ROOT
from tests.deploy.test_compose import UPCOMING_COMMANDS, check_command

DOCS = sorted((ROOT / "docs").glob("*.md"))
REQUIRED = {"architecture.md", "partner-integration.md", "protocols.md", "operations.md",
            "deployment.md"}  # fmt: skip
# Paths in backticks that name repository files (not topics, settings or container paths).
PATH = re.compile(r"`((?:deploy|docs|examples|protocols|schemas|scripts|services|tests)/[^`*\s]+)`")
LINK = re.compile(r"\]\(([^)#:]+)(?:#[^)]*)?\)")
COMMAND = re.compile(r"^(?:\$ )?verbund ([^#\n]+)", re.MULTILINE)


def test_the_docs_exist() -> None:
    assert {p.name for p in DOCS} >= REQUIRED


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_and_paths_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = [link for link in LINK.findall(text) if not (doc.parent / link).exists()]
    missing += [path for path in PATH.findall(text) if not (ROOT / path).exists()]
    assert not missing, f"{doc.name}: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_commands_in_code_blocks_parse(doc: Path) -> None:
    parser = build_parser()
    blocks = re.findall(r"```sh\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL)
    problems = {}
    commands = {choice for a in parser._actions for choice in getattr(a, "choices", None) or {}}
    found = COMMAND.findall("\n".join(blocks))
    for line in found:
        argv = [a for a in re.sub(r"\[[^\]]*\]", " ", line).split() if a != "..."]
        if argv[0] in UPCOMING_COMMANDS and argv[0] not in commands:
            continue  # documented as in progress
        problem = check_command(parser, argv)
        if problem:
            problems[line] = problem
    if doc.name in {"partner-integration.md", "protocols.md", "operations.md"}:
        assert found, f"{doc.name}: no verbund commands found (pattern broken?)"
    assert not problems, f"{doc.name}: {problems}"


def test_partner_onboarding_shows_the_commands_of_the_acl_table() -> None:
    """docs/partner-onboarding.md shows what `verbund partner onboard klinik-sued` prints
    (services/common/kafka_acls.py), line for line."""
    from services.common.kafka_acls import onboarding_commands

    text = (ROOT / "docs" / "partner-onboarding.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    shown = [line for block in blocks for line in block.splitlines() if "/opt/kafka/bin/" in line]
    assert shown == onboarding_commands("klinik-sued"), "regenerate the block from the table"
