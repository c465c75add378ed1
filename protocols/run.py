"""Protocol + snapshot -> decision, with the record needed to replay it.

``solve`` is pure apart from calling the solver: no Kafka, no files, no clock
inside the decision (timings are reported next to it, not in it).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import attrgetter

from pydantic import BaseModel, ConfigDict

from protocols import capacity, purchasing, reallocation
from protocols.batch_checks import BatchChecks
from protocols.decisions import (
    CapacityAssignment,
    Decision,
    GroupOutcome,
    NeedFulfilment,
    PurchaseShare,
    TransferOrder,
    join_lists_json,
    presorted_list_json,
)
from protocols.dispatch import Solving
from protocols.gc_pause import gc_paused
from protocols.invariants import check_decision, unmet_by_tier
from protocols.solvers import SolverChoice, solver_version
from protocols.status import SolveStatus, worst
from protocols.switching import short_switch_interval
from protocols.transport import TransportProblem, TransportSolution
from schemas.protocol import (
    CapacityParameters,
    Protocol,
    PurchasingParameters,
    ReallocationParameters,
    Scope,
)
from schemas.scenario import Scenario

_COST = attrgetter("cost")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RunRecord(BaseModel):
    """Everything needed to reproduce a decision (store the snapshot by its hash)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    protocol_id: str
    protocol_version: int
    protocol_hash: str
    snapshot_hash: str
    solver: str
    solver_version: str
    parameters: dict[str, object]
    fast_path: bool
    decision_hash: str
    status: SolveStatus


@dataclass
class Timings:
    """Wall time of each phase of :func:`solve` (``total_s`` is their sum)."""

    build_s: float = 0.0
    solve_s: float = 0.0
    extract_s: float = 0.0
    invariants_s: float = 0.0  # batches checked during the extraction included
    record_s: float = 0.0  # content hashes of protocol, snapshot and decision
    # wall time from the call to the finished decision (model build + solve +
    # extraction, with the input hashes and the checks of batches of orders made
    # meanwhile), before the final invariant checks and the record; not part of
    # ``total_s``
    decision_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.build_s + self.solve_s + self.extract_s + self.invariants_s + self.record_s


@dataclass
class RunResult:
    decision: Decision
    record: RunRecord
    timings: Timings
    violations: list[str] = field(default_factory=list)
    # the snapshot's canonical JSON (what ``record.snapshot_hash`` hashes): a run store
    # writes these bytes instead of serialising the snapshot again
    snapshot_json: bytes = b""


def solver_choice(protocol: Protocol, solver: str | None = None) -> SolverChoice:
    s = protocol.solver
    return SolverChoice(solver or s.name, s.time_limit_s, s.mip_gap)


def solve(
    protocol: Protocol,
    snapshot: Scenario,
    *,
    solver: str | None = None,
    run_id: str = "drill",
    use_fast_path: bool = True,
    workers: int | None = None,
) -> RunResult:
    """Run ``protocol`` on ``snapshot``; the solver status is in ``decision.status``.

    ``solver`` ("highs" or "cbc") overrides the protocol's solver setting.
    ``workers``: threads for the independent fast-path LPs (default: usable
    cores); the decision does not depend on it. The cyclic garbage collector is
    paused meanwhile (:mod:`protocols.gc_pause`) and the GIL switch interval is
    short (:mod:`protocols.switching`).
    """
    called = time.perf_counter()
    with gc_paused(), short_switch_interval():
        return _solve(protocol, snapshot, solver, run_id, use_fast_path, workers, called)


