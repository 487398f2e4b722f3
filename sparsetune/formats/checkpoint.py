"""`OUT/checkpoint/`: everything `train --resume` needs, in safetensors and JSON only.

A checkpoint is what a resumed run cannot recompute: the method's trainable state,
the best state so far, AdamW's moments, the scheduler, the RNG states and the data
position. The frozen pretrained weights are not in it (they are re-read from the base
model), so a sparse run's checkpoint is k entries, not m. No pickle: a checkpoint
someone sends you cannot run code.

    checkpoint/tensors.safetensors   model/<name>, best/<name>, optim/<name>/<key>, rng/torch
    checkpoint/state.json            step, epoch, position, scheduler, param groups, best, config

The directory is replaced atomically: a kill -9 while saving leaves the previous one.
Since version 2, state.json holds the sha256 of tensors.safetensors' bytes and a checksum
of its own content, so a flipped bit in either file is an error, never a silently
different resumed model; checkpoints from before (no version) still resume.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import FileFormatError, TrainingError
from ..io import atomic_path, loads_json
from ..schema import CHECKPOINT_STATE, validate
from .common import json_format
from .integrity import CHECKSUM, bytes_digest, json_digest

KIND = "checkpoint"
CHECKPOINT_DIR = "checkpoint"
TENSORS = "tensors.safetensors"
STATE = "state.json"
FORMAT = "sparsetune.checkpoint"
VERSION = "2"  # 2: checksums of both files; checkpoints without a version still resume


@dataclass
class Checkpoint:
    """One resumable point of a run."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # torch optimizer state_dict keyed by parameter index
    scheduler: dict[str, Any]
    best: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # epoch, best score, config, ...
    rng: torch.Tensor | None = None


def _optimizer_tensors(state: dict[str, Any], names: list[str]) -> tuple[dict[str, torch.Tensor], list[dict]]:
    tensors = {}
    for index, per_param in state["state"].items():
        for key, value in per_param.items():
            tensors[f"optim/{names[index]}/{key}"] = torch.as_tensor(value)
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in group.items()} for group in state["param_groups"]]
    return tensors, groups


def save_checkpoint(run_dir: str | os.PathLike, checkpoint: Checkpoint, names: list[str]) -> None:
    """Write `run_dir/checkpoint/` atomically; `names` maps optimizer indices to tensors."""
    from safetensors.torch import save

    optim, groups = _optimizer_tensors(checkpoint.optimizer, names)
    tensors = {f"model/{k}": v for k, v in checkpoint.model.items()}
    tensors |= {f"best/{k}": v for k, v in checkpoint.best.items()}
    tensors |= optim
    if checkpoint.rng is not None:
        tensors["rng/torch"] = checkpoint.rng
    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata={"format": FORMAT})
    state = {
        "format": FORMAT,
        "version": VERSION,
        "step": checkpoint.step,
        "parameter_names": names,
        "param_groups": groups,
        "scheduler": checkpoint.scheduler,
        **checkpoint.info,
        "tensors_sha256": bytes_digest(data),
    }
    state[CHECKSUM] = json_digest(json.loads(json.dumps(state)))  # as it will read back
    with atomic_path(Path(run_dir) / CHECKPOINT_DIR) as tmp:
        tmp.mkdir()
        (tmp / TENSORS).write_bytes(data)
        (tmp / STATE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / CHECKPOINT_DIR / STATE).is_file()


def load_checkpoint(run_dir: str | os.PathLike) -> Checkpoint:
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not has_checkpoint(run_dir):
        raise TrainingError(
            f"--resume: {folder} does not exist; start without --resume (add --force to replace {run_dir})"
        )
    return read_checkpoint(folder)


def read_checkpoint(folder: Path) -> Checkpoint:
    """The checkpoint in `folder` (OUT/checkpoint, or a copy of it), its checksums checked."""
    from safetensors.torch import load

    where = folder / STATE
    try:
        state = loads_json(where.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FileFormatError(f"{where} is not valid JSON ({err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise FileFormatError(f"{where} is not a sparsetune checkpoint")
    try:
        data = (folder / TENSORS).read_bytes()
    except OSError as err:
        raise FileFormatError(f"{folder / TENSORS} cannot be read ({err.strerror})") from None
    version = state.get("version")
    if version is not None:  # checkpoints from before version 2 carry no checksums
        if version != VERSION:
            raise FileFormatError(
                f"{where} is version {version!r} of the checkpoint format; this sparsetune reads version {VERSION}"
            )
        if state.get(CHECKSUM) != json_digest(state):
            raise FileFormatError(f"{where} is corrupt: it does not match the checksum it was written with")
        if state.get("tensors_sha256") != bytes_digest(data):
            raise FileFormatError(f"{folder / TENSORS} is corrupt: it does not match the checksum recorded in {STATE}")
    validate(state, CHECKPOINT_STATE, str(where), hint="; the checkpoint cannot be resumed (start over with --force)")
    try:
        tensors = load(data)
    except Exception as err:  # noqa: BLE001 - safetensors raises several types for bad files
        raise FileFormatError(f"{folder / TENSORS} is corrupt or truncated ({err})") from None
    for key in ("format", "version", CHECKSUM, "tensors_sha256"):
        state.pop(key, None)
    names = state.pop("parameter_names")
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            name, _, slot = key[len("optim/") :].rpartition("/")
            if name not in names:
                raise FileFormatError(f"{folder / TENSORS}: optimizer state for {name!r}, which {STATE} does not list")
            per_param.setdefault(names.index(name), {})[slot] = value
        elif not key.startswith(("model/", "best/", "rng/")):
            raise FileFormatError(f"{folder / TENSORS}: unexpected tensor {key!r}")
    groups = state.pop("param_groups")
    for group in groups:
        group.update({k: tuple(v) for k, v in group.items() if k == "betas"})
    return Checkpoint(
        step=state.pop("step"),
        model={k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")},
        best={k[len("best/") :]: v for k, v in tensors.items() if k.startswith("best/")},
        optimizer={"state": per_param, "param_groups": groups},
        scheduler=state.pop("scheduler"),
        rng=tensors.get("rng/torch"),
        info=state,
    )


def recognise(path: Path) -> bool:
    """A checkpoint folder (OUT/checkpoint), or its state.json."""
    return json_format(path / STATE if path.is_dir() else path) == FORMAT


def summarise(path: Path) -> dict:
    """What `sparsetune inspect` shows of a checkpoint: where the run stands, and what it holds."""
    folder = path if path.is_dir() else path.parent
    checkpoint = read_checkpoint(folder)
    hyper = checkpoint.info.get("hyperparameters", {})
    best = checkpoint.info.get("best", {})
    return {
        "metadata": {key: hyper[key] for key in ("model", "task", "method") if key in hyper},
        "totals": {
            "step": checkpoint.step,
            "epoch": checkpoint.info.get("epoch"),
            "best_step": best.get("step"),
            "best_dev_score": best.get("score"),
            "tensors": len(checkpoint.model),
            "entries": sum(tensor.numel() for tensor in checkpoint.model.values()),
            "optimizer_tensors": sum(len(slots) for slots in checkpoint.optimizer["state"].values()),
            "bytes": sum(file.stat().st_size for file in folder.iterdir() if file.is_file()),
        },
        "hyperparameters": hyper,
    }
