"""The study's verdict rule (betavae.study.stats) on simulated studies whose answer is known.

Every rule judges real runs only after it is shown here, on at least :data:`STUDIES` simulated
studies drawn from a fixed generator, to call a claim "held" or "not held" wrongly at most
:data:`~betavae.study.stats.ALPHA` of the time when there is nothing to find, and to find a clear
effect at the study's size most of the time. The rates allow two Monte-Carlo standard errors
(:data:`BOUND`); each test prints what it measured.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats as scipy_stats

from betavae.study import stats
from betavae.study.stats import ALPHA, HELD, INCONCLUSIVE, NOT_HELD, Evidence

STUDIES = 1000
BOUND = ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / STUDIES)  # ALPHA plus two Monte-Carlo errors

Study = Callable[[np.random.Generator], list[Evidence]]


def verdict_rates(study: Study, seed: int) -> Counter[str]:
    """The share of :data:`STUDIES` simulated studies that ``judge`` calls held / not held / inconclusive."""
    rng = np.random.default_rng(seed)
    counts = Counter(stats.judge(study(rng))[0] for _ in range(STUDIES))
    return Counter({verdict: count / STUDIES for verdict, count in counts.items()})


def summary(case: str, null: Counter[str], power: float, more: str = "") -> str:
    """One line for the assertion messages and the test's printed output."""
    line = (f"{case}: false held {null[HELD]:.3f}, false not held {null[NOT_HELD]:.3f} over {STUDIES} "
            f"studies (bound {BOUND:.3f}; power {power:.2f}){more}")
    print(line)
    return line


def check_rates(null: Counter[str], power: float, line: str, least_power: float = 0.5) -> None:
    """Both false rates with no effect within :data:`BOUND`, and the power above ``least_power``."""
    assert null[HELD] <= BOUND, line
    assert null[NOT_HELD] <= BOUND, line
    assert power > least_power, line


def mc_error(rate: float) -> float:
    return math.sqrt(max(rate * (1 - rate), 1e-4) / STUDIES)


# --- error rates with nothing to find, and power with a clear effect --------------------------------


@pytest.mark.parametrize("n", [3, 5])
def test_mean_effect_errs_at_most_alpha_and_has_the_power_of_students_t(n):
    null = verdict_rates(lambda rng: [stats.mean_effect(rng.normal(0.0, 1.0, n), "positive")], seed=2 * n)
    shift = 2.0  # standard deviations of the per-seed effect
    power = verdict_rates(lambda rng: [stats.mean_effect(rng.normal(shift, 1.0, n), "positive")],
                          seed=10 + n)[HELD]
    theory = float(scipy_stats.nct.sf(scipy_stats.t.ppf(1 - ALPHA, n - 1), n - 1, shift * math.sqrt(n)))
    line = summary(f"mean_effect, {n} seeds", null, power, f"; theory {theory:.2f}")
    check_rates(null, power, line)
    assert abs(power - theory) <= 3 * mc_error(theory), line


def test_mean_effect_errs_at_most_alpha_on_heavy_tailed_effects():
    n = 3
    null = verdict_rates(lambda rng: [stats.mean_effect(rng.standard_t(3, n), "negative")], seed=23)
    power = verdict_rates(lambda rng: [stats.mean_effect(rng.standard_t(3, n) - 3.0, "negative")],
                          seed=33)[HELD]
    line = summary(f"mean_effect, Student-t(3) effects, {n} seeds", null, power)
    check_rates(null, power, line)


@pytest.mark.parametrize("n", [3, 5])
def test_group_difference_errs_at_most_alpha_with_unequal_spreads(n):
    def groups(rng: np.random.Generator, difference: float) -> list[Evidence]:
        return [stats.group_difference(rng.normal(difference, 1.0, n), rng.normal(0.0, 3.0, n))]

    null = verdict_rates(lambda rng: groups(rng, 0.0), seed=40 + n)
    power = verdict_rates(lambda rng: groups(rng, 8.0), seed=50 + n)[HELD]
    line = summary(f"group_difference, {n} + {n} seeds, spreads 1 and 3", null, power)
    check_rates(null, power, line)


@pytest.mark.parametrize("n", [5, 6])
def test_coarse_effect_errs_at_most_alpha_on_shares_of_runs(n):
    # Each seed's effect is its share of 6 runs that show the claimed direction, minus one half.
    def shares(rng: np.random.Generator, chance: float) -> list[Evidence]:
        return [stats.coarse_effect(rng.binomial(6, chance, n) / 6 - 0.5, "positive")]

    null = verdict_rates(lambda rng: shares(rng, 0.5), seed=60 + n)
    power = verdict_rates(lambda rng: shares(rng, 0.9), seed=70 + n)[HELD]
    line = summary(f"coarse_effect, {n} seeds", null, power)
    check_rates(null, power, line, least_power=0.8)


