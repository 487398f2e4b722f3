"""`sparsetune eval`: the task's metrics for a run dir or a fine-tuned model (a folder or a hub id).

    sparsetune eval out/ --data-dir ../shared/data

The paper's protocol: `validation` (the default) is the test
set. For a run dir the task comes from run.json, and the metrics are recorded there.
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from ..config import EVAL_BATCH_SIZE, MAX_LENGTH, EvalConfig
from ..runtime import is_main_process
from .app import out
from .options import (
    DataDirOption,
    DeviceOption,
    JsonOption,
    OptionalStr,
    Precision,
    QuietOption,
    RevisionOption,
    Split,
    SplitOption,
    task_option,
)
from .render import print_json, progress_bar
from .train import OptionalInt

EPILOG = (
    "Example: sparsetune eval out/   |   a model dir: sparsetune eval my-model/ --task rte --json   |   "
    "a hub model: sparsetune eval textattack/bert-base-uncased-RTE --task rte"
)


def eval_command(
    target: str = typer.Argument(
        ..., help="A run dir (sparsetune train -o), or a model with a trained task head: a folder or a hub id."
    ),
    task: OptionalStr = task_option(
        "Task of a plain model dir (a run dir knows its own): a name (see `sparsetune tasks`) or a task .json file."
    ),
    split: Split = SplitOption,
    data_dir: OptionalStr = DataDirOption,
    batch_size: int = typer.Option(EVAL_BATCH_SIZE, "--batch-size", help="Examples per forward pass."),
    max_length: OptionalInt = typer.Option(
        None, "--max-length", help=f"Truncate inputs. Default: the run's, else {MAX_LENGTH}."
    ),
    device: str = DeviceOption,
    precision: Optional[Precision] = typer.Option(
        None,
        "--precision",
        rich_help_panel="Runtime",
        help="fp32, bf16 or fp16 (CUDA) autocast. Default: the run's training precision, else fp32.",
    ),
    revision: OptionalStr = RevisionOption,
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Score a fine-tuned model on one split with the task's metrics (every component and score)."""
    from ..stages.evaluate import evaluate

    config = EvalConfig(
        target=target,
        task=task,
        split=split,
        data_dir=data_dir,
        batch_size=batch_size,
        max_length=max_length,
        device=device,
        precision=precision,
        revision=revision,
    )
    with progress_bar(quiet or as_json) as progress:
        result = evaluate(config, progress=progress)
    if not is_main_process():  # one process of a launch speaks
        return
    if as_json:
        print_json(result)
        return
    if quiet:  # the metrics are recorded in a run dir's run.json
        return
    table = Table(title=f"{result['task']} · {result['split']} · {result['examples']} examples")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result["metrics"].items():
        table.add_row(f"[bold]{key}[/]" if key == "score" else key, f"{value:.4f}")
    out.print(table)
