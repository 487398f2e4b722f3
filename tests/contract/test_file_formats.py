"""Every file kind in `formats.FORMATS`, automatically: it loads, a corrupted copy is refused
with a `FileFormatError` (never a traceback or wrong numbers), what is read writes back the
same, and `sparsetune inspect` summarises it. A new kind fails here until it has a sample."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.config import DiffConfig, ScoreConfig
from sparsetune.errors import FileFormatError
from sparsetune.formats import FORMATS, checkpoint, delta, log, mask, method_dir, run_record, scores
from sparsetune.stages.diff import diff
from sparsetune.stages.inspect import detect_kind, inspect_file
from sparsetune.stages.score import score
from tests.unit.training_support import run, write_mask


@pytest.fixture(scope="module")
def samples(tmp_path_factory, tiny_model_dir, tiny_data_dir) -> dict[str, Path]:
    """One real file (or folder) of every kind, made by the pipeline on the tiny BERT."""
    root = tmp_path_factory.mktemp("formats")
    mask_path = write_mask(root, tiny_model_dir)
    score(
        ScoreConfig(
            task="cb",
            model=str(tiny_model_dir),
            data_dir=str(tiny_data_dir),
            p=0.05,
            batch_size=8,
            max_length=32,
            output=None,
            save_scores=str(root / "scores.safetensors"),
        )
    )
    run(root / "sparse", tiny_data_dir, mask=str(mask_path), max_steps=2)
    run(root / "lora", tiny_data_dir, method="lora", task="cb", model=str(tiny_model_dir), max_steps=1)
    diff(DiffConfig(run=str(root / "sparse"), output=str(root / "delta.safetensors")))
    return {
        "mask": mask_path,
        "scores": root / "scores.safetensors",
        "delta": root / "delta.safetensors",
        "run": root / "sparse",
        "checkpoint": root / "sparse" / checkpoint.CHECKPOINT_DIR,
        "method": root / "lora" / method_dir.METHOD_DIR,
        "log": root / "sparse" / log.LOG_FILE,
    }


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _state(folder: Path) -> dict:
    return json.loads((folder / checkpoint.STATE).read_text())


def _method_stand_in(folder: Path):
    """What `save_method_dir` reads of a bound structural method, rebuilt from its files."""
    description = json.loads((folder / method_dir.METHOD_FILE).read_text())
    from sparsetune.formats.common import load_tensors

    tensors = load_tensors(folder / method_dir.WEIGHTS_FILE)
    loaded = SimpleNamespace(
        source=description["base_model"],
        commit=description.get("base_revision"),
        pooler=description["pooler"],
        head_names=description["head"],
    )
    return SimpleNamespace(
        name=description["method"], config=lambda: description["options"], own_tensors=lambda: tensors, loaded=loaded
    )


def _round_trip(kind: str, sample: Path, out: Path) -> None:
    """Read `sample`, write it to `out` with the format's own writer, and compare."""
    if kind == "mask":
        mask.Mask.load(sample).save(out)
        assert out.read_bytes() == sample.read_bytes()
    elif kind == "scores":
        scores.Scores.load(sample).save(out)
        assert out.read_bytes() == sample.read_bytes()
    elif kind == "delta":
        assert delta.Delta.load(sample).to_bytes() == sample.read_bytes()
    elif kind == "run":
        run_record.RunRecord.load(sample).save(out)
        assert (out / run_record.RUN_FILE).read_text() == (sample / run_record.RUN_FILE).read_text()
        assert (out / run_record.CARD_FILE).read_text() == (sample / run_record.CARD_FILE).read_text()
    elif kind == "checkpoint":
        read = checkpoint.read_checkpoint(sample)
        checkpoint.save_checkpoint(out, read, _state(sample)["parameter_names"])
        again = checkpoint.read_checkpoint(out / checkpoint.CHECKPOINT_DIR)
        assert _state(out / checkpoint.CHECKPOINT_DIR) == _state(sample)
        for part in ("model", "best"):
            mine, theirs = getattr(again, part), getattr(read, part)
            assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine), part
    elif kind == "method":
        method_dir.save_method_dir(_method_stand_in(sample), out)
        assert json.loads((out / method_dir.METHOD_FILE).read_text()) == json.loads(
            (sample / method_dir.METHOD_FILE).read_text()
        )
        assert (out / method_dir.WEIGHTS_FILE).read_bytes() == (sample / method_dir.WEIGHTS_FILE).read_bytes()
    elif kind == "log":
        writer = log.LogWriter(out, keep_until=None)
        for line in sample.read_text().splitlines():
            writer.write(**json.loads(line))
        writer.close()
        assert out.read_text() == sample.read_text()
    else:
        raise AssertionError(f"no round trip written for {kind}")