def test_separation_errs_at_most_alpha_and_is_never_not_held():
    settings, seeds = 6, 3
    means = np.linspace(-1.5, 1.5, settings)[:, None]  # standard deviations of seed noise
    null = verdict_rates(lambda rng: [stats.separation(list(rng.normal(0.0, 1.0, (settings, seeds))))],
                         seed=80)
    power = verdict_rates(lambda rng: [stats.separation(list(rng.normal(means, 1.0, (settings, seeds))))],
                          seed=81)[HELD]
    between, within = settings - 1, settings * (seeds - 1)
    theory = float(scipy_stats.ncf.sf(scipy_stats.f.ppf(1 - ALPHA, between, within), between, within,
                                      seeds * float((means**2).sum())))
    line = summary(f"separation, {settings} settings x {seeds} seeds", null, power, f"; theory {theory:.2f}")
    assert null[HELD] <= BOUND, line
    assert null[NOT_HELD] == 0.0, line
    assert power > 0.5, line
    assert abs(power - theory) <= 3 * mc_error(theory), line


def at_margin_and_at_zero(study_at: Callable[[float], Study], margin: float, seed: int, name: str
                          ) -> tuple[dict[str, float], dict[str, float], float, str]:
    """Verdict rates of a claim with a margin, its true value at the margin (the claim false) and at 0
    (the claim true), the power (held at 0), and a line naming them for the assertion messages."""
    at_margin = verdict_rates(study_at(margin), seed=seed)
    at_zero = verdict_rates(study_at(0.0), seed=seed + 10)
    power = at_zero[HELD]
    line = " / ".join((summary(f"{name}, at the margin", at_margin, power),
                       summary(f"{name}, at 0", at_zero, power)))
    return at_margin, at_zero, power, line


@pytest.mark.parametrize("n, margin", [(5, 1.5), (3, 0.1)])
def test_equivalence_errs_at_most_alpha_at_the_margin_and_at_zero(n, margin):
    # A margin small against seed noise (0.1) is where "beyond the margin on either side" could err
    # twice: the test must share ALPHA between the two sides.
    def about_equal(true: float) -> Study:
        return lambda rng: [stats.equivalence(rng.normal(true, 1.0, n), margin)]

    at_margin, at_zero, power, line = at_margin_and_at_zero(about_equal, margin, 90 + n,
                                                            f"equivalence ±{margin:g}, {n} seeds")
    assert at_margin[HELD] <= BOUND, line
    assert at_margin[NOT_HELD] <= BOUND, line
    assert at_zero[NOT_HELD] <= BOUND, line
    if margin >= 1.0:
        assert power > 0.5, line


def test_group_equivalence_errs_at_most_alpha_at_the_margin_and_at_zero():
    n, margin = 3, 3.0

    def about_equal(true: float) -> Study:
        return lambda rng: [stats.group_equivalence(rng.normal(true, 1.0, n), rng.normal(0.0, 0.5, n),
                                                    margin)]

    at_margin, at_zero, power, line = at_margin_and_at_zero(about_equal, margin, 110 + n,
                                                            f"group_equivalence ±{margin:g}, {n} + {n} seeds")
    assert at_margin[HELD] <= BOUND, line
    assert at_zero[NOT_HELD] <= BOUND, line
    assert at_margin[NOT_HELD] <= BOUND, line
    assert power > 0.5, line


@pytest.mark.parametrize("n", [3, 5])
def test_no_gain_errs_at_most_alpha_at_the_margin_and_at_zero(n):
    margin = 2.0

    def gains(true: float) -> Study:
        return lambda rng: [stats.no_gain(rng.normal(true, 1.0, n), margin)]

    at_margin, at_zero, power, line = at_margin_and_at_zero(gains, margin, 130 + n,
                                                            f"no_gain below {margin:g}, {n} seeds")
    assert at_margin[HELD] <= BOUND, line
    assert at_zero[NOT_HELD] <= BOUND, line
    assert power > 0.5, line


