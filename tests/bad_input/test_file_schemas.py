"""Wrong-typed values in every file sparsetune reads, key by key: each is refused where the
file is read, with one line naming the file, the key and what was expected (exit 1),
instead of a traceback later or a run that silently used the value.

Safetensors files are re-signed after the edit (`rewrite_safetensors`), and checkpoint
states re-checksummed, so that what refuses them is the schema, not the checksum."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from .support import DROP, assert_unchanged, copy_run, edit_json, rewrite_safetensors, run, set_key, snapshot

BAD = '"x"'  # a JSON string where a number, list or object belongs

MASK_CASES = [
    ("p", BAD),
    ("p", 2),
    ("p", 0),
    ("p", "NaN"),
    ("p", -0.1),
    ("seed", BAD),
    ("seed", -1),
    ("seed", 1.5),
    ("seed", "true"),
    ("examples", -1),
    ("examples", BAD),
    ("max_length", 0),
    ("max_length", BAD),
    ("batch_size", 0),
    ("batch_size", 2.5),
    ("dev_fraction", 1),
    ("dev_fraction", 0),
    ("dev_fraction", BAD),
    ("shapes", BAD),
    ("shapes", {"a": "b"}),
    ("shapes", {}),
    ("shapes", [1, 2]),
    ("head", 5),
    ("head", [1]),
    ("pooler", "weird"),
    ("scope", "weird"),
    ("precision", "fp64"),
    ("selected", 7),
    ("selected", BAD),
    ("eligible", 12345),
    ("eligible", 0),
]


def _stored(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@pytest.mark.parametrize("key, value", MASK_CASES, ids=[f"{k}={v}" for k, v in MASK_CASES])
def test_mask_metadata(key, value, pipeline, tmp_path):
    bad = rewrite_safetensors(pipeline.mask, tmp_path / "bad.safetensors", {key: _stored(value)})
    before = snapshot(tmp_path, pipeline.root)
    run("inspect", bad, mentions=(str(bad), key))
    run("train", "--mask", bad, "-o", tmp_path / "out", "--data-dir", pipeline.data, mentions=(str(bad), key))
    run("mask", bad, "-p", "0.1", "-o", tmp_path / "m.safetensors", mentions=(str(bad),))  # not a scores file
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


SCORES_CASES = [
    ("shapes", BAD),
    ("shapes", {"a": [1, "x"]}),
    ("seed", BAD),
    ("examples", -3),
    ("max_length", BAD),
    ("batch_size", 0),
    ("dev_fraction", 1.5),
    ("pooler", "weird"),
    ("head", 5),
    ("eligible", BAD),
    ("scope", "x"),
    ("precision", "int8"),
]


@pytest.mark.parametrize("key, value", SCORES_CASES, ids=[f"{k}={v}" for k, v in SCORES_CASES])
def test_scores_metadata(key, value, pipeline, tmp_path):
    bad = rewrite_safetensors(pipeline.scores, tmp_path / "bad.safetensors", {key: _stored(value)})
    before = snapshot(tmp_path, pipeline.root)
    run("mask", bad, "-p", "0.1", "-o", tmp_path / "m.safetensors", mentions=(str(bad), key))
    run("inspect", bad, mentions=(str(bad), key))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


DELTA_CASES = [
    ("fingerprint", BAD),
    ("fingerprint", {"a": 5}),
    ("fingerprint", {"a": "not-hex"}),
    ("config", BAD),
    ("config", {"model_type": 5}),
    ("config", {}),
    ("untouched", 5),
    ("untouched", {"a": ["x"]}),
    ("eligible", BAD),
    ("changed", -1),
    ("head_entries", BAD),
    ("pooler", "zzz"),
    ("top_p", 2),
    ("max_length", BAD),
    ("max_length", 0),
    ("base_model", ""),
    ("shapes", BAD),
    ("head", BAD),
    ("head", [3]),
    ("values_kind", "difference"),
    ("values_dtype", "int8"),
    ("version", "7"),
]


@pytest.mark.parametrize("key, value", DELTA_CASES, ids=[f"{k}={v}" for k, v in DELTA_CASES])
def test_delta_metadata(key, value, pipeline, tmp_path):
    bad = rewrite_safetensors(pipeline.delta, tmp_path / "bad.safetensors", {key: _stored(value)})
    before = snapshot(tmp_path, pipeline.root)
    run("apply", bad, "-o", tmp_path / "applied", mentions=(str(bad), key))
    run("inspect", bad, mentions=(str(bad), key))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


def test_structural_delta_method_options(pipeline, tmp_path):
    for value in ("[1]", '{"lora_r": "x"}', '{"nosuch": 1}', "{not json"):
        bad = rewrite_safetensors(pipeline.lora_delta, tmp_path / "bad.safetensors", {"method_options": value})
        run("apply", bad, "-o", tmp_path / "applied", mentions=(str(bad),))
    assert not (tmp_path / "applied").exists()


RUN_CASES = [
    ("base_model", 5),
    ("task", 5),
    ("method", DROP),
    ("method", ["sparse"]),
    ("hyperparameters", "x"),
    ("hyperparameters.max_length", "x"),
    ("hyperparameters.max_length", 0),
    ("hyperparameters.precision", "fp64"),
    ("hyperparameters.pooler", "zz"),
    ("hyperparameters.lr", -1),
    ("hyperparameters.dev_fraction", 2),
    ("hyperparameters.split_seed", "x"),
    ("seed", "x"),
    ("best", [1]),
    ("best.score", "x"),
    ("best.step", -1),
    ("metrics", [1]),
    ("metrics.validation", "x"),
    ("metrics.validation.score", "x"),
    ("extra", 5),
    ("extra.steps", "x"),
    ("mask_sha256", "not-hex"),
    ("seconds", -1),
    ("trainable_parameters", 5),
]


@pytest.mark.parametrize(
    "key, value", RUN_CASES, ids=[f"{k}={v if v is not DROP else 'dropped'}" for k, v in RUN_CASES]
)
def test_run_json(key, value, pipeline, tmp_path):
    folder = copy_run(pipeline.run, tmp_path / "run")
    edit_json(folder / "run.json", lambda data: set_key(data, key, value))
    before = snapshot(tmp_path, pipeline.root)
    leaf = key.split(".")[-1]
    run("eval", folder, "--data-dir", pipeline.data, mentions=("run.json", leaf))
    run("diff", folder, "-o", tmp_path / "d.safetensors", mentions=("run.json", leaf))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("content", ["[1, 2]", '"a run"', "{not json", "\udcff"])
def test_run_json_that_is_no_object(content, pipeline, tmp_path):
    folder = copy_run(pipeline.run, tmp_path / "run")
    (folder / "run.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    before = snapshot(tmp_path, pipeline.root)
    run("eval", folder, "--data-dir", pipeline.data, mentions=("run.json",))
    run("diff", folder, "-o", tmp_path / "d.safetensors", mentions=("run.json",))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


CHECKPOINT_CASES = [
    ("step", "x"),
    ("step", -3),
    ("step", 99999),
    ("epoch", "x"),
    ("parameter_names", 5),
    ("parameter_names", [1]),
    ("param_groups", "x"),
    ("param_groups", [{"lr": 1}]),
    ("scheduler", "x"),
    ("best", [1]),
    ("best.score", "x"),
    ("hyperparameters", "x"),
    ("hyperparameters.lr", "x"),
    ("hyperparameters.method", DROP),
    ("hyperparameters.warmup_ratio", DROP),  # optional in the schema (old records), required to resume
    ("hyperparameters.batch_size", 0),
    ("loss_scale", {"scale": "x"}),
    ("mask_sha256", 5),
    ("mask_sha256", "not a digest"),
]


@pytest.mark.parametrize(
    "key, value", CHECKPOINT_CASES, ids=[f"{k}={v if v is not DROP else 'dropped'}" for k, v in CHECKPOINT_CASES]
)
def test_checkpoint_state(key, value, pipeline, tmp_path):
    folder = copy_run(pipeline.run, tmp_path / "run")
    edit_json(folder / "checkpoint" / "state.json", lambda data: set_key(data, key, value))
    before = snapshot(tmp_path, pipeline.root)
    run("train", "--resume", "-o", folder, "--data-dir", pipeline.data, mentions=("checkpoint",))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("change", ["renamed", "reshaped"])
def test_checkpoint_tensors_that_do_not_fit(change, pipeline, tmp_path):
    """A consistent checkpoint (checksums redone) whose tensors are not this run's."""
    import hashlib

    import torch
    from safetensors.torch import save

    from .support import read_safetensors

    folder = copy_run(pipeline.run, tmp_path / "run")
    tensors_path = folder / "checkpoint" / "tensors.safetensors"
    tensors, metadata = read_safetensors(tensors_path)
    name = next(key for key in tensors if key.startswith("model/"))
    if change == "renamed":
        tensors["model/nothing.here"] = tensors.pop(name)
    else:
        tensors[name] = torch.zeros(3, 3)
    data = save(tensors, metadata=metadata)
    tensors_path.write_bytes(data)
    edit_json(
        folder / "checkpoint" / "state.json",
        lambda state: state.__setitem__("tensors_sha256", hashlib.sha256(data).hexdigest()),
    )
    before = snapshot(tmp_path, pipeline.root)
    run("train", "--resume", "-o", folder, "--data-dir", pipeline.data, mentions=("checkpoint",))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


