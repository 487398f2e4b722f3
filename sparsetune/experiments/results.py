"""The grid's results file: one JSON line per finished run.

    sparsetune grid experiments/paper.toml -o results/paper.jsonl
    sparsetune report results/paper.jsonl -o results/paper/

A line is appended only after a run has trained *and* been evaluated, in one write,
so a killed grid leaves whole lines only and a rerun skips every `run_id` it finds.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FileFormatError
from ..io import append_line
from ..schema import RESULT_LINE, read_json_lines


@dataclass
class RunResult:
    """What the report needs about one (method, task, p, seed) run."""

    run_id: str
    method: str
    task: str
    seed: int
    p: float | None
    test: dict[str, float]
    dev: dict[str, float] = field(default_factory=dict)
    trainable_parameters: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    peak_rss_mb: float | None = None
    config_hash: str = ""
    run_dir: str = ""
    git_commit: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """The paper's number for this run (test set)."""
        return float(self.test["score"])


def append_result(path: str | os.PathLike, result: RunResult) -> None:
    """Append one line with a single write + fsync: whole lines only, even when killed
    or when the disk fills (a failed write is cut back, `io.append_line`)."""
    append_line(path, json.dumps(asdict(result), sort_keys=True) + "\n")


def read_results(path: str | os.PathLike) -> list[RunResult]:
    """Every complete line of a results file; a torn last line (a kill mid-write on a
    filesystem without atomic appends) is ignored, any other bad line is an error naming
    its line, key and what was expected."""
    path = Path(path)
    if path.is_dir():
        raise FileFormatError(f"results file {path} is a folder; give the JSONL file `sparsetune grid -o` wrote")
    if not path.is_file():
        raise FileFormatError(f"results file {path} does not exist; `sparsetune grid CONFIG -o {path}` writes it")
    known = set(RunResult.__dataclass_fields__)
    records = read_json_lines(path, RESULT_LINE, "results file written by sparsetune grid", allow_torn_tail=True)
    return [RunResult(**{key: value for key, value in data.items() if key in known}) for data in records]


def finished_ids(path: str | os.PathLike) -> set[str]:
    return {result.run_id for result in read_results(path)} if Path(path).is_file() else set()
