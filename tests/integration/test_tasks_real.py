"""The seven tasks on the real data and the real embedded MiniLM."""

import pytest
import torch

from sparsetune.data import load_split, make_loader
from sparsetune.models import load_model, load_tokenizer
from sparsetune.tasks import TASKS

pytestmark = pytest.mark.integration

ROWS = {  # (train, validation), from ../shared/data/README.md
    "cola": (8551, 1043),
    "stsb": (5749, 1500),
    "mrpc": (3668, 408),
    "rte": (2490, 277),
    "cb": (250, 56),
    "copa": (400, 100),
    "wsc": (554, 104),
}
LABELS = {"cola": {0, 1}, "mrpc": {0, 1}, "rte": {0, 1}, "cb": {0, 1, 2}, "copa": {0, 1}, "wsc": {0, 1}}


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(None)


@pytest.mark.parametrize("name", list(ROWS))
def test_task_loads_and_a_batch_runs_through_the_real_model(name, shared_data_dir, tokenizer):
    task = TASKS[name]
    train = load_split(task, "train", shared_data_dir)
    validation = load_split(task, "validation", shared_data_dir)
    assert (len(train), len(validation)) == ROWS[name]
    if name in LABELS:
        assert set(train["label"]) == LABELS[name] == set(validation["label"])
    else:
        assert 0.0 <= min(train["label"]) and max(train["label"]) <= 5.0

    loaded = load_model(None, task, seed=0)
    assert loaded.new_parameters == {"classifier.weight", "classifier.bias"}
    batch = next(iter(make_loader(validation, task, tokenizer, batch_size=4, max_length=64)))
    loaded.model.eval()
    with torch.no_grad():
        output = loaded.model(**batch)
    expected = (4, 2) if task.head == "multiple_choice" else (4, task.num_labels)
    assert tuple(output.logits.shape) == expected
    assert torch.isfinite(output.loss)
