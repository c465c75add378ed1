"""Pick the solving path for a transportation problem and keep the status a value.

The problems of one run (materials, capabilities) never interact, so the ones on
the highspy fast path are solved concurrently: ``Highs.run`` releases the GIL
(measured: 2 threads solve the 100 material LPs of the 200 x 100 benchmark in half
the time of one). The jobs go to a :class:`protocols.job_queue.JobQueue` shared by
``workers - 1`` background threads and the calling thread. Results keep the input
order and the LPs and their batches do not depend on the number of threads, so
neither do decisions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import islice

import highspy
import numpy as np

from protocols.fastlp import (
    fast_path_applies,
    lp_result,
    prepare_lp,
    reduced_outcome,
    release_lp,
    solve_fast,
    solve_reduced,
    split_stacked,
)
from protocols.highs_lp import LpArrays, block_diagonal
from protocols.job_queue import Job, JobQueue
from protocols.pulp_model import explain_infeasible, solve_lexicographic
from protocols.solvers import SolverChoice
from protocols.status import SolveStatus
from protocols.tier_reduction import TierReduction, TierReductions
from protocols.transport import TransportProblem, TransportSolution

#: Upper bound on solver threads (the calling thread included); the default is the
#: number of usable cores.
MAX_WORKERS = 8

#: Small closed-form problems are stacked into block-diagonal LPs of at most this
#: many columns (fixed, so the batches, and with them the decision, do not depend
#: on the thread count). Larger problems are solved alone, one per job. Measured on
#: the reduced LPs at 50 x 50 (~420 columns per material; HiGHS CPU time of all 50,
#: best of 7): no stacking 26.9 ms, 1,000-1,500 23.5 ms, 2,500-4,000 24.3 ms, 10,000
#: 27.9 ms, one LP of all 21,000 columns 35.0 ms; in ``solve()`` 1,500-8,000 are
#: within the noise. 2,500 gives ~10 jobs, enough to share between threads.
BATCH_COLUMNS = 2_500

#: Problems given as an iterator (built while the first stacks are solved) are taken
#: in chunks of these sizes (the last one repeats): a small first chunk starts the
#: solver thread early, larger ones keep the per-chunk reduction overhead (~0.15 ms)
#: low. Chunks do not change the batches or the LPs (a stack may span chunks).
CHUNKS = (8, 16, 32)


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


def _uses_fast_path(problem: TransportProblem, choice: SolverChoice, use_fast_path: bool) -> bool:
    return use_fast_path and choice.name == "highs" and fast_path_applies(problem)


def _guarded(
    problem: TransportProblem, solve: Callable[[], TransportSolution]
) -> TransportSolution:
    try:
        return solve()
    except Exception as exc:  # solver crash: reported as a status, not raised
        return TransportSolution(
            problem.group,
            SolveStatus.ERROR,
            np.zeros(problem.n_arcs),
            explanation=f"{problem.group}: solver error: {exc}",
        )


def _solve_fast_guarded(problem: TransportProblem, choice: SolverChoice) -> TransportSolution:
    return _guarded(problem, lambda: solve_fast(problem, choice.time_limit_s))


def _after_fast(
    problem: TransportProblem, choice: SolverChoice, solution: TransportSolution
) -> TransportSolution:
    if solution.status is SolveStatus.INFEASIBLE:
        return _guarded(problem, lambda: explain_infeasible(problem, choice, solution))
    return solution


def solve_transport(
    problem: TransportProblem, choice: SolverChoice, use_fast_path: bool = True
) -> TransportSolution:
    """Lexicographic optimum of one problem; never raises for solver trouble."""
    if _uses_fast_path(problem, choice, use_fast_path):
        solution = _guarded(problem, lambda: solve_fast(problem, choice.time_limit_s))
        return _after_fast(problem, choice, solution)
    return _guarded(problem, lambda: solve_lexicographic(problem, choice))


def solve_transports(
    problems: Sequence[TransportProblem],
    choice: SolverChoice,
    use_fast_path: bool = True,
    workers: int | None = None,
) -> list[TransportSolution]:
    """Solutions of independent problems, in input order (see :class:`Solving`)."""
    with Solving(problems, choice, use_fast_path, workers) as solving:
        return list(solving)


_Job = Job[list[TransportSolution]]
_Queue = JobQueue[list[TransportSolution]]


class Solving:
    """Solutions of independent problems, in input order, solved in the background.

    On entry the reduced LPs of complete fast-path problems are built (together,
    :class:`protocols.tier_reduction.TierReductions`; problems given as an iterator
    chunk by chunk, taken while the first stacks are solved) and each stack is handed
    to a HiGHS instance in the calling thread; the job queued for ``workers - 1``
    background threads (default workers: usable cores) is only ``Highs.run``, which
    releases the GIL. Iterating yields the solutions in input order: while the caller
    turns the first ones into orders, later ones are solved in the background, and a
    caller waiting for a solution nobody has started runs queued jobs itself. Other
    fast-path problems (lanes missing, minimum fill) are queued whole; PuLP models and
    infeasibility explanations run in the iterating thread. The batches and the LPs do
    not depend on the thread count, so neither does the decision.
    """

    def __init__(
        self,
        problems: Iterable[TransportProblem],
        choice: SolverChoice,
        use_fast_path: bool = True,
        workers: int | None = None,
    ) -> None:
        self._problems: list[TransportProblem] = []
        self._choice = choice
        self._use_fast_path = use_fast_path
        workers = default_workers() if workers is None else max(1, workers)
        self._queue: _Queue = JobQueue(workers - 1)
        self._jobs: dict[int, tuple[_Job, int, _ReducedBatch | None]] = {}
        try:
            self._submit_all(problems)
        except BaseException:
            self.__exit__()
            raise

    def _submit_all(self, problems: Iterable[TransportProblem]) -> None:
        """Batches in input order: consecutive complete problems whose reduced LPs are
        small share a block LP of at most ``BATCH_COLUMNS`` columns (a larger one ends
        the batch and is alone), every other fast-path problem is alone.

        A sequence is reduced at once; an iterator chunk by chunk (:data:`CHUNKS`), each
        chunk's full batches queued before the next chunk is taken (built), so solving
        starts while later problems are built. A batch may span chunks: its stacked LP is
        then the same block-diagonal LP (same arrays)."""
        choice = self._choice
        batch: list[tuple[int, TierReduction]] = []
        columns = 0

        def flush() -> None:
            nonlocal batch, columns
            if batch:
                lp = stacked_lp([reduction for _, reduction in batch])
                self._submit_batch(_ReducedBatch(self._problems, batch, lp, choice))
            batch, columns = [], 0

        for chunk in _chunks(problems):
            offset = len(self._problems)
            self._problems.extend(chunk)
            fast = [_uses_fast_path(p, choice, self._use_fast_path) for p in chunk]
            reductions = TierReductions(chunk, fast)
            for k, problem in enumerate(chunk):
                if not fast[k]:
                    continue
                i = offset + k
                reduction = reductions.get(k)
                if reduction is None:  # adds no rows or columns to a stack around it
                    self._submit(partial(_staged_job, problem, choice), [i])
                    continue
                n = reduction.n_cols
                if n > BATCH_COLUMNS:
                    flush()
                    self._submit_batch(
                        _ReducedBatch(self._problems, [(i, reduction)], reduction.lp, choice)
                    )
                    continue
                if columns + n > BATCH_COLUMNS:
                    flush()
                batch.append((i, reduction))
                columns += n
        flush()

    def _submit(self, job: Callable[[], list[TransportSolution]], batch: list[int]) -> None:
        queued = self._queue.submit(job)
        for position, i in enumerate(batch):
            self._jobs[i] = (queued, position, None)

    def _submit_batch(self, batch: _ReducedBatch) -> None:
        queued = self._queue.submit(batch.run)
        for position, i in enumerate(batch.indices):
            self._jobs[i] = (queued, position, batch)

    def waits_for_solver(self, i: int) -> bool:
        """Whether the ``i``-th solution would now have to wait for an unfinished job that
        a background thread runs or may take (without one, the caller runs it)."""
        queued = self._jobs.get(i)
        return queued is not None and self._queue.has_threads and not queued[0].done()

    def __enter__(self) -> Solving:
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.close()

    def __iter__(self) -> Iterator[TransportSolution]:
        for i, problem in enumerate(self._problems):
            queued = self._jobs.get(i)
            if queued is None:
                yield solve_transport(problem, self._choice, self._use_fast_path)
                continue
            job, position, batch = queued
            solutions = (
                self._queue.wait(job) if batch is None else batch.solutions(job, self._queue)
            )
            yield _after_fast(problem, self._choice, solutions[position])


def _chunks(problems: Iterable[TransportProblem]) -> Iterator[list[TransportProblem]]:
    if isinstance(problems, Sequence):
        yield list(problems)
        return
    it = iter(problems)
    for k in range(len(CHUNKS)):
        while chunk := list(islice(it, CHUNKS[k])):
            yield chunk
            if k < len(CHUNKS) - 1:
                break


def stacked_lp(reductions: Sequence[TierReduction]) -> LpArrays:
    """The block-diagonal LP of consecutive reductions (in input order), possibly of
    several :class:`TierReductions`: each owner's part is a slice, parts are joined."""
    parts: list[LpArrays] = []
    start = 0
    for k in range(1, len(reductions) + 1):
        if k == len(reductions) or reductions[k].owner is not reductions[start].owner:
            first, last = reductions[start], reductions[k - 1]
            parts.append(first.owner.stacked(first.key, last.key))
            start = k
    return parts[0] if len(parts) == 1 else block_diagonal(parts)


