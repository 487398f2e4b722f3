"""`childpruning`: train every parameter, project onto the p-sparse set around θ0 every N steps.

    sparsetune train --method childpruning --task cb -p 0.005 --project-every 50 -o out/

Fu et al. 2023 (arXiv 2211.15583, §"p-sparse fine-tuned models") describe ChildPruning
(Xu et al. 2021) as "train the full parameters, then project": full AdamW steps on θ,
and every `project_every` steps θ ← Π(θ), where Π keeps the ⌊m·p⌋ entries with the
largest |θ − θ0| and puts every other entry back to θ0 bit for bit. Entries put back
keep training and may re-enter at the next projection (projected gradient descent);
each projection that changes the kept set is logged as `mask_changed`, which is where
the paper's Figure 1 shows the training loss jumping back up.

Dev evaluation and export see Π(θ) of the current state (`projection.ProjectedTensor`),
so the selected and the saved model are the same p-sparse model, and `final_mask()` is
its support: `OUT/mask.safetensors`, reusable by `train --mask`.

Memory: θ0 is kept once (m floats) beside θ and AdamW's two moments, as full tuning
needs them anyway; the kept set is checkpointed as k indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core import projection
from ..config import DEFAULT_SPARSITY
from ..formats.mask import Mask
from ..models import LoadedModel
from .registry import register_method
from .base import TrainingMethod
from .projecting import ProjectingMethod, changed_support, check_projection_options, entries_entered



@dataclass(frozen=True)
class ProjectionOptions:
    p: float = DEFAULT_SPARSITY  # fraction of eligible entries the result may change
    project_every: int = 100  # optimizer steps between projections
    scope: str = "global"  # global top-k (Theorem 3) or per tensor


class Origin(nn.Module):
    """θ0 of one tensor, as a buffer: it follows the model across devices, is never trained."""

    def __init__(self, parameter: torch.Tensor):
        super().__init__()
        self.register_buffer("theta0", parameter.detach().clone(), persistent=False)


@register_method("childpruning")
class ChildPruningMethod(ProjectingMethod):
    """Dense training of θ with periodic projection onto ‖θ − θ0‖₀ ≤ ⌊m·p⌋."""

    Options = ProjectionOptions

    def prepare(self, loaded: LoadedModel) -> nn.Module:
        o = self.options
        self.budget = check_projection_options(o.p, o.project_every, o.scope, sum(p.numel() for p in self.eligible.values()))
        self.origins: dict[str, Origin] = {name: Origin(parameter) for name, parameter in self.eligible.items()}
        self.kept: Mask | None = None  # the last projection's support
        self._eval_mask: Mask | None = None  # Π of the current state, computed on first use
        self.parameters_: dict[str, nn.Parameter] = {}
        for name in self.eligible:
            self.parameters_[name] = projection.attach(
                loaded.model, name, projection.ProjectedTensor(lambda theta: theta, self._eval_value(name), holds=self.origins[name])
            )
        for parameter in loaded.model.parameters():
            parameter.requires_grad_(True)
        return loaded.model

    def _eval_value(self, name: str):
        def value(theta: torch.Tensor) -> torch.Tensor:
            keep = self.current_projection().bool_tensor(name).to(theta.device)
            return torch.where(keep, theta, self.origins[name].theta0)

        return value

    def _scores(self) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {name: (theta - self.origins[name].theta0).abs() for name, theta in self.parameters_.items()}  # each shaped like θ

    def current_projection(self) -> Mask:
        """Π's support for the current θ (cached until the next step or state load)."""
        if self._eval_mask is None:
            self._eval_mask = Mask.from_scores(self._scores(), self.options.p, self.options.scope, self._metadata())
        return self._eval_mask

    def trainable(self) -> dict[str, nn.Parameter]:
        return {**self.parameters_, **self.head}

    # -- per step -------------------------------------------------------------
    def after_step(self, step: int) -> dict[str, Any] | None:
        self._eval_mask = None  # θ moved
        if step % self.options.project_every:
            return None
        mask = self.current_projection()
        with torch.no_grad():
            for name, theta in self.parameters_.items():
                theta.copy_(torch.where(mask.bool_tensor(name).to(theta.device), theta, self.origins[name].theta0))  # outside: θ0 bit for bit
        entered = entries_entered(mask, self.kept)
        self.kept = mask
        return {"projected": 1, "mask_changed": int(entered > 0), "mask_entered": entered}

    def _projected_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(theta.shape) for name, theta in self.parameters_.items()}

    # -- results --------------------------------------------------------------
    def export(self) -> nn.Module:
        kept = self.current_projection()
        model = projection.materialise(self.loaded.model, list(self.parameters_))
        exported = dict(model.named_parameters())
        before = {name: origin.theta0 for name, origin in self.origins.items()}
        self._final = changed_support({name: exported[name] for name in before}, before, kept.metadata)
        return model

    def final_mask(self) -> Mask | None:
        """The entries the exported model changed (a subset of the last projection, ≤ ⌊m·p⌋)."""
        return getattr(self, "_final", None)

    def summary(self) -> dict[str, Any]:
        return projection_summary(self)


def projection_summary(method: TrainingMethod) -> dict[str, Any]:
    """Counts for run.json: `pretrained_trainable`/`fraction` describe the result (at most
    k = ⌊m·p⌋ entries differ from θ0); `optimised` is what AdamW updated while training."""
    head = sum(p.numel() for p in method.head.values())
    eligible = sum(p.numel() for p in method.eligible.values())
    optimised = sum(p.numel() for p in method.trainable().values())
    return {
        "trainable": method.budget + head,
        "head": head,
        "head_tensors": method.head_tensors(),
        "pretrained_trainable": method.budget,
        "eligible": eligible,
        "fraction": method.budget / eligible if eligible else 0.0,
        "optimised": optimised,
        "changed": final.selected if (final := method.final_mask()) is not None else None,
        "p": method.options.p,
        "project_every": method.options.project_every,
    }
