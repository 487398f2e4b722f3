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
CHOSEN_LR = {
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


def test_paper_grid_is_table_one_with_the_sweep_and_lrs_chosen_on_dev():
    grid = load_grid(EXPERIMENTS / "paper.toml")
    assert [method.name for method in grid.methods] == TABLE_ONE
    assert grid.tasks == ("cola", "stsb", "mrpc", "rte", "cb", "copa", "wsc") and grid.seeds == tuple(range(1, 11))
    assert {method.name: method.train_flags["lr"] for method in grid.methods} == CHOSEN_LR
    sam = grid.methods[-1]
    assert sam.p == (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
    assert all(method.p in ((None,), (0.005,)) for method in grid.methods[:-1])
    assert len(plan(grid)) == (9 + 8) * 7 * 10


def test_example_is_the_paper_grid_on_cb_and_copa_with_two_seeds():
    paper, example = load_grid(EXPERIMENTS / "paper.toml"), load_grid(EXPERIMENTS / "example.toml")
    assert example.tasks == ("cb", "copa") and example.seeds == (1, 2)
    assert [(m.name, m.train, m.score, m.options, m.train_flags) for m in example.methods] == [
        (m.name, m.train, m.score, m.options, m.train_flags) for m in paper.methods
    ]
    assert len(plan(example)) == 10 * 2 * 2


def test_lr_sweep_names_carry_their_flag():
    grid = load_grid(EXPERIMENTS / "lr_sweep.toml")
    assert sorted({split_variant(m.name)[0] for m in grid.methods}) == sorted(TABLE_ONE)
    for method in grid.methods:
        key, _, value = split_variant(method.name)[1].partition("=")
        assert method.train_flags == {key: float(value)}
