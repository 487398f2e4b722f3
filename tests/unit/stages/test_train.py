"""The training loop: resume is bitwise, Ctrl-C checkpoints, bad input is refused."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from sparsetune.errors import MismatchError, OutputExistsError, TrainingError, TrainingInterrupted, UsageError
from sparsetune.formats.checkpoint import has_checkpoint, load_checkpoint
from sparsetune.formats.mask import Mask
from sparsetune.formats.run_record import RunRecord

from ..training_support import assert_same_weights, run, saved_weights, write_mask


def _interrupt_at(step: int):
    def progress(stage, done, total, **info):
        if stage == "train" and done == step:
            raise KeyboardInterrupt

    return progress


@pytest.fixture(scope="module")
def mask_path(tmp_path_factory, tiny_model_dir):
    return write_mask(tmp_path_factory.mktemp("mask"), tiny_model_dir)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_data_dir, mask_path):
    out = tmp_path_factory.mktemp("reference") / "out"
    return out, run(out, tiny_data_dir, mask=str(mask_path))


def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_data_dir, mask_path, reference):
    out = tmp_path / "out"
    with pytest.raises(TrainingInterrupted, match="--resume"):
        run(out, tiny_data_dir, progress=_interrupt_at(4), mask=str(mask_path))
    assert load_checkpoint(out).step == 4 and not (out / "run.json").exists()
    record = run(out, tiny_data_dir, mask=None, resume=True, **{"max_steps": None, "eval_every": None, "lr": None})
    assert_same_weights(saved_weights(out), saved_weights(reference[0]))
    assert record.best == reference[1].best
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines() if "loss" in line]
    assert steps == list(range(1, 9))  # every step logged exactly once


def test_a_resumed_run_counts_the_seconds_of_every_attempt(tmp_path, tiny_data_dir, mask_path):
    """run.json's `seconds` (and the grid's results line after it) was the last attempt's
    wall time only: a run resumed across sessions looked as cheap as its last piece."""
    import time

    def slow_then_interrupt(stage, done, total, **info):
        if stage == "train" and done == 2:
            time.sleep(3)
        if stage == "train" and done == 4:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(TrainingInterrupted):
        run(out, tiny_data_dir, progress=slow_then_interrupt, mask=str(mask_path))
    before = load_checkpoint(out).info["seconds"]
    assert before >= 3
    started = time.time()
    record = run(out, tiny_data_dir, resume=True)
    resumed = time.time() - started  # this attempt alone, an upper bound of what it adds
    assert record.seconds >= before and RunRecord.load(out).seconds == record.seconds
    assert record.seconds > resumed + 2  # impossible for the last attempt's time alone


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_is_deferred_to_the_step_end_and_checkpointed(tmp_path, tiny_data_dir, mask_path, reference, signum):
    """Ctrl-C, or SIGTERM, which launchers (torchrun, accelerate, schedulers) send their workers."""

    def progress(stage, done, total, **info):
        if done == 2:
            os.kill(os.getpid(), signum)

    out = tmp_path / "out"
    with pytest.raises(TrainingInterrupted):
        run(out, tiny_data_dir, progress=progress, mask=str(mask_path))
    assert load_checkpoint(out).step == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are gone after the run
    run(out, tiny_data_dir, resume=True)
    assert_same_weights(saved_weights(out), saved_weights(reference[0]))


def test_log_records_the_rate_each_step_used(reference):
    """Linear warm-up from 0: the first step runs at lr 0 and the peak comes after warm-up."""
    out, record = reference
    rates = [json.loads(line)["lr"] for line in (out / "log.jsonl").read_text().splitlines() if '"lr"' in line]
    warmup = math.ceil(record.hyperparameters["warmup_ratio"] * 8)
    assert rates[0] == 0.0 and rates[warmup] == pytest.approx(record.hyperparameters["lr"])
    assert rates == sorted(rates[: warmup + 1]) + sorted(rates[warmup + 1 :], reverse=True)


KILLED_RUN = """
import os, signal, sys
from sparsetune.config import TrainConfig
from sparsetune.stages.train import train
def progress(stage, done, total, **info):
    if done == 4:
        os.kill(os.getpid(), signal.SIGKILL)
train(TrainConfig(output=sys.argv[1], data_dir=sys.argv[2], mask=sys.argv[3], max_steps=8, eval_every=3,
                  lr=5e-3, batch_size=8, max_length=32), progress=progress)
