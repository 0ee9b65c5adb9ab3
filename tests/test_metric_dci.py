"""DCI: the scores of importance matrices with known shapes, known answers on dSprites, and
agreement of the fast predictor with the reference's gradient boosted trees.

What the maximum is: the true factors are read perfectly (informativeness 1), each by
its own dimension alone (a one-hot importance matrix), so disentanglement and
completeness are 1 up to the reference's 1e-11 smoothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import entropy

from betavae.data import load
from betavae.data.base import FactorDataset
from betavae.errors import BetaVAEError
from betavae.metrics.dci import completeness, dci, disentanglement, importance_matrix
from betavae.metrics.information import normalised_entropy
from betavae.metrics.representation import FactorRepresentation, sample_codes
from known_codes import Noise, centroid_and_area, rotation, standardised_code

SIZES = {"n_train": 2_000, "n_eval": 1_000}


@pytest.fixture(scope="module")
def dsprites() -> FactorDataset:
    return load("dsprites", test_size=1_000)






# --- scores of importance matrices ------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(2, 8), st.integers(2, 6)), elements=st.floats(0, 10)))
def test_normalised_entropy_is_scipys_entropy_in_the_base_of_the_outcomes(weights):
    """The reference calls ``scipy.stats.entropy(importance + 1e-11, base=…)`` on rows and columns."""
    np.testing.assert_allclose(
        normalised_entropy(weights, axis=0),
        entropy(weights + 1e-11, base=weights.shape[0]),
        rtol=1e-9,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        normalised_entropy(weights, axis=1),
        entropy(weights.T + 1e-11, base=weights.shape[1]),
        rtol=1e-9,
        atol=1e-12,
    )


def test_one_dimension_per_factor_scores_one_and_spread_importance_scores_zero():
    assert disentanglement(np.eye(5)) == pytest.approx(1.0, abs=1e-8)
    assert completeness(np.eye(5)) == pytest.approx(1.0, abs=1e-8)
    assert disentanglement(np.ones((10, 5))) == pytest.approx(0.0, abs=1e-12)
    assert completeness(np.ones((10, 5))) == pytest.approx(0.0, abs=1e-12)


def test_a_factor_split_over_two_dimensions_costs_completeness_not_disentanglement():
    halves = np.vstack([np.eye(5), np.eye(5)]) / 2  # each factor read equally from two of ten dimensions
    assert disentanglement(halves) == pytest.approx(1.0, abs=1e-8)
    assert completeness(halves) == pytest.approx(1 - np.log(2) / np.log(10))


def test_dimensions_of_no_importance_do_not_weigh_on_disentanglement():
    mixed = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    padded = np.vstack([mixed, np.zeros((4, 2))])
    assert disentanglement(padded) == pytest.approx(disentanglement(mixed), abs=1e-9)
    assert disentanglement(np.zeros((3, 2))) == pytest.approx(0.0, abs=1e-12)  # no importance at all: even


# --- the fast predictor against the reference ----------------------------------------------------


def mixed_codes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Three factors read from six dimensions with a known order of importance per factor:
    factor 0 from dim 0, then dim 1; factor 1 from dim 1, then 0, then 2; factor 2 from
    dim 3, then 2; dims 4 and 5 are noise."""
    factors = rng.integers(0, [3, 6, 4], size=(n, 3))
    z = (factors - factors.mean(axis=0)) / factors.std(axis=0)
    codes = np.stack(
        [
            z[:, 0] + 0.5 * z[:, 1], z[:, 1] - 0.3 * z[:, 0], 0.5 * z[:, 1] + z[:, 2], z[:, 2], np.zeros(n),
            np.zeros(n),
        ],
        axis=1,
    )
    return codes + 0.2 * rng.standard_normal(codes.shape) * [1, 1, 1, 1, 5, 5], factors


@pytest.mark.slow
def test_extra_trees_rank_dimensions_as_the_reference_boosted_trees_do():
    rng = np.random.default_rng(0)
    codes, factors = mixed_codes(rng, 1_000)
    test_codes, test_factors = mixed_codes(rng, 500)
    expected = [[0, 1], [1, 0, 2], [3, 2]]
    for regressor in ("extra_trees", "gbt"):
        importance, _, accuracy = importance_matrix(
            codes, factors, test_codes, test_factors, np.random.default_rng(1), regressor
        )
        for k, order in enumerate(expected):
            ranked = np.argsort(-importance[:, k])
            assert ranked[: len(order)].tolist() == order, (regressor, k, importance[:, k])
        assert importance[4:].max() < 0.03, regressor  # noise dimensions
        assert accuracy.min() > 0.7, regressor


# --- known answers on dSprites --------------------------------------------------------------


def test_true_factors_score_the_maximum(dsprites):
    scores = dci(dsprites, FactorRepresentation(dsprites), np.random.default_rng(0), **SIZES)
    assert scores == pytest.approx(
        {
            "disentanglement": 1.0,
            "completeness": 1.0,
            "informativeness_train": 1.0,
            "informativeness_test": 1.0,
        },
        abs=1e-6,
    )