def _staged_job(problem: TransportProblem, choice: SolverChoice) -> list[TransportSolution]:
    return [_solve_fast_guarded(problem, choice)]


class _ReducedBatch:
    """The stacked reduced LP of a batch: handed to HiGHS in the calling thread, run by
    whichever thread takes the job (only ``Highs.run``, which releases the GIL), and
    turned into solutions in the calling thread again. A solver thread so needs the
    GIL only once per job, for a moment, instead of for building and splitting.

    An LP larger than ``BATCH_COLUMNS`` (a material alone, 200 x 100: ~7,000 columns)
    is handed to HiGHS by the job itself: its solve takes long enough for that not to
    matter, and a HiGHS instance holding every material's LP at once would double the
    peak memory of a large run."""

    def __init__(
        self,
        problems: Sequence[TransportProblem],
        batch: list[tuple[int, TierReduction]],
        lp: LpArrays,
        choice: SolverChoice,
    ) -> None:
        self.indices = [i for i, _ in batch]
        self.members = [problems[i] for i, _ in batch]
        self.parts = [reduction for _, reduction in batch]
        self.choice = choice
        self._solutions: list[TransportSolution] | None = None
        self._lp: LpArrays | None = lp
        self.highs: highspy.Highs | None = None
        if lp.n_cols <= BATCH_COLUMNS:
            try:
                self._prepare()
            except Exception:  # HiGHS refused the stack: solved one by one instead
                self._solutions = self._alone()

    def _prepare(self) -> None:
        if self._lp is not None:
            self.highs = prepare_lp(self._lp, self.choice.time_limit_s)
            self._lp = None

    def run(self) -> list[TransportSolution]:
        """The queued job: ``Highs.run`` (after handing a large LP to HiGHS)."""
        if self._solutions is None:
            self._prepare()
            if self.highs is not None:
                self.highs.run()
        return []

    def solutions(self, job: _Job, queue: _Queue) -> list[TransportSolution]:
        """The batch's solutions once ``job`` (its :meth:`run`) is done, in batch order."""
        if self._solutions is None:
            self._solutions = self._finish(job, queue)
        return self._solutions

    def _finish(self, job: _Job, queue: _Queue) -> list[TransportSolution]:
        try:
            queue.wait(job)
            status, values = lp_result(self.highs)
        except Exception:  # solved one by one, errors reported per problem
            self.highs = None  # not reused: its state is unknown
            return self._alone()
        if status is SolveStatus.OPTIMAL:
            release_lp(self.highs)
        self.highs = None
        if status is SolveStatus.OPTIMAL and values is not None:
            return split_stacked(self.members, self.parts, values)
        if len(self.members) == 1:
            return [reduced_outcome(self.members[0], self.parts[0], status, values)]
        return self._alone()  # statuses and explanations stay per problem

    def _alone(self) -> list[TransportSolution]:
        return [
            _guarded(p, partial(solve_reduced, p, r, self.choice.time_limit_s))
            for p, r in zip(self.members, self.parts, strict=True)
        ]
