"""Cases found by a hostile pass over every command after the classes above were fixed:
each was a traceback, a destroyed folder, or a silently wrong result."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import pytest

import sparsetune

from .support import ONE_STEP, assert_unchanged, copy_run, ok, run, snapshot


@pytest.mark.parametrize("command", ["mask", "diff", "inspect"])
def test_a_file_output_never_replaces_a_folder(command, pipeline, tmp_path):
    """`-o somedir --force` used to delete the folder and put the file in its place."""
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    args = {
        "mask": ("mask", pipeline.scores, "-p", "0.1", "-o", folder),
        "diff": ("diff", pipeline.run, "-o", folder),
        "inspect": ("inspect", pipeline.mask, "--plot", folder),
    }[command]
    before = snapshot(tmp_path)
    run(*args, "--force", mentions=("is a folder",))
    assert_unchanged(before, snapshot(tmp_path))


def test_the_same_delta_twice_would_double_its_change(pipeline, tmp_path):
    shutil.copy(pipeline.delta, tmp_path / "again.safetensors")
    run(
        "apply",
        pipeline.delta,
        tmp_path / "again.safetensors",
        "-o",
        tmp_path / "applied",
        code=2,
        mentions=("same delta",),
    )
    assert not (tmp_path / "applied").exists()


@pytest.mark.parametrize("command", ["eval", "diff", "score", "apply"])
def test_a_truncated_model_file(command, pipeline, tmp_path):
    """A cut-short model.safetensors raised safetensors' own error with a traceback."""
    if command in ("eval", "diff"):
        folder = copy_run(pipeline.run, tmp_path / "run")
    else:
        folder = tmp_path / "base"
        shutil.copytree(pipeline.model, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    args = {
        "eval": ("eval", folder, "--data-dir", pipeline.data),
        "diff": ("diff", folder, "-o", tmp_path / "d.safetensors"),
        "score": ("score", folder, "--task", "cb", "--data-dir", pipeline.data, "-o", tmp_path / "m.safetensors"),
        "apply": ("apply", pipeline.delta, "--base", folder, "-o", tmp_path / "applied"),
    }[command]
    before = snapshot(tmp_path, pipeline.root)
    run(*args, mentions=("cannot load", str(folder)))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("command", ["score", "train"])
def test_weights_of_other_shapes_than_the_config(command, pipeline, tmp_path):
    """A model.safetensors of another width than config.json: transformers' RuntimeError
    ("You set ignore_mismatched_sizes to False") gave a traceback on score and train."""
    from transformers import BertConfig, BertModel

    folder = tmp_path / "base"
    shutil.copytree(pipeline.model, folder)
    wider = BertConfig.from_pretrained(folder)
    wider.hidden_size, wider.intermediate_size = 2 * wider.hidden_size, 2 * wider.intermediate_size
    BertModel(wider).save_pretrained(tmp_path / "wider")
    shutil.copy(tmp_path / "wider" / "model.safetensors", folder / "model.safetensors")
    common = ("--task", "cb", "--data-dir", pipeline.data, "-o")
    args = {"score": ("score", folder, *common, tmp_path / "m.safetensors"),
            "train": ("train", folder, "--method", "full", *common, tmp_path / "out")}[command]  # fmt: skip
    before = snapshot(tmp_path, pipeline.root)
    line = run(*args, mentions=("cannot load model", str(folder), "other shapes than its config.json"))
    assert "above report" not in line  # transformers' report is not shown: its pointer to it was
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


def test_a_model_dir_without_its_vocabulary(pipeline, tmp_path):
    """transformers built a tokenizer of the five special tokens: every word [UNK], and
    eval reported a score for it."""
    folder = copy_run(pipeline.run, tmp_path / "run")
    for item in folder.iterdir():
        if "token" in item.name or "vocab" in item.name:
            item.unlink()
    before = snapshot(tmp_path)
    run("eval", folder, "--data-dir", pipeline.data, mentions=("no vocabulary",))
    assert_unchanged(before, snapshot(tmp_path))


def test_diff_against_a_base_the_sparse_run_was_not_trained_from(pipeline, tmp_path):
    """`--base` of the same shapes but other weights gave exit 0 and a nearly dense
    "delta"; the run's mask records the digest of the weights it trained from."""
    import torch
    from transformers import BertModel

    other = tmp_path / "other-bert"
    shutil.copytree(pipeline.model, other)
    torch.manual_seed(1)
    BertModel(BertModel.config_class.from_pretrained(other)).save_pretrained(other)
    before = snapshot(tmp_path, pipeline.root)
    run(
        "diff",
        pipeline.run,
        "--base",
        other,
        "-o",
        tmp_path / "d.safetensors",
        mentions=("trained from other weights",),
    )
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))
    ok("diff", pipeline.run, "--base", pipeline.model, "-o", tmp_path / "d.safetensors")  # its own base, named
    # A run trained on purpose from other weights (-O other_base=yes, as train's parser reads it) is diffed.
    from sparsetune.formats.run_record import RunRecord

    folder = copy_run(pipeline.run, tmp_path / "on-purpose")
    record = RunRecord.load(folder)
    record.hyperparameters["method_options"] = {**record.hyperparameters.get("method_options", {}), "other_base": "yes"}
    record.save(folder)
    ok("diff", folder, "--base", other, "-o", tmp_path / "e.safetensors")


