"""experiments/check_report.py: the published report against the runs' own run.json."""

import importlib.util
import json
import re

import pytest

from sparsetune.experiments.publish import write_report
from sparsetune.experiments.results import RunResult, append_result
from sparsetune.formats.run_record import RunRecord

from ...conftest import REPO

SCRIPT = REPO / "experiments" / "check_report.py"
SCORES = {
    ("FullTuning", "dense"): [0.70, 0.60],
    ("SAM", "p0.005"): [0.80, 0.78],
    ("SAM", "p0.1"): [0.1, 0.2],
    ("BitFit", "p0.005"): [0.50, 0.70],
}


@pytest.fixture(scope="module")
def check_report():
    spec = importlib.util.spec_from_file_location("check_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def published(tmp_path, no_data):
    results = tmp_path / "results.jsonl"
    for (label, p), scores in SCORES.items():
        for task, shift in (("cb", 0.0), ("copa", 0.05)):
            for seed, score in enumerate(scores, start=1):
                run_id = f"{label}/{task}/{p}/seed{seed}"
                run_dir = tmp_path / "runs" / run_id
                test = {"accuracy": score + shift, "score": score + shift}
                RunRecord(
                    base_model="m",
                    task=task,
                    method="x",
                    seed=seed,
                    best={"score": 0.5},
                    metrics={"dev": {"score": 0.5}, "validation": test},
                ).save(run_dir)
                p_value = None if p == "dense" else float(p[1:])
                append_result(
                    results,
                    RunResult(run_id, label, task, seed, p_value, test, dev={"score": 0.5}, run_dir=str(run_dir)),
                )
    write_report(results, tmp_path / "report", p=0.005, data_dir=no_data)
    return results, tmp_path / "report" / "report.md"


def test_a_faithful_report_passes(check_report, published, capsys):
    assert check_report.check(*published) == []
    assert "checked 16 runs, 9 Table 1 cells" in capsys.readouterr().out


def test_a_run_json_that_disagrees_is_a_mismatch(check_report, published, tmp_path):
    run_json = tmp_path / "runs" / "SAM" / "cb" / "p0.005" / "seed1" / "run.json"
    record = json.loads(run_json.read_text())
    record["metrics"]["validation"]["score"] = 0.2
    run_json.write_text(json.dumps(record))
    problems = check_report.check(*published)
    assert any("SAM/cb/p0.005/seed1: test score" in problem for problem in problems)
    assert any(problem.startswith("Table 1 SAM/cb") for problem in problems)


def test_a_report_that_disagrees_is_a_mismatch(check_report, published):
    results, report = published
    report.write_text(report.read_text().replace("| SAM | 79.0", "| SAM | 78.0"))
    problems = check_report.check(results, report)
    assert problems and problems[0].startswith("Table 1 SAM/")


def test_the_numbers_behind_the_verdicts_are_checked(check_report, published, capsys):
    """SAM's gap, standard error and d.o.f., and each pooled std and its d.o.f.: a report
    whose claims section disagrees with run.json is a mismatch, as a cell would be."""
    results, report = published
    assert check_report.check(results, report) == []
    assert "and 7 numbers behind the verdicts" in capsys.readouterr().out  # 3 for SAM, 2 + 2 pooled
    text = report.read_text()
    gap = re.search(r"gap ([+-][\d.]+) ±", text).group(1)
    report.write_text(text.replace(f"gap {gap} ±", f"gap {float(gap) + 1:+.2f} ±"))
    assert any(problem.startswith("SAM's claim: report gap") for problem in check_report.check(results, report))
    pooled = re.search(r"vs FullTuning ([\d.]+) \(", text).group(1)
    report.write_text(text.replace(f"vs FullTuning {pooled} (", f"vs FullTuning {float(pooled) + 1:.2f} ("))
    assert any(problem.startswith("pooled std of FullTuning") for problem in check_report.check(results, report))


def test_spearman_ranks_pooled_values_again(check_report):
    from scipy import stats

    stability = [1, 2, 3, 4, 1.5, 1.5, 3, 4]  # per-task ranks: they repeat across tasks
    performance = [2, 1, 4, 3, 1, 3, 2, 4]
    assert check_report.spearman(stability, performance) == pytest.approx(stats.spearmanr(stability, performance)[0])
    assert check_report.spearman([1, 1, 1], [1, 2, 3]) != check_report.spearman([1, 1, 1], [1, 2, 3])  # nan


def test_a_file_that_is_no_report_is_a_one_line_error(check_report, published, tmp_path, capsys):
    results, _ = published
    (tmp_path / "other.md").write_text("# notes\n")
    assert check_report.main([str(results), str(tmp_path / "other.md")]) == 2
    assert capsys.readouterr().err.strip().startswith("error:")


def test_sweep_rows_are_checked(check_report, published, capsys):
    results, report = published
    assert check_report.check(results, report) == []
    assert ", 2 sweep rows and " in capsys.readouterr().out
    text = report.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| 0.1 |"))
    report.write_text(text.replace(row, row.replace("| 0.1 | ", "| 0.1 | 9")))
    problems = check_report.check(results, report)
    assert problems and problems[0].startswith("sweep p=0.1: report")


def test_a_p_left_out_of_the_sweep_is_named_and_checked_by_the_same_rule(check_report, published, capsys, no_data):
    """SAM at p = 0.05 on cb only (a sweep under way): the report leaves it out and says
    so; check_report's copy of the rule agrees, so the report still checks."""
    from sparsetune.experiments.report import sweep_block

    results, report = published
    run_dir = results.parent / "runs" / "SAM/cb/p0.05/seed1"
    test = {"accuracy": 0.3, "score": 0.3}
    RunRecord(
        base_model="m",
        task="cb",
        method="x",
        seed=1,
        best={"score": 0.5},
        metrics={"dev": {"score": 0.5}, "validation": test},
    ).save(run_dir)
    append_result(
        results, RunResult("SAM/cb/p0.05/seed1", "SAM", "cb", 1, 0.05, test, dev={"score": 0.5}, run_dir=str(run_dir))
    )
    write_report(results, report.parent, p=0.005, data_dir=no_data, force=True)
    text = report.read_text()
    assert "Means over the tasks run at every p shown: cb, copa." in text
    assert "Left out, for missing one of them: p = 0.05 (run on cb)." in text and "| 0.05 |" not in text
    assert check_report.check(results, report) == []
    assert ", 2 sweep rows and " in capsys.readouterr().out
    for tasks_at in (
        {0.1: {"a", "b"}, 0.2: {"a", "b"}, 0.3: {"a"}},
        {0.1: {"a", "b", "c"}, 0.2: {"a", "b"}, 0.3: {"a", "b", "c"}, 0.4: {"a", "b"}},
        {0.1: {"a"}, 0.2: {"b"}},
        {0.1: {"a", "b"}},
    ):
        assert check_report.sweep_block(tasks_at) == sweep_block(tasks_at)


def test_a_method_missing_a_task_stays_out_of_rho_here_too(check_report, published, tmp_path, no_data, capsys):
    """The report ranks only the methods run on every task for ρ; the checker, written
    again, must agree (it pooled every cell, as the report once did)."""
    results, report = published
    for seed, score in enumerate([0.9, 0.3], start=1):  # LoRA on cb only: widest spread, best mean on cb
        run_id = f"LoRA/cb/dense/seed{seed}"
        run_dir = tmp_path / "runs" / run_id
        test = {"accuracy": score, "score": score}
        RunRecord(
            base_model="m", task="cb", method="x", seed=seed, best={"score": 0.5}, metrics={"validation": test}
        ).save(run_dir)
        append_result(
            results, RunResult(run_id, "LoRA", "cb", seed, None, test, dev={"score": 0.5}, run_dir=str(run_dir))
        )
    write_report(results, report.parent, p=0.005, data_dir=no_data, force=True)
    assert check_report.check(results, report) == []
