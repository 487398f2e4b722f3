"""The paper's baselines through the CLI on the real MiniLM and cb (tiny runs: 3 steps,
64 tokens): train -> run.json's parameter budget -> eval; for the structural methods
diff -> apply -> eval with identical metrics; for LoRA, predictions of the same peft
model built directly, and apply --merge."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.data import load_split
from sparsetune.evaluation import predict
from sparsetune.method_dir import load_method_model
from sparsetune.models import load_model, load_tokenizer, resolve_model
from sparsetune.tasks import get_task

pytestmark = pytest.mark.integration

SHORT = ["--max-steps", "3", "--batch-size", "8", "--max-length", "64", "-q"]


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def _train(tmp_path, data, method: str, *flags: str):
    out = tmp_path / method
    invoke("train", "--method", method, "--task", "cb", "-o", str(out), *SHORT, *flags, *data)
    return out, json.loads((out / "run.json").read_text())


def _eval(target, data, *flags: str) -> dict:
    return json.loads(invoke("eval", str(target), "--json", *flags, *data).stdout)["metrics"]


@pytest.mark.parametrize(
    "method, flags",
    [("adapter", ("--adapter-config", "pfeiffer", "--reduction-factor", "32")), ("mixout", ("--mixout-p", "0.5")), ("full", ())],
)
def test_baseline_trains_and_evaluates_on_minilm(method, flags, tmp_path, shared_data_dir):
    data = ["--data-dir", str(shared_data_dir)]
    out, record = _train(tmp_path, data, method, *flags)
    counts = record["trainable_parameters"]
    # MiniLM-L6-H384 less its pooler; the head is cb's 3-label classifier + the pooler (head by default)
    assert counts["eligible"] == 22_565_376 and counts["head"] == 384 * 3 + 3 + 384 * 384 + 384
    if method == "adapter":  # 6 layers x one FFN adapter of width 384/32 = 12
        assert counts["added"] == 6 * (2 * 384 * 12 + 12 + 384) and counts["pretrained_trainable"] == 0
        assert record["hyperparameters"]["method_options"] == {"adapter_config": "pfeiffer", "reduction_factor": "32.0"}
    else:
        assert counts["fraction"] == 1.0
    metrics = _eval(out, data)
    assert 0.0 <= metrics["accuracy"] <= 1.0
    if method == "adapter":  # its own tensors travel as a delta; apply rebuilds the same scores
        invoke("diff", str(out), "-o", str(tmp_path / "delta.safetensors"), "-q")
        invoke("apply", str(tmp_path / "delta.safetensors"), "-o", str(tmp_path / "applied"), "-q")
        assert _eval(tmp_path / "applied", data, "--task", "cb", "--max-length", "64") == metrics


def test_lora_matches_peft_directly_and_merges(tmp_path, shared_data_dir):
    from peft import PeftModel

    data = ["--data-dir", str(shared_data_dir)]
    out, record = _train(tmp_path, data, "lora", "--lora-r", "8", "--lora-alpha", "16", "--lr", "1e-3")
    counts = record["trainable_parameters"]
    # r = 8 on Q, K, V, attention out (384->384), FFN in (384->1536) and out (1536->384), 6 layers.
    assert counts["added"] == 6 * 8 * (4 * (384 + 384) + 2 * (384 + 1536)) and counts["pretrained_trainable"] == 0
    task = get_task("cb")
    validation = load_split(task, "validation", str(shared_data_dir))
    tokenizer = load_tokenizer(None)
    ours, labels = predict(load_method_model(out, task), task, validation, tokenizer, 32, 64)
    direct = PeftModel.from_pretrained(load_model(resolve_model(None), task, seed=7).model, str(out / "method"))
    theirs, _ = predict(direct, task, validation, tokenizer, 32, 64)
    assert (ours == theirs).all()
    metrics = _eval(out, data)
    assert metrics["accuracy"] == pytest.approx(float((ours == labels).mean()))

    invoke("diff", str(out), "-o", str(tmp_path / "lora.safetensors"), "-q")
    invoke("apply", str(tmp_path / "lora.safetensors"), "-o", str(tmp_path / "applied"), "-q")
    assert _eval(tmp_path / "applied", data, "--task", "cb", "--max-length", "64") == metrics
    invoke("apply", str(tmp_path / "lora.safetensors"), "--merge", "-o", str(tmp_path / "merged"), "-q")
    assert not (tmp_path / "merged" / "method").exists()
    merged, _ = predict(load_model(tmp_path / "merged", task).model, task, validation, tokenizer, 32, 64)
    assert (merged == ours).all()
