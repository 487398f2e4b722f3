"""Per-task defaults, and the learning rates and epochs chosen on dev: the defaults are
recomputed here from the committed sweep results (results/learn_sweep/, results/learn_epochs/)."""

import pytest

from sparsetune.defaults import GENERIC, LEARN_TASKS, MINILM, defaults_for
from sparsetune.experiments.results import read_results
from sparsetune.experiments.selection import choose_on_dev
from sparsetune.models import DEFAULT_MODEL_NAME

from ..conftest import REPO

SWEPT = {"FullTuning": ("full", None), "SAM": ("sparse", "sam"), "Random": ("sparse", "random"), "LoRA": ("lora", None)}
STAGE_ONE_EPOCHS = 3  # the tasks' epochs when stage 1 ran: its settings name only the rate


@pytest.mark.parametrize(
    "method, lr",
    [
        ("sparse", 1e-4),  # a mask whose scorer is unknown: the task's rate
        ("full", 3e-5),
        ("mixout", 1e-4),
        ("diffpruning", 1e-4),
        ("childpruning", 1e-4),
        ("lora", 1e-3),
        ("adapter", 1e-3),
    ],
)
def test_learning_rate_follows_the_method(method, lr):
    assert defaults_for("copa", DEFAULT_MODEL_NAME, method).lr == lr
    assert defaults_for("copa", "bert-base-cased", method).lr == lr


def test_task_settings_for_minilm_only():
    assert defaults_for("rte", DEFAULT_MODEL_NAME).max_length == MINILM["rte"].max_length == 256
    assert defaults_for("rte", "bert-base-cased").max_length == GENERIC.max_length
    assert defaults_for("my-task", DEFAULT_MODEL_NAME).epochs == GENERIC.epochs


def test_a_sparse_run_takes_the_learning_rate_its_masks_scorer_declares(monkeypatch):
    from sparsetune.scoring import SCORERS

    monkeypatch.setattr(SCORERS["random"], "default_lr", 0.0123)
    assert defaults_for("mrpc", DEFAULT_MODEL_NAME, "sparse", "random").lr == 0.0123
    assert defaults_for("mrpc", DEFAULT_MODEL_NAME, "sparse", "unknown-scorer").lr == MINILM["mrpc"].lr
    assert defaults_for("mrpc", DEFAULT_MODEL_NAME, "lora", "random").lr == 1e-3  # the method's own rate wins


def _chosen(results: str) -> dict[str, dict[str, str]]:
    """method -> its chosen setting as {key: value}, by the report's rule, from a results file."""
    settings = choose_on_dev(read_results(REPO / results))
    return {s.method: dict(part.split("=") for part in s.setting.split(",")) for s in settings if s.chosen}


def test_the_defaults_are_the_settings_chosen_on_dev():
    """Stage 1 chose each family's rate, stage 2 (at those rates) its epochs; what
    `sparsetune train` uses when --lr and --epochs are left out must be those."""
    rates, epochs = _chosen("results/learn_sweep/results.jsonl"), _chosen("results/learn_epochs/results.jsonl")
    assert set(rates) == set(epochs) == set(SWEPT)
    for label, (method, scorer) in SWEPT.items():
        assert float(epochs[label]["lr"]) == float(rates[label]["lr"])  # stage 2 ran at stage 1's choice
        for task in LEARN_TASKS:
            chosen = defaults_for(task, DEFAULT_MODEL_NAME, method, scorer)
            assert chosen.lr == float(rates[label]["lr"]), (label, task)
            assert chosen.epochs == int(epochs[label].get("epochs", STAGE_ONE_EPOCHS)), (label, task)


def test_every_method_takes_the_tasks_epochs_on_minilm_only():
    from sparsetune.config import MASK_METHOD
    from sparsetune.methods import METHODS
    from sparsetune.scoring import SCORERS

    runs = [(method, None) for method in METHODS if method != MASK_METHOD] + [(MASK_METHOD, s) for s in SCORERS]
    for method, scorer in runs:
        assert {defaults_for(t, DEFAULT_MODEL_NAME, method, scorer).epochs for t in LEARN_TASKS} == {6}
        assert defaults_for("cola", "bert-base-cased", method, scorer).epochs == GENERIC.epochs
        assert defaults_for("cb", DEFAULT_MODEL_NAME, method, scorer).epochs == MINILM["cb"].epochs
