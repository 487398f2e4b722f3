"""Cost of exactly-sparse training (Fu et al. 2023, arXiv 2211.15583) against full fine-tuning.

    python benchmarks/train.py --steps 3 --rounds 2

The embedded MiniLM, a batch of 32 sequences × 128 tokens (seeded random token ids,
no padding, 3-way head), p = 0.005 with a seeded random global mask (it touches every
tensor, the worst case for the per-tensor parametrization overhead). Each side runs
the real method classes (`sparsetune.methods`: `sparse` and `full`) and torch AdamW,
one full training step (forward, backward, clipping, optimizer step) at a time, in its
own child process (so peak RSS is per side), alternating sparse/full per round so that
load from other processes hits both alike; the best round of each is reported.

training-state bytes = trainable parameters + their gradients + AdamW moments (and step
counters), measured from the tensors after a step; the frozen pretrained weights are
the same on both sides and reported separately.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def child(side: str, args) -> dict:
    import torch

    from sparsetune.formats.mask import Mask
    from sparsetune.methods import get_method
    from sparsetune.models import load_model
    from sparsetune.tasks import get_task

    torch.set_num_threads(args.threads)
    loaded = load_model(None, get_task("cb"), seed=0)
    mask = None
    if side == "sparse":
        generator = torch.Generator().manual_seed(0)
        scores = {name: torch.rand(p.shape, generator=generator) for name, p in loaded.eligible().items()}
        mask = Mask.from_scores(scores, args.p)
    method = get_method(side)(mask)
    model = method.bind(loaded)
    model.train()
    trainable = list(method.trainable().values())
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01)
    generator = torch.Generator().manual_seed(1)
    batch = {
        "input_ids": torch.randint(1000, 30000, (args.batch_size, args.length), generator=generator),
        "attention_mask": torch.ones(args.batch_size, args.length, dtype=torch.long),
        "labels": torch.randint(0, 3, (args.batch_size,), generator=generator),
    }
    times, state = [], {}
    for step in range(args.warmup + args.steps):
        started = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        if step == 0:
            moments = [t for per in optimizer.state.values() for t in per.values() if torch.is_tensor(t)]
            state = {
                "params": _bytes(trainable),
                "grads": _bytes(p.grad for p in trainable if p.grad is not None),
                "optimizer": _bytes(moments),
            }
        optimizer.zero_grad(set_to_none=True)
        if step >= args.warmup:
            times.append(time.perf_counter() - started)
    frozen = _bytes(p for p in model.parameters() if not p.requires_grad)
    return {
        "seconds_per_step": min(times),
        "trainable_entries": sum(p.numel() for p in trainable),
        "training_state_bytes": sum(state.values()),
        **{f"{key}_bytes": value for key, value in state.items()},
        "frozen_bytes": frozen,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("-p", type=float, default=0.005)
    parser.add_argument("--threads", type=int, default=1)  # 1: no OpenMP thrashing on a shared machine
    parser.add_argument("--side", choices=["sparse", "full"], help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.side:
        print(json.dumps(child(args.side, args)))
        return
    best: dict[str, dict] = {}
    passthrough = [a for a in sys.argv[1:] if a != "--json"]
    for _ in range(args.rounds):
        for side in ("sparse", "full"):
            done = subprocess.run([sys.executable, __file__, "--side", side, *passthrough], capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if side not in best or result["seconds_per_step"] < best[side]["seconds_per_step"]:
                best[side] = {**result, "peak_rss_mib": max(result["peak_rss_mib"], best.get(side, {}).get("peak_rss_mib", 0))}
    sparse, full = best["sparse"], best["full"]
    ratios = {
        "time_per_step": sparse["seconds_per_step"] / full["seconds_per_step"],
        "training_state_bytes": sparse["training_state_bytes"] / full["training_state_bytes"],
        "peak_rss": sparse["peak_rss_mib"] / full["peak_rss_mib"],
    }
    if args.json:
        print(json.dumps({"sparse": sparse, "full": full, "sparse_over_full": ratios}, indent=2))
        return
    print(f"MiniLM, batch {args.batch_size} x {args.length} tokens, p = {args.p}, best of {args.rounds} rounds x {args.steps} steps")
    print(f"{'':24}{'sparse':>14}{'full':>14}{'sparse/full':>13}")
    rows = [
        ("s / step", "seconds_per_step", "{:.3f}"),
        ("trainable entries", "trainable_entries", "{:,}"),
        ("training-state MiB", "training_state_bytes", "{:.2f}"),
        ("peak RSS MiB", "peak_rss_mib", "{:.0f}"),
    ]
    for label, key, fmt in rows:
        left, right = sparse[key], full[key]
        if key == "training_state_bytes":
            left, right = left / 2**20, right / 2**20
        print(f"{label:24}{fmt.format(left):>14}{fmt.format(right):>14}{left / right:>13.4f}")


if __name__ == "__main__":
    main()
