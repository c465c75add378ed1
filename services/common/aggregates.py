"""Alliance-wide figures as k-anonymous aggregates, with complementary suppression (pure).

What is published
-----------------
For every material (and unit) one two-way table: regions x sectors. Each interior cell sums
the contributions of the partners of that region and sector; the margins are the region
totals, the sector totals and the material total. Every cell carries the same additive
measures (open need, surplus above safety stock, partners in shortage, ...).

Primary suppression
-------------------
A cell is *sensitive* when fewer than ``k`` distinct partners stand behind it (its
population) or behind one of its magnitudes (e.g. a surplus that only two partners have)
-- counted only when non-zero: a cell nobody is in is a known zero, not a secret.

Complementary suppression, and why it is enough
-----------------------------------------------
Write the table as an extended (R+1) x (C+1) array ``y`` with the margins negated
(``y[r, T] = -row total``, ``y[T, c] = -column total``, ``y[T, T] = +grand total``). Then
every row and every column of ``y`` sums to zero, and these are the only linear relations
among published figures. View the suppressed cells as edges of a bipartite graph between
the rows and the columns of ``y``.

*Claim:* a suppressed cell's value follows exactly from the published cells (by any linear
combination) if and only if its edge is a *bridge* of that graph (lies on no cycle).

- If the edge lies on a cycle (even, the graph is bipartite), adding +t, -t, +t, ... along
  the cycle keeps every row and column sum and every published cell, and changes the cell
  by t: the published figures are consistent with infinitely many values.
- If the edge is a bridge, take the side S of the cut it forms. The sum over the row
  vertices in S of their row equations and, separately, over the column vertices in S of
  their column equations both count every edge inside S once; they differ by exactly the
  bridge. So the bridge equals a combination of published figures.

The rule is therefore: **after primary suppression, while the suppressed-cell graph has a
bridge, close a cycle through it** by suppressing the cheapest path between its two ends
(already suppressed cells cost nothing, interior cells less than margins, the grand total
most; known zeros cannot be used). Adding edges never turns a cycle edge into a bridge,
so this ends; if no path exists the whole table is suppressed. The classic examples are
covered: a region total minus all but one of its sector cells (the cell is a bridge unless
a second cell of that row, or the total, is suppressed too), and a total minus all other
cells.

What it does not do (documented limits): bounds from non-negativity (a suppressed cell on a
cycle still has an interval, not a single value); differencing across time (two snapshots
one partner apart); a coalition of k-1 partners of one cell pooling their own figures.
``tests/unit/test_aggregates.py`` checks the claim against exact linear algebra.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

TOTAL = "*"  # the margin label for "all regions" / "all sectors"
DEFAULT_MIN_PARTNERS = 3
MIN_PARTNERS_ENV = "VERBUND_AGGREGATE_MIN_PARTNERS"

Cell = tuple[str, str]  # (region or TOTAL, sector or TOTAL)


def min_partners_from_env(environ: Mapping[str, str] | None = None) -> int:
    """k from ``VERBUND_AGGREGATE_MIN_PARTNERS`` (default 3); fails fast if it is not >= 2."""
    env = os.environ if environ is None else environ
    raw = env.get(MIN_PARTNERS_ENV, str(DEFAULT_MIN_PARTNERS))
    try:
        k = int(raw)
    except ValueError:
        raise ValueError(f"{MIN_PARTNERS_ENV} must be an integer, got {raw!r}") from None
    if k < 2:
        raise ValueError(f"{MIN_PARTNERS_ENV} must be at least 2, got {k}")
    return k


@dataclass(frozen=True)
class Contribution:
    """One partner's share of one material's figures (its region and sector from the
    alliance directory). Measures are additive: need, surplus, in_shortage (0/1), ..."""

    partner: str
    material: str
    unit: str
    region: str
    sector: str
    measures: Mapping[str, float]


@dataclass
class CellFigures:
    partners: set[str] = field(default_factory=set)
    totals: dict[str, float] = field(default_factory=dict)
    contributors: dict[str, set[str]] = field(default_factory=dict)

    def add(self, c: Contribution) -> None:
        self.partners.add(c.partner)
        for name, value in c.measures.items():
            self.totals[name] = self.totals.get(name, 0.0) + value
            if value:
                self.contributors.setdefault(name, set()).add(c.partner)
            else:
                self.contributors.setdefault(name, set())

    def sensitive(self, k: int) -> bool:
        counts = [len(self.partners)] + [len(s) for s in self.contributors.values()]
        return any(0 < n < k for n in counts)


@dataclass
class Table:
    """One material's regions x sectors table with margins, and which cells are suppressed."""

    material: str
    unit: str
    regions: list[str]
    sectors: list[str]
    cells: dict[Cell, CellFigures]
    primary: set[Cell]
    suppressed: set[Cell]

    def published(self, cell: Cell) -> bool:
        return cell not in self.suppressed

    def figure(self, cell: Cell, measure: str) -> float | None:
        """The published value of a cell's measure, or None if suppressed."""
        if cell in self.suppressed:
            return None
        return self.cells[cell].totals.get(measure, 0.0)


