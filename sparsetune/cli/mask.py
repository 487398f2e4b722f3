"""`sparsetune mask`: re-threshold saved scores at another sparsity, without gradients.

    sparsetune mask scores.safetensors -p 0.01 -o mask-1pc.safetensors

Makes the sparsity sweep of the paper's Figure 3 cost one
gradient pass in all instead of one per p.
"""

from __future__ import annotations

from typing import Optional

import typer

from ..config import MASK_FILE, MaskConfig
from .app import out
from .options import ForceOption, JsonOption, QuietOption, Scope, SparsityOption
from .render import print_json

EPILOG = "Example: sparsetune mask scores.safetensors -p 0.01 -o mask-1pc.safetensors"


def mask_command(
    scores: str = typer.Argument(..., help="A scores file written by `sparsetune score --save-scores`."),
    p: float = SparsityOption,
    output: str = typer.Option(MASK_FILE, "--output", "-o", help="Where to write the mask."),
    scope: Optional[Scope] = typer.Option(
        None, "--scope", help="global or per-tensor. Default: the scope recorded in the scores file, else global."
    ),
    force: bool = ForceOption,
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Build a mask at sparsity p from saved scores (no model, no data, no gradients)."""
    from ..stages.score import ignored_p, rethreshold, share_by_module_type

    mask = rethreshold(MaskConfig(scores=scores, p=p, output=output, scope=scope, force=force))
    ignored = ignored_p(str(mask.metadata.get("method", "")), p)  # bitfit: its entries, whatever -p says
    notes = [ignored] if ignored else []
    summary = {
        **{key: mask.metadata.get(key) for key in ("model", "task", "method", "p", "scope")},
        "selected": mask.selected,
        "eligible": mask.eligible,
        "density": mask.density,
        "share_by_module_type": share_by_module_type(mask),
        "output": output,
        "notes": notes,
    }
    if as_json:
        print_json(summary)
    elif not quiet:
        for note in notes:
            out.print(f"[yellow]note:[/] {note}", soft_wrap=True)
        out.print(
            f"selected [bold]{mask.selected:,}[/] / {mask.eligible:,} eligible entries "
            f"(p = {summary['p']}, scope {summary['scope']}, method {summary['method']}); wrote {output}",
            soft_wrap=True,
        )
