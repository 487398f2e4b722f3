"""Devices and precision: checked flags, bf16 end to end on the tiny BERT, precision in files."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.config import EvalConfig, ScoreConfig
from sparsetune.errors import UsageError
from sparsetune.formats.mask import Mask
from sparsetune.formats.run_record import RunRecord
from sparsetune.runtime import check_device, check_precision_on, resolve_device, runtime
from sparsetune.stages.evaluate import evaluate
from sparsetune.stages.score import score

from .training_support import run


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_device_syntax_is_accepted(device):
    assert check_device(device) == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CPU", "", "tpu"])
def test_bad_device_names_are_refused(device):
    with pytest.raises(UsageError, match="--device must be one of"):
        check_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_cuda_is_one_line_naming_the_fix():
    with pytest.raises(UsageError, match="sees no CUDA device; use --device cpu"):
        resolve_device("cuda")
    assert resolve_device("auto") in ("cpu", "mps")


def test_fp16_on_a_cpu_is_refused_and_bf16_is_not():
    with pytest.raises(UsageError, match="fp16 needs a GPU.*use --precision bf16"):
        check_precision_on("fp16", "cpu")
    check_precision_on("bf16", "cpu")
    with pytest.raises(UsageError, match="--precision must be one of"):
        check_precision_on("fp8", "cpu")


def test_one_process_switches_precision_between_calls():
    """accelerate's state is a process singleton; a library is called many times."""
    assert runtime("cpu", "bf16").accelerator.mixed_precision == "bf16"
    assert runtime("cpu", "fp32").accelerator.mixed_precision == "no"
    assert runtime("cpu", "bf16").accelerator.mixed_precision == "bf16"


def test_bf16_score_train_eval_end_to_end(tmp_path, tiny_model_dir, tiny_data_dir):
    mask_path = tmp_path / "mask.safetensors"
    result = score(
        ScoreConfig(
            task="cb",
            model=str(tiny_model_dir),
            data_dir=str(tiny_data_dir),
            p=0.05,
            output=str(mask_path),
            precision="bf16",
            device="cpu",
        )
    )
    mask = Mask.load(mask_path)
    assert mask.metadata["precision"] == "bf16" and mask.selected == result.mask.selected > 0
    fp32 = score(ScoreConfig(task="cb", model=str(tiny_model_dir), data_dir=str(tiny_data_dir), p=0.05, output=None))
    # bf16 autocast changes the numbers (not the dtype of what is kept: the scores are fp32)
    assert all(value.dtype == torch.float32 for value in result.scores.values())
    assert any(not torch.equal(result.scores[name], fp32.scores[name]) for name in fp32.scores)

    record = run(tmp_path / "out", tiny_data_dir, mask=str(mask_path), precision="bf16")
    assert record.hyperparameters["precision"] == "bf16"
    assert all(not str(value).startswith("cpu") for value in record.hyperparameters.values())  # no device recorded
    test = evaluate(EvalConfig(target=str(tmp_path / "out"), data_dir=str(tiny_data_dir)))
    assert test["precision"] == "bf16"  # evaluated as trained
    assert RunRecord.load(tmp_path / "out").metrics["validation"] == test["metrics"]


def test_resume_keeps_the_runs_precision(tmp_path, tiny_model_dir, tiny_data_dir):
    from sparsetune.errors import TrainingInterrupted

    from .training_support import write_mask

    mask = write_mask(tmp_path, tiny_model_dir)

    def stop_at_2(stage, done, total, **info):
        if stage == "train" and done == 2:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "out", tiny_data_dir, progress=stop_at_2, mask=str(mask), precision="bf16")
    with pytest.raises(UsageError, match="--precision fp32 differs from the interrupted run's bf16"):
        run(
            tmp_path / "out",
            tiny_data_dir,
            mask=None,
            resume=True,
            precision="fp32",
            **{"max_steps": None, "eval_every": None, "lr": None, "batch_size": None, "max_length": None},
        )
    record = run(
        tmp_path / "out",
        tiny_data_dir,
        mask=None,
        resume=True,
        **{"max_steps": None, "eval_every": None, "lr": None, "batch_size": None, "max_length": None},
    )
    assert record.hyperparameters["precision"] == "bf16"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["score", "--task", "cb", "--device", "gpu"], "--device must be one of"),
        (["score", "--task", "cb", "--precision", "fp16", "--device", "cpu"], "fp16 needs a GPU"),
        (
            ["train", "--method", "full", "--task", "cb", "-o", "OUT", "--precision", "half"],
            "'half' is not one of 'fp32', 'bf16', 'fp16'",
        ),
        (["eval", ".", "--device", "tpu"], "--device must be one of"),
    ],
)
def test_cli_refuses_bad_device_and_precision_in_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written
