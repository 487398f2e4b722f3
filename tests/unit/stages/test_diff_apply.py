"""diff / apply on the tiny BERT: bitwise round trip, composition, fingerprint, bad files, CLI."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from sparsetune import apply_delta, diff
from sparsetune.cli import app
from sparsetune.config import ApplyConfig, DiffConfig
from sparsetune.errors import FileFormatError, MismatchError, OutputExistsError, UsageError
from sparsetune.formats.delta import Delta
from sparsetune.formats.run_record import RunRecord
from sparsetune.models import load_model, load_tokenizer
from sparsetune.stages.apply import apply
from sparsetune.tasks import get_task

SPARSETUNE = [sys.executable, "-c", "from sparsetune.cli import main; main()"]


def make_run(
    base: Path, folder: Path, changes: dict[str, list[tuple[int, float]]], task="rte", seed=1, record=True, pooler=None
) -> Path:
    """A fine-tuned dir: base + task head (seeded), with `changes` {name: [(flat index, added)]}.

    Its run.json records `pooler` when given; without it, it is a run from before the pooler
    policy existed, whose pooler was eligible (changed entries, not head)."""
    loaded = load_model(base, get_task(task), seed=seed)
    params = dict(loaded.model.named_parameters())
    with torch.no_grad():
        for name, edits in changes.items():
            for index, added in edits:
                params[name].view(-1)[index] += added
    loaded.model.save_pretrained(folder)
    load_tokenizer(base).save_pretrained(folder)
    if record:
        hyper = {"max_length": 64, **({"pooler": pooler} if pooler else {})}
        RunRecord(base_model=str(base), task=task, method="sparse", hyperparameters=hyper).save(folder)
    return folder


QUERY = "bert.encoder.layer.0.attention.self.query.weight"
NORM = "bert.encoder.layer.1.output.LayerNorm.bias"
WORDS = "bert.embeddings.word_embeddings.weight"


@pytest.fixture(scope="module")
def run_a(tiny_model_dir, tmp_path_factory) -> Path:
    changes = {QUERY: [(3, 0.01), (40, -0.02), (41, 0.5)], NORM: [(0, 1e-3)], WORDS: [(7, 0.03)]}
    return make_run(tiny_model_dir, tmp_path_factory.mktemp("run") / "a", changes)


@pytest.fixture(scope="module")
def run_b(tiny_model_dir, tmp_path_factory) -> Path:
    """Overlaps run_a at QUERY[41]; otherwise disjoint; a different head."""
    changes = {QUERY: [(41, 0.25), (100, 0.07)], "bert.pooler.dense.bias": [(2, -0.04)]}
    return make_run(tiny_model_dir, tmp_path_factory.mktemp("run") / "b", changes, seed=2)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def assert_bitwise_equal(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> None:
    assert set(left) == set(right)
    for name in left:
        assert left[name].dtype == right[name].dtype and left[name].shape == right[name].shape, name
        assert torch.equal(left[name].view(-1).view(torch.uint8), right[name].view(-1).view(torch.uint8)), name


def test_round_trip_is_bitwise_and_config_identical(run_a, tmp_path):
    result = diff(DiffConfig(run=str(run_a), output=str(tmp_path / "d.safetensors")))
    assert result.delta.changed == 5
    assert {name: idx.tolist() for name, idx in result.delta.indices.items()} == {
        QUERY: [3, 40, 41],
        NORM: [0],
        WORDS: [7],
    }
    assert set(result.delta.head) == {"classifier.weight", "classifier.bias"}
    apply(ApplyConfig(deltas=(str(tmp_path / "d.safetensors"),), output=str(tmp_path / "applied")))
    assert_bitwise_equal(weights(run_a), weights(tmp_path / "applied"))
    assert json.loads((run_a / "config.json").read_text()) == json.loads(
        (tmp_path / "applied" / "config.json").read_text()
    )
    assert (tmp_path / "applied" / "tokenizer_config.json").is_file()


def test_metadata_names_base_fingerprint_and_counts(run_a, tiny_model_dir, tmp_path):
    path = tmp_path / "d.safetensors"
    diff(DiffConfig(run=str(run_a), output=str(path)))
    delta = Delta.load(path)
    meta = delta.metadata
    assert meta["base_model"] == str(tiny_model_dir) and meta["task"] == "rte" and meta["max_length"] == 64
    eligible = load_model(tiny_model_dir, get_task("rte"), pooler="eligible").eligible()
    assert set(meta["fingerprint"]) == set(eligible)  # the whole base, not only the touched tensors
    assert meta["changed"] == 5 and meta["head_entries"] == 2 * 32 + 2
    # run_a's run.json predates the pooler policy: its pooler was eligible, so it counts here.
    assert meta["eligible"] == sum(
        p.numel() for p in load_model(tiny_model_dir, get_task("rte"), pooler="eligible").eligible().values()
    )
    assert meta["pooler"] == "eligible"
    assert meta["architecture"] == "BertForSequenceClassification"
    assert delta.values_dtype == "float32" and delta.values_kind == "absolute"


def test_half_precision_values_hold_rounded_differences(run_a, tmp_path):
    tuned = weights(run_a)
    for dtype, tolerance in (("float16", 1e-3), ("bfloat16", 1e-2)):
        path = tmp_path / f"{dtype}.safetensors"
        diff(DiffConfig(run=str(run_a), output=str(path), values=dtype))
        assert Delta.load(path).values_kind == "difference"
        apply(ApplyConfig(deltas=(str(path),), output=str(tmp_path / dtype)))
        applied = weights(tmp_path / dtype)
        for name in tuned:
            torch.testing.assert_close(applied[name], tuned[name], rtol=0, atol=tolerance * 0.5)
        assert not torch.equal(applied[QUERY], weights(tmp_path / "float16")[QUERY]) or dtype == "float16"
    assert (tmp_path / "float16.safetensors").stat().st_size < (tmp_path / "bfloat16.safetensors").stat().st_size + 1


POOLER = ("bert.pooler.dense.weight", "bert.pooler.dense.bias")


def test_a_head_pooler_travels_dense_and_applies_bit_for_bit(tiny_model_dir, tmp_path):
    """A run trained with the pooler as head changed all of it: it goes with the classifier as
    dense tensors (never as index + value), is not counted as eligible, and apply gives the
    model back bit for bit."""
    pooled = torch.randn(32 * 32, generator=torch.Generator().manual_seed(3)) * 1e-2
    changes = {QUERY: [(3, 0.01)], POOLER[0]: list(enumerate(pooled.tolist())), POOLER[1]: [(1, 0.2)]}
    run = make_run(tiny_model_dir, tmp_path / "run", changes, pooler="head")
    path = tmp_path / "d.safetensors"
    diff(DiffConfig(run=str(run), output=str(path)))
    delta = Delta.load(path)
    assert set(delta.head) == {"classifier.weight", "classifier.bias", *POOLER} and set(delta.indices) == {QUERY}
    assert delta.metadata["pooler"] == "head" and delta.changed == 1
    head_policy = load_model(tiny_model_dir, get_task("rte"))
    assert delta.metadata["eligible"] == sum(p.numel() for p in head_policy.eligible().values())
    assert delta.metadata["eligible"] + 32 * 32 + 32 == sum(
        p.numel() for p in load_model(tiny_model_dir, get_task("rte"), pooler="eligible").eligible().values()
    )
    assert not set(POOLER) & set(delta.metadata["untouched"]) and not set(POOLER) & set(delta.metadata["fingerprint"])
    apply(ApplyConfig(deltas=(str(path),), output=str(tmp_path / "applied")))
    assert_bitwise_equal(weights(run), weights(tmp_path / "applied"))
    apply_delta(head_policy, path)  # in memory too
    assert_bitwise_equal({n: p.detach() for n, p in head_policy.model.named_parameters()}, weights(run))
    # The literal policy, asked for explicitly, lists the same pooler as changed entries.
    literal = diff(DiffConfig(run=str(run), pooler="eligible")).delta
    assert set(literal.indices) == {QUERY, *POOLER} and set(literal.head) == {"classifier.weight", "classifier.bias"}
    assert literal.changed == 1 + 32 * 32 + 1


def test_deltas_made_with_different_pooler_policies_do_not_compose(run_b, tiny_model_dir, tmp_path):
    """run_b (pooler eligible) changed an entry of the pooler's bias; a head-policy delta
    carries the whole pooler dense: composing them would silently drop run_b's change."""
    head_run = make_run(tiny_model_dir, tmp_path / "head", {QUERY: [(3, 0.01)]}, pooler="head")
    diff(DiffConfig(run=str(run_b), output=str(tmp_path / "b.safetensors")))
    diff(DiffConfig(run=str(head_run), output=str(tmp_path / "h.safetensors")))
    with pytest.raises(
        MismatchError, match=r"b\.safetensors changes entries of 'bert\.pooler\.dense\.bias'.*different --pooler"
    ):
        apply(
            ApplyConfig(
                deltas=(str(tmp_path / "b.safetensors"), str(tmp_path / "h.safetensors")), output=str(tmp_path / "x")
            )
        )
    assert not (tmp_path / "x").exists()
    diff(
        DiffConfig(run=str(head_run), output=str(tmp_path / "h-literal.safetensors"), pooler="eligible")
    )  # the way out
    apply(
        ApplyConfig(
            deltas=(str(tmp_path / "b.safetensors"), str(tmp_path / "h-literal.safetensors")),
            output=str(tmp_path / "ok"),
        )
    )