def test_independent_noise_is_neither_disentangled_nor_informative(dsprites):
    scores = dci(dsprites, Noise(seed=1), np.random.default_rng(0), **SIZES)
    chance = np.mean(1.0 / np.asarray(dsprites.factor_sizes))
    assert scores["disentanglement"] < 0.05 and scores["completeness"] < 0.05
    assert scores["informativeness_test"] == pytest.approx(chance, abs=0.03)


def test_rotating_the_factors_lowers_disentanglement(dsprites):
    rotated = dci(
        dsprites, standardised_code(dsprites, lambda v: v @ rotation(3)), np.random.default_rng(0), **SIZES
    )
    assert rotated["disentanglement"] < 0.5 and rotated["completeness"] < 0.5
    assert rotated["informativeness_test"] < 0.9  # trees cut along axes: a rotated code is harder to read


def test_duplicated_dimensions_cost_completeness_only(dsprites):
    """Each factor's importance is shared by its two copies: completeness falls to about
    1 − log 2 / log 10 (0.70) when shared evenly, and no dimension serves two factors."""
    twice = dci(
        dsprites,
        standardised_code(dsprites, lambda v: np.concatenate([v, v], axis=1)),
        np.random.default_rng(0),
        **SIZES,
    )
    assert twice["disentanglement"] == pytest.approx(1.0, abs=1e-6)
    assert 1 - np.log(2) / np.log(10) - 0.01 < twice["completeness"] < 0.8
    assert twice["informativeness_test"] == pytest.approx(1.0)


def test_permuted_dimensions_change_nothing(dsprites):
    plain = dci(
        dsprites, standardised_code(dsprites, lambda v: v @ rotation(3)), np.random.default_rng(0), **SIZES
    )
    permuted = dci(
        dsprites,
        standardised_code(dsprites, lambda v: (v @ rotation(3))[:, [3, 0, 4, 2, 1]]),
        np.random.default_rng(0),
        **SIZES,
    )
    # The trees' random thresholds meet the columns in another order, so not bit for bit.
    assert permuted == pytest.approx(plain, abs=0.02)


@pytest.mark.slow
def test_collapsed_dimensions_get_no_importance(dsprites):
    collapsed = standardised_code(
        dsprites, lambda v: np.concatenate([np.full((len(v), 3), 0.7), v @ rotation(3)], axis=1)
    )
    rng = np.random.default_rng(0)
    codes, factors = sample_codes(dsprites, collapsed, 2_000, rng)
    test_codes, test_factors = sample_codes(dsprites, collapsed, 1_000, rng)
    importance, _, _ = importance_matrix(codes, factors, test_codes, test_factors, rng)
    np.testing.assert_array_equal(importance[:3], 0.0)
    np.testing.assert_allclose(importance.sum(axis=0), 1.0)
    plain = dci(
        dsprites, standardised_code(dsprites, lambda v: v @ rotation(3)), np.random.default_rng(0), **SIZES
    )
    padded = dci(dsprites, collapsed, np.random.default_rng(0), **SIZES)
    assert padded["disentanglement"] == pytest.approx(plain["disentanglement"], abs=0.02)


def test_an_encoder_that_reads_the_rendered_sprite_is_credited_where_it_looks(dsprites):
    """Through real rendering: the centroid's coordinates carry the position (read almost
    perfectly), the lit-pixel count carries scale, and nothing carries orientation."""
    rng = np.random.default_rng(0)
    codes, factors = sample_codes(dsprites, centroid_and_area, 2_000, rng)
    test_codes, test_factors = sample_codes(dsprites, centroid_and_area, 1_000, rng)
    importance, _, accuracy = importance_matrix(codes, factors, test_codes, test_factors, rng)
    names = dsprites.factor_names
    assert importance[:, names.index("pos_x")].argmax() == 0 and importance[0, names.index("pos_x")] > 0.9
    assert importance[:, names.index("pos_y")].argmax() == 1 and importance[1, names.index("pos_y")] > 0.9
    assert importance[:, names.index("scale")].argmax() == 2
    assert accuracy[names.index("pos_x")] > 0.95 and accuracy[names.index("pos_y")] > 0.95
    assert accuracy[names.index("orientation")] < 2.0 / 40


def test_the_same_seed_gives_the_same_numbers(dsprites):
    def projection(images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1) @ np.random.default_rng(5).standard_normal((64 * 64, 4))

    first = dci(dsprites, projection, np.random.default_rng(11), n_train=400, n_eval=200)
    assert first == dci(dsprites, projection, np.random.default_rng(11), n_train=400, n_eval=200)
    assert set(first) == {"disentanglement", "completeness", "informativeness_train", "informativeness_test"}


def test_an_unknown_regressor_is_refused_with_the_choices(dsprites):
    with pytest.raises(BetaVAEError, match="extra_trees, gbt"):
        dci(dsprites, FactorRepresentation(dsprites), np.random.default_rng(0), regressor="svm")


def test_a_single_code_dimension_is_refused_with_advice(dsprites):
    with pytest.raises(BetaVAEError, match="at least 2 latent dimensions"):
        dci(
            dsprites,
            standardised_code(dsprites, lambda v: v[:, :1]),
            np.random.default_rng(0),
            n_train=100,
            n_eval=50,
        )
