"""What a method declares becomes train's flags: merged across methods, checked for conflicts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sparsetune.methods import METHODS, method_flags, option
from sparsetune.methods.base import TrainingMethod


@dataclass(frozen=True)
class _Shared:
    k: int = option(3, "how many", "--k")
    quiet: float = option(0.5, "no flag of its own")


@dataclass(frozen=True)
class _Other:
    k: int = option(4, "how many", "--k")  # same flag, another default


def _method(name: str, title: str, options: type) -> type:
    return type(name, (TrainingMethod,), {"name": name, "title": title, "Options": options})


def test_a_setting_two_methods_share_is_one_flag_in_one_panel():
    flags = method_flags({"a": _method("a", "A", _Shared), "b": _method("b", "B", _Shared)})
    assert [(flag.option, flag.flags, flag.type, flag.methods) for flag in flags] == [("k", ("--k",), int, ("a", "b"))]
    assert flags[0].help == "a/b: how many. Default: 3." and flags[0].panel == "Method options: A / B"


def test_a_setting_declared_twice_differently_is_refused():
    with pytest.raises(ValueError, match="declare setting 'k' differently"):
        method_flags({"a": _method("a", "A", _Shared), "b": _method("b", "B", _Other)})


def test_the_registered_flags_keep_their_spellings():
    spellings = {name for flag in method_flags() for name in flag.flags}
    assert {
        "-p",
        "--sparsity",
        "--project-every",
        "--lora-r",
        "--lora-alpha",
        "--lora-dropout",
        "--lora-targets",
        "--adapter-config",
        "--adapter-size",
        "--reduction-factor",
        "--mixout-p",
    } <= spellings
    by_option = {flag.option: flag for flag in method_flags()}
    assert by_option["p"].methods == tuple(name for name in METHODS if METHODS[name].projects)
    assert by_option["reduction_factor"].help == "adapter: hidden size / bottleneck width. Default: 16."
