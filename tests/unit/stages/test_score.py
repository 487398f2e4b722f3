"""The score stage on a tiny random BERT: SAM and Fisher against independent autograd,
the mask metadata `train` needs, determinism, scores files, the registry and every error."""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from typer.testing import CliRunner

from sparsetune import score
from sparsetune.cli import app
from sparsetune.config import MaskConfig, ScoreConfig
from sparsetune.data import load_task_data
from sparsetune.errors import FileFormatError, MismatchError, OutputExistsError, UsageError
from sparsetune.formats.mask import Mask
from sparsetune.formats.scores import Scores
from sparsetune.scoring import SCORERS, Scorer, get_scorer, register_scorer
from sparsetune.stages.inspect import inspect_file
from sparsetune.stages.score import rethreshold

runner = CliRunner()


@pytest.fixture
def config(tiny_model_dir, tiny_data_dir, tmp_path):
    def make(**changes) -> ScoreConfig:
        base = dict(
            task="rte",
            model=str(tiny_model_dir),
            data_dir=str(tiny_data_dir),
            p=0.05,
            batch_size=7,
            max_length=32,
            seed=3,
            output=str(tmp_path / "mask.safetensors"),
        )
        return ScoreConfig(**{**base, **changes})

    return make


POOLER = ["bert.pooler.dense.bias", "bert.pooler.dense.weight"]
HEAD = sorted(["classifier.bias", "classifier.weight", *POOLER])


def reference_batch_gradients(tiny_model_dir, tiny_data_dir, seed, per_example=False, pooler="head", batch=None):
    """Independent of sparsetune's scoring: plain transformers, the whole train part in one
    batch (or one example at a time), autograd, in float64 for a precise reference. The head
    (classifier, and the pooler unless pooler="eligible") gets no gradient here."""
    rows = load_task_data(__import__("sparsetune").get_task("rte"), tiny_data_dir, 0.1, seed).train
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2).double().eval()
    head = {"classifier.weight", "classifier.bias", *(POOLER if pooler == "head" else [])}

    def grads(chunk):
        model.zero_grad()
        inputs = tokenizer(
            chunk["sentence1"], chunk["sentence2"], truncation=True, max_length=32, padding=True, return_tensors="pt"
        )
        loss = torch.nn.functional.cross_entropy(model(**inputs).logits, torch.tensor(chunk["label"]))
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if n not in head}

    size = 1 if per_example else batch or len(rows)
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
    return [grads(chunk) for chunk in chunks]


def reference_gradients(tiny_model_dir, tiny_data_dir, seed, per_example=False, pooler="head"):
    """SAM's g² (one batch) or, `per_example`, the empirical Fisher: the mean of squared
    per-example gradients. Returns the scores and the number of examples."""
    gradients = reference_batch_gradients(tiny_model_dir, tiny_data_dir, seed, per_example, pooler)
    if not per_example:
        return {n: g**2 for n, g in gradients[0].items()}, 1
    return {n: sum(g[n] ** 2 for g in gradients) / len(gradients) for n in gradients[0]}, len(gradients)


def relative_error(got: dict, expected: dict) -> float:
    assert set(got) == set(expected)
    diff = sum(float(((got[n].double() - expected[n]) ** 2).sum()) for n in expected)
    norm = sum(float((expected[n] ** 2).sum()) for n in expected)
    return (diff / norm) ** 0.5


@pytest.mark.parametrize("pooler", ["head", "eligible"])
def test_sam_equals_one_backward_over_the_whole_train_part(config, tiny_model_dir, tiny_data_dir, pooler):
    result = score(config(output=None, pooler=pooler))  # batches of 7 over 36 rows: unequal last batch
    expected, _ = reference_gradients(tiny_model_dir, tiny_data_dir, seed=3, pooler=pooler)
    assert result.examples == 36
    assert relative_error(result.scores, expected) <= 1e-5
    for name in ("bert.embeddings.word_embeddings.weight", "bert.encoder.layer.1.output.dense.weight"):
        assert relative_error({name: result.scores[name]}, {name: expected[name]}) <= 1e-5
    assert all(score.dtype == torch.float32 for score in result.scores.values())


def test_fisher_with_batch_size_one_is_the_empirical_fisher(config, tiny_model_dir, tiny_data_dir):
    result = score(config(method="fisher", batch_size=1, output=None))
    expected, _ = reference_gradients(tiny_model_dir, tiny_data_dir, seed=3, per_example=True)
    assert relative_error(result.scores, expected) <= 1e-5
    sam = score(config(output=None)).scores
    assert relative_error(result.scores, {n: s.double() for n, s in sam.items()}) > 0.1  # a different quantity


