"""Check a published report against the runs' own run.json files.

    python experiments/check_report.py results/example/results.jsonl results/example/report.md

`sparsetune report` reads only the results file; this script reads only the run dirs
(each run's run.json, written by `sparsetune train` and `sparsetune eval`) and recomputes
Table 1 and Spearman's ρ with the standard library, so that a bug in the grid's result
lines or in the report's arithmetic shows up as a mismatch. Exit status 1 on any.

It checks, for every line of the results file: the run dir exists, its run.json names
the same task and seed, and its test (validation) and best dev scores equal the line's.
Then every Table 1 cell (mean ± std, rank), the ρ and the sparsity-sweep rows (of the
method labelled SAM, the report's default) printed in report.md, and the numbers behind
the verdicts: SAM's gap to the rival it names, with its standard error and Welch's
degrees of freedom, and every pooled std with its degrees of freedom. Not the p-values:
they need the t and F distributions (or, for ρ, the report's permutations), which the
standard library lacks; they follow from the numbers checked.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import NamedTuple

CELL = re.compile(r"^(-?[\d.]+) ± ([\d.]+) \(([\d.]+)\)$")
SWEEP_ROW = re.compile(r"^\| ([\d.e-]+) \| ([\d.]+) \| ([\d.]+) \| (\d+) \|$", re.M)
SWEEP_METHOD = "SAM"  # the report's default --sweep-method


class FromDisk(NamedTuple):
    table: dict[tuple[str, str], list[float]]  # (method label, task) -> test scores ×100 of Table 1's runs
    sweep: dict[float, dict[str, list[float]]]  # p -> task -> SAM's test scores ×100
    problems: list[str]
    checked: int


def off(printed: float, computed: float) -> bool:
    """Whether a number printed to one decimal is not `computed` rounded."""
    return abs(printed - computed) > 0.05 + 1e-9


def average_ranks(values: dict[str, float], reverse: bool) -> dict[str, float]:
    """Rank 1 for the best (largest if `reverse`), ties share the mean of their ranks."""
    ordered = sorted(values, key=lambda key: values[key], reverse=reverse)
    ranks: dict[str, float] = {}
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and round(values[ordered[end + 1]], 6) == round(values[ordered[start]], 6):
            end += 1
        for key in ordered[start : end + 1]:
            ranks[key] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(xs: list[float], ys: list[float]) -> float:
    """Pearson's r of the pooled ranks (ties averaged); nan when a side is constant. The
    per-task ranks repeat across tasks, so they must be ranked again, not used as they are."""
    rank_x = average_ranks(dict(enumerate(xs)), reverse=False)
    rank_y = average_ranks(dict(enumerate(ys)), reverse=False)
    try:
        return statistics.correlation([rank_x[i] for i in range(len(xs))], [rank_y[i] for i in range(len(ys))])
    except statistics.StatisticsError:  # fewer than two points, or a constant side: undefined
        return math.nan


def runs_from_disk(results_file: Path, table_p: str) -> FromDisk:
    """Test scores ×100 read from run.json: of Table 1's runs (dense, or at `table_p`, e.g.
    "p0.005") and of SAM's sweep; the mismatches of every run with its results line."""
    scores: dict[tuple[str, str], list[float]] = {}
    sweep: dict[float, dict[str, list[float]]] = {}
    problems = []
    checked = 0
    for line in results_file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        result = json.loads(line)
        run_json = Path(result["run_dir"]) / "run.json"
        if not run_json.is_file():
            problems.append(f"{result['run_id']}: no {run_json}")
            continue
        record = json.loads(run_json.read_text(encoding="utf-8"))
        checked += 1
        label, task, p, _ = result["run_id"].split("/")
        test = record["metrics"]["validation"]["score"]
        checks = {
            "task": (record["task"], task),
            "seed": (record["seed"], result["seed"]),
            "test score": (test, result["test"]["score"]),
            "best dev score": (record["best"].get("score"), result["dev"].get("score")),
        }
        problems += [
            f"{result['run_id']}: {name} {ours!r} in run.json, {theirs!r} in the results file"
            for name, (ours, theirs) in checks.items()
            if ours != theirs
        ]
        if p in ("dense", table_p):
            scores.setdefault((label, task), []).append(100 * test)
        if label == SWEEP_METHOD and p != "dense":
            sweep.setdefault(float(p[1:]), {}).setdefault(task, []).append(100 * test)
    return FromDisk(scores, sweep, problems, checked)


