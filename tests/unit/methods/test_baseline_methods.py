"""The paper's structural and regularised baselines on the tiny BERT: lora (through peft),
adapter (houlsby/pfeiffer) and mixout; their parameter counts, starting point, rebuild
from `method/`, diff/apply (and LoRA's --merge), and their option errors."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.config import ApplyConfig, DiffConfig
from sparsetune.core.mixout import MixoutToTarget
from sparsetune.data import load_split, make_loader
from sparsetune.errors import MismatchError, UsageError
from sparsetune.formats.common import load_tensors
from sparsetune.formats.delta import Delta
from sparsetune.formats.method_dir import has_method_dir
from sparsetune.methods import get_method
from sparsetune.methods.structural import load_method_model
from sparsetune.models import load_model, load_tokenizer
from sparsetune.stages.apply import apply, apply_delta
from sparsetune.stages.diff import diff
from sparsetune.tasks import get_task
from tests.unit.training_support import run

CB = get_task("cb")


def _logits(model, tiny_model_dir, tiny_data_dir):
    """Validation logits, all in one batch: [16, 3]."""
    dataset = load_split(CB, "validation", str(tiny_data_dir))
    batch = next(iter(make_loader(dataset, CB, load_tokenizer(tiny_model_dir), 16, 32)))
    batch.pop("labels")
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def _bound(name, tiny_model_dir, **options):
    method = get_method(name)(None, options)
    method.bind(load_model(tiny_model_dir, CB, seed=0))
    return method


# -- lora -----------------------------------------------------------------------
def test_lora_run_predicts_like_the_same_peft_model_built_directly(tmp_path, tiny_model_dir, tiny_data_dir):
    from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict

    record = run(
        tmp_path / "lora", tiny_data_dir, method="lora", task="cb", model=str(tiny_model_dir), max_steps=4, lr=5e-2
    )
    ours = load_method_model(tmp_path / "lora", CB)
    # The same model written with peft's own API: same base and seed, the run's tensors.
    base = load_model(tiny_model_dir, CB, seed=42).model
    config = LoraConfig(
        r=16,
        lora_alpha=16,
        lora_dropout=0.0,
        modules_to_save=["bert.pooler.dense", "classifier"],
        target_modules=["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    )
    direct = get_peft_model(base, config)
    set_peft_model_state_dict(direct, load_tensors(tmp_path / "lora" / "method" / "adapter_model.safetensors"))
    assert torch.equal(_logits(ours, tiny_model_dir, tiny_data_dir), _logits(direct, tiny_model_dir, tiny_data_dir))
    # ... and peft can load OUT/method/ itself.
    loaded = PeftModel.from_pretrained(load_model(tiny_model_dir, CB, seed=1).model, str(tmp_path / "lora" / "method"))
    assert torch.equal(_logits(ours, tiny_model_dir, tiny_data_dir), _logits(loaded, tiny_model_dir, tiny_data_dir))
    # Parameter budget: peft's count of LoRA entries; no pretrained entry trains.
    lora_entries = sum(p.numel() for n, p in direct.named_parameters() if "lora_" in n)
    counts = record.trainable_parameters
    head = 3 * 32 + 3 + 32 * 32 + 32  # classifier + pooler (the pooler is head by default)
    assert counts["added"] == lora_entries and counts["pretrained_trainable"] == 0 and counts["head"] == head
    assert counts["fraction"] == pytest.approx(lora_entries / counts["eligible"])


def test_method_options_from_python_are_a_mapping_of_typed_values(tmp_path, tiny_model_dir, tiny_data_dir):
    """A Python caller writes {"lora_r": 4}; the CLI's ("lora_r", "4") pairs mean the same."""
    common = dict(method="lora", task="cb", model=str(tiny_model_dir), max_steps=1)
    typed = run(tmp_path / "typed", tiny_data_dir, **common, method_options={"lora_r": 4, "lora_targets": "query"})
    pairs = run(
        tmp_path / "pairs", tiny_data_dir, **common, method_options=(("lora_r", "4"), ("lora_targets", "query"))
    )
    assert typed.trainable_parameters == pairs.trainable_parameters
    assert typed.hyperparameters["method_options"] == pairs.hyperparameters["method_options"]


