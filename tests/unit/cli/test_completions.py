"""Shell completions: checked in, regenerated from the app, and working in real shells."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sparsetune.cli.completions import FILE_NAMES, SHELLS, render

from ...conftest import REPO

FOLDER = REPO / "completions"


@pytest.mark.parametrize("shell", SHELLS)
def test_checked_in_completions_are_current(shell):
    path = FOLDER / FILE_NAMES[shell]
    assert path.is_file() and path.read_text(encoding="utf-8") == render(shell), (
        f"{path} is stale: run `sparsetune completions --write completions/` and commit them"
    )


def _bash_complete(words: list[str]) -> list[str]:
    script = (
        f"source {FOLDER / FILE_NAMES['bash']}\n"
        f"COMP_WORDS=({' '.join(repr(word) for word in words)}); COMP_CWORD={len(words) - 1}\n"
        "_sparsetune; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_bash_completes_commands_options_and_choices():
    assert "tasks" in _bash_complete(["sparsetune", "ta"])
    assert _bash_complete(["sparsetune", "tasks", "--da"]) == ["--data-dir"]
    assert _bash_complete(["sparsetune", "completions", "f"]) == ["fish"]


def _need(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{shell} is not installed; .ci/run installs it")
        pytest.skip(f"{shell} is not installed")
    return path


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_script_parses_in_its_shell(shell):
    executable = _need(shell)
    subprocess.run([executable, "-n", str(FOLDER / FILE_NAMES[shell])], check=True)


def test_fish_completes_commands(tmp_path: Path):
    executable = _need("fish")
    script = f"source {FOLDER / FILE_NAMES['fish']}; complete -C 'sparsetune ta'"
    result = subprocess.run([executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split()[0] == "tasks"


def test_completions_offer_registered_task_method_and_scorer_names():
    """Names come from the registries (read without importing torch) and the task registry."""
    from sparsetune.methods import METHODS
    from sparsetune.scoring import SCORERS
    from sparsetune.tasks import TASKS

    for shell in ("bash", "zsh", "fish"):
        script = render(shell)
        for names in (METHODS, SCORERS, TASKS):
            assert " ".join(sorted(names)) in script, (shell, sorted(names))
    assert '--precision) COMPREPLY=( $(compgen -W "fp32 bf16 fp16"' in render("bash")


def test_cli_choices_are_exactly_the_registries():
    from sparsetune.cli.options import METHOD_NAMES, SCORER_NAMES, TASK_NAMES
    from sparsetune.methods import METHODS
    from sparsetune.scoring import SCORERS
    from sparsetune.tasks import TASKS

    assert (
        METHOD_NAMES == tuple(sorted(METHODS))
        and SCORER_NAMES == tuple(sorted(SCORERS))
        and TASK_NAMES == tuple(sorted(TASKS))
    )
