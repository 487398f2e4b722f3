"""The paper's claims, each with a verdict computed from the measured table.

Fu et al. claim: SAM is best on average (Table 1); the sparse methods (every method but
full fine-tuning) are more stable than full fine-tuning, Random included; stability
correlates with performance (Figure 2); performance over p is an inverted U (Figure 3).
A verdict is one of

- "holds": the measured difference points the claim's way and is larger than the noise
  of this many seeds (a one-sided test at 5%);
- "does not hold": it points the other way, beyond the noise;
- "cannot tell": within the noise of this many seeds (or not measured).

The tests, and why these: a mean over seeds has standard error std/√n, and the Avg
column's is √Σse²/T, so "A beats B on average" is a t-test on the difference of the two
averages, with Welch-Satterthwaite's degrees of freedom (each std has only n-1: with 3
seeds a normal reference would overstate significance); "best" must beat every other
complete method, and a cell of one seed, whose spread is unknown rather than 0, leaves
it untested. A std is far noisier (from 3 seeds, the 95% range of s/σ is 0.16-1.92), so
"A is more stable than B" is an F-test on the variances pooled over tasks, with
T·(n-1) degrees of freedom on each side; pooling raw variances lets the task with the
widest spread (cola's collapsed seeds) weigh most. "Stability correlates with
performance" is Spearman's ρ with a within-task permutation p (`report`). Every test is
one-sided; none knows about multiple comparisons (five claims at 5% each: with Holm's
correction the smallest p would need 0.01); the numbers are printed beside every
verdict so that a reader can judge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from .report import AVERAGE, Stability, SweepPoint, TableOne

HOLDS, FAILS, UNSURE = "holds", "does not hold", "cannot tell"
ALPHA = 0.05
FULL_NAMES = ("fulltuning", "full")


@dataclass(frozen=True)
class Claim:
    claim: str
    verdict: str
    evidence: str  # the numbers behind the verdict, in words


def _find(table: TableOne, *names: str) -> str | None:
    for method in table.methods:
        if method.lower() in names:
            return method
    return None


def welch(spreads: list[tuple[float, int]], others: list[tuple[float, int]]) -> tuple[float, float] | None:
    """(standard error, degrees of freedom) of the difference of two means over tasks, each
    side given as (std over seeds, seeds) per task: √(Σ_t std_t²/n_t)/T per side, and
    Welch-Satterthwaite's d.o.f. None when a cell has one seed (its spread is unknown) or
    nothing varies: no test."""
    parts = [std**2 / n / len(side) ** 2 for side in (spreads, others) for std, n in side]
    seeds = [n for side in (spreads, others) for _, n in side]
    if min(seeds) < 2 or sum(parts) == 0:
        return None
    dof = sum(parts) ** 2 / sum(part**2 / (n - 1) for part, n in zip(parts, seeds))
    return math.sqrt(sum(parts)), dof


def _spreads(table: TableOne, method: str) -> list[tuple[float, int]]:
    return [(table.cells[(method, task)].std, table.cells[(method, task)].seeds) for task in table.tasks]


def _pooled_variance(table: TableOne, method: str) -> tuple[float, int]:
    """(variance pooled over tasks, its degrees of freedom)."""
    cells = [table.cells[(method, task)] for task in table.tasks]
    dof = sum(cell.seeds - 1 for cell in cells)
    return (sum(cell.std**2 * (cell.seeds - 1) for cell in cells) / dof if dof else math.nan), dof


def _complete(table: TableOne, method: str | None) -> bool:
    return method is not None and (method, AVERAGE) in table.cells


def best_on_average(table: TableOne, method: str = "sam") -> Claim:
    """Beats every other complete method on Avg (each by a one-sided t-test); does not hold
    when some method beats it beyond the noise."""
    claim = f"{method.upper() if method == 'sam' else method} is best on average"
    name = _find(table, method)
    others = [m for m in table.methods if m != name and _complete(table, m)]
    if not _complete(table, name) or not others:
        return Claim(claim, UNSURE, "not measured on every task beside another method")
    mine = table.cells[(name, AVERAGE)]
    tests = {}  # rival -> (gap, se, dof, p that name is better, p that it is worse)
    for rival in others:
        test = welch(_spreads(table, name), _spreads(table, rival))
        if test is None:
            return Claim(claim, UNSURE, f"{name} or {rival} has a task with one seed: its spread is unknown")
        gap, (se, dof) = mine.mean - table.cells[(rival, AVERAGE)].mean, test
        tests[rival] = (gap, se, dof, stats.t.sf(gap / se, dof), stats.t.sf(-gap / se, dof))
    beaten_by = min(others, key=lambda m: tests[m][4])
    if tests[beaten_by][4] < ALPHA:
        return Claim(claim, FAILS, _gap_evidence(table, name, beaten_by, tests[beaten_by], worse=True))
    closest = max(others, key=lambda m: tests[m][3])  # the rival it beats least clearly
    verdict = HOLDS if tests[closest][3] < ALPHA else UNSURE
    return Claim(claim, verdict, _gap_evidence(table, name, closest, tests[closest], worse=False))


def _gap_evidence(table: TableOne, name: str, rival: str, test: tuple, worse: bool) -> str:
    gap, se, dof, p_better, p_worse = test
    mine, theirs = table.cells[(name, AVERAGE)], table.cells[(rival, AVERAGE)]
    which = "a better one" if worse else "the closest other"
    return (
        f"{name} {mine.mean:.2f} (rank {mine.rank:g}) vs {which}, {rival}, {theirs.mean:.2f}: "
        f"gap {gap:+.2f} ± {se:.2f} (standard error), one-sided p = {p_worse if worse else p_better:.3g} "
        f"(Welch t, {dof:.1f} d.o.f.)"
    )


def more_stable(table: TableOne, stable: list[str], than: str, claim: str) -> Claim:
    """`stable` (pooled together) have a smaller variance over seeds than `than`."""
    stable = [m for m in stable if _complete(table, m)]
    if not stable or not _complete(table, than):
        return Claim(claim, UNSURE, "not measured on every task")
    pooled = [_pooled_variance(table, m) for m in stable]
    dof_a = sum(dof for _, dof in pooled)
    var_b, dof_b = _pooled_variance(table, than)
    if dof_a == 0 or dof_b == 0:
        return Claim(claim, UNSURE, "one seed: no spread to compare")
    var_a = sum(var * dof for var, dof in pooled) / dof_a
    who = stable[0] if len(stable) == 1 else f"{', '.join(stable)} (every other method run on all tasks)"
    evidence = (
        f"pooled std over seeds: {who} {math.sqrt(var_a):.2f} ({dof_a} d.o.f.) vs {than} "
        f"{math.sqrt(var_b):.2f} ({dof_b} d.o.f.)"
    )
    if var_a == var_b:
        return Claim(claim, UNSURE, evidence)
    if var_a == 0 or var_b == 0:
        return Claim(claim, UNSURE, evidence + "; a zero spread cannot be tested")
    ratio = var_b / var_a
    p_holds = stats.f.sf(ratio, dof_b, dof_a)  # P(a ratio this large if the variances were equal)
    p_fails = stats.f.cdf(ratio, dof_b, dof_a)
    if p_holds < ALPHA:
        return Claim(claim, HOLDS, evidence + f"; F-test p = {p_holds:.3g}")
    if p_fails < ALPHA:
        return Claim(claim, FAILS, evidence + f"; F-test p = {p_fails:.3g}")
    return Claim(claim, UNSURE, evidence + f"; F-test p = {min(p_holds, p_fails):.3g}")


def stability_correlates(stability: Stability) -> Claim:
    claim = "stability correlates with performance (Spearman ρ > 0)"
    if math.isnan(stability.rho):
        return Claim(claim, UNSURE, "ρ is undefined (one seed, or constant ranks)")
    methods = len({point[0] for point in stability.points})
    tasks = len({point[1] for point in stability.points})
    evidence = (
        f"ρ = {stability.rho:.3f} over {len(stability.points)} (method, task) pairs ({methods} methods run on "
        f"every task × {tasks} tasks), one-sided permutation p = "
    )
    if stability.p_value < ALPHA:
        return Claim(claim, HOLDS, evidence + f"{stability.p_value:.3g}")
    if stability.p_below < ALPHA:
        return Claim(claim, FAILS, evidence + f"{stability.p_below:.3g} (negative)")
    return Claim(claim, UNSURE, evidence + f"{min(stability.p_value, stability.p_below):.3g}")


def inverted_u(sweep: list[SweepPoint]) -> Claim:
    """The best mean is at an inner p, beyond the noise from both ends of the sweep."""
    claim = "performance over p is an inverted U (an inner p beats both ends)"
    if len(sweep) < 3:
        return Claim(claim, UNSURE, f"{len(sweep)} p value{'s' if len(sweep) != 1 else ''}: need 3 or more")

    if any(seeds < 2 for point in sweep for *_, seeds in point.per_task):
        return Claim(claim, UNSURE, "a p with one seed on a task: its spread is unknown")
    best = max(range(len(sweep)), key=lambda index: sweep[index].mean)
    means = ", ".join(f"{point.p:g}: {point.mean:.1f}" for point in sweep)
    ends = (sweep[0], sweep[-1])

    def p_above(point: SweepPoint, end: SweepPoint) -> float:
        test = welch([(std, n) for *_, std, n in point.per_task], [(std, n) for *_, std, n in end.per_task])
        if test is None:  # no spread anywhere: nothing to test against
            return 1.0
        se, dof = test
        return float(stats.t.sf((point.mean - end.mean) / se, dof))

    if 0 < best < len(sweep) - 1:
        p_values = [p_above(sweep[best], end) for end in ends]
        evidence = (
            f"mean score by p: {means}; best at p = {sweep[best].p:g}, "
            f"one-sided p vs the ends {p_values[0]:.3g}, {p_values[1]:.3g}"
        )
        return Claim(claim, HOLDS if max(p_values) < ALPHA else UNSURE, evidence)
    end = ends[0] if best == 0 else ends[1]
    inner = [p_above(end, point) for point in sweep[1:-1]]
    evidence = (
        f"mean score by p: {means}; best at the end p = {end.p:g}, "
        f"one-sided p vs each inner p {', '.join(f'{v:.3g}' for v in inner)}"
    )
    return Claim(claim, FAILS if max(inner) < ALPHA else UNSURE, evidence)


def paper_claims(table: TableOne, stability: Stability, sweep: list[SweepPoint]) -> list[Claim]:
    """Every claim of the paper this table can speak to, in the paper's order."""
    full = _find(table, *FULL_NAMES)
    claims = [best_on_average(table, "sam")]
    if full is not None:
        sparse = [m for m in table.methods if m != full]
        claims.append(
            more_stable(
                table,
                sparse,
                full,
                "the sparse methods (all but full fine-tuning) are more stable than full fine-tuning",
            )
        )
        random = _find(table, "random")
        if random is not None:
            claims.append(more_stable(table, [random], full, "Random is more stable than full fine-tuning"))
    claims.append(stability_correlates(stability))
    claims.append(inverted_u(sweep))
    return claims


def claims_markdown(claims: list[Claim]) -> str:
    lines = ["| claim | verdict | measured |", "|---|---|---|"]
    lines += [f"| {c.claim} | **{c.verdict}** | {c.evidence} |" for c in claims]
    return "\n".join(lines) + "\n"
