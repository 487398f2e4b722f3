"""The paper's claims get their verdicts from the measured numbers: each verdict reachable,
and the noise of the seeds decides between a verdict and "cannot tell"."""

from __future__ import annotations

import math

import pytest

from sparsetune.experiments.claims import FAILS, HOLDS, UNSURE, paper_claims
from sparsetune.experiments.report import sparsity_sweep, stability_vs_performance, table_one
from sparsetune.experiments.results import RunResult


def grid(
    scores: dict[str, dict[str, list[float]]], sweep: dict[float, dict[str, list[float]]] | None = None
) -> list[RunResult]:
    """Results as a tiny grid would write them: method -> task -> one score per seed."""
    out = []
    for method, tasks in scores.items():
        for task, values in tasks.items():
            for seed, score in enumerate(values, start=1):
                p = None if method == "FullTuning" else 0.005
                out.append(RunResult(f"{method}/{task}/{seed}", method, task, seed, p, {"score": score}))
    for p, tasks in (sweep or {}).items():
        for task, values in tasks.items():
            for seed, score in enumerate(values, start=1):
                out.append(RunResult(f"SAM@{p}/{task}/{seed}", "SAM", task, seed, p, {"score": score}))
    return out


def verdicts(results: list[RunResult]) -> dict[str, str]:
    table = table_one(results, 0.005)
    claims = paper_claims(table, stability_vs_performance(table), sparsity_sweep(results, "SAM"))
    return {
        claim.claim.split(" ")[0] + ("-random" if claim.claim.startswith("Random") else ""): claim.verdict
        for claim in claims
    }


STABLE_SAM = {  # SAM clearly best and tight; full fine-tuning spread wide; Random tight but low
    "FullTuning": {"cb": [0.60, 0.80, 0.70, 0.50, 0.75], "rte": [0.50, 0.70, 0.62, 0.55, 0.66]},
    "SAM": {"cb": [0.90, 0.91, 0.90, 0.92, 0.91], "rte": [0.80, 0.81, 0.80, 0.82, 0.81]},
    "Random": {"cb": [0.61, 0.62, 0.61, 0.60, 0.62], "rte": [0.55, 0.56, 0.55, 0.54, 0.56]},
}


def test_every_claim_holds_when_the_numbers_say_so_beyond_the_noise():
    sweep = {
        0.0005: {"cb": [0.60, 0.61, 0.60], "rte": [0.50, 0.51, 0.50]},
        0.05: {"cb": [0.70, 0.71, 0.70], "rte": [0.60, 0.61, 0.60]},
    }
    # ρ: more stable methods rank higher here on both tasks (SAM, Random, Full), 6 pairs.
    got = verdicts(grid(STABLE_SAM, sweep))
    assert got["SAM"] == HOLDS
    assert got["the"] == HOLDS  # the sparse methods (all but full) are more stable
    assert got["Random-random"] == HOLDS
    assert got["performance"] == HOLDS  # inner p = 0.005 (0.85 mean) beats 0.0005 and 0.05


def test_claims_fail_when_the_numbers_point_the_other_way():
    flipped = {
        "FullTuning": {"cb": [0.90, 0.91, 0.90, 0.92], "rte": [0.80, 0.81, 0.80, 0.82]},
        "SAM": {"cb": [0.40, 0.80, 0.60, 0.50], "rte": [0.30, 0.70, 0.50, 0.65]},
        "Random": {"cb": [0.30, 0.70, 0.45, 0.60], "rte": [0.35, 0.75, 0.40, 0.60]},
    }
    sweep = {0.0005: {"cb": [0.20, 0.21], "rte": [0.20, 0.21]}, 0.05: {"cb": [0.95, 0.96], "rte": [0.95, 0.96]}}
    got = verdicts(grid(flipped, sweep))
    assert got["SAM"] == FAILS
    assert got["the"] == FAILS and got["Random-random"] == FAILS
    assert got["performance"] == FAILS  # monotone: the largest p is best, beyond the noise


