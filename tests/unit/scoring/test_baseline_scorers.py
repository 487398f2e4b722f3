"""random, magnitude and bitfit masks on the tiny BERT: what each selects, and the CLI's
note when bitfit is given a -p it ignores."""

from __future__ import annotations

import json
import math

import torch
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.config import ScoreConfig
from sparsetune.models import load_model
from sparsetune.stages.score import score
from sparsetune.tasks import get_task

runner = CliRunner()


def _score(tiny_model_dir, **changes):
    base = dict(task="cb", model=str(tiny_model_dir), p=0.05, seed=1, output=None)
    return score(ScoreConfig(**{**base, **changes}))


def test_random_depends_on_the_seed_only_and_spreads_uniformly(tiny_model_dir):
    first, same, other = (_score(tiny_model_dir, method="random", seed=s).mask for s in (1, 1, 2))
    assert all(torch.equal(first.indices[n], same.indices[n]) for n in first.indices)
    overlap = sum(
        int(torch.isin(first.indices[n], other.indices[n]).sum()) for n in first.indices if n in other.indices
    )
    assert overlap < 0.2 * first.selected  # independent draws at p = 0.05 share ~5%
    # Global scope, yet every big tensor gets close to its share n·p (binomial, 5 sigma).
    for name, (selected, entries) in first.per_tensor().items():
        if entries >= 1000:
            assert abs(selected - entries * 0.05) <= 5 * math.sqrt(entries * 0.05), name


def test_magnitude_keeps_the_largest_absolute_pretrained_values(tiny_model_dir):
    mask = _score(tiny_model_dir, method="magnitude").mask
    theta0 = load_model(tiny_model_dir, get_task("cb"), seed=0).eligible()
    inside = torch.cat([theta0[n].detach().abs().reshape(-1)[mask.bool_tensor(n).reshape(-1)] for n in theta0])
    outside = torch.cat([theta0[n].detach().abs().reshape(-1)[~mask.bool_tensor(n).reshape(-1)] for n in theta0])
    assert inside.numel() == math.floor(mask.eligible * 0.05)
    assert float(inside.min()) >= float(outside.max())
    other_seed = _score(tiny_model_dir, method="magnitude", seed=9).mask  # the model decides, not the seed
    assert all(torch.equal(other_seed.indices[n], mask.indices[n]) for n in mask.indices)


def test_bitfit_takes_every_bias_including_layernorm_beta_not_gamma(tiny_model_dir):
    result = _score(tiny_model_dir, method="bitfit", p=None)
    selected = set(result.mask.indices)
    assert "bert.encoder.layer.0.attention.output.LayerNorm.bias" in selected
    assert "bert.embeddings.LayerNorm.bias" in selected
    assert "bert.pooler.dense.bias" not in selected and "bert.pooler.dense.bias" in result.head  # head: trains anyway
    assert not any(name.endswith(".weight") for name in selected)
    literal = _score(
        tiny_model_dir, method="bitfit", p=None, pooler="eligible"
    )  # the pooler's bias is a bias like any other
    assert set(literal.mask.indices) == selected | {"bert.pooler.dense.bias"}
    assert result.notes == []  # no -p given: nothing to warn about
    explicit = _score(tiny_model_dir, method="bitfit", p=0.3)
    assert explicit.mask.selected == result.mask.selected
    assert any("-p 0.3 is ignored" in note for note in explicit.notes)


def test_cli_bitfit_notes_an_explicit_p_and_reports_the_density(tiny_model_dir, tmp_path):
    args = ["score", str(tiny_model_dir), "--task", "cb", "--method", "bitfit", "-o", str(tmp_path / "m.safetensors")]
    plain = runner.invoke(app, args)
    assert plain.exit_code == 0, plain.output
    assert "ignored" not in plain.output and "method bitfit" in plain.stdout
    noted = runner.invoke(app, [*args, "-p", "0.01", "--force"])
    assert noted.exit_code == 0, noted.output
    assert "-p 0.01 is ignored" in noted.stdout
    bad = runner.invoke(
        app, ["score", str(tiny_model_dir), "--task", "cb", "--method", "random", "-p", "2", "-o", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "-p must be in (0, 1]" in bad.stderr


def test_mask_of_bitfit_scores_says_that_p_is_ignored(tiny_model_dir, tmp_path):
    """`score --method bitfit -p` notes that p is ignored; re-thresholding its scores at
    another p said nothing and wrote the same mask."""
    scores = tmp_path / "s.safetensors"
    args = ["score", str(tiny_model_dir), "--task", "cb", "--method", "bitfit", "-o", str(tmp_path / "m.safetensors")]
    assert runner.invoke(app, [*args, "--save-scores", str(scores)]).exit_code == 0
    result = runner.invoke(app, ["mask", str(scores), "-p", "0.3", "-o", str(tmp_path / "again.safetensors")])
    assert result.exit_code == 0, result.output
    assert "--method bitfit selects its own entries: -p 0.3 is ignored" in result.stdout
    as_json = runner.invoke(app, ["mask", str(scores), "-p", "0.3", "-o", str(tmp_path / "j.safetensors"), "--json"])
    assert json.loads(as_json.stdout)["notes"] == ["--method bitfit selects its own entries: -p 0.3 is ignored"]
