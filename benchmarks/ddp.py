"""Bytes all-reduced per optimizer step under DDP: exactly-sparse training against full fine-tuning.

    python benchmarks/ddp.py                 # 2 CPU processes (gloo) per side, through torchrun

Each side is launched as `torchrun --standalone --nproc_per_node 2` over the real
training setup: the embedded MiniLM, the cb head, the `sparse` method with a SAM-sized
mask (a seeded random global mask at p = 0.005) or the `full` method, prepared by
accelerate (`sparsetune.runtime`), so DDP sees exactly what `sparsetune train` gives it.
A DDP communication hook counts the bytes of every gradient bucket it all-reduces; the
figure is per optimizer step (the mean over `--steps` steps, which are all alike).
The batch is tiny (2 rows of 16 tokens per process): bytes do not depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def child(args) -> None:
    import torch
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    from sparsetune.formats.mask import Mask
    from sparsetune.methods import get_method
    from sparsetune.models import load_model
    from sparsetune.runtime import runtime
    from sparsetune.tasks import get_task

    torch.set_num_threads(1)
    rt = runtime("cpu", "fp32")
    loaded = load_model(None, get_task("cb"), seed=0)
    mask = None
    if args.side == "sparse":
        generator = torch.Generator().manual_seed(0)
        scores = {name: torch.rand(p.shape, generator=generator) for name, p in loaded.eligible().items()}
        mask = Mask.from_scores(scores, args.p)
    method = get_method(args.side)(mask)
    model = method.bind(loaded)
    trainable = list(method.trainable().values())
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    model, optimizer = rt.accelerator.prepare(model, optimizer)
    counted = {"bytes": 0, "buckets": 0}

    def counting_hook(state, bucket):
        counted["bytes"] += bucket.buffer().numel() * bucket.buffer().element_size()
        counted["buckets"] += 1
        return allreduce_hook(None, bucket)

    model.register_comm_hook(state=None, hook=counting_hook)
    generator = torch.Generator().manual_seed(1 + rt.rank)
    batch = {
        "input_ids": torch.randint(1000, 30000, (2, 16), generator=generator),
        "attention_mask": torch.ones(2, 16, dtype=torch.long),
        "labels": torch.randint(0, 3, (2,), generator=generator),
    }
    model.train()
    for _ in range(args.steps):
        rt.accelerator.backward(model(**batch).loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if rt.is_main:
        print(
            json.dumps(
                {
                    "side": args.side,
                    "bytes_per_step": counted["bytes"] / args.steps,
                    "buckets_per_step": counted["buckets"] / args.steps,
                    "trainable_entries": sum(p.numel() for p in trainable),
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-p", type=float, default=0.005)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--side", choices=["sparse", "full"], help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.side:
        child(args)
        return
    results = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for side in ("sparse", "full"):
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            __file__,
            "--side",
            side,
            "-p",
            str(args.p),
            "--steps",
            str(args.steps),
        ]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        results[side] = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    ratio = results["sparse"]["bytes_per_step"] / results["full"]["bytes_per_step"]
    if args.json:
        print(json.dumps({**results, "sparse_over_full": ratio}, indent=2))
        return
    print(f"MiniLM (cb head), DDP over 2 CPU processes (gloo), p = {args.p}")
    print(f"{'':28}{'sparse':>16}{'full':>16}{'sparse/full':>13}")
    for label, key, fmt in (
        ("bytes all-reduced / step", "bytes_per_step", "{:,.0f}"),
        ("buckets / step", "buckets_per_step", "{:.0f}"),
        ("trainable entries", "trainable_entries", "{:,}"),
    ):
        left, right = results["sparse"][key], results["full"][key]
        print(f"{label:28}{fmt.format(left):>16}{fmt.format(right):>16}{left / right:>13.4f}")


if __name__ == "__main__":
    main()
