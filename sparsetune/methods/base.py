"""The training-method seam: what a method changes, trains, and hands back.

The paper compares sparse fine-tuning (SAM and other masks)
with full tuning, LoRA, adapters, Mixout, DiffPruning and ChildPruning on one
protocol. Every one of them is a `TrainingMethod` run by the same loop
(`stages/train/loop.py`), so checkpoints, resume, model selection and metrics are
shared and the comparison is like with like:

    sparsetune train --method full --task cb -o out/

The loop calls, in order:
  bind(loaded)            records the eligible and head tensors (`loaded.eligible()`,
                          `loaded.head()`: the head is new tensors + the BERT pooler under
                          `--pooler head`; every method trains it densely, outside p), then calls
  prepare(loaded)         change the model (freeze, parametrize, wrap with peft, ...);
  trainable()             {name: parameter} the optimizer updates, in a stable order;
  regulariser()           an extra loss term per step (an L0 penalty), or None;
  after_step(step)        after each optimizer step (projection, mask change); returns
                          log fields, e.g. {"mask_changed": 1};
  state_dict() / load_state_dict()
                          everything needed to resume or restore the best model
                          (default: the trainable tensors; add method tensors as needed);
  export()                once, at the end: a plain transformers model for save_pretrained;
  save_files(folder)      files of the method's own beside it (structural methods' weights);
  final_mask()            the p-sparse support of the result (or None for dense methods);
  summary()               trainable-parameter counts for run.json.

Method-specific settings arrive as `options` (`--method-option KEY=VALUE` on the CLI,
or a flag the method declares), checked against the method's `Options` dataclass; what
else a method declares is listed in `methods/registry.py`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from ..errors import FileFormatError, UsageError

if TYPE_CHECKING:  # a method module imports no torch: the CLI reads the registry at start-up
    import torch
    from torch import nn

    from ..formats.mask import Mask
    from ..models import LoadedModel


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A method without settings of its own."""


def parse_options(
    options_type: type, given: Mapping[str, Any], method: str, from_user: bool | None = None, in_file: bool = False
):
    """Build `options_type` from KEY=VALUE strings (or values), with errors naming the key.

    `from_user`: the values are what a user gave (the command line, a grid config), so a
    setting's sentinel default (`option(least=...)`) is refused; by default, strings are
    (train's -O and flags) and typed values are not (method.json records every option,
    sentinels included). An options class may define `check(name)`: its ranges that need
    no model, so that `train`, a grid config (before any run) and method.json refuse the
    same values; `name(setting)` is the flag or key to name in the error. `in_file`: the
    values come from a file (a grid config, method.json), whose keys an error names."""
    fields = {field.name: field for field in dataclasses.fields(options_type)}
    values = {}
    for key, raw in given.items():
        name = key.replace("-", "_")
        if name not in fields:
            known = ", ".join(fields) or "none"
            # No flag named here: the key may come from -O KEY=VALUE or from a shorthand (-p).
            raise UsageError(f"method {method!r} has no option {key!r} (its options: {known})")
        kind = type(fields[name].default) if fields[name].default is not dataclasses.MISSING else str
        values[name] = _convert(raw, kind, key)
        least = fields[name].metadata.get("least")
        user = isinstance(raw, str) if from_user is None else from_user
        if user and least is not None and not values[name] >= least:  # a given 0 is not the "derive it" default
            # A flag on the command line (a string); the key in a file (a grid config's options).
            flag = (fields[name].metadata.get("flags") or (key,))[0] if isinstance(raw, str) and not in_file else key
            raise UsageError(f"{flag} must be at least {least:g}, got {values[name]}")
    options = options_type(**values)
    check = getattr(options, "check", None)  # the ranges that need no model: here, a grid fails before any run
    if check is not None:

        def name(setting: str) -> str:
            """How the user wrote `setting`: its flag on the command line, its key in a file."""
            raw = next((value for key, value in given.items() if key.replace("-", "_") == setting), "")
            flags = fields[setting].metadata.get("flags") or (f"--method-option {setting}",)
            return flags[0] if isinstance(raw, str) and not in_file else setting

        check(name)
    return options


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _convert(raw: Any, kind: type, key: str) -> Any:
    if not isinstance(raw, str) or kind is str:  # a value from a file (method.json, a grid config): its own type
        fits = {
            int: lambda v: isinstance(v, int) and not isinstance(v, bool),
            float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            bool: lambda v: isinstance(v, bool),
            str: lambda v: isinstance(v, str),
        }.get(kind)
        if fits is not None and not fits(raw):
            raise UsageError(f"method option {key}={raw!r}: expected {_KINDS[kind]}")
        return raw
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        return kind(raw)
    except ValueError:
        raise UsageError(f"method option {key}={raw}: expected {_KINDS.get(kind, 'a ' + kind.__name__)}") from None


