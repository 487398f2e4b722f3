"""The library side of `sparsetune inspect`: what a sparsetune file holds, as a dict and a heatmap.

    sparsetune inspect mask.safetensors --plot mask.png

For a mask (Fu et al. 2023, arXiv 2211.15583) the interesting question is *where* the
selected entries sit; the summary gives the totals and a per-layer × module-type table
(embeddings, q/k/v, attention-out, FFN in/out, LayerNorm, biases, pooler), and `--plot`
draws that table as a heatmap. Each file kind has one summariser in `SUMMARISERS`; a new
kind (delta, a training log) is one function registered with `register_kind`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

from ..errors import FileFormatError
from ..formats.common import file_kind
from ..formats.mask import Mask
from ..formats.scores import Scores
from ..io import atomic_path, refuse_to_overwrite
from ..models import layer_index, module_type
from ..formats.log import detect_log, plot_log, summarise_log

Summariser = Callable[[Path], dict]
Plotter = Callable[[dict, Path], None]
Detector = Callable[[Path], "str | None"]

COLUMNS = ("embeddings", "query", "key", "value", "attention-out", "ffn-in", "ffn-out", "layernorm", "bias", "pooler", "other")

SUMMARISERS: dict[str, Summariser] = {}
PLOTTERS: dict[str, Plotter] = {}
# Kinds that are not sparsetune safetensors files (a log.jsonl) say so here: path -> kind or None.
DETECTORS: list[Detector] = []


def register_kind(kind: str, summarise: Summariser, plot: Plotter | None = None, detect: Detector | None = None) -> None:
    """Teach `inspect` a file kind: its summariser, optionally its own plot and detector."""
    SUMMARISERS[kind] = summarise
    if plot is not None:
        PLOTTERS[kind] = plot
    if detect is not None:
        DETECTORS.append(detect)


def detect_kind(path: str | os.PathLike) -> str:
    """The kind of `path`; an error saying what the file is when it is no sparsetune file."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path} does not exist or is not a file")
    for detect in DETECTORS:
        kind = detect(path)
        if kind:
            return kind
    return file_kind(path)


def inspect_file(path: str | os.PathLike, plot: str | os.PathLike | None = None, force: bool = False) -> dict:
    """Summary dict of any sparsetune file; with `plot`, also write its heatmap PNG."""
    kind = detect_kind(path)
    if kind not in SUMMARISERS:
        raise FileFormatError(f"{path} is a sparsetune {kind} file, which inspect cannot summarise yet")
    if plot is not None:
        refuse_to_overwrite(plot, force)
    summary = {"file": str(path), "kind": kind, **SUMMARISERS[kind](Path(path))}
    if plot is not None:
        PLOTTERS.get(kind, plot_heatmap)(summary, Path(plot))
        summary["plot"] = str(plot)
    return summary


# -- the per-layer × module-type table ------------------------------------------
def row_label(name: str) -> str:
    layer = layer_index(name)
    if layer is not None:
        return f"layer {layer}"
    for part in ("embeddings", "pooler"):
        if part in name:
            return part
    return "other"


def _row_order(label: str) -> tuple[int, int]:
    if label == "embeddings":
        return (0, 0)
    if label.startswith("layer "):
        return (1, int(label.split()[1]))
    return (2, 0) if label == "pooler" else (3, 0)


def layer_table(per_tensor: dict[str, tuple[float, int]], value: str) -> dict:
    """Sum numerators and entries per (layer, module type); cell = numerator / entries.

    `per_tensor` maps a parameter name to (numerator, entries), e.g. (selected, numel)
    for a mask or (sum of scores, numel) for scores. Empty cells are None.
    """
    sums: dict[tuple[str, str], list[float]] = {}
    for name, (numerator, entries) in per_tensor.items():
        cell = sums.setdefault((row_label(name), module_type(name)), [0.0, 0])
        cell[0] += numerator
        cell[1] += entries
    rows = sorted({row for row, _ in sums}, key=_row_order)
    columns = [column for column in COLUMNS if any(col == column for _, col in sums)]
    cells = [[sums[(r, c)][0] / sums[(r, c)][1] if (r, c) in sums and sums[(r, c)][1] else None for c in columns] for r in rows]
    entries = [[int(sums[(r, c)][1]) if (r, c) in sums else 0 for c in columns] for r in rows]
    return {"value": value, "rows": rows, "columns": columns, "cells": cells, "entries": entries}


