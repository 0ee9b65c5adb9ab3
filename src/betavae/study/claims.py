"""The β-VAE paper's claims reduced to per-seed effects, and judged by the study's rule.

Every claim is measured as *effects*: one number per training seed whose sign says whether the
claim holds in that seed, e.g. "the β-VAE's score minus the VAE's" (the runs of one seed share
their initialisation and batches, so the difference is paired) or "the slope of the held-out
reconstruction against log β_norm". :mod:`betavae.study.stats` tests them; :func:`judged` turns
a claim's parts into its verdict and the lines the report shows.

The functions here are pure: result rows in, effects and :class:`Judgement` out. Which runs feed
which claim is :mod:`betavae.study.study_report`'s business. Each effect is built so that the
claim can fail: a monotone curve gives claim 4 a negative effect, not a zero one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from betavae.study import stats
from betavae.study.stats import EXPECTED, HELD, INCONCLUSIVE, NOT_HELD, VERDICTS, Evidence

__all__ = ["EXPECTED", "HELD", "INCONCLUSIVE", "NOT_HELD", "VERDICTS"]
ABOUT_ZERO = "≈ 0"  # "about equal": within the claim's margin
NAMED_FAILURES = 3  # a "not held" names its failing parts up to this many, else points at their marks
Row = Mapping[str, Any]


@dataclass(frozen=True)
class ClaimPart:
    """One measured part of a claim (a dataset, a metric) with its own verdict and why."""

    name: str  # "shapes recon/log β_norm"
    expected: str  # the claimed relation of the effect: "> 0", "< 0", "≈ 0", "separates"
    ours: str  # the effect, its interval and p-value: "+47.462 (90 % CI …; p = 0.004; t, 3 seeds)"
    verdict: str  # one of VERDICTS
    why: str = ""  # a held part's p; an inconclusive part's reason

    def text(self) -> str:
        """``shapes recon/log β_norm > 0: +47.462 (…), held``: the part in one line, with the reason
        of a part that is not held."""
        reason = f" ({self.why})" if self.why and self.verdict != HELD else ""
        return f"{self.name} {self.expected}: {self.ours}, {self.verdict}{reason}"


@dataclass(frozen=True)
class Judgement:
    """A verdict, the effect it rests on (as text), one line on why, and the judged parts behind it."""

    verdict: str
    ours: str
    why: str
    parts: tuple[ClaimPart, ...] = ()


def judged(parts: Sequence[tuple[str, str, Evidence]]) -> Judgement:
    """A claim of named parts, each ``(name, expected relation, evidence)``, by :data:`stats.RULE`."""
    verdict, decided = stats.judge([evidence for _, _, evidence in parts])
    claim_parts = tuple(ClaimPart(name, expected, result.evidence.text(), result.verdict, result.why)
                        for (name, expected, _), result in zip(parts, decided, strict=True))
    ours = "; ".join(part.text() for part in claim_parts)
    return Judgement(verdict, ours, combination(claim_parts), claim_parts)


def combination(parts: Sequence[ClaimPart]) -> str:
    """One line on how the parts' verdicts make the claim's: which parts decided a "not held", how
    many were left undecided and why."""
    count = len(parts)
    failed = [part.name for part in parts if part.verdict == NOT_HELD]
    undecided = [part for part in parts if part.verdict == INCONCLUSIVE]
    if not parts:
        return "nothing measured"
    if count == 1:
        reason = f": {parts[0].why}" if parts[0].verdict != HELD else ""
        return f"its one part is {parts[0].verdict}{reason}"
    if failed:
        named = ", ".join(failed) if len(failed) <= NAMED_FAILURES else "the parts marked so"
        return f"not held in {len(failed)} of {count} parts (Holm-corrected): {named}"
    if undecided:
        reasons = sorted({_reason_kind(part.why) for part in undecided})
        return f"{len(undecided)} of {count} parts inconclusive ({'; '.join(reasons)}), none not held"
    return f"held in every part ({count})"


def _reason_kind(why: str) -> str:
    """The kind of a reason, without its numbers: "too few seeds", "not trained", …"""
    for kind in ("too few seeds", "not trained", "zero spread", "smaller than this study resolves"):
        if kind in why:
            return kind
    if "not clearly above chance" in why:  # study_report's reason for a β = 1 reference at chance
        return "reference at chance"
    return "p above the level"


# --- per-seed effects from result rows -----------------------------------------------------------


def by_seed(rows: Iterable[Row]) -> dict[Any, list[Row]]:
    """Rows grouped by their ``seed``."""
    groups: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row["seed"]].append(row)
    return dict(groups)


def _finite(row: Row, column: str) -> float | None:
    value = row.get(column)
    return float(value) if value is not None and math.isfinite(float(value)) else None


def mean_slope(rows: Sequence[Row], x: str, y: str, within: str, log_x: bool = True) -> float | None:
    """The least-squares slope of ``y`` against ``x`` (log10 when ``log_x``), fitted within each value
    of ``within`` and averaged; None when no group has two distinct ``x`` with a ``y``."""
    groups: dict[Any, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        value = _finite(row, y)
        if value is not None and row.get(x) is not None:
            groups[row[within]].append((math.log10(row[x]) if log_x else float(row[x]), value))
    slopes = []
    for points in groups.values():
        xs, ys = np.array(points).T
        if len(set(xs)) >= 2:
            slopes.append(float(np.polyfit(xs, ys, 1)[0]))
    return float(np.mean(slopes)) if slopes else None


def slope_per_seed(rows: Iterable[Row], x: str, y: str, within: str, log_x: bool = True) -> list[float]:
    """:func:`mean_slope` in each seed: the per-seed effects of "``y`` grows with ``x``"."""
    slopes = (mean_slope(group, x, y, within, log_x) for group in by_seed(rows).values())
    return [slope for slope in slopes if slope is not None]


def same_beta_groups(rows: Iterable[Row]) -> dict[Any, list[list[Row]]]:
    """Per seed, the groups of its runs that share a raw β (equal to one part in a million) across two
    or more latent sizes: what a comparison of latent sizes at fixed β rests on."""
    groups = {}
    for seed, group in by_seed(rows).items():
        by_beta: dict[float, list[Row]] = defaultdict(list)
        for row in group:
            if row.get("beta") is not None:
                key = next((beta for beta in by_beta if math.isclose(beta, row["beta"], rel_tol=1e-6,
                                                                     abs_tol=1e-12)), float(row["beta"]))
                by_beta[key].append(row)
        groups[seed] = [members for members in by_beta.values()
                        if len({row["latent_dim"] for row in members}) >= 2]
    return groups


def slope_at_fixed_beta(rows: Iterable[Row], y: str) -> list[float]:
    """Per seed, the slope of ``y`` against log10 latent size among runs that share a raw β, averaged
    over those β: the latent size's own effect, which a comparison at fixed β_norm confounds with β
    (β = β_norm·N/M)."""
    effects = []
    for groups in same_beta_groups(rows).values():
        slopes = [mean_slope(members, "latent_dim", y, within="seed") for members in groups]
        slopes = [slope for slope in slopes if slope is not None]
        if slopes:
            effects.append(float(np.mean(slopes)))
    return effects


def paired_differences(rows: Iterable[Row], column: str, key: str, better: Any, worse: Any) -> list[float]:
    """Per seed, ``column`` of the row whose ``key`` is ``better`` minus that of the row whose ``key`` is
    ``worse`` (seeds lacking either are left out)."""
    differences = []
    for group in by_seed(rows).values():
        values = {row[key]: _finite(row, column) for row in group}
        if values.get(better) is not None and values.get(worse) is not None:
            differences.append(values[better] - values[worse])
    return differences


def _cells(rows: Iterable[Row], column: str) -> dict[Any, dict[Any, dict[float, float]]]:
    """``column`` by seed, latent size and β_norm."""
    cells: dict[Any, dict[Any, dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        value = _finite(row, column)
        if value is not None:
            cells[row["seed"]][row["latent_dim"]][float(row["beta_norm"])] = value
    return cells


def fall_past_peak(rows: Iterable[Row], column: str) -> list[float]:
    """Per seed, the score at the best *interior* β_norm minus the score at the largest β_norm,
    averaged over latent sizes: positive when too large a β lowers the score again (claim 4).

    A curve that keeps rising to the largest β_norm gives a negative effect, so the claim can fail.
    With more than one interior β_norm the best one is chosen from the *other* seeds' mean curve
    (leave one seed out), so that picking the maximum of noisy values does not bias the effect up.
    """
    cells = _cells(rows, column)
    effects = []
    for seed, sizes in cells.items():
        drops = []
        for size, curve in sizes.items():
            betas = sorted(curve)
            interior = betas[1:-1]
            if not interior:
                continue
            others = [cells[other][size] for other in cells if other != seed and size in cells[other]]
            def others_mean(beta: float, others: list[dict[float, float]] = others) -> float:
                values = [curve_[beta] for curve_ in others if beta in curve_]
                return float(np.mean(values)) if values else -math.inf
            best = max(interior, key=others_mean) if len(interior) > 1 and others else interior[0]
            drops.append(curve[best] - curve[betas[-1]])
        if drops:
            effects.append(float(np.mean(drops)))
    return effects


def reach_gain(rows: Iterable[Row], column: str) -> list[float]:
    """Per seed, the slope against log10 latent size of (score at the upper β_norm minus score at the
    lower β_norm), the halves split at the grid's median β_norm: positive when larger latent spaces
    lose less as β_norm grows, i.e. keep their score up to larger β_norm (claim 5)."""
    cells = _cells(rows, column)
    effects = []
    for sizes in cells.values():
        points = []
        for size, curve in sizes.items():
            betas = sorted(curve)
            if len(betas) < 2:
                continue
            middle = float(np.median(betas))
            low = [curve[b] for b in betas if b < middle]
            high = [curve[b] for b in betas if b > middle]
            points.append((math.log10(size), float(np.mean(high)) - float(np.mean(low))))
        if len({size for size, _ in points}) >= 2:
            sizes_, falls = np.array(points).T
            effects.append(float(np.polyfit(sizes_, falls, 1)[0]))
    return effects


def share_at_least(rows: Iterable[Row], column: str, threshold: float) -> list[float]:
    """Per seed, the share of runs whose ``column`` is at least ``threshold``, minus one half:
    positive when *most* runs reach it (a coarse effect: judge it by the exact sign-flip test)."""
    effects = []
    for group in by_seed(rows).values():
        values = [value for row in group if (value := _finite(row, column)) is not None]
        if values:
            effects.append(float(np.mean([value >= threshold for value in values])) - 0.5)
    return effects


def share_difference(rows: Iterable[Row], first: str, second: str, threshold: float) -> list[float]:
    """Per seed, the share of runs with ``first`` ≥ ``threshold`` minus that with ``second`` ≥ it."""
    effects = []
    for group in by_seed(rows).values():
        pairs = [(a, b) for row in group
                 if (a := _finite(row, first)) is not None and (b := _finite(row, second)) is not None]
        if pairs:
            effects.append(float(np.mean([a >= threshold for a, _ in pairs]) -
                                 np.mean([b >= threshold for _, b in pairs])))
    return effects


def setting_groups(rows: Iterable[Row], column: str) -> list[list[float]]:
    """``column``'s values per grid setting (β_norm, latent size), one value per seed: the groups of a
    separation (F) test of settings against seed noise."""
    groups: dict[tuple[float, Any], list[float]] = defaultdict(list)
    for row in rows:
        value = _finite(row, column)
        if value is not None:
            groups[(float(row["beta_norm"]), row["latent_dim"])].append(value)
    return [groups[key] for key in sorted(groups)]


def above_chance(rows: Iterable[Row], column: str, chance: float) -> list[float]:
    """Per seed, ``column`` minus its chance level (averaged over the seed's rows)."""
    effects = []
    for group in by_seed(rows).values():
        values = [value for row in group if (value := _finite(row, column)) is not None]
        if values:
            effects.append(float(np.mean(values)) - chance)
    return effects


def transfer_gain_per_seed(rows: Iterable[Row], better: float, worse: float) -> list[float]:
    """Per training seed: the accuracy of the ``better`` β's encoder minus the ``worse`` β's, averaged
    over label draws and label counts first (the draws are shared, so the seed is the unit)."""
    accuracy: dict[tuple[Any, float], list[float]] = defaultdict(list)
    for row in rows:
        if row.get("beta") is not None and row.get("seed") is not None:
            accuracy[(row["seed"], float(row["beta"]))].append(float(row["accuracy"]))
    gains = []
    for seed in sorted({seed for seed, _ in accuracy}):
        first, second = accuracy.get((seed, better)), accuracy.get((seed, worse))
        if first and second:
            gains.append(float(np.mean(first) - np.mean(second)))
    return gains
