"""Checksums: a flipped bit in a mask, scores, delta or checkpoint is an error, not a
different entry trained, a silently different resumed model or wrong weights applied.

Version 2 of the safetensors formats carries `checksum`, a sha256 over the metadata as
stored (every other key, canonical JSON) and every tensor (name, dtype, shape, bytes).
A bit flipped anywhere in the file then either breaks the safetensors header, changes
a metadata value, a tensor's name, dtype, shape or bytes, or the checksum itself: all
caught. Version 1 files (masks and scores without a checksum, deltas with a checksum of
their tensors only) still load, as they did, so existing runs keep working.

Checkpoints are two files: `state.json` records the sha256 of `tensors.safetensors`'
bytes and a checksum of its own canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Mapping

import torch

from ..errors import FileFormatError

CHECKSUM = "checksum"


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


def checksum(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """sha256 of the metadata strings (all but `checksum`) and of every tensor."""
    digest = hashlib.sha256()
    stored = {key: value for key, value in metadata.items() if key != CHECKSUM}
    digest.update(json.dumps(stored, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(f"\0{name}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode("utf-8"))
        digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


def with_checksum(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> dict[str, str]:
    """`metadata` (strings) plus its `checksum` entry."""
    return {**metadata, CHECKSUM: checksum(tensors, metadata)}


def verify(
    path,
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str],
    versions: tuple[str, ...],
    legacy: tuple[str, ...] = ("1",),
) -> None:
    """Check `version` is known and, for every version but the `legacy` ones, that the
    checksum is present and matches. A legacy file with a checksum is checked too."""
    version = metadata.get("version")
    if version not in versions:
        raise FileFormatError(
            f"{path} is version {version!r} of its format; this sparsetune reads version {', '.join(versions)}: "
            "re-create it with this sparsetune"
        )
    recorded = metadata.get(CHECKSUM)
    if recorded is None:
        if version in legacy:
            return
        raise FileFormatError(f"{path} is corrupt: it has no checksum (metadata key {CHECKSUM!r})")
    if checksum(tensors, metadata) != recorded:
        raise FileFormatError(f"{path} is corrupt: its contents do not match the checksum it was written with")


def bytes_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (a run's mask: the checkpoint and run.json record it)."""
    return bytes_digest(Path(path).read_bytes())


def json_digest(data: Mapping[str, object]) -> str:
    """sha256 of canonical JSON (sorted keys), all keys but `checksum`."""
    stored = {key: value for key, value in data.items() if key != CHECKSUM}
    return hashlib.sha256(json.dumps(stored, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
