"""The Prometheus configuration and alert rules, checked and unit-tested with promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.metric_names import ROOT, known_series, metric_names
from tests.deploy.promtool import require

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))

# The alerts the operations team asked for (issue 4), by name.
REQUIRED_ALERTS = {
    "VerbundCriticalShortageOpen",
    "VerbundPartnerSilent",
    "VerbundDeadLetterRate",
    "VerbundDecisionLatencyObjectiveMissed",
    "VerbundProtocolReviewOverdue",
    "VerbundServiceDown",
}


def _promtool(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _rules(path: Path = RULES) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_config_is_valid() -> None:
    result = _promtool("check", "config", PROMETHEUS / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_rules_are_valid() -> None:
    result = _promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool rule tests in deploy/prometheus/tests"
    result = _promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_requested_alerts_exist_with_severity_and_summary() -> None:
    rules = {rule["alert"]: rule for rule in _rules() if "alert" in rule}
    assert rules.keys() >= REQUIRED_ALERTS, sorted(REQUIRED_ALERTS - rules.keys())
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"].get("summary"), name


def test_every_rule_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _rules() if "alert" in rule}
    assert names <= firing, f"rules never expected to fire: {sorted(names - firing)}"
    assert names <= quiet, f"rules never expected to stay quiet: {sorted(names - quiet)}"


def test_rules_query_only_defined_metrics() -> None:
    known = known_series()
    unknown = {
        (rule.get("alert") or rule.get("record"), name)
        for rule in _rules()
        for name in metric_names(str(rule["expr"]))
        if name not in known
    }
    assert not unknown, f"alert rules query metrics nobody defines: {sorted(unknown)}"


@pytest.mark.parametrize("alert", sorted(REQUIRED_ALERTS))
def test_rule_tests_fail_when_the_rule_changes(alert: str, tmp_path: Path) -> None:
    """The unit tests pin each rule: dropping it, or firing it sooner, makes them fail."""
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    (tmp_path / "tests").mkdir()
    for path in RULE_TESTS:
        shutil.copy(path, tmp_path / "tests" / path.name)

    for mutation in ("drop", "fire sooner"):
        mutated = yaml.safe_load(yaml.safe_dump(data))
        for group in mutated["groups"]:
            if mutation == "drop":
                group["rules"] = [r for r in group["rules"] if r.get("alert") != alert]
            else:
                for rule in group["rules"]:
                    if rule.get("alert") == alert:
                        rule["for"] = "0s"
        (tmp_path / "alerts.yml").write_text(yaml.safe_dump(mutated), encoding="utf-8")
        result = _promtool("test", "rules", *sorted((tmp_path / "tests").glob("*.yml")))
        assert result.returncode != 0, f"{alert}: rule tests still pass after '{mutation}'"
        assert alert in result.stdout + result.stderr