# -- summarisers ------------------------------------------------------------------
def summarise_mask(path: Path) -> dict:
    mask = Mask.load(path)
    per_tensor = mask.per_tensor()
    return {
        "metadata": {key: value for key, value in mask.metadata.items()},
        "totals": {
            "selected": mask.selected,
            "eligible": mask.eligible,
            "density": mask.density,
            "tensors": len(per_tensor),
            "tensors_with_selection": sum(1 for selected, _ in per_tensor.values() if selected),
        },
        "per_tensor": {name: {"selected": s, "entries": n, "density": s / n} for name, (s, n) in per_tensor.items()},
        "table": layer_table({name: (float(s), n) for name, (s, n) in per_tensor.items()}, "selected fraction"),
    }


def summarise_scores(path: Path) -> dict:
    scores = Scores.load(path)
    per_tensor = {name: (float(t.double().sum()), t.numel()) for name, t in scores.tensors.items()}
    total = sum(s for s, _ in per_tensor.values())
    maximum = max((float(t.max()) for t in scores.tensors.values() if t.numel()), default=0.0)
    zeros = sum(int((t == 0).sum()) for t in scores.tensors.values())
    return {
        "metadata": dict(scores.metadata),
        "totals": {
            "eligible": scores.eligible,
            "tensors": len(scores.tensors),
            "mean": total / scores.eligible if scores.eligible else 0.0,
            "max": maximum,
            "zero_fraction": zeros / scores.eligible if scores.eligible else 0.0,
        },
        "per_tensor": {name: {"mean": s / n if n else 0.0, "entries": n} for name, (s, n) in per_tensor.items()},
        "table": layer_table(per_tensor, "mean score"),
    }


def summarise_delta(path: Path) -> dict:
    """Where a fine-tune changed the base: changed fraction per layer × module type, and the head."""
    from ..formats.delta import Delta

    delta = Delta.load(path)
    per_tensor = delta.per_tensor()
    eligible = sum(n for _, n in per_tensor.values())
    size = path.stat().st_size
    keep = ("base_model", "task", "max_length", "architecture", "top_p", "sparsetune_version")
    return {
        "metadata": {**{k: delta.metadata[k] for k in keep if k in delta.metadata}, "values": f"{delta.values_dtype} ({delta.values_kind})"},
        "totals": {
            "changed": delta.changed,
            "eligible": eligible,
            "density": delta.changed / eligible if eligible else 0.0,
            "tensors_changed": len(delta.indices),
            "head_tensors": len(delta.head),
            "head_entries": delta.head_entries,
            "bytes": size,
            "bytes_per_changed_entry": size / delta.changed if delta.changed else 0.0,
        },
        "per_tensor": {name: {"changed": c, "entries": n, "density": c / n} for name, (c, n) in per_tensor.items()},
        "head": {name: list(tensor.shape) for name, tensor in delta.head.items()},
        "table": layer_table({name: (float(c), n) for name, (c, n) in per_tensor.items()}, "changed fraction"),
    }


register_kind("mask", summarise_mask)
register_kind("scores", summarise_scores)
register_kind("delta", summarise_delta)
register_kind("log", summarise_log, plot=plot_log, detect=detect_log)  # a run's log.jsonl: loss + mask changes


# -- the heatmap -------------------------------------------------------------------
def plot_heatmap(summary: dict, path: Path) -> None:
    """Draw `summary["table"]` (rows × module types) as an annotated heatmap PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm, PowerNorm

    table = summary["table"]
    values = np.array([[np.nan if v is None else v for v in row] for row in table["cells"]], dtype=float)  # [rows, cols]
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
            axes.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if image.norm(value) < 0.6 else "black")
    meta = summary.get("metadata", {})
    title = f"{Path(summary['file']).name}: {table['value']}"
    details = ", ".join(f"{key} {meta[key]}" for key in ("method", "task", "p", "scope") if key in meta)
    axes.set_title(f"{title}\n{details}" if details else title, fontsize=9)
    figure.colorbar(image, ax=axes, label=table["value"])
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