def _solve(
    protocol: Protocol,
    snapshot: Scenario,
    solver: str | None,
    run_id: str,
    use_fast_path: bool,
    workers: int | None,
    called: float,
) -> RunResult:
    choice = solver_choice(protocol, solver)
    opt = protocol.optimization
    timings = Timings()
    checks = BatchChecks(snapshot, opt) if isinstance(opt, ReallocationParameters) else None
    out = _Outcome(checks=checks)
    hashes: tuple[str, str, bytes] | None = None
    problems: list[
        tuple[TransportProblem, reallocation.MaterialProblem | capacity.CapabilityProblem]
    ] = []
    if isinstance(opt, ReallocationParameters | CapacityParameters):
        contexts: list[_Context] = []
        # Built one by one while Solving takes them: the first stacks of materials are
        # solved while later ones are built.
        built: Iterator[_Context] = (
            reallocation.iter_problems(snapshot, opt, protocol.scope)
            if isinstance(opt, ReallocationParameters)
            else _capability_problems(snapshot, opt, protocol.scope)
        )
        start = time.perf_counter()
        problem_stream = _problems_of(built, contexts, timings)
        with Solving(problem_stream, choice, use_fast_path, workers) as solving:
            timings.solve_s += time.perf_counter() - start - timings.build_s
            problems = [(ctx.problem, ctx) for ctx in contexts]
            # The input hashes do not depend on the solution: computed while the solver
            # threads work, like the orders of each problem as soon as it is solved.
            start = time.perf_counter()
            hashes = _input_hashes(protocol, snapshot)
            timings.record_s += time.perf_counter() - start
            solutions = iter(solving)
            for k, (problem, ctx) in enumerate(problems):
                start = time.perf_counter()
                if out.pending and solving.waits_for_solver(k):
                    out.flush()  # the orders made so far, instead of waiting idle
                timings.extract_s += time.perf_counter() - start
                start = time.perf_counter()
                sol = next(solutions)
                timings.solve_s += time.perf_counter() - start
                start = time.perf_counter()
                out.add_transport(problem, ctx, sol)
                timings.extract_s += time.perf_counter() - start
            start = time.perf_counter()
            out.flush()
            timings.extract_s += time.perf_counter() - start
    else:
        assert isinstance(opt, PurchasingParameters)
        start = time.perf_counter()
        pools = purchasing.build_problems(snapshot, protocol.scope)
        timings.build_s = time.perf_counter() - start
        for pool in pools:
            start = time.perf_counter()
            psol = purchasing.solve_pool(pool, choice)
            timings.solve_s += time.perf_counter() - start
            out.add_pool(pool, psol, choice)
    start = time.perf_counter()
    status = worst([g.status for g in out.groups])
    explanation = " ".join(g.explanation for g in out.groups if g.explanation)
    decision = Decision(
        protocol_id=protocol.id,
        protocol_version=protocol.version,
        kind=protocol.kind,
        status=status,
        proven_optimal=status.proven_optimal,
        explanation=explanation,
        transfers=out.transfers,
        capacity_assignments=out.assignments,
        purchase_shares=out.shares,
        fulfilment=out.fulfilment,
        groups=out.groups,
        requested_by_tier=_requested(out.fulfilment),
        total_cost=round(out.total_cost, 6),
        total_saving=round(sum(s.saving for s in out.shares), 6),
    )
    decision = decision.model_copy(update={"unmet_by_tier": unmet_by_tier(decision)})
    done = time.perf_counter()
    timings.extract_s += done - start
    timings.decision_s = done - called
    start = time.perf_counter()
    violations = None if checks is None else checks.result(decision)
    if violations is None:
        material_problems = [
            ctx for _, ctx in problems if isinstance(ctx, reallocation.MaterialProblem)
        ]
        violations = check_decision(snapshot, opt, protocol.scope, decision, material_problems)
    timings.invariants_s = time.perf_counter() - start
    if checks is not None:  # batches checked during the extraction
        timings.invariants_s += checks.seconds
        timings.extract_s -= checks.seconds
    if violations:
        decision = decision.model_copy(
            update={
                "status": SolveStatus.ERROR,
                "proven_optimal": False,
                "explanation": (explanation + " Invariant violated: " + "; ".join(violations[:5])),
            }
        )
    start = time.perf_counter()
    protocol_hash, snapshot_hash, snapshot_json = hashes or _input_hashes(protocol, snapshot)
    record = RunRecord(
        run_id=run_id,
        protocol_id=protocol.id,
        protocol_version=protocol.version,
        protocol_hash=protocol_hash,
        snapshot_hash=snapshot_hash,
        solver=choice.name,
        solver_version=solver_version(choice.name),
        parameters={
            "optimization": opt.model_dump(mode="json"),
            "time_limit_s": choice.time_limit_s,
            "mip_gap": choice.mip_gap,
        },
        fast_path=use_fast_path,
        decision_hash=decision.content_hash_with(out.serialised(decision)),
        status=decision.status,
    )
    timings.record_s += time.perf_counter() - start
    return RunResult(decision, record, timings, violations, snapshot_json)


