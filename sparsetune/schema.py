"""Schemas of every file sparsetune reads, checked at the boundary: one spec per format.

A file that parses but holds a wrong type (`"seed": "x"`, `shapes` as a string, a grid's
`methods = 5`) must fail where it is read, with one line naming the file, the key and
what was expected, not as a `TypeError` three stages later or, worse, a run that
silently used a wrong value. Each format's loader calls `validate` once with its spec
from this module:

    validate(metadata, MASK_METADATA, "mask.safetensors")
    -> FileFormatError: mask.safetensors: p must be a number in (0, 1], got "abc"

An `Expect` is a small predicate with the words for what it expects; containers
(`list_of`, `dict_of`, `table`) name the nested key (`hyperparameters.lr`,
`shapes["bert.pooler.dense.weight"][0]`). No dependency: plain Python, no torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from .config import POOLER_POLICIES, SCOPES
from .errors import FileFormatError, SparsetuneError
from .runtime import PRECISIONS


def show(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it (JSON where possible), shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Expect:
    """What a value must be: `text` says it in words, `problem` says why a value is not."""

    def problem(self, value: Any, key: str) -> str | None:
        raise NotImplementedError


@dataclass(frozen=True)
class _Predicate(Expect):
    text: str
    test: Callable[[Any], bool]

    def problem(self, value: Any, key: str) -> str | None:
        try:
            ok = bool(self.test(value))
        except (TypeError, ValueError):
            ok = False
        return None if ok else f"{key} must be {self.text}, got {show(value)}"


_NOUNS = ("integer", "number", "string", "list", "object", "digest")


def _plural(text: str) -> str:
    """'an integer ≥ 0' -> 'integers ≥ 0', for the items of a list."""
    words = text.split(" ")
    if words[0] not in ("a", "an"):
        return f"items each {text}"
    words = words[1:]
    for index, word in enumerate(words):
        if word in _NOUNS:
            words[index] = word + "s"
            break
    return " ".join(words)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(low: int | None = None, high: int | None = None) -> Expect:
    """An integer (never a bool) in [low, high]."""
    bounds = []
    if low is not None:
        bounds.append(f"≥ {low}")
    if high is not None:
        bounds.append(f"≤ {high}")
    text = "an integer" + (" " + " and ".join(bounds) if bounds else "")
    return _Predicate(text, lambda v: _is_int(v) and (low is None or v >= low) and (high is None or v <= high))


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
    nan: bool = False,
) -> Expect:
    """A finite number (int or float, never a bool) within the given bounds; `finite=False`
    also takes ±inf, `nan=True` also NaN (a metric of a collapsed model)."""
    if low is not None and high is not None:
        text = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        text = f"a number {'>' if low_open else '≥'} {low:g}"
    elif high is not None:
        text = f"a number {'<' if high_open else '≤'} {high:g}"
    else:
        text = "a finite number" if finite else "a number"

    def test(v: Any) -> bool:
        if _is_number(v) and nan and math.isnan(v):
            return True
        if not _is_number(v) or math.isnan(v) or (finite and math.isinf(v)):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return high is None or (v < high if high_open else v <= high)

    return _Predicate(text, test)


def string(choices: Iterable[str] | None = None, *, empty: bool = False) -> Expect:
    """A string (non-empty unless `empty`), optionally one of `choices`."""
    if choices is not None:
        allowed = tuple(choices)
        return _Predicate(f"one of {', '.join(map(repr, allowed))}", lambda v: isinstance(v, str) and v in allowed)
    return _Predicate(
        "a string" if empty else "a non-empty string", lambda v: isinstance(v, str) and (empty or v != "")
    )


def boolean() -> Expect:
    return _Predicate("true or false", lambda v: isinstance(v, bool))


def hexdigest(length: int | None = None) -> Expect:
    text = f"a {length}-character hex digest" if length else "a hex digest"
    return _Predicate(
        text,
        lambda v: (
            isinstance(v, str)
            and v != ""
            and (length is None or len(v) == length)
            and all(c in "0123456789abcdef" for c in v)
        ),
    )


ANY: Expect = _Predicate("any value", lambda v: True)


@dataclass(frozen=True)
class nullable(Expect):  # noqa: N801 - reads like the other constructors
    """`inner`, or null."""

    inner: Expect

    @property
    def text(self) -> str:  # type: ignore[override]
        return f"{self.inner.text} or null"

    def problem(self, value: Any, key: str) -> str | None:
        if value is None:
            return None
        inner = self.inner.problem(value, key)
        return (
            None
            if inner is None
            else f"{key} must be {self.text}, got {show(value)}"
            if inner.startswith(f"{key} must")
            else inner
        )


@dataclass(frozen=True)
class any_of(Expect):  # noqa: N801
    """One of several expectations (e.g. a string or a list of strings)."""

    options: tuple[Expect, ...]

    @property
    def text(self) -> str:  # type: ignore[override]
        return " or ".join(option.text for option in self.options)

    def problem(self, value: Any, key: str) -> str | None:
        if any(option.problem(value, key) is None for option in self.options):
            return None
        return f"{key} must be {self.text}, got {show(value)}"


@dataclass(frozen=True)
class list_of(Expect):  # noqa: N801
    """A list whose every item is `item`, with at least `min_items` items (and, with
    `unique`, no item twice)."""

    item: Expect
    min_items: int = 0
    unique: bool = False

    @property
    def text(self) -> str:  # type: ignore[override]
        items = _plural(self.item.text)
        text = (
            f"a list of at least {self.min_items} {items}"
            if self.min_items > 1
            else f"a non-empty list of {items}"
            if self.min_items == 1
            else f"a list of {items}"
        )
        return text + (" without duplicates" if self.unique else "")

    def problem(self, value: Any, key: str) -> str | None:
        if not isinstance(value, list) or len(value) < self.min_items:
            return f"{key} must be {self.text}, got {show(value)}"
        for index, item in enumerate(value):
            inner = self.item.problem(item, f"{key}[{index}]")
            if inner:
                return inner
        if self.unique:
            seen = [json.dumps(item, sort_keys=True) for item in value]
            twice = next((value[i] for i, item in enumerate(seen) if item in seen[:i]), None)
            if len(set(seen)) != len(seen):
                return f"{key} must be {self.text}, got {show(twice)} twice"
        return None


@dataclass(frozen=True)
class dict_of(Expect):  # noqa: N801
    """A JSON object with string keys whose every value is `value`."""

    value: Expect
    min_items: int = 0

    @property
    def text(self) -> str:  # type: ignore[override]
        return f"an object of {self.value.text}"

    def problem(self, value: Any, key: str) -> str | None:
        if not isinstance(value, dict) or len(value) < self.min_items:
            return (
                f"{key} must be {'a non-empty ' if self.min_items else 'an '}object of name -> {self.value.text}, "
                f"got {show(value)}"
            )
        for name, item in value.items():
            if not isinstance(name, str):
                return f"{key} must have string keys, got {show(name)}"
            inner = self.value.problem(item, f"{key}[{show(name)}]")
            if inner:
                return inner
        return None


@dataclass(frozen=True)
class table(Expect):  # noqa: N801
    """A JSON object with known keys: each present key must meet its `Expect`; the
    `required` ones must be present; with `closed`, no other key is allowed; with
    `extra`, every other key's value must meet it."""

    fields: Mapping[str, Expect]
    required: tuple[str, ...] = ()
    closed: bool = False
    extra: Expect | None = None

    text = "an object"

    def problem(self, value: Any, key: str) -> str | None:
        prefix = f"{key}." if key else ""
        if not isinstance(value, dict):
            return f"{key + ' must be' if key else 'must hold'} a JSON object (a table of keys), got {show(value)}"
        for name in self.required:
            if name not in value:
                return (
                    f"{prefix}{name} is missing ({self.fields[name].text})"
                    if name in self.fields
                    else f"{prefix}{name} is missing"
                )
        if self.closed:
            unknown = sorted(str(name) for name in value if name not in self.fields)
            if unknown:
                return (
                    f"unknown key {unknown[0]!r}{' in ' + key if key else ''} (known: {', '.join(sorted(self.fields))})"
                )
        for name, item in value.items():
            expect = self.fields.get(name, self.extra)
            if expect is not None:
                inner = expect.problem(item, f"{prefix}{name}")
                if inner:
                    return inner
        return None


