"""Two processes on the CPU (gloo) through torchrun: the same mask, the same schedule and
gradients, gathered metrics, one writer, resume, and no hang when a rank fails.

Each case launches `python -m torch.distributed.run --standalone --nproc_per_node 2`,
as a user would: the process boundary is what these tests are about.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sparsetune.formats.mask import Mask

from .training_support import write_mask


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def torchrun(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=timeout)


def single(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sparsetune", *args], capture_output=True, text=True, env=_env(), timeout=240
    )


@pytest.fixture(scope="module")
def no_dropout_model(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny BERT without dropout: one and two processes must then take the same steps."""
    folder = tmp_path_factory.mktemp("tiny-no-dropout")
    for item in tiny_model_dir.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_two_process_score_writes_the_one_process_mask(tmp_path, tiny_model_dir, tiny_data_dir):
    flags = [str(tiny_model_dir), "--task", "cb", "--data-dir", str(tiny_data_dir), "--batch-size", "3", "-q"]
    one = single(
        "score",
        *flags,
        "-o",
        str(tmp_path / "one.safetensors"),
        "--save-scores",
        str(tmp_path / "one-scores.safetensors"),
    )
    assert one.returncode == 0, one.stderr
    two = torchrun(
        "-m",
        "sparsetune",
        "score",
        *flags,
        "-o",
        str(tmp_path / "two.safetensors"),
        "--save-scores",
        str(tmp_path / "two-scores.safetensors"),
    )
    assert two.returncode == 0, two.stderr
    a, b = Mask.load(tmp_path / "one.safetensors"), Mask.load(tmp_path / "two.safetensors")
    assert a.indices.keys() == b.indices.keys()
    assert all(torch.equal(a.indices[name], b.indices[name]) for name in a.indices)
    first, second = load_file(tmp_path / "one-scores.safetensors"), load_file(tmp_path / "two-scores.safetensors")
    for name in first:  # 12 batches over 2 processes, summed once: rounding only (relative to the tensor's scale,
        # since an entry whose batch gradients cancel has no element-wise relative accuracy in any float order)
        torch.testing.assert_close(second[name], first[name], rtol=1e-5, atol=1e-5 * float(first[name].abs().max()))
    assert not list(tmp_path.glob("*.tmp*"))


