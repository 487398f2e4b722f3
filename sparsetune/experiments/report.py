"""The paper's evidence from a results file: Table 1, stability vs performance, the sweep.

The paper's Table 1 (mean ± std over seeds per method and task,
ranked per column), Figure 2 (the rank correlation between stability and performance,
Spearman ρ = 0.4356 in the paper) and Figure 3 (SAM's performance and stability
against p).

    sparsetune report results/example/results.jsonl -o results/example/

Conventions: scores are the test `score` ×100; std is the sample
standard deviation over seeds (ddof=1; 0 for a single seed); the Avg column is the
mean over tasks of the per-task means (and of the per-task stds); rank 1 is the best
mean, ties share the average rank. Stability: on each task, the methods run on every
task are ranked by std (rank 1 = smallest std) and by mean (rank 1 = best); ρ is
Spearman's over all (method, task) pairs of those two ranks, as in the paper, whose
table was complete. Only the complete methods, because a task with 10 methods ranks
1-10 on both axes and one with 4 ranks 1-4: pooled, ρ comes out positive with no
association within any task (on issue 15's partial table the null's mean was +0.35).
The p-value is a permutation test within tasks (each task's performance ranks shuffled,
its stability ranks kept): the pairs are ranks within tasks, not independent draws, so
scipy's p for ρ does not apply. Exact over every permutation when there are at most
`PERMUTATIONS` of them, else that many seeded draws.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata, spearmanr

from ..config import DEFAULT_SPARSITY
from .results import RunResult

PAPER_TASK_ORDER = ("cola", "stsb", "mrpc", "rte", "cb", "copa", "wsc")
AVERAGE = "avg"


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float
    seeds: int
    rank: float = math.nan


def _mean_std(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def in_table(result: RunResult, p: float | None) -> bool:
    """Dense methods (no p) always; sparse methods only at the table's p."""
    return result.p is None or p is None or math.isclose(result.p, p, rel_tol=1e-9)


FLOOR_ROW = "majority class (floor)"


@dataclass
class TableOne:
    methods: list[str]
    tasks: list[str]
    cells: dict[tuple[str, str], Cell]
    floors: dict[str, float] = field(default_factory=dict)  # task -> the trivial floor ×100 (experiments.floors)
    best_constants: dict[str, float] = field(default_factory=dict)  # task -> the best constant's score ×100

    @property
    def columns(self) -> list[str]:
        return self.tasks + [AVERAGE]

    def to_markdown(self) -> str:
        header = "| method | " + " | ".join(self.columns) + " |"
        lines = [header, "|---|" + "---:|" * len(self.columns)]
        for method in self.methods:
            row = []
            for column in self.columns:
                cell = self.cells.get((method, column))
                row.append("–" if cell is None else f"{cell.mean:.1f} ± {cell.std:.1f} ({cell.rank:g})")
            lines.append(f"| {method} | " + " | ".join(row) + " |")
        if self.floors:
            known = [self.floors[task] for task in self.tasks if task in self.floors]
            floors = {**self.floors, AVERAGE: float(np.mean(known))} if len(known) == len(self.tasks) else self.floors
            lines.append(
                f"| {FLOOR_ROW} | "
                + " | ".join("–" if column not in floors else f"{floors[column]:.1f}" for column in self.columns)
                + " |"
            )
        return "\n".join(lines) + "\n"


def table_one(
    results: list[RunResult], p: float | None = DEFAULT_SPARSITY, methods: list[str] | None = None
) -> TableOne:
    """Mean ± std of the test score ×100 per (method, task), an Avg column, per-column ranks."""
    chosen = [result for result in results if in_table(result, p)]
    methods = methods or list(dict.fromkeys(result.method for result in chosen))
    present = {result.task for result in chosen}
    tasks = [task for task in PAPER_TASK_ORDER if task in present] + sorted(present - set(PAPER_TASK_ORDER))
    cells: dict[tuple[str, str], Cell] = {}
    for method in methods:
        for task in tasks:
            scores = [100 * result.score for result in chosen if result.method == method and result.task == task]
            if scores:
                cells[(method, task)] = Cell(*_mean_std(scores), seeds=len(scores))
        row = [cells[(method, task)] for task in tasks if (method, task) in cells]
        if len(row) == len(tasks):
            cells[(method, AVERAGE)] = Cell(
                float(np.mean([c.mean for c in row])), float(np.mean([c.std for c in row])), min(c.seeds for c in row)
            )
    for column in tasks + [AVERAGE]:
        ranked = [method for method in methods if (method, column) in cells]
        ranks = rankdata([-round(cells[(method, column)].mean, 6) for method in ranked], method="average")
        for method, rank in zip(ranked, ranks):
            cell = cells[(method, column)]
            cells[(method, column)] = Cell(cell.mean, cell.std, cell.seeds, float(rank))
    return TableOne(methods, tasks, cells)


