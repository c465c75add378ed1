"""protocols.rounding.round_list gives exactly Python's round, ties included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from protocols.rounding import round_list


@pytest.mark.parametrize("digits", [3, 6])
def test_random_values_round_as_python_does(digits: int) -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.random(20_000) * 1000,
            rng.random(5_000) * 1e10,  # beyond the vectorised margin
            np.round(rng.random(5_000) * 100, 3) * np.round(rng.random(5_000) * 10, 4),
            np.array([0.0, 0.5e-6, 1.5e-6, 2.5e-3, 31.4244245, 1e15, 2.0**53, 1e300]),
        ]
    )
    got = round_list(values, digits)
    expected = [round(v, digits) for v in values.tolist()]
    assert got == expected


@pytest.mark.parametrize("copies", [1, 40])  # one by one, vectorised
def test_decimal_ties_that_numpy_rounds_the_other_way(copies: int) -> None:
    products = np.tile([10.003 * 3.1415, 10.005 * 2.4625, 10.007 * 0.1875], copies)
    assert np.round(products, 6).tolist() != [round(v, 6) for v in products.tolist()]
    assert round_list(products, 6) == [round(v, 6) for v in products.tolist()]


@pytest.mark.parametrize("copies", [1, 40])
def test_non_finite_values_pass_through(copies: int) -> None:
    got = round_list(np.tile([math.inf, 1.25, -math.inf], copies), 1)
    assert got[:3] == [math.inf, round(1.25, 1), -math.inf] and len(got) == 3 * copies
