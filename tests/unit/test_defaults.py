"""Per-task defaults and the per-method learning rates chosen on dev (results/lr_sweep/)."""

import pytest

from sparsetune.defaults import GENERIC, MINILM, defaults_for
from sparsetune.models import DEFAULT_MODEL_NAME


@pytest.mark.parametrize(
    "method, lr",
    [
        ("sparse", 1e-4),
        ("full", 1e-4),
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