def test_two_process_train_takes_the_one_process_steps_and_writes_once(tmp_path, no_dropout_model, tiny_data_dir):
    mask = write_mask(tmp_path, no_dropout_model)
    # 36 train rows in global batches of 7: the last batch has one row, so one
    # process runs a weight-0 stand-in (data.local_part).
    flags = [
        "train",
        str(no_dropout_model),
        "--mask",
        str(mask),
        "--data-dir",
        str(tiny_data_dir),
        "--batch-size",
        "7",
        "--epochs",
        "2",
        "--lr",
        "1e-2",
        "--eval-every",
        "3",
        "-q",
    ]
    one = single(*flags, "-o", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = torchrun("-m", "sparsetune", *flags, "-o", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    one_log = [json.loads(line) for line in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    two_log = [json.loads(line) for line in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], "dev" in r) for r in two_log] == [(r["step"], "dev" in r) for r in one_log]  # each line once
    assert [r["lr"] for r in two_log if "lr" in r] == [r["lr"] for r in one_log if "lr" in r]  # the same schedule
    for a, b in zip(one_log, two_log):  # the global batch's mean loss, and the dev metrics, as one process
        if "loss" in a:
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        else:
            assert b["dev"] == pytest.approx(a["dev"], rel=1e-4)
    first, second = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    for name in first:  # the same updates: DDP's average of the weighted shards is the global mean
        torch.testing.assert_close(second[name], first[name], rtol=1e-4, atol=1e-6)
    assert len(list((tmp_path / "two").glob("model*.safetensors"))) == 1
    assert not list((tmp_path / "two").glob(".model.*"))


def test_sharded_evaluation_gathers_every_prediction(tmp_path, tiny_model_dir, tiny_data_dir):
    """The gathered predictions of two processes are the one-process predictions, as a
    multiset (metrics do not depend on order), for a split that does not divide evenly."""
    script = tmp_path / "predict.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, os, sys
        from sparsetune.data import load_split
        from sparsetune.stages.evaluate import predict
        from sparsetune.models import load_model, load_tokenizer
        from sparsetune.runtime import runtime
        from sparsetune.tasks import get_task
        task = get_task("stsb")
        rt = runtime("cpu", "fp32") if sys.argv[1] == "sharded" else None
        model = load_model({str(tiny_model_dir)!r}, task, seed=0).model
        rows = load_split(task, "validation", {str(tiny_data_dir)!r})
        predictions, labels = predict(model, task, rows, load_tokenizer({str(tiny_model_dir)!r}), 3, 32, rt=rt)
        if os.environ.get("RANK", "0") == "0":
            pairs = sorted(zip(labels.tolist(), predictions.tolist()))
            open(sys.argv[2], "w").write(json.dumps(pairs))
        if rt is not None:
            rt.barrier()  # end together, as the CLI stages do (main writes, the others wait)
    """)
    )
    one = subprocess.run(
        [sys.executable, str(script), "one", str(tmp_path / "one.json")], capture_output=True, text=True, env=_env()
    )
    assert one.returncode == 0, one.stderr
    two = torchrun(str(script), "sharded", str(tmp_path / "two.json"))
    assert two.returncode == 0, two.stderr
    one_pairs, two_pairs = (
        json.loads((tmp_path / "one.json").read_text()),
        json.loads((tmp_path / "two.json").read_text()),
    )
    assert len(one_pairs) == len(two_pairs) == 16  # 16 rows in batches of 3: nothing lost, nothing repeated
    # Whole batches go to each process, but accelerate completes the short last batch with
    # rows from the start, so its padding (and so its rounding) may differ.
    assert [label for label, _ in two_pairs] == [label for label, _ in one_pairs]
    assert [value for _, value in two_pairs] == pytest.approx([value for _, value in one_pairs], rel=1e-5)


def test_interrupt_under_two_processes_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_model_dir, tiny_data_dir):
    """Ctrl-C seen by rank 1 alone stops both ranks at the same step with a checkpoint;
    `--resume` under two processes then ends where an uninterrupted run ends, bit for bit."""
    mask = write_mask(tmp_path, tiny_model_dir)
    script = tmp_path / "interrupted.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, signal, sys, threading, time
        from pathlib import Path
        from sparsetune import TrainConfig, train
        from sparsetune.errors import TrainingInterrupted
        out = Path(sys.argv[1])
        def ctrl_c_when_step_3_is_logged():
            while True:
                log = out / "log.jsonl"
                if log.is_file() and '"step": 3,' in log.read_text():
                    os.kill(os.getpid(), signal.SIGINT)
                    return
                time.sleep(0.005)
        if os.environ["RANK"] == "1":
            threading.Thread(target=ctrl_c_when_step_3_is_logged, daemon=True).start()
        try:
            train(TrainConfig(output=str(out), model={str(tiny_model_dir)!r}, mask={str(mask)!r},
                              data_dir={str(tiny_data_dir)!r}, epochs=40, batch_size=8, device="cpu"))
        except TrainingInterrupted as stop:
            print(stop, file=sys.stderr)
            sys.exit(130)
    """)
    )
    stopped = torchrun(str(script), str(tmp_path / "run"))
    assert stopped.returncode != 0 and "interrupted (Ctrl-C) at step" in stopped.stderr, stopped.stderr
    assert (tmp_path / "run" / "checkpoint").is_dir() and not (tmp_path / "run" / "run.json").exists()
    resumed = torchrun(
        "-m", "sparsetune", "train", "--resume", "-o", str(tmp_path / "run"), "--data-dir", str(tiny_data_dir), "-q"
    )
    assert resumed.returncode == 0, resumed.stderr
    straight = torchrun(
        "-m",
        "sparsetune",
        "train",
        str(tiny_model_dir),
        "--mask",
        str(mask),
        "--data-dir",
        str(tiny_data_dir),
        "--epochs",
        "40",
        "--batch-size",
        "8",
        "-o",
        str(tmp_path / "straight"),
        "-q",
    )
    assert straight.returncode == 0, straight.stderr
    a, b = load_file(tmp_path / "run" / "model.safetensors"), load_file(tmp_path / "straight" / "model.safetensors")
    assert all(torch.equal(a[name], b[name]) for name in a)
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
        if '"loss"' in line
    ]
    assert steps == list(range(1, len(steps) + 1))  # every step logged exactly once across the interruption


