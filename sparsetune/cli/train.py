"""`sparsetune train`: fine-tune exactly the entries of a mask, or with a named method.

    sparsetune train --mask mask.safetensors -o out/ --data-dir ../shared/data

Parses flags into a `TrainConfig`, calls `sparsetune.train`, prints where the run went and
its best dev score. The flags of the methods' own settings (`--lora-r`, `-p`, ...) are not
written here: each method declares them (`methods.registry.option`), and
`with_method_flags` adds them to the command.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, List, Optional

import typer

from ..config import DEFAULT_SEED, TrainConfig
from ..defaults import Hyperparameters
from ..errors import UsageError
from ..methods import MethodFlag, method_flags
from ..runtime import is_main_process
from .app import out
from .options import (
    POOLER_HELP,
    DataDirOption,
    DeviceOption,
    JsonOption,
    MethodName,
    ModelArg,
    OptionalPooler,
    OptionalPrecisionOption,
    OptionalStr,
    Precision,
    QuietOption,
    ReportToOption,
    TaskOption,
    Tracker,
    TrainRevisionOption,
)
from .render import print_json, progress_bar

OptionalInt = Optional[int]
OptionalFloat = Optional[float]


def parse_method_options(items: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--method-option expects KEY=VALUE, got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def with_flag_values(pairs: tuple[tuple[str, str], ...], values: dict[MethodFlag, Any]) -> tuple[tuple[str, str], ...]:
    """Add the method flags given (`--lora-r 8`, `-p 0.01`) as the method options they set."""
    given = {key.replace("-", "_") for key, _ in pairs}
    extra = []
    for flag, value in values.items():
        if value is None:
            continue
        if flag.option in given:
            raise UsageError(f"{flag.flags[0]} and --method-option {flag.option}=... both given; keep one")
        extra.append((flag.option, str(value)))
    return pairs + tuple(extra)


def with_method_flags(command: Callable) -> Callable:
    """Give `command` one option per flag a method declares (`method_flags()`), placed after
    its `method_option` parameter; their values reach it as `flag_values={MethodFlag: value}`."""
    flags = method_flags()
    signature = inspect.signature(command)
    taken = {
        name for param in signature.parameters.values() for name in getattr(param.default, "param_decls", ()) or ()
    }
    parameters = []
    for param in signature.parameters.values():
        if param.name == "flag_values":
            continue
        parameters.append(param)
        if param.name == "method_option":
            for flag in flags:
                if taken & set(flag.flags):
                    raise ValueError(
                        f"method setting {flag.option!r}: {sorted(taken & set(flag.flags))[0]} is already a train flag"
                    )
                option = typer.Option(None, *flag.flags, rich_help_panel=flag.panel, help=flag.help, show_default=False)
                parameters.append(
                    inspect.Parameter(f"flag_{flag.option}", param.kind, default=option, annotation=Optional[flag.type])
                )

    @functools.wraps(command)
    def run(**kwargs):
        values = {flag: kwargs.pop(f"flag_{flag.option}") for flag in flags}
        return command(**kwargs, flag_values=values)

    run.__signature__ = signature.replace(parameters=parameters)
    return run


EPILOG = (
    "Example: sparsetune train --mask mask.safetensors -o out/   |   baseline: sparsetune train "
    "--method full --task cb -o full/"
)


@with_method_flags
def train_command(
    model: OptionalStr = ModelArg,
    mask: OptionalStr = typer.Option(
        None, "--mask", help="Mask file from `sparsetune score`: train exactly its entries (method sparse)."
    ),
    method: Optional[MethodName] = typer.Option(
        None, "--method", "-m", help="Training method (sparse with --mask; full, ...). Default: sparse."
    ),
    task: OptionalStr = TaskOption,
    output: str = typer.Option(
        ..., "--output", "-o", help="Run directory to create (model, run.json, log.jsonl, checkpoint/)."
    ),
    epochs: OptionalInt = typer.Option(
        None, "--epochs", help="Passes over the train part. Default: per task (README)."
    ),
    max_steps: OptionalInt = typer.Option(
        None, "--max-steps", help="Stop after this many optimizer steps (overrides --epochs)."
    ),
    lr: OptionalFloat = typer.Option(
        None, "--lr", help="Peak learning rate of AdamW. Default: per task and method (README)."
    ),
    batch_size: OptionalInt = typer.Option(None, "--batch-size", help="Examples per step. Default: per task."),
    max_length: OptionalInt = typer.Option(
        None, "--max-length", help="Truncate inputs to this many tokens. Default: per task."
    ),
    warmup_ratio: OptionalFloat = typer.Option(
        None, "--warmup-ratio", help=f"Fraction of steps of linear warm-up. Default: {Hyperparameters.warmup_ratio}."
    ),
    weight_decay: OptionalFloat = typer.Option(
        None,
        "--weight-decay",
        help=f"AdamW weight decay (trainable entries only). Default: {Hyperparameters.weight_decay}.",
    ),
    seed: OptionalInt = typer.Option(
        None, "--seed", help=f"Seed for head initialisation, data order and dropout. Default: {DEFAULT_SEED}."
    ),
    eval_every: OptionalInt = typer.Option(
        None, "--eval-every", help="Evaluate on the dev part every N steps (and at each epoch end)."
    ),
    method_option: List[str] = typer.Option(
        [],
        "--method-option",
        "-O",
        rich_help_panel="Method options: Any method",
        help="A method setting KEY=VALUE (repeatable).",
    ),
    # here: one option per flag a method declares (`with_method_flags`)
    pooler: OptionalPooler = typer.Option(None, "--pooler", help=f"{POOLER_HELP} Default: the mask's, else head."),
    data_dir: OptionalStr = DataDirOption,
    revision: OptionalStr = TrainRevisionOption,
    device: str = DeviceOption,
    precision: Optional[Precision] = OptionalPrecisionOption,
    report_to: Tracker = ReportToOption,
    resume: bool = typer.Option(False, "--resume", help="Continue OUT from its checkpoint (after Ctrl-C or a crash)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing OUT."),
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
    flag_values: dict[MethodFlag, Any] | None = None,
) -> None:
    """Fine-tune: exactly the mask's entries (+ the dense head), or with --method.

    Model, task and pooler policy default to the mask's metadata, so `train --mask
    mask.safetensors -o out/` is complete. Every entry outside the mask stays
    bit-identical to the pretrained model. Ctrl-C writes a checkpoint; continue with
    --resume.
    """
    from ..stages.train.loop import train

    config = TrainConfig(
        output=output,
        model=model,
        task=task,
        mask=mask,
        method=method,
        epochs=epochs,
        max_steps=max_steps,
        lr=lr,
        batch_size=batch_size,
        max_length=max_length,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        seed=seed,
        eval_every=eval_every,
        data_dir=data_dir,
        method_options=with_flag_values(parse_method_options(method_option), flag_values or {}),
        pooler=pooler.value if pooler is not None else None,
        resume=resume,
        force=force,
        device=device,
        precision=precision,
        revision=revision,
        report_to=report_to,
    )
    with progress_bar(quiet or as_json) as progress:
        record = train(config, progress=progress)
    if not is_main_process():  # one process of a launch speaks
        return
    if as_json:
        print_json({"output": output, **record.__dict__})
    elif not quiet:
        print_summary(record, output)


def print_summary(record, output: str) -> None:
    from ..formats.run_record import budget_words

    counts = record.trainable_parameters
    out.print(
        f"trained {budget_words(counts)} ({', '.join(counts.get('head_tensors', [])) or 'none'}) · "
        f"method {record.method} · {record.extra.get('steps')} steps · {record.seconds:.0f} s"
    )
    dev = record.best.get("dev", {})
    parts = " · ".join(f"{key} {value:.4f}" for key, value in dev.items())
    out.print(f"best dev (step {record.best.get('step')}): {parts}")
    out.print(f"wrote {output.rstrip('/')}/  (test metrics: sparsetune eval {output})")
