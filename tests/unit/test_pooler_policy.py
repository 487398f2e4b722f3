"""The pooler policy (issue 14, "the paper's head") through train, the CLI, resume and the grid.

BERT's classifier reads a pretrained pooler; by default it is task head (trained densely,
not eligible, outside p), with `--pooler eligible` an ordinary pretrained tensor. A mask
is trained with the policy it was scored with; old masks and checkpoints, which predate
the policy, were made with the pooler eligible.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.errors import FileFormatError, MismatchError, TrainingInterrupted, UsageError
from sparsetune.experiments.grid import load_grid, plan
from sparsetune.formats.mask import Mask
from sparsetune.methods import get_method
from sparsetune.models import load_model
from sparsetune.tasks import get_task

from .training_support import POOLER, base_weights, random_mask, run, saved_weights

runner = CliRunner()
CLASSIFIER = ["classifier.bias", "classifier.weight"]


def _legacy(mask: Mask) -> Mask:
    """The same mask as a file written before the policy existed: no `pooler`, no `head`."""
    return Mask(mask.indices, mask.shapes, {k: v for k, v in mask.metadata.items() if k not in ("pooler", "head")})


def _interrupt_at(step: int):
    def progress(stage, done, total, **info):
        if stage == "train" and done == step:
            raise KeyboardInterrupt

    return progress


def test_train_mask_takes_the_policy_from_the_mask(tmp_path, tiny_model_dir, tiny_data_dir):
    mask = random_mask(tiny_model_dir, "cb", p=0.05, pooler="eligible")
    assert set(POOLER) <= set(mask.shapes) and POOLER[0] in mask.indices  # the pooler is eligible in it
    mask.save(tmp_path / "literal.safetensors")
    record = run(tmp_path / "out", tiny_data_dir, mask=str(tmp_path / "literal.safetensors"), max_steps=3, lr=5e-2)
    assert record.hyperparameters["pooler"] == "eligible"
    assert record.trainable_parameters["head_tensors"] == CLASSIFIER
    assert record.trainable_parameters["eligible"] == mask.eligible
    trained, theta0 = saved_weights(tmp_path / "out"), base_weights(tiny_model_dir)
    for name in POOLER:  # eligible: only the mask's entries may move
        inside = mask.bool_tensor(name)
        assert torch.equal(trained[name][~inside], theta0[name][~inside]), name


def test_a_flag_that_contradicts_the_mask_is_one_line(tmp_path, tiny_model_dir, tiny_data_dir):
    random_mask(tiny_model_dir, "cb").save(tmp_path / "head.safetensors")
    with pytest.raises(UsageError, match=r"--pooler eligible: the mask .* was made with --pooler head; drop --pooler"):
        run(tmp_path / "out", tiny_data_dir, mask=str(tmp_path / "head.safetensors"), pooler="eligible")
    assert not (tmp_path / "out").exists()
    result = runner.invoke(
        app,
        [
            "train",
            "--mask",
            str(tmp_path / "head.safetensors"),
            "--pooler",
            "eligible",
            "-o",
            str(tmp_path / "o"),
            "--data-dir",
            str(tiny_data_dir),
            "--max-steps",
            "1",
            "--quiet",
        ],
    )
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1 and "drop --pooler" in result.stderr
    agreeing = run(
        tmp_path / "same", tiny_data_dir, mask=str(tmp_path / "head.safetensors"), pooler="head", max_steps=1
    )
    assert agreeing.hyperparameters["pooler"] == "head"


def test_an_old_mask_without_the_key_trains_as_it_was_made(tmp_path, tiny_model_dir, tiny_data_dir):
    """A mask written before the policy lists the pooler among its tensors: pooler eligible."""
    _legacy(random_mask(tiny_model_dir, "cb", pooler="eligible")).save(tmp_path / "old.safetensors")
    loaded = Mask.load(tmp_path / "old.safetensors")
    assert "pooler" not in loaded.metadata and "head" not in loaded.metadata
    record = run(tmp_path / "out", tiny_data_dir, mask=str(tmp_path / "old.safetensors"), max_steps=1)
    assert record.hyperparameters["pooler"] == "eligible"
    with pytest.raises(UsageError, match="was made with --pooler eligible"):
        run(tmp_path / "other", tiny_data_dir, mask=str(tmp_path / "old.safetensors"), pooler="head")


def test_a_mask_over_the_pooler_is_refused_when_the_pooler_is_head(tiny_model_dir):
    """The metadata normally prevents it; a hand-made mask (Python) gets one clear line."""
    literal, head = random_mask(tiny_model_dir, "cb", pooler="eligible"), random_mask(tiny_model_dir, "cb")
    with pytest.raises(
        MismatchError, match=r"'bert\.pooler\.dense\.weight', which is task head with --pooler head"
    ) as err:
        get_method("sparse")(literal).bind(load_model(tiny_model_dir, get_task("cb")))
    assert "\n" not in str(err.value) and "--pooler eligible" in str(err.value)
    with pytest.raises(MismatchError, match=r"does not cover 'bert\.pooler\.dense\.weight'.*--pooler head"):
        get_method("sparse")(head).bind(load_model(tiny_model_dir, get_task("cb"), pooler="eligible"))
    get_method("sparse")(head).bind(load_model(tiny_model_dir, get_task("cb")))  # matching: fine


def test_resume_keeps_the_runs_policy(tmp_path, tiny_model_dir, tiny_data_dir):
    args = dict(method="full", task="cb", model=str(tiny_model_dir), max_steps=4)
    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "out", tiny_data_dir, progress=_interrupt_at(2), pooler="eligible", **args)
    with pytest.raises(UsageError, match="--pooler head differs from the interrupted run's eligible"):
        run(tmp_path / "out", tiny_data_dir, resume=True, max_steps=4, pooler="head")
    record = run(tmp_path / "out", tiny_data_dir, resume=True, max_steps=4)
    assert record.hyperparameters["pooler"] == "eligible" and record.trainable_parameters["head_tensors"] == CLASSIFIER


def test_a_checkpoint_from_before_the_policy_resumes_with_the_pooler_eligible(tmp_path, tiny_model_dir, tiny_data_dir):
    _legacy(random_mask(tiny_model_dir, "cb", pooler="eligible")).save(tmp_path / "old.safetensors")
    with pytest.raises(TrainingInterrupted):
        run(
            tmp_path / "out",
            tiny_data_dir,
            progress=_interrupt_at(2),
            mask=str(tmp_path / "old.safetensors"),
            max_steps=4,
        )
    state = tmp_path / "out" / "checkpoint" / "state.json"
    info = json.loads(state.read_text())
    del info["hyperparameters"]["pooler"]  # as an older sparsetune wrote it: no pooler, no checksums
    for key in ("version", "checksum", "tensors_sha256"):
        info.pop(key, None)
    state.write_text(json.dumps(info))
    record = run(tmp_path / "out", tiny_data_dir, resume=True, max_steps=4)
    assert record.hyperparameters["pooler"] == "eligible" and record.extra["steps"] == 4


def test_cli_score_and_train_pooler_flags(tmp_path, tiny_model_dir, tiny_data_dir):
    common = ["--data-dir", str(tiny_data_dir), "--max-length", "32"]
    scored = runner.invoke(
        app,
        [
            "score",
            str(tiny_model_dir),
            "--task",
            "cb",
            "-p",
            "0.05",
            "--pooler",
            "eligible",
            "--batch-size",
            "8",
            "-o",
            str(tmp_path / "m.safetensors"),
            *common,
        ],
    )
    assert scored.exit_code == 0, scored.output
    assert "--pooler eligible" in scored.stdout and "classifier.bias, classifier.weight" in scored.stdout
    assert Mask.load(tmp_path / "m.safetensors").metadata["pooler"] == "eligible"
    trained = runner.invoke(
        app,
        [
            "train",
            "--mask",
            str(tmp_path / "m.safetensors"),
            "-o",
            str(tmp_path / "out"),
            "--max-steps",
            "1",
            "--batch-size",
            "8",
            *common,
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert json.loads((tmp_path / "out" / "run.json").read_text())["hyperparameters"]["pooler"] == "eligible"
    bad = runner.invoke(
        app, ["score", str(tiny_model_dir), "--task", "cb", "--pooler", "dense", "-o", str(tmp_path / "x"), *common]
    )
    assert bad.exit_code == 2 and "dense" in bad.output
    shown = runner.invoke(app, ["inspect", str(tmp_path / "m.safetensors"), "--json"])
    assert json.loads(shown.stdout)["metadata"]["head"] == CLASSIFIER
    table = runner.invoke(app, ["inspect", str(tmp_path / "m.safetensors")], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "classifier.bias, classifier.weight" in table.stdout and "eligible" in table.stdout


def test_grid_pooler_goes_to_every_score_and_train(tmp_path):
    text = (
        'tasks = ["cb"]\nseeds = [1]\npooler = "eligible"\n[[methods]]\nname = "SAM"\nscore = "sam"\np = [0.01]\n'
        '[[methods]]\nname = "Full"\ntrain = "full"\n'
    )
    (tmp_path / "g.toml").write_text(text)
    for spec in plan(load_grid(tmp_path / "g.toml")):
        assert spec.method.train_flags["pooler"] == "eligible" and spec.method.score_flags["pooler"] == "eligible"
    (tmp_path / "none.toml").write_text(text.replace('pooler = "eligible"\n', ""))
    assert all("pooler" not in spec.method.train_flags for spec in plan(load_grid(tmp_path / "none.toml")))
    (tmp_path / "bad.toml").write_text(text.replace('"eligible"', '"dense"'))
    with pytest.raises(FileFormatError, match="pooler must be one of 'head', 'eligible'"):  # a file's content: exit 1
        load_grid(tmp_path / "bad.toml")