def validate(data: Any, spec: table, where: str, error: type[SparsetuneError] = FileFormatError, hint: str = "") -> Any:
    """Raise `error` naming `where`, the key and the expectation when `data` does not
    meet `spec`; return `data` unchanged otherwise. `hint` is appended (e.g. "; re-create
    it with sparsetune score")."""
    problem = spec.problem(data, "")
    if problem:
        raise error(f"{where}: {problem}{hint}")
    return data


# -- the formats ------------------------------------------------------------------------
POOLERS = POOLER_POLICIES

SHAPES = dict_of(list_of(integer(0)))
NAMES = list_of(string())
FRACTION = number(0, 1, low_open=True)  # (0, 1]
DEV_FRACTION = number(0, 1, low_open=True, high_open=True)  # (0, 1)
SCORE = number(finite=False, nan=True)  # a metric may be nan (a collapsed model), a best score -inf (no evaluation yet)
METRIC_VALUES = dict_of(SCORE)
FLAG = any_of((boolean(), integer(0, 1)))  # log flags: true/false or 1/0

# What `score` records (masks and scores share it) and `train` uses from a mask.
_SCORED = {
    "model": string(),
    "task": string(),
    "method": string(),
    "examples": integer(0),
    "seed": integer(0),
    "dev_fraction": DEV_FRACTION,
    "max_length": integer(1),
    "batch_size": integer(1),
    "pooler": string(POOLERS),
    "head": NAMES,
    "precision": string(PRECISIONS),
    "revision": string(),
    "model_commit": string(),
    "base_sha256": hexdigest(64),
    "sparsetune_version": string(empty=True),
}
MASK_METADATA = table(
    {
        **_SCORED,
        "p": FRACTION,
        "scope": string(SCOPES),
        "selected": integer(0),
        "eligible": integer(1),
        "shapes": dict_of(list_of(integer(0)), min_items=1),
    },
    required=("shapes",),
)
SCORES_METADATA = table(
    {**_SCORED, "scope": string(SCOPES), "eligible": integer(1), "shapes": dict_of(list_of(integer(0)), min_items=1)},
    required=("shapes",),
)
DELTA_METADATA = table(
    {
        "base_model": string(),
        "base_revision": string(),
        "task": string(empty=True),
        "architecture": string(empty=True),
        "config": table({"model_type": string()}, required=("model_type",)),
        "fingerprint": dict_of(hexdigest(16)),
        "untouched": SHAPES,
        "eligible": integer(0),
        "changed": integer(0),
        "head_entries": integer(0),
        "pooler": string(POOLERS),
        "top_p": FRACTION,
        "max_length": integer(1),
        "method": string(empty=True),
        "method_options": string(),
        "sparsetune_version": string(empty=True),
    },
    required=("base_model", "config"),
)

