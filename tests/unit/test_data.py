"""Loading task data: local files, row checks with file:line, the protocol split, batching."""

import json

import pytest

from sparsetune.data import Collator, epoch_order, load_split, load_task_data, make_loader, resolve_data_dir
from sparsetune.errors import DataError, FileFormatError, UsageError
from sparsetune.models import load_tokenizer
from sparsetune.tasks import TASKS, get_task

from ..conftest import PAPER_TASK_NAMES, write_jsonl


@pytest.mark.parametrize("name", PAPER_TASK_NAMES)
def test_load_both_splits(name, tiny_data_dir):
    task = TASKS[name]
    assert len(load_split(task, "train", tiny_data_dir)) == 40
    assert len(load_split(task, "validation", tiny_data_dir)) == 16


def test_data_dir_from_environment(tiny_data_dir, monkeypatch):
    monkeypatch.setenv("SPARSETUNE_DATA_DIR", str(tiny_data_dir))
    assert resolve_data_dir(None) == tiny_data_dir
    assert len(load_split(TASKS["rte"], "train")) == 40


def test_missing_data_dir_names_path_and_both_ways(tmp_path):
    with pytest.raises(DataError) as err:
        load_split(TASKS["rte"], "train", tmp_path / "nowhere")
    message = str(err.value)
    assert "nowhere" in message and "--data-dir" in message and "SPARSETUNE_DATA_DIR" in message and "hub" in message


def test_missing_file_names_path(tmp_path):
    (tmp_path / "rte").mkdir()
    with pytest.raises(DataError, match=r"rte/train.jsonl does not exist; pass --data-dir"):
        load_split(TASKS["rte"], "train", tmp_path)


def test_missing_field_reports_file_and_line(tmp_path):
    rows = [{"sentence1": "a", "sentence2": "b", "label": 0}, {"sentence1": "a", "label": 1}]
    write_jsonl(tmp_path / "rte" / "train.jsonl", rows)
    with pytest.raises(DataError, match=r"train.jsonl:2: missing field\(s\) sentence2"):
        load_split(TASKS["rte"], "train", tmp_path)


def test_label_outside_set_is_named(tmp_path):
    rows = [{"premise": "a", "hypothesis": "b", "label": 7}]
    write_jsonl(tmp_path / "cb" / "validation.jsonl", rows)
    with pytest.raises(DataError, match=r"validation.jsonl:1: label 7 is not one of"):
        load_split(TASKS["cb"], "validation", tmp_path)


