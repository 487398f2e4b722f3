"""Helpers shared by the training, sparse and evaluation tests: masks and short runs on
the tiny BERT (fixtures `tiny_model_dir`, `tiny_data_dir` from conftest)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from sparsetune.config import TrainConfig
from sparsetune.formats.mask import Mask
from sparsetune.models import head_metadata, load_model
from sparsetune.stages.train import train
from sparsetune.tasks import get_task


def random_mask(model_dir: Path, task: str, p: float = 0.05, seed: int = 0, pooler: str = "head") -> Mask:
    """A mask over the tiny BERT's eligible tensors (per `pooler`), scored by seeded noise."""
    loaded = load_model(model_dir, get_task(task), seed=0, pooler=pooler)
    generator = torch.Generator().manual_seed(seed)
    scores = {name: torch.rand(value.shape, generator=generator) for name, value in loaded.eligible().items()}
    metadata = {"model": str(model_dir), "task": task, "method": "random", "seed": 42, "dev_fraction": 0.1}
    metadata.update(head_metadata(loaded))
    return Mask.from_scores(scores, p, metadata=metadata)


def write_mask(tmp_path: Path, model_dir: Path, task: str = "cb", p: float = 0.05) -> Path:
    path = tmp_path / "mask.safetensors"
    random_mask(model_dir, task, p).save(path)
    return path


def short_config(out: Path, data_dir: Path, **overrides) -> TrainConfig:
    settings = dict(
        output=str(out), data_dir=str(data_dir), max_steps=8, eval_every=3, lr=5e-3, batch_size=8, max_length=32
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def run(out: Path, data_dir: Path, progress=None, **overrides):
    config = short_config(out, data_dir, **overrides)
    return train(config) if progress is None else train(config, progress=progress)


def saved_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The exported model's tensors, as plain transformers wrote them."""
    return load_file(str(Path(run_dir) / "model.safetensors"))


POOLER = ("bert.pooler.dense.weight", "bert.pooler.dense.bias")  # the tiny BERT's pooler: task head by default


def base_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """θ0 under the task model's parameter names (BertModel keys gain a `bert.` prefix)."""
    return {f"bert.{key}": value for key, value in load_file(str(Path(model_dir) / "model.safetensors")).items()}


def eligible_base_weights(model_dir: Path, pooler: str = "head") -> dict[str, torch.Tensor]:
    """θ0 of the eligible tensors: the checkpoint less the pooler, which is task head by default."""
    weights = base_weights(model_dir)
    return weights if pooler == "eligible" else {name: value for name, value in weights.items() if name not in POOLER}


def assert_same_weights(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name