# run.json's hyperparameters and a checkpoint's copy of them (what --resume compares and
# uses: there the run's identity is required).
_HYPERPARAMETER_FIELDS = {
    "method": string(),
    "model": string(),
    "task": string(),
    "epochs": integer(1),
    "max_steps": nullable(integer(1)),
    "lr": number(0, low_open=True),
    "batch_size": integer(1),
    "max_length": integer(1),
    "warmup_ratio": number(0, 1, high_open=True),
    "weight_decay": number(0),
    "max_grad_norm": number(0, low_open=True),
    "seed": integer(0),
    "split_seed": integer(0),
    "eval_every": nullable(integer(1)),
    "dev_fraction": DEV_FRACTION,
    "method_options": dict_of(ANY),
    "precision": string(PRECISIONS),
    "pooler": string(POOLERS),
    "revision": nullable(string()),
}
HYPERPARAMETERS = table(_HYPERPARAMETER_FIELDS)
RESUMABLE_HYPERPARAMETERS = table(
    _HYPERPARAMETER_FIELDS, required=("method", "model", "task", "epochs", "lr", "batch_size", "max_length")
)
_BEST = table({"step": integer(0), "epoch": number(0), "score": SCORE, "dev": METRIC_VALUES})
RUN_RECORD = table(
    {
        "format": string(),
        "version": string(),
        "base_model": string(),
        "task": string(),
        "method": string(),
        "hyperparameters": HYPERPARAMETERS,
        "seed": integer(0),
        "mask_sha256": nullable(hexdigest(64)),
        "trainable_parameters": dict_of(ANY),
        "best": _BEST,
        "metrics": dict_of(METRIC_VALUES),
        "seconds": nullable(number(0)),
        "sparsetune_version": string(empty=True),
        "extra": table({"steps": integer(0), "model_commit": string()}),
    },
    required=("base_model", "task", "method", "hyperparameters"),
)
CHECKPOINT_STATE = table(
    {
        "step": integer(0),
        "epoch": number(0),
        "parameter_names": NAMES,
        "param_groups": list_of(
            table({"params": list_of(integer(0)), "lr": number(0), "weight_decay": number(0)}, required=("params",))
        ),
        "scheduler": dict_of(ANY),
        "best": _BEST,
        "hyperparameters": RESUMABLE_HYPERPARAMETERS,
        "mask_sha256": hexdigest(64),
        "seconds": number(0),
        "loss_scale": table(  # fp16's GradScaler.state_dict()
            {
                "scale": number(0, low_open=True),
                "growth_factor": number(1, low_open=True),
                "backoff_factor": number(0, 1, low_open=True, high_open=True),
                "growth_interval": integer(1),
                "_growth_tracker": integer(0),
            }
        ),
        "tensors_sha256": hexdigest(64),
        "checksum": hexdigest(64),
    },
    required=("step", "parameter_names", "param_groups", "scheduler", "best", "hyperparameters"),
)
METHOD_DESCRIPTION = table(
    {
        "format": string(),
        "version": string(),
        "method": string(),
        "options": dict_of(ANY),
        "base_model": string(),
        "base_revision": string(),
        "pooler": string(POOLERS),
        "head": NAMES,
    },
    required=("method",),
)
LOG_RECORD = table(
    {
        "step": integer(0),
        "epoch": number(0),
        "loss": number(),
        "lr": number(0),
        "dev": METRIC_VALUES,
        "projected": FLAG,
        "mask_changed": FLAG,
        "mask_entered": integer(0),
        "expected_density": number(0, 1),
        "l0_penalty": number(),
    },
    required=("step",),
)
RESULT_LINE = table(
    {
        "run_id": string(),
        "method": string(),
        "task": string(),
        "seed": integer(0),
        "p": nullable(FRACTION),
        # Every task's score (accuracy, F1, their mean, MCC, correlations) lies in [-1, 1];
        # NaN is a collapsed model's undefined correlation.
        "test": table({"score": number(-1, 1, nan=True)}, required=("score",), extra=SCORE),
        "dev": dict_of(ANY),
        "trainable_parameters": dict_of(ANY),
        "seconds": nullable(number(0)),
        "peak_rss_mb": nullable(number(0)),
        "config_hash": string(empty=True),
        "run_dir": string(empty=True),
        "git_commit": nullable(string(empty=True)),
        "versions": dict_of(string(empty=True)),
    },
    required=("run_id", "method", "task", "seed", "test"),
)


