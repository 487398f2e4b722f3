"""`sparsetune train`: fine-tune exactly the entries of a mask, or with a named method.

    sparsetune train --mask mask.safetensors -o out/ --data-dir ../shared/data

Fu et al. 2023 (arXiv 2211.15583). Parses flags into a `TrainConfig`, calls
`sparsetune.train`, prints where the run went and its best dev score.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from ..config import TrainConfig
from ..errors import UsageError
from ..runtime import is_main_process
from .app import app, out
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
    RevisionOption,
    TaskOption,
    Tracker,
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


def with_shorthands(pairs: tuple[tuple[str, str], ...], **shorthands) -> tuple[tuple[str, str], ...]:
    """Add `-p P` / `--project-every N` as the method options `p` / `project_every`."""
    given = {key.replace("-", "_") for key, _ in pairs}
    extra = []
    for key, value in shorthands.items():
        if value is None:
            continue
        if key in given:
            flag = "-p" if key == "p" else f"--{key.replace('_', '-')}"
            raise UsageError(f"{flag} and --method-option {key}=... both given; keep one")
        extra.append((key, str(value)))
    return pairs + tuple(extra)


@app.command(
    "train",
    epilog="Example: sparsetune train --mask mask.safetensors -o out/   |   baseline: sparsetune train --method full --task cb -o full/",
)
def train_command(
    model: OptionalStr = ModelArg,
    mask: OptionalStr = typer.Option(None, "--mask", help="Mask file from `sparsetune score`: train exactly its entries (method sparse)."),
    method: Optional[MethodName] = typer.Option(None, "--method", "-m", help="Training method (sparse with --mask; full, ...). Default: sparse."),
    task: OptionalStr = TaskOption,
    output: str = typer.Option(..., "--output", "-o", help="Run directory to create (model, run.json, log.jsonl, checkpoint/)."),
    epochs: OptionalInt = typer.Option(None, "--epochs", help="Passes over the train part. Default: per task (README)."),
    max_steps: OptionalInt = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps (overrides --epochs)."),
    lr: OptionalFloat = typer.Option(None, "--lr", help="Peak learning rate of AdamW. Default: per task and method (README)."),
    batch_size: OptionalInt = typer.Option(None, "--batch-size", help="Examples per step. Default: per task."),
    max_length: OptionalInt = typer.Option(None, "--max-length", help="Truncate inputs to this many tokens. Default: per task."),
    warmup_ratio: OptionalFloat = typer.Option(None, "--warmup-ratio", help="Fraction of steps of linear warm-up. Default: 0.1."),
    weight_decay: OptionalFloat = typer.Option(None, "--weight-decay", help="AdamW weight decay (trainable entries only). Default: 0.01."),
    seed: OptionalInt = typer.Option(None, "--seed", help="Seed for head initialisation, data order and dropout. Default: 42."),
    eval_every: OptionalInt = typer.Option(None, "--eval-every", help="Evaluate on the dev part every N steps (and at each epoch end)."),
    method_option: List[str] = typer.Option([], "--method-option", "-O", rich_help_panel="Method options: Any method", help="A method setting KEY=VALUE (repeatable)."),
    p: OptionalFloat = typer.Option(
        None, "-p", "--sparsity", rich_help_panel="Method options: DiffPruning / ChildPruning", help="diffpruning/childpruning: fraction of eligible entries the result may change. Default: 0.005."
    ),
    project_every: OptionalInt = typer.Option(
        None, "--project-every", rich_help_panel="Method options: DiffPruning / ChildPruning", help="diffpruning/childpruning: optimizer steps between projections. Default: 100."
    ),
    lora_r: OptionalInt = typer.Option(None, "--lora-r", rich_help_panel="Method options: LoRA", help="lora: rank r of each B·A. Default: 16."),
    lora_alpha: OptionalFloat = typer.Option(None, "--lora-alpha", rich_help_panel="Method options: LoRA", help="lora: α; the update is scaled by α/r. Default: 16."),
    lora_dropout: OptionalFloat = typer.Option(None, "--lora-dropout", rich_help_panel="Method options: LoRA", help="lora: dropout on the LoRA input. Default: 0."),
    lora_targets: OptionalStr = typer.Option(None, "--lora-targets", rich_help_panel="Method options: LoRA", help="lora: comma-separated module-name suffixes. Default: Q,K,V,attention out, FFN."),
    adapter_config: OptionalStr = typer.Option(None, "--adapter-config", rich_help_panel="Method options: Adapters", help="adapter: houlsby (after attention and FFN) or pfeiffer (FFN). Default: houlsby."),
    adapter_size: OptionalInt = typer.Option(None, "--adapter-size", rich_help_panel="Method options: Adapters", help="adapter: bottleneck width (or give --reduction-factor)."),
    reduction_factor: OptionalFloat = typer.Option(None, "--reduction-factor", rich_help_panel="Method options: Adapters", help="adapter: hidden size / bottleneck width. Default: 16."),
    mixout_p: OptionalFloat = typer.Option(None, "--mixout-p", rich_help_panel="Method options: Mixout", help="mixout: probability of swapping a weight for its θ0 value. Default: 0.9."),
    pooler: OptionalPooler = typer.Option(None, "--pooler", help=f"{POOLER_HELP} Default: the mask's, else head."),
    data_dir: OptionalStr = DataDirOption,
    revision: OptionalStr = RevisionOption,
    device: str = DeviceOption,
    precision: Optional[Precision] = OptionalPrecisionOption,
    report_to: Tracker = ReportToOption,
    resume: bool = typer.Option(False, "--resume", help="Continue OUT from its checkpoint (after Ctrl-C or a crash)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing OUT."),
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
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
        method_options=with_shorthands(
            parse_method_options(method_option), p=p, project_every=project_every,
            lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_targets=lora_targets, adapter_config=adapter_config,
            adapter_size=adapter_size, reduction_factor=reduction_factor, mixout_p=mixout_p,
        ),
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
    counts = record.trainable_parameters
    added = f"[bold]{counts['added']:,}[/] added parameters + " if counts.get("added") else ""  # LoRA, adapters
    out.print(
        f"trained {added}[bold]{counts['pretrained_trainable']:,}[/] pretrained entries "
        f"({100 * counts['fraction']:.3g}% of {counts['eligible']:,}) + {counts['head']:,} head "
        f"({', '.join(counts.get('head_tensors', [])) or 'none'}) · "
        f"method {record.method} · {record.extra.get('steps')} steps · {record.seconds:.0f} s"
    )
    dev = record.best.get("dev", {})
    parts = " · ".join(f"{key} {value:.4f}" for key, value in dev.items())
    out.print(f"best dev (step {record.best.get('step')}): {parts}")
    out.print(f"wrote {output.rstrip('/')}/  (test metrics: sparsetune eval {output})")
