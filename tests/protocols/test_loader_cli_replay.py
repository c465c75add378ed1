"""Protocol files, the drill CLI end to end, capacity sharing, and replay."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import pytest
import yaml

from protocols.cli import register
from protocols.loader import LIBRARY, ProtocolFileError, load_library, load_protocol, overdue_report
from protocols.run import replay, solve
from protocols.status import SolveStatus
from schemas.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "protocols" / "scenarios"
GOOD = yaml.safe_load((LIBRARY / "capacity-sharing.yaml").read_text())


def _write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_library_has_a_ready_protocol_per_kind():
    lib = load_library()
    assert lib.errors == []
    kinds = {p.kind for p in lib.protocols.values()}
    assert kinds == {"material_reallocation", "capacity_sharing", "joint_purchasing"}


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda d: d.pop("owner"), "owner", "Field required"),
        (lambda d: d.update(version="three"), "version", "valid integer"),
        (lambda d: d.update(colour="red"), "colour", "Extra inputs are not permitted"),
        (lambda d: d["optimization"].update(max_distance_km="far"), "max_distance_km", "number"),
    ],
)
def test_broken_file_names_file_field_and_problem(tmp_path, mutate, field, problem):
    data = json.loads(json.dumps(GOOD, default=str))
    mutate(data)
    path = _write(tmp_path, "broken.yaml", data)
    with pytest.raises(ProtocolFileError) as info:
        load_protocol(path)
    message = str(info.value)
    assert str(path) in message and field in message and problem in message


def test_bad_yaml_is_refused_and_others_keep_loading(tmp_path):
    _write(tmp_path, "a-good.yaml", json.loads(json.dumps(GOOD, default=str)))
    _write(tmp_path, "b-bad.yaml", "id: [unclosed\n  title: x")
    lib = load_library([tmp_path])
    assert list(lib.protocols) == ["capacity-sharing"]
    assert len(lib.errors) == 1
    assert "b-bad.yaml" in str(lib.errors[0]) and "invalid YAML at line" in str(lib.errors[0])


def test_overdue_reviews_are_reported():
    lib = load_library()
    assert overdue_report(lib, date(2026, 9, 20)) == []
    late = overdue_report(lib, date(2027, 6, 1))
    assert any(line.startswith("joint-purchasing v1") and "overdue" in line for line in late)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="verbund")
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_drill_cli_end_to_end_with_comparison(tmp_path, capsys):
    out = tmp_path / "decision.json"
    code = _cli(
        [
            "drill",
            str(SCENARIOS / "small.yaml"),
            "--protocol",
            "hospital-material-reallocation",
            "--protocol",
            "packs-material-reallocation",
            "--variant",
            "fairness=false",
            "--output",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "fulfilment by tier" in text and "== comparison ==" in text
    assert "pharma-west/lager -> klinikum-nord/haupthaus" in text
    runs = json.loads(out.read_text())
    assert len(runs) == 3
    for run in runs:
        d = run["decision"]
        assert d["status"] == "optimal"
        assert d["unmet_by_tier"]["1"] == pytest.approx(
            0, abs=1e-4
        )  # both hospitals are served in full
        assert run["record"]["decision_hash"]


def test_drill_cli_reports_bad_protocol_name(capsys):
    code = _cli(["drill", str(SCENARIOS / "small.yaml"), "--protocol", "no-such-protocol"])
    assert code == 2
    assert "no protocol 'no-such-protocol'" in capsys.readouterr().err


def test_protocol_check_and_scenario_generate(tmp_path, capsys):
    assert _cli(["protocol", "check", "--today", "2026-09-20"]) == 0
    assert _cli(["protocol", "check", "--today", "2027-06-01", "--strict"]) == 1
    target = tmp_path / "gen.json"
    assert (
        _cli(
            ["scenario", "generate", "--partners", "8", "--materials", "3", "--output", str(target)]
        )
        == 0
    )
    assert len(load_scenario(target).partners) == 8


def test_capacity_sharing_only_qualified_within_offered_hours():
    sc = load_scenario(SCENARIOS / "small.yaml")
    lib = load_library()
    r = solve(lib.protocols["capacity-sharing"], sc)
    assert r.decision.status is SolveStatus.OPTIMAL and r.violations == []
    by_need = {a.need_id: a for a in r.decision.capacity_assignments}
    assert by_need["c-sw-cnc"].hours == pytest.approx(24)  # metall-ost has iso9001
    # pharma-west has iso13485 and offers 16 h; the hospital needs 20 h
    assert by_need["c-kn-steri"].hours == pytest.approx(16)
    assert r.decision.unmet_by_tier[1] == pytest.approx(4)


def test_unqualified_provider_gets_no_assignment():
    sc = load_scenario(SCENARIOS / "small.yaml")
    data = sc.model_dump(mode="json")
    data["capacity_offers"][1]["qualifications"] = ["gmp"]
    from schemas.scenario import parse_scenario

    r = solve(load_library().protocols["capacity-sharing"], parse_scenario(data))
    assert all(a.need_id != "c-kn-steri" for a in r.decision.capacity_assignments)
    assert r.decision.unmet_by_tier[1] == pytest.approx(20)


@pytest.mark.parametrize(
    ("available_from", "assigned"),
    [("2026-11-25", 0.0), ("2026-11-24", 16.0), ("2026-11-01", 16.0)],
)
def test_capacity_available_only_after_the_need_is_due_is_not_assigned(available_from, assigned):
    """klinikum-nord's sterilisation need is due 2026-11-24; pharma-west's offer serves it only
    if its capacity is available by then."""
    from schemas.scenario import parse_scenario

    data = load_scenario(SCENARIOS / "small.yaml").model_dump(mode="json")
    data["capacity_offers"][1]["available_from"] = available_from
    r = solve(load_library().protocols["capacity-sharing"], parse_scenario(data))
    assert r.decision.status is SolveStatus.OPTIMAL and r.violations == []
    hours = sum(a.hours for a in r.decision.capacity_assignments if a.need_id == "c-kn-steri")
    assert hours == pytest.approx(assigned)
    assert r.decision.unmet_by_tier[1] == pytest.approx(20 - assigned)


def test_invariants_catch_an_assignment_from_capacity_available_too_late():
    from protocols.invariants import check_capacity
    from schemas.scenario import parse_scenario

    data = load_scenario(SCENARIOS / "small.yaml").model_dump(mode="json")
    protocol = load_library().protocols["capacity-sharing"]
    decision = solve(protocol, parse_scenario(data)).decision
    data["capacity_offers"][1]["available_from"] = "2026-11-30"
    late = check_capacity(parse_scenario(data), protocol.optimization, decision)
    assert late == ["lanes: offer pw-steri starts 2026-11-30 after c-kn-steri is due (2026-11-24)"]


def test_offers_without_a_start_day_serialise_as_before():
    """Snapshots recorded before offers had ``available_from`` keep their hash."""
    sc = load_scenario(SCENARIOS / "small.yaml")
    assert all("available_from" not in o for o in sc.model_dump(mode="json")["capacity_offers"])


@pytest.mark.parametrize("name", ["hospital-material-reallocation", "joint-purchasing"])
def test_replay_reproduces_the_decision(name):
    sc = load_scenario(SCENARIOS / "medium.json")
    p = load_library().protocols[name]
    first = solve(p, sc, run_id="run-1")
    again = replay(first.record, p, sc)
    assert again.identical, again.differences
    changed = sc.model_copy(update={"needs": sc.needs[1:]})
    other = replay(first.record, p, changed)
    assert not other.identical
    assert any(d.startswith("snapshot_hash") for d in other.differences)
