"""The verdict rule of the reproduction study: when numbers over seeds support a claim, contradict
it, or decide nothing, and why.

The training seed is the unit: every function here takes one value per seed (a per-seed effect,
or one group's per-seed values), after label draws and metric repeats were averaged within the
seed. Each part of a claim gets a one-sided test at level :data:`ALPHA`:

- a mean effect: Student's t over the per-seed effects (paired differences are effects too), or
  Welch's t for two independent groups (:func:`mean_effect`, :func:`group_difference`);
- a coarse effect (a share of runs, an argmax position): the exact sign-flip permutation test of
  the mean effect, whose smallest p-value is 1/2ⁿ, so it needs 5 seeds to decide anything
  (:func:`coarse_effect`);
- "about equal" and "no gain": two one-sided tests against a margin the claim states
  (:func:`equivalence`, :func:`no_gain`);
- "separates settings from seed noise": the one-way analysis-of-variance F test of settings
  with seeds as replicates (:func:`separation`).

A part is *held* when its p-value for the claimed direction is below :data:`ALPHA`; *not held*
when its p-value for the opposite direction stays below :data:`ALPHA` after Holm's correction
across the claim's parts; *inconclusive* otherwise, with a reason: too few seeds (fewer than
:data:`MIN_SEEDS`), a zero spread (identical seeds measure nothing about noise), runs that did
not train, or an effect smaller than the study resolves (its minimum detectable effect at
:data:`POWER`). A claim is held when every part is held (an intersection–union test, so no
correction is needed for it) and not held when some part is not held after the correction.

:func:`judge` turns a claim's parts into a verdict. Every rule is checked on simulated studies
with a known answer in ``tests/test_study_stats.py`` and ``tests/test_claims.py``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import special as scipy_special

HELD, NOT_HELD, INCONCLUSIVE = "held", "not held", "inconclusive"
VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE)
ALPHA = 0.05  # one-sided level of every part
MIN_SEEDS = 3  # no decisive verdict from fewer seeds
POWER = 0.8  # the power at which the minimum detectable effect is quoted
EXACT_SEEDS = math.ceil(math.log2(1 / ALPHA))  # the sign-flip test's smallest p is 1/2ⁿ: 5 seeds for 0.05
Direction = Literal["positive", "negative"]
EXPECTED = {"positive": "> 0", "negative": "< 0"}

RULE = (
    f"The training seed is the unit: label draws and metric repeats are averaged within a seed first. "
    f"Each part of a claim is one effect measured per seed, tested one-sided at level {ALPHA:g}: "
    f"Student's t over the seeds' effects (paired where the runs share seeds, Welch's otherwise), an "
    f"exact sign-flip test for coarse effects such as shares of runs (its smallest p is 1/2ⁿ, so it "
    f"needs {EXACT_SEEDS} seeds), two one-sided tests against a stated margin for \"about equal\" and "
    f"\"no gain\", and the F test of settings against seed noise for \"separates\". A part is held "
    f"when p < {ALPHA:g} in the claimed direction; not held when p < {ALPHA:g} in the other direction "
    f"after Holm's correction across the claim's parts; inconclusive otherwise, with the reason: "
    f"fewer than {MIN_SEEDS} seeds, a zero spread, runs that did not train, or an effect below what "
    f"the study can resolve (its minimum detectable effect at {POWER:.0%} power). A claim is held when "
    f"every part is held, not held when any part is not held after the correction, and inconclusive "
    f"otherwise. Each part shows its mean effect, its 90 % interval (the two one-sided 95 % bounds) "
    f"and its p-value."
)


@dataclass(frozen=True)
class Evidence:
    """One part's test: the estimate, its interval, the p-values for and against the claim.

    ``p_held`` is the p-value of the claimed relation, ``p_not_held`` that of the opposite one
    (before any correction across parts); either is None where the test cannot give it (a
    separation test cannot show "no separation"). ``reason`` says why a part cannot be decided
    at all (too few seeds, zero spread, untrained runs); it is empty when the p-values decide.
    ``mde`` is the smallest effect the test would find with :data:`POWER` at this spread and count.
    """

    method: str
    estimate: float
    n: int
    low: float | None = None  # the 90 % interval (two one-sided 95 % bounds) of the estimate
    high: float | None = None
    p_held: float | None = None
    p_not_held: float | None = None
    mde: float | None = None
    reason: str = ""
    unit: str = "seed"

    @property
    def decidable(self) -> bool:
        return not self.reason

    def blocked(self, reason: str) -> Evidence:
        """The same numbers, undecidable for ``reason`` (e.g. runs that did not train)."""
        return replace(self, reason=reason)

    def text(self, digits: int = 3) -> str:
        """``+0.120 (90 % CI +0.050 … +0.190; p = 0.012; paired t, 3 seeds)``."""
        if self.n == 0 or not math.isfinite(self.estimate):
            return "not measured"
        pieces = []
        if self.low is not None and self.high is not None:
            pieces.append(f"90 % CI {self.low:+.{digits}f} … {self.high:+.{digits}f}")
        if self.p_held is not None:
            pieces.append(_p(self.p_held))
        plural = "s" if self.n != 1 else ""
        pieces.append(f"{self.method}, {self.n} {self.unit}{plural}")
        sign = "" if self.method == "F test" else "+"  # F is a ratio of variances, never negative
        return f"{self.estimate:{sign}.{digits}f} ({'; '.join(pieces)})"


def _p(value: float) -> str:
    """``p = 0.012`` or ``p < 0.001``."""
    return f"p = {value:.3f}" if value >= 0.001 else "p < 0.001"


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)


def _few(method: str, values: np.ndarray, unit: str = "seed") -> Evidence | None:
    """The undecidable result for fewer than :data:`MIN_SEEDS` values or a zero spread, else None."""
    estimate = float(values.mean()) if values.size else math.nan
    if values.size < MIN_SEEDS:
        return Evidence(method, estimate, int(values.size), unit=unit,
                        reason=f"too few seeds ({values.size} < {MIN_SEEDS})")
    if _constant(values):
        return Evidence(method, estimate, int(values.size), unit=unit,
                        reason="zero spread over seeds: nothing to measure noise by")
    return None


def _constant(values: np.ndarray) -> bool:
    """Whether every value is the same. Not ``std == 0``: the mean of identical floats can be off by
    one rounding step (three 0.1s average to 0.10000000000000002), which leaves a spread of 1e-17
    and a t of 1e16, so identical seeds would pass as decisive."""
    return bool(values.max() == values.min())


# Student's t through scipy.special, which scipy.stats.t itself calls (its cdf is stdtr(df, t), its sf
# stdtr(df, −t), its ppf stdtrit(df, q)): the same numbers without the distribution object's argument
# handling, which cost a tenth of a millisecond a call, most of a claim's time in the simulations that
# check every rule (tests/test_claims.py).
def _t_cdf(t: float, df: float) -> float:
    return float(scipy_special.stdtr(df, t))


def _t_sf(t: float, df: float) -> float:
    return float(scipy_special.stdtr(df, -t))


def _t_ppf(q: float, df: float) -> float:
    return float(scipy_special.stdtrit(df, q))


def _t_evidence(method: str, estimate: float, se: float, df: float, n: int, expect: Direction,
                unit: str = "seed") -> Evidence:
    """One-sided t p-values for ``expect`` and against it, the 90 % interval and the MDE."""
    t = estimate / se
    upper_tail, lower_tail = _t_sf(t, df), _t_cdf(t, df)
    p_held, p_not = (upper_tail, lower_tail) if expect == "positive" else (lower_tail, upper_tail)
    critical = _t_ppf(1 - ALPHA, df)
    mde = (critical + _t_ppf(POWER, df)) * se
    return Evidence(method, estimate, n, estimate - critical * se, estimate + critical * se,
                    p_held, p_not, mde, unit=unit)


@dataclass(frozen=True)
class _Spread:
    """A difference of means with its standard error, degrees of freedom and seed count."""

    estimate: float
    se: float
    df: float
    n: int


def _one_sample(effects: Sequence[float | None], method: str, unit: str = "seed") -> _Spread | Evidence:
    """The mean of per-seed effects with Student's standard error, or the undecidable :class:`Evidence`."""
    values = _finite(effects)
    few = _few(method, values, unit)
    if few is not None:
        return few
    return _Spread(float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size)), values.size - 1,
                   int(values.size))