def read_json_lines(
    path, spec: table, what: str, error: type[SparsetuneError] = FileFormatError, allow_torn_tail: bool = False
) -> list[dict]:
    """Every record of a JSON-lines file, each an object meeting `spec` (errors name
    `path:line`). Non-UTF-8 bytes are an error, not a traceback. With `allow_torn_tail`,
    a last line cut short by a kill (no closing brace) is dropped."""
    from pathlib import Path

    from .io import loads_json

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte 0x{err.object[err.start]:02x}); is this a {what}?") from None
    lines = text.splitlines()
    records = []
    for number_, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = loads_json(line)
        except json.JSONDecodeError as err:
            torn = line.lstrip().startswith("{") and not line.rstrip().endswith("}")  # an object cut short
            if allow_torn_tail and number_ == len(lines) and torn:
                break
            raise error(f"{path}:{number_}: not valid JSON ({err.msg}); is this a {what}?") from None
        problem = spec.problem(record, "")
        if problem:
            raise error(f"{path}:{number_}: {problem}")
        records.append(record)
    return records


def read_log(path) -> list[dict]:
    """A run's log.jsonl, each record checked (`LOG_RECORD`); a last line cut short by a
    kill of the run that writes it is left out. The one reader of logs (inspect, figures)."""
    return read_json_lines(path, LOG_RECORD, "sparsetune log.jsonl", allow_torn_tail=True)