def test_a_plain_model_dir_takes_the_default_pooler_policy(tiny_model_dir, tmp_path):
    plain = make_run(tiny_model_dir, tmp_path / "plain", {POOLER[1]: [(0, 0.5)]}, record=False)
    base = str(tiny_model_dir)
    assert set(diff(DiffConfig(run=str(plain), base=base)).delta.head) >= set(POOLER)
    assert set(diff(DiffConfig(run=str(plain), base=base, pooler="eligible")).delta.indices) == {POOLER[1]}
    with pytest.raises(UsageError, match="--pooler"):
        diff(DiffConfig(run=str(plain), base=base, pooler="dense"))


def test_top_p_keeps_the_largest_changes(tiny_model_dir, tmp_path):
    torch.manual_seed(0)
    eligible = load_model(tiny_model_dir, get_task("rte")).eligible()
    changes = {
        name: [(i, float(x)) for i, x in enumerate(torch.randn(p.numel()) * 1e-2)]
        for name, p in eligible.items()
        if "bias" in name
    }
    run = make_run(tiny_model_dir, tmp_path / "dense", changes, pooler="head")
    m = sum(p.numel() for p in eligible.values())
    result = diff(DiffConfig(run=str(run), top_p=0.002))
    assert result.delta.changed == int(m * 0.002)
    tuned, base = weights(run), {n: p.detach() for n, p in eligible.items()}
    kept = torch.cat([(tuned[n].view(-1)[i] - base[n].view(-1)[i]).abs() for n, i in result.delta.indices.items()])
    dropped_max = max(
        float(
            (tuned[n] - base[n])
            .abs()
            .view(-1)[
                torch.ones(base[n].numel(), dtype=torch.bool).index_fill_(
                    0, result.delta.indices.get(n, torch.tensor([], dtype=torch.long)), False
                )
            ]
            .max()
        )
        for n in changes
    )
    assert float(kept.min()) >= dropped_max


