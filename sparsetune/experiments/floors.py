"""The trivial floor of each task: what always answering the majority class scores.

A score means little without it: on MRPC, always answering "equivalent" scores 74.8
(mean of accuracy and F1), which a model that learned nothing matches. The floor is
the task's own `score` ×100 of a constant prediction on the test set (the official
validation split): the most frequent label of the *train part* (the protocol split,
seed 42, 10% dev; ties to the smaller label id), or 0 for a regression task, whose
correlations are 0 for a constant.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..errors import SparsetuneError
from ..tasks import get_task


def majority_floor(task_name: str, data_dir=None) -> float | None:
    """The floor of `task_name` ×100, or None when the task or its data cannot be read."""
    floors = constant_floors(task_name, data_dir)
    return None if floors is None else floors[0]


def constant_floors(task_name: str, data_dir=None) -> tuple[float, float] | None:
    """(the majority-class floor, the best constant's score) ×100 on the test set, or None.

    The second is the better of the constant answers (every label seen in train), chosen
    on the test set itself: not a method anyone could run, but the bar below which a
    method has shown nothing. On a near-balanced task the train part's majority can be
    the test set's minority (rte, cb and copa here), so the floor row alone understates it.
    """
    from ..data import load_task_data

    try:
        task = get_task(task_name)  # a custom task's .json named from another folder: no floor, not an error
    except SparsetuneError:
        return None
    if task.head == "regression":
        return 0.0, 0.0
    try:
        data = load_task_data(task, data_dir)
    except SparsetuneError:
        return None
    counts = Counter(int(row[task.label_field]) for row in data.train)
    majority = min(label for label, count in counts.items() if count == max(counts.values()))
    labels = np.asarray([int(row[task.label_field]) for row in data.test])
    scores = {
        label: 100 * float(task.compute_metrics(np.full_like(labels, label), labels)["score"]) for label in counts
    }
    return scores[majority], max(scores.values())