def test_fisher_weighs_each_batch_by_its_examples(config, tiny_model_dir, tiny_data_dir):
    """Batches of 7 over 36 rows end with one of 1, whose squared gradient is far noisier:
    it counts as its one example, not as a seventh of the set."""
    result = score(config(method="fisher", output=None))  # batch_size 7
    gradients = reference_batch_gradients(tiny_model_dir, tiny_data_dir, seed=3, batch=7)
    sizes = [7, 7, 7, 7, 7, 1]
    assert len(gradients) == len(sizes)
    expected = {n: sum(size / 36 * g[n] ** 2 for size, g in zip(sizes, gradients)) for n in gradients[0]}
    assert relative_error(result.scores, expected) <= 1e-5
    unweighted = {n: sum(g[n] ** 2 for g in gradients) / len(gradients) for n in gradients[0]}
    assert relative_error(result.scores, unweighted) > 0.01  # what it computed before


def test_g2h_is_the_squared_gradient_over_the_damped_empirical_fisher(config, tiny_model_dir, tiny_data_dir):
    result = score(config(method="g2h", batch_size=1, output=None))
    gradients = reference_batch_gradients(tiny_model_dir, tiny_data_dir, seed=3, per_example=True)
    names = list(gradients[0])
    mean = {n: sum(g[n] for g in gradients) / len(gradients) for n in names}  # the mean loss's gradient
    fisher = {n: sum(g[n] ** 2 for g in gradients) / len(gradients) for n in names}
    damping = sum(float(f.sum()) for f in fisher.values()) / sum(f.numel() for f in fisher.values())
    expected = {n: mean[n] ** 2 / (fisher[n] + damping) for n in names}
    assert relative_error(result.scores, expected) <= 1e-5
    sam = score(config(batch_size=1, output=None)).scores  # the same g², divided entry by entry
    ratio = torch.cat([(result.scores[n] / sam[n])[sam[n] > 0] for n in names])
    assert float(ratio.max() / ratio.min()) > 10  # not SAM rescaled


def test_fp16s_loss_scale_fits_how_the_scorer_weighs_a_batch(config, monkeypatch):
    """Each batch's weighted loss, times the scale, is about 2^8: SAM weighs a batch by its
    share (16/7695 on cola), fisher and g2h by 1. Sized for SAM, their losses were scaled
    2^17 (fp16 tops out at 65504), and a large data set overflowed for no reason."""
    from sparsetune.scoring import SCORERS
    from sparsetune.stages.score import _loss_scale

    assert [name for name, scorer in SCORERS.items() if not scorer.weighs_by_share] == ["fisher", "g2h"]
    for name in ("sam", "fisher", "g2h"):
        examples = 7695 if SCORERS[name].weighs_by_share else 0
        weight = 16 / 7695 if SCORERS[name].weighs_by_share else 1.0
        assert 2**7 <= _loss_scale("fp16", examples, 16) * weight <= 2**9
    assert _loss_scale("bf16", 7695, 16) == _loss_scale("fp32", 7695, 16) == 1.0
    asked = []  # what `score` sizes the scale by, on this CPU (fp16 needs a GPU)
    monkeypatch.setattr("sparsetune.stages.score._loss_scale", lambda *args: asked.append(args) or 1.0)
    score(config(method="sam", output=None))
    score(config(method="fisher", output=None))
    assert asked[0][1] > 0 and asked[1][1] == 0


def test_mask_is_the_top_k_of_the_scores_and_excludes_the_head(config, tmp_path):
    result = score(config(save_scores=str(tmp_path / "scores.safetensors")))
    mask = Mask.load(tmp_path / "mask.safetensors")
    assert "classifier.weight" not in mask.shapes and sorted(result.head) == HEAD
    assert mask.selected == int(mask.eligible * 0.05)
    flat = torch.cat([s.reshape(-1) for s in result.scores.values()])
    chosen = torch.cat([result.scores[n].reshape(-1)[mask.bool_tensor(n).reshape(-1)] for n in mask.shapes])
    rejected = torch.cat([result.scores[n].reshape(-1)[~mask.bool_tensor(n).reshape(-1)] for n in mask.shapes])
    assert chosen.numel() == mask.selected and rejected.numel() == flat.numel() - mask.selected
    assert float(chosen.min()) >= float(rejected.max())
    saved = Scores.load(tmp_path / "scores.safetensors")
    assert list(saved.tensors) == list(result.scores)  # model order survives the file
    assert all(torch.equal(saved.tensors[n], result.scores[n]) for n in result.scores)
    assert saved.metadata["examples"] == 36 and saved.metadata["method"] == "sam"


