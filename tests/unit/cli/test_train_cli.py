"""`sparsetune train` / `eval` through the CLI on the tiny BERT: exit codes, messages, files."""

from __future__ import annotations

import json
import os
import signal
from contextlib import contextmanager

import pytest
from typer.testing import CliRunner

from sparsetune.cli import app

from ..training_support import write_mask

runner = CliRunner()


def _train(mask, out, data_dir, *extra):
    args = [
        "train",
        "--mask",
        str(mask),
        "-o",
        str(out),
        "--data-dir",
        str(data_dir),
        "--max-steps",
        "4",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--lr",
        "0.01",
        "--quiet",
        *extra,
    ]
    return runner.invoke(app, args)


def test_train_then_eval_json(tmp_path, tiny_model_dir, tiny_data_dir):
    mask = write_mask(tmp_path, tiny_model_dir)
    result = _train(mask, tmp_path / "out", tiny_data_dir)
    assert result.exit_code == 0, result.output
    for name in ("config.json", "model.safetensors", "run.json", "mask.safetensors", "log.jsonl", "checkpoint"):
        assert (tmp_path / "out" / name).exists(), name
    evaluated = runner.invoke(app, ["eval", str(tmp_path / "out"), "--data-dir", str(tiny_data_dir), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    payload = json.loads(evaluated.stdout)
    assert payload["task"] == "cb" and set(payload["metrics"]) == {"accuracy", "macro_f1", "score"}
    table = runner.invoke(
        app, ["eval", str(tmp_path / "out"), "--data-dir", str(tiny_data_dir)], env={"COLUMNS": "120"}
    )
    assert table.exit_code == 0 and "macro_f1" in table.stdout


def test_existing_output_and_missing_checkpoint_are_one_line_errors(tmp_path, tiny_model_dir, tiny_data_dir):
    mask = write_mask(tmp_path, tiny_model_dir)
    (tmp_path / "out").mkdir()
    result = _train(mask, tmp_path / "out", tiny_data_dir)
    assert result.exit_code == 1 and "--force" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, ["train", "-o", str(tmp_path / "out"), "--resume"])
    assert result.exit_code == 2 and "no checkpoint" in result.stderr
    result = runner.invoke(app, ["train", "-o", str(tmp_path / "x"), "--task", "cb", "--method-option", "novalue"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.stderr


@pytest.mark.parametrize(
    "signum, code, word",
    [(signal.SIGINT, 130, "interrupted (Ctrl-C)"), (signal.SIGTERM, 143, "terminated (SIGTERM)")],
    ids=["SIGINT", "SIGTERM"],
)
def test_a_signal_exits_with_its_code_a_resume_hint_and_resume_finishes(
    signum, code, word, tmp_path, tiny_model_dir, tiny_data_dir, monkeypatch
):
    """Ctrl-C exits 130; SIGTERM (a scheduler, `kill`) 143, as every other command (it was 130)."""

    @contextmanager
    def interrupting_bar(quiet=False):
        def progress(stage, done, total, **info):
            if stage == "train" and done == 2:
                os.kill(os.getpid(), signum)

        yield progress

    monkeypatch.setattr("sparsetune.cli.train.progress_bar", interrupting_bar)
    mask = write_mask(tmp_path, tiny_model_dir)
    result = _train(mask, tmp_path / "out", tiny_data_dir)
    assert result.exit_code == code, result.output
    assert f"{word} at step 2/" in result.stderr and "sparsetune train --resume -o" in result.stderr
    result = runner.invoke(
        app, ["train", "-o", str(tmp_path / "out"), "--resume", "--data-dir", str(tiny_data_dir), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "run.json").read_text())["extra"]["steps"] == 4


def test_eval_of_a_non_run_without_task_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path)])
    assert result.exit_code == 2 and "--task" in result.stderr


