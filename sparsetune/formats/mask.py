"""The mask: which entries of which pretrained tensors may change.

File layout (`mask.safetensors`): one 1-D tensor of sorted flat indices
per eligible tensor that has selected entries (int32, or int64 for tensors past 2^31
entries), and string metadata holding everything `train` needs to run with no other
flag: model, task, method, p, scope, examples, seed, versions, plus `shapes`, the
shape of every eligible tensor (JSON), so that a mask can be checked against a model
and report densities of tensors it selects nothing from, and `pooler` ("head" or
"eligible") with `head` (JSON list: the tensors trained densely beside the mask, outside
p), so that `train --mask` uses the eligible set the mask was scored over. Files from
before `pooler` existed lack both and were made with the pooler eligible
(`models.recorded_pooler` reads that from their shapes). `base_sha256` (masks scored
since 0.1.0's base check) is `base_digest` of the eligible tensors the mask was scored
on, so that `train` refuses a mask from other weights of the same shapes (another
checkpoint of the architecture) unless told otherwise.

Selection is top-k (`core.topk`, no copy of the scores) with a deterministic
tie-break (equal scores: tensors in model order, then lower flat position first), so
the same scores always give the same file.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Mapping

import torch

from ..config import DEFAULT_SCOPE, check_scope
from ..core.topk import top_k_many
from ..errors import FileFormatError, MismatchError, UsageError
from ..schema import MASK_METADATA, validate
from .common import (
    decode_metadata,
    expect_kind,
    layer_table,
    load_tensors,
    safetensors_format,
    save_tensors,
    tensor_digest,
)
from .integrity import CHECKSUM, verify

KIND = "mask"
FORMAT = "sparsetune.mask"
VERSION = "2"  # 2: a checksum of metadata and tensors (formats.integrity); 1 still loads
VERSIONS = ("1", "2")
# Metadata values stored as JSON (numbers, the shapes table); all others are plain strings.
TYPED_FIELDS = frozenset(
    {"p", "examples", "seed", "selected", "eligible", "shapes", "max_length", "batch_size", "dev_fraction", "head"}
)


def base_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the named tensors' `tensor_digest`s (a delta's fingerprint, folded into
    one value), in name order: which base weights a mask was scored on. About 0.2 s for
    MiniLM's 90 MB."""
    lines = "".join(f"{name}\0{tensor_digest(tensors[name])}\n" for name in sorted(tensors))
    return hashlib.sha256(lines.encode()).hexdigest()


def check_fraction(p: float, flag: str = "-p") -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or math.isnan(p) or not 0 < p <= 1:
        raise UsageError(f"{flag} must be in (0, 1], got {p}")
    return float(p)


def top_k_positions(values: torch.Tensor, k: int) -> torch.Tensor:
    """Sorted positions of the k largest entries of a 1-D tensor; ties go to lower positions."""
    return top_k_many([values], k)[0]


def budget(count: int, p: float) -> int:
    """⌊count·p⌋ with p read as the decimal it was written as: in floating point 100 × 0.29
    is 28.999…, one entry short of the 29 that -p 0.29 asks for."""
    return math.floor(Fraction(repr(float(p))) * count)