_Context = reallocation.MaterialProblem | capacity.CapabilityProblem


def _problems_of(
    built: Iterator[_Context], contexts: list[_Context], timings: Timings
) -> Iterator[TransportProblem]:
    """The transport problems of ``built``, each context kept in ``contexts``; the time
    spent building them is added to ``timings.build_s``."""
    while True:
        start = time.perf_counter()
        ctx = next(built, None)
        timings.build_s += time.perf_counter() - start
        if ctx is None:
            return
        contexts.append(ctx)
        yield ctx.problem


def _capability_problems(
    snapshot: Scenario, opt: CapacityParameters, scope: Scope
) -> Iterator[capacity.CapabilityProblem]:
    yield from capacity.build_problems(snapshot, opt, scope)  # built on the first next()


def _input_hashes(protocol: Protocol, snapshot: Scenario) -> tuple[str, str, bytes]:
    """Protocol hash, snapshot hash and the snapshot's canonical JSON."""
    snapshot_json = snapshot.to_json_bytes()
    return sha256(protocol.to_json_bytes()), sha256(snapshot_json), snapshot_json


#: Solved materials whose orders are made in one :func:`reallocation.assign_many` call:
#: its array work once for all of them (per material it cost about as much as 20
#: orders; ~2 stacked LPs at 50 x 50, so extraction still follows the solver closely).
#: Fewer when the next solution is not ready yet: the orders pending are made (and
#: checked) instead of waiting, so fewer are left for after the last stack (paired at
#: 50 x 50, five runs of 60-120 alternating solves: 0-1.7 ms less, median ~1 ms).
EXTRACT_TOGETHER = 10


def _with_json(
    parts: list[bytes] | None, models: list[TransferOrder] | list[NeedFulfilment]
) -> list[bytes] | None:
    """``parts`` with the JSON of ``models`` added (None once a list could not be)."""
    if parts is not None and (data := presorted_list_json(models)) is not None:
        parts.append(data)
        return parts
    return None


def _group_outcome(problem: TransportProblem, sol: TransportSolution) -> GroupOutcome:
    return GroupOutcome(
        group=problem.group,
        status=sol.status,
        method=sol.method,
        explanation=sol.explanation,
        conflicting_rules=[
            problem.vocabulary.family(f, problem.options.min_fill) for f in sol.conflicting
        ],
    )


