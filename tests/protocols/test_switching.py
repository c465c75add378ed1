"""The short GIL switch interval of a run: nested use, restored value, errors."""

from __future__ import annotations

import sys

import pytest

from protocols.switching import SWITCH_INTERVAL_S, short_switch_interval


@pytest.fixture
def default_interval():
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


def test_short_inside_and_restored_once_after_nested_use(default_interval):
    with short_switch_interval():
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        with short_switch_interval():
            assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)  # outer run
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_restored_after_an_error_and_a_shorter_interval_is_kept(default_interval):
    with pytest.raises(ValueError), short_switch_interval():
        raise ValueError("boom")
    assert sys.getswitchinterval() == pytest.approx(0.005)
    sys.setswitchinterval(SWITCH_INTERVAL_S / 4)
    with short_switch_interval():
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S / 4)
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S / 4)


def test_a_run_restores_the_interval(default_interval):
    from protocols.generate import generate_scenario
    from protocols.run import solve
    from tests.protocols.helpers import protocol

    solve(protocol(), generate_scenario(6, 3, seed=2, capacity=False, purchasing=False))
    assert sys.getswitchinterval() == pytest.approx(0.005)
