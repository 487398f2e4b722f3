"""Option types shared by several commands: help text written once."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import DATA_DIR_ENV

ModelArg = typer.Argument(
    None,
    help="Hub id or local folder of the pretrained model. Default: the embedded MiniLM-L6-H384.",
    show_default=False,
)
TaskOption = typer.Option(None, "--task", "-t", help="Task name (see `sparsetune tasks`) or a task .json file.")
DataDirOption = typer.Option(
    None,
    "--data-dir",
    envvar=DATA_DIR_ENV,
    help="Folder with <task>/{train,validation}.jsonl. Default: the Hugging Face hub.",
)
SeedOption = typer.Option(42, "--seed", help="Random seed (data split, shuffling, head initialisation).")
ForceOption = typer.Option(False, "--force", help="Overwrite an existing output.")
QuietOption = typer.Option(False, "--quiet", "-q", help="No progress bar or summary.")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
SparsityOption = typer.Option(0.005, "-p", "--sparsity", help="Fraction p of the eligible entries to select, in (0, 1].")
ScopeOption = typer.Option(
    "global", "--scope", help="global: one top-k over all eligible entries (Theorem 3); per-tensor: ⌊n·p⌋ in each tensor."
)

DeviceOption = typer.Option(
    "auto", "--device", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps. Under torchrun each process takes its local GPU."
)
PrecisionOption = typer.Option(
    "fp32", "--precision", help="fp32 (exact), bf16 (autocast; the fast path on recent CPUs and GPUs) or fp16 (CUDA, with loss scaling)."
)
OptionalPrecisionOption = typer.Option(
    None, "--precision", help="fp32, bf16 or fp16 (CUDA) autocast; weights and optimizer state stay fp32. Default: fp32 (a resumed run: its own)."
)

OptionalPath = Optional[Path]
OptionalStr = Optional[str]
