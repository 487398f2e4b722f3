"""`childpruning`: train every parameter, project onto the p-sparse set around θ0 every N steps.

    sparsetune train --method childpruning --task cb -p 0.005 --project-every 50 -o out/

The paper (§"p-sparse fine-tuned models") describes ChildPruning
(Xu et al. 2021) as "train the full parameters, then project": full AdamW steps on θ,
and every `project_every` steps θ ← Π(θ), where Π keeps the ⌊m·p⌋ entries with the
largest |θ − θ0| and puts every other entry back to θ0 bit for bit. Entries put back
keep training and may re-enter at the next projection (projected gradient descent);
each projection that changes the kept set is logged as `mask_changed`, which is where
the paper's Figure 1 shows the training loss jumping back up.

Dev evaluation and export see Π(θ) of the current state (`core.projection.ProjectedTensor`),
so the selected and the saved model are the same p-sparse model, and `final_mask()` is
its support: `OUT/mask.safetensors`, reusable by `train --mask`.

Memory: θ0 is kept once (m floats) beside θ and AdamW's two moments, as full tuning
needs them anyway; the kept set is checkpointed as k indices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .projecting import ProjectingMethod, changed_support
from .registry import register_method

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..models import LoadedModel


@register_method("childpruning")
class ChildPruningMethod(ProjectingMethod):
    """Dense training of θ with periodic projection onto ‖θ − θ0‖₀ ≤ ⌊m·p⌋."""

    title = "ChildPruning"

    def prepare(self, loaded: LoadedModel) -> nn.Module:
        from ..core.projection import Origin, ProjectedTensor, attach

        self._begin()
        self.origins: dict[str, Origin] = {name: Origin(parameter) for name, parameter in self.eligible.items()}
        self.parameters_: dict[str, nn.Parameter] = {}
        for name in self.eligible:
            self.parameters_[name] = attach(
                loaded.model,
                name,
                ProjectedTensor(lambda theta: theta, self._eval_value(name), holds=self.origins[name]),
            )
        for parameter in loaded.model.parameters():
            parameter.requires_grad_(True)
        return loaded.model

    def _eval_value(self, name: str):
        import torch

        def value(theta: torch.Tensor) -> torch.Tensor:
            keep = self.current_projection().bool_tensor(name, theta.device)
            return torch.where(keep, theta, self.origins[name].theta0)

        return value

    def _scores(self) -> dict[str, torch.Tensor]:
        import torch

        with torch.no_grad():
            return {
                name: (theta - self.origins[name].theta0).abs() for name, theta in self.parameters_.items()
            }  # each shaped like θ

    def trainable(self) -> dict[str, nn.Parameter]:
        return {**self.parameters_, **self.head}

    # -- per step -------------------------------------------------------------
    def after_step(self, step: int) -> dict[str, Any] | None:
        import torch

        self._eval_mask = None  # θ moved
        if step % self.options.project_every:
            return None
        mask = self.current_projection()
        with torch.no_grad():
            for name, theta in self.parameters_.items():
                theta.copy_(
                    torch.where(mask.bool_tensor(name, theta.device), theta, self.origins[name].theta0)
                )  # outside: θ0 bit for bit
        return self._keep(mask)

    def _projected_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(theta.shape) for name, theta in self.parameters_.items()}

    # -- results --------------------------------------------------------------
    def export(self) -> nn.Module:
        from ..core.projection import materialise

        kept = self.current_projection()
        model = materialise(self.loaded.model, list(self.parameters_))
        exported = dict(model.named_parameters())
        before = {name: origin.theta0 for name, origin in self.origins.items()}
        self._final = changed_support({name: exported[name] for name in before}, before, kept.metadata)
        return model