def test_two_seeds_of_noise_cannot_tell():
    noisy = {
        "FullTuning": {"cb": [0.60, 0.70], "rte": [0.55, 0.65]},
        "SAM": {"cb": [0.62, 0.72], "rte": [0.50, 0.64]},
        "Random": {"cb": [0.58, 0.69], "rte": [0.52, 0.63]},
    }
    got = verdicts(grid(noisy))
    assert got["SAM"] == UNSURE and got["the"] == UNSURE and got["Random-random"] == UNSURE
    assert got["performance"] == UNSURE  # one p: no sweep


def test_one_seed_has_no_stability_verdict_and_rho_is_undefined():
    single = {method: {task: values[:1] for task, values in tasks.items()} for method, tasks in STABLE_SAM.items()}
    table = table_one(grid(single), 0.005)
    stability = stability_vs_performance(table)
    assert math.isnan(stability.rho)
    claims = {claim.claim: claim for claim in paper_claims(table, stability, [])}
    assert all(claim.verdict == UNSURE for claim in claims.values())
    assert "one seed" in claims["Random is more stable than full fine-tuning"].evidence


def test_the_evidence_carries_the_numbers():
    table = table_one(grid(STABLE_SAM), 0.005)
    sam = paper_claims(table, stability_vs_performance(table), [])[0]
    assert sam.claim == "SAM is best on average"
    assert "SAM 85.80 (rank 1)" in sam.evidence and "FullTuning" in sam.evidence
    assert sam.evidence.split("gap ")[1].startswith("+")
    assert float(sam.evidence.split("p = ")[-1].split(" ")[0]) == pytest.approx(0.0, abs=1e-3)


def test_on_one_task_the_average_test_is_welchs_t_test():
    """The Avg comparison over one task is Welch's two-sample t-test (scipy's, one-sided)."""
    from scipy import stats

    sam, full = [0.80, 0.84, 0.83], [0.70, 0.79, 0.76]
    table = table_one(grid({"SAM": {"cb": sam}, "FullTuning": {"cb": full}}), 0.005)
    claim = paper_claims(table, stability_vs_performance(table), [])[0]
    expected = stats.ttest_ind([100 * v for v in sam], [100 * v for v in full], equal_var=False, alternative="greater")
    assert float(claim.evidence.split("p = ")[-1].split(" ")[0]) == pytest.approx(expected.pvalue, rel=1e-3)


def test_best_must_beat_every_other_method_and_one_seed_tests_nothing():
    """The runner-up by mean is beaten clearly, but a noisy third method is not: the
    comparison with the runner-up alone said "holds"."""
    scores = {
        "SAM": {"cb": [0.800, 0.801, 0.802]},
        "FullTuning": {"cb": [0.780, 0.781, 0.782]},
        "Random": {"cb": [0.95, 0.35, 0.95]},
    }
    assert verdicts(grid(scores))["SAM"] == UNSURE
    del scores["Random"]
    assert verdicts(grid(scores))["SAM"] == HOLDS
    scores["SAM"]["cb"] = [0.802]  # one seed: its spread is unknown, not 0
    table = table_one(grid(scores), 0.005)
    claim = paper_claims(table, stability_vs_performance(table), [])[0]
    assert claim.verdict == UNSURE and "one seed" in claim.evidence


def test_report_writes_the_claims_section_for_a_table_but_not_for_a_sweep(tmp_path, no_data):
    from sparsetune.experiments.publish import write_report
    from sparsetune.experiments.results import append_result

    results = tmp_path / "results.jsonl"
    for result in grid(STABLE_SAM):
        append_result(results, result)
    markdown = write_report(results, tmp_path / "out", data_dir=no_data).markdown
    assert "## The paper's claims, measured" in markdown
    assert "| SAM is best on average | **holds** |" in markdown
    sweep = tmp_path / "sweep.jsonl"  # Method@key=value names: a sweep compares settings, so no claims
    for result in grid({f"{method}@lr=0.001": tasks for method, tasks in STABLE_SAM.items()}):
        append_result(
            sweep,
            RunResult(
                result.run_id, result.method, result.task, result.seed, result.p, result.test, dev={"score": 0.5}
            ),
        )
    swept = write_report(sweep, tmp_path / "swept", data_dir=no_data).markdown
    assert "## Hyperparameters chosen on dev" in swept and "The paper's claims" not in swept