def test_plain_model_dir_with_base_and_no_run_json(run_a, tiny_model_dir, tmp_path):
    plain = make_run(tiny_model_dir, tmp_path / "plain", {QUERY: [(5, 0.1)]}, record=False)
    result = diff(DiffConfig(run=str(plain), base=str(tiny_model_dir)))
    assert result.delta.changed == 1 and result.delta.metadata["task"] == ""


def test_apply_delta_in_memory(run_a, tiny_model_dir, tmp_path):
    path = tmp_path / "d.safetensors"
    diff(DiffConfig(run=str(run_a), output=str(path)))
    assert repr(Delta.load(path)).startswith("Delta(5 changed entries in 3 tensors + ")  # counts, not tensors
    model = load_model(tiny_model_dir, get_task("rte"), seed=99)
    apply_delta(model, path)
    assert_bitwise_equal(
        {n: p.detach() for n, p in model.model.named_parameters()}, {n: t for n, t in weights(run_a).items()}
    )


def test_composition_disjoint_and_overlapping(run_a, run_b, tiny_model_dir, tmp_path):
    for name, run in (("a", run_a), ("b", run_b)):
        diff(DiffConfig(run=str(run), output=str(tmp_path / f"{name}.safetensors")))
    apply(
        ApplyConfig(
            deltas=(str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")), output=str(tmp_path / "ab")
        )
    )
    a, b, ab = weights(run_a), weights(run_b), weights(tmp_path / "ab")
    base = {n: p.detach() for n, p in load_model(tiny_model_dir, get_task("rte")).eligible().items()}
    q0, qa, qb, qab = base[QUERY].view(-1), a[QUERY].view(-1), b[QUERY].view(-1), ab[QUERY].view(-1)
    assert qab[3] == qa[3] and qab[40] == qa[40] and qab[100] == qb[100]  # disjoint: each delta's exact value
    expected = (q0[41].double() + (qa[41].double() - q0[41].double()) + (qb[41].double() - q0[41].double())).float()
    assert qab[41] == expected and abs(float(expected) - float(q0[41]) - 0.75) < 1e-6  # overlap: both changes add up
    assert ab[NORM].view(-1)[0] == a[NORM].view(-1)[0]
    assert torch.equal(ab["bert.pooler.dense.bias"], b["bert.pooler.dense.bias"])
    assert torch.equal(ab["classifier.weight"], b["classifier.weight"])  # the last delta's head
    untouched = torch.ones_like(q0, dtype=torch.bool)
    untouched[[3, 40, 41, 100]] = False
    assert torch.equal(qab[untouched], q0[untouched])


def test_wrong_base_names_the_tensor_and_force_overrides(run_a, tiny_model_dir, tmp_path):
    path = tmp_path / "d.safetensors"
    diff(DiffConfig(run=str(run_a), output=str(path)))
    other = tmp_path / "other-base"
    model = load_model(tiny_model_dir, get_task("rte")).model.bert
    with torch.no_grad():
        dict(model.named_parameters())["encoder.layer.0.attention.self.query.weight"].view(-1)[0] += 1.0
    model.save_pretrained(other)
    load_tokenizer(tiny_model_dir).save_pretrained(other)
    with pytest.raises(MismatchError, match=r"tensor 'bert\.encoder\.layer\.0\.attention\.self\.query\.weight'") as err:
        apply(ApplyConfig(deltas=(str(path),), output=str(tmp_path / "out"), base=str(other)))
    assert "\n" not in str(err.value) and "--force" in str(err.value)
    assert not (tmp_path / "out").exists()
    apply(ApplyConfig(deltas=(str(path),), output=str(tmp_path / "out"), base=str(other), force=True))
    assert weights(tmp_path / "out")[QUERY].view(-1)[3] == weights(run_a)[QUERY].view(-1)[3]


@pytest.fixture
def delta_file(run_a, tmp_path) -> Path:
    path = tmp_path / "d.safetensors"
    diff(DiffConfig(run=str(run_a), output=str(path)))
    return path


def test_truncated_and_corrupt_files_are_one_line_errors(delta_file, tmp_path):
    data = delta_file.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) - 10])
    flipped = tmp_path / "flipped.safetensors"
    flipped.write_bytes(data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    for bad in (truncated, flipped, garbage):
        with pytest.raises(FileFormatError) as err:
            Delta.load(bad)
        assert "\n" not in str(err.value) and str(bad) in str(err.value)
        with pytest.raises(FileFormatError):
            apply(ApplyConfig(deltas=(str(bad),), output=str(tmp_path / "never")))
        assert not (tmp_path / "never").exists()


def test_other_safetensors_files_are_refused(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(3)}, str(plain))
    with pytest.raises(FileFormatError, match="not a sparsetune file"):
        Delta.load(plain)