def _two_groups(first: Sequence[float | None], second: Sequence[float | None], method: str
                ) -> _Spread | Evidence:
    """mean(``first``) − mean(``second``) with Welch's standard error and degrees, or the undecidable
    :class:`Evidence`."""
    a, b = _finite(first), _finite(second)
    n = int(min(a.size, b.size))
    estimate = float(a.mean() - b.mean()) if a.size and b.size else math.nan
    if n < MIN_SEEDS:
        return Evidence(method, estimate, n, reason=f"too few seeds ({n} < {MIN_SEEDS})")
    if _constant(a) and _constant(b):
        return Evidence(method, estimate, n, reason="zero spread over seeds: nothing to measure noise by")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = (va + vb) ** 2 / ((va**2 / (a.size - 1) if va else 0.0) + (vb**2 / (b.size - 1) if vb else 0.0))
    return _Spread(estimate, math.sqrt(va + vb), df, n)


def half_width(values: Sequence[float], parts: int = 1) -> float:
    """Half the 90 % Student t interval of the mean of ``values`` (two or more): the spread the report's
    tables print beside a mean, the same bounds as every part's interval. With ``parts`` intervals shown
    together, each side is at ALPHA / ``parts`` (Bonferroni), so that all of them hold at once."""
    array = _finite(values)
    return float(_t_ppf(1 - ALPHA / parts, array.size - 1) * array.std(ddof=1)
                 / math.sqrt(array.size))