@dataclass
class Mask:
    """Selected flat indices per pretrained tensor, with the metadata that made them."""

    indices: dict[str, torch.Tensor]
    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, object] = field(default_factory=dict)

    # -- construction ---------------------------------------------------------
    @classmethod
    def from_scores(
        cls,
        scores: Mapping[str, torch.Tensor],
        p: float,
        scope: str = DEFAULT_SCOPE,
        metadata: Mapping[str, object] | None = None,
    ) -> "Mask":
        """Keep the top ⌊m·p⌋ entries over all tensors (`global`, Theorem 3) or
        ⌊n_t·p⌋ in each tensor (`per-tensor`, the paper's released code)."""
        p = check_fraction(p)
        check_scope(scope)
        shapes = {name: tuple(value.shape) for name, value in scores.items()}
        indices: dict[str, torch.Tensor] = {}
        if scope == "global":
            eligible = sum(value.numel() for value in scores.values())
            chosen = top_k_many(list(scores.values()), budget(eligible, p))  # no concatenated copy
            indices = dict(zip(scores, chosen))
        else:
            for name, value in scores.items():
                indices[name] = top_k_positions(value, budget(value.numel(), p))
        if not any(value.numel() for value in indices.values()):
            eligible = sum(value.numel() for value in scores.values())
            raise UsageError(f"-p {p} selects no entry of {eligible} with --scope {scope}; pass a larger -p")
        meta = {**(metadata or {}), "p": p, "scope": scope}  # the p and scope used win over inherited ones
        return cls({k: v for k, v in indices.items() if v.numel()}, shapes, meta)

    @classmethod
    def from_bool(cls, selected: Mapping[str, torch.Tensor], metadata: Mapping[str, object] | None = None) -> "Mask":
        """From boolean tensors shaped like the parameters (True = may change)."""
        shapes = {name: tuple(value.shape) for name, value in selected.items()}
        indices = {name: torch.nonzero(value.reshape(-1)).flatten() for name, value in selected.items()}
        return cls({k: v for k, v in indices.items() if v.numel()}, shapes, dict(metadata or {}))

    # -- totals ---------------------------------------------------------------
    @property
    def selected(self) -> int:
        return sum(int(value.numel()) for value in self.indices.values())

    @property
    def eligible(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes.values())

    @property
    def density(self) -> float:
        return self.selected / self.eligible if self.eligible else 0.0

    def scored_on(self, tensors: Mapping[str, torch.Tensor]) -> bool:
        """Are `tensors` the weights this mask was scored on (`base_sha256`)? Masks from
        before the digest was recorded cannot tell, and say yes."""
        recorded = self.metadata.get("base_sha256")
        return recorded is None or base_digest(tensors) == recorded

    def __repr__(self) -> str:  # the dataclass's would print every index tensor
        made = ", ".join(f"{key}={self.metadata[key]!r}" for key in ("method", "task", "p") if key in self.metadata)
        return (
            f"Mask({self.selected:,} of {self.eligible:,} entries in {len(self.indices)} of "
            f"{len(self.shapes)} tensors{', ' + made if made else ''})"
        )

    def per_tensor(self) -> dict[str, tuple[int, int]]:
        """name -> (selected, numel) for every eligible tensor, in model order."""
        return {
            name: (int(self.indices[name].numel()) if name in self.indices else 0, math.prod(shape))
            for name, shape in self.shapes.items()
        }

    def bool_tensor(self, name: str, device: torch.device | str | None = None) -> torch.Tensor:
        """Dense boolean mask of one tensor, made on `device` (the projection methods build
        one per tensor per dev batch: on the GPU, not on the CPU and then copied there)."""
        dense = torch.zeros(math.prod(self.shapes[name]), dtype=torch.bool, device=device)
        if name in self.indices:
            dense[self.indices[name]] = True
        return dense.view(self.shapes[name])

    # -- checks ---------------------------------------------------------------
    def validate_against(self, parameters: Mapping[str, torch.Tensor] | torch.nn.Module) -> None:
        """Raise `MismatchError` naming the first tensor that does not fit the model."""
        if isinstance(parameters, torch.nn.Module):
            parameters = dict(parameters.named_parameters())
        source = self.metadata.get("model", "another model")
        for name, shape in self.shapes.items():
            if name not in parameters:
                raise MismatchError(f"mask tensor {name!r} is not in the model (the mask was made for {source})")
            if tuple(parameters[name].shape) != tuple(shape):
                raise MismatchError(
                    f"mask tensor {name!r} has shape {list(shape)} but the model's is "
                    f"{list(parameters[name].shape)} (the mask was made for {source})"
                )
        problem = self._index_problem()
        if problem:
            raise MismatchError(problem)

    def _index_problem(self) -> str | None:
        """Why the index lists are not sorted, unique, in-range flat positions, or None."""
        for name, index in self.indices.items():
            if name not in self.shapes:
                return f"mask selects entries of {name!r}, which its shapes do not list"
            if index.dim() != 1 or index.dtype.is_floating_point or index.dtype == torch.bool:
                return f"mask tensor {name!r} is not a 1-D integer index list"
            n = math.prod(self.shapes[name])
            if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
                return f"mask indices of {name!r} are out of range for {n} entries"
            if index.numel() > 1 and bool((index[1:] <= index[:-1]).any()):
                return f"mask indices of {name!r} are not sorted and unique"
        return None

    # -- files ----------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write atomically; byte-identical for identical masks."""
        from .._version import __version__

        tensors = {
            name: value.to(torch.int32 if math.prod(self.shapes[name]) < 2**31 else torch.int64)
            for name, value in self.indices.items()
        }
        metadata = {
            **{k: v for k, v in self.metadata.items() if k not in ("shapes", CHECKSUM)},
            "format": FORMAT,
            "version": VERSION,
            "selected": self.selected,
            "eligible": self.eligible,
            "shapes": {name: list(shape) for name, shape in self.shapes.items()},
            "sparsetune_version": __version__,
        }
        save_tensors(path, tensors, metadata, checksum=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Mask":
        raw = expect_kind(path, "mask")
        tensors = load_tensors(path)
        verify(path, tensors, raw, VERSIONS)
        decoded = decode_metadata(raw, path, TYPED_FIELDS, ("format", "version", CHECKSUM))
        validate(decoded, MASK_METADATA, str(path), hint="; re-create the mask with sparsetune score")
        shapes = {name: tuple(shape) for name, shape in decoded["shapes"].items()}
        for name, index in tensors.items():
            if index.dtype not in (torch.int32, torch.int64):
                raise FileFormatError(f"{path}: tensor {name!r} is {index.dtype}, expected int32/int64 indices")
        # Model order (the order of `shapes`), not the file's alphabetical order.
        order = [name for name in shapes if name in tensors] + [name for name in tensors if name not in shapes]
        indices = {name: tensors[name].to(torch.long) for name in order}
        metadata: dict[str, object] = {
            key: value for key, value in decoded.items() if key not in ("shapes", "selected", "eligible")
        }
        mask = cls(indices, shapes, metadata)
        problem = mask._index_problem()
        if problem:
            raise FileFormatError(f"{path}: {problem}")
        for key, actual in (("selected", mask.selected), ("eligible", mask.eligible)):
            if key in decoded and decoded[key] != actual:
                raise FileFormatError(
                    f"{path}: metadata {key}={decoded[key]} but the file holds {actual}; it was edited or is corrupt"
                )
        return mask


def recognise(path: Path) -> bool:
    return safetensors_format(path) == FORMAT


def summarise(path: Path) -> dict:
    """What `sparsetune inspect` shows: metadata, totals, per tensor and per layer × module type."""
    mask = Mask.load(path)
    per_tensor = mask.per_tensor()
    return {
        "metadata": {key: value for key, value in mask.metadata.items()},
        "totals": {
            "selected": mask.selected,
            "eligible": mask.eligible,
            "density": mask.density,
            "tensors": len(per_tensor),
            "tensors_with_selection": sum(1 for selected, _ in per_tensor.values() if selected),
        },
        "per_tensor": {name: {"selected": s, "entries": n, "density": s / n} for name, (s, n) in per_tensor.items()},
        "table": layer_table({name: (float(s), n) for name, (s, n) in per_tensor.items()}, "selected fraction"),
    }
