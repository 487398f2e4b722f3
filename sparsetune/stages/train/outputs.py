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
from ...formats.run_record import RunRecord
from ...io import atomic_path, normal_modes
from ...models import head_metadata
from .setup import RunSetup, _sha256


def claim_output(setup: RunSetup) -> None:
    """Create OUT (replacing it under --force) with a copy of the mask; nothing for a
    resumed run. Called once, by the main process, after every check has passed."""
    out = setup.output
    if setup.resume:
        return
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.mkdir(parents=True)
    if setup.mask_path is not None:
        with atomic_path(out / MASK_FILE) as tmp:
            shutil.copyfile(setup.mask_path, tmp)


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
        final.metadata.update({key: hyper[key] for key in ("model", "task", "dev_fraction") if hyper.get(key) is not None})
        final.metadata["seed"] = hyper["split_seed"]
        final.metadata.update(head_metadata(setup.method.loaded))
        final.save(out / MASK_FILE)
        digest = _sha256(out / MASK_FILE)
    record = _record(setup, best, steps, seconds, digest)
    record.save(out)
    return record


def _record(setup: RunSetup, best: dict[str, Any], steps: int, seconds: float, digest: str | None) -> RunRecord:
    hyper = setup.hyper
    return RunRecord(
        base_model=hyper["model"],
        task=hyper["task"],
        method=hyper["method"],
        hyperparameters=hyper,
        seed=hyper["seed"],
        mask_sha256=digest,
        trainable_parameters=setup.method.summary(),
        best={"step": best["step"], "epoch": best.get("epoch", 0.0), "score": best["score"], "dev": best.get("dev", {})},
        metrics={"dev": best.get("dev", {})},
        seconds=round(seconds, 2),
        sparsetune_version=__version__,
        extra={"steps": steps, **({"model_commit": setup.method.loaded.commit} if setup.method.loaded.commit else {})},
    )
