"""`sparsetune score`: one gradient pass over the training data -> mask.safetensors.

    sparsetune score --task rte -p 0.005 --data-dir ../shared/data -o mask.safetensors

SAM, the paper's method, by default. Parses flags into a `ScoreConfig`,
calls `sparsetune.score`, prints the summary.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Optional

import typer

from ..config import BATCH_SIZE, DEFAULT_POOLER, DEFAULT_SCORER, DEFAULT_SPARSITY, MASK_FILE, MAX_LENGTH, ScoreConfig
from ..errors import UsageError
from ..runtime import is_main_process
from ..scoring import SCORERS
from .app import out
from .options import (
    POOLER_HELP,
    DataDirOption,
    DeviceOption,
    ForceOption,
    JsonOption,
    ModelArg,
    OptionalStr,
    PoolerPolicy,
    Precision,
    PrecisionOption,
    QuietOption,
    RevisionOption,
    Scope,
    ScopeOption,
    ScorerName,
    SeedOption,
    TaskOption,
)
from .render import print_json, progress_bar

if TYPE_CHECKING:
    from ..stages.score import ScoreResult


SCORER_HELP = (
    "Scoring method. " + "; ".join(f"{name}: {cls.description}" for name, cls in sorted(SCORERS.items())) + "."
)


def parse_examples(value: str) -> int | None:
    """`all` -> None (the whole train part), else a positive integer."""
    if value.strip().lower() == "all":
        return None
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"--examples must be a positive number or 'all', got {value!r}") from None
    if number < 1:
        raise UsageError(f"--examples must be a positive number or 'all', got {value!r}")
    return number


EPILOG = "Example: sparsetune score --task rte -p 0.005 -o mask.safetensors --save-scores scores.safetensors"


def score_command(
    model: OptionalStr = ModelArg,
    task: OptionalStr = TaskOption,
    p: Optional[float] = typer.Option(
        None,
        "-p",
        "--sparsity",
        help=f"Fraction p of the eligible entries to select, in (0, 1]. Default: {DEFAULT_SPARSITY} (bitfit: "
        "all biases; p is reported).",
    ),
    method: ScorerName = typer.Option(DEFAULT_SCORER, "--method", "-m", help=SCORER_HELP),
    examples: str = typer.Option(
        "all", "--examples", help="Training examples to score on: a number (seeded subset) or all."
    ),
    batch_size: int = typer.Option(BATCH_SIZE, "--batch-size", help="Examples per forward/backward."),
    max_length: int = typer.Option(MAX_LENGTH, "--max-length", help="Truncate inputs to this many tokens."),
    scope: Scope = ScopeOption,
    seed: int = SeedOption,
    data_dir: OptionalStr = DataDirOption,
    output: str = typer.Option(MASK_FILE, "--output", "-o", help="Where to write the mask."),
    save_scores: OptionalStr = typer.Option(
        None, "--save-scores", help="Also write the raw scores here (for `sparsetune mask`)."
    ),
    pooler: PoolerPolicy = typer.Option(DEFAULT_POOLER, "--pooler", help=POOLER_HELP),
    revision: OptionalStr = RevisionOption,
    device: str = DeviceOption,
    precision: Precision = PrecisionOption,
    force: bool = ForceOption,
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Score every pretrained entry on the task's training data and keep the top p as a mask.

    The scoring data is the train part of the protocol split (the dev part and the
    validation/test set are never seen). The task head (new tensors, and by default the
    pooler a BERT-style classifier reads) is not eligible, not counted in p, and always
    trained; the mask records it, so `train --mask` uses the same eligible set.
    """
    from ..stages.score import score

    if not task:
        raise UsageError("--task is required (a name from `sparsetune tasks` or a task .json file)")
    config = ScoreConfig(
        task=task,
        model=model,
        p=p,
        method=method,
        examples=parse_examples(examples),
        batch_size=batch_size,
        max_length=max_length,
        scope=scope,
        seed=seed,
        data_dir=data_dir,
        output=output,
        save_scores=save_scores,
        pooler=pooler.value,
        force=force,
        device=device,
        precision=precision,
        revision=revision,
    )
    with progress_bar(quiet or as_json) as progress:
        result = score(config, progress=progress)
    if not is_main_process():  # one process of a launch speaks
        return
    if as_json:
        print_json(result.summary())
    elif not quiet:
        print_summary(result)


def print_summary(result: "ScoreResult") -> None:
    summary = result.summary()
    say = partial(out.print, soft_wrap=True)  # one line per fact, whatever the terminal width
    for note in summary["notes"]:
        say(f"[yellow]note:[/] {note}")
    say(
        f"selected [bold]{summary['selected']:,}[/] / {summary['eligible']:,} eligible entries "
        f"({100 * summary['density']:.3g}%; p = {summary['p']}, scope {summary['scope']}, method {summary['method']})"
    )
    rate = f"{summary['examples_per_second']:.1f} examples/s" if summary["examples_per_second"] else "no data pass"
    say(
        f"examples {summary['examples']:,} of {summary['examples_available']:,} in the train part · "
        f"{summary['seconds']:.1f} s · {rate}"
    )
    say(
        f"head ({', '.join(summary['head_tensors']) or 'none'}; {summary['head_parameters']:,} entries; "
        f"--pooler {summary['pooler']}): "
        "not eligible, not counted in p, always trained"
    )
    shares = " · ".join(f"{kind} {100 * share:.1f}%" for kind, share in summary["share_by_module_type"].items())
    say(f"share of the mask by module type: {shares}")
    written = [path for path in (summary["output"], summary["scores_output"]) if path]
    if written:
        say(f"wrote {' and '.join(written)}")
