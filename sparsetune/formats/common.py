"""What every sparsetune file shares: safetensors with string metadata naming its kind,
and the per-layer × module-type table that `inspect` shows for masks, scores and deltas.

safetensors, never pickle: loading a file someone sent you must not run their code.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from ..errors import FileFormatError
from ..io import atomic_path, loads_json
from ..models import layer_index, module_type

KINDS = ("mask", "scores", "delta")  # the safetensors kinds
COLUMNS = (
    "embeddings",
    "query",
    "key",
    "value",
    "attention-out",
    "ffn-in",
    "ffn-out",
    "layernorm",
    "bias",
    "pooler",
    "other",
)


def tensor_digest(tensor: torch.Tensor) -> str:
    """sha256 prefix of a tensor's dtype, shape and bytes: equal digests, equal tensors."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    digest = hashlib.sha256(f"{flat.dtype}{list(tensor.shape)}".encode())
    digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()[:16]


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The `__metadata__` of a safetensors file; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as err:  # noqa: BLE001 - safetensors raises several types for bad files
        raise FileFormatError(f"{path} is not a readable safetensors file ({err})") from None


def safetensors_format(path: Path) -> str | None:
    """The `format` metadata of a safetensors file, or None (not one, or unreadable)."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("format")
    except Exception:  # noqa: BLE001 - safetensors raises several types for bad files
        return None


def json_format(path: Path) -> str | None:
    """The `format` field of a JSON file (run.json, method.json, a checkpoint's state.json), or None."""
    if path.suffix != ".json" or not path.is_file():
        return None
    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get("format") if isinstance(data, dict) else None


def file_kind(path: str | os.PathLike) -> str:
    """'mask', 'scores' or 'delta'; an error saying what the file is otherwise."""
    metadata = read_metadata(path)
    fmt = metadata.get("format", "")
    if not fmt.startswith("sparsetune."):
        what = f"format={fmt!r}" if fmt else "no sparsetune metadata"
        raise FileFormatError(f"{path} is a safetensors file but not a sparsetune file ({what})")
    kind = fmt.removeprefix("sparsetune.")
    if kind not in KINDS:
        raise FileFormatError(f"{path} is a sparsetune file of unknown kind {kind!r}")
    return kind


def expect_kind(path: str | os.PathLike, kind: str) -> dict[str, str]:
    """Metadata of `path`, after checking it is a sparsetune `kind` file."""
    found = file_kind(path)
    if found != kind:
        raise FileFormatError(f"{path} is a sparsetune {found} file, expected a {kind} file")
    return read_metadata(path)


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as err:  # noqa: BLE001
        raise FileFormatError(f"{path} is corrupt or truncated ({err})") from None


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, object], checksum: bool = False
) -> None:
    """Atomically write tensors with metadata (non-string values stored as JSON).

    Byte-identical for identical inputs: safetensors writes `__metadata__` from a hash
    map whose order changes between processes, so the header is re-serialised with
    sorted keys (same offsets, same data; still a plain safetensors file). With
    `checksum`, the metadata gains the checksum of itself and the tensors
    (`formats.integrity`).
    """
    as_strings = {key: value if isinstance(value, str) else json.dumps(value) for key, value in metadata.items()}
    tensors = {key: value.contiguous() for key, value in tensors.items()}
    if checksum:
        from .integrity import with_checksum

        as_strings = with_checksum(tensors, as_strings)
    raw = save(tensors, metadata=as_strings)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_canonical_header(raw))


def _canonical_header(raw: bytes) -> bytes:
    """The same safetensors bytes with the JSON header's keys in sorted order."""
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + size])
    text = json.dumps(header, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)  # the data section starts 8-byte aligned, as safetensors pads it
    return struct.pack("<Q", len(text)) + text + raw[8 + size :]


def json_field(metadata: dict[str, str], key: str, path: str | os.PathLike, default=None):
    """A JSON-encoded metadata value, with an error naming the file if it is corrupt."""
    if key not in metadata:
        if default is not None:
            return default
        raise FileFormatError(f"{path} lacks the metadata field {key!r}")
    try:
        return loads_json(metadata[key])
    except json.JSONDecodeError:
        raise FileFormatError(f"{path}: metadata field {key!r} is not valid JSON") from None


def decode_metadata(raw: dict[str, str], path: str | os.PathLike, typed: frozenset[str], internal) -> dict:
    """A file's metadata as values: the `typed` fields JSON-decoded (errors name the
    file and key), the others as stored, the `internal` ones (format, version,
    checksum) left out. Validating the result is the format's (`schema`)."""
    kept = (key for key in raw if key not in internal)
    return {key: json_field(raw, key, path) if key in typed else raw[key] for key in kept}


# -- the per-layer × module-type table ------------------------------------------
def row_label(name: str) -> str:
    layer = layer_index(name)
    if layer is not None:
        return f"layer {layer}"
    for part in ("embeddings", "pooler"):
        if part in name:
            return part
    return "other"


def _row_order(label: str) -> tuple[int, int]:
    if label == "embeddings":
        return (0, 0)
    if label.startswith("layer "):
        return (1, int(label.split()[1]))
    return (2, 0) if label == "pooler" else (3, 0)


def layer_table(per_tensor: dict[str, tuple[float, int]], value: str) -> dict:
    """Sum numerators and entries per (layer, module type); cell = numerator / entries.

    `per_tensor` maps a parameter name to (numerator, entries), e.g. (selected, numel)
    for a mask or (sum of scores, numel) for scores. Empty cells are None.
    """
    sums: dict[tuple[str, str], list[float]] = {}
    for name, (numerator, entries) in per_tensor.items():
        cell = sums.setdefault((row_label(name), module_type(name)), [0.0, 0])
        cell[0] += numerator
        cell[1] += entries
    rows = sorted({row for row, _ in sums}, key=_row_order)
    columns = [column for column in COLUMNS if any(col == column for _, col in sums)]
    cells = [
        [sums[(r, c)][0] / sums[(r, c)][1] if (r, c) in sums and sums[(r, c)][1] else None for c in columns]
        for r in rows
    ]
    entries = [[int(sums[(r, c)][1]) if (r, c) in sums else 0 for c in columns] for r in rows]
    return {"value": value, "rows": rows, "columns": columns, "cells": cells, "entries": entries}