def build_tables(contributions: Iterable[Contribution], k: int) -> list[Table]:
    """Tables per (material, unit), primary and complementary suppression applied."""
    grouped: dict[tuple[str, str], list[Contribution]] = {}
    for c in contributions:
        grouped.setdefault((c.material, c.unit), []).append(c)
    return [
        table_of(material, unit, items, k) for (material, unit), items in sorted(grouped.items())
    ]


def table_of(material: str, unit: str, items: list[Contribution], k: int) -> Table:
    regions = sorted({c.region for c in items})
    sectors = sorted({c.sector for c in items})
    measures = sorted({name for c in items for name in c.measures})
    cells: dict[Cell, CellFigures] = {
        (r, s): CellFigures(totals=dict.fromkeys(measures, 0.0))
        for r in [*regions, TOTAL]
        for s in [*sectors, TOTAL]
    }
    for c in items:
        for r in (c.region, TOTAL):
            for s in (c.sector, TOTAL):
                cells[(r, s)].add(c)
    primary = {cell for cell, figures in cells.items() if figures.sensitive(k)}
    suppressed = complementary(cells, primary)
    return Table(material, unit, regions, sectors, cells, primary, suppressed)


def complementary(cells: Mapping[Cell, CellFigures], primary: set[Cell]) -> set[Cell]:
    """Suppressed cells such that no suppressed cell is a bridge (see module docstring)."""
    suppressed = set(primary)
    usable = {cell for cell, figures in cells.items() if figures.partners}
    while True:
        bridges = find_bridges(suppressed)
        if not bridges:
            return suppressed
        row, col = min(bridges)
        path = cheapest_path(row, col, usable, suppressed, exclude=(row, col))
        if path is None:
            return set(usable)  # nothing can close a cycle: publish nothing of this table
        suppressed.update(path)


def _cost(cell: Cell, suppressed: set[Cell]) -> int:
    if cell in suppressed:
        return 0
    r, s = cell
    return 1 + (r == TOTAL) + (s == TOTAL) * 1 + (r == TOTAL and s == TOTAL) * 2


def cheapest_path(
    row: str, col: str, usable: set[Cell], suppressed: set[Cell], exclude: Cell
) -> list[Cell] | None:
    """Cells forming a path from row ``row`` to column ``col`` (bipartite), cheapest first."""
    # vertices: ("r", label) and ("c", label)
    adjacency: dict[tuple[str, str], list[tuple[tuple[str, str], Cell]]] = {}
    for cell in sorted(usable):
        if cell == exclude:
            continue
        r, s = cell
        adjacency.setdefault(("r", r), []).append((("c", s), cell))
        adjacency.setdefault(("c", s), []).append((("r", r), cell))
    start, goal = ("r", row), ("c", col)
    best: dict[tuple[str, str], int] = {start: 0}
    back: dict[tuple[str, str], tuple[tuple[str, str], Cell]] = {}
    queue: list[tuple[int, tuple[str, str]]] = [(0, start)]
    while queue:
        dist, vertex = heapq.heappop(queue)
        if vertex == goal:
            path: list[Cell] = []
            while vertex != start:
                vertex, cell = back[vertex]
                path.append(cell)
            return path
        if dist > best.get(vertex, dist):
            continue
        for other, cell in adjacency.get(vertex, []):
            candidate = dist + _cost(cell, suppressed)
            if candidate < best.get(other, candidate + 1):
                best[other] = candidate
                back[other] = (vertex, cell)
                heapq.heappush(queue, (candidate, other))
    return None


def find_bridges(edges: set[Cell]) -> set[Cell]:
    """Bridges of the bipartite multigraph rows -- columns whose edges are ``edges``."""
    adjacency: dict[tuple[str, str], list[tuple[tuple[str, str], Cell]]] = {}
    for cell in sorted(edges):
        r, s = cell
        adjacency.setdefault(("r", r), []).append((("c", s), cell))
        adjacency.setdefault(("c", s), []).append((("r", r), cell))
    order: dict[tuple[str, str], int] = {}
    low: dict[tuple[str, str], int] = {}
    bridges: set[Cell] = set()
    for root in sorted(adjacency):
        if root in order:
            continue
        order[root] = low[root] = len(order)
        stack: list[tuple[tuple[str, str], Cell | None, int]] = [(root, None, 0)]
        while stack:
            vertex, via, index = stack[-1]
            neighbours = adjacency[vertex]
            if index < len(neighbours):
                stack[-1] = (vertex, via, index + 1)
                other, cell = neighbours[index]
                if cell == via:
                    continue
                if other in order:
                    low[vertex] = min(low[vertex], order[other])
                else:
                    order[other] = low[other] = len(order)
                    stack.append((other, cell, 0))
            else:
                stack.pop()
                if stack and via is not None:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[vertex])
                    if low[vertex] > order[parent]:
                        bridges.add(via)
    return bridges


