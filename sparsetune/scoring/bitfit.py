"""BitFit masks (Zaken et al. 2021): every bias entry of the pretrained model, whatever p is.

    sparsetune score --task cb --method bitfit

BitFit fine-tunes the bias terms only. The paper lists it as a
p-sparse method whose p is fixed by the architecture (0.11% of MiniLM's eligible
entries), so `-p` is reported, not chosen: the mask's `p` is the density it has, and a
`-p` given on the command line is ignored with a note.

Which tensors are biases: every eligible tensor whose name ends in `.bias`. That
includes the LayerNorm biases (β), as in BitFit, which tunes "all the bias terms" of
BERT, LayerNorm's among them (Zaken et al. 2021, §2); it excludes the LayerNorm gains
(γ, `LayerNorm.weight`), which are scales, not biases. The task head trains densely as
with every method; by default that includes the BERT pooler (`--pooler head`), so its
bias is not in the mask; with `--pooler eligible` it is. No data, no gradient pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from ..errors import MismatchError
from .base import Scorer, ScoringContext
from .registry import register_scorer

if TYPE_CHECKING:
    import torch

    from ..formats.mask import Mask


def is_bias(name: str) -> bool:
    """A bias tensor by BitFit's definition (LayerNorm β included, γ not)."""
    return name.endswith(".bias")


@register_scorer("bitfit")
class BitFitScorer(Scorer):
    default_lr = 1e-3  # chosen on dev over cb, copa (experiments/lr_sweep.toml: 1e-3 over 1e-4)
    description = "all bias terms, LayerNorm's included (BitFit, Zaken et al. 2021); p is reported, not chosen"
    needs_data = False
    fixed_selection = True

    def compute(self, context: ScoringContext) -> dict[str, torch.Tensor]:
        import torch

        # 1 on biases, 0 elsewhere: saved scores say what was selected and why.
        return {
            name: torch.full(parameter.shape, 1.0 if is_bias(name) else 0.0, dtype=torch.float32)
            for name, parameter in context.loaded.eligible().items()
        }

    def select(
        self,
        scores: Mapping[str, torch.Tensor],
        p: float,
        scope: str,
        metadata: Mapping[str, object] | None = None,
    ) -> Mask:
        """Every entry of every bias tensor; `p` in the metadata is the density that results."""
        import torch

        from ..formats.mask import Mask

        selected = {name: torch.full(value.shape, is_bias(name), dtype=torch.bool) for name, value in scores.items()}
        mask = Mask.from_bool(selected, metadata)
        if not mask.indices:
            raise MismatchError("--method bitfit: the model has no bias tensors (no eligible name ends in '.bias')")
        mask.metadata.update({"p": mask.density, "scope": "global"})
        return mask
