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
column's is √Σse²/T, so "A beats B on average" is a z-test on the difference of the two
averages. A std is far noisier (3 seeds give one within a factor of ~2.5 of the truth),
so "A is more stable than B" is an F-test on the variances pooled over tasks, with
T·(n-1) degrees of freedom on each side. Neither test knows about multiple comparisons;
the numbers are printed beside every verdict so that a reader can judge.
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


def _average_se(table: TableOne, method: str) -> float:
    """Standard error of a method's Avg column: √(Σ_t (std_t² / n_t)) / T."""
    cells = [table.cells[(method, task)] for task in table.tasks]
    return math.sqrt(sum(cell.std**2 / cell.seeds for cell in cells)) / len(cells)


def _pooled_variance(table: TableOne, method: str) -> tuple[float, int]:
    """(variance pooled over tasks, its degrees of freedom)."""
    cells = [table.cells[(method, task)] for task in table.tasks]
    dof = sum(cell.seeds - 1 for cell in cells)
    return (sum(cell.std**2 * (cell.seeds - 1) for cell in cells) / dof if dof else math.nan), dof


def _complete(table: TableOne, method: str | None) -> bool:
    return method is not None and (method, AVERAGE) in table.cells


def best_on_average(table: TableOne, method: str = "sam") -> Claim:
    claim = f"{method.upper() if method == 'sam' else method} is best on average"
    name = _find(table, method)
    others = [m for m in table.methods if m != name and _complete(table, m)]
    if not _complete(table, name) or not others:
        return Claim(claim, UNSURE, "not measured on every task beside another method")
    mine = table.cells[(name, AVERAGE)]
    rival = max(others, key=lambda m: table.cells[(m, AVERAGE)].mean)
    theirs = table.cells[(rival, AVERAGE)]
    se = math.hypot(_average_se(table, name), _average_se(table, rival))
    gap = mine.mean - theirs.mean
    p_better = stats.norm.sf(gap / se) if se > 0 else (0.0 if gap > 0 else 1.0)  # P(a gap this large if equal)
    p_worse = stats.norm.sf(-gap / se) if se > 0 else (0.0 if gap < 0 else 1.0)
    rank = table.cells[(name, AVERAGE)].rank
    evidence = (
        f"{name} {mine.mean:.1f} (rank {rank:g}) vs the best other, {rival}, {theirs.mean:.1f}: "
        f"gap {gap:+.1f} ± {se:.1f} (standard error)"
    )
    if gap > 0 and p_better < ALPHA:
        return Claim(claim, HOLDS, evidence + f", one-sided p = {p_better:.3g}")
    if gap < 0 and p_worse < ALPHA:
        return Claim(claim, FAILS, evidence + f", one-sided p = {p_worse:.3g}")
    return Claim(claim, UNSURE, evidence + f", one-sided p = {min(p_better, p_worse):.3g}")


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
    who = stable[0] if len(stable) == 1 else f"{len(stable)} sparse methods"
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
    evidence = (
        f"ρ = {stability.rho:.3f} over {len(stability.points)} (method, task) pairs, "
        f"two-sided p = {stability.p_value:.3g}"
    )
    if stability.p_value < ALPHA:
        return Claim(claim, HOLDS if stability.rho > 0 else FAILS, evidence)
    return Claim(claim, UNSURE, evidence)


def inverted_u(sweep: list[SweepPoint]) -> Claim:
    """The best mean is at an inner p, beyond the noise from both ends of the sweep."""
    claim = "performance over p is an inverted U (an inner p beats both ends)"
    if len(sweep) < 3:
        return Claim(claim, UNSURE, f"{len(sweep)} p value{'s' if len(sweep) != 1 else ''}: need 3 or more")

    def se(point: SweepPoint) -> float:
        rows = point.per_task
        return math.sqrt(sum(std**2 / seeds for _, _, std, seeds in rows)) / len(rows) if rows else math.nan

    best = max(range(len(sweep)), key=lambda index: sweep[index].mean)
    means = ", ".join(f"{point.p:g}: {point.mean:.1f}" for point in sweep)
    ends = (sweep[0], sweep[-1])

    def p_above(point: SweepPoint, end: SweepPoint) -> float:
        spread = math.hypot(se(point), se(end))
        return stats.norm.sf((point.mean - end.mean) / spread) if spread > 0 else float(point.mean <= end.mean)

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
