"""Determinism (a delta's bytes do not depend on how the run path was typed, and carry no
local path), exit codes by kind as the README's table gives them, and hints that name
only flags the command has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .support import error_lines, invoke, ok, read_safetensors, rewrite_safetensors, run

REPO = Path(__file__).resolve().parents[2]


def test_delta_bytes_do_not_depend_on_how_the_run_path_is_typed(pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(pipeline.root.parent)
    name = pipeline.root.name
    (tmp_path / "link").symlink_to(pipeline.run)
    spellings = [
        pipeline.run,
        f"{pipeline.run}/",
        f"{name}/run",
        f"./{name}/run/",
        f"{name}/../{name}/run",
        tmp_path / "link",
    ]
    outputs = []
    for index, spelling in enumerate(spellings):
        ok("diff", spelling, "-o", tmp_path / f"{index}.safetensors")
        outputs.append((tmp_path / f"{index}.safetensors").read_bytes())
    assert all(data == outputs[0] for data in outputs), "the same run gave different delta bytes"
    _, metadata = read_safetensors(tmp_path / "0.safetensors")
    assert "_name_or_path" not in json.loads(metadata["config"])
    header = outputs[0][8 : 8 + int.from_bytes(outputs[0][:8], "little")].decode("utf-8")
    assert str(pipeline.run) not in header and str(pipeline.root) not in header  # no local path of the run leaks


def test_structural_delta_bytes_do_not_depend_on_the_path(pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(pipeline.root)
    ok("diff", "lora", "-o", tmp_path / "a.safetensors")
    ok("diff", f"{pipeline.lora}/", "-o", tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    assert "_name_or_path" not in json.loads(read_safetensors(tmp_path / "a.safetensors")[1]["config"])


# -- exit codes -------------------------------------------------------------------------
USAGE = {  # the command line itself is wrong: 2
    "unknown flag": lambda p, t: ("score", "--task", "cb", "--nonsense"),
    "value not among the choices": lambda p, t: ("score", "--task", "cb", "--method", "nosuch"),
    "unknown task": lambda p, t: ("tasks", "--task", "sst9"),
    "missing required option": lambda p, t: ("train", "--mask", p.mask),
    "contradicting flags": lambda p, t: ("train", "-o", t / "x", "--resume", "--force"),
    "resume with another lr": lambda p, t: ("train", "--resume", "-o", p.run, "--lr", "0.5", "--data-dir", p.data),
    # The line named a --model flag, which train does not have (MODEL is its argument).
    "resume with another model": lambda p, t: ("train", t / "other", "--resume", "-o", p.run, "--data-dir", p.data),
    "a seed beyond the generators": lambda p, t: ("score", "--task", "cb", "--seed", str(2**64), "-o", t / "m"),
    "an empty output path": lambda p, t: ("mask", p.scores, "-o", ""),
    "a size of zero": lambda p, t: ("eval", p.run, "--batch-size", "0"),
    "cuda without cuda": lambda p, t: ("eval", p.run, "--device", "cuda:7"),
    "a mask and a method without one": lambda p, t: ("train", "--mask", p.mask, "--method", "full", "-o", t / "x"),
}
DATA = {  # what the command line points at is wrong or unusable: 1
    "a model that cannot be loaded": lambda p, t: (
        "score",
        t / "no-model",
        "--task",
        "cb",
        "--data-dir",
        p.data,
        "-o",
        t / "m.safetensors",
    ),
    "a folder that is no model": lambda p, t: (
        "score",
        t,
        "--task",
        "cb",
        "--data-dir",
        p.data,
        "-o",
        t / "m.safetensors",
    ),
    "a missing mask": lambda p, t: ("train", "--mask", t / "none.safetensors", "-o", t / "x"),
    "a foreign file": lambda p, t: ("inspect", p.run / "config.json"),
    "a task file that does not exist": lambda p, t: ("tasks", "--task", t / "none.json"),
    "an existing output": lambda p, t: ("diff", p.run, "-o", p.mask),
    "a mask of another kind": lambda p, t: ("mask", p.mask, "-p", "0.1", "-o", t / "m.safetensors"),
    "a missing data dir": lambda p, t: ("eval", p.run, "--data-dir", t / "nowhere"),
    # `tasks` listed "-" for every count, exit 0, for a data dir that was not there.
    "tasks with a missing data dir": lambda p, t: ("tasks", "--data-dir", t / "nowhere"),
    "a results file that is a folder": lambda p, t: ("report", t, "-o", t / "report"),
    # The data dir only adds the floor row: a missing one was ignored without a word.
    "report with a missing data dir": lambda p, t: ("report", p.results, "--data-dir", t / "nowhere", "-o", t / "r"),
}
MENTIONS = {  # what the one line must say, where it used to mislead
    "resume with another model": ("MODEL",),
    "a seed beyond the generators": ("--seed",),
    "an empty output path": ("-o", "empty"),
    "a results file that is a folder": ("is a folder",),
}


@pytest.mark.parametrize("case", sorted(USAGE))
def test_usage_errors_exit_2(case, pipeline, tmp_path):
    args = USAGE[case](pipeline, tmp_path)
    if case == "unknown flag":  # the message quotes the user's own flag
        from .support import assert_one_error

        assert_one_error(invoke(*args), 2, mentions=("--nonsense",))
        return
    run(*args, code=2, mentions=MENTIONS.get(case, ()))


@pytest.mark.parametrize("case", sorted(DATA))
def test_data_and_file_errors_exit_1(case, pipeline, tmp_path):
    run(*DATA[case](pipeline, tmp_path), code=1, mentions=MENTIONS.get(case, ()))


def test_a_data_dir_that_is_a_file(pipeline, tmp_path):
    """SPARSETUNE_DATA_DIR at a file: "does not exist" was wrong, and `tasks` said nothing."""
    env = {"SPARSETUNE_DATA_DIR": str(pipeline.results)}
    run("tasks", env=env, mentions=("is a file", "SPARSETUNE_DATA_DIR"))
    run("eval", pipeline.run, env=env, mentions=("is a file",))


def test_cannot_load_model_is_not_a_usage_error(pipeline, tmp_path):
    line = run(
        "train",
        tmp_path / "missing-model",
        "--method",
        "full",
        "--task",
        "cb",
        "-o",
        tmp_path / "out",
        "--data-dir",
        pipeline.data,
        code=1,
    )
    assert "cannot load" in line and not (tmp_path / "out").exists()


def test_the_readme_table_gives_these_codes():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Errors") :]
    rows = dict(re.findall(r"^\| (\d+) \| ([^|]+) \|", section, flags=re.M))
    assert set(rows) == {"0", "1", "2", "130", "143"}
    assert "command line" in rows["2"] and "Ctrl-C" in rows["130"] and "SIGTERM" in rows["143"]
    assert "a model that cannot be loaded" in section.split("| 1 |")[1].split("\n")[0]  # 1, not the usage code


# -- hints name the command's own flags -------------------------------------------------
def test_mask_errors_name_no_scoring_flag(pipeline, tmp_path):
    import torch

    zeros = {name: torch.zeros_like(t) for name, t in read_safetensors(pipeline.scores)[0].items()}
    bad = rewrite_safetensors(pipeline.scores, tmp_path / "zeros.safetensors", tensors=zeros)
    line = run("mask", bad, "-p", "0.1", "-o", tmp_path / "m.safetensors")
    assert "--max-length" not in line and "--batch-size" not in line


def test_train_errors_name_no_dev_fraction_flag(pipeline, tmp_path):
    bad = rewrite_safetensors(pipeline.mask, tmp_path / "bad.safetensors", {"dev_fraction": "1.5"})
    line = run("train", "--mask", bad, "-o", tmp_path / "out", "--data-dir", pipeline.data, mentions=("dev_fraction",))
    assert "--dev-fraction" not in line


def test_a_custom_tasks_missing_file_names_the_task_file_not_data_dir(pipeline, tmp_path):
    spec = {
        "name": "t",
        "train": "nope/train.jsonl",
        "validation": "nope/dev.jsonl",
        "text": "premise",
        "labels": ["a", "b"],
    }
    (tmp_path / "task.json").write_text(json.dumps(spec))
    line = run(
        "score", pipeline.model, "--task", tmp_path / "task.json", "-o", tmp_path / "m.safetensors", mentions=("train",)
    )
    assert "--data-dir" not in line and "task's .json" in line


@pytest.mark.parametrize(
    "command", ["score", "mask", "train", "eval", "diff", "apply", "inspect", "grid", "report", "tasks"]
)
def test_a_missing_input_names_only_own_flags(command, tmp_path):
    """The first argument (or the file option) pointing nowhere, for every command."""
    missing = tmp_path / "missing"
    args = {
        "score": ("score", "--task", missing / "t.json"),
        "mask": ("mask", missing),
        "train": ("train", "--mask", missing, "-o", tmp_path / "o"),
        "eval": ("eval", missing),
        "diff": ("diff", missing, "-o", tmp_path / "d"),
        "apply": ("apply", missing, "-o", tmp_path / "a"),
        "inspect": ("inspect", missing),
        "grid": ("grid", missing),
        "report": ("report", missing),
        "tasks": ("tasks", "--task", missing / "t.json"),
    }[command]
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert len(error_lines(result)) == 1 and "Traceback" not in result.output
    from .support import assert_flags_exist

    assert_flags_exist(error_lines(result)[0], command)
    assert not any(path.name != "missing" for path in tmp_path.iterdir())
