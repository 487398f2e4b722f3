"""README "Extending" is real: its example method file and scorer file, added to a copy of the
package with no other edit, are registered, get their CLI flags, choices and completions,
and pass the contract tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from tests.conftest import REPO

EXAMPLE = re.compile(r"<!-- example: (?P<path>\S+) -->\n```python\n(?P<code>.*?)```", re.S)
COPY = shutil.ignore_patterns("__pycache__", "*.pyc")


def _examples() -> dict[str, str]:
    return {
        match["path"]: match["code"] for match in EXAMPLE.finditer((REPO / "README.md").read_text(encoding="utf-8"))
    }


def test_the_readme_shows_one_method_and_one_scorer_file_that_do_not_exist_yet():
    examples = _examples()
    assert sorted(path.split("/")[1] for path in examples) == ["methods", "scoring"]
    assert not any((REPO / path).exists() for path in examples)


def test_one_new_file_is_a_registered_method_with_flags_completions_and_passing_contract_tests(tmp_path):
    checkout = tmp_path / "checkout"
    for folder in ("sparsetune", "tests"):
        shutil.copytree(REPO / folder, checkout / folder, ignore=COPY)
    shutil.copy(REPO / "pyproject.toml", checkout)
    for path, code in _examples().items():  # the only change: one file each
        (checkout / path).write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(checkout), "COLUMNS": "200"}

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, *args], env=env, cwd=checkout, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    run(
        "-c",
        "from sparsetune.methods import METHODS; from sparsetune.scoring import SCORERS; "
        "from sparsetune.cli.completions import render; "
        "assert METHODS['toplayers'].Options and SCORERS['snip'].needs_data; "
        "assert all('top-layers' in render(shell) and 'snip' in render(shell) for shell in ('bash', 'zsh', 'fish'))",
    )
    train_help = run("-m", "sparsetune", "train", "--help")
    assert "--top-layers" in train_help and "Method options: Top layers" in train_help and "toplayers" in train_help
    assert "snip" in run("-m", "sparsetune", "score", "--help")
    report = run(
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "toplayers or snip",
        "tests/contract/test_training_methods.py",
        "tests/contract/test_scoring_methods.py",
    )
    passed = re.search(r"(\d+) passed", report)
    assert passed and int(passed.group(1)) >= 9 and "failed" not in report, report[-2000:]
