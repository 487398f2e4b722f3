"""How long `sparsetune --help` and each command's `--help` take: the CLI's start-up cost.

    python benchmarks/cli_startup.py --runs 5

Each figure is the minimum wall time of `--runs` fresh processes (`sparsetune ... --help`,
output discarded), beside the floor: a bare `python -c pass` in the same interpreter.
Importing `sparsetune.cli` must not import torch, transformers, scipy or datasets; the
commands import what they need when they run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

COMMANDS = ["", "tasks", "score", "mask", "train", "eval", "diff", "apply", "inspect", "grid", "report", "completions"]


def best_of(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    entry = shutil.which("sparsetune") or sys.exit("sparsetune is not on PATH: pip install -e . first")
    floor = best_of([sys.executable, "-c", "pass"], args.runs)
    print(f"{'command':32}{'min s':>8}")
    print(f"{'python -c pass (floor)':32}{floor:>8.3f}")
    for command in COMMANDS:
        argv = [entry, *([command] if command else []), "--help"]
        label = f"sparsetune {command + ' ' if command else ''}--help"
        print(f"{label:32}{best_of(argv, args.runs):>8.3f}")


if __name__ == "__main__":
    main()
