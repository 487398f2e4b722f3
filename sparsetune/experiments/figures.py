"""The paper's figures as PNGs (matplotlib, headless).

Figure 1: training loss of a projection method (DiffPruning) with its mask changes
marked: the "projection discontinuity". Figure 2: stability rank against performance
rank, with Spearman's ρ. Figure 3: SAM's score and spread against p (log x axis).

    sparsetune report results/example/results.jsonl -o results/example/
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from ..io import atomic_path, plot_format  # noqa: E402
from ..schema import read_log  # noqa: E402
from .report import Stability, SweepPoint  # noqa: E402


def _save(figure, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=plot_format(path), dpi=120, bbox_inches="tight")
    plt.close(figure)
    return Path(path)


MARKERS = "osD^vP*Xh<>p"  # one per task, so tasks stay apart in grey print too


def read_loss_log(path: str | os.PathLike) -> tuple[list[int], list[float], list[int]]:
    """(steps, losses, steps where the mask changed) from a run's log.jsonl."""
    steps, losses, changes = [], [], []
    for record in read_log(path):
        if "loss" in record:
            steps.append(int(record["step"]))
            losses.append(float(record["loss"]))
        if record.get("mask_changed"):
            changes.append(int(record["step"]))
    return steps, losses, changes


def read_dev_log(path: str | os.PathLike) -> tuple[list[int], list[float]]:
    """(steps, dev scores ×100) of the dev evaluations in a run's log.jsonl."""
    steps, scores = [], []
    for record in read_log(path):
        score = record.get("dev", {}).get("score") if isinstance(record.get("dev"), dict) else None
        if isinstance(score, (int, float)):
            steps.append(int(record["step"]))
            scores.append(100 * float(score))
    return steps, scores


def running_mean(values: list[float], window: int) -> list[float]:
    """Means of each `window` consecutive values (len(values) - window + 1 of them)."""
    sums = [0.0]
    for value in values:
        sums.append(sums[-1] + value)
    return [(sums[end] - sums[end - window]) / window for end in range(window, len(sums))]


def loss_title(changes: int) -> str:
    if not changes:
        return "training loss (no mask change)"
    return f"loss across {changes} mask change{'s' if changes != 1 else ''}"


