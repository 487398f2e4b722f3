"""The grid configs under experiments/ parse, plan, and say what the README says they do."""

import pytest

from sparsetune.experiments.grid import load_grid, plan
from sparsetune.experiments.selection import split_variant

from ...conftest import REPO

EXPERIMENTS = REPO / "experiments"
TABLE_ONE = [
    "FullTuning",
    "Random",
    "MixOut",
    "BitFit",
    "MagPruning",
    "Adapter",
    "LoRA",
    "DiffPruning",
    "ChildPruning",
    "SAM",
]
LR_SWEEP_CHOICE = {  # experiments/lr_sweep.toml on cb and copa: what made results/example
    "FullTuning": 1e-4,
    "Random": 1e-3,
    "MixOut": 1e-4,
    "BitFit": 1e-3,
    "MagPruning": 1e-3,
    "Adapter": 1e-3,
    "LoRA": 1e-3,
    "DiffPruning": 1e-4,
    "ChildPruning": 1e-4,
    "SAM": 1e-4,
}


@pytest.mark.parametrize("name", sorted(path.name for path in EXPERIMENTS.glob("*.toml")))
def test_every_config_plans(name):
    assert plan(load_grid(EXPERIMENTS / name))


def test_paper_grid_is_table_one_at_the_defaults_chosen_on_dev():
    """Every method's `lr` flag is what `sparsetune train` takes when --lr is left out,
    on every task (test_defaults.py holds those to the sweeps' results), and no flag
    overrides the epochs the defaults chose."""
    from sparsetune.defaults import defaults_for
    from sparsetune.models import DEFAULT_MODEL_NAME

    grid = load_grid(EXPERIMENTS / "paper.toml")
    assert [method.name for method in grid.methods] == TABLE_ONE
    assert grid.tasks == ("cola", "stsb", "mrpc", "rte", "cb", "copa", "wsc") and grid.seeds == (1, 2, 3)
    assert grid.train_flags == {"precision": "bf16"} and grid.score_flags == {"precision": "bf16"}
    for method in grid.methods:
        assert set(method.train_flags) == {"lr"}, method.name
        for task in grid.tasks:
            default = defaults_for(task, DEFAULT_MODEL_NAME, method.train, method.score)
            assert method.train_flags["lr"] == default.lr, (method.name, task)
    assert all(method.p in ((None,), (0.005,)) for method in grid.methods)
    assert len(plan(grid)) == 10 * 7 * 3


def test_the_sweep_over_p_adds_to_the_paper_grid():
    paper, sweep = load_grid(EXPERIMENTS / "paper.toml"), load_grid(EXPERIMENTS / "paper_sweep.toml")
    (sam,) = [method for method in paper.methods if method.name == "SAM"]
    (swept,) = sweep.methods
    assert (swept.name, swept.score, swept.train_flags) == (sam.name, sam.score, sam.train_flags)
    assert sorted(swept.p + sam.p) == [0.0005, 0.001, 0.005, 0.02, 0.05]
    assert (sweep.runs_dir, sweep.train_flags, sweep.score_flags) == (
        paper.runs_dir,
        paper.train_flags,
        paper.score_flags,
    )
    assert set(sweep.tasks) < set(paper.tasks) and len(sweep.tasks) == 2 and sweep.seeds == paper.seeds
    assert not {spec.run_id for spec in plan(sweep)} & {spec.run_id for spec in plan(paper)}


def test_example_is_the_record_of_results_example():
    """The settings that made results/example (learning rates from lr_sweep, the pooler
    eligible), not today's: rerunning it reproduces the committed results."""
    example = load_grid(EXPERIMENTS / "example.toml")
    assert example.tasks == ("cb", "copa") and example.seeds == (1, 2) and example.pooler == "eligible"
    assert [method.name for method in example.methods] == TABLE_ONE
    assert {method.name: method.train_flags["lr"] for method in example.methods} == LR_SWEEP_CHOICE
    assert len(plan(example)) == 10 * 2 * 2


def test_lr_sweep_covers_table_one():
    grid = load_grid(EXPERIMENTS / "lr_sweep.toml")
    assert sorted({split_variant(m.name)[0] for m in grid.methods}) == sorted(TABLE_ONE)


@pytest.mark.parametrize("name", ["lr_sweep.toml", "learn_sweep.toml", "learn_sweep_rest.toml", "learn_epochs.toml"])
def test_sweep_names_carry_their_flags(name):
    """`Method@lr=0.001,epochs=6` runs with exactly those flags: the report's dev choice
    reads the setting from the name."""
    for method in load_grid(EXPERIMENTS / name).methods:
        setting = dict(part.split("=") for part in split_variant(method.name)[1].split(","))
        assert method.train_flags == {key: type(method.train_flags[key])(value) for key, value in setting.items()}