def table_from_report(report: Path) -> tuple[str, list[str], dict[tuple[str, str], tuple[float, float, float]], float]:
    """Table 1's p (as in run ids), columns, cells (mean, std, rank) and ρ as printed in report.md."""
    text = report.read_text(encoding="utf-8")
    heading = re.search(r"## Table 1 \(sparse methods at p = ([\d.e-]+)\)", text)
    rho_line = re.search(r"ρ = (-?[\d.]+|nan)\*\*", text)
    if heading is None or rho_line is None:
        raise ValueError(f"{report} is not a `sparsetune report` report.md (no Table 1 at a p, or no ρ)")
    table_p = "p" + heading.group(1)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    columns = [cell.strip() for cell in rows[0].strip("|").split("|")][1:]
    cells = {}
    for row in rows[1:]:
        parts = [cell.strip() for cell in row.strip("|").split("|")]
        if len(parts) != len(columns) + 1:
            break  # the end of Table 1
        for column, cell in zip(columns, parts[1:]):
            match = CELL.match(cell)
            if match:
                cells[(parts[0], column)] = tuple(float(group) for group in match.groups())
    return table_p, columns, cells, float(rho_line.group(1))


def check(results_file: Path, report: Path) -> list[str]:
    table_p, columns, printed, printed_rho = table_from_report(report)
    scores, sweep, problems, checked = runs_from_disk(results_file, table_p)
    tasks = [column for column in columns if column != "avg"]
    methods = list(dict.fromkeys(label for label, _ in printed))
    computed: dict[tuple[str, str], tuple[float, float]] = {}
    for method in methods:
        for task in tasks:
            values = scores.get((method, task), [])
            if values:
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                computed[(method, task)] = (statistics.fmean(values), std)
        if all((method, task) in computed for task in tasks):
            computed[(method, "avg")] = (
                statistics.fmean(computed[(method, task)][0] for task in tasks),
                statistics.fmean(computed[(method, task)][1] for task in tasks),
            )
    for column in columns:
        ranks = average_ranks({m: computed[(m, column)][0] for m in methods if (m, column) in computed}, reverse=True)
        for method, rank in ranks.items():
            mean, std = computed[(method, column)]
            shown = printed.get((method, column))
            if shown is None:
                problems.append(f"Table 1 {method}/{column}: missing from the report")
            elif off(shown[0], mean) or off(shown[1], std) or shown[2] != rank:
                problems.append(
                    f"Table 1 {method}/{column}: report {shown}, run.json gives ({mean:.2f}, {std:.2f}, {rank:g})"
                )
    stability, performance = [], []
    complete = [m for m in methods if all((m, task) in computed for task in tasks)]  # the report ranks only these
    for task in tasks:
        present = complete
        if len({round(computed[(m, task)][1], 6) for m in present}) < 2:
            continue  # every spread equal (one seed): no stability ranks on this task
        by_std = average_ranks({m: computed[(m, task)][1] for m in present}, reverse=False)
        by_mean = average_ranks({m: computed[(m, task)][0] for m in present}, reverse=True)
        stability += [by_std[m] for m in present]
        performance += [by_mean[m] for m in present]
    rho = spearman(stability, performance)
    if not (math.isnan(rho) and math.isnan(printed_rho)) and not abs(rho - printed_rho) <= 5e-5:
        problems.append(f"Spearman ρ: report {printed_rho}, run.json gives {rho:.4f}")
    text = report.read_text(encoding="utf-8")
    sweep_problems, rows = check_sweep(text, sweep)
    claim_problems, numbers = check_claims(text, scores, tasks)
    problems += sweep_problems + claim_problems
    cells = sum(1 for key in computed if key[1] in columns)
    print(
        f"checked {checked} runs, {cells} Table 1 cells, ρ = {rho:.4f}, {rows} sweep rows and {numbers} "
        f"numbers behind the verdicts against run.json: {len(problems)} mismatches"
    )
    return problems


def sweep_block(tasks_at: dict[float, set[str]]) -> tuple[set[str], list[float]]:
    """The report's rule, written again: the largest block of tasks × p in which every task
    ran at every p, among the tasks run at two or more p; ties go to more p values."""
    counts: dict[str, int] = {}
    for tasks in tasks_at.values():
        for task in tasks:
            counts[task] = counts.get(task, 0) + 1
    multi = {task for task, n in counts.items() if n >= 2 or len(tasks_at) == 1}
    best = (0, 0, set(), [])
    for p in sorted(tasks_at):
        tasks = tasks_at[p] & multi
        kept = [q for q in sorted(tasks_at) if tasks and tasks <= tasks_at[q]]
        if (len(tasks) * len(kept), len(kept)) > best[:2]:
            best = (len(tasks) * len(kept), len(kept), tasks, kept)
    return best[2], best[3]


