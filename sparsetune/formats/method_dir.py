"""`OUT/method/`: the own weights of a structural method (LoRA, adapters), and the way back
to the model they define (Fu et al. 2023, arXiv 2211.15583, compare these baselines).

    sparsetune train --method adapter --task cb -o out/ && sparsetune eval out/

    method/method.json               {"format": "sparsetune.method", "method": "lora",
                                      "options": {...}, "base_model": "embedded:all-MiniLM-L6-v2",
                                      "pooler": "head", "head": [...]}
    method/adapter_model.safetensors the method's own tensors (added modules + head + any
                                     pretrained tensor it trains), names as the method gives them
    method/adapter_config.json       LoRA only: peft's config, so peft loads the folder too

A folder holding `method/` (a run dir, or what `apply` writes from a structural delta) is
scored by rebuilding: base model -> the method's structure -> its own tensors. That is the
model training evaluated, bit for bit, whatever else (a merged copy) sits beside it.
`pooler` is part of the structure (LoRA's `modules_to_save` holds the head, the pooler
included under "head"); a method.json from before it has none and was made with the
pooler eligible (`LEGACY_POOLER`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import FileFormatError, UsageError
from .common import load_tensors, save_tensors
from ..io import atomic_path
from ..models import LEGACY_POOLER, display_name, head_metadata, load_model

METHOD_DIR = "method"
METHOD_FILE = "method.json"
FORMAT = "sparsetune.method"
VERSION = "1"


def save_method_dir(method, folder: Path) -> None:
    """Write `folder` (= OUT/method) for a bound structural method."""
    from ..methods.structural import WEIGHTS_FILE

    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / WEIGHTS_FILE, method.own_tensors(), {"format": "pt"})  # "pt": what peft expects
    description = {
        "format": FORMAT,
        "version": VERSION,
        "method": method.name,
        "options": method.config(),
        "base_model": display_name(method.loaded.source),
        **head_metadata(method.loaded),
    }
    with atomic_path(folder / METHOD_FILE) as tmp:
        tmp.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")


def has_method_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / METHOD_DIR / METHOD_FILE).is_file()


def read_description(path: str | os.PathLike) -> dict[str, Any]:
    file = Path(path) / METHOD_DIR / METHOD_FILE
    try:
        description = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FileFormatError(f"{file} is not readable JSON ({err})") from None
    if description.get("format") != FORMAT or "method" not in description:
        raise FileFormatError(f"{file} is not a sparsetune method description")
    return description


def is_structural(method_name: str) -> bool:
    from ..methods import METHODS

    return bool(getattr(METHODS.get(method_name), "structural", False))


def build(
    method_name: str, options: dict[str, Any], base: str | None, task, tensors, fingerprint: bool = False, *, pooler: str
):
    """Base model + `task` head (with the run's pooler policy) -> the method's structure -> `tensors` loaded.

    Returns the bound method (its `model()` is eval-ready) and, with `fingerprint`, the
    digests of the base's pretrained tensors taken before anything was loaded into them."""
    from .delta import tensor_digest
    from ..methods import get_method

    method_cls = get_method(method_name)
    if not is_structural(method_name):
        raise UsageError(f"method {method_name!r} keeps no weights of its own; its run dir is a plain model")
    loaded = load_model(base, task, seed=0, pooler=pooler)  # head and fresh modules are overwritten below
    digests = {name: tensor_digest(tensor) for name, tensor in loaded.eligible().items()} if fingerprint else {}
    method = method_cls(None, options)
    method.bind(loaded)
    method.load_own(tensors)
    method.model().eval()
    return method, digests


def load_method_model(path: str | os.PathLike, task, base: str | None = None) -> nn.Module:
    """The model a folder with `method/` defines, in eval mode (what `eval` scores)."""
    from ..methods.structural import WEIGHTS_FILE

    description = read_description(path)
    tensors = load_tensors(Path(path) / METHOD_DIR / WEIGHTS_FILE)
    method, _ = build(description["method"], description.get("options") or {}, base or description.get("base_model"), task, tensors,
                      pooler=description.get("pooler", LEGACY_POOLER))
    return method.model()
