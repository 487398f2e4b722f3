"""`OUT/method/`: the own weights of a structural method (LoRA, adapters), and the way back
to the model they define.

    sparsetune train --method adapter --task cb -o out/ && sparsetune eval out/

    method/method.json               {"format": "sparsetune.method", "method": "lora",
                                      "options": {...}, "base_model": "embedded:all-MiniLM-L6-v2",
                                      "base_revision": "<hub commit; hub bases only>",
                                      "pooler": "head", "head": [...]}
    method/adapter_model.safetensors the method's own tensors (added modules + head + any
                                     pretrained tensor it trains), names as the method gives them
    method/adapter_config.json       LoRA only: peft's config, so peft loads the folder too

A folder holding `method/` (a run dir, or what `apply` writes from a structural delta) is
scored by rebuilding: base model -> the method's structure -> its own tensors
(`methods.structural.load_method_model`). That is the model training evaluated, bit for
bit, whatever else (a merged copy) sits beside it.
`pooler` is part of the structure (LoRA's `modules_to_save` holds the head, the pooler
included under "head"); a method.json from before it has none and was made with the
pooler eligible (`LEGACY_POOLER`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..errors import FileFormatError
from ..io import atomic_path, loads_json
from ..models import display_name, head_metadata
from ..schema import METHOD_DESCRIPTION, validate
from .common import json_format, save_tensors

KIND = "method"
METHOD_DIR = "method"
METHOD_FILE = "method.json"
WEIGHTS_FILE = "adapter_model.safetensors"  # peft's name for an adapter's tensors
FORMAT = "sparsetune.method"
VERSION = "1"


def save_method_dir(method, folder: Path) -> None:
    """Write `folder` (= OUT/method) for a bound structural method."""
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / WEIGHTS_FILE, method.own_tensors(), {"format": "pt"})  # "pt": what peft expects
    description = {
        "format": FORMAT,
        "version": VERSION,
        "method": method.name,
        "options": method.config(),
        "base_model": display_name(method.loaded.source),
        # A hub base is rebuilt at the commit it was trained on, not at the branch's newest.
        **({"base_revision": method.loaded.commit} if method.loaded.commit else {}),
        **head_metadata(method.loaded),
    }
    with atomic_path(folder / METHOD_FILE) as tmp:
        tmp.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")


def has_method_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / METHOD_DIR / METHOD_FILE).is_file()


def read_description(path: str | os.PathLike) -> dict[str, Any]:
    """method.json of the folder `path` (a run dir, or a dir `apply` wrote), its schema
    checked; `methods.structural.read_method_description` also checks the method."""
    return _read(Path(path) / METHOD_DIR / METHOD_FILE)


def _read(file: Path) -> dict[str, Any]:
    try:
        description = loads_json(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FileFormatError(f"{file} is not readable JSON ({err})") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT or "method" not in description:
        raise FileFormatError(f"{file} is not a sparsetune method description")
    validate(description, METHOD_DESCRIPTION, str(file))
    return description


def recognise(path: Path) -> bool:
    """A method folder (OUT/method), or its method.json."""
    return json_format(path / METHOD_FILE if path.is_dir() else path) == FORMAT


def summarise(path: Path) -> dict:
    """What `sparsetune inspect` shows of OUT/method/: the method, its options and its own tensors."""
    from safetensors import safe_open

    folder = path if path.is_dir() else path.parent
    description = _read(folder / METHOD_FILE)
    shapes = {}
    if (folder / WEIGHTS_FILE).is_file():
        with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as handle:
            shapes = {name: handle.get_slice(name).get_shape() for name in handle.keys()}
    return {
        "metadata": {key: description[key] for key in ("method", "base_model", "pooler", "head") if key in description},
        "totals": {"tensors": len(shapes), "entries": sum(math.prod(shape) for shape in shapes.values())},
        "options": description.get("options", {}),
        "tensors": {name: list(shape) for name, shape in shapes.items()},
    }