def test_processes_given_different_flags_are_refused_and_a_failing_rank_ends_the_launch(
    tmp_path, tiny_model_dir, tiny_data_dir
):
    script = tmp_path / "disagree.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, sys
        from sparsetune import score
        from sparsetune.config import ScoreConfig
        from sparsetune.errors import SparsetuneError
        rank = int(os.environ["RANK"])
        if sys.argv[1] == "flags":
            try:
                score(ScoreConfig(task="cb", model={str(tiny_model_dir)!r}, data_dir={str(tiny_data_dir)!r},
                                  seed=rank, output=None))
            except SparsetuneError as err:
                print(f"rank {{rank}}: {{err}}", file=sys.stderr)
                sys.exit(2)
        else:  # rank 1 dies; rank 0 waits at a barrier that rank 1 never reaches
            from sparsetune.runtime import runtime
            rt = runtime("cpu")
            if rank == 1:
                raise SystemExit(3)
            rt.barrier()
    """)
    )
    refused = torchrun(str(script), "flags", timeout=120)
    assert refused.returncode != 0
    assert "different score flags" in refused.stderr and "launch every process with the same command" in refused.stderr
    # (torchrun itself then prints its ChildFailedError summary: the launcher's, not ours.)
    ended = torchrun(str(script), "die", timeout=120)  # would raise TimeoutExpired if rank 0 hung
    assert ended.returncode != 0


def test_grid_runs_each_run_through_a_launcher(tmp_path, tiny_model_dir, tiny_data_dir):
    """`launcher` makes every grid run a 2-process launch: one results line, one run dir,
    the same number of log lines as steps."""
    from sparsetune.experiments.grid import load_grid, plan
    from sparsetune.experiments.results import read_results
    from sparsetune.experiments.runner import run_grid

    config = tmp_path / "grid.toml"
    config.write_text(
        textwrap.dedent(f"""
        model = "{tiny_model_dir}"
        tasks = ["cb"]
        seeds = [1]
        runs_dir = "{tmp_path / "runs"}"
        data_dir = "{tiny_data_dir}"
        launcher = "{sys.executable} -m torch.distributed.run --standalone --nproc_per_node 2"
        [train]
        max_steps = 3
        batch_size = 8
        max_length = 24
        [[methods]]
        name = "SAM"
        score = "sam"
        p = [0.02]
        score_flags = {{ examples = 8, max_length = 24, batch_size = 4 }}
    """)
    )
    grid = load_grid(config)
    results, failures, _ = run_grid(plan(grid), tmp_path / "results.jsonl", launcher=grid.launcher)
    assert not failures and len(results) == 1
    assert len(read_results(tmp_path / "results.jsonl")) == 1
    log = (tmp_path / "runs" / "SAM" / "cb" / "p0.02" / "seed1" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log if '"loss"' in line] == [1, 2, 3]


def test_the_process_group_is_destroyed_before_exit(tmp_path):
    """Left to the interpreter's teardown, gloo's threads abort the process now and then
    ("terminate called without an active exception", exit -6) after its work is done;
    `runtime` destroys the group at exit. An atexit hook registered first runs last, so it
    sees what every later hook left behind."""
    script = tmp_path / "exits.py"
    script.write_text(
        textwrap.dedent(f"""
        import atexit, os, torch
        from pathlib import Path
        from sparsetune.runtime import runtime
        def report():
            Path({str(tmp_path)!r}, "rank" + os.environ["RANK"]).write_text(str(torch.distributed.is_initialized()))
        atexit.register(report)
        rt = runtime("cpu")
        assert rt.processes == 2 and torch.distributed.is_initialized()
        rt.sum(torch.ones(3))
    """)
    )
    ran = torchrun(str(script), timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert [(tmp_path / f"rank{rank}").read_text() for rank in (0, 1)] == ["False", "False"]
