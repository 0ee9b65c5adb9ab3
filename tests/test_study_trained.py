"""Which runs of the study count as trained (betavae.study.trained), on made-up curves and rows."""

from __future__ import annotations

import numpy as np
import pytest

from betavae.study.design import REFERENCE_RECON, TRAINED_FACTOR
from betavae.study.trained import curve_flattened, marks

REFERENCE = REFERENCE_RECON[("shapes_heart", "conv28", "gaussian")]


def falling(steps: int = 24, end: float = 10.0) -> list[float]:
    return [end * (1 + 5 * np.exp(-step / 30)) for step in range(steps)]  # still dropping ~5 % a quarter


def flat(steps: int = 24, level: float = 10.0) -> list[float]:
    noise = np.random.default_rng(0).normal(0, 0.002 * level, steps)
    return list(level * (1 + 5 * np.exp(-np.arange(steps) / 2)) + noise)  # dropped early, then level


def test_a_curve_is_flat_once_its_last_quarter_brings_little_of_its_improvement():
    assert curve_flattened(flat()) is True
    assert curve_flattened(falling(24)) is False
    assert curve_flattened([5.0] * 7) is None  # too few points to tell
    assert curve_flattened([5.0, 5.1, 4.9, 5.0, 5.2, 5.0, 5.1, 4.9]) is True  # collapsed from the start
    # a slowly converging large-β run: from 50 to 23, the last quarter 4 % of that: flat
    slow = [50 - 27 * (1 - np.exp(-step / 3)) for step in range(12)]
    assert curve_flattened(slow) is True


def row(run, seed=0, latent=10, beta=1.0, recon=REFERENCE, is_flat=True, dataset="shapes_heart",
        loss="gaussian"):
    return {"run": run, "seed": seed, "latent_dim": latent, "beta": beta, "dataset": dataset,
            "arch": "conv28", "recon": loss, "test.recon": recon, "flat": is_flat}


def test_a_reconstruction_averaged_over_pixels_is_not_held_against_the_summed_reference():
    """The references are sums over pixels; a mean is about N times smaller and would always pass."""
    per_pixel = dict(row("mean", recon=REFERENCE / 784, is_flat=False), recon_reduction="mean")
    result = marks([per_pixel])
    assert not result["mean"].trained and "no reference reconstruction" in result["mean"].why


def test_a_run_near_the_trained_reference_is_trained_and_one_far_from_it_is_not():
    result = marks([row("near", recon=REFERENCE * (TRAINED_FACTOR - 0.01), is_flat=False),
                    row("far", seed=1, recon=REFERENCE * 4, is_flat=False)])
    assert result["near"].trained and "× the trained reference" in result["near"].why
    assert not result["far"].trained and "still falling" in result["far"].why


def test_a_large_beta_run_that_stopped_improving_is_trained_when_its_least_regularised_sibling_learned():
    rows = [row("b1", beta=0.3, recon=REFERENCE * 1.1),
            row("b30", beta=30.0, recon=REFERENCE * 6, is_flat=True)]
    result = marks(rows)
    assert result["b1"].trained and result["b30"].trained
    assert "flat" in result["b30"].why and "learned" in result["b30"].why


def test_no_run_of_a_sweep_that_never_learned_is_trained_however_flat_its_curve():
    """dSprites after 200 steps: every run sits on the mean image's plateau, flat, far from trained."""
    rows = [row(f"b{beta:g}", beta=beta, recon=REFERENCE * 8, is_flat=True) for beta in (0.3, 3.0, 30.0)]
    assert not any(mark.trained for mark in marks(rows).values())


def test_without_a_reference_the_curve_decides_and_the_mark_says_so():
    rows = [row("flat", dataset="celeba", is_flat=True),
            row("falling", seed=1, dataset="celeba", is_flat=False)]
    result = marks(rows)
    assert result["flat"].trained and not result["falling"].trained
    assert "no reference" in result["flat"].why


@pytest.mark.parametrize("is_flat", [True, False, None])
def test_a_sibling_counts_only_within_its_own_seed_and_latent_size(is_flat):
    rows = [row("learned", seed=0, beta=0.3, recon=REFERENCE), row("other", seed=1, beta=30.0,
                                                                   recon=REFERENCE * 6, is_flat=is_flat)]
    assert not marks(rows)["other"].trained