def test_bad_json_line(tmp_path):
    path = tmp_path / "cola" / "train.jsonl"
    path.parent.mkdir()
    path.write_text('{"sentence": "a", "label": 0}\n{oops\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: not valid JSON"):
        load_split(TASKS["cola"], "train", tmp_path)


def test_unknown_split(tiny_data_dir):
    with pytest.raises(UsageError, match="unknown split"):
        load_split(TASKS["rte"], "test", tiny_data_dir)


def test_protocol_split_is_seeded_and_disjoint(tiny_data_dir):
    first = load_task_data(TASKS["rte"], tiny_data_dir, dev_fraction=0.25, seed=3)
    again = load_task_data(TASKS["rte"], tiny_data_dir, dev_fraction=0.25, seed=3)
    other = load_task_data(TASKS["rte"], tiny_data_dir, dev_fraction=0.25, seed=4)
    assert len(first.dev) == 10 and len(first.train) == 30 and len(first.test) == 16
    assert first.dev["idx"] == again.dev["idx"]
    assert first.dev["idx"] != other.dev["idx"]
    assert not set(first.dev["idx"]) & set(first.train["idx"])


def test_dev_fraction_must_be_a_fraction(tiny_data_dir):
    with pytest.raises(UsageError, match="dev fraction must be in"):
        load_task_data(TASKS["rte"], tiny_data_dir, dev_fraction=1.5)


def test_epoch_order_is_a_pure_function():
    assert epoch_order(10, 1, 0) == epoch_order(10, 1, 0)
    assert epoch_order(10, 1, 0) != epoch_order(10, 1, 1)
    assert sorted(epoch_order(10, 1, 0)) == list(range(10))


@pytest.mark.parametrize("name", ["rte", "copa", "stsb"])
def test_loader_collates_padded_batches(name, tiny_data_dir, tiny_model_dir):
    task = TASKS[name]
    dataset = load_split(task, "train", tiny_data_dir)
    tokenizer = load_tokenizer(tiny_model_dir)
    batches = list(make_loader(dataset, task, tokenizer, batch_size=16, max_length=24, order=epoch_order(40, 0, 0)))
    assert [len(batch["labels"]) for batch in batches] == [16, 16, 8]
    assert all(batch["input_ids"].shape[-1] <= 24 for batch in batches)
    assert isinstance(make_loader(dataset, task, tokenizer, 4, 24).collate_fn, Collator)


def test_custom_task_from_json(tmp_path, tiny_model_dir):
    write_jsonl(tmp_path / "d" / "tr.jsonl", [{"review": "good", "y": "pos"}, {"review": "bad", "y": 0}])
    write_jsonl(tmp_path / "d" / "va.jsonl", [{"review": "fine", "y": "pos"}])
    spec = {
        "name": "sentiment",
        "train": "d/tr.jsonl",
        "validation": "d/va.jsonl",
        "text": "review",
        "label": "y",
        "type": "classification",
        "labels": ["neg", "pos"],
    }
    (tmp_path / "sentiment.json").write_text(json.dumps(spec))
    task = get_task(str(tmp_path / "sentiment.json"))
    assert task.name == "sentiment" and task.metric == "accuracy" and task.num_labels == 2
    train = load_split(task, "train", data_dir=None)
    batch = task.encode(list(train), load_tokenizer(tiny_model_dir), 16)
    assert batch["labels"].tolist() == [1, 0]


def test_custom_regression_task_refuses_labels_outside_its_range(tmp_path):
    write_jsonl(tmp_path / "tr.jsonl", [{"s": "a", "y": 1.0}, {"s": "b", "y": 10}])
    write_jsonl(tmp_path / "va.jsonl", [{"s": "c", "y": 0}])
    spec = {"train": "tr.jsonl", "validation": "va.jsonl", "text": "s", "label": "y", "type": "regression"}
    (tmp_path / "open.json").write_text(json.dumps(spec))
    assert len(load_split(get_task(str(tmp_path / "open.json")), "train", data_dir=None)) == 2  # no range: any number
    (tmp_path / "closed.json").write_text(json.dumps({**spec, "range": [0, 5]}))
    task = get_task(str(tmp_path / "closed.json"))
    assert task.label_range == (0.0, 5.0)
    with pytest.raises(DataError, match=r"tr\.jsonl:2: label 10 is outside closed's range \[0, 5\]"):
        load_split(task, "train", data_dir=None)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"train": "a", "validation": "b", "text": "t", "type": "ranking"}, "type must be"),
        ({"train": "a", "validation": "b", "text": "t", "type": "regression", "range": [5, 0]}, "low < high"),
        ({"train": "a", "validation": "b", "text": "t", "type": "regression", "range": [0, 1, 2]}, "low < high"),
        ({"train": "a", "validation": "b", "text": "t", "type": "regression", "range": [0, "5"]}, "range"),
        (
            {"train": "a", "validation": "b", "text": "t", "labels": ["x", "y"], "range": [0, 1]},
            "only a regression task",
        ),
        ({"train": "a", "validation": "b", "type": "classification", "labels": ["x", "y"]}, "text is missing"),
        ({"train": "a", "validation": "b", "text": "t", "labels": ["x"]}, "at least 2"),
        (
            {"train": "a", "validation": "b", "text": "t", "type": "regression", "metric": "bleu"},
            "metric must be one of",
        ),
    ],
)
def test_custom_task_errors(tmp_path, spec, message):
    (tmp_path / "t.json").write_text(json.dumps(spec))
    with pytest.raises(FileFormatError, match=message):  # a file's content: exit 1
        get_task(str(tmp_path / "t.json"))


def test_hub_is_the_default_source(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        return datasets.Dataset.from_list([{"premise": "a", "hypothesis": "b", "label": 2, "idx": 0}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert len(load_split(TASKS["cb"], "validation")) == 1
    assert calls == [("aps/super_glue", "cb", "validation")]


def test_hub_rows_are_checked_and_failures_explained(monkeypatch):
    import datasets

    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list([{"sentence": "a", "label": 5}])
    )
    with pytest.raises(DataError, match=r"nyu-mll/glue/cola \[train\] row 0: label 5"):
        load_split(TASKS["cola"], "train")

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="could not load nyu-mll/glue/rte .* --data-dir"):
        load_split(TASKS["rte"], "train")