def test_out_of_range_indices_are_refused(delta_file, tmp_path):
    delta = Delta.load(delta_file)
    delta.indices[NORM] = torch.tensor([32])  # LayerNorm of width 32: index 32 is past the end
    bad = tmp_path / "range.safetensors"
    bad.write_bytes(delta.to_bytes())  # a consistent checksum: only the range check can catch it
    with pytest.raises(FileFormatError, match="out of range"):
        Delta.load(bad)


def test_unsorted_indices_are_refused(delta_file, tmp_path):
    delta = Delta.load(delta_file)
    delta.indices[QUERY] = torch.tensor([40, 3, 41])
    bad = tmp_path / "unsorted.safetensors"
    bad.write_bytes(delta.to_bytes())
    with pytest.raises(FileFormatError, match="sorted"):
        Delta.load(bad)


def test_diff_refuses_to_overwrite_and_bad_flags(run_a, delta_file):
    with pytest.raises(OutputExistsError):
        diff(DiffConfig(run=str(run_a), output=str(delta_file)))
    with pytest.raises(UsageError, match="--top-p"):
        diff(DiffConfig(run=str(run_a), top_p=1.5))
    with pytest.raises(UsageError, match="--values"):
        diff(DiffConfig(run=str(run_a), values="int8"))
    with pytest.raises(FileFormatError, match="not a folder"):
        diff(DiffConfig(run=str(delta_file.parent / "nowhere")))
    with pytest.raises(UsageError, match="keeps no entry"):
        diff(DiffConfig(run=str(run_a), top_p=1e-9))
    broken = delta_file.parent / "broken-config"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(FileFormatError, match="not a transformers config"):
        diff(DiffConfig(run=str(broken)))


