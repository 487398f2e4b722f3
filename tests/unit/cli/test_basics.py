"""The CLI shell: version, tasks, error policy, help on every command, library purity."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sparsetune import __version__
from sparsetune.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"sparsetune {__version__}"


def test_tasks_table_lists_the_seven_tasks_with_metrics(tiny_data_dir):
    result = runner.invoke(app, ["tasks", "--data-dir", str(tiny_data_dir)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("cola", "stsb", "mrpc", "rte", "cb", "copa", "wsc"):
        assert name in result.stdout
    assert "matthews" in result.stdout and "pearson + spearman" in result.stdout


def test_tasks_json_has_row_counts(tiny_data_dir):
    result = runner.invoke(app, ["tasks", "--json", "--data-dir", str(tiny_data_dir)])
    rows = {row["task"]: row for row in json.loads(result.stdout)}
    assert rows["cb"]["train"] == 40 and rows["cb"]["validation"] == 16
    assert rows["cb"]["components"] == ["accuracy", "macro_f1"]
    assert rows["stsb"]["type"] == "regression" and rows["stsb"]["range"] == [0, 5]
    assert rows["cb"]["range"] is None


def test_json_wins_over_quiet_on_every_command_that_prints(tiny_data_dir, tiny_model_dir, tmp_path):
    """`--json -q` printed the JSON on eval, mask and score but nothing on tasks and inspect."""
    from tests.unit.training_support import write_mask

    tasks = runner.invoke(app, ["tasks", "--json", "-q", "--data-dir", str(tiny_data_dir)])
    assert tasks.exit_code == 0 and {row["task"] for row in json.loads(tasks.stdout)} >= {"cb", "rte"}
    inspected = runner.invoke(app, ["inspect", str(write_mask(tmp_path, tiny_model_dir)), "--json", "-q"])
    assert inspected.exit_code == 0 and json.loads(inspected.stdout)["kind"] == "mask"


def test_unknown_task_is_one_line_and_exit_2():
    result = runner.invoke(app, ["tasks", "--task", "sst9"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown task 'sst9'; known tasks: cola, stsb, mrpc, rte, cb, copa, wsc (or a task .json file)"
    ]
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback():
    result = runner.invoke(app, ["tasks", "--task", "sst9"], env={"SPARSETUNE_DEBUG": "1"})
    assert result.exit_code != 0 and result.exception is not None


def _commands():
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example" in result.stdout and "sparsetune " in result.stdout


def _imported_roots(path):
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_the_library_source_never_imports_typer_or_rich():
    from pathlib import Path

    import sparsetune

    root = Path(sparsetune.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "cli" not in path.relative_to(root).parts and {"typer", "rich"} & set(_imported_roots(path))
    ]
    assert offenders == []


def test_importing_the_library_does_not_load_typer():
    # rich may arrive through scikit-learn's own progress bars; typer must not arrive at all.
    # pkgutil.walk_packages would import sparsetune.cli to descend into it: walk by hand.
    code = (
        "import pkgutil, importlib, sys, sparsetune\n"
        "def walk(package):\n"
        "    for info in pkgutil.iter_modules(package.__path__, package.__name__ + '.'):\n"
        "        if info.name == 'sparsetune.cli':\n"
        "            continue\n"
        "        module = importlib.import_module(info.name)\n"
        "        if info.ispkg:\n"
        "            walk(module)\n"
        "walk(sparsetune)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'typer')\n"
        "assert not bad, bad[:3]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_the_cli_imports_no_heavy_library():
    """`--help` must be instant: torch, transformers, scipy and datasets load inside commands."""
    import subprocess
    import sys

    code = (
        "import sys, sparsetune.cli; print(sorted(m for m in ('torch', 'transformers', 'scipy', "
        "'datasets', 'sklearn', 'accelerate', 'peft', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_diff_value_dtypes_written_out_for_help_match_the_format():
    from sparsetune.cli.diff import VALUE_DTYPE_NAMES
    from sparsetune.formats.delta import VALUE_DTYPES

    assert VALUE_DTYPE_NAMES == tuple(VALUE_DTYPES)
