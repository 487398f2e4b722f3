"""The grid on the tiny BERT: plan, resume after a kill, and the report's files."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.errors import FileFormatError
from sparsetune.experiments.grid import load_grid, plan, spec_from_json, spec_to_json
from sparsetune.experiments.results import read_results
from sparsetune.run_lock import LOCK_FILE, holder

CONFIG = """
model = "{model}"
tasks = ["rte"]
seeds = [1]
runs_dir = "{runs}"
data_dir = "{data}"
[train]
max_steps = 2
batch_size = 8
max_length = 24
[[methods]]
name = "SAM"
score = "sam"
p = [0.01, 0.02]
score_flags = {{ examples = 8, max_length = 24, batch_size = 8 }}
[[methods]]
name = "FullTuning"
train = "full"
"""


@pytest.fixture()
def grid_config(tmp_path, tiny_model_dir, tiny_data_dir):
    path = tmp_path / "grid.toml"
    path.write_text(CONFIG.format(model=tiny_model_dir, runs=tmp_path / "runs", data=tiny_data_dir))
    return path


def test_plan_expands_methods_p_and_seeds(grid_config):
    specs = plan(load_grid(grid_config))
    assert [spec.run_id for spec in specs] == [
        "SAM/rte/p0.01/seed1",
        "SAM/rte/p0.02/seed1",
        "FullTuning/rte/dense/seed1",
    ]
    assert specs[0].method.train_flags == {"max_steps": 2, "batch_size": 8, "max_length": 24}
    assert spec_from_json(spec_to_json(specs[0])) == specs[0]
    assert len({spec.config_hash for spec in specs}) == 3


def test_a_slice_plans_the_same_runs_as_the_whole_grid(tmp_path):
    """`grid --tasks/--methods/--seeds`: the evidence of one issue is a slice of the
    paper's grid, with the same run ids and settings, so that the whole grid skips it."""
    from sparsetune.errors import UsageError
    from sparsetune.experiments.grid import select

    path = tmp_path / "grid.toml"
    path.write_text(
        'tasks = ["cola", "rte", "cb"]\nseeds = [1, 2, 3]\n[[methods]]\nname = "A"\ntrain = "full"\n'
        '[[methods]]\nname = "B"\nscore = "sam"\np = [0.01]\n[[methods]]\nname = "C"\ntrain = "lora"\n'
    )
    grid = load_grid(path)
    whole = {spec.run_id: spec for spec in plan(grid)}
    part = plan(select(grid, tasks=["cb", "cola"], methods=["C", "A"], seeds=[2]))
    assert [spec.run_id for spec in part] == [
        "A/cola/dense/seed2",
        "C/cola/dense/seed2",
        "A/cb/dense/seed2",
        "C/cb/dense/seed2",
    ]
    assert all(whole[spec.run_id] == spec for spec in part)
    assert plan(select(grid)) == list(whole.values())
    for given, message in [
        ({"tasks": ["mnli"]}, "--tasks mnli"),
        ({"methods": ["D"]}, "--methods D"),
        ({"seeds": [4]}, "--seeds 4"),
    ]:
        with pytest.raises(UsageError, match=message):
            select(grid, **given)
    dry = CliRunner().invoke(
        app, ["grid", str(path), "--dry-run", "--json", "--tasks", "rte", "--methods", "B", "--seeds", "1,3"]
    )
    assert dry.exit_code == 0, dry.output
    assert [run["run_id"] for run in json.loads(dry.stdout)["runs"]] == ["B/rte/p0.01/seed1", "B/rte/p0.01/seed3"]
    bad = CliRunner().invoke(app, ["grid", str(path), "--dry-run", "--seeds", "one"])
    assert bad.exit_code == 2 and "--seeds must be whole numbers" in bad.output


def test_methods_selects_sweep_names_that_hold_commas(tmp_path):
    """A sweep's method names carry their settings, `SAM@lr=0.001,epochs=6`: `--methods`
    splits on commas, so it takes the longest known name at each place."""
    path = tmp_path / "grid.toml"
    names = ["SAM@lr=0.001", "SAM@lr=0.001,epochs=6", "SAM@lr=0.001,epochs=6,batch_size=8", "F"]
    path.write_text(
        'tasks = ["cola"]\nseeds = [1]\n'
        + "".join(f'[[methods]]\nname = "{name}"\nscore = "sam"\np = [0.01]\n' for name in names[:3])
        + '[[methods]]\nname = "F"\ntrain = "full"\n'
    )

    def chosen(value):
        result = CliRunner().invoke(app, ["grid", str(path), "--dry-run", "--json", "--methods", value])
        assert result.exit_code == 0, result.output
        return [run["run_id"].split("/")[0] for run in json.loads(result.stdout)["runs"]]

    assert chosen("SAM@lr=0.001,epochs=6,F") == ["SAM@lr=0.001,epochs=6", "F"]
    assert chosen("F, SAM@lr=0.001") == ["SAM@lr=0.001", "F"]
    assert chosen("SAM@lr=0.001,epochs=6,batch_size=8,SAM@lr=0.001") == ["SAM@lr=0.001", names[2]]
    unknown = CliRunner().invoke(app, ["grid", str(path), "--dry-run", "--methods", "SAM@lr=0.001,epochs=7"])
    assert unknown.exit_code == 2 and "--methods epochs=7: not in grid config" in unknown.output


