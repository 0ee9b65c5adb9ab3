"""The β-VAE paper's claims, judged on what a study measured, by one stated rule.

Every claim is reduced to *effects*: one number per seed (or per paired draw) whose sign
says whether the claim holds in that seed, e.g. "β-VAE's MIG minus the VAE's MIG" or "the
slope of the held-out loss against log β_norm". :func:`judge` turns the effects into a
verdict by :data:`RULE`: the mean effect must clear twice its standard error over seeds in
the claimed direction to count as *held*, clear it in the other direction to count as *not
held*, and is *inconclusive* otherwise, or with fewer than two seeds (no spread to judge).
Two standard errors is about a 95 % interval for the mean; with few seeds it is lenient,
which the report says beside each verdict by giving the spread and the number of seeds.

The functions here are pure: result rows in, :class:`Judgement` out. Which runs feed which
claim is :mod:`betavae.studies.reproduce`'s business.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

HELD, NOT_HELD, INCONCLUSIVE = "held", "not held", "inconclusive"
VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE)
SPREAD = 2.0  # standard errors an effect must clear
RULE = (
    f"Each claim is measured as an effect per seed whose sign says whether it holds in that seed. "
    f"Held: the mean effect exceeds {SPREAD:g} standard errors (over seeds) in the claimed direction. "
    f"Not held: it exceeds {SPREAD:g} standard errors in the other direction. Inconclusive: "
    f"anything in between, or fewer than two seeds. A claim made of parts is held when every "
    f"part is held, not held when any part is not held, and inconclusive otherwise."
)
Direction = Literal["positive", "negative"]
Row = Mapping[str, Any]


@dataclass(frozen=True)
class Effect:
    """The mean of per-seed effects, its standard error (None with one sample) and the count."""

    mean: float
    se: float | None
    n: int

    @classmethod
    def of(cls, samples: Iterable[float]) -> Effect:
        values = np.asarray([value for value in samples if value is not None and math.isfinite(value)], float)
        if values.size == 0:
            return cls(math.nan, None, 0)
        se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else None
        return cls(float(values.mean()), se, int(values.size))

    def text(self, digits: int = 3, unit: str = "seed") -> str:
        """``+0.120 ± 0.034 (3 seeds)``: the mean and twice its standard error."""
        if self.n == 0:
            return "not measured"
        spread = f" ± {SPREAD * self.se:.{digits}f}" if self.se is not None else ""
        return f"{self.mean:+.{digits}f}{spread} ({self.n} {unit}{'s' if self.n != 1 else ''})"


# How a part's claimed direction reads beside its name: "shapes loss/log β_norm > 0".
EXPECTED = {"positive": "> 0", "negative": "< 0"}
ABOUT_ZERO = "≈ 0"  # "about equal": the effect stays within its spread
NAMED_FAILURES = 3  # a "not held" names its failing parts up to this many, else points at their marks


@dataclass(frozen=True)
class ClaimPart:
    """One measured part of a claim (a dataset, a metric) with its own verdict."""

    name: str  # "shapes loss/log β_norm"
    expected: str  # the claimed relation of the effect: "> 0", "< 0", "≈ 0"
    ours: str  # the effect with its spread: "+47.462 ± 2.611 (2 seeds)"
    verdict: str  # one of VERDICTS

    def text(self) -> str:
        """``shapes loss/log β_norm > 0: +47.462 ± 2.611 (2 seeds), held``: the part in one line."""
        return f"{self.name} {self.expected}: {self.ours}, {self.verdict}"


@dataclass(frozen=True)
class Judgement:
    """A verdict, the effect it rests on (as text), one line on why, and the judged parts behind it.

    A claim of several parts (a dataset and metric each) keeps every part's own verdict in
    ``parts`` so that the report can list them one per line; ``why`` then says only how they
    combine into the claim's verdict.
    """

    verdict: str
    ours: str
    why: str
    parts: tuple[ClaimPart, ...] = ()


def judge(samples: Iterable[float], expect: Direction) -> tuple[str, Effect]:
    """The verdict of :data:`RULE` on per-seed effects expected to be ``positive`` or ``negative``."""
    return _verdict(Effect.of(samples), expect)


def _verdict(effect: Effect, expect: Direction) -> tuple[str, Effect]:
    if effect.n < 2 or effect.se is None or not math.isfinite(effect.mean):
        return INCONCLUSIVE, effect
    signed = effect.mean if expect == "positive" else -effect.mean
    if signed > SPREAD * effect.se:
        return HELD, effect
    if signed < -SPREAD * effect.se:
        return NOT_HELD, effect
    return INCONCLUSIVE, effect


def combine(verdicts: Sequence[str]) -> str:
    """A claim of several parts: held if every part is, not held if any part is not, else inconclusive."""
    if verdicts and all(verdict == HELD for verdict in verdicts):
        return HELD
    if any(verdict == NOT_HELD for verdict in verdicts):
        return NOT_HELD
    return INCONCLUSIVE


def judged(parts: Sequence[tuple[str, Sequence[float], Direction]], unit: str = "seed",
           digits: int = 3) -> Judgement:
    """A claim of named parts, each a list of per-seed effects and its expected sign."""
    verdicts = []
    for name, samples, expect in parts:
        verdict, effect = judge(samples, expect)
        verdicts.append((name, verdict, effect, EXPECTED[expect]))
    return summarised(verdicts, unit, digits)


def summarised(parts: Sequence[tuple[str, str, Effect, str]], unit: str = "seed", digits: int = 3
               ) -> Judgement:
    """A claim of named parts already judged, each ``(name, verdict, effect, expected relation)``,
    the relation as :data:`EXPECTED` writes it (or :data:`ABOUT_ZERO`)."""
    judged_parts = tuple(ClaimPart(name, expected, effect.text(digits, unit), verdict)
                         for name, verdict, effect, expected in parts)
    verdict = combine([part.verdict for part in judged_parts])
    ours = "; ".join(part.text() for part in judged_parts)
    return Judgement(verdict, ours, combination(judged_parts), judged_parts)


def combination(parts: Sequence[ClaimPart]) -> str:
    """One line on how the parts' verdicts make the claim's, by :func:`combine`'s rule: which parts
    decided a "not held", how many were left undecided in an "inconclusive"."""
    count = len(parts)
    failed = [part.name for part in parts if part.verdict == NOT_HELD]
    open_ = sum(part.verdict == INCONCLUSIVE for part in parts)
    if not parts:
        return "nothing measured"
    if count == 1:
        return f"its one part is {parts[0].verdict}"
    if failed:
        named = ", ".join(failed) if len(failed) <= NAMED_FAILURES else "the parts marked so"
        return f"not held in {len(failed)} of {count} parts: {named}"
    if open_:
        return f"{open_} of {count} parts inconclusive, none not held"
    return f"held in every part ({count})"


# --- per-seed effects from result rows -----------------------------------------------------------


def by_seed(rows: Iterable[Row]) -> dict[Any, list[Row]]:
    """Rows grouped by their ``seed``."""
    groups: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row["seed"]].append(row)
    return dict(groups)


def mean_slope(rows: Sequence[Row], x: str, y: str, within: str, log_x: bool = True) -> float | None:
    """The least-squares slope of ``y`` against ``x`` (log10 when ``log_x``), fitted within each value
    of ``within`` and averaged; None when no group has two distinct ``x`` with a ``y``."""
    groups: dict[Any, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        if row.get(y) is not None and row.get(x) is not None and math.isfinite(row[y]):
            groups[row[within]].append((math.log10(row[x]) if log_x else float(row[x]), float(row[y])))
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


def paired_differences(rows: Iterable[Row], column: str, key: str, better: Any, worse: Any) -> list[float]:
    """Per seed, ``column`` of the row whose ``key`` is ``better`` minus that of the row whose ``key`` is
    ``worse`` (seeds lacking either are left out)."""
    differences = []
    for group in by_seed(rows).values():
        values = {row[key]: row.get(column) for row in group}
        if values.get(better) is not None and values.get(worse) is not None:
            differences.append(float(values[better]) - float(values[worse]))
    return differences


def drop_after_peak(rows: Iterable[Row], column: str, x: str = "beta_norm", within: str = "latent_dim"
                    ) -> list[float]:
    """Per seed, the best ``column`` over ``x`` minus its value at the largest ``x``, averaged over
    ``within``: positive when the largest ``x`` (too large a β) scores below the best."""
    effects = []
    for group in by_seed(rows).values():
        drops = []
        for cells in _within(group, column, within).values():
            if len(cells) >= 2:
                largest = max(cells, key=lambda cell: cell[0])
                drops.append(max(value for _, value in cells) - largest[1])
        if drops:
            effects.append(float(np.mean(drops)))
    return effects


def peak_shift(rows: Iterable[Row], column: str, x: str = "beta_norm", within: str = "latent_dim"
               ) -> list[float]:
    """Per seed, the slope of log10 (the ``x`` where ``column`` peaks) against log10 ``within``:
    positive when larger latent spaces peak at larger β_norm."""
    effects = []
    for group in by_seed(rows).values():
        peaks = [(math.log10(size), math.log10(max(cells, key=lambda cell: cell[1])[0]))
                 for size, cells in _within(group, column, within).items() if len(cells) >= 2]
        if len({size for size, _ in peaks}) >= 2:
            sizes, argmax = np.array(peaks).T
            effects.append(float(np.polyfit(sizes, argmax, 1)[0]))
    return effects


def _within(rows: Iterable[Row], column: str, within: str, x: str = "beta_norm"
            ) -> dict[Any, list[tuple[float, float]]]:
    cells: dict[Any, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        if row.get(column) is not None and math.isfinite(row[column]):
            cells[row[within]].append((float(row[x]), float(row[column])))
    return cells


def share_at_least(rows: Iterable[Row], column: str, threshold: float) -> list[float]:
    """Per seed, the share of runs whose ``column`` is at least ``threshold``, minus one half:
    positive when *most* runs reach it."""
    effects = []
    for group in by_seed(rows).values():
        values = [row[column] for row in group if row.get(column) is not None]
        if values:
            effects.append(float(np.mean([value >= threshold for value in values])) - 0.5)
    return effects


def spread_gain(rows: Iterable[Row], wider: str, narrower: str, scale: Callable[[str], float]) -> list[float]:
    """Per seed, the standard deviation across runs of ``wider`` minus that of ``narrower``, each
    divided by ``scale(column)`` (its range above chance): positive when ``wider`` separates the
    runs more."""
    effects = []
    for group in by_seed(rows).values():
        spreads = []
        for column in (wider, narrower):
            values = [row[column] for row in group if row.get(column) is not None]
            spreads.append(float(np.std(values)) / scale(column) if len(values) >= 2 else None)
        if None not in spreads:
            effects.append(spreads[0] - spreads[1])
    return effects


def judge_unpaired(better: Sequence[float], worse: Sequence[float], expect: Direction = "positive"
                   ) -> tuple[str, Effect]:
    """:func:`judge` for two independent groups: the difference of means and the Welch standard
    error sqrt(se_b² + se_w²)."""
    b, w = Effect.of(better), Effect.of(worse)
    if b.n < 2 or w.n < 2 or b.se is None or w.se is None:
        return INCONCLUSIVE, Effect(b.mean - w.mean, None, min(b.n, w.n))
    return _verdict(Effect(b.mean - w.mean, math.sqrt(b.se**2 + w.se**2), min(b.n, w.n)), expect)


def no_gain(samples: Sequence[float], margin: float) -> tuple[str, Effect]:
    """"X does not improve on Y": held when the mean gain is below ``margin`` by more than its
    spread allows (mean + 2·se < margin), not held when the gain is clearly positive (mean −
    2·se > 0), inconclusive otherwise."""
    effect = Effect.of(samples)
    if effect.n < 2 or effect.se is None:
        return INCONCLUSIVE, effect
    if effect.mean - SPREAD * effect.se > 0:
        return NOT_HELD, effect
    if effect.mean + SPREAD * effect.se < margin:
        return HELD, effect
    return INCONCLUSIVE, effect