def test_diff_with_another_task_than_the_runs(pipeline, tmp_path):
    run("diff", pipeline.run, "--task", "copa", "-o", tmp_path / "d.safetensors", code=2, mentions=("--task",))
    run("diff", pipeline.lora, "--task", "rte", "-o", tmp_path / "d.safetensors", code=2, mentions=("--task",))
    assert not (tmp_path / "d.safetensors").exists()


def test_retraining_over_the_folder_that_holds_the_mask(pipeline, tmp_path):
    """`train --mask OUT/mask.safetensors -o OUT --force`: OUT is emptied after the mask is read."""
    folder = copy_run(pipeline.run, tmp_path / "run")
    ok(
        "train",
        "--mask",
        folder / "mask.safetensors",
        "-o",
        folder,
        "--force",
        "--data-dir",
        pipeline.data,
        *ONE_STEP,
    )
    assert (folder / "mask.safetensors").read_bytes() == (pipeline.run / "mask.safetensors").read_bytes()


@pytest.mark.parametrize(
    "problem", ["read-only runs_dir", "missing data_dir", "missing launcher", "max_length beyond the positions"]
)
def test_grid_problems_found_before_any_run(problem, pipeline, tmp_path):
    from .support import read_only

    if problem == "read-only runs_dir":
        with read_only(tmp_path / "ro") as folder:
            config = pipeline.grid_config(tmp_path, extra="")
            config.write_text(config.read_text().replace(str(tmp_path / "runs"), str(folder / "runs")))
            run("grid", config, "-o", tmp_path / "results.jsonl", mentions=("runs_dir",))
        return
    config = pipeline.grid_config(tmp_path)
    if problem == "missing data_dir":
        config.write_text(config.read_text().replace(str(pipeline.data), str(tmp_path / "no-data")))
        run("grid", config, "-o", tmp_path / "results.jsonl", mentions=("no-data",))
    elif problem == "max_length beyond the positions":  # every run failed, each advising a rerun
        config.write_text(config.read_text().replace("max_length = 24", "max_length = 100000"))
        for dry in ((), ("--dry-run",)):
            run("grid", config, "-o", tmp_path / "results.jsonl", *dry, mentions=("Full on cb", "100000", "positions"))
    else:
        for launcher, says in [
            ("no-such-launcher -n 2", "no-such-launcher"),
            ("torchrun 'unbalanced", "not a command line"),
        ]:
            run("grid", config, "-o", tmp_path / "results.jsonl", "--launcher", launcher, mentions=(says,))
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results.jsonl").exists()


def test_a_run_json_that_is_not_the_runs_is_not_shown_by_inspect(pipeline, tmp_path):
    """inspect of a log.jsonl shows method/task from the run.json beside it only when
    that is a run record (a list there raised an AttributeError)."""
    (tmp_path / "run.json").write_text(json.dumps([1, 2]))
    shutil.copy(pipeline.run / "log.jsonl", tmp_path / "log.jsonl")
    result = ok("inspect", tmp_path / "log.jsonl", "--json", quiet=False)
    assert json.loads(result.stdout)["metadata"] == {}


def test_inspect_of_a_delta_that_changes_no_pretrained_entry(pipeline, tmp_path):
    """A LoRA delta carries its own tensors as its head: its per-layer table was empty,
    and the table view (max() of nothing) and --plot (nanmax of nothing) were tracebacks."""
    result = ok("inspect", pipeline.lora_delta, quiet=False)
    assert "changed" in result.stdout
    before = snapshot(tmp_path)
    run("inspect", pipeline.lora_delta, "--plot", tmp_path / "p.png", code=2, mentions=("no per-layer table",))
    assert_unchanged(before, snapshot(tmp_path))


def test_report_refuses_a_run_counted_twice(pipeline, tmp_path):
    """Two lines of one run (two results files concatenated) were two seeds: a smaller std."""
    results = tmp_path / "results.jsonl"
    text = pipeline.results.read_text()
    results.write_text(text + text.splitlines(keepends=True)[0])
    before = snapshot(tmp_path)
    run("report", results, "-o", tmp_path / "report", mentions=("2 times",))
    assert_unchanged(before, snapshot(tmp_path))


