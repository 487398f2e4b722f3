"""Row -> model inputs for every task family, and the label checks."""

import random

import pytest
import torch

from sparsetune.errors import UsageError
from sparsetune.models import load_tokenizer
from sparsetune.tasks import TASKS, get_task
from sparsetune.tasks.families import mark_spans

from ...conftest import PAPER_TASK_NAMES, synthetic_row


def test_the_seven_paper_tasks_are_registered():
    assert set(PAPER_TASK_NAMES) <= set(TASKS)
    assert {name: TASKS[name].metric for name in PAPER_TASK_NAMES} == {
        "cola": "matthews",
        "stsb": "pearson_spearman",
        "mrpc": "accuracy_f1",
        "rte": "accuracy",
        "cb": "accuracy_macro_f1",
        "copa": "accuracy",
        "wsc": "accuracy",
    }


def test_unknown_task_lists_known_ones():
    with pytest.raises(UsageError, match="known tasks: cola, stsb"):
        get_task("sst9")


@pytest.mark.parametrize("name", PAPER_TASK_NAMES)
def test_encode_shapes_and_labels(name, tiny_model_dir):
    task = TASKS[name]
    tokenizer = load_tokenizer(tiny_model_dir)
    rng = random.Random(1)
    rows = [synthetic_row(name, rng, i) for i in range(3)]
    batch = task.encode(rows, tokenizer, max_length=32)
    if task.head == "multiple_choice":
        assert batch["input_ids"].shape[:2] == (3, 2)
    else:
        assert batch["input_ids"].dim() == 2 and batch["input_ids"].shape[0] == 3
    assert batch["input_ids"].shape[-1] <= 32
    assert batch["attention_mask"].shape == batch["input_ids"].shape
    expected_dtype = torch.float32 if task.head == "regression" else torch.long
    assert batch["labels"].dtype == expected_dtype
    assert batch["labels"].tolist() == pytest.approx([row["label"] for row in rows])


def test_sentence_pair_uses_two_segments(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    row = {"sentence1": "the dog", "sentence2": "a cat", "label": 1, "idx": 0}
    batch = TASKS["rte"].encode([row], tokenizer, 32)
    assert batch["token_type_ids"][0].max().item() == 1
    assert (batch["input_ids"][0] == tokenizer.sep_token_id).sum().item() == 2


def test_copa_phrases_the_question_and_pairs_each_choice():
    row = {
        "premise": "The sun rose.",
        "choice1": "It got light.",
        "choice2": "It rained.",
        "question": "effect",
        "label": 0,
    }
    assert TASKS["copa"].texts(row) == [
        ("The sun rose. What happened as a result?", "It got light."),
        ("The sun rose. What happened as a result?", "It rained."),
    ]
    row["question"] = "cause"
    assert TASKS["copa"].texts(row)[0][0] == "The sun rose. What was the cause of this?"


def test_wsc_marks_spans_by_word_index_not_string():
    # span text differs in case and punctuation from the sentence, as in raw SuperGLUE WSC
    row = {
        "text": "Mark told Pete many lies about himself. He should know.",
        "span1_index": 0,
        "span2_index": 7,
        "span1_text": "mark",
        "span2_text": "He",
        "label": 1,
    }
    assert TASKS["wsc"].texts(row) == [("* Mark * told Pete many lies about himself. # He # should know.",)]


def test_mark_spans_multiword():
    assert mark_spans(["a", "b", "c", "d"], [(1, 2, "*", "*"), (3, 1, "#", "#")]) == "a * b c * # d #"


def test_label_checks():
    assert TASKS["cb"].check_row({"premise": "x", "hypothesis": "y", "label": 3}) is not None
    assert "label" in TASKS["cb"].check_row({"premise": "x", "hypothesis": "y", "label": 3})
    assert TASKS["cb"].check_row({"premise": "x", "hypothesis": "y", "label": 2}) is None
    assert TASKS["cb"].check_row({"premise": "x", "label": 2}) == "missing field(s) hypothesis"
    assert TASKS["stsb"].check_row({"sentence1": "x", "sentence2": "y", "label": "high"}) is not None
    for label in (0, 0.0, 2.5, 5):  # stsb's similarity scale is closed: both ends are labels
        assert TASKS["stsb"].check_row({"sentence1": "x", "sentence2": "y", "label": label}) is None
    for label in (-0.5, 5.2, 7):  # a typo, or another task's scale, is refused rather than trained on
        problem = TASKS["stsb"].check_row({"sentence1": "x", "sentence2": "y", "label": label})
        assert problem == f"label {label!r} is outside stsb's range [0, 5]"
    assert (
        TASKS["wsc"]
        .check_row(
            {"text": "a b", "span1_index": 0, "span2_index": 5, "span1_text": "a", "span2_text": "z", "label": 0}
        )
        .startswith("span at word 5")
    )


def test_predictions_from_logits():
    import numpy as np

    logits = np.array([[0.1, 0.9], [2.0, -1.0]])
    assert TASKS["rte"].predictions(logits).tolist() == [1, 0]
    assert TASKS["stsb"].predictions(np.array([[1.5], [3.0]])).tolist() == [1.5, 3.0]
