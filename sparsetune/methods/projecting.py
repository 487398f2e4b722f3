"""What the projection methods (diffpruning, childpruning) share: the kept set as state.

Fu et al. 2023 (arXiv 2211.15583), §3: both alternate optimisation with a projection
onto the p-sparse set around θ0. The support of the last projection decides which
entries count as "entered" at the next one, so it is part of the resumable state.

    sparsetune train --method childpruning -p 0.005 --project-every 100 --task cb -o out/
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..core import projection
from ..formats.mask import Mask
from ..models import display_name
from .base import TrainingMethod

MASK_STATE = "projection/kept"  # checkpoint key of the current kept set (flat indices)


class ProjectingMethod(TrainingMethod):
    """A method whose `kept` mask (last projection) and cached eval projection are state."""

    kept: Mask | None = None
    _eval_mask: Mask | None = None

    def _projected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every projected tensor, by name."""
        raise NotImplementedError

    def _metadata(self) -> dict[str, Any]:
        return {"model": display_name(self.loaded.source), "method": self.name, "project_every": self.options.project_every}

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        if self.kept is not None:
            state[MASK_STATE] = projection.mask_to_flat(self.kept)
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        super().load_state_dict(state)
        kept = state.get(MASK_STATE)
        self.kept = None if kept is None else projection.mask_from_flat(kept, self._projected_shapes(), self._metadata())
        self._eval_mask = None