def test_report_text_has_no_unfilled_placeholder(pipeline, tmp_path):
    """A line split in two lost its f: the claims read `two-sided p = {stability.p_value:.3g}`."""
    ok("report", pipeline.results, "-o", tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "one-sided permutation p = " in text
    assert not re.search(r"\{[a-z_][\w.\[\]]*(:[^}]*)?\}", text), text


def test_no_fstring_lost_its_prefix():
    """Every string concatenated to an f-string that holds `{name}` is itself an f-string
    (ruff's line splits made four such halves plain strings: a report claim, a figure
    title, a schema message)."""
    pattern = re.compile(r"\{[A-Za-z_][\w.\[\]'\"(), ]*(![rsa])?(:[^{}]*)?\}")
    lost = []
    for path in Path(sparsetune.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                for part in node.values:
                    if isinstance(part, ast.Constant) and isinstance(part.value, str) and pattern.search(part.value):
                        lost.append(f"{path.name}:{node.lineno}: {part.value!r}")
    assert not lost, lost


def test_a_results_line_of_the_wrong_type_is_described(pipeline, tmp_path):
    """The schema's message for an object of values printed `got {show(value)}`."""
    lines = [json.loads(line) for line in pipeline.results.read_text().splitlines()]
    lines[0]["dev"] = None
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(line) + "\n" for line in lines))
    line = run("report", results, "-o", tmp_path / "report", mentions=("dev must be", "got null"))
    assert "{" not in line


@pytest.mark.parametrize("value", ["abc", "-1", "nan"])
def test_a_bad_progress_interval(value, pipeline, tmp_path):
    """$SPARSETUNE_PROGRESS_SECONDS=abc was a ValueError traceback from the progress bar."""
    before = snapshot(tmp_path)
    run(
        "eval",
        pipeline.run,
        "--data-dir",
        pipeline.data,
        quiet=False,
        env={"SPARSETUNE_PROGRESS_SECONDS": value},
        mentions=("SPARSETUNE_PROGRESS_SECONDS",),
    )
    assert_unchanged(before, snapshot(tmp_path))


def test_grid_dry_run_on_a_small_model(pipeline, tmp_path):
    """The dry run's timing pass drew token ids from 1000 up and 128 positions: a model
    with a smaller vocabulary (or fewer positions) was a traceback."""
    config = pipeline.grid_config(tmp_path)
    result = ok("grid", config, "--dry-run", "-o", tmp_path / "results.jsonl", "--json", quiet=False)
    assert [run["run_id"] for run in json.loads(result.stdout)["runs"]] == ["Full/cb/dense/seed1"]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results.jsonl").exists()


DEEP = "[" * 100_000 + "]" * 100_000  # valid JSON, nested past the parser's recursion limit


@pytest.mark.parametrize(
    "kind", ["task json", "run.json", "state.json", "method.json", "log.jsonl", "results", "data row", "toml", "yaml"]
)
def test_json_nested_too_deeply(kind, pipeline, tmp_path):
    """Every reader of a user's JSON (and the grid's TOML/YAML) raised RecursionError."""
    if kind in ("run.json", "state.json"):
        folder = copy_run(pipeline.run, tmp_path / "run")
        (folder / ("run.json" if kind == "run.json" else "checkpoint/state.json")).write_text(DEEP)
        args = ("eval", folder, "--data-dir", pipeline.data)
        if kind == "state.json":
            args = ("train", "-o", folder, "--resume", "--data-dir", pipeline.data)
    elif kind == "method.json":
        folder = copy_run(pipeline.lora, tmp_path / "run")
        (folder / "method" / "method.json").write_text(DEEP)
        args = ("eval", folder, "--data-dir", pipeline.data)
    elif kind == "data row":
        shutil.copytree(pipeline.data, tmp_path / "data")
        (tmp_path / "data" / "cb" / "validation.jsonl").write_text(DEEP + "\n")
        args = ("eval", pipeline.run, "--data-dir", tmp_path / "data")
    else:
        name = {"task json": "t.json", "log.jsonl": "log.jsonl", "results": "r.jsonl"}.get(kind, f"g.{kind}")
        path = tmp_path / name
        path.write_text(f"a = {DEEP}\n" if kind == "toml" else DEEP + "\n")
        args = {
            "task json": ("tasks", "--task", path),
            "log.jsonl": ("inspect", path),
            "results": ("report", path, "-o", tmp_path / "report"),
        }.get(kind, ("grid", path, "--dry-run"))
    before = snapshot(tmp_path, pipeline.root)
    run(*args, mentions=("nested too deeply",))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))