def test_progress_is_plain_lines_while_the_run_goes_when_stderr_is_a_pipe(tmp_path, tiny_model_dir, tiny_data_dir):
    """A log (nohup, CI) sees the run as it goes: step, epoch, loss, lr, rate and ETA."""
    import subprocess
    import sys

    mask = write_mask(tmp_path, tiny_model_dir)
    env = {**os.environ, "SPARSETUNE_PROGRESS_SECONDS": "0", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "sparsetune",
        "train",
        "--mask",
        str(mask),
        "--data-dir",
        str(tiny_data_dir),
        "-o",
        str(tmp_path / "out"),
        "--epochs",
        "30",
        "--batch-size",
        "8",
        "--max-length",
        "24",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        first = process.stderr.readline()
        second = process.stderr.readline()
        assert process.poll() is None, "the lines came only at the end"
        assert first.startswith("train 1/150") and "epoch 0.2" in first and "loss" in first and "lr" in first
        assert second.startswith("train 2/150") and "/s" in second and "ETA" in second
    finally:
        process.kill()
        process.wait()


def test_wandb_runs_are_named_after_out_in_the_users_project():
    from sparsetune.stages.train.loop import tracker_settings

    mine = {"WANDB_PROJECT": "mine"}
    assert tracker_settings("wandb", "runs/rte-sam/", mine) == ("mine", {"wandb": {"name": "rte-sam"}})
    assert tracker_settings("wandb", "out", {}) == ("sparsetune", {"wandb": {"name": "out"}})
    assert tracker_settings("tensorboard", "out", mine) == ("sparsetune", {})  # events in OUT/logs/sparsetune


def test_report_to_tensorboard_writes_readable_events(tmp_path, tiny_model_dir, tiny_data_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    mask = write_mask(tmp_path, tiny_model_dir)
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--mask",
            str(mask),
            "--data-dir",
            str(tiny_data_dir),
            "-o",
            str(tmp_path / "out"),
            "--max-steps",
            "4",
            "--eval-every",
            "2",
            "--batch-size",
            "8",
            "--max-length",
            "24",
            "--report-to",
            "tensorboard",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(tmp_path / "out" / "logs" / "sparsetune"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/epoch", "dev/score"} <= scalars
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 3, 4]
    logged = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [event.value for event in events.Scalars("dev/score")] == pytest.approx(
        [line["dev"]["score"] for line in logged if "dev" in line]
    )


def test_model_card_describes_the_run_and_follows_eval(tmp_path, tiny_model_dir, tiny_data_dir):
    mask = write_mask(tmp_path, tiny_model_dir)
    out = tmp_path / "out"
    args = ["--data-dir", str(tiny_data_dir)]
    assert (
        CliRunner()
        .invoke(
            app,
            [
                "train",
                "--mask",
                str(mask),
                "-o",
                str(out),
                "--max-steps",
                "2",
                "--batch-size",
                "8",
                "--max-length",
                "24",
                "-q",
                *args,
            ],
        )
        .exit_code
        == 0
    )
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and "# cb · sparse fine-tune of" in card
    assert "| lr | " in card and "test: not evaluated yet" in card and "sparsetune diff out > delta.safetensors" in card
    assert CliRunner().invoke(app, ["eval", str(out), "-q", *args]).exit_code == 0
    score = json.loads((out / "run.json").read_text())["metrics"]["validation"]["score"]
    assert "- test (the official validation split): " in (out / "README.md").read_text()
    assert f"score {score:.4f}" in (out / "README.md").read_text()


def test_the_budget_in_words_puts_each_share_on_its_own_count():
    """LoRA trains added parameters and no pretrained entry: its 58% is of the eligible
    entries, not of "0 pretrained entries"."""
    from sparsetune.formats.run_record import budget_words

    lora = {"added": 14336, "pretrained_trainable": 0, "eligible": 24704, "head": 1155, "fraction": 14336 / 24704}
    assert budget_words(lora) == (
        "14,336 added parameters and 0 pretrained entries (58% of the 24,704 eligible) + 1,155 head entries"
    )
    sparse = {"added": 0, "pretrained_trainable": 1235, "eligible": 24704, "head": 1155, "fraction": 1235 / 24704}
    assert budget_words(sparse) == "1,235 pretrained entries (5% of the 24,704 eligible) + 1,155 head entries"
