"""`sparsetune diff`: the entries a fine-tune changed, as a delta file.

sparsetune diff out/ > delta.safetensors
"""

from __future__ import annotations

import errno
import sys
from enum import Enum
from typing import Optional

import typer

from ..config import DiffConfig
from ..errors import OutputError, UsageError
from ..io import os_error_reason
from .app import console, stdout_closed
from .options import ForceOption, OptionalPooler, OptionalStr, QuietOption, TaskOption, named_path
from .render import print_json, progress_bar

# formats.delta.VALUE_DTYPES' names, written out so that --help imports no torch (a test keeps them equal).
VALUE_DTYPE_NAMES = ("float32", "float16", "bfloat16")
ValueDtype = Enum("ValueDtype", {name: name for name in VALUE_DTYPE_NAMES}, type=str)


EPILOG = (
    "Example: sparsetune diff out/ > delta.safetensors   |   any fine-tuned dir: "
    "sparsetune diff tuned/ --base MODEL --top-p 0.005 --values float16 -o delta.safetensors   |   a hub "
    "fine-tune: sparsetune diff textattack/bert-base-uncased-RTE --base bert-base-uncased -o delta.safetensors"
)


def diff_command(
    run: str = typer.Argument(
        ..., help="A run dir (sparsetune train -o), any fine-tuned model dir, or a fine-tuned model's hub id."
    ),
    base: OptionalStr = typer.Option(
        None,
        "--base",
        help="The pretrained model the fine-tune started from. Default: the run's, else the embedded MiniLM "
        "(a hub id RUN needs it).",
    ),
    output: OptionalStr = typer.Option(  # a str: `-o out/` keeps the slash that says it is a folder
        None, "--output", "-o", help="Delta file to write. Default: stdout, when it is not a terminal."
    ),
    values: ValueDtype = typer.Option(
        "float32",
        "--values",
        help="Value dtype: float32 (exact: the values), float16 or bfloat16 (rounded differences).",
    ),
    top_p: Optional[float] = typer.Option(
        None, "--top-p", help="Keep only the fraction P of eligible entries with the largest |θ − θ0|."
    ),
    task: OptionalStr = TaskOption,
    pooler: OptionalPooler = typer.Option(
        None,
        "--pooler",
        help="head: the BERT pooler travels dense with the head; eligible: as changed entries. Default: the "
        "run's, else head.",
    ),
    force: bool = ForceOption,
    quiet: bool = QuietOption,
    as_json: bool = typer.Option(
        False, "--json", help="Print the summary as JSON (on stderr when the delta goes to stdout)."
    ),
) -> None:
    """Export the entries that differ from the base (bitwise), plus the dense head, as a delta.

    Apply it with `sparsetune apply DELTA -o DIR`; with float32 values that gives the
    fine-tuned weights back bit for bit. For a plain model dir the head comes from its
    config.json (`architectures`), or from --task.
    """
    from ..stages.diff import delta_summary, diff

    if output is None and stdout_closed():  # started with stdout closed (`>&-`): fail before the work
        raise OutputError("stdout is closed; pass -o delta.safetensors")
    if output is None and sys.stdout.isatty():
        raise UsageError(
            "refusing to write a binary delta to the terminal; pass -o delta.safetensors or redirect: "
            "sparsetune diff RUN > delta.safetensors"
        )
    config = DiffConfig(
        run=str(named_path(run, "RUN")),
        base=base,
        output=output,
        values=values.value,
        top_p=top_p,
        task=task,
        pooler=pooler.value if pooler is not None else None,
        force=force,
    )
    with progress_bar(quiet or as_json) as progress:
        result = diff(config, progress)
    if output is None:
        try:
            sys.stdout.buffer.write(result.data)
            sys.stdout.buffer.flush()
        except OSError as err:  # a full device: say where the delta was going
            if err.errno == errno.EPIPE:
                raise
            raise OutputError(f"cannot write the delta to stdout: {os_error_reason(err)}") from None
    stats = delta_summary(result.delta, len(result.data))
    share = stats["changed"] / stats["eligible"] if stats["eligible"] else 0.0
    if as_json:  # stdout may be the delta itself
        summary = {
            **stats,
            "method": result.delta.metadata.get("method") or None,
            "tensors": len(result.delta.indices),
            "head_tensors": len(result.delta.head),
            "output": str(output) if output else None,
        }
        print_json(summary, stream=console.file if output is None else None)
        return
    if quiet:
        return
    if result.delta.metadata.get("method"):  # LoRA, adapters: the method's own tensors (stages.method_delta)
        console.print(
            f"method {result.delta.metadata['method']}: {stats['head_entries']:,} entries of its own (with "
            "the head) in "
            f"{len(result.delta.head)} tensors; {stats['bytes']:,} bytes -> {output or 'stdout'}",
            soft_wrap=True,
        )
        return
    per_entry = stats["bytes_per_changed_entry"]
    console.print(
        f"{stats['changed']:,} changed entries of {stats['eligible']:,} ({share:.4%}) in "
        f"{len(result.delta.indices)} tensors"
        f" + {stats['head_entries']:,} head entries; {stats['bytes']:,} bytes"
        + (f" = {per_entry:.2f} bytes per changed entry" if per_entry is not None else "")
        + f" -> {output or 'stdout'}",
        soft_wrap=True,
    )
