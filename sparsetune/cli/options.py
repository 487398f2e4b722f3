"""Option types shared by several commands: help text written once."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal, Optional

import typer

from ..config import DATA_DIR_ENV, DEFAULT_SCOPE, DEFAULT_SEED, DEFAULT_SPARSITY, EVAL_SPLITS, POOLER_POLICIES, SCOPES
from ..methods import METHODS
from ..runtime import DEFAULT_DEVICE, DEFAULT_PRECISION, DEVICES, PRECISIONS, TRACKERS
from ..scoring import SCORERS

ModelArg = typer.Argument(
    None,
    help="Hub id or local folder of the pretrained model. Default: the embedded MiniLM-L6-H384.",
    show_default=False,
)


def task_names() -> tuple[str, ...]:
    from ..tasks import TASKS  # light: the registry imports no torch

    return tuple(sorted(TASKS))


def suggest(names: tuple[str, ...]):
    """An autocompletion callback offering `names` (a value may still be a path);
    `.suggestions` lets the static completion scripts list them too."""

    def complete(incomplete: str) -> list[str]:
        return [name for name in names if name.startswith(incomplete)]

    complete.suggestions = names
    return complete


TASK_NAMES = task_names()
METHOD_NAMES = tuple(sorted(METHODS))  # the registries import no torch: reading them is cheap
SCORER_NAMES = tuple(sorted(SCORERS))
# Fixed choices as Literal types: typer turns them into click Choices (help lists them,
# completions offer them, a wrong value is a usage error naming them).
MethodName = Literal[METHOD_NAMES]
ScorerName = Literal[SCORER_NAMES]
Scope = Literal[SCOPES]
Split = Literal[EVAL_SPLITS]
Precision = Literal[PRECISIONS]
Tracker = Literal[TRACKERS]

TASK_HELP = "Task name (see `sparsetune tasks`) or a task .json file."


def task_option(help: str = TASK_HELP):
    """`--task`: lists and completes the registered task names, and still takes a task .json."""
    return typer.Option(
        None,
        "--task",
        "-t",
        metavar="[" + "|".join(TASK_NAMES) + "|FILE.json]",
        autocompletion=suggest(TASK_NAMES),
        help=help,
    )


TaskOption = task_option()
DataDirOption = typer.Option(
    None,
    "--data-dir",
    envvar=DATA_DIR_ENV,
    help="Folder with <task>/{train,validation}.jsonl. Default: the Hugging Face hub.",
)
SeedOption = typer.Option(DEFAULT_SEED, "--seed", help="Random seed (data split, shuffling, head initialisation).")
ForceOption = typer.Option(False, "--force", help="Overwrite an existing output.")
QuietOption = typer.Option(False, "--quiet", "-q", help="No progress bar or summary.")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
SparsityOption = typer.Option(
    DEFAULT_SPARSITY, "-p", "--sparsity", help="Fraction p of the eligible entries to select, in (0, 1]."
)
ScopeOption = typer.Option(
    DEFAULT_SCOPE,
    "--scope",
    help="global: one top-k over all eligible entries (Theorem 3); per-tensor: ⌊n·p⌋ in each tensor.",
)

DeviceOption = typer.Option(
    DEFAULT_DEVICE,
    "--device",
    rich_help_panel="Runtime",
    metavar="[" + "|".join(DEVICES) + "]",
    help="auto (CUDA when present, then Apple MPS, else CPU), cpu, cuda, cuda:N or mps. Under torchrun each "
    "process takes its local GPU.",
)
PrecisionOption = typer.Option(
    DEFAULT_PRECISION,
    "--precision",
    rich_help_panel="Runtime",
    help="fp32 (exact), bf16 (autocast; the fast path on recent CPUs and GPUs) or fp16 (CUDA, with loss scaling).",
)
OptionalPrecisionOption = typer.Option(
    None,
    "--precision",
    rich_help_panel="Runtime",
    help="fp32, bf16 or fp16 (CUDA) autocast; weights and optimizer state stay fp32. Default: "
    f"{DEFAULT_PRECISION} (a resumed run: its own).",
)
PoolerPolicy = Enum("PoolerPolicy", {name: name for name in POOLER_POLICIES}, type=str)
POOLER_HELP = (
    "head: a pretrained pooler that a BERT-style classifier reads belongs to the task head (trained densely, "
    "not eligible, outside p), as the paper's new RoBERTa head; eligible: it is an ordinary pretrained tensor."
)

REVISION_HELP = "A hub id's branch, tag or commit hash (files record the commit it resolved to)."
RevisionOption = typer.Option(None, "--revision", help=f"{REVISION_HELP} Default: the main branch.")
# train's: with --mask, the mask's recorded revision comes first (stages/train/setup.py)
TrainRevisionOption = typer.Option(
    None, "--revision", help=f"{REVISION_HELP} Default: the mask's recorded revision, else the main branch."
)

OptionalPath = Optional[Path]


def named_path(value: str, flag: str) -> Path:
    """A path option or argument as given: typed `str`, because click turns `""` into
    `Path(".")`, the current folder, and `report -o ""` would write into it."""
    from ..io import check_named

    check_named(value, flag)
    return Path(value)


OptionalPooler = Optional[PoolerPolicy]
OptionalStr = Optional[str]
SplitOption = typer.Option(
    "validation", "--split", help="validation (the test set), dev (held-out part of train) or train."
)
ReportToOption = typer.Option(
    "none",
    "--report-to",
    rich_help_panel="Runtime",
    help="Also log loss, lr and dev metrics to tensorboard (OUT/logs/) or wandb, through accelerate.",
)
