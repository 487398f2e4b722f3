"""Choosing settings on dev: the test score must never move the choice."""

import pytest

from sparsetune.experiments.results import RunResult
from sparsetune.experiments.selection import choices_markdown, choose_on_dev, split_variant


def _run(method, task, seed, dev, test):
    return RunResult(f"{method}/{task}/{seed}", method, task, seed, 0.005, {"score": test}, dev={"score": dev})


def _sweep():
    return [
        # SAM: lr=0.001 is better on dev on average (0.70, 0.60 vs 0.60, 0.62) but worse on test.
        _run("SAM@lr=0.0001", "cb", 1, 0.60, 0.90),
        _run("SAM@lr=0.0001", "cb", 2, 0.60, 0.90),
        _run("SAM@lr=0.0001", "copa", 1, 0.62, 0.90),
        _run("SAM@lr=0.001", "cb", 1, 0.80, 0.10),
        _run("SAM@lr=0.001", "cb", 2, 0.60, 0.10),
        _run("SAM@lr=0.001", "copa", 1, 0.60, 0.10),
        _run("LoRA@lr=0.0001", "cb", 1, 0.50, 0.5),
        _run("LoRA@lr=0.001", "cb", 1, 0.50, 0.5),
        _run("Plain", "cb", 1, 0.99, 0.99),
    ]


def test_split_variant():
    assert split_variant("SAM@lr=0.001") == ("SAM", "lr=0.001")
    assert split_variant("SAM") is None
    assert split_variant("@lr=1") is None


def test_choice_follows_mean_dev_score_not_test():
    settings = {(s.method, s.setting): s for s in choose_on_dev(_sweep())}
    assert set(settings) == {("SAM", "lr=0.0001"), ("SAM", "lr=0.001"), ("LoRA", "lr=0.0001"), ("LoRA", "lr=0.001")}
    high = settings[("SAM", "lr=0.001")]
    assert high.dev == pytest.approx({"cb": 70.0, "copa": 60.0})
    assert high.mean == pytest.approx(65.0)
    assert settings[("SAM", "lr=0.0001")].mean == pytest.approx(61.0)
    assert high.chosen and not settings[("SAM", "lr=0.0001")].chosen
    # a tie goes to the smallest value, whatever the order of the results
    assert settings[("LoRA", "lr=0.0001")].chosen and not settings[("LoRA", "lr=0.001")].chosen
    reordered = {(s.method, s.setting): s for s in choose_on_dev(list(reversed(_sweep())))}
    assert reordered[("LoRA", "lr=0.0001")].chosen and not reordered[("LoRA", "lr=0.001")].chosen


def test_settings_in_numeric_order():
    runs = [_run("SAM@lr=0.0001", "cb", 1, 0.5, 0.5), _run("SAM@lr=3e-05", "cb", 1, 0.5, 0.5)]
    assert [s.setting for s in choose_on_dev(runs)] == ["lr=3e-05", "lr=0.0001"]
    assert choose_on_dev(runs)[0].chosen


def test_a_setting_missing_a_task_is_not_compared():
    runs = _sweep() + [_run("SAM@lr=0.01", "cb", 1, 0.99, 0.5)]
    settings = {(s.method, s.setting): s for s in choose_on_dev(runs)}
    assert not settings[("SAM", "lr=0.01")].chosen
    assert settings[("SAM", "lr=0.001")].chosen
    assert "| SAM | lr=0.01 | 99.0 | – | – |  |" in choices_markdown(list(settings.values()))


def test_markdown_marks_the_choice():
    markdown = choices_markdown(choose_on_dev(_sweep()))
    assert "| SAM | lr=0.001 | 70.0 | 60.0 | 65.0 | **yes** |" in markdown


def test_report_of_a_sweep_has_the_dev_section(tmp_path, no_data):
    from sparsetune.experiments.publish import write_report
    from sparsetune.experiments.results import append_result

    path = tmp_path / "results.jsonl"
    for result in _sweep():
        append_result(path, result)
    report = write_report(path, tmp_path / "report", data_dir=no_data)
    assert {item.method: item.setting for item in report.choices if item.chosen} == {
        "SAM": "lr=0.001",
        "LoRA": "lr=0.0001",
    }
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Hyperparameters chosen on dev" in text and "| SAM | lr=0.001 | 70.0 | 60.0 | 65.0 | **yes** |" in text


def test_one_name_run_at_several_p_is_a_setting_per_p():
    """cola_gap.toml runs `SAM@lr=0.001,epochs=6` at p = 0.005 and 0.02: the dev table
    averaged the two into one row (16.3) that no run had."""
    runs = [
        RunResult("a", "SAM@lr=0.001", "cola", 1, 0.005, {"score": 0.2}, dev={"score": 0.160}),
        RunResult("b", "SAM@lr=0.001", "cola", 1, 0.02, {"score": 0.2}, dev={"score": 0.167}),
        RunResult("c", "SAM@lr=0.003", "cola", 1, 0.005, {"score": 0.2}, dev={"score": 0.045}),
    ]
    settings = {(s.method, s.setting): round(s.mean, 6) for s in choose_on_dev(runs)}
    assert settings == {("SAM", "lr=0.001,p=0.005"): 16.0, ("SAM", "lr=0.001,p=0.02"): 16.7, ("SAM", "lr=0.003"): 4.5}