def test_scores_file_whose_tensors_do_not_match_its_shapes_is_refused(tmp_path):
    from sparsetune.formats.common import save_tensors

    save_tensors(
        tmp_path / "s.safetensors",
        {"w": torch.rand(3)},
        {"format": "sparsetune.scores", "version": "1", "shapes": {"w": [4]}},
    )
    with pytest.raises(FileFormatError, match="do not match the recorded shapes"):
        Scores.load(tmp_path / "s.safetensors")


def test_mask_metadata_is_enough_for_train(config, tiny_model_dir, tmp_path):
    score(config(examples=20))
    meta = Mask.load(tmp_path / "mask.safetensors").metadata
    assert meta["model"] == str(tiny_model_dir) and meta["task"] == "rte" and meta["method"] == "sam"
    assert (meta["p"], meta["scope"], meta["examples"], meta["seed"]) == (0.05, "global", 20, 3)
    assert (meta["dev_fraction"], meta["max_length"], meta["batch_size"]) == (0.1, 32, 7)
    assert meta["sparsetune_version"]


def test_global_and_per_tensor_counts(config, tmp_path):
    per_tensor = score(config(scope="per-tensor", output=None)).mask
    for name, (selected, entries) in per_tensor.per_tensor().items():
        assert selected == int(entries * 0.05), name
    global_mask = score(config(output=None)).mask
    assert global_mask.selected == int(global_mask.eligible * 0.05)
    assert global_mask.per_tensor() != per_tensor.per_tensor()


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(config, tmp_path):
    paths = [tmp_path / f"{name}.safetensors" for name in ("a", "b", "c")]
    score(config(examples=25, output=str(paths[0]), save_scores=str(tmp_path / "s1.safetensors")))
    score(config(examples=25, output=str(paths[1]), save_scores=str(tmp_path / "s2.safetensors")))
    score(config(examples=25, seed=4, output=str(paths[2])))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert (tmp_path / "s1.safetensors").read_bytes() == (tmp_path / "s2.safetensors").read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_more_examples_than_exist_uses_all_and_says_so(config):
    result = score(config(examples=1000, output=None))
    assert result.examples == result.examples_available == 36
    assert any("using all 36" in note for note in result.notes)
    assert score(config(examples=10, output=None)).examples == 10


@pytest.mark.parametrize(
    "changes, error, message",
    [
        (dict(p=0), UsageError, r"-p must be in \(0, 1\]"),
        (dict(p=1.5), UsageError, r"-p must be in \(0, 1\]"),
        (dict(scope="layer"), UsageError, "--scope must be one of"),
        (dict(method="magic"), UsageError, "unknown scoring --method 'magic'; known methods: .*fisher.*sam"),
        (dict(examples=0), UsageError, "--examples must be a positive number"),
        (dict(batch_size=0), UsageError, "--batch-size must be at least 1"),
        (dict(task="nope"), UsageError, "unknown task 'nope'"),
    ],
)
def test_bad_config_is_refused_before_any_work(config, changes, error, message):
    with pytest.raises(error, match=message):
        score(config(**changes))


def test_existing_outputs_need_force(config, tmp_path):
    (tmp_path / "mask.safetensors").write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="mask.safetensors already exists; pass --force"):
        score(config())
    assert (tmp_path / "mask.safetensors").read_bytes() == b"keep me"
    (tmp_path / "s.safetensors").write_bytes(b"keep me too")
    with pytest.raises(OutputExistsError, match="s.safetensors already exists"):
        score(config(output=str(tmp_path / "other.safetensors"), save_scores=str(tmp_path / "s.safetensors")))
    assert not (tmp_path / "other.safetensors").exists()
    score(config(force=True))
    assert Mask.load(tmp_path / "mask.safetensors").selected > 0