def test_lora_merge_gives_a_plain_model_with_the_same_predictions(tmp_path, tiny_model_dir, tiny_data_dir):
    run(
        tmp_path / "lora",
        tiny_data_dir,
        method="lora",
        task="cb",
        model=str(tiny_model_dir),
        max_steps=3,
        lr=5e-2,
        method_options=(("lora_r", "4"), ("lora_targets", "query,value")),
    )
    diff(DiffConfig(run=str(tmp_path / "lora"), output=str(tmp_path / "lora.delta")))
    delta = Delta.load(tmp_path / "lora.delta")
    assert delta.metadata["method"] == "lora" and json.loads(delta.metadata["method_options"])["lora_r"] == 4
    assert not delta.indices and all("lora_" in n or "classifier" in n or "pooler" in n for n in delta.head)
    assert any("pooler" in n for n in delta.head) and delta.metadata["pooler"] == "head"
    with pytest.raises(UsageError, match="lora delta: it adds modules.*sparsetune apply"):  # not "another architecture"
        apply_delta(load_model(tiny_model_dir, CB), tmp_path / "lora.delta")
    apply(ApplyConfig(deltas=(str(tmp_path / "lora.delta"),), output=str(tmp_path / "merged"), merge=True))
    assert not has_method_dir(tmp_path / "merged")
    plain = load_model(tmp_path / "merged", CB)
    assert not plain.new_parameters
    merged, unmerged = (
        _logits(plain.model, tiny_model_dir, tiny_data_dir),
        _logits(load_method_model(tmp_path / "lora", CB), tiny_model_dir, tiny_data_dir),
    )
    assert torch.equal(merged.argmax(-1), unmerged.argmax(-1)) and torch.allclose(merged, unmerged, atol=1e-5)


# -- adapter ----------------------------------------------------------------------
@pytest.mark.parametrize("config, per_layer", [("houlsby", 2), ("pfeiffer", 1)])
def test_adapters_start_at_theta0_and_count_their_parameters(config, per_layer, tiny_model_dir, tiny_data_dir):
    method = _bound("adapter", tiny_model_dir, adapter_config=config, adapter_size=4)
    base = load_model(tiny_model_dir, CB, seed=0).model
    assert torch.equal(
        _logits(method.model(), tiny_model_dir, tiny_data_dir), _logits(base, tiny_model_dir, tiny_data_dir)
    )
    counts = method.summary()
    assert counts["added"] == 2 * per_layer * (2 * 32 * 4 + 4 + 32)  # 2 layers, W_down/W_up + biases
    layernorms = 2 * 2 * 2 * 32 if config == "houlsby" else 0  # houlsby trains both LayerNorms per layer
    assert counts["pretrained_trainable"] == layernorms


def test_adapter_size_comes_from_the_reduction_factor(tiny_model_dir):
    method = _bound("adapter", tiny_model_dir, reduction_factor=8)
    assert method.loaded.model.bert.encoder.layer[0].output.adapter.down.out_features == 32 // 8


@pytest.mark.parametrize(
    "options, message",
    [
        ({"adapter_size": 4, "reduction_factor": 8}, "not both"),
        ({"adapter_config": "parallel"}, "--adapter-config"),
        ({"reduction_factor": 64}, "--reduction-factor"),
    ],
)
def test_adapter_option_errors_name_the_flag(options, message, tiny_model_dir):
    with pytest.raises(UsageError, match=message):
        _bound("adapter", tiny_model_dir, **options)


def test_adapters_cannot_be_merged_and_structural_deltas_do_not_compose(tmp_path, tiny_model_dir, tiny_data_dir):
    run(tmp_path / "ad", tiny_data_dir, method="adapter", task="cb", model=str(tiny_model_dir), max_steps=2)
    diff(DiffConfig(run=str(tmp_path / "ad"), output=str(tmp_path / "ad.delta")))
    with pytest.raises(UsageError, match="cannot be merged"):
        apply(ApplyConfig(deltas=(str(tmp_path / "ad.delta"),), output=str(tmp_path / "m"), merge=True))
    with pytest.raises(UsageError, match="does not compose"):
        apply(ApplyConfig(deltas=(str(tmp_path / "ad.delta"),) * 2, output=str(tmp_path / "m")))
    with pytest.raises(UsageError, match="--top-p"):
        diff(DiffConfig(run=str(tmp_path / "ad"), output=str(tmp_path / "x.delta"), top_p=0.1))
    assert not (tmp_path / "m").exists() and not (tmp_path / "x.delta").exists()


def test_a_structural_delta_refuses_another_base(tmp_path, tiny_model_dir, tiny_data_dir):
    run(tmp_path / "ad", tiny_data_dir, method="adapter", task="cb", model=str(tiny_model_dir), max_steps=2)
    diff(DiffConfig(run=str(tmp_path / "ad"), output=str(tmp_path / "ad.delta")))
    other = tmp_path / "other-base"
    model = load_model(tiny_model_dir, CB, seed=0).model.bert
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.add_(1.0)
    model.save_pretrained(other)
    load_tokenizer(tiny_model_dir).save_pretrained(other)
    with pytest.raises(MismatchError, match="word_embeddings"):
        apply(ApplyConfig(deltas=(str(tmp_path / "ad.delta"),), output=str(tmp_path / "m"), base=str(other)))


