"""Rounding a whole array to decimals exactly as Python's ``round`` does, at numpy speed.

``np.round(x, d)`` computes ``rint(x * 10**d) / 10**d``: the product is itself rounded,
so near a decimal tie (``10.003 * 3.1415 = 31.4244245``) it can round the other way
than ``round`` (which rounds the exact value), and an order's cost would change with
the method, and with it the decision hash that ``verbund replay`` compares.

Where the scaled value is farther from a tie than the product's rounding error, both
agree (the same integer, divided by ``10**d`` with one correctly rounded division,
is the float nearest to that decimal, which is what ``round`` returns). Only the others
(ties and near-ties, and values too large for the margin) are rounded one by one.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Relative error bound of ``x * 10**d`` (half an ulp, 2**-53), with a safety factor of 4.
_PRODUCT_ERROR = 4 * 2.0**-53
#: Up to this many values ``round`` itself is faster than the ten array operations.
_ONE_BY_ONE = 24


def round_list(values: npt.NDArray[np.float64], digits: int) -> list[float]:
    """``[round(v, digits) for v in values]`` (the same floats), mostly vectorised."""
    if len(values) <= _ONE_BY_ONE:
        return [round(v, digits) for v in values.tolist()]
    with np.errstate(invalid="ignore", over="ignore"):  # inf and nan: rounded one by one
        scaled = values * 10.0**digits
        rounded = np.rint(scaled) / 10.0**digits
        distance_to_tie = np.abs(np.abs(scaled - np.trunc(scaled)) - 0.5)
        margin = np.abs(scaled) * _PRODUCT_ERROR
        doubtful = ~(distance_to_tie > margin) | ~(np.abs(scaled) < 2.0**52)
    result: list[float] = rounded.tolist()
    for k in np.flatnonzero(doubtful).tolist():
        result[k] = round(float(values[k]), digits)
    return result
