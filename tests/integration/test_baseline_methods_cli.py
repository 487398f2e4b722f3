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
from sparsetune.methods.structural import load_method_model
from sparsetune.models import load_model, load_tokenizer, resolve_model
from sparsetune.stages.evaluate import predict
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
    [
        ("adapter", ("--adapter-config", "pfeiffer", "--reduction-factor", "32")),
        ("mixout", ("--mixout-p", "0.5")),
        ("full", ()),
    ],
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


def test_peft_auto_class_loads_the_lora_dir_on_the_embedded_base(shared_data_dir, tmp_path):
    """`OUT/method/adapter_config.json` names the base by its hub id (not a site-packages
    path) and says SEQ_CLS, so peft's Auto class rebuilds the model wherever the base is
    reachable: here an offline hub cache holding the embedded files under that id."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from sparsetune.models import DEFAULT_MODEL_HUB_ID

    out, _ = _train(tmp_path, ["--data-dir", str(shared_data_dir)], "lora")
    config = json.loads((out / "method" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == DEFAULT_MODEL_HUB_ID and config["task_type"] == "SEQ_CLS"

    cache = tmp_path / "hub"
    repo = cache / f"models--{DEFAULT_MODEL_HUB_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for item in Path(resolve_model(None)).iterdir():
        if item.is_file():
            (snapshot / item.name).symlink_to(item)
    check = (
        "import sys, torch\n"
        "from peft import AutoPeftModelForSequenceClassification\n"
        "from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer\n"
        "labels = AutoConfig.from_pretrained(sys.argv[1]).num_labels  # the head's size, as with any peft "
        "SEQ_CLS adapter\n"
        "peft_model = AutoPeftModelForSequenceClassification.from_pretrained(sys.argv[1] + '/method', "
        "num_labels=labels).eval()\n"
        "merged = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()\n"
        "batch = AutoTokenizer.from_pretrained(sys.argv[1])(['the cat sat', 'it rained all day'], "
        "return_tensors='pt', padding=True)\n"
        "with torch.no_grad():\n"
        "    torch.testing.assert_close(peft_model(**batch).logits, merged(**batch).logits, rtol=1e-4, atol=1e-5)\n"
        "print('same logits')\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", check, str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and "same logits" in done.stdout, done.stderr[-2000:]