PERMUTATIONS = 20_000


@dataclass(frozen=True)
class Stability:
    """Per-task (stability rank, performance rank) pairs of the complete methods, their
    Spearman correlation, and its one-sided permutation p-values."""

    points: list[tuple[str, str, float, float]]  # (method, task, stability rank, performance rank)
    rho: float
    p_value: float  # P(ρ this large or larger | no association within any task)
    p_below: float = math.nan  # P(ρ this small or smaller | the same)


def stability_vs_performance(table: TableOne) -> Stability:
    complete = [m for m in table.methods if all((m, task) in table.cells for task in table.tasks)]
    points, blocks = [], []
    for task in table.tasks:
        # Round away float noise so that equal spreads (e.g. 10.0 vs 10.000000000000002) tie.
        spreads = [round(table.cells[(method, task)].std, 6) for method in complete]
        if len(set(spreads)) < 2:  # every spread equal (one seed: all 0): the task says nothing about stability
            continue
        stability = rankdata(spreads, method="average")
        performance = rankdata([-round(table.cells[(method, task)].mean, 6) for method in complete], method="average")
        points += [(m, task, float(a), float(b)) for m, a, b in zip(complete, stability, performance)]
        blocks.append((stability, performance))
    if len(points) < 3 or len({point[2] for point in points}) < 2 or len({point[3] for point in points}) < 2:
        return Stability(points, math.nan, math.nan)  # undefined: too few points, or a constant rank (one seed)
    rho = float(spearmanr([point[2] for point in points], [point[3] for point in points]).statistic)
    null = _permuted_rhos(blocks)
    above, below = int(np.sum(null >= rho - 1e-12)), int(np.sum(null <= rho + 1e-12))
    exact = len(null) < PERMUTATIONS  # every permutation, the observed one among them
    if exact:
        return Stability(points, rho, above / len(null), below / len(null))
    return Stability(points, rho, (above + 1) / (len(null) + 1), (below + 1) / (len(null) + 1))


