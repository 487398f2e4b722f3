"""Every registered scoring method, automatically: the density it promises, the same file
for the same seed, masks and scores that survive a save/load, and no data pass for the
methods that need none (their model's forward raises)."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetune.config import MaskConfig, ScoreConfig
from sparsetune.formats.mask import Mask
from sparsetune.scoring import SCORERS
from sparsetune.stages import score as scoring_run
from sparsetune.stages.score import rethreshold, score

SCORER_NAMES = sorted(SCORERS)


def _config(name, tiny_model_dir, tiny_data_dir, tmp_path, **changes) -> ScoreConfig:
    base = dict(
        task="cb",
        model=str(tiny_model_dir),
        data_dir=str(tiny_data_dir),
        method=name,
        p=0.03,
        batch_size=8,
        max_length=32,
        seed=5,
        output=str(tmp_path / "mask.safetensors"),
    )
    return ScoreConfig(**{**base, **changes})


def test_the_registry_has_the_paper_scorers():
    assert {"sam", "fisher", "random", "magnitude", "bitfit"} <= set(SCORERS)


@pytest.mark.parametrize("name", SCORER_NAMES)
@pytest.mark.parametrize("scope", ["global", "per-tensor"])
def test_density_is_exactly_as_promised(name, scope, tiny_model_dir, tiny_data_dir, tmp_path):
    result = score(_config(name, tiny_model_dir, tiny_data_dir, tmp_path, scope=scope, output=None))
    mask, shapes = result.mask, result.mask.shapes
    assert mask.metadata["method"] == name
    if SCORERS[name].fixed_selection:  # bitfit: every bias entry, nothing else; p is what results
        assert set(mask.indices) == {n for n in shapes if n.endswith(".bias")}
        for tensor, index in mask.indices.items():
            assert index.numel() == math.prod(shapes[tensor]), tensor
        assert mask.metadata["p"] == pytest.approx(mask.selected / mask.eligible)
    elif scope == "global":
        assert mask.selected == math.floor(mask.eligible * 0.03)
    else:
        for tensor, (selected, entries) in mask.per_tensor().items():
            assert selected == math.floor(entries * 0.03), tensor


@pytest.mark.parametrize("name", SCORER_NAMES)
def test_same_seed_same_file_and_save_load_round_trip(name, tiny_model_dir, tiny_data_dir, tmp_path):
    first = score(
        _config(
            name,
            tiny_model_dir,
            tiny_data_dir,
            tmp_path,
            output=str(tmp_path / "a.safetensors"),
            save_scores=str(tmp_path / "scores.safetensors"),
        )
    )
    score(_config(name, tiny_model_dir, tiny_data_dir, tmp_path, output=str(tmp_path / "b.safetensors")))
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    loaded = Mask.load(tmp_path / "a.safetensors")
    assert list(loaded.indices) == list(first.mask.indices)
    assert all(torch.equal(loaded.indices[n], first.mask.indices[n]) for n in loaded.indices)
    assert loaded.metadata["method"] == name and loaded.selected == first.mask.selected
    again = rethreshold(MaskConfig(scores=str(tmp_path / "scores.safetensors"), p=0.03, output=None))
    assert all(torch.equal(again.indices[n], loaded.indices[n]) for n in loaded.indices) and set(again.indices) == set(
        loaded.indices
    )


class _NoForward(torch.nn.Module):
    """Stands in for the model's forward: any call is a gradient pass the scorer promised not to run."""

    def forward(self, *args, **kwargs):
        raise AssertionError("this scorer ran the model")


@pytest.mark.parametrize("name", [n for n in SCORER_NAMES if not SCORERS[n].needs_data])
def test_scorers_without_data_run_no_forward_or_backward(name, tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch):
    real_load = scoring_run.load_model

    def load_without_forward(*args, **kwargs):
        loaded = real_load(*args, **kwargs)
        loaded.model.forward = _NoForward().forward  # the parameters stay; calling the model raises
        return loaded

    monkeypatch.setattr(scoring_run, "load_model", load_without_forward)
    monkeypatch.setattr(scoring_run, "load_task_data", lambda *a, **k: pytest.fail("loaded training data"))
    result = score(_config(name, tiny_model_dir, tiny_data_dir, tmp_path, output=None))
    assert result.examples == 0 and result.mask.selected > 0