def test_a_library_call_writes_no_file_unless_asked(tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch):
    """The CLI's -o defaults to mask.safetensors; ScoreConfig and MaskConfig default to
    memory, so a second call in a notebook does not fail on the first one's file."""
    monkeypatch.chdir(tmp_path)
    settings = dict(task="cb", model=str(tiny_model_dir), data_dir=str(tiny_data_dir), examples=8, max_length=24)
    first, again = score(ScoreConfig(**settings, save_scores="s.safetensors")), score(ScoreConfig(**settings))
    assert first.mask.selected == again.mask.selected > 0 and rethreshold(MaskConfig(scores="s.safetensors", p=0.1))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["s.safetensors"]
    shown = repr(first)  # a notebook prints it: counts, not the tensors
    assert f"Mask({first.mask.selected:,} of {first.mask.eligible:,} entries" in shown and len(shown) < 1000


def test_rethreshold_matches_scoring_at_that_p(config, tmp_path):
    score(config(p=0.01, save_scores=str(tmp_path / "s.safetensors"), output=str(tmp_path / "m1.safetensors")))
    score(config(p=0.2, output=str(tmp_path / "direct.safetensors")))
    mask = rethreshold(
        MaskConfig(scores=str(tmp_path / "s.safetensors"), p=0.2, output=str(tmp_path / "re.safetensors"))
    )
    assert (tmp_path / "re.safetensors").read_bytes() == (tmp_path / "direct.safetensors").read_bytes()
    assert mask.metadata["p"] == 0.2
    with pytest.raises(FileFormatError, match="is a sparsetune mask file, expected a scores file"):
        rethreshold(MaskConfig(scores=str(tmp_path / "m1.safetensors"), p=0.1, output=None))
    with pytest.raises(OutputExistsError):
        rethreshold(MaskConfig(scores=str(tmp_path / "s.safetensors"), p=0.1, output=str(tmp_path / "re.safetensors")))


def test_rethreshold_keeps_the_scope_it_was_scored_in(config, tmp_path):
    """`mask SCORES` promised the scope recorded in the scores file; `score` recorded none,
    so per-tensor scores were re-thresholded globally."""
    settings = dict(scope="per-tensor", p=0.01)
    score(config(**settings, save_scores=str(tmp_path / "s.safetensors"), output=str(tmp_path / "m1.safetensors")))
    score(config(scope="per-tensor", p=0.2, output=str(tmp_path / "direct.safetensors")))
    mask = rethreshold(
        MaskConfig(scores=str(tmp_path / "s.safetensors"), p=0.2, output=str(tmp_path / "re.safetensors"))
    )
    assert mask.metadata["scope"] == "per-tensor"
    assert (tmp_path / "re.safetensors").read_bytes() == (tmp_path / "direct.safetensors").read_bytes()
    other = rethreshold(MaskConfig(scores=str(tmp_path / "s.safetensors"), p=0.2, output=None, scope="global"))
    assert other.metadata["scope"] == "global"  # the flag still wins


def test_a_mask_from_another_model_is_refused(config, tiny_model_dir, tmp_path):
    from sparsetune.models import load_model
    from sparsetune.tasks import TASKS

    mask = score(config(output=None)).mask
    other = {
        n: torch.zeros(p.shape[0] + 1, *p.shape[1:])
        for n, p in load_model(tiny_model_dir, TASKS["rte"]).eligible().items()
    }
    with pytest.raises(MismatchError, match="has shape"):
        mask.validate_against(other)


def test_registry_seam_and_no_data_scorers(config, monkeypatch):
    assert {"sam", "fisher"} <= set(SCORERS) and isinstance(get_scorer("sam"), Scorer)

    class AllOnes(Scorer):
        needs_data = False

        def compute(self, context):
            assert context.batches is None and context.num_examples == 0
            return {n: torch.ones_like(p) for n, p in context.loaded.eligible().items()}

    monkeypatch.setitem(SCORERS, "ones", AllOnes)
    AllOnes.name = "ones"
    result = score(config(method="ones", output=None, data_dir="/nonexistent"))  # no data is read
    assert result.examples == 0 and result.mask.metadata["method"] == "ones"
    with pytest.raises(ValueError, match="registered twice"):
        register_scorer("sam")(AllOnes)