# -- mixout -------------------------------------------------------------------------
def test_mixout_mixes_toward_the_target_with_the_papers_rescaling():
    torch.manual_seed(0)
    weight, target, p = torch.randn(6, 500), torch.randn(6, 500), 0.7
    for per_neuron in (True, False):
        mix = MixoutToTarget(target, p, per_neuron)
        mixed = mix(weight)
        swapped = torch.isclose(mixed, target)  # (1 − p)⁻¹(u − p·u) = u where M = 0
        kept = torch.isclose(mixed, (weight - p * target) / (1 - p))
        assert bool((swapped | kept).all()) and 0.6 < swapped.float().mean() < 0.8
        if per_neuron:  # one draw per input unit, shared by every output row
            assert bool((swapped == swapped[:1]).all())
        mix.eval()
        assert torch.equal(mix(weight), weight)
    # E[W̃] = W: the mean of many draws approaches W.
    mix = MixoutToTarget(target, p, False)
    mean = torch.stack([mix(weight) for _ in range(2000)]).mean(0)
    assert (mean - weight).abs().mean() < 0.06  # unscaled mixing would be off by p·|W − u| ≈ 1


def test_mixout_trains_every_parameter_turns_dropout_off_and_exports_plain_weights(tiny_model_dir):
    method = _bound("mixout", tiny_model_dir, mixout_p=0.5)
    assert set(method.trainable()) == set(dict(load_model(tiny_model_dir, CB, seed=0).model.named_parameters()))
    dropouts = [m for m in method.loaded.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(m.p == 0.0 for m in dropouts)
    exported = method.export()
    assert "bert.encoder.layer.0.attention.self.query.weight" in dict(exported.named_parameters())
    with pytest.raises(UsageError, match="^mixout_p must be"):  # a Python value: its key (on the CLI, its flag)
        _bound("mixout", tiny_model_dir, mixout_p=1.0)


def _mixed(method) -> set[str]:
    """Linear layers whose weight mixout parametrized."""
    from torch.nn.utils import parametrize

    return {
        name for name, module in method.loaded.model.named_modules() if parametrize.is_parametrized(module, "weight")
    }


def test_mixout_leaves_the_head_unmixed_unless_asked(tiny_model_dir):
    """Every method trains the same head the same plain dense way: mixout mixes the pretrained
    linear layers only; `mixout_head=true` also mixes the head, as the authors' code does."""
    default = _mixed(_bound("mixout", tiny_model_dir))
    assert "bert.encoder.layer.0.attention.self.query" in default
    assert "classifier" not in default and "bert.pooler.dense" not in default
    literal = get_method("mixout")(None, {})
    literal.bind(load_model(tiny_model_dir, CB, seed=0, pooler="eligible"))
    assert "bert.pooler.dense" in _mixed(literal) and "classifier" not in _mixed(
        literal
    )  # eligible: mixed like any encoder layer
    assert {"classifier", "bert.pooler.dense"} <= _mixed(_bound("mixout", tiny_model_dir, mixout_head=True))


# -- CLI aliases ----------------------------------------------------------------------
def test_named_flags_are_method_options(tmp_path, tiny_model_dir, tiny_data_dir):
    common = [
        str(tiny_model_dir),
        "--task",
        "cb",
        "--data-dir",
        str(tiny_data_dir),
        "--max-steps",
        "1",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "-q",
    ]
    result = CliRunner().invoke(
        app,
        [
            "train",
            *common,
            "--method",
            "adapter",
            "--adapter-config",
            "pfeiffer",
            "--adapter-size",
            "2",
            "-o",
            str(tmp_path / "ad"),
        ],
    )
    assert result.exit_code == 0, result.output
    options = json.loads((tmp_path / "ad" / "run.json").read_text())["hyperparameters"]["method_options"]
    assert options == {"adapter_config": "pfeiffer", "adapter_size": "2"}
    wrong = CliRunner().invoke(
        app, ["train", *common, "--method", "lora", "--mixout-p", "0.5", "-o", str(tmp_path / "x")]
    )
    assert wrong.exit_code == 2 and "mixout" in wrong.stderr and "lora_r" in wrong.stderr
    twice = CliRunner().invoke(
        app, ["train", *common, "--method", "lora", "--lora-r", "4", "-O", "lora_r=8", "-o", str(tmp_path / "y")]
    )
    assert twice.exit_code == 2 and "--lora-r" in twice.stderr
