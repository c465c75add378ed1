"""`verbund status --url` with a value that is not an http(s) URL: one readable line and
exit 2, not a traceback."""

from __future__ import annotations

import argparse

import pytest

from services.console.cli import ConsoleUnavailable, cmd_status, fetch


@pytest.mark.parametrize("base", ["notaurl", "http://[::1", "ftp//x"])
def test_fetch_names_a_bad_console_url(base: str) -> None:
    with pytest.raises(ConsoleUnavailable, match="URL") as caught:
        fetch(base, "token", "/v1/board", timeout=1.0)
    assert base in str(caught.value)


def test_status_with_a_bad_url_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VERBUND_COORDINATOR_TOKEN", "vbd_x")
    assert cmd_status(argparse.Namespace(url="notaurl")) == 2
    assert "notaurl" in capsys.readouterr().err


def test_a_token_that_cannot_be_a_header_is_named_not_echoed() -> None:
    # the request never leaves: http.client refuses the header value
    with pytest.raises(ConsoleUnavailable, match="VERBUND_COORDINATOR_TOKEN") as caught:
        fetch("http://127.0.0.1:9", "vbd_secret\nX-Evil: 1", "/v1/board", timeout=1.0)
    assert "vbd_secret" not in str(caught.value)
