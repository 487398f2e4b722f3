"""The package's public names: every one in `__all__` resolves, and the Python pipeline
(score → train → eval → diff → apply) is reachable from `sparsetune` alone, configs included."""

from __future__ import annotations

import sparsetune


def test_every_public_name_resolves_and_all_lists_exactly_them():
    assert set(sparsetune.__all__) == {*sparsetune._API, "__version__"}
    for name in sparsetune.__all__:
        assert getattr(sparsetune, name) is not None, name


def test_each_stage_and_its_config_are_public():
    for stage, config in (
        ("score", "ScoreConfig"),
        ("rethreshold", "MaskConfig"),
        ("train", "TrainConfig"),
        ("evaluate", "EvalConfig"),
        ("diff", "DiffConfig"),
        ("apply", "ApplyConfig"),
    ):
        assert callable(getattr(sparsetune, stage)) and isinstance(getattr(sparsetune, config), type), stage


def test_the_package_says_it_is_typed():
    """PEP 561: without py.typed, mypy and pyright users see none of the annotations."""
    from importlib.resources import files

    assert files("sparsetune").joinpath("py.typed").is_file()
