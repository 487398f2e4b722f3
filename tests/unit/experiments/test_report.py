"""Report numbers against values computed independently here (statistics, not our code)."""

import itertools
import json
import math
import statistics

import pytest
from scipy import stats

from sparsetune.experiments.report import (
    AVERAGE,
    sparsity_sweep,
    stability_vs_performance,
    sweep_block,
    sweep_left_out,
    table_one,
)
from sparsetune.experiments.results import RunResult, append_result, read_results

SCORES = {  # method -> task -> scores over seeds (test score, 0..1)
    "full": {"cb": [0.70, 0.60, 0.80], "rte": [0.55, 0.65, 0.60]},
    "sam": {"cb": [0.80, 0.78, 0.82], "rte": [0.62, 0.64, 0.63]},
    "bitfit": {"cb": [0.50, 0.70, 0.60], "rte": [0.58, 0.52, 0.55]},
}


def _results(extra=()):
    out = []
    for method, tasks in SCORES.items():
        for task, scores in tasks.items():
            for seed, score in enumerate(scores):
                p = None if method == "full" else 0.005
                out.append(RunResult(f"{method}-{task}-{seed}", method, task, seed, p, {"score": score}))
    return out + list(extra)


def test_table_means_stds_and_ranks():
    table = table_one(_results(), p=0.005)
    assert table.tasks == ["rte", "cb"]
    for method, tasks in SCORES.items():
        for task, scores in tasks.items():
            cell = table.cells[(method, task)]
            assert cell.mean == pytest.approx(100 * statistics.mean(scores))
            assert cell.std == pytest.approx(100 * statistics.stdev(scores))
            assert cell.seeds == 3
    # cb means: full 70, sam 80, bitfit 60 -> ranks 2, 1, 3
    assert [table.cells[(m, "cb")].rank for m in ("full", "sam", "bitfit")] == [2, 1, 3]
    average = {m: statistics.mean(100 * statistics.mean(s) for s in SCORES[m].values()) for m in SCORES}
    assert table.cells[("sam", AVERAGE)].mean == pytest.approx(average["sam"])
    assert table.cells[("sam", AVERAGE)].rank == 1
    markdown = table.to_markdown()
    assert "| sam | 63.0 ± 1.0 (1) | 80.0 ± 2.0 (1) |" in markdown


def test_other_p_values_stay_out_of_table_one():
    sweep_run = RunResult("sam-cb-x", "sam", "cb", 9, 0.1, {"score": 0.0})
    table = table_one(_results([sweep_run]), p=0.005)
    assert table.cells[("sam", "cb")].seeds == 3


def test_spearman_of_stability_and_performance_ranks():
    table = table_one(_results(), p=0.005)
    result = stability_vs_performance(table)
    stability, performance = [], []
    for task in ("rte", "cb"):
        methods = list(SCORES)
        # the report's convention: spreads equal to 1e-6 (of the ×100 score) tie
        stds = [round(100 * statistics.stdev(SCORES[m][task]), 6) for m in methods]
        means = [statistics.mean(SCORES[m][task]) for m in methods]
        stability += list(stats.rankdata(stds))
        performance += list(stats.rankdata([-m for m in means]))
    expected = stats.spearmanr(stability, performance).statistic
    assert result.rho == pytest.approx(expected)
    # The p-value: every way to reorder each task's performance ranks (3! × 3! = 36), by brute force.
    null = [
        stats.spearmanr(stability, list(first) + list(second)).statistic
        for first in itertools.permutations(performance[:3])
        for second in itertools.permutations(performance[3:])
    ]
    assert result.p_value == pytest.approx(sum(rho >= expected - 1e-12 for rho in null) / 36)
    assert result.p_below == pytest.approx(sum(rho <= expected + 1e-12 for rho in null) / 36)
    assert len(result.points) == 6


def test_rho_ranks_only_the_methods_run_on_every_task():
    """A task with more methods ranks higher on both axes: pooled with a task of fewer,
    that alone made ρ positive. A method missing a task stays out of ρ."""
    partial = [RunResult(f"lora-cb-{seed}", "lora", "cb", seed, None, {"score": 0.1 * seed}) for seed in range(3)]
    result = stability_vs_performance(table_one(_results(partial), p=0.005))
    assert {method for method, *_ in result.points} == set(SCORES)
    assert result.rho == pytest.approx(stability_vs_performance(table_one(_results(), p=0.005)).rho)


