"""`sparsetune report`: results file -> report.md + the paper's figures as PNGs.

sparsetune report results/example/results.jsonl -o results/example/
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..config import DEFAULT_SPARSITY
from ..errors import FileFormatError, OutputError
from ..formats.log import LOG_FILE
from ..formats.mask import check_fraction
from ..formats.run_record import RunRecord, is_run_dir
from ..io import check_writable, output_error, refuse_to_overwrite
from ..methods import METHODS
from . import figures
from .claims import ALPHA, claims_markdown, paper_claims
from .floors import constant_floors
from .report import (
    FLOOR_ROW,
    Stability,
    TableOne,
    TimeSpent,
    sparsity_sweep,
    stability_vs_performance,
    sweep_left_out,
    table_one,
    time_spent,
)
from .results import RunResult, read_results
from .selection import Setting, choices_markdown, choose_on_dev

FIGURE1_METHOD = "diffpruning"  # the paper's Figure 1 shows DiffPruning's loss


def projection_methods() -> list[str]:
    """The registered methods whose result is projected (`TrainingMethod.projects`), the
    paper's Figure 1 method first."""
    return sorted((name for name, cls in METHODS.items() if cls.projects), key=lambda name: name != FIGURE1_METHOD)


@dataclass
class Report:
    table: TableOne
    stability: Stability
    sweep: list
    choices: list[Setting]
    markdown: str
    files: list[Path] = field(default_factory=list)


def projection_log(results: list[RunResult]) -> tuple[str, Path] | None:
    """The log for Figure 1: of the projection-method runs (DiffPruning before
    ChildPruning), the one whose mask changed most often while training, so that a short
    run that only projected at its end does not hide a longer one that shows the jumps."""
    for method in projection_methods():
        best: tuple[int, str, Path] | None = None
        for result in results:
            run_dir = Path(result.run_dir)
            log = run_dir / LOG_FILE
            if is_run_dir(run_dir) and RunRecord.load(run_dir).method == method and log.is_file():
                changes = len(figures.read_loss_log(log)[2])
                if best is None or changes > best[0]:
                    best = (changes, f"{result.method} ({result.task}, seed {result.seed})", log)
        if best is not None:
            return best[1], best[2]
    return None


def _markdown(
    source: str,
    table: TableOne,
    stability: Stability,
    sweep,
    choices: list[Setting],
    p: float | None,
    runs: int,
    spent: TimeSpent,
    left_out: list[tuple[float, list[str]]] | None = None,
) -> str:
    lines = [
        "# sparsetune report",
        "",
        f"From `{source}` ({runs} runs). Scores are the test (official validation) `score` ×100, "
        "mean ± sample std over seeds, (rank) per column; Avg = mean over tasks.",
        "",
        f"## Table 1 (sparse methods at p = {p:g})" if p is not None else "## Table 1",
        "",
        table.to_markdown(),
        *(
            [
                f"The last row, {FLOOR_ROW}, is what always answering the train part's most frequent label "
                "scores on the test set (0 for STS-B's correlations): a method at or below it learned nothing."
                + _better_constants(table),
                "",
            ]
            if table.floors
            else []
        ),
        "## Stability vs performance (Figure 2)",
        "",
        f"Spearman ρ between per-task stability ranks (by std) and performance ranks (by mean) of the methods "
        f"run on every task, over {len(stability.points)} (method, task) pairs: **ρ = {stability.rho:.4f}** "
        f"(one-sided permutation p-value {stability.p_value:.3g}, each task's ranks shuffled). "
        "The paper reports ρ = 0.4356 (ten methods on seven tasks).",
        "",
    ]
    if len(sweep) >= 2:  # one p is no sweep
        lines += ["## Sparsity sweep (Figure 3)", "", "| p | mean score | mean std | tasks |", "|---:|---:|---:|---:|"]
        lines += [f"| {point.p:g} | {point.mean:.1f} | {point.std:.1f} | {point.tasks} |" for point in sweep]
        tasks = ", ".join(task for task, *_ in sweep[0].per_task)
        lines += ["", f"Means over the tasks run at every p shown: {tasks}."]
        if left_out:
            dropped = "; ".join(f"p = {value:g} (run on {', '.join(ran)})" for value, ran in left_out)
            lines.append(f"Left out, for missing one of them: {dropped}.")
        lines.append("")
    if len(table.methods) >= 2 and not choices:  # a sweep's table compares settings, not the paper's methods
        claims = paper_claims(table, stability, sweep)
        lines += [
            "## The paper's claims, measured",
            "",
            "Each verdict is computed from the table above (`sparsetune.experiments.claims`): *holds* or *does not "
            "hold* when the difference is beyond the noise of this many seeds (one-sided, 5%), else *cannot tell*. "
            f"The {len(claims)} claims are tested at 5% each, with no correction for multiple comparisons (Holm's "
            f"would ask {ALPHA / len(claims):.3g} of the smallest p).",
            "",
            claims_markdown(claims),
        ]
    if choices:
        lines += [
            "## Hyperparameters chosen on dev",
            "",
            "Best dev score ×100 (the held-out part of train; never the test set), mean over seeds; "
            "the chosen setting of each method has the best mean over tasks.",
            "",
            choices_markdown(choices),
        ]
    if spent.minutes:
        untimed = f" {spent.untimed} line(s) without a time are not counted." if spent.untimed else ""
        lines += [
            "## Time spent",
            "",
            "Wall minutes per method and task, over every run of the results file (all p and seeds): total "
            "(runs × mean per run). A run's time is scoring + training (summed over the attempts of a resumed "
            "run) + the test evaluation, on the machine as it was shared by `--jobs` runs. A run resumed after "
            "its mask was scored reuses the mask and leaves its scoring time out, and results lines written "
            "before checkpoints kept the time (session 6) count a resumed run's last attempt only." + untimed,
            "",
            spent.to_markdown(),
        ]
    return "\n".join(lines)