# -- CLI --------------------------------------------------------------------------
def test_cli_diff_to_stdout_through_a_pipe(run_a, tmp_path):
    proc = subprocess.run(
        [*SPARSETUNE, "diff", str(run_a)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"bytes per changed entry" in proc.stderr and b"5 changed entries" in proc.stderr
    piped = tmp_path / "piped.safetensors"
    piped.write_bytes(proc.stdout)
    delta = Delta.load(piped)
    assert delta.changed == 5 and f"{len(proc.stdout):,} bytes".encode() in proc.stderr
    assert proc.stdout == diff(DiffConfig(run=str(run_a))).data  # another process, the same bytes


def test_cli_diff_refuses_a_terminal(run_a):
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([*SPARSETUNE, "diff", str(run_a)], stdout=follower, stderr=subprocess.PIPE, check=False)
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2
    message = proc.stderr.decode()
    assert "terminal" in message and "-o" in message and "Traceback" not in message


def test_cli_diff_and_apply_files(run_a, tmp_path):
    runner = CliRunner()
    delta = tmp_path / "d.safetensors"
    done = runner.invoke(app, ["diff", str(run_a), "-o", str(delta), "--values", "float16"])
    assert done.exit_code == 0, done.output
    again = runner.invoke(app, ["diff", str(run_a), "-o", str(delta)])
    assert again.exit_code == 1 and "--force" in again.output
    done = runner.invoke(app, ["apply", str(delta), "-o", str(tmp_path / "applied")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "applied" / "model.safetensors").is_file()
    assert f"sparsetune eval {tmp_path / 'applied'} --task rte --max-length 64" in done.output
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(delta.read_bytes()[:100])
    failed = runner.invoke(app, ["apply", str(broken), "-o", str(tmp_path / "never")])
    assert failed.exit_code == 1 and "broken.safetensors" in failed.output and "Traceback" not in failed.output
    assert not (tmp_path / "never").exists()


def test_a_delta_of_no_changed_entry_is_strict_json_and_one_plain_line(tiny_model_dir, tmp_path):
    """Nothing changed (a head-only fine-tune): bytes per changed entry is undefined; it
    was a bare NaN in --json, which strict parsers refuse."""
    same = make_run(tiny_model_dir, tmp_path / "same", {})

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    done = CliRunner().invoke(app, ["diff", str(same), "-o", str(tmp_path / "d.safetensors"), "--json"])
    assert done.exit_code == 0, done.output
    stats = json.loads(done.stdout, parse_constant=refuse)
    assert stats["changed"] == 0 and stats["bytes_per_changed_entry"] is None
    done = CliRunner().invoke(app, ["diff", str(same), "-o", str(tmp_path / "e.safetensors")])
    assert done.exit_code == 0 and "0 changed entries" in done.output and "per changed entry" not in done.output


def test_quiet_means_nothing_on_stderr_in_a_fresh_process(delta_file, tmp_path):
    """-q in a process of its own (where transformers reads the CLI's environment): no
    "Writing model shards" bar, no load report, nothing."""
    done = subprocess.run(
        [*SPARSETUNE, "apply", str(delta_file), "-o", str(tmp_path / "applied"), "-q"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr


def test_inspect_summarises_a_delta(delta_file, tmp_path):
    from sparsetune.stages.inspect import inspect_file

    summary = inspect_file(delta_file, plot=tmp_path / "delta.png")
    assert summary["kind"] == "delta" and summary["totals"]["changed"] == 5
    assert summary["per_tensor"][QUERY] == {"changed": 3, "entries": 32 * 32, "density": 3 / 1024}
    assert summary["per_tensor"]["bert.pooler.dense.weight"]["changed"] == 0  # untouched tensors are listed too
    assert summary["totals"]["eligible"] == sum(row["entries"] for row in summary["per_tensor"].values())
    table = summary["table"]
    assert table["value"] == "changed fraction" and "layer 0" in table["rows"] and "query" in table["columns"]
    assert (tmp_path / "delta.png").read_bytes()[:4] == b"\x89PNG"
    done = CliRunner().invoke(app, ["inspect", str(delta_file), "--json"])
    assert done.exit_code == 0 and json.loads(done.stdout)["totals"]["head_entries"] == 66


def test_cli_json_for_scripts_and_quiet_for_checks(run_a, delta_file, tmp_path):
    """diff --json: JSON on stdout beside a file, on stderr when the delta is stdout;
    apply --json; inspect/tasks --quiet print nothing."""
    proc = subprocess.run(
        [*SPARSETUNE, "diff", str(run_a), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    summary = json.loads(proc.stderr.decode())
    assert summary["changed"] == 5 and summary["bytes"] == len(proc.stdout) and summary["output"] is None
    runner = CliRunner()
    done = runner.invoke(app, ["diff", str(run_a), "-o", str(tmp_path / "json.safetensors"), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["output"] == str(tmp_path / "json.safetensors")
    done = runner.invoke(app, ["apply", str(tmp_path / "json.safetensors"), "-o", str(tmp_path / "applied"), "--json"])
    assert done.exit_code == 0, done.output
    applied = json.loads(done.stdout)
    assert applied["output"] == str(tmp_path / "applied") and applied["deltas"] == 1 and applied["task"] == "rte"
    for args in (["inspect", str(delta_file), "-q"], ["tasks", "-q"]):
        quiet = runner.invoke(app, args)
        assert quiet.exit_code == 0 and quiet.output == "", args
