"""docker-compose.yml cannot run here (no Docker engine): check its structure and that it
agrees with the code: commands, settings, topics, metrics ports and config files."""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import services
from services.audit.records import AUDITED_TOPICS
from services.cli.main import build_parser
from services.common import topics as topics_module
from services.common.kafka_acls import (
    BRIDGE_GROUP,
    BRIDGE_USER,
    bridge_acls,
    partner_acls,
    partner_topic_retention,
    partner_user,
)
from services.common.settings import ServiceSettings
from services.common.topics import (
    ALERTS,
    ALL_TOPICS,
    AUDIT,
    COMMANDS,
    DEAD_LETTERS,
    DECISIONS,
    LEDGER_CHANGELOG,
    PARTNER_EVENTS,
    PARTNER_ORDERS,
    PROTOCOLS,
    QUOTES,
    RUNS,
    TopicSpec,
    owner_of_partner_topic,
    partner_topics,
)
from tests.deploy.metric_names import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVIDERS = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "verbund.yml"
DOCKERFILE = "deploy/Dockerfile"

# `verbund` commands being written now (issue 4). Accepted, exactly as written here, while
# the CLI does not have them; once it does, the real parser decides. Anything else fails.
UPCOMING_COMMANDS: dict[str, list[str]] = {
    "coordinator": ["coordinator"],
    "audit": ["audit"],
    "console": ["console"],
}
# Settings of those services that compose already sets (VERBUND_<FIELD>).
UPCOMING_SETTINGS = {
    "VERBUND_CONSOLE_HOST",
    "VERBUND_CONSOLE_PORT",
    "VERBUND_COORDINATOR_HOST",
    "VERBUND_COORDINATOR_PORT",
    "VERBUND_COORDINATOR_TOKENS_FILE",
}

