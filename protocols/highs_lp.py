"""Column-wise LPs as numpy arrays, handed to highspy without per-element Python work."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import highspy
import numpy as np
import numpy.typing as npt

from protocols.status import SolveStatus

INF = highspy.kHighsInf

#: The compiled HiGHS class. ``highspy.Highs`` (1.15) is a Python subclass that
#: registers a Python callback on construction, which ``run`` calls into (needing the
#: GIL): a thread busy in Python (making orders) then stalls the solver threads
#: (measured: 10 stacked LPs 25 ms alone, ~250 ms next to a busy Python thread,
#: ~80 ms with the compiled class). Callbacks are not used here; older highspy
#: versions have no ``_Highs`` and their ``Highs`` is the compiled class.
_HighsCore = getattr(highspy, "_Highs", highspy.Highs)


def new_highs(time_limit_s: float, *, devex: bool = False) -> highspy.Highs:
    """A silent HiGHS instance with presolve off.

    Presolve finds nothing to remove in a transportation matrix (every column is
    one supply and one demand entry) and costs ~40 % of the solve time.
    ``devex``: Devex dual edge weights instead of dual steepest edge; measured on
    the plain transportation LPs of :mod:`protocols.tier_reduction` (50 x 50:
    ~2,250 iterations either way, 25-30 % less time per iteration; 200 x 100 equal).
    """
    h: highspy.Highs = _HighsCore()
    h.setOptionValue("output_flag", False)
    _set_time_limit(h, time_limit_s)
    h.setOptionValue("presolve", "off")
    if devex:
        h.setOptionValue("simplex_dual_edge_weight_strategy", 1)
    return h


def _set_time_limit(h: highspy.Highs, time_limit_s: float) -> None:
    h.setOptionValue("time_limit", float(max(0.01, time_limit_s)))


class IdleInstances:
    """Cleared HiGHS instances of ``new_highs(..., devex=True)``, kept for the next LP.

    Creating and destroying an instance takes ~55 us with the GIL held, about a fifth
    of handing a stacked 50 x 50 LP to HiGHS, ten times per run. A returned instance
    is cleared (``clearModel`` and ``clearSolver``: no model, basis or solution is
    carried over, only the options; tested: the same column values as a fresh
    instance) and gets the new run's time limit when taken. At most ``limit`` are
    kept; safe to share between threads.
    """

    def __init__(self, limit: int = 16) -> None:
        self._idle: list[highspy.Highs] = []
        self._lock = threading.Lock()
        self._limit = limit

    def take(self, time_limit_s: float) -> highspy.Highs:
        with self._lock:
            h = self._idle.pop() if self._idle else None
        if h is None:
            return new_highs(time_limit_s, devex=True)
        _set_time_limit(h, time_limit_s)
        return h

    def give_back(self, h: highspy.Highs) -> None:
        h.clearModel()
        h.clearSolver()
        with self._lock:
            if len(self._idle) < self._limit:
                self._idle.append(h)

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()

    def __len__(self) -> int:
        return len(self._idle)


#: The instances :func:`protocols.fastlp.prepare_lp` hands stacked LPs to.
IDLE_DEVEX = IdleInstances()


@dataclass(frozen=True)
class LpArrays:
    """A column-wise LP as numpy arrays (the layout of ``Highs.passModel``'s array form)."""

    col_cost: npt.NDArray[np.float64]
    col_lower: npt.NDArray[np.float64]
    col_upper: npt.NDArray[np.float64]
    row_lower: npt.NDArray[np.float64]
    row_upper: npt.NDArray[np.float64]
    a_start: npt.NDArray[np.int32]
    a_index: npt.NDArray[np.int32]
    a_value: npt.NDArray[np.float64]

    @property
    def n_cols(self) -> int:
        return int(self.col_cost.shape[0])

    def pass_to(self, h: highspy.Highs) -> None:
        """Hand the arrays to HiGHS as buffers (the ``HighsLp`` matrix setters copy
        element by element through Python and cost more than the solve)."""
        n = self.n_cols
        status = h.passModel(
            n,
            int(self.row_lower.shape[0]),
            int(self.a_index.shape[0]),
            int(highspy.MatrixFormat.kColwise),
            int(highspy.ObjSense.kMinimize),
            0.0,
            self.col_cost,
            self.col_lower,
            self.col_upper,
            self.row_lower,
            self.row_upper,
            self.a_start,
            self.a_index,
            self.a_value,
            np.zeros(n, dtype=np.int32),  # all continuous
        )
        if status == highspy.HighsStatus.kError:
            raise RuntimeError("HiGHS refused the model")


def block_diagonal(parts: Sequence[LpArrays]) -> LpArrays:
    """The LP of independent column-wise LPs side by side (rows and columns in order)."""
    rows = np.cumsum([0] + [int(p.row_lower.shape[0]) for p in parts[:-1]])
    nnz = np.cumsum([0] + [int(p.a_index.shape[0]) for p in parts])
    return LpArrays(
        col_cost=np.concatenate([p.col_cost for p in parts]),
        col_lower=np.concatenate([p.col_lower for p in parts]),
        col_upper=np.concatenate([p.col_upper for p in parts]),
        row_lower=np.concatenate([p.row_lower for p in parts]),
        row_upper=np.concatenate([p.row_upper for p in parts]),
        a_start=np.concatenate(
            [p.a_start[:-1] + np.int32(n) for p, n in zip(parts, nnz[:-1].tolist(), strict=True)]
            + [np.array([nnz[-1]], dtype=np.int32)]
        ),
        a_index=np.concatenate(
            [p.a_index + np.int32(r) for p, r in zip(parts, rows.tolist(), strict=True)]
        ),
        a_value=np.concatenate([p.a_value for p in parts]),
    )


def status_of(h: highspy.Highs) -> SolveStatus:
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        return SolveStatus.OPTIMAL
    if status in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        return SolveStatus.INFEASIBLE
    if status == highspy.HighsModelStatus.kTimeLimit:
        feasible = h.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible
        return SolveStatus.TIME_LIMIT if feasible else SolveStatus.ERROR
    return SolveStatus.ERROR


def column_values(h: highspy.Highs) -> npt.NDArray[np.float64]:
    """Primal column values, clipped at 0 (all columns here have lower bound 0)."""
    return np.maximum(0.0, np.asarray(h.getSolution().col_value, dtype=np.float64))