def check_sweep(text: str, sweep: dict[float, dict[str, list[float]]]) -> tuple[list[str], int]:
    """The sparsity-sweep rows (mean over the sweep's tasks of the per-task mean and std)
    against run.json: (problems, rows checked)."""
    printed = {float(p): (float(mean), float(std), int(tasks)) for p, mean, std, tasks in SWEEP_ROW.findall(text)}
    swept, kept = sweep_block({p: set(per_task) for p, per_task in sweep.items()})
    kept = kept if len(kept) > 1 else []  # one p is no sweep: the report prints none
    expected = {p: {t: v for t, v in sweep[p].items() if t in swept} for p in kept}
    problems = [f"sweep p={p:g}: in the report, not in run.json" for p in sorted(set(printed) - set(expected))]
    for p, per_task in sorted(expected.items()):
        means = [statistics.fmean(values) for values in per_task.values()]
        stds = [statistics.stdev(values) if len(values) > 1 else 0.0 for values in per_task.values()]
        mean, std = statistics.fmean(means), statistics.fmean(stds)
        shown = printed.get(p)
        if shown is None or off(shown[0], mean) or off(shown[1], std) or shown[2] != len(means):
            problems.append(f"sweep p={p:g}: report {shown}, run.json gives ({mean:.2f}, {std:.2f}, {len(means)})")
    return problems, len(expected)


SAM_CLAIM = re.compile(
    r"\| SAM is best on average \| \*\*[^*]+\*\* \| (\S+) (-?[\d.]+) \(rank [\d.]+\) vs "
    r"(?:the closest other|a better one), (\S+), (-?[\d.]+): gap ([+-][\d.]+) ± ([\d.]+) "
    r"\(standard error\), one-sided p = [\d.e-]+ \(Welch t, ([\d.]+) d\.o\.f\.\)"
)
POOLED = re.compile(r"pooled std over seeds: (.+?) ([\d.]+) \((\d+) d\.o\.f\.\) vs (\S+) ([\d.]+) \((\d+) d\.o\.f\.\)")


def check_claims(text: str, scores: dict[tuple[str, str], list[float]], tasks: list[str]) -> tuple[list[str], int]:
    """The numbers behind the verdicts, recomputed from run.json: (problems, numbers checked)."""
    problems, checked = [], 0

    def variances(method: str) -> list[tuple[float, int]]:
        return [(statistics.variance(scores[(method, t)]), len(scores[(method, t)])) for t in tasks]

    sam = SAM_CLAIM.search(text)
    if sam is not None:
        name, rival = sam.group(1), sam.group(3)
        parts = [var / n / len(tasks) ** 2 for method in (name, rival) for var, n in variances(method)]
        seeds = [n for method in (name, rival) for _, n in variances(method)]
        gap = statistics.fmean(statistics.fmean(scores[(name, t)]) for t in tasks) - statistics.fmean(
            statistics.fmean(scores[(rival, t)]) for t in tasks
        )
        se = math.sqrt(sum(parts))
        dof = sum(parts) ** 2 / sum(part**2 / (n - 1) for part, n in zip(parts, seeds))
        printed = (float(sam.group(5)), float(sam.group(6)), float(sam.group(7)))
        if abs(printed[0] - gap) > 0.005 + 1e-9 or abs(printed[1] - se) > 0.005 + 1e-9 or abs(printed[2] - dof) > 0.05:
            problems.append(
                f"SAM's claim: report gap, se, d.o.f. {printed}, run.json gives ({gap:.2f}, {se:.2f}, {dof:.1f})"
            )
        checked += 3
    for match in POOLED.finditer(text):
        pooled = [name.strip() for name in match.group(1).split(" (")[0].split(",")]
        for group, (std, dof) in ((pooled, match.group(2, 3)), ([match.group(4)], match.group(5, 6))):
            cells = [cell for method in group for cell in variances(method)]
            freedom = sum(n - 1 for _, n in cells)
            value = math.sqrt(sum(var * (n - 1) for var, n in cells) / freedom)
            if abs(float(std) - value) > 0.005 + 1e-9 or int(dof) != freedom:
                problems.append(
                    f"pooled std of {', '.join(group)}: report ({std}, {dof}), run.json gives ({value:.2f}, {freedom})"
                )
            checked += 2
    return problems, checked


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python experiments/check_report.py RESULTS.jsonl REPORT.md", file=sys.stderr)
        return 2
    try:
        problems = check(Path(argv[0]), Path(argv[1]))
    except (OSError, ValueError, KeyError) as err:  # json.JSONDecodeError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"MISMATCH {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
