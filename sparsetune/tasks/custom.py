"""User tasks described by a small JSON file, so that no Python is needed.

    {
      "name": "sentiment",
      "train": "data/train.jsonl",          # paths relative to this JSON file
      "validation": "data/dev.jsonl",
      "text": ["sentence"],                 # one column, or two for sentence pairs
      "label": "label",                     # default "label"
      "type": "classification",             # or "regression"
      "labels": ["negative", "positive"],   # classification: names, index = id
      "metric": "accuracy"                  # optional; see `sparsetune tasks`
    }

Rows may give a classification label as its index or as its name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .base import Task
from .metrics import METRICS

DEFAULT_METRIC = {"classification": "accuracy", "regression": "pearson_spearman"}


def load_custom_task(path: str | Path) -> Task:
    """Build a `Task` from a JSON spec; every problem names the file and the key."""
    path = Path(path)
    try:
        spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read task file {path}: {err}") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"task file {path} is not valid JSON: {err}") from None
    if not isinstance(spec, dict):
        raise UsageError(f"task file {path} must hold a JSON object")

    def need(key: str) -> Any:
        if key not in spec:
            raise UsageError(f"task file {path} has no {key!r}; see `sparsetune tasks --help` for the format")
        return spec[key]

    head = spec.get("type", "classification")
    if head not in DEFAULT_METRIC:
        raise UsageError(f"task file {path}: type must be 'classification' or 'regression', not {head!r}")
    text = need("text")
    text_fields = (text,) if isinstance(text, str) else tuple(text)
    if not 1 <= len(text_fields) <= 2 or not all(isinstance(name, str) for name in text_fields):
        raise UsageError(f"task file {path}: 'text' must name one column or two (a sentence pair)")
    labels = None
    if head == "classification":
        labels = tuple(str(name) for name in need("labels"))
        if len(labels) < 2:
            raise UsageError(f"task file {path}: 'labels' must list at least two classes")
    metric = spec.get("metric", DEFAULT_METRIC[head])
    if metric not in METRICS:
        raise UsageError(f"task file {path}: unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}")
    files = {split: str((path.parent / need(split)).resolve()) for split in ("train", "validation")}
    return Task(
        name=str(spec.get("name", path.stem)),
        head=head,
        text_fields=text_fields,
        labels=labels,
        label_field=str(spec.get("label", "label")),
        metric=metric,
        files=files,
        description=str(spec.get("description", f"custom task from {path.name}")),
    )