def mean_effect(effects: Sequence[float | None], expect: Direction, unit: str = "seed") -> Evidence:
    """Student's one-sample t test of per-seed effects (paired differences included)."""
    spread = _one_sample(effects, "t", unit)
    if isinstance(spread, Evidence):
        return spread
    return _t_evidence("t", spread.estimate, spread.se, spread.df, spread.n, expect, unit)


def group_difference(better: Sequence[float | None], worse: Sequence[float | None],
                     expect: Direction = "positive") -> Evidence:
    """Welch's t test of mean(``better``) − mean(``worse``) for two independent groups of seeds."""
    spread = _two_groups(better, worse, "Welch t")
    if isinstance(spread, Evidence):
        return spread
    return _t_evidence("Welch t", spread.estimate, spread.se, spread.df, spread.n, expect)


def coarse_effect(effects: Sequence[float | None], expect: Direction, unit: str = "seed") -> Evidence:
    """The exact sign-flip test of the mean of per-seed effects that take few values (shares of runs,
    argmax positions), where a t test's normal approximation does not hold.

    Under "no effect" each seed's effect is as likely positive as negative, so every one of the 2ⁿ
    sign patterns is equally likely; the p-value is the share of patterns whose mean reaches the
    observed one. Its smallest value is 1/2ⁿ, so fewer than :data:`EXACT_SEEDS` seeds decide nothing.
    """
    values = _finite(effects)
    method = "sign-flip"
    estimate = float(values.mean()) if values.size else math.nan
    if values.size < MIN_SEEDS:
        return Evidence(method, estimate, int(values.size), unit=unit,
                        reason=f"too few seeds ({values.size} < {MIN_SEEDS})")
    if values.size < EXACT_SEEDS:
        return Evidence(method, estimate, int(values.size), unit=unit,
                        reason=f"too few seeds for an exact test: its smallest p with {values.size} seeds is "
                               f"1/{2 ** values.size}; {EXACT_SEEDS} seeds are needed")
    means = _sign_flip_means(values)
    tolerance = 1e-12 * max(1.0, float(np.abs(values).max()))
    upper = float(np.mean(means >= estimate - tolerance))
    lower = float(np.mean(means <= estimate + tolerance))
    p_held, p_not = (upper, lower) if expect == "positive" else (lower, upper)
    return Evidence(method, estimate, int(values.size), None, None, p_held, p_not, unit=unit)


