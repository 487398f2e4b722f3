"""`sparsetune inspect`: what a sparsetune file holds, as a dict, and a plot.

    sparsetune inspect mask.safetensors --plot mask.png

Every file kind summarises itself (`formats.FORMATS`: each format module's `summarise`).
For a mask the interesting question is *where* the selected entries sit; its summary
gives the totals and a per-layer × module-type table (embeddings, q/k/v, attention-out,
FFN in/out, LayerNorm, biases, pooler), and `--plot` draws that table as a heatmap (so
for scores and deltas); a run's log.jsonl plots as its loss with mask changes marked
(the paper's Figure 1, drawn by the report's own `experiments.figures`). A run dir that
has not finished (no run.json yet: interrupted, or still training) shows its checkpoint.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..errors import FileFormatError, UsageError
from ..formats import FORMATS
from ..formats.checkpoint import CHECKPOINT_DIR
from ..formats.common import file_kind
from ..io import atomic_path, check_not_an_input, check_writable, plot_format, refuse_to_overwrite
from ..run_lock import holder


def detect_kind(path: str | os.PathLike) -> str:
    """The kind of `path`; an error saying what the file is when it is no sparsetune file."""
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{path} does not exist or is not a file")
    for kind, module in FORMATS.items():
        if module.recognise(path):
            return kind
    if path.is_dir() and FORMATS["checkpoint"].recognise(path / CHECKPOINT_DIR):
        return "checkpoint"  # a run dir that has not finished: its checkpoint is what it holds
    if path.is_dir():
        raise FileFormatError(f"{path} is a folder but not a sparsetune run dir, checkpoint/ or method/")
    return file_kind(path)  # a safetensors file of another kind, or not one: the error says which


def inspect_file(path: str | os.PathLike, plot: str | os.PathLike | None = None, force: bool = False) -> dict:
    """Summary dict of any sparsetune file; with `plot`, also write its plot (a PNG)."""
    kind = detect_kind(path)
    if plot is not None:
        refuse_to_overwrite(plot, force, what="--plot")
        check_not_an_input(plot, [path], "--plot")
        plot_format(plot)  # a .jpg or .txt is refused before any work
        check_writable(plot, "--plot")
    source = Path(path)
    if kind == "checkpoint" and not FORMATS[kind].recognise(source):  # OUT/ of a run without run.json
        source = source / CHECKPOINT_DIR
    summary = {"file": str(path), "kind": kind, **FORMATS[kind].summarise(source)}
    if source != Path(path):
        summary["metadata"] = {"run": _unfinished(Path(path)), **summary.get("metadata", {})}
    if plot is not None:
        if kind in PLOTS:
            PLOTS[kind](summary, Path(plot))
        elif summary.get("table"):
            plot_heatmap(summary, Path(plot))
        elif "table" in summary:  # a delta of a method's own tensors: no pretrained entry changed
            raise UsageError(f"--plot: {path} changes no pretrained entry, so it has no per-layer table to draw")
        else:
            raise UsageError(
                f"--plot: a {kind} has no per-layer table to draw; plot a mask, scores, delta or log.jsonl"
            )
        summary["plot"] = str(plot)
    return summary


def _unfinished(run_dir: Path) -> str:
    """What a run dir without run.json is: still training (its lock is held), or interrupted."""
    pid = holder(run_dir)
    if pid is not None:
        return f"not finished: still training ({f'pid {pid}' if pid else 'another process'}); its last checkpoint"
    return f"interrupted (no run.json yet): its last checkpoint; continue with sparsetune train --resume -o {run_dir}"


def plot_log(summary: dict, path: Path) -> None:
    """A run's loss per step with its mask changes marked (Figure 1)."""
    from ..experiments.figures import projection_figure

    method = summary.get("metadata", {}).get("method", "training")
    projection_figure(summary["file"], path, title=str(method))


PLOTS = {"log": plot_log}  # kinds with a plot of their own; the others draw their table


# -- the heatmap -------------------------------------------------------------------
def plot_heatmap(summary: dict, path: Path) -> None:
    """Draw `summary["table"]` (rows × module types) as an annotated heatmap PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm, PowerNorm

    table = summary["table"]
    values = np.array(
        [[np.nan if v is None else v for v in row] for row in table["cells"]], dtype=float
    )  # [rows, cols]
    fraction = table["value"].endswith(" fraction")
    positive = values[np.isfinite(values) & (values > 0)]
    if fraction:
        norm = PowerNorm(gamma=0.4, vmin=0.0, vmax=max(float(np.nanmax(values)), 1e-12))  # small shares stay visible
    elif positive.size and positive.min() < positive.max():
        norm = LogNorm(vmin=positive.min(), vmax=positive.max())  # scores span orders of magnitude
    else:
        norm = None
    figure, axes = plt.subplots(figsize=(1.0 + 0.9 * len(table["columns"]), 1.2 + 0.45 * len(table["rows"])))
    image = axes.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto", norm=norm)
    axes.set_xticks(range(len(table["columns"])), table["columns"], rotation=40, ha="right")
    axes.set_yticks(range(len(table["rows"])), table["rows"])
    for (i, j), value in np.ndenumerate(values):
        if math.isfinite(value):
            text = f"{100 * value:.2g}%" if fraction else f"{value:.1e}"
            axes.text(
                j, i, text, ha="center", va="center", fontsize=7, color="white" if image.norm(value) < 0.6 else "black"
            )
    meta = summary.get("metadata", {})
    title = f"{Path(summary['file']).name}: {table['value']}"
    details = ", ".join(f"{key} {meta[key]}" for key in ("method", "task", "p", "scope") if key in meta)
    axes.set_title(f"{title}\n{details}" if details else title, fontsize=9)
    if fraction:  # the cells read in %, so does the colourbar
        from matplotlib.ticker import PercentFormatter

        figure.colorbar(
            image, ax=axes, label=table["value"].replace(" fraction", " (%)"), format=PercentFormatter(xmax=1.0)
        )
    else:
        figure.colorbar(image, ax=axes, label=table["value"])
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=plot_format(path), dpi=120)
    plt.close(figure)