@pytest.mark.parametrize(
    "text, message",
    [
        ('tasks = ["cb"]\nseeds = [1]\n', "has no 'methods'"),
        ('tasks = ["cb"]\nseeds = [1]\n[[methods]]\nname = "S"\nscore = "sam"\n', "needs p"),
        ('tasks = ["cb"]\nseeds = [1]\n[[methods]]\nname = "S"\nlr = 1\n', "unknown key 'lr'"),
        ("tasks = [", "not valid TOML"),
    ],
)
def test_bad_configs(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(FileFormatError, match=message):  # a file's content: exit 1
        load_grid(path)


def test_yaml_config_plans_like_its_toml_twin(tmp_path):
    toml = tmp_path / "grid.toml"
    toml.write_text(
        'tasks = ["cb"]\nseeds = [1, 2]\n[train]\nmax_steps = 2\n[[methods]]\nname = "SAM"\n'
        'score = "sam"\np = [0.01]\nflags = { lr = 0.001 }\n[[methods]]\nname = "Full"\ntrain = "full"\n'
    )
    yaml = tmp_path / "grid.yaml"
    yaml.write_text(
        "tasks: [cb]\nseeds: [1, 2]\ntrain: {max_steps: 2}\nmethods:\n"
        "  - {name: SAM, score: sam, p: [0.01], flags: {lr: 0.001}}\n  - {name: Full, train: full}\n"
    )
    assert [spec.config_hash for spec in plan(load_grid(yaml))] == [spec.config_hash for spec in plan(load_grid(toml))]


@pytest.mark.parametrize(
    "text, message",
    [
        ("tasks: [cb\n", "not valid YAML"),
        ("- just\n- a list\n", "not a table of keys"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_bad_yaml_configs(tmp_path, text, message):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(FileFormatError, match=message):  # a file's content: exit 1
        load_grid(path)


def _line_count(path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _wait_until_no_run_is_held(runs, timeout: float = 60) -> None:
    """SIGKILL is delivered asynchronously: `wait()` returns once the grid is dead, while its
    worker may still be exiting and holding its run dir's lock. A rerun started in that
    window is rightly refused ("in use by another sparsetune process"); wait it out."""
    deadline = time.time() + timeout
    while any(holder(lock.parent) is not None for lock in runs.rglob(LOCK_FILE)):
        assert time.time() < deadline, "a killed worker still holds its run dir's lock"
        time.sleep(0.1)


def test_killed_grid_resumes_and_skips_finished_runs(grid_config, tmp_path):
    results = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "sparsetune", "grid", str(grid_config), "-o", str(results), "--quiet"]
    first = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while _line_count(results) < 1 and time.time() < deadline and first.poll() is None:
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)  # the grid and its worker, mid-grid
    first.wait()
    _wait_until_no_run_is_held(tmp_path / "runs")
    finished = read_results(results)
    assert 1 <= len(finished) < 3

    second = subprocess.run(command, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    final = read_results(results)
    assert sorted(r.run_id for r in final) == sorted(spec.run_id for spec in plan(load_grid(grid_config)))
    assert [r.run_id for r in final[: len(finished)]] == [r.run_id for r in finished]  # not rerun
    for result in final:
        run = json.loads((tmp_path / "runs" / result.run_id / "run.json").read_text())
        assert result.test == run["metrics"]["validation"]  # the line is the run's own numbers
        assert result.trainable_parameters == run["trainable_parameters"]
        assert result.seconds >= run["seconds"]  # training (over every attempt) plus scoring and the test

    runner = CliRunner()
    report = runner.invoke(app, ["report", str(results), "-o", str(tmp_path / "report"), "-p", "0.01"])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "report" / "report.md").stat().st_size > 0
    assert "| SAM |" in (tmp_path / "report" / "report.md").read_text()
    quiet = runner.invoke(app, ["report", str(results), "-o", str(tmp_path / "quiet"), "-p", "0.01", "-q"])
    assert quiet.exit_code == 0 and quiet.output == "" and (tmp_path / "quiet" / "report.md").is_file()


def test_start_within_starts_no_run_after_its_time_and_a_rerun_does_the_rest(grid_config, tmp_path):
    """A grid on a hard time limit: the first run starts at once and finishes (a worker
    needs seconds just to import torch, so the 0.5 s are over when it ends), the other
    two are left for the rerun, which is told so in the summary and the JSON."""
    results, runner = tmp_path / "results.jsonl", CliRunner()
    first = runner.invoke(app, ["grid", str(grid_config), "-o", str(results), "--start-within", "0.5", "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert len(summary["finished"]) == 1 and len(summary["not_started"]) == 2 and summary["failed"] == []
    assert [r.run_id for r in read_results(results)] == summary["finished"]

    none = runner.invoke(app, ["grid", str(grid_config), "-o", str(results), "--start-within", "0"])
    assert none.exit_code == 0 and "0 runs finished, 0 failed, 2 not started (--start-within" in none.output

    rest = runner.invoke(app, ["grid", str(grid_config), "-o", str(results), "--start-within", "3600"])
    assert rest.exit_code == 0 and "2 runs finished, 0 failed, 1 already done" in rest.output
    assert sorted(r.run_id for r in read_results(results)) == sorted(s.run_id for s in plan(load_grid(grid_config)))
