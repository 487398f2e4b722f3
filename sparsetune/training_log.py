"""`inspect` for a run's log.jsonl: loss per step and mask changes, Figure 1 of Fu et al. 2023.

    sparsetune train --method diffpruning --task cb -p 0.005 --project-every 20 -o out/
    sparsetune inspect out/log.jsonl --plot loss.png

Fu et al. 2023 (arXiv 2211.15583, Figure 1) show the "projection discontinuity" of
DiffPruning: the training loss jumps back up after every mask change. The training
loop writes one line per step (`step`, `epoch`, `loss`, `lr`, and the method's fields:
`mask_changed` for the projection methods) and one per dev evaluation (`dev`). This
module summarises such a file and draws it with the report's own figure
(`experiments.figures.projection_figure`), so there is one plot, not two.
"""

from __future__ import annotations

import json
from pathlib import Path

from .formats.schema import LOG_RECORD, read_json_lines


def detect_log(path: Path) -> str | None:
    """'log' for a JSON-lines file (a `.jsonl` file is nothing else `inspect` reads: its
    lines are then checked as a run's log, with errors naming the line); else None."""
    return "log" if path.suffix == ".jsonl" else None


def _records(path: Path) -> list[dict]:
    """The log's records, each checked (`formats.schema.LOG_RECORD`); a line cut short by
    a kill of the run that writes it is left out."""
    return read_json_lines(path, LOG_RECORD, "sparsetune log.jsonl", allow_torn_tail=True)


def _run_metadata(path: Path) -> dict:
    """Method and task from the run.json beside the log, when there is one (and it is one:
    anything else beside a log is not its run's record and is left out)."""
    record_path = path.parent / "run.json"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    return {key: record[key] for key in ("method", "task", "base_model") if isinstance(record.get(key), str)}


def summarise_log(path: Path) -> dict:
    records = _records(path)
    steps = [r for r in records if "loss" in r]
    evaluations = [r for r in records if "dev" in r]
    best = max(evaluations, key=lambda r: r["dev"].get("score", float("-inf")), default=None)
    totals = {
        "steps": len(steps),
        "first_loss": steps[0]["loss"] if steps else None,
        "last_loss": steps[-1]["loss"] if steps else None,
        "projections": sum(1 for r in steps if r.get("projected")),
        "mask_changes": sum(1 for r in steps if r.get("mask_changed")),
        "evaluations": len(evaluations),
    }
    if best is not None:
        totals |= {"best_dev_score": best["dev"].get("score"), "best_dev_step": best["step"]}
    return {"metadata": _run_metadata(path), "totals": totals}


def plot_log(summary: dict, path: Path) -> None:
    from .experiments.figures import projection_figure

    method = summary.get("metadata", {}).get("method", "training")
    projection_figure(summary["file"], path, title=str(method))