def test_the_permutation_p_is_seeded_and_sound_when_there_are_too_many_to_enumerate():
    """7 methods on 2 tasks: 7!² permutations, so the p-value is drawn (seeded: it
    repeats), and agrees with the normal approximation that holds at this many pairs."""
    import random

    rng = random.Random(3)
    results = [
        RunResult(f"m{m}-{task}-{seed}", f"m{m}", task, seed, None, {"score": rng.random()})
        for m in range(7)
        for task in ("cb", "rte")
        for seed in range(3)
    ]
    first = stability_vs_performance(table_one(results, p=None))
    again = stability_vs_performance(table_one(results, p=None))
    assert (first.p_value, first.p_below) == (again.p_value, again.p_below)
    assert 1 <= first.p_value + first.p_below <= 1.05  # two tails; they share the mass at ρ itself
    assert first.p_value == pytest.approx(stats.norm.sf(first.rho * math.sqrt(13)), abs=0.05)  # the large-n limit


def test_sparsity_sweep_averages_tasks_per_p():
    results = [
        RunResult("a", "sam", "cb", 0, 0.01, {"score": 0.5}),
        RunResult("b", "sam", "cb", 1, 0.01, {"score": 0.7}),
        RunResult("c", "sam", "rte", 0, 0.01, {"score": 0.6}),
        RunResult("d", "sam", "cb", 0, 0.001, {"score": 0.4}),
        RunResult("d2", "sam", "rte", 0, 0.001, {"score": 0.6}),
        RunResult("e", "full", "cb", 0, None, {"score": 0.9}),
    ]
    points = sparsity_sweep(results)
    assert [point.p for point in points] == [0.001, 0.01]
    assert points[1].mean == pytest.approx((60 + 60) / 2)
    assert points[1].std == pytest.approx((100 * statistics.stdev([0.5, 0.7]) + 0) / 2)
    assert math.isclose(points[0].mean, 50)
    # Figure 3's error bars and markers come from the per-task rows: (task, mean, std, seeds).
    (cb, cb_mean, cb_std, cb_seeds), (rte, rte_mean, rte_std, rte_seeds) = points[1].per_task
    assert (cb, cb_seeds, rte, rte_seeds) == ("cb", 2, "rte", 1)
    assert (cb_mean, cb_std, rte_mean, rte_std) == pytest.approx((60.0, 100 * statistics.stdev([0.5, 0.7]), 60.0, 0.0))


def test_the_sweep_is_over_the_tasks_run_at_every_p():
    """Table 1's p runs on every task, the sweep on two: the other tasks would make the
    point at Table 1's p a mean over other tasks than its neighbours'."""
    results = [RunResult(f"{t}{p}", "sam", t, 0, p, {"score": 0.5}) for t in ("cb", "rte") for p in (0.001, 0.01)]
    results.append(RunResult("wsc", "sam", "wsc", 0, 0.01, {"score": 0.9}))
    points = sparsity_sweep(results)
    assert [(point.p, point.mean, point.tasks) for point in points] == [(0.001, 50.0, 2), (0.01, 50.0, 2)]
    disjoint = [
        RunResult("a", "sam", "cb", 0, 0.1, {"score": 0.5}),
        RunResult("b", "sam", "rte", 0, 0.2, {"score": 0.5}),
    ]
    assert sparsity_sweep(disjoint) == []


def test_a_sweep_under_way_leaves_out_a_p_that_misses_one_of_its_tasks():
    """Table 1's p on every task, the sweep on cola and mrpc, p = 0.05 so far on cola
    only: the sweep stays over cola and mrpc at the four complete p values and names the
    fifth as left out (it averaged every point over cola alone); a task run at only two p
    values drops out instead of taking most p values with it."""
    tasks_at = {0.0005: {"cola", "mrpc"}, 0.001: {"cola", "mrpc"}, 0.005: {"cola", "mrpc", "cb", "rte"}}
    tasks_at |= {0.02: {"cola", "mrpc"}, 0.05: {"cola"}}
    assert sweep_block(tasks_at) == ({"cola", "mrpc"}, [0.0005, 0.001, 0.005, 0.02])
    assert sweep_block({**tasks_at, 0.05: {"cola", "rte"}}) == ({"cola", "mrpc"}, [0.0005, 0.001, 0.005, 0.02])
    assert sweep_block({0.01: {"cb", "rte"}}) == ({"cb", "rte"}, [0.01])
    assert sweep_block({}) == (set(), [])

    results = [
        RunResult(f"{t}{p}", "sam", t, 0, p, {"score": 0.5}) for p, tasks in tasks_at.items() for t in sorted(tasks)
    ]
    assert [(point.p, point.tasks) for point in sparsity_sweep(results)] == [
        (0.0005, 2),
        (0.001, 2),
        (0.005, 2),
        (0.02, 2),
    ]
    assert sweep_left_out(results) == [(0.05, ["cola"])]