class TrainingMethod:
    """Base class; a method overrides `prepare` and whatever else it changes."""

    name: ClassVar[str] = ""  # set by @register_method
    title: ClassVar[str] = ""  # how --help names it (its panel of flags); default: the name
    default_lr: ClassVar[float | None] = None  # None: the task's learning rate (defaults.py)
    projects: ClassVar[bool] = False  # the result is projected onto ⌊m·p⌋ entries (methods.projecting)
    needs_mask: ClassVar[bool] = False
    Options: ClassVar[type] = NoOptions  # a frozen dataclass; fields from registry.option() have help and flags

    def __init__(self, mask: Mask | None = None, options: Mapping[str, Any] | None = None):
        if self.needs_mask and mask is None:
            raise UsageError(f"method {self.name!r} needs a mask: pass --mask mask.safetensors")
        self.mask = mask
        self.options = parse_options(self.Options, options or {}, self.name)
        self.loaded: LoadedModel | None = None
        self.eligible: dict[str, nn.Parameter] = {}
        self.head: dict[str, nn.Parameter] = {}

    # -- building -------------------------------------------------------------
    def bind(self, loaded: LoadedModel) -> nn.Module:
        """Record eligible/head tensors before `prepare` renames or wraps anything."""
        self.loaded = loaded
        self.eligible, self.head = loaded.eligible(), loaded.head()
        return self.prepare(loaded)

    def prepare(self, loaded: LoadedModel) -> nn.Module:
        """Make `loaded.model` trainable the method's way; return the model to train."""
        raise NotImplementedError

    def trainable(self) -> dict[str, nn.Parameter]:
        """Name -> parameter the optimizer updates (stable order: checkpoints depend on it)."""
        raise NotImplementedError

    def no_decay(self, name: str) -> bool:
        """Biases and LayerNorm weights get no weight decay (the usual BERT recipe)."""
        return name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name

    # -- per step -------------------------------------------------------------
    def regulariser(self) -> torch.Tensor | None:
        return None

    def after_step(self, step: int) -> dict[str, Any] | None:
        return None

    # -- state ----------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: parameter.detach().clone() for name, parameter in self.trainable().items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        import torch

        trainable = self.trainable()
        missing = sorted(set(trainable) - set(state))
        if missing:
            raise FileFormatError(
                f"checkpoint lacks trainable tensor {missing[0]!r}; it was written by another method or mask"
            )
        with torch.no_grad():
            for name, parameter in trainable.items():
                if tuple(state[name].shape) != tuple(parameter.shape):
                    raise FileFormatError(
                        f"checkpoint tensor {name!r} has shape {list(state[name].shape)}, "
                        f"expected {list(parameter.shape)}"
                    )
                parameter.copy_(state[name])

    # -- results --------------------------------------------------------------
    def export(self) -> nn.Module:
        """A plain transformers model (called once, after training)."""
        raise NotImplementedError

    def save_files(self, folder) -> None:
        """Files of the method's own, written into the run dir beside the exported model
        (structural methods: `method/`, their own weights; see `methods.structural`)."""

    def final_mask(self) -> Mask | None:
        return self.mask

    def head_tensors(self) -> list[str]:
        """Names of the head tensors, for run.json: what trained densely, outside p."""
        return sorted(self.head)

    def summary(self) -> dict[str, Any]:
        """Trainable-parameter counts for run.json (the report compares budgets)."""
        head = sum(p.numel() for p in self.head.values())
        eligible = sum(p.numel() for p in self.eligible.values())
        total = sum(p.numel() for p in self.trainable().values())
        return {
            "trainable": total,
            "head": head,
            "head_tensors": self.head_tensors(),
            "pretrained_trainable": total - head,
            "eligible": eligible,
            "fraction": (total - head) / eligible if eligible else 0.0,
        }
