"""Size of a sparse fine-tune's delta on MiniLM (Fu et al. 2023, arXiv 2211.15583: p = 0.5%).

    python benchmarks/delta.py            # p = 0.005, the three value dtypes
    python benchmarks/delta.py -p 0.01

Makes a p-sparse change of the real MiniLM (a random mask from `Mask.from_scores` on
random scores, each selected entry moved by N(0, 1e-3)), saves it as a run, diffs it with
every `--values` dtype, and prints bytes per changed entry with the header included: once
for the whole file, once with the dense head's bytes taken out (the issue's measure: the
head is not part of p; it is the classifier and, by default, MiniLM's pooler). It then
applies the float32 delta and checks the weights are bit-identical, and compares the
delta with the full model.safetensors.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from sparsetune.config import ApplyConfig, DiffConfig
from sparsetune.formats.mask import Mask
from sparsetune.formats.run_record import RunRecord
from sparsetune.models import DEFAULT_MODEL_NAME, load_model, load_tokenizer
from sparsetune.stages.apply import apply
from sparsetune.stages.diff import diff
from sparsetune.tasks import get_task


def make_sparse_run(folder: Path, p: float, task: str, seed: int) -> Mask:
    loaded = load_model(None, get_task(task), seed=seed)
    eligible = loaded.eligible()
    generator = torch.Generator().manual_seed(seed)
    scores = {name: torch.rand(param.shape, generator=generator) for name, param in eligible.items()}
    mask = Mask.from_scores(scores, p)
    with torch.no_grad():
        for name, index in mask.indices.items():
            flat = eligible[name].view(-1)  # (numel,)
            flat[index] += torch.randn(index.numel(), generator=generator) * 1e-3
    loaded.model.save_pretrained(folder)
    load_tokenizer(None).save_pretrained(folder)
    # The pooler is task head (the default policy): it travels dense with the classifier.
    RunRecord(
        base_model=DEFAULT_MODEL_NAME, task=task, method="sparse", hyperparameters={"pooler": loaded.pooler}
    ).save(folder)
    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-p", type=float, default=0.005)
    parser.add_argument("--task", default="rte")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mask = make_sparse_run(root / "run", args.p, args.task, args.seed)
        model_bytes = (root / "run" / "model.safetensors").stat().st_size
        print(
            f"MiniLM, task {args.task}: p = {args.p}, {mask.selected:,} of {mask.eligible:,} eligible entries changed"
        )
        print(f"model.safetensors of the run: {model_bytes:,} bytes\n")
        header = (
            f"{'values':<9} {'entries':>9} {'bytes':>10} {'B/entry':>8} {'B/entry, head out':>18} "
            f"{'vs model':>9} {'diff s':>7}"
        )
        print(header)
        print("-" * len(header))
        for values in ("float32", "float16", "bfloat16"):
            out = root / f"{values}.safetensors"
            start = time.perf_counter()
            result = diff(DiffConfig(run=str(root / "run"), output=str(out), values=values))
            seconds = time.perf_counter() - start
            size = out.stat().st_size
            head_bytes = sum(t.numel() * t.element_size() for t in result.delta.head.values())
            changed = result.delta.changed
            assert changed == mask.selected, (changed, mask.selected)
            print(
                f"{values:<9} {changed:>9,} {size:>10,} {size / changed:>8.3f} {(size - head_bytes) / changed:>18.3f}"
                f" {model_bytes / size:>8.1f}x {seconds:>7.2f}"
            )
        start = time.perf_counter()
        apply(ApplyConfig(deltas=(str(root / "float32.safetensors"),), output=str(root / "applied")))
        seconds = time.perf_counter() - start
        tuned, applied = (
            load_file(str(root / "run" / "model.safetensors")),
            load_file(str(root / "applied" / "model.safetensors")),
        )
        exact = set(tuned) == set(applied) and all(
            torch.equal(tuned[k].view(-1).view(torch.uint8), applied[k].view(-1).view(torch.uint8)) for k in tuned
        )
        print(f"\napply float32 delta: {seconds:.2f} s; weights bit-identical to the run: {exact}")
        print(
            "lower bound (4 B index + value, no header): float32 8, float16 6; p·m = "
            f"{math.floor(args.p * mask.eligible):,}"
        )
        if not exact:
            raise SystemExit("round trip is not bit-exact")


if __name__ == "__main__":
    main()
