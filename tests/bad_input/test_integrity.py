"""Integrity: a flipped bit in a mask, scores, delta or checkpoint is an error (never a
different entry trained, a silently different resumed model, or wrong weights applied),
and `apply` checks the whole base, not only the tensors a delta touches."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from .support import (
    assert_unchanged,
    copy_run,
    flip_bit,
    header_size,
    invoke,
    ok,
    read_safetensors,
    rewrite_safetensors,
    run,
    snapshot,
)

# A seeded sample of the header (JSON metadata, tensor table, padding) and of the data.
HEADER_SAMPLES, DATA_SAMPLES = 128, 24


def _positions(data: bytes, seed: int) -> list[tuple[int, int]]:
    header = header_size(data)
    rng = random.Random(seed)
    head = sorted({*range(8), *rng.sample(range(header), min(HEADER_SAMPLES, header))})  # the length prefix: all
    body = rng.sample(range(header, len(data)), min(DATA_SAMPLES, len(data) - header))
    return [(offset, rng.randrange(8)) for offset in [*head, *body]]


def _loads(path: Path) -> bool:
    """Whether `sparsetune inspect` (which loads and checks any sparsetune file) accepts it."""
    result = invoke("inspect", path)
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
    return result.exit_code == 0


@pytest.mark.parametrize("kind", ["mask", "scores", "delta"])
def test_every_flipped_bit_is_caught(kind, pipeline, tmp_path):
    source = {"mask": pipeline.mask, "scores": pipeline.scores, "delta": pipeline.delta}[kind]
    data = source.read_bytes()
    target = tmp_path / "flipped.safetensors"
    missed = []
    for offset, bit in _positions(data, seed=len(data)):
        target.write_bytes(flip_bit(data, offset, bit))
        if _loads(target):
            missed.append((offset, bit))
    assert not missed, f"{len(missed)} flipped bits loaded silently, e.g. {missed[:5]}"


@pytest.mark.parametrize("kind", ["mask", "scores", "delta"])
def test_a_flipped_bit_through_the_cli(kind, pipeline, tmp_path):
    source = {"mask": pipeline.mask, "scores": pipeline.scores, "delta": pipeline.delta}[kind]
    data = source.read_bytes()
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(flip_bit(data, len(data) - 3, 2))  # in the last tensor's bytes
    before = snapshot(tmp_path, pipeline.root)
    if kind == "mask":
        run("train", "--mask", bad, "-o", tmp_path / "out", "--data-dir", pipeline.data, mentions=("corrupt", str(bad)))
    elif kind == "scores":
        run("mask", bad, "-p", "0.1", "-o", tmp_path / "m.safetensors", mentions=("corrupt", str(bad)))
    else:
        run("apply", bad, "-o", tmp_path / "applied", mentions=("corrupt", str(bad)))
    run("inspect", bad, mentions=("corrupt",))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("part", ["tensors.safetensors", "state.json"])
def test_a_flipped_bit_in_a_checkpoint(part, pipeline, tmp_path):
    """A resumed run must never continue from silently different state."""
    path = pipeline.run / "checkpoint" / part
    data = path.read_bytes()
    rng = random.Random(7)
    offsets = (
        rng.sample(range(len(data)), 12)
        if part == "state.json"
        else rng.sample(range(header_size(data), len(data)), 12) + rng.sample(range(header_size(data)), 4)
    )
    for offset in offsets:
        folder = tmp_path / f"run-{offset}"
        copy_run(pipeline.run, folder)
        (folder / "checkpoint" / part).write_bytes(flip_bit(data, offset, offset % 8))
        before = snapshot(folder)
        run("train", "--resume", "-o", folder, "--data-dir", pipeline.data, mentions=("checkpoint",))
        assert_unchanged(before, snapshot(folder))
        shutil.rmtree(folder)


def test_version_1_files_still_load(pipeline, tmp_path):
    """Files from before the checksum (version 1, no `checksum`) load as they did."""
    tensors, metadata = read_safetensors(pipeline.mask)
    metadata = {key: value for key, value in metadata.items() if key != "checksum"} | {"version": "1"}
    legacy = tmp_path / "legacy.safetensors"
    save_file(tensors, str(legacy), metadata=metadata)
    ok("inspect", legacy)
    metadata["version"] = "2"  # but a version 2 file without its checksum is corrupt
    save_file(tensors, str(tmp_path / "stripped.safetensors"), metadata=metadata)
    run("inspect", tmp_path / "stripped.safetensors", mentions=("checksum",))
    metadata["version"] = "9"
    save_file(tensors, str(tmp_path / "future.safetensors"), metadata=metadata)
    run("inspect", tmp_path / "future.safetensors", mentions=("version",))


def test_a_checkpoint_from_before_checksums_still_resumes(pipeline, tmp_path):
    folder = copy_run(pipeline.run, tmp_path / "run")
    state_path = folder / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text())
    for key in ("version", "checksum", "tensors_sha256"):
        state.pop(key)
    state_path.write_text(json.dumps(state))
    ok("train", "--resume", "-o", folder, "--data-dir", pipeline.data)


def test_resume_with_another_mask_of_the_same_counts(pipeline, tmp_path):
    """OUT/mask.safetensors replaced by a valid mask selecting as many entries per tensor
    (here: every index moved by one) loaded the checkpoint's values into other entries:
    a silently different resumed model. The checkpoint records the mask's sha256."""
    folder = copy_run(pipeline.run, tmp_path / "run")
    tensors, metadata = read_safetensors(folder / "mask.safetensors")
    shapes = json.loads(metadata["shapes"])
    moved = {}
    for name, index in tensors.items():
        size = 1
        for extent in shapes[name]:
            size *= extent
        moved[name] = torch.sort((index.long() + 1) % size).values.to(index.dtype)
    rewrite_safetensors(folder / "mask.safetensors", folder / "mask.safetensors", tensors=moved)
    ok("inspect", folder / "mask.safetensors")  # a valid mask in itself
    before = snapshot(tmp_path, pipeline.root)
    run("train", "--resume", "-o", folder, "--data-dir", pipeline.data, mentions=("mask.safetensors", "sha256"))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.fixture(scope="module")
