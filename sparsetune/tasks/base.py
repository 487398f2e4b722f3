"""What every task knows: its columns, labels, head, metric, and how a row becomes inputs.

A task family (sentence/pair, multiple choice, marked spans) subclasses `Task` and
implements `texts`; tokenisation, label checks and metrics are shared here so that a
new family is a few lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .metrics import METRIC_COMPONENTS, METRICS

if TYPE_CHECKING:
    import torch

Head = Literal["classification", "regression", "multiple_choice"]


@dataclass(frozen=True)
class Task:
    """A fine-tuning task: data schema, head and metric.

    `labels` names the classes (index = label id); regression tasks have none, and may
    name the closed range their labels lie in instead (`label_range`: stsb's 0-5), so
    that a label outside it, a typo or another task's file, is refused, not trained on.
    `hub` is `(path, config)` for `datasets.load_dataset`; `files` maps a split to a
    local JSONL file (custom tasks), overriding any data dir.
    """

    name: str
    head: Head
    text_fields: tuple[str, ...]
    metric: str
    labels: tuple[str, ...] | None = None
    label_field: str = "label"
    label_range: tuple[float, float] | None = None
    extra_fields: tuple[str, ...] = ()
    hub: tuple[str, str] | None = None
    files: dict[str, str] = field(default_factory=dict)
    description: str = ""

    # -- schema ---------------------------------------------------------------
    @property
    def fields(self) -> tuple[str, ...]:
        """Every column a row must have."""
        return self.text_fields + self.extra_fields + (self.label_field,)

    @property
    def num_labels(self) -> int:
        """Output width of the head: classes, 1 for regression, 1 score per choice."""
        if self.head == "regression" or self.head == "multiple_choice":
            return 1
        assert self.labels is not None
        return len(self.labels)

    @property
    def metric_components(self) -> tuple[str, ...]:
        return METRIC_COMPONENTS[self.metric]

    def label_id(self, value: Any) -> int | float:
        """The label as the model sees it; raises ValueError for a value outside the set."""
        if self.head == "regression":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"expected a number, got {value!r}")
            if not math.isfinite(value):  # JSON's NaN/Infinity: a NaN loss, or a silent NaN metric on eval
                raise ValueError(f"expected a finite number, got {value!r}")
            if self.label_range is not None and not self.label_range[0] <= value <= self.label_range[1]:
                low, high = self.label_range
                raise ValueError(f"label {value!r} is outside {self.name}'s range [{low:g}, {high:g}]")
            return float(value)
        choices = self.labels or ()
        if isinstance(value, str) and value in choices:
            return choices.index(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(choices):
            return value
        raise ValueError(f"label {value!r} is not one of 0..{len(choices) - 1} or {list(choices)}")

    def check_row(self, row: dict[str, Any]) -> str | None:
        """Why `row` cannot be used, or None."""
        missing = [name for name in self.fields if name not in row or row[name] is None]
        if missing:
            return f"missing field(s) {', '.join(missing)}"
        for name in self.text_fields:
            if not isinstance(row[name], str):
                return f"field {name} must be text (a string), got {type(row[name]).__name__} {str(row[name])[:40]!r}"
        try:
            self.label_id(row[self.label_field])
        except ValueError as err:
            return str(err)
        return None

    # -- inputs ---------------------------------------------------------------
    def texts(self, row: dict[str, Any]) -> list[tuple[str, ...]]:
        """The text segment(s) the tokenizer sees: one tuple per choice (one for most tasks)."""
        return [tuple(str(row[name]) for name in self.text_fields)]

    def encode(self, rows: list[dict[str, Any]], tokenizer, max_length: int) -> dict[str, torch.Tensor]:
        """Tokenise a batch of rows into padded tensors, `labels` included.

        Multiple-choice tasks come out as [batch, choices, length], the layout of
        transformers' `*ForMultipleChoice` heads; everything else as [batch, length].
        """
        per_row = [self.texts(row) for row in rows]
        choices = len(per_row[0])
        segments = [segments for row in per_row for segments in row]
        columns = list(zip(*segments))
        features = tokenizer(
            *columns,
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        batch = dict(features)
        if self.head == "multiple_choice":
            batch = {key: value.view(len(rows), choices, -1) for key, value in batch.items()}
        import torch  # on first use: the task registry is read by the CLI's --help

        dtype = torch.float32 if self.head == "regression" else torch.long
        batch["labels"] = torch.tensor([self.label_id(row[self.label_field]) for row in rows], dtype=dtype)
        return batch

    # -- outputs --------------------------------------------------------------
    def predictions(self, logits: np.ndarray) -> np.ndarray:
        """Logits -> what the metric compares with the labels."""
        if self.head == "regression":
            return logits.reshape(len(logits), -1)[:, 0]
        return logits.argmax(axis=-1)

    def compute_metrics(self, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """Every component and `score`, the paper's combined number."""
        return METRICS[self.metric](np.asarray(predictions), np.asarray(labels))
