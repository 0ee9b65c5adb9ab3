"""MIG and the information helpers: known answers on dSprites, and agreement with scikit-learn.

The representations are built from the true factors (``uses_factors``, nothing rendered)
so that their scores are known; one test renders images and reads the sprite's position
off them, the way an encoder would have to.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import mutual_info_score

from betavae.data import load
from betavae.data.base import FactorDataset
from betavae.errors import BetaVAEError
from betavae.metrics.information import discrete_entropy, discrete_mutual_information, histogram_discretize
from betavae.metrics.mig import mig
from betavae.metrics.representation import FactorRepresentation
from known_codes import Noise, centroid_and_area, rotation, standardised_code


@pytest.fixture(scope="module")
def dsprites() -> FactorDataset:
    return load("dsprites", test_size=1_000)






def binned_entropy_share(size: int, num_bins: int = 20) -> float:
    """The share of a uniform ``size``-valued factor's entropy that ``num_bins`` equal-width bins keep."""
    counts = np.histogram(np.arange(size), num_bins)[0]
    p = counts[counts > 0] / size
    return float(-(p * np.log(p)).sum() / np.log(size))


# --- the information helpers --------------------------------------------------------------

labels = hnp.arrays(np.int64, st.tuples(st.integers(1, 60), st.integers(1, 4)), elements=st.integers(-3, 5))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), codes=labels)
def test_mutual_information_matches_sklearn_for_every_pair(data, codes):
    factors = data.draw(
        hnp.arrays(np.int64, (len(codes), data.draw(st.integers(1, 3))), elements=st.integers(0, 6))
    )
    expected = [[mutual_info_score(f, c) for f in factors.T] for c in codes.T]
    np.testing.assert_allclose(discrete_mutual_information(codes, factors), expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(labels)
def test_entropy_matches_sklearn_and_the_entropy_of_frequencies(factors):
    expected = [mutual_info_score(f, f) for f in factors.T]
    np.testing.assert_allclose(discrete_entropy(factors), expected, rtol=1e-9, atol=1e-12)
    counts = np.unique(factors[:, 0], return_counts=True)[1]
    p = counts / counts.sum()
    assert discrete_entropy(factors)[0] == pytest.approx(-(p * np.log(p)).sum(), abs=1e-12)


@settings(max_examples=80, deadline=None)
@given(
    codes=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 50), st.integers(1, 3)),
        elements=st.sampled_from([-1e3, -2.5, -1.0, 0.0, 0.1, 0.2, 0.3, 1.0, 7.0]) | st.floats(-1e6, 1e6),
    ),
    num_bins=st.integers(1, 25),
)
def test_histogram_bins_agree_with_the_reference_digitize(codes, num_bins):
    """disentanglement_lib's ``_histogram_discretize``, 0-based; values on edges included."""
    expected = np.stack([np.digitize(c, np.histogram(c, num_bins)[1][:-1]) - 1 for c in codes.T], axis=1)
    np.testing.assert_array_equal(histogram_discretize(codes, num_bins), expected)


def test_mutual_information_of_a_function_of_a_factor_is_its_entropy():
    factor = np.arange(40).repeat(5)[:, None]
    halves = factor // 2
    assert discrete_mutual_information(halves, factor)[0, 0] == pytest.approx(np.log(20))
    assert discrete_mutual_information(factor, factor)[0, 0] == pytest.approx(np.log(40))


def test_non_finite_codes_are_refused_before_binning():
    with pytest.raises(ValueError, match="finite"):
        histogram_discretize(np.array([[0.0], [np.nan]]), 20)


# --- known answers on dSprites --------------------------------------------------------------