def test_a_claim_of_four_null_parts_errs_at_most_alpha_thanks_to_holm():
    parts, n = 4, 3
    rng = np.random.default_rng(150)
    verdicts, uncorrected = Counter(), 0
    for _ in range(STUDIES):
        evidence = [stats.mean_effect(rng.normal(0.0, 1.0, n), "positive") for _ in range(parts)]
        verdicts[stats.judge(evidence)[0]] += 1
        uncorrected += any(part.p_not_held < ALPHA for part in evidence)
    null = Counter({verdict: count / STUDIES for verdict, count in verdicts.items()})
    power = verdict_rates(lambda rng: [stats.mean_effect(rng.normal(2.0, 1.0, 5), "positive")
                                       for _ in range(parts)], seed=151)[HELD]
    line = summary(f"{parts} parts, {n} seeds each", null, power,
                   f"; without Holm some part is against at p < {ALPHA:g} in {uncorrected / STUDIES:.3f}")
    assert null[HELD] <= BOUND, line
    assert null[NOT_HELD] <= BOUND, line
    assert uncorrected / STUDIES > BOUND, line  # the correction is what keeps "not held" at ALPHA
    assert power > 0.5, line


# --- exact cases -------------------------------------------------------------------------------------


@pytest.mark.parametrize("evidence", [
    stats.mean_effect([1.0, 1.2], "positive"),
    stats.mean_effect([1.0, None, math.nan], "positive"),
    stats.group_difference([1.0, 1.2], [0.0, 0.1, 0.2]),
    stats.coarse_effect([0.5, 0.5], "positive"),
    stats.equivalence([0.0, 0.01], 1.0),
    stats.group_equivalence([0.0, 0.01, 0.02], [0.0, 0.1], 1.0),
    stats.no_gain([0.0, 0.01], 1.0),
    stats.separation([[0.0, 1.0], [5.0, 6.0], [9.0, 10.0]]),
], ids=["mean_effect", "mean_effect_missing", "group_difference", "coarse_effect", "equivalence",
        "group_equivalence", "no_gain", "separation"])
def test_fewer_than_three_seeds_are_inconclusive(evidence):
    verdict, (part,) = stats.judge([evidence])
    assert verdict == INCONCLUSIVE
    assert "too few seeds" in part.why


@pytest.mark.parametrize("evidence", [
    stats.mean_effect([0.1, 0.1, 0.1], "positive"),  # their mean is 0.10000000000000002
    stats.mean_effect([2.2] * 6, "positive"),
    stats.mean_effect([1.0, 1.0, 1.0], "negative"),
    stats.group_difference([0.7, 0.7, 0.7], [0.1, 0.1, 0.1]),
    stats.equivalence([0.1, 0.1, 0.1], 1.0),
    stats.group_equivalence([0.1] * 3, [0.7] * 3, 1.0),
    stats.no_gain([0.1, 0.1, 0.1], 1.0),
    stats.separation([[0.1] * 3, [0.7] * 3]),
], ids=["mean_effect_0.1", "mean_effect_2.2", "mean_effect_1.0", "group_difference", "equivalence",
        "group_equivalence", "no_gain", "separation"])
def test_identical_seeds_are_inconclusive_for_zero_spread(evidence):
    verdict, (part,) = stats.judge([evidence])
    assert verdict == INCONCLUSIVE
    assert "zero spread" in part.why


def test_an_effect_beyond_two_standard_errors_is_not_enough():
    # The old rule called a mean beyond ±2 standard errors decided; Student's t asks for more.
    mean, se = -25.3, 11.5  # t = -2.2
    two_seeds = [mean - se, mean + se]
    verdict, (part,) = stats.judge([stats.mean_effect(two_seeds, "negative")])
    assert verdict == INCONCLUSIVE and "too few seeds" in part.why
    three_seeds = [mean - se * math.sqrt(3), mean, mean + se * math.sqrt(3)]
    assert scipy_stats.ttest_1samp(three_seeds, 0).statistic == pytest.approx(-2.2)
    evidence = stats.mean_effect(three_seeds, "negative")
    verdict, (part,) = stats.judge([evidence])
    assert verdict == INCONCLUSIVE and evidence.p_held == pytest.approx(0.0794, abs=1e-4)
    assert "effect smaller than this study resolves" in part.why


@pytest.mark.parametrize("effects", [[0.3, 0.1, 0.25], [-0.2, 0.5, 0.4, 0.9, 0.1], [-1.0, -2.0, 0.5]])
def test_mean_effect_p_values_match_scipys_one_sample_t(effects):
    for expect, alternative, opposite in [("positive", "greater", "less"), ("negative", "less", "greater")]:
        evidence = stats.mean_effect(effects, expect)
        held = scipy_stats.ttest_1samp(effects, 0, alternative=alternative)
        against = scipy_stats.ttest_1samp(effects, 0, alternative=opposite)
        assert evidence.p_held == pytest.approx(held.pvalue)
        assert evidence.p_not_held == pytest.approx(against.pvalue)
    low, high = scipy_stats.t.interval(0.90, len(effects) - 1, loc=np.mean(effects),
                                       scale=scipy_stats.sem(effects))
    assert (evidence.low, evidence.high) == (pytest.approx(low), pytest.approx(high))


