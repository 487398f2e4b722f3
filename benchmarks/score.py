"""Cost of `sparsetune score` (SAM, Fu et al. 2023, arXiv 2211.15583) against a bare forward+backward.

    python benchmarks/score.py --data-dir ../shared/data --task rte --examples 128 --rounds 5

Both sides run on the embedded MiniLM over the *same* batches (the train part of the
protocol split, the same seeded subset, same batch size and max length). Each
measurement runs in its own child process, alternating bare/score per round, so that
peak RSS is per side and load from other processes hits both alike; the median of the
per-round ratios is reported (and the best-of-rounds ratio beside it). The ratio of
interest is seconds per example of `score`'s data pass over the bare loop's (target
≤ 1.10); the whole call (model load, data, top-k, no file writing) is reported too.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def bare(args) -> dict:
    """Forward + backward of the mean loss per batch, nothing else."""
    import torch

    from sparsetune.config import ScoreConfig
    from sparsetune.data import make_loader
    from sparsetune.models import load_model, load_tokenizer
    from sparsetune.stages.score import _scoring_rows
    from sparsetune.tasks import get_task

    config = ScoreConfig(
        task=args.task,
        data_dir=args.data_dir,
        examples=args.examples,
        batch_size=args.batch_size,
        max_length=args.max_length,
    )
    task = get_task(config.task)
    loaded = load_model(None, task, seed=config.seed)
    rows, _ = _scoring_rows(config, task, [])
    loader = make_loader(rows, task, load_tokenizer(None), config.batch_size, config.max_length)
    model = loaded.model.eval()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")
    started = time.perf_counter()
    for batch in loader:
        with autocast:
            loss = model(**batch).loss
        loss.backward()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "examples": len(rows)}


def score_side(args) -> dict:
    from sparsetune import score
    from sparsetune.config import ScoreConfig

    config = ScoreConfig(
        task=args.task,
        data_dir=args.data_dir,
        examples=args.examples,
        batch_size=args.batch_size,
        max_length=args.max_length,
        method=args.method,
        output=None,
        device="cpu",
        precision=args.precision,
    )
    result = score(config)
    return {"seconds": result.pass_seconds, "whole_call_seconds": result.seconds, "examples": result.examples}


def child(side: str, args) -> dict:
    result = (bare if side == "bare" else score_side)(args)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--task", default="rte")
    parser.add_argument("--method", default="sam")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: both sides under CPU bf16 autocast (bf16 against fp32 for the pass: benchmarks/device.py)",
    )
    parser.add_argument("--child", choices=["bare", "score"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    forward = [arg for arg in sys.argv[1:]]
    runs: dict[str, list[dict]] = {"bare": [], "score": []}
    for round_number in range(args.rounds):
        for side in ("bare", "score") if round_number % 2 == 0 else ("score", "bare"):
            output = subprocess.run(
                [sys.executable, __file__, *forward, "--child", side], capture_output=True, text=True, check=True
            )
            runs[side].append(json.loads(output.stdout.strip().splitlines()[-1]))
            print(f"round {round_number + 1} {side:5s}: {runs[side][-1]}", file=sys.stderr)
    # Other processes share the CPU: each round's pair ran back to back, so the median of
    # the per-round ratios is the robust figure; the best-of-rounds ratio is printed beside it.
    pairs = [s["seconds"] / s["examples"] / (b["seconds"] / b["examples"]) for s, b in zip(runs["score"], runs["bare"])]
    whole = [
        s["whole_call_seconds"] / (b["seconds"]) * b["examples"] / s["examples"]
        for s, b in zip(runs["score"], runs["bare"])
    ]
    best = {side: min(results, key=lambda r: r["seconds"]) for side, results in runs.items()}
    per_example = {side: best[side]["seconds"] / best[side]["examples"] for side in best}
    report = {
        "task": args.task,
        "method": args.method,
        "precision": args.precision,
        "examples": best["score"]["examples"],
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "rounds": args.rounds,
        "bare_s_per_example": round(per_example["bare"], 5),
        "score_pass_s_per_example": round(per_example["score"], 5),
        "ratio_pass_over_bare_median_of_rounds": round(statistics.median(pairs), 3),
        "ratio_pass_over_bare_per_round": [round(ratio, 3) for ratio in pairs],
        "ratio_pass_over_bare_best_of_rounds": round(per_example["score"] / per_example["bare"], 3),
        "ratio_whole_call_over_bare_median_of_rounds": round(statistics.median(whole), 3),
        "peak_rss_mib_bare": round(max(r["peak_rss_mib"] for r in runs["bare"])),
        "peak_rss_mib_score": round(max(r["peak_rss_mib"] for r in runs["score"])),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