def table_view(table: Table, measures: Iterable[str]) -> dict[str, object]:
    """JSON for a table: published figures, ``null`` where suppressed, no partner ids."""
    names = list(measures)

    def cell_json(cell: Cell) -> dict[str, object]:
        figures = table.cells[cell]
        if cell in table.suppressed:
            return {"suppressed": True, "partners": None} | dict.fromkeys(names)
        return {"suppressed": False, "partners": len(figures.partners)} | {
            name: round(figures.totals.get(name, 0.0), 6) for name in names
        }

    return {
        "material": table.material,
        "unit": table.unit,
        "total": cell_json((TOTAL, TOTAL)),
        "by_region": {r: cell_json((r, TOTAL)) for r in table.regions},
        "by_sector": {s: cell_json((TOTAL, s)) for s in table.sectors},
        "cells": [
            {"region": r, "sector": s} | cell_json((r, s))
            for r in table.regions
            for s in table.sectors
            if table.cells[(r, s)].partners
        ],
    }


# -- one-way tables: e.g. a decision's figures per criticality tier ----------------------------
def group_figures(
    rows: Iterable[tuple[str, str, Mapping[str, float]]], k: int
) -> dict[str, dict[str, float] | None]:
    """``(group, partner, measures)`` rows summed per group; ``None`` for a suppressed group.

    A group is sensitive under the same rule as a table cell (:meth:`CellFigures.sensitive`:
    fewer than ``k`` distinct partners behind it or behind one of its non-zero measures).
    The groups add up to a total that may be known elsewhere (a protocol's total need is
    close to a published aggregate), so a single suppressed group would follow from the
    others: then the smallest other group is suppressed too."""
    cells: dict[str, CellFigures] = {}
    for group, partner, measures in rows:
        cells.setdefault(group, CellFigures()).add(
            Contribution(partner, "", "", group, "", measures)
        )
    hidden = {group for group, figures in cells.items() if figures.sensitive(k)}
    if len(hidden) == 1:
        others = sorted((len(f.partners), g) for g, f in cells.items() if g not in hidden)
        if others:
            hidden.add(others[0][1])
    return {
        group: None if group in hidden else {n: round(v, 6) for n, v in figures.totals.items()}
        for group, figures in sorted(cells.items())
    }


# -- decision summaries for roles without the coordinator's need-to-know ---------------------
WITHHELD = "details for coordinators"
_GENERIC_EXPLANATIONS = {
    "optimal": "optimal",
    "time_limit": "time limit reached: the best plan found, not proven optimal",
    "infeasible": "infeasible: the protocol's rules cannot all be met together",
    "error": "error: no usable decision",
}
UNUSABLE = ("infeasible", "error")


def generic_explanation(status: str, explanation: str) -> str:
    """A decision's explanation as operators and auditors see it: the status in words, never
    the text itself (an infeasible decision's names quantities, partners' stock and prices
    appear in invariant violations). Empty stays empty unless the decision is unusable."""
    if not explanation and status not in UNUSABLE:
        return ""
    words = _GENERIC_EXPLANATIONS.get(status, status or "unknown status")
    return f"{words} ({WITHHELD})"


# run details without figures or names (services/coordinator/core.py writes them)
_PLAIN_DETAILS = tuple(
    re.compile(pattern)
    for pattern in (
        r"waiting for approval",
        r"solving",
        r"nothing to move",
        r"revision \d+: \d+ orders",
        r"all \d+ orders accepted",
        r"re-planning without \d+ order\(s\): (declined|no answer before the deadline)",
        r"gave up after \d+ revisions",
        r"solving again: revision \d+ was not published",
        r"approved by [^;:]+(; \d+ more needed)?",  # coordinators, listed as approvals anyway
    )
)
# a rejection names the coordinator; its free-text reason stays with coordinators
_REJECTED = re.compile(r"(rejected by [^:\s]+)(: .*)?", re.DOTALL)


def generic_run_detail(state: str, detail: str, decision_status: str | None = None) -> str:
    """A run's detail as operators and auditors see it. Only the texts that carry counts and
    nothing else pass; a failed run's detail (the decision's explanation, a solver error)
    becomes a generic text naming the status, anything else the run's state."""
    if any(pattern.fullmatch(detail) for pattern in _PLAIN_DETAILS):
        return detail
    rejected = _REJECTED.fullmatch(detail)
    if rejected is not None:
        return rejected.group(1)
    if state == "failed":
        if detail.startswith("solver error"):
            return f"failed: solver error ({WITHHELD})"
        if decision_status in UNUSABLE:
            return f"failed: the decision is {decision_status} ({WITHHELD})"
        return f"failed ({WITHHELD})"
    return state