def _permuted_rhos(blocks: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """ρ of the pooled pairs with each task's performance ranks permuted: all permutations
    when there are fewer than `PERMUTATIONS`, else `PERMUTATIONS` seeded draws."""
    stability = np.concatenate([a for a, _ in blocks])
    count = math.prod(math.factorial(len(b)) for _, b in blocks)
    if count < PERMUTATIONS:
        per_task = [np.array(list(itertools.permutations(b))) for _, b in blocks]
        grids = np.meshgrid(*[np.arange(len(options)) for options in per_task], indexing="ij")
        picks = [g.reshape(-1) for g in grids]
        performance = np.concatenate([options[pick] for options, pick in zip(per_task, picks)], axis=1)
    else:
        rng = np.random.default_rng(0)
        performance = np.concatenate([rng.permuted(np.tile(b, (PERMUTATIONS, 1)), axis=1) for _, b in blocks], axis=1)
    # Spearman's ρ is Pearson's on ranks of the pooled values (ties averaged), row by row.
    x = rankdata(stability)
    y = rankdata(performance, axis=1)
    x, y = x - x.mean(), y - y.mean(axis=1, keepdims=True)
    return (y @ x) / (np.sqrt((x**2).sum()) * np.sqrt((y**2).sum(axis=1)))


@dataclass(frozen=True)
class SweepPoint:
    p: float
    mean: float  # mean over tasks of the per-task mean score ×100
    std: float  # mean over tasks of the per-task std over seeds
    tasks: int
    per_task: tuple[tuple[str, float, float, int], ...] = ()  # (task, mean ×100, std over seeds, seeds)


def sweep_block(tasks_at: dict[float, set[str]]) -> tuple[set[str], list[float]]:
    """The tasks and p values of a sweep (Figure 3): the largest block of tasks × p in
    which every task ran at every p, among the tasks run at two or more p. Table 1's p
    runs on every task and the sweep on two, so the other tasks drop out; a p still
    missing a task (a sweep under way) drops out rather than shrink every point to fewer
    tasks; ties go to more p values. `experiments/check_report.py` mirrors this rule."""
    counts = Counter(task for tasks in tasks_at.values() for task in tasks)
    multi = {task for task, n in counts.items() if n >= 2} if len(tasks_at) > 1 else set(counts)
    best: tuple[int, int, set[str], list[float]] = (0, 0, set(), [])
    for p in sorted(tasks_at):
        tasks = tasks_at[p] & multi
        kept = [q for q in sorted(tasks_at) if tasks and tasks <= tasks_at[q]]
        if (len(tasks) * len(kept), len(kept)) > best[:2]:
            best = (len(tasks) * len(kept), len(kept), tasks, kept)
    return best[2], best[3]


def _scores_by_p(results: list[RunResult], method: str) -> dict[float, dict[str, list[float]]]:
    by_p: dict[float, dict[str, list[float]]] = {}
    for result in results:
        if result.method == method and result.p is not None:
            by_p.setdefault(result.p, {}).setdefault(result.task, []).append(100 * result.score)
    return by_p


def sparsity_sweep(results: list[RunResult], method: str = "sam") -> list[SweepPoint]:
    """Performance and stability of `method` at each p of its sweep block (`sweep_block`)."""
    by_p = _scores_by_p(results, method)
    swept, kept = sweep_block({p: set(tasks) for p, tasks in by_p.items()})
    points = []
    for p in kept:
        rows = sorted((task, scores) for task, scores in by_p[p].items() if task in swept)
        per_task = tuple((task, *_mean_std(scores), len(scores)) for task, scores in rows)
        points.append(
            SweepPoint(
                p,
                float(np.mean([m for _, m, _, _ in per_task])),
                float(np.mean([s for _, _, s, _ in per_task])),
                len(per_task),
                per_task,
            )
        )
    return points


def sweep_left_out(results: list[RunResult], method: str = "sam") -> list[tuple[float, list[str]]]:
    """The p values `method` ran at that its sweep leaves out, each with its tasks."""
    by_p = _scores_by_p(results, method)
    _, kept = sweep_block({p: set(tasks) for p, tasks in by_p.items()})
    return [(p, sorted(by_p[p])) for p in sorted(by_p) if p not in kept] if len(kept) >= 2 else []


@dataclass(frozen=True)
class TimeSpent:
    """Wall time of the runs per (method, task), in minutes: what a grid cost, and where.

    `seconds` of a results line is scoring + training + the test evaluation of one run
    (training summed over the attempts of a resumed run), measured with the machine
    shared by `--jobs` runs, so it is the cost as run, not an isolated benchmark."""

    methods: list[str]
    tasks: list[str]
    minutes: dict[tuple[str, str], tuple[int, float]]  # (method, task) -> (runs, total minutes)
    untimed: int  # lines without seconds

    def to_markdown(self) -> str:
        """Total minutes (runs × mean minutes per run) per cell, with row and column totals."""

        def cell(pairs: list[tuple[int, float]]) -> str:
            runs, total = sum(r for r, _ in pairs), sum(t for _, t in pairs)
            return f"{total:.0f} ({runs} × {total / runs:.1f})" if runs else "–"

        grid = {m: [self.minutes.get((m, t), (0, 0.0)) for t in self.tasks] for m in self.methods}
        lines = ["| method | " + " | ".join(self.tasks) + " | total |", "|---|" + "---:|" * (len(self.tasks) + 1)]
        for method, row in grid.items():
            lines.append(f"| {method} | " + " | ".join(cell([pair]) for pair in row) + f" | {cell(row)} |")
        columns = [[grid[m][i] for m in self.methods] for i in range(len(self.tasks))]
        every = [pair for row in grid.values() for pair in row]
        lines.append("| total | " + " | ".join(cell(column) for column in columns) + f" | {cell(every)} |")
        return "\n".join(lines) + "\n"


def time_spent(results: list[RunResult]) -> TimeSpent:
    """Minutes per (method, task) over every run with a time (all p, all seeds)."""
    timed = [result for result in results if result.seconds is not None]
    methods = list(dict.fromkeys(result.method for result in timed))
    present = {result.task for result in timed}
    tasks = [task for task in PAPER_TASK_ORDER if task in present] + sorted(present - set(PAPER_TASK_ORDER))
    minutes: dict[tuple[str, str], tuple[int, float]] = {}
    for result in timed:
        runs, total = minutes.get((result.method, result.task), (0, 0.0))
        minutes[(result.method, result.task)] = (runs + 1, total + result.seconds / 60)
    return TimeSpent(methods, tasks, minutes, len(results) - len(timed))