@dataclass
class _Outcome:
    """Orders, fulfilment and group outcomes collected problem by problem."""

    transfers: list[TransferOrder] = field(default_factory=list)
    assignments: list[CapacityAssignment] = field(default_factory=list)
    shares: list[PurchaseShare] = field(default_factory=list)
    fulfilment: list[NeedFulfilment] = field(default_factory=list)
    groups: list[GroupOutcome] = field(default_factory=list)
    total_cost: float = 0.0
    # solved materials whose orders are made together (reallocation.assign_many)
    pending: list[tuple[reallocation.MaterialProblem, TransportSolution]] = field(
        default_factory=list
    )
    # canonical JSON of the transfers and fulfilments, made batch by batch while later
    # problems are solved (for the decision hash; None: some were not serialised)
    transfers_json: list[bytes] | None = field(default_factory=list)
    fulfilment_json: list[bytes] | None = field(default_factory=list)
    # checks each batch of material orders as it is made (None: checked at the end)
    checks: BatchChecks | None = None

    def add_transport(
        self,
        problem: TransportProblem,
        ctx: reallocation.MaterialProblem | capacity.CapabilityProblem,
        sol: TransportSolution,
    ) -> None:
        """Add a solved problem; a material's orders may wait for :meth:`flush`."""
        if isinstance(ctx, reallocation.MaterialProblem):
            self.pending.append((ctx, sol))
            if len(self.pending) >= EXTRACT_TOGETHER:
                self.flush()
            return
        self.flush()
        self.groups.append(_group_outcome(problem, sol))
        self.fulfilment_json = None
        cap_orders, fills = capacity.assign(ctx, sol)
        self.assignments += cap_orders
        self.total_cost += sum(map(_COST, cap_orders))
        self.fulfilment += fills

    def flush(self) -> None:
        """Make the orders of the materials added since the last flush, in their order
        (the same orders, fulfilments and total cost as one material at a time)."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        orders, fills, ends = reallocation.assign_many(
            [ctx for ctx, _ in batch], [sol for _, sol in batch]
        )
        begin = 0
        for (ctx, sol), end in zip(batch, ends, strict=True):
            self.groups.append(_group_outcome(ctx.problem, sol))
            self.total_cost += sum(map(_COST, orders[begin:end]))
            begin = end
        self.transfers += orders
        self.fulfilment += fills
        self.transfers_json = _with_json(self.transfers_json, orders)
        self.fulfilment_json = _with_json(self.fulfilment_json, fills)
        if self.checks is not None:
            self.checks.add([ctx for ctx, _ in batch], orders, fills)

    def serialised(self, decision: Decision) -> dict[str, bytes]:
        """The canonical JSON of the decision's transfers and fulfilments made so far,
        for those lists that hold exactly what was serialised."""
        result = {}
        for name, parts, made in (
            ("transfers", self.transfers_json, self.transfers),
            ("fulfilment", self.fulfilment_json, self.fulfilment),
        ):
            if parts is not None and len(getattr(decision, name)) == len(made):
                result[name] = join_lists_json(parts)
        return result

    def add_pool(
        self, pool: purchasing.PoolProblem, psol: purchasing.PoolSolution, choice: SolverChoice
    ) -> None:
        self.groups.append(
            GroupOutcome(
                group=pool.material_id,
                status=psol.status,
                method=f"pulp/{choice.name}",
                explanation=psol.explanation,
                conflicting_rules=list(psol.conflicting),
            )
        )
        self.shares += psol.shares
        self.fulfilment_json = None
        self.fulfilment += purchasing.fulfilment(pool, psol)
        self.total_cost += sum(s.cost_pooled for s in psol.shares)


def _requested(fulfilment: list[NeedFulfilment]) -> dict[int, float]:
    result: dict[int, float] = {}
    for f in fulfilment:
        result[f.tier] = result.get(f.tier, 0.0) + f.requested
    return {t: round(v, 6) for t, v in sorted(result.items())}


class ReplayReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    identical: bool
    differences: list[str]
    decision_hash: str


def compare_records(original: RunRecord, again: RunRecord) -> list[str]:
    """What differs between a recorded run and its replay (empty: identical)."""
    differences = []
    for name in ("protocol_hash", "snapshot_hash", "solver", "parameters", "decision_hash"):
        before, after = getattr(original, name), getattr(again, name)
        if before != after:
            differences.append(f"{name}: recorded {before!r}, replay {after!r}")
    if original.solver_version != again.solver_version:
        differences.append(
            f"solver_version (informational): {original.solver_version} -> {again.solver_version}"
        )
    return differences


def replay(record: RunRecord, protocol: Protocol, snapshot: Scenario) -> ReplayReport:
    """Solve again from the recorded inputs and say whether the decision is identical."""
    again = solve(
        protocol,
        snapshot,
        solver=record.solver,
        run_id=record.run_id,
        use_fast_path=record.fast_path,
    )
    differences = compare_records(record, again.record)
    identical = again.record.decision_hash == record.decision_hash and not any(
        d.startswith(("protocol_hash", "snapshot_hash")) for d in differences
    )
    return ReplayReport(
        run_id=record.run_id,
        identical=identical,
        differences=differences,
        decision_hash=again.record.decision_hash,
    )
