"""One tiny pipeline, built once per session through the CLI, that the bad-input tests
break copies of: a SAM mask and its scores, a trained run (with test metrics recorded),
its delta, a LoRA run and its delta, a results file and a grid config. Never modify
these: copy first (`copy_run`, `rewrite_safetensors`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from .support import invoke

TRAIN = ("--max-steps", "4", "--eval-every", "2", "--batch-size", "8", "--max-length", "24")


@dataclass(frozen=True)
class Pipeline:
    root: Path
    model: Path
    data: Path
    mask: Path
    scores: Path
    run: Path
    delta: Path
    lora: Path
    lora_delta: Path
    results: Path

    def grid_config(
        self, folder: Path, name: str = "grid.toml", method: str = 'train = "full"', extra: str = ""
    ) -> Path:
        """A one-run grid on the tiny model (runs under `folder/runs`)."""
        path = folder / name
        path.write_text(
            f'model = "{self.model}"\ntasks = ["cb"]\nseeds = [1]\nruns_dir = "{folder / "runs"}"\n'
            f'data_dir = "{self.data}"\n{extra}[train]\nmax_steps = 1\nbatch_size = 8\nmax_length = 24\n'
            f'[[methods]]\nname = "Full"\n{method}\n'
        )
        return path


def _must(*args) -> None:
    result = invoke(*args)
    assert result.exit_code == 0, f"setting up {args[0]}: {result.output}"


def _results_line(run_id: str, method: str, task: str, seed: int, score: float) -> dict:
    return {
        "run_id": run_id,
        "method": method,
        "task": task,
        "seed": seed,
        "p": None,
        "test": {"accuracy": score, "score": score},
        "dev": {"score": score},
        "trainable_parameters": {},
        "seconds": 1.0,
        "peak_rss_mb": 1.0,
        "config_hash": "x",
        "run_dir": "",
        "git_commit": None,
        "versions": {},
    }


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, tiny_model_dir, tiny_data_dir) -> Pipeline:
    root = tmp_path_factory.mktemp("bad-input-pipeline")
    data = ("--data-dir", str(tiny_data_dir))
    mask, scores = root / "mask.safetensors", root / "scores.safetensors"
    _must(
        "score",
        tiny_model_dir,
        "--task",
        "cb",
        "-p",
        "0.05",
        "--examples",
        "16",
        "--batch-size",
        "8",
        "--max-length",
        "24",
        "-o",
        mask,
        "--save-scores",
        scores,
        *data,
    )
    _must("train", "--mask", mask, "-o", root / "run", *TRAIN, *data)
    _must("eval", root / "run", *data)
    _must("diff", root / "run", "-o", root / "delta.safetensors")
    _must(
        "train",
        tiny_model_dir,
        "--method",
        "lora",
        "--task",
        "cb",
        "-o",
        root / "lora",
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--max-length",
        "24",
        *data,
    )
    _must("diff", root / "lora", "-o", root / "lora.safetensors")
    results = root / "results.jsonl"
    lines = [
        _results_line(f"{method}/cb/dense/seed{seed}", method, "cb", seed, score)
        for method, scores_ in (("A", (0.5, 0.6)), ("B", (0.4, 0.7)), ("C", (0.3, 0.35)))
        for seed, score in zip((1, 2), scores_)
    ]
    results.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return Pipeline(
        root,
        tiny_model_dir,
        tiny_data_dir,
        mask,
        scores,
        root / "run",
        root / "delta.safetensors",
        root / "lora",
        root / "lora.safetensors",
        results,
    )