def test_true_factors_keep_what_twenty_bins_can_hold(dsprites):
    """Shape (3 values) and scale (6) fit in 20 bins whole: their gap is ~1. Orientation (40)
    and position (32) share bins, so the best dimension keeps only H(bins)/H(factor) of the
    factor's entropy (0.81 and 0.85); the runner-up's small estimation bias comes off that."""
    scores = mig(dsprites, FactorRepresentation(dsprites), np.random.default_rng(0), n_train=10_000)
    for name, size in zip(dsprites.factor_names, dsprites.factor_sizes, strict=True):
        ceiling = binned_entropy_share(size)
        assert ceiling - 0.015 < scores[f"mig_{name}"] <= ceiling + 0.002, name
    assert binned_entropy_share(3) == pytest.approx(1.0) and binned_entropy_share(6) == pytest.approx(1.0)
    assert scores["mig"] == pytest.approx(np.mean([scores[f"mig_{n}"] for n in dsprites.factor_names]))


def test_independent_noise_scores_near_zero(dsprites):
    scores = mig(dsprites, Noise(seed=1), np.random.default_rng(0), n_train=5_000)
    assert all(0 <= value < 0.02 for value in scores.values()), scores


def test_rotating_the_factors_lowers_mig(dsprites):
    rotate = rotation(seed=3)
    aligned = mig(dsprites, standardised_code(dsprites), np.random.default_rng(0), n_train=5_000)["mig"]
    rotated = mig(
        dsprites, standardised_code(dsprites, lambda v: v @ rotate), np.random.default_rng(0), n_train=5_000
    )["mig"]
    assert rotated < aligned - 0.4, (rotated, aligned)


def test_duplicated_dimensions_close_every_gap(dsprites):
    twice = standardised_code(dsprites, lambda v: np.concatenate([v, v], axis=1))
    scores = mig(dsprites, twice, np.random.default_rng(0), n_train=2_000)
    assert all(value == 0.0 for value in scores.values()), scores


def test_permuted_and_collapsed_dimensions_change_nothing(dsprites):
    """Which column holds a factor does not matter, and a constant column shares no information."""
    plain = mig(dsprites, standardised_code(dsprites), np.random.default_rng(0), n_train=2_000)
    permuted = mig(
        dsprites,
        standardised_code(dsprites, lambda v: v[:, [3, 0, 4, 2, 1]]),
        np.random.default_rng(0),
        n_train=2_000,
    )
    collapsed = standardised_code(dsprites, lambda v: np.concatenate([np.full((len(v), 3), 0.7), v], axis=1))
    padded = mig(dsprites, collapsed, np.random.default_rng(0), n_train=2_000)
    assert permuted == plain
    assert padded == plain


def test_an_encoder_that_reads_the_rendered_position_scores_like_the_position_factors(dsprites):
    """Through real rendering: the centroid of the lit pixels is the sprite's position up to
    a pixel, so its x/y gaps are about those of the true factors (~0.80 at 2,000 points),
    and nothing in it tracks orientation."""
    measured = mig(dsprites, centroid_and_area, np.random.default_rng(0), n_train=2_000)
    truth = mig(dsprites, FactorRepresentation(dsprites), np.random.default_rng(0), n_train=2_000)
    for name in ("pos_x", "pos_y"):
        assert measured[f"mig_{name}"] == pytest.approx(truth[f"mig_{name}"], abs=0.05)
    assert measured["mig_orientation"] < 0.05
    assert measured["mig"] < truth["mig"]


def test_the_same_seed_gives_the_same_numbers(dsprites):
    def projection(images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1) @ np.random.default_rng(5).standard_normal((64 * 64, 4))

    first = mig(dsprites, projection, np.random.default_rng(11), n_train=500)
    second = mig(dsprites, projection, np.random.default_rng(11), n_train=500)
    assert first == second
    assert set(first) == {"mig", "mig_shape", "mig_scale", "mig_orientation", "mig_pos_x", "mig_pos_y"}


def test_a_single_code_dimension_is_refused_with_advice(dsprites):
    with pytest.raises(BetaVAEError, match="at least 2 latent dimensions"):
        mig(dsprites, standardised_code(dsprites, lambda v: v[:, :1]), np.random.default_rng(0), n_train=100)