def test_time_spent_sums_minutes_per_method_and_task(tmp_path, no_data):
    from dataclasses import replace

    from sparsetune.experiments.publish import write_report
    from sparsetune.experiments.report import time_spent

    timed = [replace(r, seconds=60.0 * (1 + r.seed) if r.task == "cb" else 30.0) for r in _results()]
    untimed = RunResult("sam-cb-9", "sam", "cb", 9, 0.005, {"score": 0.5})  # a line from before `seconds`
    spent = time_spent(timed + [untimed])
    assert spent.minutes[("full", "cb")] == (3, 1.0 + 2.0 + 3.0) and spent.minutes[("sam", "rte")] == (3, 1.5)
    assert spent.untimed == 1
    markdown = spent.to_markdown()
    assert "| full | 2 (3 × 0.5) | 6 (3 × 2.0) | 8 (6 × 1.2) |" in markdown  # rte, cb, the row's total
    assert markdown.splitlines()[-1] == "| total | 4 (9 × 0.5) | 18 (9 × 2.0) | 22 (18 × 1.2) |"
    path = tmp_path / "results.jsonl"
    for result in timed + [untimed]:
        append_result(path, result)
    text = write_report(path, tmp_path / "report", data_dir=no_data).markdown
    assert "## Time spent" in text and markdown in text and "1 line(s) without a time" in text


