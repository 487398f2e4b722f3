"""Fixtures shared by every test layer.

Unit and contract tests run on a tiny randomly initialised BERT written to a temporary
folder in the HF format, with a character-level WordPiece vocabulary, and on small
synthetic task files: no network, seconds per test. Integration tests use the real
embedded MiniLM and the real data in ../shared/data.
"""

from __future__ import annotations

import json
import os
import random
import signal
import string
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# Read before any fixture clears the variable: CI points it at ../shared/data.
SHARED_DATA = Path(os.environ.get("SPARSETUNE_DATA_DIR") or REPO.parent / "shared" / "data")

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "a", "was", "is", "he", "she", "it", "cause", "what", "happened", "result", "of", "this"]
CHARACTERS = list(string.ascii_lowercase + string.digits + ".,?!'*#-")


def pytest_configure(config):
    """Deliver Ctrl-C to the suite however it was started: a shell starts a background job
    (`pytest &`, nohup) with SIGINT ignored, every child inherits that, and the tests that
    send a Ctrl-C would then see nothing arrive. A handler (unlike SIG_IGN) is not passed
    on through exec, so the subprocesses the tests start get the default again."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _vocabulary() -> list[str]:
    return SPECIAL + WORDS + CHARACTERS + ["##" + c for c in CHARACTERS]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT saved like a hub checkpoint (no task head)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = _vocabulary()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


def _sentence(rng: random.Random, words: int = 5) -> str:
    pool = WORDS + ["dog", "cat", "sun", "rain", "bird", "tree"]
    return " ".join(rng.choice(pool) for _ in range(words)) + "."


def synthetic_row(task: str, rng: random.Random, idx: int) -> dict:
    """One row in the hub schema of `task`, with a random but valid label."""
    if task == "cola":
        return {"sentence": _sentence(rng), "label": rng.randint(0, 1), "idx": idx}
    if task == "stsb":
        return {
            "sentence1": _sentence(rng),
            "sentence2": _sentence(rng),
            "label": round(rng.uniform(0, 5), 1),
            "idx": idx,
        }
    if task in ("mrpc", "rte"):
        return {"sentence1": _sentence(rng), "sentence2": _sentence(rng), "label": rng.randint(0, 1), "idx": idx}
    if task == "cb":
        return {"premise": _sentence(rng), "hypothesis": _sentence(rng), "label": rng.randint(0, 2), "idx": idx}
    if task == "copa":
        return {
            "premise": _sentence(rng),
            "choice1": _sentence(rng),
            "choice2": _sentence(rng),
            "question": rng.choice(["cause", "effect"]),
            "label": rng.randint(0, 1),
            "idx": idx,
        }
    if task == "wsc":
        words = _sentence(rng, 8).split(" ")
        return {
            "text": " ".join(words),
            "span1_index": 0,
            "span2_index": 5,
            "span1_text": words[0],
            "span2_text": words[5],
            "label": rng.randint(0, 1),
            "idx": idx,
        }
    raise KeyError(task)


PAPER_TASK_NAMES = ("cola", "stsb", "mrpc", "rte", "cb", "copa", "wsc")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """Synthetic <task>/{train,validation}.jsonl for the seven tasks (40 + 16 rows)."""
    root = tmp_path_factory.mktemp("tiny-data")
    for task in PAPER_TASK_NAMES:
        rng = random.Random(task)
        write_jsonl(root / task / "train.jsonl", [synthetic_row(task, rng, i) for i in range(40)])
        write_jsonl(root / task / "validation.jsonl", [synthetic_row(task, rng, i) for i in range(16)])
    return root


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real task data; its absence fails in CI and skips only on a bare checkout."""
    path = SHARED_DATA
    if not (path / "rte" / "train.jsonl").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"real task data not found at {path}; CI must run with ../shared beside the clone")
        pytest.skip(f"real task data not found at {path}")
    return path


@pytest.fixture(autouse=True)
def _isolate_data_env(monkeypatch):
    """Tests choose their data dir explicitly; the environment must not leak in."""
    monkeypatch.delenv("SPARSETUNE_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