REPORT_FILES = ("report.md", "figure1_projection.png", "figure2_stability.png", "figure3_sparsity.png")


def _better_constants(table) -> str:
    """The tasks whose best constant answer beats the majority floor, in words."""
    better = [
        f"{task} {table.best_constants[task]:.1f}"
        for task in table.tasks
        if task in table.floors and table.best_constants.get(task, -math.inf) > table.floors[task] + 0.05
    ]
    if not better:
        return ""
    return (
        " Above it is not yet learning: on near-balanced tasks the other constant answer scores more on the "
        f"test set ({', '.join(better)}), a bar chosen on the test set itself."
    )


def write_report(
    results_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    p: float | None = DEFAULT_SPARSITY,
    sweep_method: str = "SAM",
    data_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> Report:
    """Compute everything from the results file and write report.md and figure PNGs.

    With the tasks' data (`data_dir`, or $SPARSETUNE_DATA_DIR), Table 1 gains the row of
    each task's trivial floor (`experiments.floors`). An existing report is replaced only
    with `force`. The files are written to a staging folder and moved into place
    together: a failure (a full disk) leaves the previous report, or no new file."""
    if p is not None:
        check_fraction(p, "-p")
    from ..data import resolve_data_dir

    resolve_data_dir(data_dir)  # named (flag or environment) but not a folder: an error, not a silent lack of floors
    output = Path(output_dir)
    for name in REPORT_FILES:
        refuse_to_overwrite(output / name, force)
    check_writable(output, "-o", folder=True)
    results = read_results(results_path)
    if not results:
        raise FileFormatError(
            f"results file {results_path} holds no finished run; `sparsetune grid CONFIG -o {results_path}` writes them"
        )
    counts = Counter(result.run_id for result in results)
    repeated = next((run_id for run_id, count in counts.items() if count > 1), None)
    if repeated is not None:  # counted twice, a run would be two seeds and shrink its std
        raise FileFormatError(
            f"results file {results_path} holds run {repeated} {counts[repeated]} times; keep one line per run"
        )
    existed = output.exists()
    try:
        output.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".report.", dir=output))
    except OSError as err:
        raise output_error(output, err) from None
    try:
        report = _write_report(results, results_path, staging, p, sweep_method, data_dir)
        for path in report.files:
            os.replace(path, output / path.name)
    except OSError as err:
        if not existed:
            shutil.rmtree(output, ignore_errors=True)
        raise output_error(output, err) from None
    except OutputError as err:
        if not existed:
            shutil.rmtree(output, ignore_errors=True)
        raise OutputError(f"cannot write the report in {output}: {getattr(err, 'reason', err)}") from None
    except BaseException:
        if not existed:
            shutil.rmtree(output, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.files = [output / path.name for path in report.files]
    return report


def _write_report(results: list[RunResult], results_path, output: Path, p, sweep_method, data_dir) -> Report:
    """Everything `write_report` computes, its files written to `output` (the staging folder)."""
    table = table_one(results, p)
    constants = {task: floors for task in table.tasks if (floors := constant_floors(task, data_dir)) is not None}
    table.floors = {task: majority for task, (majority, _) in constants.items()}
    table.best_constants = {task: best for task, (_, best) in constants.items()}
    stability = stability_vs_performance(table)
    sweep = sparsity_sweep(results, sweep_method)
    choices = choose_on_dev(results)
    spent, left_out = time_spent(results), sweep_left_out(results, sweep_method)
    markdown = _markdown(str(results_path), table, stability, sweep, choices, p, len(results), spent, left_out)
    report = Report(table, stability, sweep, choices, markdown)
    (output / "report.md").write_text(markdown, encoding="utf-8")
    report.files.append(output / "report.md")
    if len(stability.points) >= 3 and not math.isnan(stability.rho):  # no figure of an undefined ρ (one seed)
        report.files.append(figures.stability_figure(stability, output / "figure2_stability.png"))
    if len(sweep) >= 2:
        report.files.append(figures.sweep_figure(sweep, output / "figure3_sparsity.png", sweep_method))
    found = projection_log(results)
    if found is not None:
        report.files.append(figures.projection_figure(found[1], output / "figure1_projection.png", found[0]))
    return report
