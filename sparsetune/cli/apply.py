"""`sparsetune apply`: base + deltas -> a plain transformers model dir.

sparsetune apply delta.safetensors -o applied/ && sparsetune eval applied/ --task rte
"""

from __future__ import annotations

import dataclasses
from typing import List

import typer

from ..config import ApplyConfig
from .app import console
from .options import JsonOption, OptionalStr, QuietOption, named_path
from .render import print_json, progress_bar

EPILOG = (
    "Example: sparsetune apply delta.safetensors -o applied/   |   compose: sparsetune apply "
    "a.safetensors b.safetensors -o both/"
)


def apply_command(
    deltas: List[str] = typer.Argument(..., help="One or more delta files (sparsetune diff); several compose."),
    output: str = typer.Option(
        ..., "--output", "-o", help="Model dir to write (config, tokenizer, model.safetensors)."
    ),
    base: OptionalStr = typer.Option(None, "--base", help="The pretrained model. Default: the one the deltas name."),
    force: bool = typer.Option(
        False, "--force", help="Overwrite DIR, and apply even when the base's fingerprint does not match the delta's."
    ),
    merge: bool = typer.Option(
        False, "--merge", help="A LoRA delta: write the plain model with LoRA folded in (no method/ dir)."
    ),
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Write base + deltas as a plain transformers model dir that `sparsetune eval` and transformers load.

    Several deltas compose by task arithmetic, θ = θ0 + Σ (θ_i − θ0) on the union of their
    indices; an entry only one delta touches gets exactly its value. The head comes from
    the last delta that carries one.
    """
    from ..stages.apply import apply

    config = ApplyConfig(
        deltas=tuple(str(named_path(path, "DELTA")) for path in deltas),
        output=str(named_path(output, "-o")),
        base=base,
        force=force,
        merge=merge,
    )
    with progress_bar(quiet or as_json) as progress:
        result = apply(config, progress)
    if as_json:
        print_json(dataclasses.asdict(result))
        return
    head = f"; head from {result.head_from}" if result.head_from else ""
    if not quiet:
        console.print(
            f"applied {result.deltas} delta(s), {result.changed:,} entries{head} -> {result.output}", soft_wrap=True
        )
        if result.task:
            length = f" --max-length {result.max_length}" if result.max_length else ""
            console.print(
                f"evaluate it with: sparsetune eval {result.output} --task {result.task}{length}", soft_wrap=True
            )
