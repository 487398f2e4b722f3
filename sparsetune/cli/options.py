"""Option types shared by several commands: help text written once."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ..data import DATA_DIR_ENV
from ..config import POOLER_POLICIES

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

PoolerPolicy = Enum("PoolerPolicy", {name: name for name in POOLER_POLICIES}, type=str)
POOLER_HELP = (
    "head: a pretrained pooler that a BERT-style classifier reads belongs to the task head (trained densely, "
    "not eligible, outside p), as the paper's new RoBERTa head; eligible: it is an ordinary pretrained tensor."
)

OptionalPath = Optional[Path]
OptionalPooler = Optional[PoolerPolicy]
OptionalStr = Optional[str]
