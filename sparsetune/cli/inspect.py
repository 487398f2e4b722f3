"""`sparsetune inspect`: what a sparsetune file holds, where its entries sit, and a heatmap.

    sparsetune inspect mask.safetensors --plot mask.png

Calls `sparsetune.stages.inspect.inspect_file` and renders its summary with rich.
"""

from __future__ import annotations

import typer
from rich import box
from rich.table import Table

from .app import out
from .options import ForceOption, JsonOption, OptionalStr, QuietOption
from .render import print_json

EPILOG = "Example: sparsetune inspect mask.safetensors --plot mask.png"


def inspect_command(
    file: str = typer.Argument(
        ...,
        help="A sparsetune file: mask, scores or delta (.safetensors), a run's log.jsonl, a run dir (or its run.json), "
        "OUT/checkpoint/ or OUT/method/.",
    ),
    plot: OptionalStr = typer.Option(
        None,
        "--plot",
        help="Write a PNG: the per-layer × module-type heatmap, or for a log.jsonl the loss with mask changes marked.",
    ),
    force: bool = ForceOption,
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Metadata, totals and a per-layer × module-type table of a mask, scores or delta file;
    steps, losses and mask changes of a run's log.jsonl (--plot: loss with mask changes marked);
    what a run, its checkpoint or a structural method's own tensors hold."""
    from ..stages.inspect import inspect_file

    summary = inspect_file(file, plot=plot, force=force)
    if as_json:  # --json wins over -q, as on every command: a script asked for it
        print_json(summary)
        return
    if quiet:  # checks the file (and writes --plot) without printing
        return
    render_summary(summary)


# Column headings short enough for an 80-column terminal; --json keeps the full names.
SHORT = {
    "embeddings": "emb",
    "query": "q",
    "key": "k",
    "value": "v",
    "attention-out": "att-o",
    "ffn-in": "ffn-i",
    "ffn-out": "ffn-o",
    "layernorm": "LN",
    "pooler": "pool",
}


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):  # e.g. a mask's head tensors
        return ", ".join(map(str, value))
    return str(value)


def render_summary(summary: dict) -> None:
    about = Table(title=f"{summary['file']} ({summary['kind']})", show_header=False)
    about.add_column(style="bold")
    about.add_column()
    for key, value in summary.get("metadata", {}).items():
        if key != "shapes":
            about.add_row(key, _format(value))
    for key, value in summary.get("totals", {}).items():
        about.add_row(key, _format(value))
    out.print(about)
    table = summary.get("table")
    if table:
        fraction = table["value"].endswith(" fraction")
        unit = " (%)" if fraction else ""
        grid = Table(title=f"{table['value']}{unit} per layer × module type", padding=(0, 0), box=box.SIMPLE_HEAD)
        texts = [
            ["-" if v is None else (f"{100 * v:.2g}" if fraction else f"{v:.0e}") for v in row]
            for row in table["cells"]
        ]
        labels = [row.replace("layer ", "L").replace("embeddings", "emb") for row in table["rows"]]
        grid.add_column("", no_wrap=True, min_width=max(map(len, labels)))
        for j, column in enumerate(table["columns"]):
            width = max(len(SHORT.get(column, column)), *(len(row[j]) for row in texts))
            grid.add_column(SHORT.get(column, column), justify="right", no_wrap=True, min_width=width)
        for label, row in zip(labels, texts):
            grid.add_row(label, *row)
        out.print(grid)
    if summary.get("plot"):
        out.print(f"wrote {summary['plot']}", soft_wrap=True)
