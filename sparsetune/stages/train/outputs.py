"""`OUT/`: claimed when a run starts, written when it ends.

A new run's OUT holds only a copy of its mask until training ends; then the exported model
(a plain transformers dir), the method's own files, the final mask and, last, run.json,
whose presence marks a complete run. Every file is staged and renamed into place, so an
interrupted save never leaves a half-written model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..._version import __version__
from ...config import MASK_FILE
from ...errors import SparsetuneError
from ...formats.checkpoint import has_checkpoint
from ...formats.integrity import file_digest
from ...formats.run_record import RunRecord, is_run_dir
from ...io import atomic_path, normal_modes, output_error, writing
from ...models import head_metadata, quiet_transformers
from ...run_lock import LOCK_FILE, RunLock
from .setup import RunSetup


def claim_output(setup: RunSetup) -> RunLock:
    """Lock OUT (`run_lock`) and, for a new run, empty it (replacing it under --force, or
    taking over what a run killed before its first checkpoint left) and copy the mask in.
    Called once, by the main process, after every check has passed; returns the lock,
    held until the run ends."""
    out = setup.output
    if not setup.resume:
        if out.exists() and not out.is_dir():
            out.unlink()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise output_error(out, err) from None
    lock = RunLock(out).acquire()
    if setup.resume:
        return lock
    try:
        # Read before OUT is emptied: `--mask OUT/mask.safetensors --force` names a file about to go.
        mask_bytes = setup.mask_path.read_bytes() if setup.mask_path is not None else None
        for item in out.iterdir():
            if item.name != LOCK_FILE:
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
        if mask_bytes is not None:
            with atomic_path(out / MASK_FILE) as tmp:
                tmp.write_bytes(mask_bytes)
    except BaseException:  # a full disk, Ctrl-C: leave no half-claimed folder (its old content went with --force)
        shutil.rmtree(out, ignore_errors=True)
        lock.release()
        raise
    return lock


def discard_output(setup: RunSetup) -> None:
    """Remove OUT after a new run failed before its first checkpoint: it holds nothing to
    resume, and a rerun must find the path free, not a folder it refuses."""
    if not setup.resume and not has_checkpoint(setup.output):
        shutil.rmtree(setup.output, ignore_errors=True)


def write_outputs(setup: RunSetup, best: dict[str, Any], steps: int, seconds: float, write: bool = True) -> RunRecord:
    """Plain HF model + tokenizer, the final mask, run.json (written last: it marks a complete run).

    `write=False` (the other processes of a launch) only builds the record."""
    out, hyper = setup.output, setup.hyper
    if not write:
        return _record(setup, best, steps, seconds, setup.mask_sha256)
    model = setup.method.export()
    # Stage the whole model beside OUT's files, then move each into place: an
    # interrupted save leaves only the staging folder, never a half-written model.
    staging = Path(tempfile.mkdtemp(prefix=".model.", dir=out))
    try:
        with writing(out):  # a full disk: one line naming OUT, the checkpoint kept for --resume
            with quiet_transformers():  # no "Writing model shards" bar: our own output says it
                model.save_pretrained(staging)
                setup.tokenizer.save_pretrained(staging)
            setup.method.save_files(staging)
        normal_modes(staging)
        for item in staging.iterdir():
            if (out / item.name).is_dir():
                shutil.rmtree(out / item.name)
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    final = setup.method.final_mask()
    digest = setup.mask_sha256
    if final is not None and setup.mask_sha256 is None:
        # Enough metadata that `train --mask OUT/mask.safetensors` needs no other flag.
        final.metadata.update({"model": hyper.model, "task": hyper.task, "dev_fraction": hyper.dev_fraction})
        final.metadata["seed"] = hyper.split_seed
        final.metadata.update(head_metadata(setup.method.loaded))
        final.save(out / MASK_FILE)
        digest = file_digest(out / MASK_FILE)
    record = _record(setup, best, steps, seconds, digest)
    if setup.resume and is_run_dir(out):  # a finished run resumed again: same best state, same test metrics
        try:
            previous = RunRecord.load(out)
        except SparsetuneError:
            previous = None
        if previous is not None and previous.best.get("step") == record.best.get("step"):
            record.metrics = {
                **{split: values for split, values in previous.metrics.items() if split != "dev"},
                **record.metrics,
            }
    record.save(out)
    return record


def _record(setup: RunSetup, best: dict[str, Any], steps: int, seconds: float, digest: str | None) -> RunRecord:
    hyper = setup.hyper
    return RunRecord(
        base_model=hyper.model,
        task=hyper.task,
        method=hyper.method,
        hyperparameters=hyper.as_record(),
        seed=hyper.seed,
        mask_sha256=digest,
        trainable_parameters=setup.method.summary(),
        best={
            "step": best["step"],
            "epoch": best.get("epoch", 0.0),
            "score": best["score"],
            "dev": best.get("dev", {}),
        },
        metrics={"dev": best.get("dev", {})},
        seconds=round(seconds, 2),
        sparsetune_version=__version__,
        extra={"steps": steps, **({"model_commit": setup.method.loaded.commit} if setup.method.loaded.commit else {})},
    )
