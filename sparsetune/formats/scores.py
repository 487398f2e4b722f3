"""`scores.safetensors`: the raw per-entry scores of `sparsetune score --save-scores`.

    sparsetune score --task rte --save-scores scores.safetensors
    sparsetune mask scores.safetensors -p 0.01 -o m.safetensors

One float32 tensor per eligible parameter, shaped like it, plus string metadata
(`format=sparsetune.scores`, model, task, method, examples, seed, dev_fraction,
max_length, batch_size, pooler and head (as in a mask: `sparsetune mask` passes them on),
versions, and `shapes` in model order). Keeping the scores makes a sparsity sweep (Fu et
al. 2023, Figure 3) one gradient pass instead of one per p.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from ..errors import FileFormatError
from ..schema import SCORES_METADATA, validate
from .common import (
    decode_metadata,
    expect_kind,
    layer_table,
    load_tensors,
    safetensors_format,
    save_tensors,
)
from .integrity import CHECKSUM, verify
from .mask import TYPED_FIELDS

KIND = "scores"
FORMAT = "sparsetune.scores"
VERSION = "2"  # 2: a checksum of metadata and tensors (formats.integrity); 1 still loads
VERSIONS = ("1", "2")


@dataclass
class Scores:
    """Per-parameter scores (name -> float32 tensor shaped like the parameter) and provenance."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def eligible(self) -> int:
        return sum(tensor.numel() for tensor in self.tensors.values())

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(tensor.shape) for name, tensor in self.tensors.items()}

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically; byte-identical for identical scores and metadata."""
        from .._version import __version__

        metadata = {
            **{key: value for key, value in self.metadata.items() if key != CHECKSUM},
            "format": FORMAT,
            "version": VERSION,
            "eligible": self.eligible,
            # safetensors stores tensors by name; this keeps model order, which global
            # top-k uses to break ties, so rethresholding reproduces `score` exactly.
            "shapes": {name: list(shape) for name, shape in self.shapes.items()},
            "sparsetune_version": __version__,
        }
        save_tensors(path, {name: tensor.float() for name, tensor in self.tensors.items()}, metadata, checksum=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Scores":
        raw = expect_kind(path, "scores")
        stored = load_tensors(path)
        verify(path, stored, raw, VERSIONS)
        decoded = decode_metadata(raw, path, TYPED_FIELDS, ("format", "version", CHECKSUM))
        validate(decoded, SCORES_METADATA, str(path), hint="; re-create it with sparsetune score --save-scores")
        shapes = decoded["shapes"]
        if set(shapes) != set(stored) or any(list(stored[n].shape) != shapes[n] for n in shapes):
            raise FileFormatError(f"{path}: the tensors do not match the recorded shapes (truncated or edited?)")
        tensors = {name: stored[name] for name in shapes}  # model order
        for name, tensor in tensors.items():
            if not tensor.is_floating_point():
                raise FileFormatError(f"{path}: scores of {name!r} are {tensor.dtype}, expected float32")
            if not bool(torch.isfinite(tensor).all()):
                raise FileFormatError(
                    f"{path}: scores of {name!r} hold NaN or infinite values; re-score with sparsetune score"
                )
        metadata: dict[str, object] = {
            key: value for key, value in decoded.items() if key not in ("eligible", "shapes")
        }
        return cls(tensors, metadata)

    @classmethod
    def from_mapping(cls, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, object]) -> "Scores":
        return cls({name: tensor.detach().float().contiguous() for name, tensor in tensors.items()}, dict(metadata))


def recognise(path: Path) -> bool:
    return safetensors_format(path) == FORMAT


def summarise(path: Path) -> dict:
    """What `sparsetune inspect` shows: metadata, totals, mean score per tensor and per layer × module type."""
    scores = Scores.load(path)
    per_tensor = {name: (float(t.double().sum()), t.numel()) for name, t in scores.tensors.items()}
    total = sum(s for s, _ in per_tensor.values())
    maximum = max((float(t.max()) for t in scores.tensors.values() if t.numel()), default=0.0)
    zeros = sum(int((t == 0).sum()) for t in scores.tensors.values())
    return {
        "metadata": dict(scores.metadata),
        "totals": {
            "eligible": scores.eligible,
            "tensors": len(scores.tensors),
            "mean": total / scores.eligible if scores.eligible else 0.0,
            "max": maximum,
            "zero_fraction": zeros / scores.eligible if scores.eligible else 0.0,
        },
        "per_tensor": {name: {"mean": s / n if n else 0.0, "entries": n} for name, (s, n) in per_tensor.items()},
        "table": layer_table(per_tensor, "mean score"),
    }
