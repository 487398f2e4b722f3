"""`sparsetune report`: a results file -> Table 1, stability vs performance, and the paper's figures.

sparsetune report results/example/results.jsonl -o results/example/
"""

from __future__ import annotations

from typing import Optional

import typer

from ..config import DEFAULT_SPARSITY
from .app import console, out
from .options import DataDirOption, ForceOption, JsonOption, OptionalStr, QuietOption, named_path
from .render import print_json

EPILOG = "Example: sparsetune report results/example/results.jsonl -o results/example/"


def report_command(
    results: str = typer.Argument(..., help="Results file written by `sparsetune grid`."),
    output: str = typer.Option("report", "--output", "-o", help="Folder for report.md and the figure PNGs."),
    p: Optional[float] = typer.Option(DEFAULT_SPARSITY, "-p", help="The p of the sparse methods shown in Table 1."),
    sweep_method: str = typer.Option("SAM", "--sweep-method", help="Method label whose p sweep is Figure 3."),
    data_dir: OptionalStr = DataDirOption,
    force: bool = ForceOption,
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Table 1 (mean ± std, ranks), stability vs performance (Spearman ρ), and figures.

    A sweep's results (method names `Method@key=value`) also get the setting of each
    method chosen on dev.
    """
    from ..experiments.publish import write_report

    report = write_report(
        named_path(results, "RESULTS"), named_path(output, "-o"), p, sweep_method, data_dir, force=force
    )
    if as_json:
        chosen = {item.method: item.setting for item in report.choices if item.chosen}
        print_json(
            {
                "rho": report.stability.rho,
                "p_value": report.stability.p_value,  # one-sided, ρ > 0 (a within-task permutation test)
                "p_below": report.stability.p_below,  # one-sided, ρ < 0
                "chosen_on_dev": chosen,
                "files": [str(f) for f in report.files],
            }
        )
        return
    if quiet:
        return
    out.print(report.markdown, markup=False)
    for path in report.files:
        console.print(f"wrote {path}")
