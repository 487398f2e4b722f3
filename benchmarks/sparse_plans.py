"""Each sparse-gradient plan of `sparsetune.core.sparse_delta` measured beside the cost model's estimate.

    python benchmarks/sparse_plans.py [--sam benchmarks/.cache/sam-cb-0.005.safetensors]

For MiniLM's Linear shapes with random masks (p = 0.005, 0.05) and for the SAM-masked
tensors named below, times the values-gradient work of every plan (the forward's saved
slice of x included, the shared input gradient excluded) on N = 4096 tokens, one
thread, CPU time (less sensitive to other jobs than wall time). Prints, per tensor,
the plan the cost model picks, the measured best, and measured / estimated ms for all
plans: use it to re-fit `CPU_COSTS` on another CPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from sparsetune.core import sparse_delta as sd
from sparsetune.formats.mask import Mask

SAM_TENSORS = [
    "bert.encoder.layer.4.intermediate.dense.weight",
    "bert.encoder.layer.4.output.dense.weight",
    "bert.encoder.layer.5.attention.self.value.weight",
    "bert.encoder.layer.5.output.dense.weight",
    "bert.encoder.layer.4.attention.output.dense.weight",
]


def _best_ms(function, repeats: int = 5) -> float:
    function()
    times = []
    for _ in range(repeats):
        started = time.process_time()
        function()
        times.append(time.process_time() - started)
    return min(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default=str(Path(__file__).parent / ".cache" / "sam-cb-0.005.safetensors"))
    parser.add_argument("--tokens", type=int, default=4096)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    cases = []
    for shape in [(384, 384), (1536, 384), (384, 1536)]:
        for p in (0.005, 0.05):
            k = int(shape[0] * shape[1] * p)
            cases.append(
                (
                    f"random {shape} p={p}",
                    shape,
                    torch.randperm(shape[0] * shape[1], generator=generator)[:k].sort().values,
                )
            )
    if Path(args.sam).is_file():
        mask = Mask.load(args.sam)
        cases += [
            (f"sam {name.removeprefix('bert.encoder.')}", mask.shapes[name], mask.indices[name].long())
            for name in SAM_TENSORS
            if name in mask.indices
        ]
    for dtype in (torch.float32, torch.bfloat16):
        print(dtype)
        for label, shape, index in cases:
            x, g = torch.randn(args.tokens, shape[1]).to(dtype), torch.randn(args.tokens, shape[0]).to(dtype)
            estimate = sd.linear_costs(index // shape[1], index % shape[1], shape, sd._costs("cpu", dtype))
            measured = {}
            for kind in sd.PLANS:
                plan = sd.build_linear_plan(index, shape, "cpu", dtype, kind)

                def run():
                    if plan.kind == "sddmm" and plan.cols is not None:
                        saved = x.t().index_select(0, plan.cols)
                    else:
                        saved = x if plan.cols is None else x.index_select(1, plan.cols)
                    return sd._linear_values_grad(plan, g, saved)

                measured[kind] = _best_ms(run)
            chosen, best = min(estimate, key=estimate.get), min(measured, key=measured.get)
            cells = " ".join(
                f"{kind}:{measured[kind]:.1f}/{estimate[kind] * args.tokens / 1e6:.1f}" for kind in sd.PLANS
            )
            print(
                f"  {label:48} k={index.numel():6} model={chosen:6} {measured[chosen]:6.2f} ms  "
                f"best={best:6} {measured[best]:6.2f} ms | {cells}"
            )


if __name__ == "__main__":
    main()