def bitfit_delta(pipeline, tmp_path_factory):
    """A delta that touches the biases only: every weight matrix of the base is untouched."""
    root = tmp_path_factory.mktemp("bitfit")
    data = ("--data-dir", pipeline.data)
    ok("score", pipeline.model, "--task", "cb", "--method", "bitfit", "-o", root / "mask.safetensors", *data)
    ok(
        "train",
        "--mask",
        root / "mask.safetensors",
        "-o",
        root / "run",
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--max-length",
        "24",
        *data,
    )
    ok("diff", root / "run", "-o", root / "delta.safetensors")
    return root / "delta.safetensors"


def test_apply_checks_the_whole_base(bitfit_delta, pipeline, tmp_path):
    """The base differs from the delta's in a tensor the delta does not touch: refused,
    naming it; --force applies anyway."""
    from .support import read_safetensors as read

    tensors, _ = read(bitfit_delta)
    untouched = "encoder.layer.1.intermediate.dense.weight"
    assert f"bert.{untouched}.indices" not in tensors  # bitfit changes biases only
    base = tmp_path / "other-base"
    shutil.copytree(pipeline.model, base)
    weights = load_file(str(base / "model.safetensors"))
    weights[untouched] = weights[untouched].clone()
    weights[untouched][0, 0] += 1e-3
    save_file(weights, str(base / "model.safetensors"), metadata={"format": "pt"})
    before = snapshot(tmp_path, pipeline.root)
    run("apply", bitfit_delta, "--base", base, "-o", tmp_path / "applied", mentions=(f"bert.{untouched}", "--force"))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))
    ok("apply", bitfit_delta, "--base", base, "-o", tmp_path / "applied", "--force")
    assert (tmp_path / "applied" / "model.safetensors").is_file()


def test_apply_of_a_structural_delta_checks_the_whole_base(pipeline, tmp_path):
    base = tmp_path / "other-base"
    shutil.copytree(pipeline.model, base)
    weights = load_file(str(base / "model.safetensors"))
    name = "embeddings.word_embeddings.weight"
    weights[name] = weights[name] + torch.finfo(torch.float32).eps
    save_file(weights, str(base / "model.safetensors"), metadata={"format": "pt"})
    run("apply", pipeline.lora_delta, "--base", base, "-o", tmp_path / "applied", mentions=(f"bert.{name}",))
    assert not (tmp_path / "applied").exists()