def projection_figure(log_path: str | os.PathLike, path: str | os.PathLike, title: str = "DiffPruning") -> Path:
    """Figure 1: loss per step, a dashed line at every mask change; below it, on its own
    axis, the dev score at each evaluation (when the run evaluated)."""
    steps, losses, changes = read_loss_log(log_path)
    dev_steps, dev_scores = read_dev_log(log_path)
    rows = 2 if dev_steps else 1
    figure, axes = plt.subplots(
        rows,
        1,
        figsize=(7, 3.5 + 1.8 * (rows - 1)),
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [2, 1][:rows]},
    )
    loss_axis = axes[0][0]
    loss_axis.plot(steps, losses, linewidth=0.6, alpha=0.5, label="training loss")
    window = max(1, len(losses) // 40)
    if window > 1:  # one batch's loss is noisy; the running mean shows the trend (and any jump)
        loss_axis.plot(
            steps[window - 1 :],
            running_mean(losses, window),
            linewidth=1.5,
            color="tab:blue",
            label=f"running mean ({window} steps)",
        )
    for axis in axes[:, 0]:
        for index, step in enumerate(changes):
            axis.axvline(
                step,
                color="tab:red",
                linestyle="--",
                linewidth=0.6,
                label="mask change" if index == 0 and axis is loss_axis else None,
            )
    loss_axis.set(ylabel="loss", title=f"{title}: {loss_title(len(changes))}")
    loss_axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")  # beside the curve, never on it
    if dev_steps:
        dev_axis = axes[1][0]
        dev_axis.plot(dev_steps, dev_scores, marker="o", markersize=3, color="tab:green", label="dev score")
        dev_axis.set(ylabel="dev score ×100")
        dev_axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    axes[-1][0].set_xlabel("step")
    return _save(figure, path)


def stability_figure(stability: Stability, path: str | os.PathLike) -> Path:
    """Figure 2: one point per (method, task) of the methods run on every task, a colour
    per method and a marker per task; ranks 1 = most stable / best. The legends sit
    outside the axes."""
    figure, axis = plt.subplots(figsize=(7.5, 5), layout="constrained")
    methods = sorted({point[0] for point in stability.points})
    tasks = sorted({point[1] for point in stability.points})
    colours = {
        method: plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")(index) for index, method in enumerate(methods)
    }
    markers = {task: MARKERS[index % len(MARKERS)] for index, task in enumerate(tasks)}

    def nudge(index: int, count: int, width: float) -> float:  # equal ranks side by side, not on top
        return 0.0 if count < 2 else width * (index / (count - 1) - 0.5)

    for method, task, x, y in stability.points:
        axis.scatter(
            x + nudge(methods.index(method), len(methods), 0.3),
            y + nudge(tasks.index(task), len(tasks), 0.36),
            color=colours[method],
            marker=markers[task],
            s=40,
            alpha=0.85,
            edgecolors="black",
            linewidths=0.3,
        )
    whole = list(range(1, int(max(value for point in stability.points for value in point[2:]) + 0.5) + 1))
    axis.set_xticks(whole)
    axis.set_yticks(whole)
    axis.set(
        xlabel="stability rank (1 = smallest std over seeds; methods side by side)",
        ylabel="performance rank (1 = best mean; tasks side by side)",
        title=(
            f"Spearman ρ = {stability.rho:.4f} (one-sided permutation p = {stability.p_value:.3g})"
            f"\nthe {len(methods)} methods run on every task × {', '.join(tasks)}"
        ),
    )
    method_handles = [plt.Line2D([], [], color=colours[m], marker="o", linestyle="", label=m) for m in methods]
    task_handles = [plt.Line2D([], [], color="grey", marker=markers[t], linestyle="", label=t) for t in tasks]
    figure.legend(handles=method_handles, title="method", fontsize="small", loc="outside right upper")
    figure.legend(handles=task_handles, title="task", fontsize="small", loc="outside right lower")
    return _save(figure, path)


def sweep_figure(points: list[SweepPoint], path: str | os.PathLike, method: str = "SAM") -> Path:
    """Figure 3: above, each task's mean score with its std over seeds as error bars (and
    the mean over tasks); below, on its own axis, the std over seeds. Ticks at the p run."""
    from matplotlib.ticker import FixedLocator, NullLocator

    figure, (score_axis, std_axis) = plt.subplots(
        2, 1, figsize=(6.5, 5.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    ps = [point.p for point in points]
    tasks = sorted({row[0] for point in points for row in point.per_task})
    seeds = sorted({row[3] for point in points for row in point.per_task})
    for index, task in enumerate(tasks):
        rows = [(point.p, row) for point in points for row in point.per_task if row[0] == task]
        dodge = 1 + 0.06 * (index - (len(tasks) - 1) / 2)  # tasks' error bars side by side, not on top of each other
        score_axis.errorbar(
            [p * dodge for p, _ in rows],
            [row[1] for _, row in rows],
            yerr=[row[2] for _, row in rows],
            marker=MARKERS[index % len(MARKERS)],
            capsize=3,
            linewidth=0.8,
            alpha=0.8,
            label=task,
        )
        std_axis.plot(
            [p for p, _ in rows],
            [row[2] for _, row in rows],
            marker=MARKERS[index % len(MARKERS)],
            linewidth=0.8,
            alpha=0.8,
            label=task,
        )
    score_axis.plot(ps, [point.mean for point in points], color="black", linewidth=2, label="mean over tasks")
    std_axis.plot(ps, [point.std for point in points], color="black", linewidth=2, label="mean over tasks")
    seed_text = f"{seeds[0]} seeds" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]} seeds"
    score_axis.set(
        ylabel="score ×100 (± std)", title=f"{method} sparsity sweep: {', '.join(tasks)}; {seed_text} per point"
    )
    std_axis.set(xscale="log", xlabel="p (fraction of entries tuned)", ylabel="std over seeds ×100")
    std_axis.xaxis.set_major_locator(FixedLocator(ps))
    std_axis.xaxis.set_minor_locator(NullLocator())
    std_axis.set_xticklabels([f"{p:g}" for p in ps])
    score_axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return _save(figure, path)