"""


def test_resume_after_kill_9_equals_an_uninterrupted_run(tmp_path, tiny_data_dir, mask_path, reference):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_RUN), str(out), str(tiny_data_dir), str(mask_path)]
    )
    assert done.returncode == -signal.SIGKILL
    assert load_checkpoint(out).step == 3  # the last periodic checkpoint; step 4 is lost
    run(out, tiny_data_dir, resume=True)
    assert_same_weights(saved_weights(out), saved_weights(reference[0]))


def test_log_and_run_record(reference):
    out, record = reference
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == list(range(1, 9))
    evals = [line for line in lines if "dev" in line]
    assert [line["step"] for line in evals] == [3, 5, 6, 8]  # every 3 steps, epoch end (5 batches), the end
    best = max(evals, key=lambda line: line["dev"]["score"])
    assert record.best["score"] == best["dev"]["score"]
    loaded = RunRecord.load(out)
    assert loaded.method == "sparse" and loaded.task == "cb" and loaded.mask_sha256
    assert Mask.load(out / "mask.safetensors").selected == record.trainable_parameters["pretrained_trainable"]


def test_the_best_dev_state_is_the_one_exported(tmp_path, tiny_data_dir, mask_path):
    long_out, short_out = tmp_path / "long", tmp_path / "short"
    record = run(long_out, tiny_data_dir, mask=str(mask_path), lr=5e-2, max_steps=9, eval_every=2)
    best = load_checkpoint(long_out).best
    mask, exported = Mask.load(mask_path), saved_weights(long_out)
    for name, value in best.items():  # exported = θ0 with the best values in
        got = exported[name].reshape(-1)[mask.indices[name]] if name in mask.indices else exported[name]
        assert torch.equal(got, value), name
    # ... and the best values are the state after step `best step` of the same run.
    with pytest.raises(TrainingInterrupted):
        run(
            short_out,
            tiny_data_dir,
            mask=str(mask_path),
            lr=5e-2,
            max_steps=9,
            eval_every=2,
            progress=_interrupt_at(record.best["step"]),
        )
    assert_same_weights(load_checkpoint(short_out).model, best)


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, tiny_data_dir, mask_path):
    out = tmp_path / "out"
    with pytest.raises(TrainingError, match="loss became"):
        run(out, tiny_data_dir, mask=str(mask_path), lr=1e30, eval_every=1, warmup_ratio=0.0)
    assert has_checkpoint(out) and not (out / "run.json").exists()
    checkpoint = load_checkpoint(out)
    assert all(torch.isfinite(value).all() for value in checkpoint.model.values())
    with pytest.raises(TrainingError, match="Nothing was kept") as failed:  # before any checkpoint: OUT goes too
        run(tmp_path / "new", tiny_data_dir, mask=str(mask_path), lr=1e30, eval_every=100, warmup_ratio=0.0)
    assert "checkpoint (step" not in str(failed.value) and not (tmp_path / "new").exists()


def test_refuses_existing_output_unless_force_or_resume(tmp_path, tiny_data_dir, mask_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OutputExistsError, match="--force"):
        run(out, tiny_data_dir, mask=str(mask_path), max_steps=1)
    with pytest.raises(UsageError, match="no checkpoint"):
        run(out, tiny_data_dir, resume=True)
    run(out, tiny_data_dir, mask=str(mask_path), max_steps=1, force=True)
    assert (out / "run.json").is_file()


def test_resume_refuses_a_changed_hyperparameter(tmp_path, tiny_data_dir, mask_path):
    out = tmp_path / "out"
    with pytest.raises(TrainingInterrupted):
        run(out, tiny_data_dir, progress=_interrupt_at(1), mask=str(mask_path))
    with pytest.raises(UsageError, match="--lr"):
        run(out, tiny_data_dir, resume=True, lr=1.0)


def test_mask_from_another_model_names_the_first_mismatching_tensor(tmp_path, tiny_data_dir, tiny_model_dir):
    mask = Mask.load(write_mask(tmp_path, tiny_model_dir))
    first = next(iter(mask.shapes))
    mask.shapes[first] = (7, 7)
    mask.indices = {name: value for name, value in mask.indices.items() if name != first}
    mask.save(tmp_path / "other.safetensors")
    with pytest.raises(MismatchError, match=first.replace(".", r"\.")):
        run(tmp_path / "out", tiny_data_dir, mask=str(tmp_path / "other.safetensors"))
    assert not (tmp_path / "out").exists()


def test_a_mask_scored_on_other_weights_of_the_same_shapes_is_refused(tmp_path, tiny_data_dir, tiny_model_dir):
    """Names and shapes let a mask of another checkpoint of the architecture through; the
    mask records the digest of the weights it was scored on, and `-O other_base=true`
    trains it anyway."""
    from transformers import BertModel

    from sparsetune.config import ScoreConfig
    from sparsetune.formats.mask import base_digest
    from sparsetune.models import load_model
    from sparsetune.stages.score import score
    from sparsetune.tasks import get_task

    mask_file = tmp_path / "mask.safetensors"
    score(
        ScoreConfig(
            model=str(tiny_model_dir),
            task="cb",
            p=0.05,
            data_dir=str(tiny_data_dir),
            output=str(mask_file),
            examples=8,
            batch_size=8,
            max_length=24,
        )
    )
    eligible = load_model(tiny_model_dir, get_task("cb"), seed=0).eligible()
    assert Mask.load(mask_file).metadata["base_sha256"] == base_digest(eligible)

    other = tmp_path / "other-bert"
    shutil.copytree(tiny_model_dir, other)
    torch.manual_seed(1)
    BertModel(BertModel.config_class.from_pretrained(other)).save_pretrained(other)  # same shapes, other weights
    with pytest.raises(MismatchError, match="scored on other weights .* -O other_base=true"):
        run(tmp_path / "out", tiny_data_dir, mask=str(mask_file), model=str(other))
    assert not (tmp_path / "out").exists()
    record = run(
        tmp_path / "out", tiny_data_dir, mask=str(mask_file), model=str(other), method_options=(("other_base", "true"),)
    )
    assert record.base_model == str(other)


def test_a_mask_scored_on_a_relative_folder_trains_from_another_folder(
    tmp_path, tiny_data_dir, tiny_model_dir, monkeypatch
):
    """The mask records the folder, not `../bert` as typed; a mask from before, whose
    recorded relative folder is not there, is one line asking for MODEL."""
    from sparsetune.config import ScoreConfig
    from sparsetune.errors import FileFormatError
    from sparsetune.stages.score import score

    shutil.copytree(tiny_model_dir, tmp_path / "bert")
    (tmp_path / "scoring").mkdir()
    monkeypatch.chdir(tmp_path / "scoring")
    relative = dict(task="cb", p=0.05, data_dir=str(tiny_data_dir), examples=8, batch_size=8, max_length=24)
    score(ScoreConfig(model="../bert", output="mask.safetensors", **relative))
    mask = Mask.load(tmp_path / "scoring" / "mask.safetensors")
    assert mask.metadata["model"] == str((tmp_path / "bert").resolve())
    monkeypatch.chdir(tmp_path)  # where ../bert is another folder
    record = run(tmp_path / "out", tiny_data_dir, mask="scoring/mask.safetensors", max_steps=1)
    assert record.base_model == str((tmp_path / "bert").resolve())

    mask.metadata["model"] = "../bert"  # as masks recorded it before
    mask.save(tmp_path / "old.safetensors")
    with pytest.raises(FileFormatError, match="local folder '../bert', which is not there .* pass the model"):
        run(tmp_path / "old-out", tiny_data_dir, mask="old.safetensors")
    assert not (tmp_path / "old-out").exists()


def test_method_or_mask_is_required(tmp_path, tiny_data_dir):
    with pytest.raises(UsageError, match="--mask"):
        run(tmp_path / "out", tiny_data_dir, task="cb")
    with pytest.raises(UsageError, match="unknown --method"):
        run(tmp_path / "out", tiny_data_dir, task="cb", method="nope")


def test_unset_hyperparameters_come_from_the_defaults(tmp_path, tiny_data_dir, mask_path):
    from sparsetune.config import TrainConfig
    from sparsetune.defaults import GENERIC
    from sparsetune.scoring import SCORERS
    from sparsetune.stages.train import train

    record = train(
        TrainConfig(output=str(tmp_path / "out"), mask=str(mask_path), data_dir=str(tiny_data_dir), max_steps=1)
    )
    hyper = record.hyperparameters
    assert (hyper["lr"], hyper["batch_size"], hyper["max_length"]) == (
        SCORERS["random"].default_lr,  # the test mask is a random one: its scorer's rate
        GENERIC.batch_size,
        GENERIC.max_length,
    )
    assert (hyper["task"], hyper["split_seed"], hyper["dev_fraction"]) == ("cb", 42, 0.1)  # from the mask


def test_a_sparse_run_takes_the_learning_rate_of_the_scorer_that_made_its_mask(
    tmp_path, tiny_data_dir, mask_path, monkeypatch
):
    from sparsetune.config import TrainConfig
    from sparsetune.scoring import SCORERS
    from sparsetune.stages.train import train

    assert Mask.load(mask_path).metadata["method"] == "random"
    monkeypatch.setattr(SCORERS["random"], "default_lr", 0.0123)
    config = TrainConfig(output=str(tmp_path / "out"), mask=str(mask_path), data_dir=str(tiny_data_dir), max_steps=1)
    assert train(config).hyperparameters["lr"] == 0.0123


def test_outputs_take_the_umask_modes_not_private_temp_modes(tmp_path, tiny_data_dir, mask_path):
    """safetensors and mkdtemp write 0600/0700; outputs must read like any other file."""
    previous = os.umask(0o027)
    try:
        run(tmp_path / "out", tiny_data_dir, mask=str(mask_path), max_steps=2)
    finally:
        os.umask(previous)
    modes = {path.relative_to(tmp_path): path.stat().st_mode & 0o777 for path in (tmp_path / "out").rglob("*")}
    assert modes and all(mode == (0o750 if (tmp_path / path).is_dir() else 0o640) for path, mode in modes.items()), (
        modes
    )


def test_hyperparameters_read_back_from_a_record(tmp_path, tiny_data_dir, mask_path):
    """What a checkpoint recorded is what a --resume trains with; records from before
    precision and the pooler policy were kept mean fp32 with the pooler eligible, and a
    record missing anything else is refused in one line, not a KeyError mid-setup."""
    from sparsetune.config import TrainConfig
    from sparsetune.errors import FileFormatError
    from sparsetune.models import LEGACY_POOLER
    from sparsetune.stages.train import train
    from sparsetune.stages.train.setup import ResolvedHyperparameters

    record = train(
        TrainConfig(output=str(tmp_path / "out"), mask=str(mask_path), data_dir=str(tiny_data_dir), max_steps=1)
    ).hyperparameters
    assert ResolvedHyperparameters.from_record(record, "here").as_record() == record
    old = {key: value for key, value in record.items() if key not in ("precision", "pooler")}
    assert ResolvedHyperparameters.from_record(old, "here") == ResolvedHyperparameters(
        **{**record, "precision": "fp32", "pooler": LEGACY_POOLER}
    )
    torn = {key: value for key, value in record.items() if key != "warmup_ratio"}
    with pytest.raises(FileFormatError, match=r"^here does not record the hyperparameter\(s\) warmup_ratio; it was"):
        ResolvedHyperparameters.from_record(torn, "here")


def test_resume_keeps_the_loss_scale(tmp_path, tiny_data_dir, monkeypatch):
    """fp16 scales the loss, skips a step whose gradients overflow and halves the scale;
    a resume that started the scale over skipped other steps than an uninterrupted run.
    fp16 is CUDA-only, so a CPU GradScaler stands in for accelerate's, its scale set to
    overflow every few steps (stsb's squared error has gradients large enough). Started
    over at step 2, this resume skipped a step the uninterrupted run did not."""
    from sparsetune.stages.train import loop

    accelerate_runtime = loop.runtime

    def scaled(*args, **kwargs):
        rt = accelerate_runtime(*args, **kwargs)
        rt.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**126, growth_interval=2)
        return rt

    monkeypatch.setattr(loop, "runtime", scaled)
    settings = {"method": "full", "task": "stsb"}
    straight = run(tmp_path / "straight", tiny_data_dir, **settings)
    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "out", tiny_data_dir, progress=_interrupt_at(2), **settings)
    kept = load_checkpoint(tmp_path / "out").info["loss_scale"]
    assert (kept["scale"], kept["_growth_tracker"]) == (2.0**125, 0)  # step 2 overflowed, and was skipped
    resumed = run(tmp_path / "out", tiny_data_dir, resume=True, max_steps=None, eval_every=None, lr=None)
    assert_same_weights(saved_weights(tmp_path / "out"), saved_weights(tmp_path / "straight"))
    assert resumed.best == straight.best