# kind -> (how to load it, how to corrupt a copy of it)
LOADERS = {
    "mask": (mask.Mask.load, _truncate),
    "scores": (scores.Scores.load, _truncate),
    "delta": (delta.Delta.load, _flip_last_byte),
    "run": (run_record.RunRecord.load, lambda folder: (folder / run_record.RUN_FILE).write_text("{")),
    "checkpoint": (checkpoint.read_checkpoint, lambda folder: (folder / checkpoint.STATE).write_text("[1, 2")),
    "method": (
        lambda folder: method_dir.read_description(folder.parent),
        lambda folder: (folder / method_dir.METHOD_FILE).write_text("{"),
    ),
    "log": (log.summarise, lambda path: path.write_text(path.read_text() + "not json\n")),
}
KINDS = sorted(FORMATS)


def test_every_kind_has_a_loader_and_a_sample(samples):
    assert set(LOADERS) == set(FORMATS) == set(samples), "add a sample, a loader and a corruption for the new kind"


@pytest.mark.parametrize("kind", KINDS)
def test_loads_and_refuses_a_corrupt_copy(kind, samples, tmp_path):
    load, corrupt = LOADERS[kind]
    load(samples[kind])
    copy = tmp_path / samples[kind].name
    (shutil.copytree if samples[kind].is_dir() else shutil.copyfile)(samples[kind], copy)
    corrupt(copy)
    with pytest.raises(FileFormatError):
        load(copy)


@pytest.mark.parametrize("kind", KINDS)
def test_round_trips(kind, samples, tmp_path):
    _round_trip(kind, samples[kind], tmp_path / samples[kind].name)  # same name: the model card names its folder


@pytest.mark.parametrize("kind", KINDS)
def test_is_recognised_and_inspectable(kind, samples):
    assert [other for other, module in FORMATS.items() if module.recognise(samples[kind])] == [kind]
    assert detect_kind(samples[kind]) == kind
    summary = inspect_file(samples[kind])
    assert summary["kind"] == kind and summary["totals"], summary
    result = CliRunner().invoke(app, ["inspect", str(samples[kind]), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kind"] == kind


def test_a_run_dir_without_run_json_shows_its_checkpoint(samples, tmp_path):
    """A run stopped before it finished has a checkpoint but no run.json: `inspect OUT`
    shows what the checkpoint holds and says how to continue (or that it still trains)."""
    from sparsetune.run_lock import RunLock

    run_dir = tmp_path / "stopped"
    shutil.copytree(samples["checkpoint"], run_dir / checkpoint.CHECKPOINT_DIR)
    summary = inspect_file(run_dir)
    assert summary["kind"] == "checkpoint"
    assert summary["totals"] == inspect_file(samples["checkpoint"])["totals"]
    assert summary["metadata"]["run"].startswith("interrupted")
    assert f"sparsetune train --resume -o {run_dir}" in summary["metadata"]["run"]
    result = CliRunner().invoke(app, ["inspect", str(run_dir)])
    assert result.exit_code == 0 and "interrupted" in result.output, result.output
    lock = RunLock(run_dir).acquire()
    try:
        assert inspect_file(run_dir)["metadata"]["run"].startswith(f"not finished: still training (pid {os.getpid()})")
    finally:
        lock.release()
    shutil.rmtree(run_dir / checkpoint.CHECKPOINT_DIR)
    with pytest.raises(FileFormatError, match="not a sparsetune run dir"):
        inspect_file(run_dir)
