"""How long a grid will take, before running it (`sparsetune grid CONFIG --dry-run`).

One timed forward+backward of the model calibrates seconds per example-token on this
machine; each run then costs (training examples seen + scoring pass) × tokens at that
rate, plus its evaluations at a third of it (forward only). An estimate, not a promise:
padding, early batches and other load on the machine move it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..config import DEFAULT_DEV_FRACTION, MAX_LENGTH
from ..data import resolve_data_dir, split_file
from ..models import load_model
from ..scoring import SCORERS
from ..tasks import get_task
from .grid import RunSpec, train_settings


def seconds_per_example_token(model: str | None, batch_size: int = 8, length: int = 128) -> float:
    """Wall seconds of one forward+backward, per example and token, after one warm-up."""
    loaded = load_model(model, get_task("rte"), seed=0)
    vocab = loaded.model.config.vocab_size
    # Ids past the special tokens where the vocabulary has them; never past the model's positions.
    length = min(length, getattr(loaded.model.config, "max_position_embeddings", length) or length)
    inputs = {
        "input_ids": torch.randint(min(1000, vocab - 1), vocab, (batch_size, length)),
        "labels": torch.zeros(batch_size, dtype=torch.long),
    }
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        loaded.model(**inputs).loss.backward()
        timings.append(time.perf_counter() - started)
    return timings[-1] / (batch_size * length)


def _rows(task_name: str, split: str, data_dir: str | None) -> int | None:
    path = split_file(get_task(task_name), split, resolve_data_dir(data_dir))
    if path is None or not path.is_file():
        return None
    with path.open("rb") as lines:  # counting needs no decoding (a non-UTF-8 file is reported where it is read)
        return sum(1 for line in lines if line.strip())


def estimate_run(spec: RunSpec, rate: float) -> float | None:
    """Seconds for one run at `rate` seconds per example-token; None without local data."""
    train_rows, test_rows = _rows(spec.task, "train", spec.data_dir), _rows(spec.task, "validation", spec.data_dir)
    if train_rows is None or test_rows is None:
        return None
    task = get_task(spec.task)
    hyper = train_settings(spec)
    dev_fraction = hyper.get("dev_fraction") or DEFAULT_DEV_FRACTION
    train_part, dev_part = train_rows * (1 - dev_fraction), train_rows * dev_fraction
    choices = 2 if task.head == "multiple_choice" else 1
    tokens = hyper["max_length"] * choices
    seen = hyper["epochs"] * train_part
    if hyper.get("max_steps"):
        seen = min(seen, hyper["max_steps"] * hyper["batch_size"])
    epochs = max(1, math.ceil(seen / train_part))
    scoring = 0.0
    if getattr(SCORERS.get(spec.method.score), "needs_data", False):  # the mask producers that take a gradient pass
        examples = spec.method.score_flags.get("examples") or train_part
        scoring = min(examples, train_part) * spec.method.score_flags.get("max_length", MAX_LENGTH) * choices
    evaluations = epochs * dev_part + test_rows
    return (seen * tokens + scoring + evaluations * tokens / 3) * rate


@dataclass(frozen=True)
class PlannedRun:
    """One row of `grid --dry-run`: a run, whether the results file has it, its estimate."""

    spec: RunSpec
    done: bool
    seconds: float | None  # None: no local data to count


def dry_run(specs: list[RunSpec], done: set[str], model: str | None) -> tuple[list[PlannedRun], float, float]:
    """(every run with its estimate, seconds the unfinished ones need at --jobs 1, the
    measured seconds per example-token), timing one forward+backward of `model` here."""
    rate = seconds_per_example_token(model)
    rows = [PlannedRun(spec, spec.run_id in done, estimate_run(spec, rate)) for spec in specs]
    remaining = sum(row.seconds or 0 for row in rows if not row.done)
    return rows, remaining, rate
