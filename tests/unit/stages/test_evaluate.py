"""eval: metrics equal a recomputation from the model's own predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from sparsetune.config import EvalConfig
from sparsetune.data import load_split
from sparsetune.errors import MismatchError, UsageError
from sparsetune.models import load_model, load_tokenizer
from sparsetune.stages.evaluate import evaluate
from sparsetune.tasks import get_task

from ..training_support import run, write_mask


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir, tiny_data_dir):
    tmp = tmp_path_factory.mktemp("eval-run")
    run(tmp / "out", tiny_data_dir, mask=str(write_mask(tmp, tiny_model_dir)), max_steps=4, lr=5e-2)
    return tmp / "out"


def _recompute_cb(model_dir, data_dir):
    """Predictions one example at a time, straight from transformers, and sklearn's metrics."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = load_tokenizer(model_dir)
    rows = list(load_split(get_task("cb"), "validation", data_dir))
    predictions = []
    with torch.no_grad():
        for row in rows:
            inputs = tokenizer(row["premise"], row["hypothesis"], truncation=True, max_length=32, return_tensors="pt")
            predictions.append(int(model(**inputs).logits.argmax(-1)))
    labels = [row["label"] for row in rows]
    accuracy = accuracy_score(labels, predictions)
    macro_f1 = f1_score(labels, predictions, average="macro", labels=[0, 1, 2], zero_division=0)
    return {"accuracy": accuracy, "macro_f1": macro_f1, "score": (accuracy + macro_f1) / 2}


def test_metrics_equal_a_recomputation_and_are_recorded(run_dir, tiny_data_dir):
    result = evaluate(EvalConfig(target=str(run_dir), data_dir=str(tiny_data_dir)))
    assert result["task"] == "cb" and result["split"] == "validation" and result["examples"] == 16
    expected = _recompute_cb(run_dir, tiny_data_dir)
    for key, value in expected.items():
        assert result["metrics"][key] == pytest.approx(value, abs=1e-12), key
    recorded = json.loads((run_dir / "run.json").read_text())["metrics"]
    assert recorded["validation"] == result["metrics"]


def test_dev_split_matches_the_training_runs_best_dev_score(run_dir, tiny_data_dir):
    result = evaluate(EvalConfig(target=str(run_dir), split="dev", data_dir=str(tiny_data_dir)))
    best = json.loads((run_dir / "run.json").read_text())["best"]
    assert result["examples"] == 4 and result["metrics"]["score"] == pytest.approx(best["score"])


def test_plain_model_dir_needs_task_and_a_trained_head(run_dir, tiny_model_dir, tiny_data_dir, tmp_path):
    plain = tmp_path / "plain"
    load_model(run_dir, get_task("cb")).model.save_pretrained(plain)
    load_tokenizer(run_dir).save_pretrained(plain)
    with pytest.raises(UsageError, match="--task"):
        evaluate(EvalConfig(target=str(plain), data_dir=str(tiny_data_dir)))
    result = evaluate(EvalConfig(target=str(plain), task="cb", data_dir=str(tiny_data_dir), max_length=32))
    assert result["metrics"]["score"] == pytest.approx(_recompute_cb(plain, tiny_data_dir)["score"])
    with pytest.raises(MismatchError, match="no trained cb head"):
        evaluate(EvalConfig(target=str(tiny_model_dir), task="cb", data_dir=str(tiny_data_dir)))
    with pytest.raises(MismatchError, match="no trained rte head"):  # 3-way head where rte needs 2
        evaluate(EvalConfig(target=str(plain), task="rte", data_dir=str(tiny_data_dir)))


def test_a_head_with_the_tasks_labels_in_another_order_is_refused(run_dir, tiny_data_dir, tmp_path):
    """An MNLI-ordered head on cb scores its logits against the wrong ids: refused, not a
    silently wrong metric; default names (LABEL_i) and cb's own order pass."""
    plain = tmp_path / "mnli-ordered"
    model = load_model(run_dir, get_task("cb")).model
    model.save_pretrained(plain)
    load_tokenizer(run_dir).save_pretrained(plain)
    config = json.loads((plain / "config.json").read_text())
    assert list(config["id2label"].values()) == ["entailment", "contradiction", "neutral"]
    for names, refused in (
        (["entailment", "neutral", "contradiction"], True),
        (["Entailment", "Contradiction", "Neutral"], False),
        (["LABEL_0", "LABEL_1", "LABEL_2"], False),
    ):
        config["id2label"] = dict(zip(["0", "1", "2"], names))
        config["label2id"] = {name: i for i, name in enumerate(names)}
        (plain / "config.json").write_text(json.dumps(config))
        evaluation = EvalConfig(target=str(plain), task="cb", data_dir=str(tiny_data_dir), max_length=32)
        if refused:
            with pytest.raises(MismatchError, match="entailment, neutral, contradiction .* another order"):
                evaluate(evaluation)
        else:
            assert evaluate(evaluation)["examples"] == 16


def test_a_revision_names_a_hub_commit_not_a_folder(run_dir):
    with pytest.raises(UsageError, match="--revision main: .* is a local folder"):
        evaluate(EvalConfig(target=str(run_dir), revision="main"))


def test_unknown_split_is_a_usage_error(run_dir):
    with pytest.raises(UsageError, match="--split"):
        evaluate(EvalConfig(target=str(run_dir), split="test"))


def test_regression_predictions_are_the_raw_outputs():
    task = get_task("stsb")
    assert np.array_equal(task.predictions(np.array([[0.5], [2.0]])), np.array([0.5, 2.0]))