def test_sams_mask_holds_no_pooler_entries_by_default_and_records_the_head(config, tmp_path):
    """The pooler is task head by default: not scored, not in the mask, named in its metadata
    (and in the scores file, which `sparsetune mask` passes on); --pooler eligible gives the
    literal behaviour, where SAM spends part of its budget on the pooler (as on MiniLM)."""
    default = score(config(save_scores=str(tmp_path / "scores.safetensors")))
    mask = Mask.load(tmp_path / "mask.safetensors")
    assert not set(POOLER) & (set(mask.shapes) | set(mask.indices) | set(default.scores))
    assert mask.metadata["pooler"] == "head" and mask.metadata["head"] == HEAD
    again = rethreshold(
        MaskConfig(scores=str(tmp_path / "scores.safetensors"), p=0.1, output=str(tmp_path / "m10.safetensors"))
    )
    assert again.metadata["pooler"] == "head" and Mask.load(tmp_path / "m10.safetensors").metadata["head"] == HEAD
    literal = score(config(pooler="eligible", output=str(tmp_path / "literal.safetensors")))
    saved = Mask.load(tmp_path / "literal.safetensors")
    assert saved.metadata["pooler"] == "eligible" and saved.metadata["head"] == ["classifier.bias", "classifier.weight"]
    assert set(POOLER) <= set(saved.shapes) and saved.eligible == mask.eligible + 32 * 32 + 32
    assert sum(saved.per_tensor()[n][0] for n in POOLER) > 0  # the literal SAM selects pooler entries here
    assert literal.summary()["pooler"] == "eligible" and default.summary()["pooler"] == "head"
    with pytest.raises(UsageError, match="--pooler must be one of"):
        score(config(pooler="dense", output=None))


def test_inspect_mask_and_scores(config, tmp_path):
    score(config(save_scores=str(tmp_path / "s.safetensors")))
    summary = inspect_file(tmp_path / "mask.safetensors", plot=tmp_path / "m.png")
    assert (
        summary["kind"] == "mask" and summary["totals"]["selected"] == Mask.load(tmp_path / "mask.safetensors").selected
    )
    table = summary["table"]
    assert table["rows"] == ["embeddings", "layer 0", "layer 1"]  # the pooler is head by default
    assert summary["metadata"]["pooler"] == "head" and summary["metadata"]["head"] == HEAD
    assert {"query", "key", "value", "attention-out", "ffn-in", "ffn-out", "layernorm", "bias"} <= set(table["columns"])
    selected = sum(c * n for row, ns in zip(table["cells"], table["entries"]) for c, n in zip(row, ns) if c is not None)
    assert round(selected) == summary["totals"]["selected"]
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scores = inspect_file(tmp_path / "s.safetensors")
    assert scores["kind"] == "scores" and scores["table"]["value"] == "mean score"
    json.dumps(scores)  # JSON-ready
    with pytest.raises(OutputExistsError):
        inspect_file(tmp_path / "mask.safetensors", plot=tmp_path / "m.png")
    inspect_file(tmp_path / "mask.safetensors", plot=tmp_path / "m.svg")  # the suffix names the format
    assert (tmp_path / "m.svg").read_bytes().lstrip().startswith(b"<?xml")
    with pytest.raises(UsageError, match="--plot .*m.jpg: a plot is written as .png, .pdf, .svg"):
        inspect_file(tmp_path / "mask.safetensors", plot=tmp_path / "m.jpg")  # got PNG bytes under its name
    assert not (tmp_path / "m.jpg").exists()


def test_cli_errors_are_one_line_with_exit_codes(tiny_model_dir, tiny_data_dir, tmp_path):
    base = ["score", str(tiny_model_dir), "--data-dir", str(tiny_data_dir), "-o", str(tmp_path / "m.safetensors")]
    cases = [
        (base + ["--task", "rte", "-p", "0"], 2, "-p must be in (0, 1]"),
        (base + ["--task", "rte", "--examples", "many"], 2, "--examples must be a positive number or 'all'"),
        (base, 2, "--task is required"),
    ]
    for args, code, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == code, result.output
        assert message in result.stderr and "Traceback" not in result.output
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    for command in (["inspect", str(plain)], ["mask", str(plain), "-p", "0.1"], ["inspect", str(junk)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1 and "error:" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_score_json_and_existing_output(tiny_model_dir, tiny_data_dir, tmp_path):
    args = [
        "score",
        str(tiny_model_dir),
        "--task",
        "cb",
        "--data-dir",
        str(tiny_data_dir),
        "-o",
        str(tmp_path / "m.safetensors"),
        "--examples",
        "100",
        "--max-length",
        "32",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (
        summary["examples"] == 36
        and summary["notes"]
        and summary["head_tensors"] == HEAD
        and summary["pooler"] == "head"
    )
    assert abs(sum(summary["share_by_module_type"].values()) - 1) < 1e-9
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already exists; pass --force" in again.stderr
