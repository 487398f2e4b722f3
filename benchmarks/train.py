"""Cost of exactly-sparse training (Fu et al. 2023, arXiv 2211.15583) against full fine-tuning and the floor.

    python benchmarks/train.py --data-dir ../shared/data --rounds 1   # everything below, ~15 min
    python benchmarks/train.py --precision fp32 --masks random -p 0.005 --no-scaling --no-memory

Sides, each one full training step (forward, backward, clipping, AdamW step) at a time
in its own child process with one thread (so peak RSS is per side and OpenMP does not
fight other jobs), in an order that alternates per round. Times then come from one more
process per precision that holds every MiniLM side and runs one step of each in turn,
order reversed every round (`--interleave`, best step per side): on a shared machine,
processes minutes apart see different loads, steps seconds apart see the same. Sides:
  full       `--method full`: every weight trains;
  sparse     `--mask`, the default fast path (`sparsetune.core.sparse_delta`);
  reference  `--mask --method-option backward=reference`: the parametrization
             (dense gradient, then gather), the cost before issue 13;
  floor      every pretrained tensor frozen, but the input gradient computed down to the
             embeddings (a hook makes their output require grad): forward + input
             gradients, no weight gradient. No sparse step can be cheaper.
Precision: fp32, or bf16 autocast around forward + loss (`torch.autocast("cpu")`).
Masks: SAM (`sparsetune score --task cb -p P`, computed once and cached in --cache) and a
seeded random global mask (touches every tensor, spread over all rows and columns:
the worst case for the sparse path).

The embedded MiniLM with a batch of 32 × 128 tokens (seeded random ids, no padding,
3-way head) is the speed regime. The memory regime, where weights dominate: a
BERT-base-sized model built from `BertConfig()` with random weights, batch 8 × 64, a
random mask.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _load(model: str):
    import torch

    from sparsetune.models import LoadedModel, load_model
    from sparsetune.tasks import get_task

    if model == "minilm":
        return load_model(None, get_task("cb"), seed=0)
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    built = BertForSequenceClassification(BertConfig(num_labels=3))  # BERT-base sizes, random weights
    head = frozenset(name for name, _ in built.named_parameters() if name.startswith("classifier."))
    return LoadedModel(model=built, new_parameters=head, source="bert-base-config")


def _mask(args):
    from sparsetune.formats.mask import Mask

    if args.mask == "sam":
        return Mask.load(sam_mask_path(args, args.p))
    return Mask.load(random_mask_path(args, args.model, args.p))


def _side(args, side: str, mask_kind: str | None, p: float | None):
    """(model, trainable tensors, AdamW) for one side; frozen tensors as the side wants them."""
    import argparse as _argparse

    import torch

    from sparsetune.methods import get_method

    loaded = _load(args.model)
    if side == "floor":
        for parameter in loaded.eligible().values():
            parameter.requires_grad_(False)
        for parameter in loaded.head().values():
            parameter.requires_grad_(True)
        embeddings = loaded.model.base_model.embeddings.word_embeddings
        embeddings.register_forward_hook(lambda module, inputs, output: output.requires_grad_(True))
        model, trainable = loaded.model, list(loaded.head().values())
    else:
        mask = None
        if side in ("sparse", "reference"):
            mask = _mask(_argparse.Namespace(**{**vars(args), "mask": mask_kind, "p": p}))
        options = {"backward": side} if mask is not None else {}
        method = get_method("full" if mask is None else "sparse")(mask, options)
        model = method.bind(loaded)
        trainable = list(method.trainable().values())
    model.train()
    return model, trainable, torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01)


def _batch(args):
    import torch

    generator = torch.Generator().manual_seed(1)
    return {
        "input_ids": torch.randint(1000, 30000, (args.batch_size, args.length), generator=generator),
        "attention_mask": torch.ones(args.batch_size, args.length, dtype=torch.long),
        "labels": torch.randint(0, 3, (args.batch_size,), generator=generator),
    }


def _step(model, trainable, optimizer, batch, precision: str) -> tuple[float, float]:
    """One training step; (wall seconds, CPU seconds of this process)."""
    import torch

    started, cpu_started = time.perf_counter(), time.process_time()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    return time.perf_counter() - started, time.process_time() - cpu_started


def child(args) -> dict:
    import torch

    torch.set_num_threads(1)  # one thread: no OpenMP thrashing on a shared machine
    model, trainable, optimizer = _side(args, args.side, args.mask, args.p)
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # imports + model + mask: before any step
    batch = _batch(args)
    times, cpu_times, state = [], [], {}
    for step in range(args.warmup + args.steps):
        wall, cpu = _step(model, trainable, optimizer, batch, args.precision)
        if step == 0:
            moments = [t for per in optimizer.state.values() for t in per.values() if torch.is_tensor(t)]
            state = {
                "params": _bytes(trainable),
                "grads": _bytes(p.grad for p in trainable if p.grad is not None),
                "optimizer": _bytes(moments),
            }
        optimizer.zero_grad(set_to_none=True)
        if step >= args.warmup:
            times.append(wall)
            cpu_times.append(cpu)
    return {
        "seconds_per_step": min(times),
        "cpu_seconds_per_step": min(cpu_times),  # CPU time: less sensitive to other jobs' load
        "trainable_entries": sum(p.numel() for p in trainable),
        "training_state_bytes": sum(state.values()),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "loaded_rss_mib": loaded_rss,
    }


def interleaved(args, sides: list[tuple]) -> dict[tuple, dict]:
    """All `sides` of one precision in this process, one step each in turn, order reversed
    every round: load from other jobs hits every side alike, which separate processes
    minutes apart cannot promise on a shared machine. Best step per side (wall and CPU)."""
    import torch

    torch.set_num_threads(1)
    built = {key: _side(args, key[1], *(key[2:] or (None, None))) for key in sides}
    batch = _batch(args)
    walls: dict[tuple, list] = {key: [] for key in sides}
    cpus: dict[tuple, list] = {key: [] for key in sides}
    for round_ in range(args.warmup + args.steps):
        for key in sides if round_ % 2 == 0 else sides[::-1]:
            model, trainable, optimizer = built[key]
            wall, cpu = _step(model, trainable, optimizer, batch, key[0])
            optimizer.zero_grad(set_to_none=True)
            if round_ >= args.warmup:
                walls[key].append(wall)
                cpus[key].append(cpu)
    return {key: {"seconds_per_step": min(walls[key]), "cpu_seconds_per_step": min(cpus[key])} for key in sides}


def sam_mask_path(args, p: float) -> Path:
    """The cached SAM mask for MiniLM on cb at fraction p; computed once (~1 min) if absent."""
    path = Path(args.cache) / f"sam-cb-{p}.safetensors"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "sparsetune",
            "score",
            "--task",
            "cb",
            "-p",
            str(p),
            "-o",
            str(path),
            "--quiet",
        ]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return path


def random_mask_path(args, model: str, p: float) -> Path:
    """A seeded random global mask, made once by the parent and cached: building it needs a
    score per eligible entry, which would otherwise count in the child's peak RSS."""
    path = Path(args.cache) / f"random-{model}-{p}.safetensors"
    if not path.is_file():
        import torch

        from sparsetune.formats.mask import Mask

        generator = torch.Generator().manual_seed(0)
        scores = {name: torch.rand(t.shape, generator=generator) for name, t in _load(model).eligible().items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        Mask.from_scores(scores, p).save(path)
    return path


def _job_args(job: dict) -> list[str]:
    out = []
    for key, value in job.items():
        out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--masks", nargs="+", default=["sam", "random"], choices=["sam", "random"])
    parser.add_argument("-p", nargs="+", type=float, default=[0.005, 0.05])
    parser.add_argument("--reference", action="store_true", help="also time the reference parametrization")
    parser.add_argument(
        "--scaling", nargs="*", type=float, default=[0.0005, 0.005, 0.05, 0.2], help="SAM fp32 sparse step at these p"
    )
    parser.add_argument("--no-scaling", dest="scaling", action="store_const", const=[])
    parser.add_argument(
        "--no-memory", dest="memory", action="store_false", help="skip the BERT-base 8 x 64 memory regime"
    )
    parser.add_argument("--data-dir", default=os.environ.get("SPARSETUNE_DATA_DIR"))
    parser.add_argument("--cache", default=str(Path(__file__).parent / ".cache"), help="where SAM masks are kept")
    parser.add_argument(
        "--interleave",
        type=int,
        default=6,
        metavar="ROUNDS",
        help="time the MiniLM sides in one process per precision, one step each in turn (0: per-side processes only)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--interleave-precision", help=argparse.SUPPRESS)
    # child-only
    parser.add_argument("--side", choices=["full", "sparse", "reference", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--model", default="minilm", help=argparse.SUPPRESS)
    parser.add_argument("--mask", default="random", help=argparse.SUPPRESS)
    parser.add_argument("--p", dest="p_one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        args.precision, args.p = args.precision[0], args.p_one
        print(json.dumps(child(args)))
        return
    if args.interleave_precision:
        sides = _speed_sides(args, args.interleave_precision)
        print(json.dumps({_key_text(key): value for key, value in interleaved(args, sides).items()}))
        return

    common = {
        "steps": args.steps,
        "warmup": args.warmup,
        "cache": args.cache,
        **({"data_dir": args.data_dir} if args.data_dir else {}),
    }
    speed = {"model": "minilm", "batch_size": args.batch_size, "length": args.length}
    jobs: dict[tuple, dict] = {}
    for precision in args.precision:
        for key in _speed_sides(args, precision):
            jobs[key] = {
                **speed,
                "side": key[1],
                "precision": precision,
                **({"mask": key[2], "p": key[3]} if len(key) == 4 else {}),
            }
    if args.memory:
        regime = {"model": "bert-base", "batch_size": 8, "length": 64, "precision": "fp32"}
        for side in ("full", "sparse", "floor"):
            jobs[("memory", side)] = {**regime, "side": side, "mask": "random", "p": 0.005}
    for job in jobs.values():
        if job.get("mask") == "sam":
            sam_mask_path(argparse.Namespace(cache=args.cache, data_dir=args.data_dir), job["p"])
        elif "p" in job:
            random_mask_path(args, job["model"], job["p"])

    best: dict[tuple, dict] = {}
    keys = list(jobs)
    for round_ in range(args.rounds):
        for key in keys if round_ % 2 == 0 else reversed(keys):
            job = {**common, **jobs[key]}
            if "p" in job:
                job["p_one"] = job.pop("p")
            command = [sys.executable, __file__, *(a.replace("--p-one", "--p") for a in _job_args(job))]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"round {round_ + 1}: {key} {result['seconds_per_step']:.3f} s, {result['peak_rss_mib']:.0f} MiB",
                file=sys.stderr,
            )
            old = best.get(key)
            if old is None or result["seconds_per_step"] < old["seconds_per_step"]:
                best[key] = {**result, "peak_rss_mib": max(result["peak_rss_mib"], old["peak_rss_mib"] if old else 0)}
            else:
                old["peak_rss_mib"] = max(old["peak_rss_mib"], result["peak_rss_mib"])
            best[key]["cpu_seconds_per_step"] = min(best[key]["cpu_seconds_per_step"], result["cpu_seconds_per_step"])
    if args.interleave:
        passthrough = [a for a in sys.argv[1:] if a != "--json"]
        for precision in args.precision:
            command = [
                sys.executable,
                __file__,
                *passthrough,
                "--interleave-precision",
                precision,
                "--steps",
                str(args.interleave),
            ]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
            for text, timed in json.loads(done.stdout.strip().splitlines()[-1]).items():
                key = _key_from_text(text)
                best[key] = {**best[key], "process_seconds_per_step": best[key]["seconds_per_step"], **timed}
                print(
                    f"interleaved: {key} {timed['seconds_per_step']:.3f} s, CPU {timed['cpu_seconds_per_step']:.3f} s",
                    file=sys.stderr,
                )
    if args.json:
        print(json.dumps({_key_text(key): value for key, value in best.items()}, indent=2))
        return
    report(args, best)


def _speed_sides(args, precision: str) -> list[tuple]:
    """The MiniLM sides timed for one precision (the scaling row's p are fp32 SAM)."""
    sides = [(precision, "full"), (precision, "floor")]
    for kind in args.masks:
        for p in args.p:
            sides += [
                (precision, side, kind, p) for side in (("sparse", "reference") if args.reference else ("sparse",))
            ]
    if precision == "fp32":
        sides += [("fp32", "sparse", "sam", p) for p in args.scaling if ("fp32", "sparse", "sam", p) not in sides]
    return sides


def _key_text(key: tuple) -> str:
    return "|".join(map(str, key))


def _key_from_text(text: str) -> tuple:
    parts = text.split("|")
    return tuple(parts[:3]) + (float(parts[3]),) if len(parts) == 4 else tuple(parts)


def report(args, best: dict[tuple, dict]) -> None:
    how = (
        f"interleaved in one process per precision, best of {args.interleave} steps per side"
        if args.interleave
        else f"best of {args.rounds} rounds x {args.steps} steps"
    )
    print(f"MiniLM, batch {args.batch_size} x {args.length}, 1 thread; times: {how}; peak RSS: one process per side")
    print(
        "| precision | mask | p | full s | floor s | sparse s | sparse / full | floor / full | sparse / "
        "floor | same, CPU time: sparse / full, floor / full | peak RSS sparse / full |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for precision in args.precision:
        full, floor = best[(precision, "full")], best[(precision, "floor")]
        for kind in args.masks:
            for p in args.p:
                for side in ("sparse", "reference") if args.reference else ("sparse",):
                    s = best[(precision, side, kind, p)]
                    label = kind if side == "sparse" else f"{kind} (reference)"
                    print(
                        f"| {precision} | {label} | {p} | {full['seconds_per_step']:.3f} | "
                        f"{floor['seconds_per_step']:.3f} "
                        f"| {s['seconds_per_step']:.3f} | **{s['seconds_per_step'] / full['seconds_per_step']:.2f}** "
                        f"| {floor['seconds_per_step'] / full['seconds_per_step']:.2f} | "
                        f"{s['seconds_per_step'] / floor['seconds_per_step']:.2f} "
                        f"| {s['cpu_seconds_per_step'] / full['cpu_seconds_per_step']:.2f}, "
                        f"{floor['cpu_seconds_per_step'] / full['cpu_seconds_per_step']:.2f} "
                        f"| {s['peak_rss_mib'] / full['peak_rss_mib']:.2f} ({s['peak_rss_mib']:.0f} / "
                        f"{full['peak_rss_mib']:.0f} MiB) |"
                    )
    if args.scaling and ("fp32", "full") in best:
        full = best[("fp32", "full")]["seconds_per_step"]
        cells = [
            f"p = {p}: {best[('fp32', 'sparse', 'sam', p)]['seconds_per_step']:.3f} s "
            f"({best[('fp32', 'sparse', 'sam', p)]['seconds_per_step'] / full:.2f})"
            for p in args.scaling
        ]
        print(f"\nscaling (SAM, fp32; ratio to full): {', '.join(cells)}")
    if args.memory:
        full, sparse, floor = (best[("memory", side)] for side in ("full", "sparse", "floor"))
        print("\nBERT-base from BertConfig() (random weights), batch 8 x 64, fp32, random mask p = 0.005")
        print(
            "| side | s / step | peak RSS MiB | RSS / full | RSS before the first step MiB | peak − that, / "
            "full's | training-state MiB |"
        )
        print("|---|---|---|---|---|---|---|")
        grown = lambda r: r["peak_rss_mib"] - r["loaded_rss_mib"]  # noqa: E731
        for name, r in (("full", full), ("sparse", sparse), ("floor", floor)):
            print(
                f"| {name} | {r['seconds_per_step']:.3f} | {r['peak_rss_mib']:.0f} | "
                f"**{r['peak_rss_mib'] / full['peak_rss_mib']:.2f}** "
                f"| {r['loaded_rss_mib']:.0f} | {grown(r):.0f} ({grown(r) / grown(full):.2f}) | "
                f"{r['training_state_bytes'] / 2**20:.2f} |"
            )


if __name__ == "__main__":
    main()
