"""bf16 against fp32 on one device: the scoring pass, a full step and a sparse step, side by side.

    python benchmarks/device.py --device cpu --data-dir ../shared/data            # this CPU
    python benchmarks/device.py --device cuda --data-dir data --examples 2048     # a GPU

Everything runs through the library's own runtime (`sparsetune.runtime`: accelerate's
placement and autocast), on the embedded MiniLM and the task's train part:
- scoring: `sparsetune.score` (SAM) over `--examples` rows; the figure is the data
  pass's examples per second (model loading and top-k excluded);
- training: the `full` and `sparse` methods (the SAM mask of the fp32 pass), torch
  AdamW, gradient clipping, one step = forward + backward + clip + optimizer step on a
  fixed real batch of `--batch-size` rows; the median of `--steps` timed steps after
  `--warmup`, the device synchronised around each;
- memory: on CUDA the peak allocated bytes per side (reset between sides); on a CPU
  the process's peak RSS is shared by all sides and not reported per side.
Precisions alternate within each round (fp32, bf16, fp32, ...) so that load hits both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def score_rate(args, precision: str):
    from sparsetune.config import ScoreConfig
    from sparsetune.stages.score import score

    result = score(
        ScoreConfig(
            task=args.task,
            data_dir=args.data_dir,
            examples=args.examples,
            batch_size=16,
            max_length=args.max_length,
            output=None,
            device=args.device,
            precision=precision,
        )
    )
    return result.examples / result.pass_seconds, result.mask


def step_time(args, side: str, precision: str, mask) -> dict:
    import torch

    from sparsetune.data import load_task_data, make_loader
    from sparsetune.methods import get_method
    from sparsetune.models import load_model, load_tokenizer
    from sparsetune.runtime import runtime
    from sparsetune.tasks import get_task

    rt = runtime(args.device, precision)
    task = get_task(args.task)
    loaded = load_model(None, task, seed=0)
    method = get_method(side)(mask if side == "sparse" else None)
    model = method.bind(loaded)
    trainable = list(method.trainable().values())
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01)
    model, optimizer = rt.accelerator.prepare(model, optimizer)
    rows = load_task_data(task, args.data_dir).train.select(range(args.batch_size))
    batch = rt.send(next(iter(make_loader(rows, task, load_tokenizer(None), args.batch_size, args.max_length))))
    model.train()
    if rt.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(rt.device)
    times = []
    for step in range(args.warmup + args.steps):
        _sync(rt.device)
        started = time.perf_counter()
        loss = model(**batch).loss
        rt.accelerator.backward(loss)
        rt.accelerator.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(rt.device)
        if step >= args.warmup:
            times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated(rt.device) / 2**20 if rt.device.type == "cuda" else None
    return {"seconds_per_step": statistics.median(times), "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--task", default="rte")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    best: dict[tuple[str, str], dict] = {}
    mask = None
    for _ in range(args.rounds):
        for precision in ("fp32", "bf16"):
            rate, scored = score_rate(args, precision)
            mask = mask if mask is not None or precision != "fp32" else scored
            key = ("score", precision)
            best[key] = {"examples_per_second": max(rate, best.get(key, {}).get("examples_per_second", 0.0))}
            for side in ("full", "sparse"):
                measured = step_time(args, side, precision, mask)
                key = (side, precision)
                if key not in best or measured["seconds_per_step"] < best[key]["seconds_per_step"]:
                    best[key] = measured
    import torch

    device = (
        str(torch.cuda.get_device_name())
        if args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    table = {f"{side}/{precision}": value for (side, precision), value in best.items()}
    ratios = {
        "score_bf16_speedup": best[("score", "bf16")]["examples_per_second"]
        / best[("score", "fp32")]["examples_per_second"],
        "full_step_bf16_over_fp32": best[("full", "bf16")]["seconds_per_step"]
        / best[("full", "fp32")]["seconds_per_step"],
        "sparse_step_bf16_over_fp32": best[("sparse", "bf16")]["seconds_per_step"]
        / best[("sparse", "fp32")]["seconds_per_step"],
        "sparse_over_full_fp32": best[("sparse", "fp32")]["seconds_per_step"]
        / best[("full", "fp32")]["seconds_per_step"],
        "sparse_over_full_bf16": best[("sparse", "bf16")]["seconds_per_step"]
        / best[("full", "bf16")]["seconds_per_step"],
    }
    if args.json:
        print(json.dumps({"device": device, "args": vars(args), "best": table, "ratios": ratios}, indent=2))
        return
    print(
        f"{device} · MiniLM · {args.task} · score {args.examples} examples · steps of {args.batch_size} x "
        f"≤{args.max_length} tokens · best of {args.rounds} rounds"
    )
    print(f"{'':28}{'fp32':>12}{'bf16':>12}{'bf16/fp32':>11}")
    rate32, rate16 = best[("score", "fp32")]["examples_per_second"], best[("score", "bf16")]["examples_per_second"]
    print(f"{'score: examples / s':28}{rate32:>12.1f}{rate16:>12.1f}{rate16 / rate32:>11.2f}")
    for side in ("full", "sparse"):
        a, b = best[(side, "fp32")], best[(side, "bf16")]
        print(
            f"{side + ' step: s':28}{a['seconds_per_step']:>12.4f}{b['seconds_per_step']:>12.4f}"
            f"{b['seconds_per_step'] / a['seconds_per_step']:>11.2f}"
        )
        if a["peak_mib"] is not None:
            print(
                f"{side + ' step: peak MiB':28}{a['peak_mib']:>12.0f}{b['peak_mib']:>12.0f}"
                f"{b['peak_mib'] / a['peak_mib']:>11.2f}"
            )
    print(f"{'sparse / full step':28}{ratios['sparse_over_full_fp32']:>12.2f}{ratios['sparse_over_full_bf16']:>12.2f}")


if __name__ == "__main__":
    main()
