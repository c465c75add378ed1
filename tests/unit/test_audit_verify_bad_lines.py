"""`verbund audit verify` on lines no writer produces: a report, never a traceback, and
no line that reads differently to different JSON parsers passes as intact."""

from __future__ import annotations

import pytest

from services.audit.verify import Problem, hashable, parse_entry, verify
from tests.unit.audit.helpers import entries, lines


@pytest.mark.parametrize(
    "replacement",
    [
        b'"principal":NaN',
        b'"principal":Infinity',
        b'"principal":"\\ud800"',
    ],
)
def test_values_without_canonical_form_are_reported_not_crashed(replacement: bytes) -> None:
    log = lines(entries(3))
    log[1] = log[1].replace(b'"principal":"anna"', replacement, 1)
    result = verify(log)
    assert not result.ok
    assert (result.line, result.problem) == (2, Problem.MALFORMED)
    entry = parse_entry(log[1])
    assert entry is None or not hashable(entry)


def test_duplicate_keys_are_tampering() -> None:
    # a first-key-wins reader would see "mallory"; Python's json sees "anna"
    log = lines(entries(3))
    log[1] = log[1].replace(b'"principal":"anna"', b'"principal":"mallory","principal":"anna"', 1)
    result = verify(log)
    assert not result.ok
    assert (result.line, result.problem) == (2, Problem.MALFORMED)
