"""The verdict rule of the reproduction report, on made-up results whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from betavae.studies import claims
from betavae.studies.claims import HELD, INCONCLUSIVE, NOT_HELD


@pytest.mark.parametrize("samples, expect, verdict", [
    ([1.0, 1.1, 0.9, 1.05], "positive", HELD),          # a clear win
    ([-1.0, -1.1, -0.9, -1.05], "positive", NOT_HELD),  # a clear loss
    ([0.1, -0.1, 0.05, -0.02], "positive", INCONCLUSIVE),  # a tie within the spread
    ([-1.0, -1.1, -0.9], "negative", HELD),
    ([2.0], "positive", INCONCLUSIVE),                  # one seed: no spread to judge by
    ([], "positive", INCONCLUSIVE),
])
def test_judge_follows_the_stated_rule(samples, expect, verdict):
    assert claims.judge(samples, expect)[0] == verdict


def test_the_boundary_is_two_standard_errors():
    samples = np.array([1.0, 3.0])  # mean 2, sd √2, se 1
    assert claims.judge(samples, "positive")[0] == INCONCLUSIVE  # exactly at the bound is not beyond it
    assert claims.judge(samples + 0.01, "positive")[0] == HELD
    assert claims.judge(-samples - 0.01, "positive")[0] == NOT_HELD
    effect = claims.Effect.of(samples)
    assert (effect.mean, effect.se, effect.n) == (2.0, pytest.approx(1.0), 2)
    assert effect.text(2) == "+2.00 ± 2.00 (2 seeds)"


def test_a_claim_of_parts_needs_every_part():
    assert claims.combine([HELD, HELD]) == HELD
    assert claims.combine([HELD, INCONCLUSIVE]) == INCONCLUSIVE
    assert claims.combine([HELD, NOT_HELD, INCONCLUSIVE]) == NOT_HELD
    assert claims.combine([]) == INCONCLUSIVE
    judgement = claims.judged([("loss vs β", [1, 1.2, 0.9], "positive"),
                               ("loss vs M", [-2, -2.1, -1.9], "negative")])
    assert judgement.verdict == HELD
    assert [(part.name, part.expected, part.verdict) for part in judgement.parts] \
        == [("loss vs β", "> 0", HELD), ("loss vs M", "< 0", HELD)]
    assert judgement.parts[1].ours == claims.Effect.of([-2, -2.1, -1.9]).text(3)
    assert "loss vs M < 0: -2.000" in judgement.ours and judgement.why == "held in every part (2)"


def test_why_says_how_the_parts_make_the_verdict():
    clear, tie, loss = [1.0, 1.1, 0.9], [0.1, -0.1, 0.05], [-1.0, -1.1, -0.9]
    failing = claims.judged([("a", clear, "positive"), ("b", loss, "positive"), ("c", tie, "positive")])
    assert failing.verdict == NOT_HELD and failing.why == "not held in 1 of 3 parts: b"
    undecided = claims.judged([("a", clear, "positive"), ("b", tie, "positive"), ("c", tie, "positive")])
    assert undecided.verdict == INCONCLUSIVE and undecided.why == "2 of 3 parts inconclusive, none not held"
    many = claims.judged([(name, loss, "positive") for name in "abcde"])
    assert many.why == "not held in 5 of 5 parts: the parts marked so"  # too many to name in one line
    assert claims.judged([("a", loss, "positive")]).why == "its one part is not held"


def grid(value, seeds=(0, 1, 2), beta_norms=(0.002, 0.02, 0.2, 2.0), latents=(5, 10, 25), noise=0.01):
    """Rows of a made-up β_norm × M grid: ``value(beta_norm, latent_dim)`` plus seeded noise."""
    rng = np.random.default_rng(0)
    return [{"seed": seed, "beta_norm": b, "latent_dim": m, "y": value(b, m) + noise * rng.standard_normal()}
            for seed in seeds for b in beta_norms for m in latents]


def test_slopes_per_seed_recover_the_made_up_trend():
    rows = grid(lambda b, m: 3.0 * math.log10(b) - 0.5 * math.log10(m))
    by_beta = claims.slope_per_seed(rows, "beta_norm", "y", within="latent_dim")
    by_latent = claims.slope_per_seed(rows, "latent_dim", "y", within="beta_norm")
    assert by_beta == pytest.approx([3.0] * 3, abs=0.05) and by_latent == pytest.approx([-0.5] * 3, abs=0.1)
    assert claims.judge(claims.slope_per_seed(rows, "beta_norm", "y", "latent_dim"), "positive")[0] == HELD


def test_a_peak_inside_the_range_is_a_drop_and_a_monotone_score_is_not():
    inverted_u = grid(lambda b, m: -(math.log10(b) + 1.5) ** 2)  # best at β_norm ≈ 0.03
    rising = grid(lambda b, m: math.log10(b), noise=0.0)
    assert claims.judge(claims.drop_after_peak(inverted_u, "y"), "positive")[0] == HELD
    assert claims.drop_after_peak(rising, "y") == [0.0, 0.0, 0.0]


def test_peaks_moving_to_larger_beta_norm_with_latent_size_are_a_positive_shift():
    def shifting(b, m):  # the best β_norm is 0.002·m/5 … grows with m
        return -(math.log10(b) - math.log10(0.0004 * m)) ** 2

    rows = grid(shifting, beta_norms=tuple(np.logspace(-4, 0, 17)), latents=(5, 50, 500), noise=0.0)
    assert claims.judge(claims.peak_shift(rows, "y"), "positive")[0] != NOT_HELD
    assert all(effect == pytest.approx(1.0, abs=0.15) for effect in claims.peak_shift(rows, "y"))
    fixed = grid(lambda b, m: -(math.log10(b) + 2) ** 2, beta_norms=tuple(np.logspace(-4, 0, 17)), noise=0.0)
    assert claims.peak_shift(fixed, "y") == pytest.approx([0.0] * 3)


def test_paired_differences_pair_runs_by_seed():
    rows = [{"seed": s, "beta": beta, "mig": base + (0.2 if beta == 4 else 0.0)}
            for s, base in enumerate((0.1, 0.3, 0.2)) for beta in (1, 4)]
    rows.append({"seed": 9, "beta": 4, "mig": 1.0})  # no β = 1 partner: left out
    assert claims.paired_differences(rows, "mig", "beta", 4, 1) == pytest.approx([0.2, 0.2, 0.2])


def test_saturation_and_spread():
    rows = [{"seed": s, "paper": 0.99 - 0.01 * k, "later": 0.1 * k} for s in range(3) for k in range(6)]
    assert claims.share_at_least(rows, "paper", 0.95) == pytest.approx([1 / 6 * 5 - 0.5] * 3)
    gains = claims.spread_gain(rows, "later", "paper", scale=lambda column: 1.0)
    assert all(gain > 0 for gain in gains)
    assert claims.judge(gains, "positive")[0] == HELD  # every seed agrees exactly: no spread to doubt it


def test_independent_groups_and_the_no_gain_rule():
    assert claims.judge_unpaired([0.9, 0.92, 0.91], [0.5, 0.55, 0.45])[0] == HELD
    assert claims.judge_unpaired([0.5, 0.6, 0.4], [0.52, 0.5, 0.49])[0] == INCONCLUSIVE
    assert claims.judge_unpaired([0.9], [0.5, 0.6])[0] == INCONCLUSIVE
    assert claims.no_gain([0.001, -0.002, 0.0], margin=0.02)[0] == HELD
    assert claims.no_gain([0.10, 0.11, 0.09], margin=0.02)[0] == NOT_HELD
    assert claims.no_gain([0.03, -0.01, 0.05], margin=0.02)[0] == INCONCLUSIVE
