"""The two papers' own setups in the study: the report's loss trained again under log-MSE (runs paired
by name, per-seed effects, intervals that hold at the report's level on simulated effects of known mean
before they describe real runs), and the paper's table with the paper's network and protocol."""

from __future__ import annotations

import numpy as np
import pytest

from betavae.study import stats
from betavae.study.design import LMSE_SWEEP, PARTS, scale_of
from betavae.study.runner import sweep_spec
from betavae.study.study_report import effect_interval, interval_text, lmse_effects


def row(run: str, seed: int, value: float | None, trained: bool = True) -> dict:
    return {"run": run, "seed": seed, "x": value, "trained": trained}


def test_effects_pair_runs_by_name_average_each_seeds_settings_and_count_what_they_leave_out():
    mse = [row("a-s0", 0, 1.0), row("b-s0", 0, 3.0), row("a-s1", 1, 2.0), row("b-s1", 1, 2.0),
           row("c-s1", 1, 5.0, trained=False), row("d-s1", 1, None), row("only-mse", 1, 9.0)]
    lmse = [row("a-s0", 0, 2.0), row("b-s0", 0, 6.0), row("a-s1", 1, 1.0), row("b-s1", 1, 2.0),
            row("c-s1", 1, 7.0), row("d-s1", 1, 4.0)]
    effects, left_out = lmse_effects(mse, lmse, "x")
    assert effects == [pytest.approx((1.0 + 3.0) / 2), pytest.approx((-1.0 + 0.0) / 2)]  # seeds 0, 1
    assert left_out == 2  # c: not trained; d: no value under MSE. "only-mse" has no partner at all.


def test_the_interval_is_students_at_the_bonferroni_level_and_says_when_it_cannot_be_drawn():
    from scipy import stats as scipy_stats

    effects = [1.0, 2.0, 4.0]
    low, high = effect_interval(effects, parts=3)
    half = scipy_stats.t.ppf(1 - stats.ALPHA / 3, 2) * np.std(effects, ddof=1) / np.sqrt(3)
    assert (low, high) == pytest.approx((np.mean(effects) - half, np.mean(effects) + half))
    assert effect_interval([1.0, 2.0], parts=1) is None  # fewer than MIN_SEEDS
    assert effect_interval([2.0, 2.0, 2.0], parts=1) is None  # no spread to measure noise by
    assert "no interval: 2 seeds" in interval_text([1.0, 2.0], 1)
    assert interval_text([], 1) == "not measured"
    assert "Bonferroni over 3; 3 seeds" in interval_text(effects, 3)


@pytest.mark.parametrize("seeds", [3, 5])
@pytest.mark.parametrize("parts", [1, 4])
def test_simulated_intervals_cover_the_true_mean_together_at_the_reports_level(seeds, parts):
    """Effects drawn with a known mean: each interval misses it at most 2·ALPHA/parts of the time, so
    the ``parts`` intervals of a table all hold at 1 − 2·ALPHA (Bonferroni)."""
    rng = np.random.default_rng(seeds * 10 + parts)
    true_mean, draws = 0.7, 4_000
    samples = rng.normal(true_mean, 2.0, size=(draws, seeds))
    misses = 0
    for sample in samples:
        low, high = effect_interval(sample, parts)
        misses += not low <= true_mean <= high
    expected = 2 * stats.ALPHA / parts
    assert misses / draws == pytest.approx(expected, abs=4 * np.sqrt(expected / draws) + 1e-3)


def test_the_log_mse_sweep_is_the_grid_again_under_log_mse_on_the_squared_error_sets_only():
    smoke = scale_of("smoke")
    for name in ("shapes", "mnist"):
        grid, lmse = sweep_spec(PARTS[name], "grid", smoke), sweep_spec(PARTS[name], LMSE_SWEEP, smoke)
        assert grid.fixed["recon"] == "gaussian" and lmse.fixed["recon"] == "lmse"
        assert {**lmse.fixed, "recon": "gaussian"} == grid.fixed
        assert lmse.swept == grid.swept and lmse.seeds == grid.seeds
        assert "beta_vae_weak" not in lmse.metrics  # claim 6b reads the MSE grid alone
    assert LMSE_SWEEP in smoke.sweeps_of(PARTS["shapes"])
    assert LMSE_SWEEP not in smoke.sweeps_of(PARTS["dsprites"])  # trained with Bernoulli: no MSE to replace
    assert not scale_of("small").lmse_parts  # its half hour has no room for the grid again


def test_the_papers_table_is_also_trained_with_the_papers_network_and_scored_by_its_protocol():
    from betavae.study.design import PAPER_METRIC, PAPER_NET_SWEEP

    smoke, dsprites = scale_of("smoke"), PARTS["dsprites"]
    spec = sweep_spec(dsprites, PAPER_NET_SWEEP, smoke)
    compare = sweep_spec(dsprites, "compare", smoke)
    assert spec.fixed["arch"] == "fc" and compare.fixed["arch"] == "conv64"
    assert {**spec.fixed, "arch": "conv64"} == compare.fixed and spec.swept == compare.swept  # β = 1 and 4
    assert spec.metrics == [*smoke.metrics, PAPER_METRIC] and PAPER_METRIC not in compare.metrics
    assert smoke.metrics_of(dsprites)[-1] == PAPER_METRIC
    assert smoke.metrics_of(PARTS["shapes"]) == smoke.metrics
    assert PAPER_NET_SWEEP in scale_of("medium").sweeps_of(dsprites)
    assert all(PAPER_NET_SWEEP not in smoke.sweeps_of(PARTS[name]) for name in ("shapes", "mnist"))