METHOD_CASES = [
    ("method", 5),
    ("method", "full"),
    ("method", "nosuch"),
    ("options", "x"),
    ("options.lora_r", "x"),
    ("options.lora_r", [1]),
    ("options.nosuch", 1),
    ("pooler", "zz"),
    ("head", 5),
    ("base_model", 5),
]


@pytest.mark.parametrize("key, value", METHOD_CASES, ids=[f"{k}={v}" for k, v in METHOD_CASES])
def test_method_json(key, value, pipeline, tmp_path):
    folder = copy_run(pipeline.lora, tmp_path / "lora")
    edit_json(folder / "method" / "method.json", lambda data: set_key(data, key, value))
    before = snapshot(tmp_path, pipeline.root)
    run("eval", folder, "--data-dir", pipeline.data, mentions=("method.json",))
    run("diff", folder, "-o", tmp_path / "d.safetensors", mentions=("method.json",))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


LOG_CASES = {
    "step a string": '{"step": "a", "loss": 1.0}',
    "loss a string": '{"step": 1, "loss": "x"}',
    "loss NaN": '{"step": 1, "loss": NaN}',
    "dev a string": '{"step": 1, "loss": 1.0}\n{"step": 1, "dev": "x"}',
    "dev score a string": '{"step": 1, "loss": 1.0}\n{"step": 1, "dev": {"score": "x"}}',
    "a list": '{"step": 1, "loss": 1.0}\n[1]\n{"step": 2, "loss": 1.0}',
    "a number": "5",
    "mask_changed yes": '{"step": 1, "loss": 1.0, "mask_changed": "yes"}',
    "lr negative": '{"step": 1, "loss": 1.0, "lr": -1}',
    "no step": '{"loss": 1.0}',
    "bad JSON inside": '{"step": 1, "loss": 1.0}\n{nope\n{"step": 2, "loss": 1.0}',
    "garbage": "garbage",
}


