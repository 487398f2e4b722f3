"""Bad data and bad sizes: non-UTF-8 rows, a train file too small for the protocol split,
wrong-typed row values, lengths beyond the model's positions, zero or negative sizes."""

from __future__ import annotations

import json
import shutil

import pytest

from .support import ONE_STEP, assert_unchanged, ok, run, snapshot


def _data_copy(pipeline, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(pipeline.data, data)
    return data


def _score(pipeline, data, tmp_path, *extra):
    return (
        "score",
        pipeline.model,
        "--task",
        "cb",
        "-p",
        "0.05",
        "--batch-size",
        "8",
        "--max-length",
        "24",
        "--data-dir",
        data,
        "-o",
        tmp_path / "m.safetensors",
        *extra,
    )


def _train(pipeline, data, tmp_path, *extra):
    return (
        "train",
        pipeline.model,
        "--method",
        "full",
        "--task",
        "cb",
        "-o",
        tmp_path / "out",
        *ONE_STEP,
        "--data-dir",
        data,
        *extra,
    )


@pytest.mark.parametrize("split", ["train", "validation"])
def test_non_utf8_jsonl(split, pipeline, tmp_path):
    data = _data_copy(pipeline, tmp_path)
    rows = (data / "cb" / f"{split}.jsonl").read_bytes().splitlines(keepends=True)
    rows[2] = b'{"premise": "caf\xe9", "hypothesis": "x", "label": 0}\n'  # Latin-1, not UTF-8
    (data / "cb" / f"{split}.jsonl").write_bytes(b"".join(rows))
    before = snapshot(tmp_path, pipeline.root)
    where = f"{split}.jsonl:3"
    if split == "train":
        run(*_score(pipeline, data, tmp_path), mentions=(where, "UTF-8"))
        run(*_train(pipeline, data, tmp_path), mentions=(where, "UTF-8"))
    else:
        run("eval", pipeline.run, "--data-dir", data, mentions=(where, "UTF-8"))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("rows", [1])
def test_train_file_too_small_for_a_dev_part(rows, pipeline, tmp_path):
    data = _data_copy(pipeline, tmp_path)
    lines = (data / "cb" / "train.jsonl").read_text().splitlines()[:rows]
    (data / "cb" / "train.jsonl").write_text("\n".join(lines) + "\n")
    before = snapshot(tmp_path, pipeline.root)
    run(*_score(pipeline, data, tmp_path), mentions=("1 row",))
    run(*_train(pipeline, data, tmp_path), mentions=("1 row",))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize(
    "task, change, expected",
    [
        ("cb", {"premise": 5}, "premise must be text"),
        ("cb", {"hypothesis": ["a", "b"]}, "hypothesis must be text"),
        ("cb", {"label": "maybe"}, "label"),
        ("cb", {"label": True}, "label"),
        ("wsc", {"span1_index": "zero"}, "span1_index must be a word index"),
        ("wsc", {"span2_index": 1.5}, "span2_index must be a word index"),
        ("stsb", {"label": "high"}, "expected a number"),
        ("stsb", {"label": float("nan")}, "finite"),  # JSON's NaN: a NaN loss, or a NaN metric on eval
        ("stsb", {"label": float("-inf")}, "finite"),
        ("copa", {"question": "why"}, "question"),
    ],
)
def test_wrong_typed_row_values(task, change, expected, pipeline, tmp_path):
    data = _data_copy(pipeline, tmp_path)
    path = data / task / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[4].update(change)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = (
        "score",
        pipeline.model,
        "--task",
        task,
        "-p",
        "0.05",
        "--max-length",
        "24",
        "--data-dir",
        data,
        "-o",
        tmp_path / "m.safetensors",
    )
    run(*args, mentions=("train.jsonl:5", expected))
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("kind", ["folder", "fifo", "dangling link"])
def test_a_split_file_that_is_not_a_regular_file(kind, pipeline, tmp_path):
    """It was reported as "does not exist" (and a FIFO would hang a reader)."""
    import os

    data = _data_copy(pipeline, tmp_path)
    path = data / "cb" / "train.jsonl"
    path.unlink()
    {"folder": path.mkdir, "fifo": lambda: os.mkfifo(path), "dangling link": lambda: path.symlink_to("gone")}[kind]()
    run(*_score(pipeline, data, tmp_path), mentions=("train.jsonl is not a regular file",))
    assert not (tmp_path / "m.safetensors").exists()


def test_columns_the_task_does_not_read_may_change_type_from_row_to_row(pipeline, tmp_path):
    """An export's `idx` as a string in one row and a number elsewhere, a huge number, or
    an object: the task reads none of them, so they are left behind (Arrow refused the
    mix with an 85-line traceback)."""
    data = _data_copy(pipeline, tmp_path)
    path = data / "cb" / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for number, row in enumerate(rows):
        row["idx"] = number
    rows[3]["idx"], rows[5]["idx"], rows[6]["idx"] = "3", 2**70, {"a": 1}
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    ok(*_score(pipeline, data, tmp_path, "--examples", "16"))
    assert (tmp_path / "m.safetensors").is_file()


def test_a_read_column_whose_type_changes_from_row_to_row_is_one_line(pipeline, tmp_path):
    data = _data_copy(pipeline, tmp_path)
    path = data / "wsc" / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[4]["span1_text"] = 7  # wsc reads it (its word count); Arrow cannot mix it with strings
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ("score", pipeline.model, "--task", "wsc", "-p", "0.05", "--max-length", "24", "--data-dir", data)
    run(*args, "-o", tmp_path / "m.safetensors", mentions=("train.jsonl", "different types"))
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("command", ["score", "train", "eval"])
def test_max_length_beyond_the_models_positions(command, pipeline, tmp_path):
    """The tiny BERT has 128 positions: 129 tokens cannot be embedded. Refused before any
    pass, naming the limit (short rows would not reveal it until a long one came)."""
    before = snapshot(tmp_path, pipeline.root)
    if command == "score":
        args = _score(pipeline, pipeline.data, tmp_path, "--max-length", "129")
    elif command == "train":
        args = _train(pipeline, pipeline.data, tmp_path, "--max-length", "4096")
    else:
        args = ("eval", pipeline.run, "--data-dir", pipeline.data, "--max-length", "129")
    run(*args, code=2, mentions=("128 positions", "--max-length"))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize(
    "flag, value", [("--batch-size", "0"), ("--batch-size", "-2"), ("--max-length", "0"), ("--max-length", "-5")]
)
@pytest.mark.parametrize("command", ["score", "train", "eval"])
def test_zero_and_negative_sizes(command, flag, value, pipeline, tmp_path):
    before = snapshot(tmp_path, pipeline.root)
    if command == "score":
        args = _score(pipeline, pipeline.data, tmp_path, flag, value)
    elif command == "train":
        args = _train(pipeline, pipeline.data, tmp_path, flag, value)
    else:
        args = ("eval", pipeline.run, "--data-dir", pipeline.data, flag, value)
    run(*args, code=2, mentions=(flag,))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("command", ["score", "train", "eval"])
def test_the_smallest_max_length_is_the_same_everywhere(command, pipeline, tmp_path):
    """score refused `--max-length` below 8 where train and eval took 1: a length is
    valid or not whatever the command (the tokenizer keeps the special tokens)."""
    if command == "score":
        args = _score(pipeline, pipeline.data, tmp_path, "--max-length", "1", "--examples", "8")
    elif command == "train":
        args = _train(pipeline, pipeline.data, tmp_path, "--max-length", "1")
    else:
        args = ("eval", pipeline.run, "--data-dir", pipeline.data, "--max-length", "1", "--split", "dev")
    ok(*args)


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--examples", "0"),
        ("--examples", "-1"),
        ("--examples", "many"),
        ("--seed", "-1"),
        ("-p", "0"),
        ("-p", "1.5"),
        ("-p", "nan"),
    ],
)
def test_score_sizes(flag, value, pipeline, tmp_path):
    run(*_score(pipeline, pipeline.data, tmp_path, flag, value), code=2)
    assert not (tmp_path / "m.safetensors").exists()


def test_missing_data_dir_and_missing_split(pipeline, tmp_path):
    run(*_score(pipeline, tmp_path / "nowhere", tmp_path), mentions=("nowhere", "--data-dir"))
    data = _data_copy(pipeline, tmp_path)
    (data / "cb" / "validation.jsonl").unlink()
    run("eval", pipeline.run, "--data-dir", data, mentions=("validation.jsonl", "--data-dir"))