def _sign_flip_means(values: np.ndarray, draws: int = 65_536) -> np.ndarray:
    """The mean under every sign pattern (all 2ⁿ up to 16 seeds, else a fixed random sample of them)."""
    if values.size <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=values.size)))
    else:
        signs = np.random.default_rng(0).choice((1.0, -1.0), size=(draws, values.size))
        signs[0] = 1.0
    return signs @ values / values.size


def equivalence(effects: Sequence[float | None], margin: float, unit: str = "seed") -> Evidence:
    """Two one-sided t tests that the mean effect lies within ±``margin`` ("about equal").

    Held when the 90 % interval lies inside (−margin, margin); not held when the effect is
    beyond the margin on either side: a union of two one-sided tests, so its p-value is twice the
    smaller one (Bonferroni), else a true difference inside a margin that is small against seed
    noise would be called "not held" up to twice as often as :data:`ALPHA`.
    """
    spread = _one_sample(effects, "TOST", unit)
    if isinstance(spread, Evidence):
        return spread
    return _equivalent(spread, margin, unit)


def group_equivalence(first: Sequence[float | None], second: Sequence[float | None], margin: float
                      ) -> Evidence:
    """:func:`equivalence` of two independent groups' means (Welch's standard error and degrees)."""
    spread = _two_groups(first, second, "TOST")
    if isinstance(spread, Evidence):
        return spread
    return _equivalent(spread, margin)


def _equivalent(spread: _Spread, margin: float, unit: str = "seed") -> Evidence:
    estimate, se, df, n = spread.estimate, spread.se, spread.df, spread.n
    above_low = _t_sf((estimate + margin) / se, df)  # H0: effect ≤ −margin
    below_high = _t_cdf((estimate - margin) / se, df)  # H0: effect ≥ margin
    p_held = max(above_low, below_high)
    # Against the claim: the effect lies beyond the margin on the side the estimate falls.
    if estimate >= 0:
        p_not = _t_sf((estimate - margin) / se, df)
    else:
        p_not = _t_cdf((estimate + margin) / se, df)
    p_not = min(1.0, 2 * p_not)  # either side counts, so both sides share ALPHA
    critical = _t_ppf(1 - ALPHA, df)
    return Evidence(f"TOST ±{margin:g}", estimate, n, estimate - critical * se, estimate + critical * se,
                    p_held, p_not, None, unit=unit)


def no_gain(effects: Sequence[float | None], margin: float, unit: str = "seed") -> Evidence:
    """"X does not improve on Y by ``margin`` or more": held when the gain's upper 95 % bound is below
    ``margin``; not held when its lower bound is above it (a one-sided test each way)."""
    method = f"t against {margin:g}"
    spread = _one_sample(effects, method, unit)
    if isinstance(spread, Evidence):
        return spread
    shifted = _t_evidence(method, spread.estimate - margin, spread.se, spread.df, spread.n, "negative", unit)
    return replace(shifted, estimate=shifted.estimate + margin, low=shifted.low + margin,
                   high=shifted.high + margin, mde=None)  # its reference is the margin, not 0