def test_figure_helpers_read_dev_evaluations_and_name_what_happened(tmp_path):
    from sparsetune.experiments.figures import loss_title, read_dev_log, read_loss_log, running_mean

    log = tmp_path / "log.jsonl"
    lines = [
        {"step": 1, "loss": 0.7},
        {"step": 2, "loss": 0.5, "mask_changed": True},
        {"step": 2, "dev": {"score": 0.61}},
        {"step": 3, "loss": 0.3},
        {"step": 3, "dev": {"score": 0.65, "accuracy": 0.7}},
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert read_loss_log(log) == ([1, 2, 3], [0.7, 0.5, 0.3], [2])
    assert read_dev_log(log) == ([2, 3], [pytest.approx(61.0), pytest.approx(65.0)])
    assert running_mean([1.0, 2.0, 3.0, 5.0], 2) == [1.5, 2.5, 4.0]
    assert loss_title(0) == "training loss (no mask change)"  # not "across mask changes" for a run with none
    assert loss_title(1) == "loss across 1 mask change" and loss_title(3) == "loss across 3 mask changes"


def test_results_file_round_trip_and_torn_last_line(tmp_path):
    path = tmp_path / "results.jsonl"
    for result in _results()[:2]:
        append_result(path, result)
    with open(path, "a") as handle:
        handle.write('{"run_id": "half')
    assert [r.run_id for r in read_results(path)] == ["full-cb-0", "full-cb-1"]


def test_write_report_makes_every_figure(tmp_path, no_data):
    from sparsetune.experiments.publish import write_report
    from sparsetune.formats.run_record import RunRecord

    run_dir = tmp_path / "runs" / "dp"
    RunRecord(base_model="m", task="cb", method="diffpruning").save(run_dir)
    lines = [{"step": s, "loss": 1.0 / s, "mask_changed": int(s % 3 == 0)} for s in range(1, 10)]
    (run_dir / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    sweep = [RunResult(f"sam-{p}", "sam", "cb", 0, p, {"score": 0.5 + p}) for p in (0.001, 0.01, 0.1)]
    projection = RunResult("dp-cb", "DiffPruning", "cb", 0, 0.005, {"score": 0.6}, run_dir=str(run_dir))
    path = tmp_path / "results.jsonl"
    for result in _results(sweep + [projection]):
        append_result(path, result)

    report = write_report(path, tmp_path / "report", p=0.005, sweep_method="sam", data_dir=no_data)
    names = sorted(file.name for file in report.files)
    assert names == ["figure1_projection.png", "figure2_stability.png", "figure3_sparsity.png", "report.md"]
    for file in report.files:
        assert file.stat().st_size > 1000 or file.suffix == ".md"
        if file.suffix == ".png":
            assert file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "report" / "report.md").read_text()
    assert f"ρ = {report.stability.rho:.4f}" in text and "| 0.1 |" in text


def test_figure1_uses_the_projection_run_with_most_mask_changes(tmp_path):
    from sparsetune.experiments.publish import projection_log
    from sparsetune.formats.run_record import RunRecord

    results = []
    for seed, every in ((1, 0), (2, 3), (3, 4)):  # seed 1 never changes its mask while training
        run_dir = tmp_path / "runs" / f"dp{seed}"
        RunRecord(base_model="m", task="cb", method="diffpruning").save(run_dir)
        lines = [{"step": s, "loss": 1.0, "mask_changed": int(every > 0 and s % every == 0)} for s in range(1, 13)]
        (run_dir / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        results.append(RunResult(f"dp{seed}", "DiffPruning", "cb", seed, 0.005, {"score": 0.5}, run_dir=str(run_dir)))
    title, log = projection_log(results)
    assert log == tmp_path / "runs" / "dp2" / "log.jsonl" and title == "DiffPruning (cb, seed 2)"


def test_majority_floor_is_the_constant_prediction_score(tiny_data_dir):
    """Computed by hand from the files: the train part's most frequent label, scored on the test set."""
    from sparsetune.data import load_task_data
    from sparsetune.experiments.floors import constant_floors, majority_floor
    from sparsetune.tasks import get_task

    assert majority_floor("stsb", tiny_data_dir) == 0.0  # a constant has no correlation
    data = load_task_data(get_task("rte"), tiny_data_dir)
    train = [row["label"] for row in data.train]
    majority = max(sorted(set(train)), key=train.count)
    test = [row["label"] for row in data.test]
    assert majority_floor("rte", tiny_data_dir) == pytest.approx(100 * test.count(majority) / len(test))
    assert majority_floor("cb", tiny_data_dir / "nowhere") is None  # no data: no floor row, no error
    best = max(100 * test.count(label) / len(test) for label in set(train))  # the better constant, on test
    assert constant_floors("rte", tiny_data_dir) == pytest.approx((majority_floor("rte", tiny_data_dir), best))
    assert majority_floor("tasks/mine.json", tiny_data_dir) is None  # a custom task not found from here: the same


def test_table_one_shows_each_tasks_floor_as_its_last_row(tmp_path, tiny_data_dir):
    from sparsetune.experiments.floors import majority_floor
    from sparsetune.experiments.publish import write_report

    path = tmp_path / "results.jsonl"
    for result in _results():
        append_result(path, result)
    report = write_report(path, tmp_path / "report", p=0.005, data_dir=tiny_data_dir)
    floors = {task: majority_floor(task, tiny_data_dir) for task in ("cb", "rte")}
    row = [line for line in report.markdown.splitlines() if line.startswith("| majority class (floor) |")]
    assert report.table.tasks == ["rte", "cb"]  # the paper's column order
    assert row == [
        f"| majority class (floor) | {floors['rte']:.1f} | {floors['cb']:.1f} | "
        f"{statistics.fmean(floors.values()):.1f} |"
    ]
    (tmp_path / "no-data").mkdir()  # a data dir without these tasks: no floor row (a missing one is an error)
    without = write_report(path, tmp_path / "bare", p=0.005, data_dir=tmp_path / "no-data")
    assert "majority class" not in without.markdown


def test_no_stability_figure_when_rho_is_undefined(tmp_path, no_data):
    """One seed per cell: every std is 0, the stability ranks tie, ρ is undefined."""
    from sparsetune.experiments.publish import write_report

    path = tmp_path / "results.jsonl"
    for result in _results():
        if result.seed == 0:
            append_result(path, result)
    # A task with more methods than the others: tied ranks differ between tasks (2 on cb,
    # 1.5 on rte), which pooled would fake a stability rank; a task of equal spreads is skipped.
    append_result(path, RunResult("x", "extra", "cb", 0, 0.005, {"score": 0.1}))
    report = write_report(path, tmp_path / "report", p=0.005, data_dir=no_data)
    assert report.stability.points == []
    assert math.isnan(report.stability.rho) and not (tmp_path / "report" / "figure2_stability.png").exists()
