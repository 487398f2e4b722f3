"""`diffpruning`: a gated diff vector with an L0 penalty, projected onto the p-sparse set every N steps.

    sparsetune train --method diffpruning --task cb -p 0.005 --project-every 50 -o out/

DiffPruning (Guo et al. 2021) as the paper describes it: θ =
θ0 + z ⊙ δ over the eligible entries, δ a dense diff vector (initialised to 0) and z a
hard-concrete relaxed Bernoulli mask (Louizos et al. 2018, `core.hard_concrete`)
with one logit log α per entry, trained by reparametrisation together with δ under an
L0 penalty, `l0_weight` × (expected number of non-zero gates) / m. Every
`project_every` steps the model is projected onto its feasible region: the ⌊m·p⌋
entries with the largest |ẑ·δ| (ẑ the test-time gate) keep their diff, every other δ
is set to 0, so θ is θ0 there. Optimisation then goes on (projected gradient descent:
a zeroed entry may grow back and re-enter at the next projection; fixing it for good
would make every projection after the first a no-op, and the paper's Figure 1 shows
repeated jumps). `mask_changed` in log.jsonl marks each projection that changed the
kept set.

Dev evaluation and export use the projected deterministic model, θ0 + ẑ ⊙ δ on the
kept set and θ0 bit for bit elsewhere (`core.projection.ProjectedTensor`), so the selected
model, the saved one and `OUT/mask.safetensors` (`final_mask()`) agree.

Gate learning rate. The loop has one AdamW learning rate, tuned for weights (1e-3),
at which a logit would move by ~1e-3 per step and the L0 penalty would never close a
gate. AdamW's step does not depend on the gradient's scale, so the logits are stored
as log α / `gate_scale`: their effective learning rate is `gate_scale` × lr, without a
second optimizer group. Gates get no weight decay; δ gets the usual decay rule of the
tensor it belongs to (decay pulls θ towards θ0, not towards 0).

Memory: δ and the logits are dense (2m floats, plus AdamW's 4m), 630 MB for MiniLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .projecting import ProjectingMethod, ProjectionOptions, changed_support
from .registry import option, register_method

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..models import LoadedModel

DIFF, GATE = ".diff", ".gate"  # suffixes of the trainable tensors, after the pretrained tensor's name


@dataclass(frozen=True)
class DiffPruningOptions(ProjectionOptions):
    l0_weight: float = option(1.0, "weight of the expected fraction of open gates in the loss")
    init_log_alpha: float = option(3.0, "initial gate logit log α (3: gates start open, P(z ≠ 0) ≈ 0.96)")
    gate_scale: float = option(100.0, "the gate logits' learning rate is gate_scale × lr")

    def check(self, name) -> None:
        super().check(name)
        if not self.gate_scale > 0:
            raise UsageError(f"{name('gate_scale')} must be positive, got {self.gate_scale}")


@register_method("diffpruning")
class DiffPruningMethod(ProjectingMethod):
    """Hard-concrete gated diff vector + L0 penalty, alternating with projection."""

    title = "DiffPruning"
    Options = DiffPruningOptions

    def prepare(self, loaded: LoadedModel) -> nn.Module:
        from ..core.hard_concrete import GatedDiff
        from ..core.projection import ProjectedTensor, attach

        o = self.options
        self._begin()
        self.gates: dict[str, GatedDiff] = {}
        for name, parameter in self.eligible.items():
            parameter.requires_grad_(False)  # θ0 stays as loaded
            gated = GatedDiff(parameter.detach(), o.init_log_alpha, o.gate_scale)
            attach(loaded.model, name, ProjectedTensor(gated.training_value, self._eval_value(name), holds=gated))
            self.gates[name] = gated
        for parameter in self.head.values():
            parameter.requires_grad_(True)
        self._last: dict[str, float] = {}
        return loaded.model

    def _eval_value(self, name: str):
        import torch

        def value(original: torch.Tensor) -> torch.Tensor:
            keep = self.current_projection().bool_tensor(name, original.device)
            return torch.where(keep, original + self.gates[name].expected_diff(), original)

        return value

    def _scores(self) -> dict[str, torch.Tensor]:
        import torch

        with torch.no_grad():
            return {name: gated.expected_diff().abs() for name, gated in self.gates.items()}  # each shaped like θ

    def trainable(self) -> dict[str, nn.Parameter]:
        tensors: dict[str, nn.Parameter] = {}
        for name, gated in self.gates.items():
            tensors[name + DIFF], tensors[name + GATE] = gated.diff, gated.gate
        return {**tensors, **self.head}

    def no_decay(self, name: str) -> bool:
        if name.endswith(GATE):
            return True
        return super().no_decay(name.removesuffix(DIFF))

    # -- per step -------------------------------------------------------------
    def regulariser(self) -> torch.Tensor:
        """l0_weight × E[‖z‖₀] / m: the expected fraction of open gates."""
        from ..core.hard_concrete import probability_nonzero

        expected = sum(probability_nonzero(gated.log_alpha()).sum() for gated in self.gates.values())
        density = expected / self.eligible_count
        penalty = self.options.l0_weight * density
        self._last = {"expected_density": float(density.detach()), "l0_penalty": float(penalty.detach())}
        return penalty

    def after_step(self, step: int) -> dict[str, Any] | None:
        import torch

        self._eval_mask = None  # δ and the gates moved
        info = dict(self._last)  # the logged loss includes l0_penalty; the task loss is loss − l0_penalty
        if step % self.options.project_every:
            return info
        mask = self.current_projection()
        with torch.no_grad():
            for name, gated in self.gates.items():
                gated.diff.mul_(mask.bool_tensor(name, gated.diff.device))  # δ = 0 outside the kept set: θ0 there
        return {**info, **self._keep(mask)}

    def _projected_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(gated.diff.shape) for name, gated in self.gates.items()}

    # -- results --------------------------------------------------------------
    def export(self) -> nn.Module:
        from ..core.projection import materialise

        kept = self.current_projection()
        before = {
            name: parameter.detach().clone() for name, parameter in self.eligible.items()
        }  # θ0: export overwrites it
        model = materialise(self.loaded.model, list(self.gates))
        exported = dict(model.named_parameters())
        self._final = changed_support({name: exported[name] for name in before}, before, kept.metadata)
        return model

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "l0_weight": self.options.l0_weight}