VERBUND_SERVICES = {"ledger", "gateway", "coordinator", "audit", "console", "bridge"}
# Kafka access of each Verbund service, from its code: topics it reads, topics it writes,
# consumer groups it commits, prefixes of internal topics it reads. The one place to change
# when a service starts using a topic: kafka-acl-setup in docker-compose.yml must grant exactly
# this (plus Describe on the verbund.* topics, metadata only: ensure_topics lists them).
# test_kafka_access_table_covers_the_topics_of_the_code checks it against the imports.
KAFKA_ACCESS: dict[str, dict[str, tuple[str, ...]]] = {
    "ledger": {
        "read": (PARTNER_EVENTS.name, LEDGER_CHANGELOG.name),
        "write": (LEDGER_CHANGELOG.name, ALERTS.name, DEAD_LETTERS.name),
        "groups": ("verbund-ledger",),
        "read_prefixed": ("verbund-ledger-",),  # Faust's internal leader topic
    },
    "gateway": {
        "read": (),
        "write": (PARTNER_EVENTS.name, COMMANDS.name),  # COMMANDS: AccessRefused
    },
    "coordinator": {
        # the changelog replay appends a recovery marker (services/ledger/recovery.py)
        # supplier quotes: read back at start (a recovery marker first), written when set
        "read": (LEDGER_CHANGELOG.name, ALERTS.name, PARTNER_EVENTS.name, QUOTES.name),
        "write": (
            LEDGER_CHANGELOG.name,
            COMMANDS.name,
            RUNS.name,
            DECISIONS.name,
            PARTNER_ORDERS.name,
            QUOTES.name,
            DEAD_LETTERS.name,  # partner answers that cannot take effect
        ),
    },
    "audit": {
        "read": (
            COMMANDS.name,
            RUNS.name,
            DECISIONS.name,
            PARTNER_ORDERS.name,
            PROTOCOLS.name,
            PARTNER_EVENTS.name,
            QUOTES.name,
        ),
        "write": (AUDIT.name,),
        "groups": ("verbund-audit",),
    },
    "console": {
        "read": (
            LEDGER_CHANGELOG.name,
            ALERTS.name,
            RUNS.name,
            DECISIONS.name,
            PARTNER_ORDERS.name,
        ),
        "write": (COMMANDS.name,),  # AccessRefused
    },
    # plus, per partner, services/common/kafka_acls.py bridge_acls (the partner's own topics)
    "bridge": {
        "read": (PARTNER_ORDERS.name,),
        "write": (PARTNER_EVENTS.name, DEAD_LETTERS.name),
        "groups": (BRIDGE_GROUP,),
    },
}
KAFKA_ADMIN = "User:admin"
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
EXAMPLE_ID = "example"
EXAMPLE_PARTNER = partner_user(EXAMPLE_ID)  # partner-example
# What the example partner may do: exactly what onboarding grants (the one ACL table).
EXAMPLE_PARTNER_ACLS = {acl.as_tuple() for acl in partner_acls(EXAMPLE_ID)}
DAY_MS = 24 * 3600 * 1000
# Retention policy (docs/deployment.md): by topic name; "audit" topics keep everything.
RETENTION_MS = {
    "verbund.partner.events": 7 * DAY_MS,
    "verbund.alerts": 30 * DAY_MS,
    "verbund.deadletter": 30 * DAY_MS,
    "verbund.ledger.changelog": -1,
    "verbund.commands": 90 * DAY_MS,
    "verbund.runs": 90 * DAY_MS,
    "verbund.decisions": 90 * DAY_MS,
    "verbund.partner.orders": 90 * DAY_MS,
    "verbund.protocols": -1,
    "verbund.purchasing.quotes": -1,  # the coordinator rebuilds its quotes from it
    "verbund.audit": -1,
}
# a partner's own topics keep what their shared counterparts keep
RETENTION_MS.update(partner_topic_retention(EXAMPLE_ID))
USER_LINE = re.compile(r'^\s*user\s+(\S+)\s+"\$\$(\w+)"\s*$', re.MULTILINE)
ACL_LINE = re.compile(
    r"^\s*acl\s+(\S+)\s+(\w+)\s+(topic|group)\s+(\S+)(?:\s+(prefixed))?\s*(?:#.*)?$",
    re.MULTILINE,
)
TOPIC_LINE = re.compile(r"^\s*topic\s+(\S+)\s+(\d+)\s+(-?\d+)\s*$", re.MULTILINE)
REQUIRED_ENV = (
    "VERBUND_ALLIANCE_FILE",
    "VERBUND_GATEWAY_TOKENS_FILE",
    "VERBUND_COORDINATOR_TOKENS_FILE",
    "GRAFANA_ADMIN_PASSWORD",
    "VERBUND_KAFKA_ADMIN_PASSWORD",
    *(f"VERBUND_KAFKA_{name.upper()}_PASSWORD" for name in sorted(VERBUND_SERVICES)),
    "VERBUND_KAFKA_PARTNER_EXAMPLE_PASSWORD",
)
# Services that serve /metrics on their own HTTP port (setting naming that port).
HTTP_METRICS_PORT = {"gateway": "VERBUND_GATEWAY_PORT", "coordinator": "VERBUND_COORDINATOR_PORT"}
# Token files mounted as compose secrets: service -> (secret, setting naming the file).
TOKEN_SECRETS = {
    "gateway": ("gateway_tokens", "VERBUND_GATEWAY_TOKENS_FILE"),
    "coordinator": ("coordinator_tokens", "VERBUND_COORDINATOR_TOKENS_FILE"),
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services_(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _verbund(services_: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in services_.items()
        if isinstance(svc.get("build"), dict) and svc["build"].get("dockerfile") == DOCKERFILE
    }


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _parses(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """None if ``verbund argv`` is a valid command line, else argparse's complaint."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parser.parse_args(argv)
    except SystemExit:
        return err.getvalue().strip().splitlines()[-1] if err.getvalue() else "invalid"
    return None


def check_command(parser: argparse.ArgumentParser, argv: Any) -> str | None:
    """Why ``verbund argv`` is not a usable service command, or None."""
    if not argv or not all(isinstance(a, str) for a in argv):
        return f"command must be a list of strings, got {argv!r}"
    if argv[0] in _commands(parser):
        return _parses(parser, argv)
    if UPCOMING_COMMANDS.get(argv[0]) == argv:
        return None
    return f"`verbund {' '.join(argv)}`: no such command (and not a declared upcoming one)"


def _settings_names() -> set[str]:
    """VERBUND_* names of every settings class under services/ (imports each settings module)."""
    for module in pkgutil.walk_packages(services.__path__, "services."):
        if module.name.endswith(".settings"):
            importlib.import_module(module.name)
    classes: list[type[ServiceSettings]] = [ServiceSettings]
    names: set[str] = set()
    while classes:
        cls = classes.pop()
        names |= {f"VERBUND_{field.upper()}" for field in cls.model_fields}
        classes.extend(cls.__subclasses__())
    return names


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _topic_lines(services_: dict[str, dict[str, Any]]) -> list[tuple[str, int, int]]:
    script = "\n".join(services_["kafka-topics"]["command"])
    return [(name, int(parts), int(ms)) for name, parts, ms in TOPIC_LINE.findall(script)]


def _scrape_targets() -> dict[str, tuple[str, int]]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    targets: dict[str, tuple[str, int]] = {}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                targets[job["job_name"]] = (host, int(port))
    return targets


def _metrics_port(svc: dict[str, Any]) -> int | None:
    env = _env(svc)
    if "VERBUND_METRICS_PORT" in env:
        return int(env["VERBUND_METRICS_PORT"])
    setting = HTTP_METRICS_PORT.get(svc["command"][0])
    return int(env[setting]) if setting else None


# --- services and commands -------------------------------------------------------------------


def test_every_verbund_service_runs_from_the_one_image(services_) -> None:
    verbund = _verbund(services_)
    assert set(verbund) == VERBUND_SERVICES
    images = {svc.get("image") for svc in verbund.values()}
    builds = {yaml.safe_dump(svc["build"]) for svc in verbund.values()}
    assert len(images) == 1 and None not in images, images
    assert len(builds) == 1
    [build] = {(svc["build"]["context"], svc["build"]["dockerfile"]) for svc in verbund.values()}
    assert (ROOT / build[0] / build[1]).is_file()
    for name, svc in services_.items():
        if name not in verbund:
            assert "build" not in svc, f"{name}: only Verbund services are built here"
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", svc["image"]), f"{name}: pin an image tag"
            assert not svc["image"].endswith(":latest"), name


def test_the_image_runs_verbund_as_a_non_root_user() -> None:
    text = (ROOT / DOCKERFILE).read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["verbund"\]$', text, re.MULTILINE)
    [user] = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert not user.startswith(("root", "0")), user
    # everything the package is built from is copied (pyproject's packages + readme)
    copied = set(re.findall(r"^COPY (?:--\S+ )?(.+) \S+$", text, re.MULTILINE))
    sources = {part for line in copied for part in line.split()}
    assert {"pyproject.toml", "README.md", "schemas", "protocols", "services"} <= sources
    for source in sources:
        assert (ROOT / source).exists(), source
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert not sources & set(ignored), "the Dockerfile copies what .dockerignore excludes"


def test_every_service_command_is_a_verbund_command(services_) -> None:
    parser = build_parser()
    problems = {
        name: check_command(parser, svc.get("command")) for name, svc in _verbund(services_).items()
    }
    assert not {k: v for k, v in problems.items() if v}, problems


def test_command_check_accepts_real_and_declared_commands_only() -> None:
    parser = build_parser()
    assert check_command(parser, ["ledger"]) is None
    assert check_command(parser, ["gateway"]) is None
    assert check_command(parser, ["ledgr"]) is not None
    assert check_command(parser, ["ledger", "--no-such-flag"]) is not None
    assert check_command(parser, ["watch"]) is not None  # needs alerts|deadletters
    assert check_command(parser, ["auditor"]) is not None
    for argv in UPCOMING_COMMANDS.values():
        if argv[0] not in _commands(parser):
            assert check_command(parser, argv) is None
            assert check_command(parser, [*argv, "extra"]) is not None


def test_verbund_settings_in_compose_exist(services_) -> None:
    known = _settings_names() | UPCOMING_SETTINGS
    assert "VERBUND_GATEWAY_TOKENS_FILE" in known and "VERBUND_GROUP_ID" in known
    unknown = {
        (name, var)
        for name, svc in _verbund(services_).items()
        for var in _env(svc)
        if var.startswith("VERBUND_") and var not in known
    }
    assert not unknown, f"settings no service reads: {sorted(unknown)}"


# --- topics ----------------------------------------------------------------------------------


def test_topic_creation_matches_the_topics_of_the_code(services_) -> None:
    created = {name: partitions for name, partitions, _ in _topic_lines(services_)}
    expected = {spec.name: spec.partitions for spec in ALL_TOPICS}
    expected |= {spec.name: spec.partitions for spec in partner_topics(EXAMPLE_ID)}
    missing = {
        name: f"topic {name} {parts} <retention.ms>"
        for name, parts in expected.items()
        if name not in created
    }
    assert not missing, f"add to the kafka-topics command in docker-compose.yml: {missing}"
    assert created == expected
    assert len(_topic_lines(services_)) == len(created), "a topic is created twice"


def test_every_topic_has_its_retention(services_) -> None:
    for name, _, retention in _topic_lines(services_):
        if "audit" in name:
            assert retention == -1, f"{name}: the audit trail is kept forever"
        else:
            assert name in RETENTION_MS, f"{name}: decide its retention and add it to this test"
            assert retention == RETENTION_MS[name], name


def test_topic_creation_waits_for_a_healthy_broker_and_runs_once(services_) -> None:
    topics = services_["kafka-topics"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert topics["restart"] == "no"
    script = "\n".join(topics["command"])
    assert "--if-not-exists" in script and "--replication-factor 1" in script
    assert "retention.ms=" in script


def test_kafka_runs_in_kraft_mode_with_a_healthcheck(services_) -> None:
    kafka = services_["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _env(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "ZOOKEEPER" not in " ".join(env)
    assert kafka["healthcheck"]["test"]
    bootstrap = {_env(svc)["VERBUND_KAFKA_BOOTSTRAP"] for svc in _verbund(services_).values()}
    assert bootstrap == {"kafka:9092"}
    assert "CLIENT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


# --- Kafka authentication and ACLs -----------------------------------------------------------


def _acl_script(services_: dict[str, dict[str, Any]]) -> str:
    return "\n".join(services_["kafka-acl-setup"]["command"])


def _acls(services_: dict[str, dict[str, Any]]) -> dict[str, set[tuple[str, str, str, str]]]:
    """user -> {(operation, resource type, name, pattern type)} granted by kafka-acl-setup."""
    acls: dict[str, set[tuple[str, str, str, str]]] = {}
    for user, operation, kind, name, prefixed in ACL_LINE.findall(_acl_script(services_)):
        acls.setdefault(user, set()).add((operation, kind, name, prefixed or "literal"))
    return acls


def _expected_acls(service: str) -> set[tuple[str, str, str, str]]:
    access = KAFKA_ACCESS[service]
    per_partner = (
        {acl.as_tuple() for acl in bridge_acls(EXAMPLE_ID)} if service == BRIDGE_USER else set()
    )
    return (
        per_partner
        | {("Describe", "topic", "verbund.", "prefixed")}
        | {("Read", "topic", t, "literal") for t in access["read"]}
        | {("Write", "topic", t, "literal") for t in access["write"]}
        | {("Read", "group", g, "literal") for g in access.get("groups", ())}
        | {("Read", "topic", p, "prefixed") for p in access.get("read_prefixed", ())}
    )


def _listeners(value: str) -> dict[str, str]:
    """'NAME://host:port,...' or 'NAME:PROTOCOL,...' -> {NAME: rest}."""
    return dict(item.split(":", 1) for item in value.split(","))


def test_kafka_authenticates_everyone_and_authorizes_with_acls(services_) -> None:
    env = _env(services_["kafka"])
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == STANDARD_AUTHORIZER
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == KAFKA_ADMIN
    protocols = _listeners(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"])
    assert set(protocols) == set(_listeners(env["KAFKA_LISTENERS"]))
    assert all(p.startswith("SASL_") for p in protocols.values()), f"no anonymous: {protocols}"
    for listener in ("CLIENT", "EXTERNAL"):  # services and partners: SCRAM users only
        assert env[f"KAFKA_LISTENER_NAME_{listener}_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    # the controller listener stays inside: not advertised, not published
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller not in _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    controller_port = _listeners(env["KAFKA_LISTENERS"])[controller].rsplit(":", 1)[1]
    published = {str(p).rsplit(":", 1)[1] for p in services_["kafka"].get("ports", [])}
    assert published == {"9094"} and controller_port not in published
    assert "java.security.auth.login.config=" in env["KAFKA_OPTS"]
    assert "--command-config" in " ".join(services_["kafka"]["healthcheck"]["test"])


def test_every_verbund_service_uses_its_own_kafka_user_and_a_required_secret(services_) -> None:
    for name, svc in _verbund(services_).items():
        env = _env(svc)
        assert env["VERBUND_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT", name
        assert env["VERBUND_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        assert env["VERBUND_KAFKA_USERNAME"] == name, name
        assert env["VERBUND_KAFKA_PASSWORD"].startswith(
            f"${{VERBUND_KAFKA_{name.upper()}_PASSWORD:?"
        ), f"{name}: the password must come from a required secret"
        settings = ServiceSettings(
            kafka_security_protocol=env["VERBUND_KAFKA_SECURITY_PROTOCOL"],
            kafka_sasl_mechanism=env["VERBUND_KAFKA_SASL_MECHANISM"],
            kafka_username=env["VERBUND_KAFKA_USERNAME"],
            kafka_password="x",
        )
        assert settings.kafka_username == name


def test_acl_setup_creates_each_user_with_the_same_required_secret(services_) -> None:
    setup = services_["kafka-acl-setup"]
    assert setup["restart"] == "no"
    assert setup["depends_on"]["kafka"]["condition"] == "service_healthy"
    env = _env(setup)
    users = dict(USER_LINE.findall(_acl_script(services_)))
    assert set(users) == VERBUND_SERVICES | {EXAMPLE_PARTNER}
    for user, variable in users.items():
        secret = f"VERBUND_KAFKA_{user.upper().replace('-', '_')}_PASSWORD"
        assert env[variable].startswith(f"${{{secret}:?"), f"{user}: {env[variable]}"
        if user in VERBUND_SERVICES:
            service_password = _env(services_[user])["VERBUND_KAFKA_PASSWORD"]
            assert service_password.startswith(f"${{{secret}:?"), user
    script = _acl_script(services_)
    assert "SCRAM-SHA-512=[" in script and "--bootstrap-server kafka:9095" in script
    for one_shot in ("kafka-acl-setup", "kafka-topics"):
        admin = _env(services_[one_shot])["ADMIN_PASSWORD"]
        assert admin.startswith("${VERBUND_KAFKA_ADMIN_PASSWORD:?"), one_shot


def test_every_service_has_exactly_the_acls_of_the_topics_it_uses(services_) -> None:
    acls = _acls(services_)
    assert set(KAFKA_ACCESS) == VERBUND_SERVICES
    for service in sorted(VERBUND_SERVICES):
        granted, expected = acls.get(service, set()), _expected_acls(service)
        assert not expected - granted, f"{service}: ACLs missing {sorted(expected - granted)}"
        assert not granted - expected, f"{service}: ACLs beyond its use {granted - expected}"
    known = {spec.name for spec in ALL_TOPICS}
    for service, access in KAFKA_ACCESS.items():
        assert set(access["read"]) | set(access["write"]) <= known, service
    # the groups of the table are the ones the services are configured with
    assert KAFKA_ACCESS["ledger"]["groups"] == (_env(services_["ledger"])["VERBUND_GROUP_ID"],)
    assert KAFKA_ACCESS["audit"]["groups"] == (_env(services_["audit"])["VERBUND_AUDIT_GROUP_ID"],)
    assert KAFKA_ACCESS["ledger"]["read_prefixed"] == (KAFKA_ACCESS["ledger"]["groups"][0] + "-",)
    assert set(KAFKA_ACCESS["audit"]["read"]) == set(AUDITED_TOPICS)
    bridge_group = _env(services_["bridge"])["VERBUND_BRIDGE_GROUP_ID"]
    assert KAFKA_ACCESS["bridge"]["groups"] == (bridge_group,) == (BRIDGE_GROUP,)
    assert set(acls) == VERBUND_SERVICES | {EXAMPLE_PARTNER}, "ACLs for an unknown user"


def _topics_used_in_code(service: str) -> set[str]:
    """Topics named in services/<service>/ (imports from services.common.topics), plus the
    commands topic where the service installs access control (AccessRefused)."""
    used: set[str] = set()
    for path in (ROOT / "services" / service).glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "services.common.topics":
                for alias in node.names:
                    spec = getattr(topics_module, alias.name, None)
                    if isinstance(spec, TopicSpec):
                        used.add(spec.name)
            elif isinstance(node, ast.Name) and node.id == "install_access":
                used.add(COMMANDS.name)
    return used


def test_kafka_access_table_covers_the_topics_of_the_code() -> None:
    for service, access in KAFKA_ACCESS.items():
        used = _topics_used_in_code(service)
        assert used, service
        uncovered = used - set(access["read"]) - set(access["write"])
        assert not uncovered, f"{service} uses {sorted(uncovered)}: add to KAFKA_ACCESS and ACLs"


def test_example_partner_acls_are_exactly_what_onboarding_grants(services_) -> None:
    assert _acls(services_)[EXAMPLE_PARTNER] == EXAMPLE_PARTNER_ACLS
    script = _acl_script(services_)
    assert "docs/partner-onboarding.md" in script
    assert re.search(r"ACLs never\s+(#\s+)?restrict keys", script)
    assert (ROOT / "docs" / "partner-onboarding.md").is_file()


def test_no_partner_principal_has_an_acl_on_a_topic_not_its_own(services_) -> None:
    partners = {user: grants for user, grants in _acls(services_).items() if user not in
                VERBUND_SERVICES}  # fmt: skip
    assert partners, "no partner user in kafka-acl-setup"
    shared = {spec.name for spec in ALL_TOPICS}
    for user, grants in partners.items():
        assert user.startswith("partner-"), f"{user}: partner users are partner-<id>"
        partner = user.removeprefix("partner-")
        for operation, kind, name, pattern in grants:
            if kind == "group":
                assert (name, pattern) == (f"partner.{partner}.", "prefixed"), (user, name)
                continue
            assert pattern == "literal", f"{user}: prefixed topic ACL {name}"
            assert name not in shared, f"{user} has {operation} on the shared topic {name}"
            owner = owner_of_partner_topic(name)
            assert owner is not None and owner[0] == partner, f"{user}: {operation} on {name}"
            assert (owner[1], operation) in {("events", "Write"), ("orders", "Read")}, (user, name)


def test_the_partner_topic_check_catches_foreign_and_shared_topics() -> None:
    """The check above, on ACL sets that must fail it."""
    bad = [
        ("Read", "topic", "verbund.partner.other.orders", "literal"),
        ("Write", "topic", PARTNER_EVENTS.name, "literal"),
        ("Read", "topic", "verbund.partner.", "prefixed"),
        ("Read", "topic", "verbund.partner.example.events", "literal"),  # its own, wrong way
    ]
    for grant in bad:
        operation, kind, name, pattern = grant
        line = f"acl partner-example {operation} {kind} {name}"
        line += " prefixed" if pattern == "prefixed" else ""
        fake = {"kafka-acl-setup": {"command": [line]}}
        with pytest.raises(AssertionError):
            test_no_partner_principal_has_an_acl_on_a_topic_not_its_own(fake)


# --- dependencies ----------------------------------------------------------------------------


def test_depends_on_targets_exist_and_conditions_can_be_met(services_) -> None:
    for name, svc in services_.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: use depends_on with conditions"
        for target, spec in deps.items():
            assert target in services_, f"{name} depends on unknown service {target}"
            condition = spec["condition"]
            assert condition in {"service_healthy", "service_completed_successfully"}, name
            if condition == "service_healthy":
                assert services_[target].get("healthcheck"), f"{target} has no healthcheck"
            else:
                assert services_[target].get("restart") == "no", f"{target} is not one-shot"


def test_verbund_services_wait_for_kafka_and_the_topics(services_) -> None:
    for name, svc in _verbund(services_).items():
        deps = svc["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy", name
        assert deps["kafka-topics"]["condition"] == "service_completed_successfully", name
        assert deps["kafka-acl-setup"]["condition"] == "service_completed_successfully", name


# --- metrics ---------------------------------------------------------------------------------


def test_prometheus_scrapes_every_verbund_metrics_port(services_) -> None:
    targets = _scrape_targets()
    for job, (host, port) in targets.items():
        if host == "localhost":
            continue
        assert host in services_, f"scrape job {job}: no compose service {host}"
        assert _metrics_port(services_[host]) == port, f"scrape job {job}: port {port}"
    scraped = {host for host, _ in targets.values()}
    for name in ("ledger", "gateway", "coordinator", "audit"):
        assert name in scraped, f"{name} is not scraped"
        assert _metrics_port(services_[name]) is not None, f"{name} has no metrics port"


def test_healthchecks_probe_the_configured_ports(services_) -> None:
    for name, svc in _verbund(services_).items():
        if "healthcheck" not in svc:
            continue
        probe = " ".join(svc["healthcheck"]["test"])
        [port] = re.findall(r"127\.0\.0\.1:(\d+)/", probe)
        assert int(port) == _metrics_port(svc), name


def test_metrics_listen_beyond_the_container(services_) -> None:
    for name, svc in _verbund(services_).items():
        assert _env(svc)["VERBUND_METRICS_HOST"] == "0.0.0.0", name
    assert _env(services_["gateway"])["VERBUND_GATEWAY_HOST"] == "0.0.0.0"
    assert _env(services_["coordinator"])["VERBUND_COORDINATOR_HOST"] == "0.0.0.0"


# --- files, secrets ----------------------------------------------------------------------------


def _bind_mounts(services_: dict[str, dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    mounts: dict[str, list[tuple[str, str]]] = {}
    for name, svc in services_.items():
        for volume in svc.get("volumes", []):
            source, target = str(volume).split(":")[:2]
            if source.startswith(("./", "/")):
                mounts.setdefault(name, []).append((source, target))
    return mounts


def test_every_referenced_file_exists(services_) -> None:
    mounts = _bind_mounts(services_)
    assert mounts, "no config files mounted"
    for name, pairs in mounts.items():
        for source, _ in pairs:
            assert source.startswith("./deploy/"), f"{name}: mount {source} from deploy/"
            assert (ROOT / source).exists(), f"{name}: {source} does not exist"
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_CONFIG.parent / rule_file).is_file(), rule_file


def test_prometheus_and_grafana_find_their_config_in_the_mounts(services_) -> None:
    prom = dict(_bind_mounts(services_)["prometheus"])
    config_flag = next(a for a in services_["prometheus"]["command"] if "--config.file=" in a)
    config_path = config_flag.split("=", 1)[1]
    assert prom["./deploy/prometheus"] == str(Path(config_path).parent)
    assert (ROOT / "deploy/prometheus" / Path(config_path).name).is_file()

    grafana = {target: source for source, target in _bind_mounts(services_)["grafana"]}
    assert grafana["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    provider_path = yaml.safe_load(GRAFANA_PROVIDERS.read_text())["providers"][0]["options"]["path"]
    assert grafana[provider_path] == "./deploy/grafana/dashboards"
    home = _env(services_["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider_path + "/")
    assert (ROOT / "deploy/grafana/dashboards" / Path(home).name).is_file()


def test_required_secrets_fail_fast_when_missing(compose) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for var in REQUIRED_ENV:
        assert re.search(r"\$\{" + var + r":\?[^}]+\}", text), f"{var} must be required (:?)"
    grafana_env = _env(compose["services"]["grafana"])
    assert grafana_env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    for name, (secret_name, setting) in TOKEN_SECRETS.items():
        assert compose["secrets"][secret_name]["file"].startswith("${" + setting + ":?")
        service = compose["services"][name]
        [secret] = service["secrets"]
        assert secret["source"] == secret_name
        assert _env(service)[setting] == f"/run/secrets/{secret['target']}"
    for name, svc in _verbund(compose["services"]).items():
        [config] = svc["configs"]
        assert _env(svc)["VERBUND_ALLIANCE_FILE"] == config["target"], name
        assert config["source"] in compose["configs"], name


def test_named_volumes_are_declared(compose) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith(("./", "/")):
                assert source in declared, f"{name}: volume {source} not declared"
