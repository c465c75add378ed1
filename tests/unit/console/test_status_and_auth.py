"""``verbund status`` rendering and the console's token check."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.console.auth import COORDINATOR, Unauthenticated, authenticate, bearer_token
from services.console.cli import format_age, render_status
from services.console.views import board_view, freshness_view, runs_view
from services.gateway.tokens import TokenStore, issue_token
from tests.unit.console.test_views import ALLIANCE, detected, run_update


def test_render_status_tables() -> None:
    now = 1_900_000_000.0
    board = board_view(
        [
            detected("hosp-a", "NACL", "critical"),
            detected("hosp-b", "NACL", "watch"),
            detected("hosp-c", "PROPOFOL", "shortage"),
        ],
        ALLIANCE,
    )
    freshness = freshness_view({"hosp-a": now - 10, "hosp-b": now - 90_000}, ALLIANCE, now, 3600)
    runs = runs_view(
        [
            run_update("run-00000000000a", "awaiting_approval", "2030-03-17T11:46:40+00:00"),
            run_update("run-00000000000b", "completed", "2030-03-17T11:40:00+00:00"),
        ]
    )
    text = render_status(board, freshness, runs, now)
    lines = text.splitlines()
    assert lines[0] == "Open shortages: 3  (1 critical, 1 shortage, 1 watch)"
    assert lines[1].split() == ["material", "critical", "shortage", "watch", "total"]
    assert lines[3].split() == ["NACL", "1", "0", "1", "2"]
    assert lines[4].split() == ["PROPOFOL", "0", "1", "0", "1"]
    assert "Stale partners: 2 of 3  (no data for more than 1h 0m)" in text
    stale = [line for line in lines if line.startswith("hosp-")]
    assert [line.split()[0] for line in stale] == ["hosp-c", "hosp-b"]
    assert "never" in stale[0] and "1d 1h" in stale[1]
    assert "Running protocols: 1" in text
    [running] = [line for line in lines if line.startswith("run-")]
    assert running.split()[:4] == ["run-00000000000a", "p1", "awaiting_approval", "0/1"]
    assert "run-00000000000b" not in text


def test_render_status_quiet_alliance() -> None:
    text = render_status(board_view([], ALLIANCE), freshness_view({}, None, 0, 60), [], 0)
    assert text.splitlines() == [
        "Open shortages: 0  (0 critical, 0 shortage, 0 watch)",
        "",
        "Stale partners: 0 of 0  (no data for more than 1m)",
        "",
        "Running protocols: 0",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "never"), (5, "5s"), (125, "2m"), (3700, "1h 1m"), (90_000, "1d 1h")],
)
def test_format_age(seconds: float | None, text: str) -> None:
    assert format_age(seconds) == text


def test_authenticate(tmp_path: Path) -> None:
    path = tmp_path / "coordinator-tokens.yaml"
    token = issue_token("coord-anna", path)
    store = TokenStore.load(path)
    principal = authenticate(f"Bearer {token}", store)
    assert principal.name == "coord-anna" and principal.role == COORDINATOR
    assert principal.may("approve") and principal.may("view") and not principal.may("admin")
    assert principal.view() == {
        "principal": "coord-anna",
        "role": "coordinator",
        "permissions": ["approve", "view"],
    }
    for header in (None, "", "Bearer ", f"Basic {token}", "Bearer vbd_wrong"):
        with pytest.raises(Unauthenticated):
            authenticate(header, store)
    assert bearer_token(f"bearer  {token} ") == token


def test_missing_tokens_file_refuses_everyone(tmp_path: Path) -> None:
    store = TokenStore(path=tmp_path / "missing.yaml", reload_interval=0)
    with pytest.raises(Unauthenticated):
        authenticate("Bearer vbd_anything", store)
    token = issue_token("coord-ben", tmp_path / "missing.yaml")
    assert authenticate(f"Bearer {token}", store).name == "coord-ben"
