"""User tasks described by a small JSON file, so that no Python is needed.

    {
      "name": "sentiment",
      "train": "data/train.jsonl",          # paths relative to this JSON file
      "validation": "data/dev.jsonl",
      "text": ["sentence"],                 # one column, or two for sentence pairs
      "label": "label",                     # default "label"
      "type": "classification",             # or "regression"
      "labels": ["negative", "positive"],   # classification: names, index = id
      "range": [0, 5],                      # regression, optional: labels outside are refused
      "metric": "accuracy"                  # optional; see `sparsetune tasks`
    }

Rows may give a classification label as its index or as its name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import FileFormatError
from ..io import loads_json
from ..schema import any_of, list_of, number, string, table, validate
from .base import Task
from .metrics import METRICS

DEFAULT_METRIC = {"classification": "accuracy", "regression": "pearson_spearman"}
# Which metrics fit which head: a correlation of class ids, or an accuracy of real
# numbers, would be computed without complaint and mean nothing.
METRIC_HEADS = {
    "accuracy": "classification",
    "accuracy_f1": "classification",
    "accuracy_macro_f1": "classification",
    "matthews": "classification",
    "pearson_spearman": "regression",
}
SPEC = table(
    {
        "name": string(),
        "train": string(),
        "validation": string(),
        "text": any_of((string(), list_of(string(), min_items=1, unique=True))),
        "label": string(),
        "type": string(tuple(DEFAULT_METRIC)),
        "labels": list_of(string(), min_items=2, unique=True),
        "range": list_of(number(), min_items=2),
        "metric": string(tuple(sorted(METRICS))),
        "description": string(empty=True),
    },
    required=("train", "validation", "text"),
    closed=True,
)


def load_custom_task(path: str | Path) -> Task:
    """Build a `Task` from a JSON spec; every problem names the file and the key."""
    path = Path(path)
    try:
        spec: dict[str, Any] = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise FileFormatError(f"cannot read task file {path}: {err}") from None
    except json.JSONDecodeError as err:
        raise FileFormatError(f"task file {path} is not valid JSON: {err}") from None
    where = f"task file {path}"
    validate(spec, SPEC, where, hint="; see `sparsetune tasks --help` for the format")
    head = spec.get("type", "classification")
    text = spec["text"]
    text_fields = (text,) if isinstance(text, str) else tuple(text)
    if len(text_fields) > 2:
        raise FileFormatError(f"{where}: text must name one column or two (a sentence pair), got {len(text_fields)}")
    labels = None
    if head == "classification":
        if "labels" not in spec:
            raise FileFormatError(
                f'{where}: labels is missing (a classification task names its classes, e.g. ["negative", "positive"])'
            )
        labels = tuple(spec["labels"])
    elif "labels" in spec:
        raise FileFormatError(
            f"{where}: labels is given but type is {head!r}; a regression task has no classes "
            f"(drop labels, or set type to classification)"
        )
    label_range = None
    if "range" in spec:
        if head != "regression":
            raise FileFormatError(f"{where}: range is given but type is {head!r}; only a regression task has one")
        if len(spec["range"]) != 2 or not spec["range"][0] < spec["range"][1]:
            raise FileFormatError(f"{where}: range must be [low, high] with low < high, got {spec['range']}")
        label_range = (float(spec["range"][0]), float(spec["range"][1]))
    metric = spec.get("metric", DEFAULT_METRIC[head])
    if METRIC_HEADS.get(metric, head) != head:
        fits = ", ".join(name for name, kind in METRIC_HEADS.items() if kind == head)
        raise FileFormatError(
            f"{where}: metric {metric!r} is for {METRIC_HEADS[metric]} tasks, but type is {head!r} (use one of {fits})"
        )
    if metric == "accuracy_f1" and labels is not None and len(labels) != 2:
        raise FileFormatError(
            f"{where}: metric 'accuracy_f1' is binary F1, but labels has {len(labels)} classes (use accuracy_macro_f1)"
        )
    label_field = spec.get("label", "label")
    if label_field in text_fields:
        raise FileFormatError(f"{where}: label {label_field!r} is also a text column")
    files = {split: str((path.parent / spec[split]).resolve()) for split in ("train", "validation")}
    return Task(
        name=str(spec.get("name", path.stem)),
        head=head,
        text_fields=text_fields,
        labels=labels,
        label_field=label_field,
        label_range=label_range,
        metric=metric,
        files=files,
        description=str(spec.get("description", f"custom task from {path.name}")),
    )