@pytest.mark.parametrize("better, worse", [
    ([1.0, 1.3, 0.8], [0.2, -0.4, 0.9]),
    ([1.0, 1.3, 0.8, 1.1, 0.95], [0.2, -0.4, 0.9, 3.0, -2.0]),
    ([0.1, 0.2, 0.15, 0.3], [0.5, 0.9, -0.3]),  # unequal group sizes
])
def test_group_difference_matches_scipys_welch_t(better, worse):
    for expect, alternative, opposite in [("positive", "greater", "less"), ("negative", "less", "greater")]:
        evidence = stats.group_difference(better, worse, expect)
        welch = scipy_stats.ttest_ind(better, worse, equal_var=False, alternative=alternative)
        against = scipy_stats.ttest_ind(better, worse, equal_var=False, alternative=opposite)
        assert evidence.p_held == pytest.approx(welch.pvalue)
        assert evidence.p_not_held == pytest.approx(against.pvalue)
        assert evidence.estimate == pytest.approx(np.mean(better) - np.mean(worse))


def test_separation_is_scipys_one_way_anova():
    rng = np.random.default_rng(5)
    for _ in range(200):
        groups = [rng.normal(rng.normal(), rng.uniform(0.01, 2), rng.integers(3, 8))
                  for _ in range(rng.integers(2, 7))]
        evidence, anova = stats.separation(groups), scipy_stats.f_oneway(*groups)
        assert evidence.estimate == pytest.approx(anova.statistic, rel=1e-9)
        assert evidence.p_held == pytest.approx(anova.pvalue, rel=1e-9, abs=1e-300)


def test_coarse_effect_needs_five_seeds_and_then_gives_one_in_thirty_two():
    evidence = stats.coarse_effect([0.5] * 5, "positive")
    assert evidence.p_held == 1 / 32 and evidence.p_not_held == 1.0
    assert stats.judge([evidence])[0] == HELD
    assert stats.judge([stats.coarse_effect([-0.5] * 5, "positive")])[0] == NOT_HELD
    assert stats.coarse_effect([-0.5] * 5, "negative").p_held == 1 / 32
    for seeds in (3, 4):
        few = stats.coarse_effect([0.5] * seeds, "positive")
        verdict, (part,) = stats.judge([few])
        assert verdict == INCONCLUSIVE
        assert f"1/{2**seeds}; 5 seeds are needed" in part.why


def test_holm_adjusts_by_rank_and_keeps_missing_p_values():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.01, None, 0.04, 0.03]) == [pytest.approx(0.03), None, pytest.approx(0.06),
                                                    pytest.approx(0.06)]
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]
    assert stats.holm([]) == [] and stats.holm([None]) == [None]


def test_a_part_against_the_claim_is_not_held_only_after_holm():
    against = stats.mean_effect([-1.4, -1.0, -0.6], "positive")
    assert against.p_not_held == pytest.approx(0.0247, abs=1e-4)
    assert stats.judge([against])[0] == NOT_HELD
    undecided = stats.mean_effect([0.1, -0.1, 0.05], "positive")
    verdict, judged = stats.judge([against, undecided, undecided])
    assert verdict == INCONCLUSIVE  # 3 × 0.0247 ≥ 0.05
    assert judged[0].p_not_held_adjusted == pytest.approx(3 * against.p_not_held)
    clear = stats.mean_effect([1.0, 1.1, 0.9], "positive")
    verdict, judged = stats.judge([clear, against])
    assert verdict == NOT_HELD and [part.verdict for part in judged] == [HELD, NOT_HELD]
    assert "Holm-corrected over 2 parts" in judged[1].why


def test_evidence_text_shows_the_estimate_its_interval_and_p_value():
    assert Evidence("paired t", 0.12, 3, 0.05, 0.19, 0.012).text() \
        == "+0.120 (90 % CI +0.050 … +0.190; p = 0.012; paired t, 3 seeds)"
    evidence = stats.mean_effect([1.0, 1.1, 0.9], "positive")
    assert evidence.text(2) == "+1.00 (90 % CI +0.83 … +1.17; p = 0.002; t, 3 seeds)"
    assert stats.coarse_effect([0.5] * 5, "positive").text() == "+0.500 (p = 0.031; sign-flip, 5 seeds)"
    assert stats.mean_effect([1.0], "positive").text().endswith("t, 1 seed)")
    assert stats.mean_effect([], "positive").text() == "not measured"  # the reason is the part's own line