def separation(groups: Sequence[Sequence[float | None]]) -> Evidence:
    """The one-way F test: do the settings (``groups``, each its seeds' values) differ by more than
    seed noise? The estimate is F, the ratio of between-setting to within-setting variance (about
    1 with no signal). Held when p < :data:`ALPHA`; it cannot show "no separation", so it is
    never "not held" on its own."""
    arrays = [_finite(group) for group in groups]
    arrays = [values for values in arrays if values.size]
    n = min((values.size for values in arrays), default=0)
    if len(arrays) < 2 or n < MIN_SEEDS:
        return Evidence("F test", math.nan, n, reason=f"too few seeds ({n} < {MIN_SEEDS}) or settings")
    if all(_constant(values) for values in arrays):
        return Evidence("F test", math.inf, n, reason="zero spread over seeds: nothing to measure noise by")
    statistic, pvalue = _one_way_f(arrays)
    return Evidence("F test", statistic, n, p_held=pvalue)


def _one_way_f(arrays: Sequence[np.ndarray]) -> tuple[float, float]:
    """The one-way ANOVA's F and its p-value, computed as ``scipy.stats.f_oneway`` does (sums of squares
    about the pooled mean) without its per-call argument handling, which made it most of the claims'
    simulations' time; the tests check it against scipy's."""
    pooled = np.concatenate(arrays)
    offset = pooled.mean()
    centred = pooled - offset
    normalized_ss = centred.sum() ** 2 / pooled.size
    total_ss = float(centred @ centred) - normalized_ss
    between_ss = sum(float((values - offset).sum()) ** 2 / values.size for values in arrays) - normalized_ss
    between_df, within_df = len(arrays) - 1, pooled.size - len(arrays)
    within_ms = np.float64((total_ss - between_ss) / within_df)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = float(np.float64(between_ss / between_df) / within_ms)
    return statistic, float(scipy_special.fdtrc(between_df, within_df, statistic))


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of ``pvalues`` (None stays None and is not counted)."""
    indexed = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running, count = 0.0, len(indexed)
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (count - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class PartVerdict:
    """A part's evidence, its verdict and, when inconclusive, why."""

    evidence: Evidence
    verdict: str
    why: str
    p_not_held_adjusted: float | None = None


def judge(parts: Sequence[Evidence]) -> tuple[str, list[PartVerdict]]:
    """The claim's verdict and each part's, by :data:`RULE`."""
    adjusted = holm([part.p_not_held if part.decidable else None for part in parts])
    judged = []
    for part, p_not in zip(parts, adjusted, strict=True):
        if not part.decidable:
            judged.append(PartVerdict(part, INCONCLUSIVE, part.reason, p_not))
        elif part.p_held is not None and part.p_held < ALPHA:
            judged.append(PartVerdict(part, HELD, f"{_p(part.p_held)}, below {ALPHA:g}", p_not))
        elif p_not is not None and p_not < ALPHA:
            judged.append(PartVerdict(part, NOT_HELD, f"{_p(p_not)} against, Holm-corrected over "
                                                      f"{sum(p is not None for p in adjusted)} parts", p_not))
        else:
            judged.append(PartVerdict(part, INCONCLUSIVE, _undecided(part, p_not), p_not))
    verdicts = [part.verdict for part in judged]
    if verdicts and all(verdict == HELD for verdict in verdicts):
        return HELD, judged
    if NOT_HELD in verdicts:
        return NOT_HELD, judged
    return INCONCLUSIVE, judged


def _undecided(part: Evidence, p_not: float | None) -> str:
    """Why a decidable part stayed undecided: the effect is below what the study resolves."""
    if part.mde is not None and math.isfinite(part.mde) and abs(part.estimate) < part.mde:
        return (f"effect smaller than this study resolves (it would find {part.mde:.3g} with "
                f"{POWER:.0%} power)")
    shown = _p(part.p_held) if part.p_held is not None else "no p-value"
    against = f"; against it {_p(p_not)} after Holm's correction" if p_not is not None else ""
    return (f"{shown}{against}: neither below {ALPHA:g} with {part.n} {part.unit}s, an effect smaller than "
            f"this study resolves (more seeds narrow it)")
