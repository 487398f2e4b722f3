"""The delta file: only what fine-tuning changed, enough to rebuild the model exactly.

The paper fine-tunes p = 0.5% of the entries; shipping the other
99.5% again is waste. Like composable-sft, a delta stores indices + values:

    sparsetune diff out/ -o delta.safetensors && sparsetune inspect delta.safetensors

File layout (`delta.safetensors`):

- `<name>.indices` (int32; int64 past 2^31 entries): sorted flat positions of the
  entries of pretrained tensor `<name>` that differ from the base;
- `<name>.values`: for `values_dtype=float32` the fine-tuned values θ themselves
  (`values_kind=absolute`, so applying is a copy and bit-exact); for float16/bfloat16
  the differences θ − θ0 (`values_kind=difference`: rounding a small difference loses
  far less than rounding the weight);
- the head tensors dense under their own names, in their own dtype: the new tensors
  (no base to differ from) and, under the pooler policy "head", the BERT pooler the
  classifier reads (trained densely: every entry changed, so dense is half the bytes
  of index + value). `head` in the metadata lists them.

String metadata: `format=sparsetune.delta`, `version`, `base_model` (display name),
`fingerprint` (JSON name -> sha256 prefix of every base tensor the delta touches, so a
wrong base is named tensor by tensor), `shapes`, `head`, `architecture` and `config`
(the fine-tuned model's transformers config, so `apply` writes the same model),
`untouched` (shapes of the pretrained tensors with no change, for per-layer densities),
`values_dtype`, `values_kind`, `task`, `max_length` (the run's), `changed`, `eligible`,
`head_entries`, `top_p`, `pooler` (the policy the head was drawn with),
`checksum` (version 2: of the metadata and every tensor, `formats.integrity`, so a
flipped bit anywhere is caught, not applied; version 1 files carry `content_sha256`, of
the tensors' bytes only, and still load), `sparsetune_version`. Since version 2 the
`fingerprint` covers every pretrained tensor of the base, touched or not, so `apply`
checks the whole base.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from safetensors.torch import save as safetensors_bytes

from ..errors import FileFormatError, MismatchError
from ..io import atomic_path, refuse_to_overwrite
from ..schema import DELTA_METADATA, dict_of, integer, list_of, string, table, validate
from .common import (
    _canonical_header,
    decode_metadata,
    expect_kind,
    json_field,
    layer_table,
    load_tensors,
    safetensors_format,
)
from .integrity import CHECKSUM, verify, with_checksum

KIND = "delta"
FORMAT = "sparsetune.delta"
VERSION = "2"  # 2: a checksum of metadata and tensors; a fingerprint of every base tensor. 1 still loads.
VERSIONS = ("1", "2")
VALUE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Metadata values stored as JSON; all others are plain strings.
TYPED_FIELDS = frozenset(
    {
        "fingerprint",
        "shapes",
        "untouched",
        "head",
        "config",
        "changed",
        "eligible",
        "head_entries",
        "top_p",
        "max_length",
    }
)
INTERNAL_FIELDS = ("format", "version", "shapes", "head", "values_dtype", "values_kind", "content_sha256", CHECKSUM)


def content_digest(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + b"\0")
        digest.update(memoryview(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def index_dtype(numel: int) -> torch.dtype:
    return torch.int32 if numel < 2**31 else torch.int64


@dataclass
class Delta:
    """Changed entries of pretrained tensors, dense new tensors, and what they apply to."""

    indices: dict[str, torch.Tensor]  # name -> (k,) sorted flat positions
    values: dict[str, torch.Tensor]  # name -> (k,) θ (absolute) or θ − θ0 (difference)
    shapes: dict[str, tuple[int, ...]]  # name -> shape of the pretrained tensor
    head: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> dense head tensor
    values_dtype: str = "float32"
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def values_kind(self) -> str:
        return "absolute" if self.values_dtype == "float32" else "difference"

    @property
    def changed(self) -> int:
        """Changed entries of pretrained tensors (the head is not counted, as in p)."""
        return sum(int(index.numel()) for index in self.indices.values())

    @property
    def head_entries(self) -> int:
        return sum(int(tensor.numel()) for tensor in self.head.values())

    def __repr__(self) -> str:  # the dataclass's would print every tensor
        base = self.metadata.get("base_model")
        return (
            f"Delta({self.changed:,} changed entries in {len(self.indices)} tensors + {self.head_entries:,} head "
            f"entries, {self.values_dtype} {self.values_kind} values{f', base {base!r}' if base else ''})"
        )

    @property
    def fingerprint(self) -> dict[str, str]:
        """`tensor_digest` of every base tensor the delta was made against, by name."""
        return dict(self.metadata.get("fingerprint") or {})

    def check_base(self, source: str, digests: Mapping[str, str]) -> None:
        """Refuse a base that is not the one this delta was made from: `digests` holds
        `tensor_digest` of the base's tensors; the first fingerprinted tensor that differs (or
        that the base lacks) is named."""
        for name, expected in self.fingerprint.items():
            if digests.get(name) != expected:
                raise MismatchError(
                    f"{source} was made for base {self.metadata.get('base_model', '?')}, but tensor {name!r} "
                    "of this base "
                    "differs from it; pass the right --base (or --force to apply anyway)"
                )

    def per_tensor(self) -> dict[str, tuple[int, int]]:
        """name -> (changed, numel) for every pretrained tensor, touched or not."""
        touched = {name: (int(self.indices[name].numel()), math.prod(shape)) for name, shape in self.shapes.items()}
        untouched = dict(self.metadata.get("untouched") or {})
        return {**touched, **{name: (0, math.prod(shape)) for name, shape in untouched.items()}}

    # -- bytes and files ------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, index in self.indices.items():
            out[f"{name}.indices"] = index.to(index_dtype(math.prod(self.shapes[name])))
            out[f"{name}.values"] = self.values[name].to(VALUE_DTYPES[self.values_dtype])
        out.update(self.head)
        return {name: tensor.detach().cpu().contiguous() for name, tensor in out.items()}

    def to_bytes(self) -> bytes:
        """The file's bytes (what `diff` writes to stdout)."""
        from .._version import __version__

        tensors = self.tensors()
        metadata = {
            **{key: value for key, value in self.metadata.items() if key not in INTERNAL_FIELDS},
            "format": FORMAT,
            "version": VERSION,
            "shapes": {name: list(shape) for name, shape in self.shapes.items()},
            "head": list(self.head),
            "values_dtype": self.values_dtype,
            "values_kind": self.values_kind,
            "changed": self.changed,
            "head_entries": self.head_entries,
            "sparsetune_version": __version__,
        }
        as_strings = {key: value if isinstance(value, str) else json.dumps(value) for key, value in metadata.items()}
        as_strings = with_checksum(tensors, as_strings)
        return _canonical_header(safetensors_bytes(tensors, metadata=as_strings))  # same delta, same bytes

    def save(self, path: str | os.PathLike, force: bool = False) -> int:
        """Write atomically (refusing to overwrite unless `force`); returns the size in bytes."""
        refuse_to_overwrite(path, force)
        data = self.to_bytes()
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return len(data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Delta":
        """Read and validate: kind, version, checksum, pairing, index ranges, dtypes."""
        raw = expect_kind(path, "delta")
        tensors = load_tensors(path)
        if raw.get("version") == "1":  # a checksum of the tensors only
            if content_digest(tensors) != raw.get("content_sha256"):
                raise FileFormatError(f"{path} is corrupt: its tensors do not match the checksum it was written with")
        else:
            verify(path, tensors, raw, VERSIONS)
        values_dtype = raw.get("values_dtype", "")
        if values_dtype not in VALUE_DTYPES:
            raise FileFormatError(f"{path}: unknown values_dtype {values_dtype!r}")
        kind = "absolute" if values_dtype == "float32" else "difference"
        if raw.get("values_kind", kind) != kind:
            raise FileFormatError(
                f"{path}: values_kind {raw.get('values_kind')!r} does not go with "
                f"values_dtype {values_dtype} (expected {kind!r})"
            )
        layout = {key: json_field(raw, key, path) for key in ("shapes", "head")}
        problem = table(
            {"shapes": dict_of(list_of(integer(0))), "head": list_of(string())}, required=("shapes", "head")
        ).problem(layout, "")
        if problem:
            raise FileFormatError(f"{path}: {problem}")
        shapes = {name: tuple(shape) for name, shape in layout["shapes"].items()}
        head_names = layout["head"]
        expected = {f"{name}.{part}" for name in shapes for part in ("indices", "values")} | set(head_names)
        if set(tensors) != expected:
            odd = sorted(set(tensors) ^ expected)[0]
            raise FileFormatError(f"{path}: tensor {odd!r} is missing or unexpected for the listed shapes and head")
        indices, values = {}, {}
        for name, shape in shapes.items():
            index, value = tensors[f"{name}.indices"], tensors[f"{name}.values"]
            if index.dim() != 1 or value.dim() != 1 or index.numel() != value.numel():
                raise FileFormatError(f"{path}: {name}.indices and {name}.values must be 1-D of equal length")
            if index.dtype not in (torch.int32, torch.int64) or value.dtype != VALUE_DTYPES[values_dtype]:
                raise FileFormatError(f"{path}: {name} has index dtype {index.dtype} / value dtype {value.dtype}")
            n = math.prod(shape)
            if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
                raise FileFormatError(f"{path}: indices of {name!r} are out of range for its {n} entries")
            if index.numel() > 1 and not bool((index[1:] > index[:-1]).all()):
                raise FileFormatError(f"{path}: indices of {name!r} are not sorted and unique")
            indices[name], values[name] = index.to(torch.long), value
        metadata = decode_metadata(raw, path, TYPED_FIELDS, INTERNAL_FIELDS)
        validate(metadata, DELTA_METADATA, str(path), hint="; re-create it with sparsetune diff")
        return cls(indices, values, shapes, {name: tensors[name] for name in head_names}, values_dtype, metadata)


def recognise(path: Path) -> bool:
    return safetensors_format(path) == FORMAT


def summarise(path: Path) -> dict:
    """Where a fine-tune changed the base: changed fraction per layer × module type, and the head."""
    from ..formats.delta import Delta

    delta = Delta.load(path)
    per_tensor = delta.per_tensor()
    eligible = sum(n for _, n in per_tensor.values())
    size = path.stat().st_size
    keep = ("base_model", "task", "max_length", "architecture", "top_p", "sparsetune_version")
    return {
        "metadata": {
            **{k: delta.metadata[k] for k in keep if k in delta.metadata},
            "values": f"{delta.values_dtype} ({delta.values_kind})",
        },
        "totals": {
            "changed": delta.changed,
            "eligible": eligible,
            "density": delta.changed / eligible if eligible else 0.0,
            "tensors_changed": len(delta.indices),
            "head_tensors": len(delta.head),
            "head_entries": delta.head_entries,
            "bytes": size,
            "bytes_per_changed_entry": size / delta.changed if delta.changed else 0.0,
        },
        "per_tensor": {name: {"changed": c, "entries": n, "density": c / n} for name, (c, n) in per_tensor.items()},
        "head": {name: list(tensor.shape) for name, tensor in delta.head.items()},
        # None when no pretrained entry is touched (a LoRA or adapter delta: its own tensors travel as the head)
        "table": layer_table({name: (float(c), n) for name, (c, n) in per_tensor.items()}, "changed fraction")
        if per_tensor
        else None,
    }


def portable_config(hf_config) -> dict:
    """The model's transformers config as a delta records it: without `_name_or_path`,
    the folder it was loaded from as typed (`out` or `./out/`), which would make the same
    run give different bytes and leak a local path into a file meant to be shared."""
    data = json.loads(hf_config.to_json_string(use_diff=False))
    data.pop("_name_or_path", None)
    return data
