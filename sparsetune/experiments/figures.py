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

from ..io import atomic_path  # noqa: E402
from .report import Stability, SweepPoint  # noqa: E402


def _save(figure, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return Path(path)


def read_loss_log(path: str | os.PathLike) -> tuple[list[int], list[float], list[int]]:
    """(steps, losses, steps where the mask changed) from a run's log.jsonl."""
    from ..formats.schema import LOG_RECORD, read_json_lines

    steps, losses, changes = [], [], []
    for record in read_json_lines(path, LOG_RECORD, "sparsetune log.jsonl", allow_torn_tail=True):
        if "loss" in record:
            steps.append(int(record["step"]))
            losses.append(float(record["loss"]))
        if record.get("mask_changed"):
            changes.append(int(record["step"]))
    return steps, losses, changes


def projection_figure(log_path: str | os.PathLike, path: str | os.PathLike, title: str = "DiffPruning") -> Path:
    """Figure 1: loss per step, a dashed line at every mask change."""
    steps, losses, changes = read_loss_log(log_path)
    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.plot(steps, losses, linewidth=0.8, label="training loss")
    for index, step in enumerate(changes):
        axis.axvline(step, color="tab:red", linestyle="--", linewidth=0.6, label="mask change" if index == 0 else None)
    axis.set(xlabel="step", ylabel="loss", title=f"{title}: loss across mask changes")
    axis.legend(loc="best")  # the loss after a late projection sits in the upper right
    return _save(figure, path)


def stability_figure(stability: Stability, path: str | os.PathLike) -> Path:
    """Figure 2: one point per (method, task); ranks 1 = most stable / best."""
    figure, axis = plt.subplots(figsize=(5, 5))
    methods = sorted({point[0] for point in stability.points})
    for method in methods:
        xs = [point[2] for point in stability.points if point[0] == method]
        ys = [point[3] for point in stability.points if point[0] == method]
        axis.scatter(xs, ys, label=method, alpha=0.8)
    axis.set(
        xlabel="stability rank (1 = smallest std)",
        ylabel="performance rank (1 = best mean)",
        title=f"Spearman ρ = {stability.rho:.4f} (p = {stability.p_value:.3g})",
    )
    axis.legend(fontsize="small", ncol=2)
    return _save(figure, path)


def sweep_figure(points: list[SweepPoint], path: str | os.PathLike, method: str = "SAM") -> Path:
    """Figure 3: mean score and mean std over seeds against p."""
    figure, score_axis = plt.subplots(figsize=(6, 3.5))
    ps = [point.p for point in points]
    score_axis.plot(ps, [point.mean for point in points], marker="o", color="tab:blue", label="score")
    score_axis.set(xscale="log", xlabel="p (fraction of entries tuned)", ylabel="mean score ×100", title=f"{method} sparsity sweep")
    std_axis = score_axis.twinx()
    std_axis.plot(ps, [point.std for point in points], marker="s", color="tab:orange", label="std over seeds")
    std_axis.set_ylabel("std ×100")
    handles = score_axis.get_legend_handles_labels()[0] + std_axis.get_legend_handles_labels()[0]
    score_axis.legend(handles, ["score", "std over seeds"], loc="upper center", ncol=2)  # the curves cross mid-height
    return _save(figure, path)
