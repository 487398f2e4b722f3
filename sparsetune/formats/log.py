"""`OUT/log.jsonl`: one JSON object per training step and per dev evaluation.

    sparsetune train --method diffpruning --task cb -p 0.005 --project-every 20 -o out/
    sparsetune inspect out/log.jsonl --plot loss.png

The training loop writes one line per step (`step`, `epoch`, `loss`, `lr`, and the
method's fields: `mask_changed` for the projection methods) and one per dev evaluation
(`dev`), each flushed at once (`LogWriter`). The paper's Figure 1 is this file drawn:
DiffPruning's loss jumping back up after every mask change (the "projection
discontinuity"); `inspect --plot` draws it with the report's own figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..io import atomic_path, loads_json
from ..schema import read_log

KIND = "log"
LOG_FILE = "log.jsonl"


class LogWriter:
    """log.jsonl: one JSON object per line, flushed so a kill -9 loses at most a line."""

    def __init__(self, path: Path, keep_until: int | None):
        if keep_until is not None and path.is_file():  # drop steps the checkpoint does not cover
            # Checked as `inspect` reads it: a line torn by the kill that stopped the run is
            # dropped (kept, it would sit mid-file once new steps follow), anything else
            # unreadable is an error naming its line (not UnicodeDecodeError, not kept as step 0).
            kept = [record for record in read_log(path) if record["step"] <= keep_until]
            with atomic_path(path) as tmp:
                tmp.write_text("".join(json.dumps(record) + "\n" for record in kept), encoding="utf-8")
        self.handle = path.open("a", encoding="utf-8")

    def write(self, **record: Any) -> None:
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def recognise(path: Path) -> bool:
    """A `.jsonl` file (nothing else `inspect` reads is one): its lines are then checked
    as a run's log, with errors naming the line."""
    return path.suffix == ".jsonl" and path.is_file()


def _run_metadata(path: Path) -> dict:
    """Method and task from the run.json beside the log, when there is one (and it is one:
    anything else beside a log is not its run's record and is left out)."""
    record_path = path.parent / "run.json"
    try:
        record = loads_json(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    return {key: record[key] for key in ("method", "task", "base_model") if isinstance(record.get(key), str)}


def summarise(path: Path) -> dict:
    """What `sparsetune inspect` shows: steps, first and last loss, projections, mask changes, best dev."""
    records = read_log(path)
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