@pytest.mark.parametrize("case", sorted(LOG_CASES))
def test_log_jsonl(case, pipeline, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(pipeline.run / "run.json", folder / "run.json")
    (folder / "log.jsonl").write_text(LOG_CASES[case] + "\n")
    before = snapshot(tmp_path, pipeline.root)
    run("inspect", folder / "log.jsonl", "--json", mentions=("log.jsonl",))
    run("inspect", folder / "log.jsonl", "--plot", tmp_path / "loss.png", mentions=("log.jsonl",))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


def test_log_jsonl_not_utf8(pipeline, tmp_path):
    (tmp_path / "log.jsonl").write_bytes(b'{"step": 1, "loss": 1.0}\n{"step": 2, "loss": "\xff"}\n')
    run("inspect", tmp_path / "log.jsonl", mentions=("log.jsonl:2", "UTF-8"))


RESULT_CASES = {
    "a list": "[1, 2]",
    "a number": "5",
    "a string": '"x"',
    "run_id a number": {"run_id": 5},
    "seed a string": {"seed": "x"},
    "seed negative": {"seed": -1},
    "p a string": {"p": "x"},
    "p above 1": {"p": 2},
    "test a string": {"test": "x"},
    "score a string": {"test": {"score": "x"}},
    "score infinite": {"test": {"score": float("inf")}},  # numpy warnings on stderr, exit 0
    "score beyond any metric": {"test": {"score": -5.0}},
    "no test": {"test": DROP},
    "no run_id": {"run_id": DROP},
    "versions a list": {"versions": [1]},
}


@pytest.mark.parametrize("case", sorted(RESULT_CASES))
def test_results_lines(case, pipeline, tmp_path):
    lines = pipeline.results.read_text().splitlines()
    change = RESULT_CASES[case]
    if isinstance(change, str):
        bad = change
    else:
        data = json.loads(lines[1])
        for key, value in change.items():
            set_key(data, key, value)
        bad = json.dumps(data)
    results = tmp_path / "results.jsonl"
    results.write_text("\n".join([lines[0], bad, *lines[2:]]) + "\n")
    before = snapshot(tmp_path, pipeline.root)
    run("report", results, "-o", tmp_path / "report", "--data-dir", pipeline.data, mentions=("results.jsonl:2",))
    run("grid", pipeline.grid_config(tmp_path, "g.toml"), "-o", results, "--dry-run", mentions=("results.jsonl:2",))
    (tmp_path / "g.toml").unlink()
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


def test_results_not_utf8(pipeline, tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_bytes(pipeline.results.read_bytes() + b'{"run_id": "\xff"}\n')
    run("report", results, "-o", tmp_path / "report", mentions=("UTF-8",))


TASK_CASES = {
    "labels a number": {"labels": 3},
    "text a number": {"text": 5},
    "text three columns": {"text": ["premise", "hypothesis", "idx"]},
    "metric a list": {"metric": ["accuracy"]},
    "duplicate labels": {"labels": ["a", "a", "b"]},
    "regression metric on classification": {"metric": "pearson_spearman"},
    "classification metric on regression": {"type": "regression", "labels": DROP, "metric": "accuracy"},
    "labels on regression": {"type": "regression"},
    "binary F1 on three classes": {"metric": "accuracy_f1"},
    "name a number": {"name": 5},
    "train a number": {"train": 5},
    "type a number": {"type": 5},
    "label a list": {"label": []},
    "label is a text column": {"label": "premise"},
    "unknown key": {"metirc": "accuracy"},
    "labels with an empty name": {"labels": ["", "b", "c"]},
    "no labels": {"labels": DROP},
    "no text": {"text": DROP},
}


@pytest.mark.parametrize("case", sorted(TASK_CASES))
def test_custom_task_json(case, pipeline, tmp_path):
    spec = {
        "name": "t",
        "train": str(pipeline.data / "cb" / "train.jsonl"),
        "validation": str(pipeline.data / "cb" / "validation.jsonl"),
        "text": ["premise", "hypothesis"],
        "labels": ["a", "b", "c"],
    }
    for key, value in TASK_CASES[case].items():
        set_key(spec, key, value)
    path = tmp_path / "task.json"
    path.write_text(json.dumps(spec))
    before = snapshot(tmp_path, pipeline.root)
    run("tasks", "--task", path, mentions=(str(path),))
    run("score", pipeline.model, "--task", path, "-o", tmp_path / "m.safetensors", mentions=(str(path),))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("content", ["[1]", "{nope", b'{"text": "\xff"}'])
def test_custom_task_json_unreadable(content, tmp_path):
    path = tmp_path / "task.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    run("tasks", "--task", path, mentions=(str(path),))


GRID_CASES = {
    "methods a number": ("methods", 5),
    "methods empty": ("methods", []),
    "seeds strings": ("seeds", ["abc"]),
    "seeds booleans": ("seeds", [True]),
    "seeds negative": ("seeds", [-1]),
    "seeds twice": ("seeds", [1, 1]),
    "tasks a number": ("tasks", 5),
    "tasks empty": ("tasks", []),
    "tasks unknown": ("tasks", ["zz"]),
    "flags a number": ("methods.0.flags", 5),
    "p strings": ("methods.0.p", ["abc"]),
    "p above 1": ("methods.0.p", [2]),
    "train a number": ("methods.0.train", 5),
    "train unknown": ("methods.0.train", "nosuch"),
    "score unknown": ("methods.0.score", "nosuch"),
    "options a number": ("methods.0.options", 5),
    "option of a wrong type": ("methods.0.options", {"mixout_p": "x"}),
    "option unknown": ("methods.0.options", {"nosuch": 1}),
    "lr a string": ("train.lr", "x"),
    "lr negative": ("train.lr", -1),
    "unknown train flag": ("train.bogus", 1),
    "flag the grid sets": ("train.output", "x"),
    "eval_every zero": ("train.eval_every", 0),
    "weight decay negative": ("train.weight_decay", -0.1),
    "score max_length too small": ("score", {"max_length": 0}),
    "table_p a string": ("table_p", "x"),
    "runs_dir a number": ("runs_dir", 5),
    "model a number": ("model", 5),
    "unknown top key": ("bogus", 1),
    "method name a number": ("methods.0.name", 5),
    "method names twice": ("methods.1", {"name": "Full", "train": "full"}),
    "unknown method key": ("methods.0.lr", 1),
    "pooler unknown": ("pooler", "zz"),
    "launcher a number": ("launcher", 5),
    "sparse without a score": ("methods.0.train", "sparse"),
    # Found by the last hostile pass: each was accepted, then failed every run (or ran
    # something else than the config says).
    "seeds beyond the generators": ("seeds", [2**32]),
    "method name a path": ("methods.0.name", "../escape"),  # RUNS/../escape/...: outside runs_dir
    "method name dot-dot": ("methods.0.name", ".."),
    "method name with a newline": ("methods.0.name", "a\nb"),  # and a report row in two lines
    "method name only spaces": ("methods.0.name", " "),  # runs_dir/ /cb/...
    "method name with a trailing space": ("methods.0.name", "SAM "),
    # Trained sparsely on the mask, labelled full:
    "score with another train method": ("methods.0", {"name": "Full", "train": "full", "score": "sam", "p": [0.1]}),
    # The line named --adapter-size, a flag of train, not of grid:
    "option below its least": ("methods.0", {"name": "Full", "train": "adapter", "options": {"adapter_size": 0}}),
    "p for a method without it": ("methods.0.p", [0.1]),
    # A method option out of its range was accepted, then failed every run, one by one:
    "lora rank zero": ("methods.0", {"name": "Full", "train": "lora", "options": {"lora_r": 0}}),
    "lora targets empty": ("methods.0", {"name": "Full", "train": "lora", "options": {"lora_targets": " , "}}),
    "mixout p above 1": ("methods.0", {"name": "Full", "train": "mixout", "options": {"mixout_p": 1.5}}),
    "projection every 0 steps": (
        "methods.0",
        {"name": "Full", "train": "childpruning", "options": {"project_every": 0}},
    ),
    "gate scale zero": ("methods.0", {"name": "Full", "train": "diffpruning", "options": {"gate_scale": 0.0}}),
    "adapter config unknown": ("methods.0", {"name": "Full", "train": "adapter", "options": {"adapter_config": "x"}}),
    "device unknown": ("train.device", "tpu"),
    "method device unknown": ("methods.0.flags", {"device": "tpu"}),
}


def _toml(data: dict) -> str:
    def value(item) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, (int, float)):
            return repr(item)
        if isinstance(item, str):
            return json.dumps(item)
        if isinstance(item, list):
            return "[" + ", ".join(value(x) for x in item) + "]"
        return "{ " + ", ".join(f"{k} = {value(v)}" for k, v in item.items()) + " }"

    lines = [
        f"{key} = {value(item)}"
        for key, item in data.items()
        if not isinstance(item, dict)
        and not (key == "methods" and isinstance(item, list) and item and isinstance(item[0], dict))
    ]
    for key, item in data.items():
        if isinstance(item, dict):
            lines += [f"[{key}]", *(f"{k} = {value(v)}" for k, v in item.items())]
    methods = data.get("methods")
    if isinstance(methods, list) and methods and isinstance(methods[0], dict):
        for method in methods:
            lines += ["[[methods]]", *(f"{k} = {value(v)}" for k, v in method.items())]
    return "\n".join(lines) + "\n"


def _set(data, dotted: str, item) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[int(key)] if isinstance(data, list) else data[key]
    if isinstance(data, list):
        index = int(last)
        data.append(item) if index == len(data) else data.__setitem__(index, item)
    else:
        data[last] = item


@pytest.mark.parametrize("syntax", ["toml", "yaml"])
@pytest.mark.parametrize("case", sorted(GRID_CASES))
def test_grid_config(case, syntax, pipeline, tmp_path):
    config = {
        "model": str(pipeline.model),
        "tasks": ["cb"],
        "seeds": [1],
        "runs_dir": str(tmp_path / "runs"),
        "data_dir": str(pipeline.data),
        "train": {"max_steps": 1},
        "methods": [{"name": "Full", "train": "full"}],
    }
    key, item = GRID_CASES[case]
    _set(config, key, item)
    path = tmp_path / f"grid.{syntax}"
    path.write_text(_toml(config) if syntax == "toml" else yaml.safe_dump(config))
    before = snapshot(tmp_path, pipeline.root)
    leaf = [part for part in key.split(".") if not part.isdigit()][-1]
    line = run("grid", path, "--dry-run", "-o", tmp_path / "results.jsonl", mentions=(str(path),))
    assert leaf in line or case in (
        "tasks unknown",
        "method names twice",
        "sparse without a score",
        "option unknown",
    ), line
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


def test_grid_config_not_utf8(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_bytes(b'tasks = ["\xff"]\n')
    run("grid", path, "--dry-run", mentions=(str(path), "UTF-8"))
