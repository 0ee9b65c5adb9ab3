"""SAP: known answers on dSprites, and the per-dimension scores it is built from.

What the maximum is: with ``continuous_factors`` each score is an R², so the true factors
score ~1 (own dimension R² = 1, the others ~0). With discrete factors (the reference's
default) each score is the accuracy of a one-vs-rest *linear* SVM on one dimension; along
a line only the classes at the two ends win an interval under C = 0.01, so even a
perfect dimension names about 2 of a factor's m ordered values: shape (3) ~1.0, scale (6)
~1/3, orientation (40) ~0.05, position (32) ~0.06. The true factors' SAP is therefore
~0.18 on dSprites, not 1; what makes them the ceiling is that each factor's own
dimension beats every other, whose accuracy is chance.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from betavae.data import load
from betavae.data.base import FactorDataset
from betavae.errors import BetaVAEError
from betavae.metrics.representation import FactorRepresentation, sample_codes
from betavae.metrics.sap import _classification_scores, _squared_correlations, sap
from known_codes import Noise, centroid_and_area, rotation, standardised_code

SIZES = {"n_train": 2_000, "n_eval": 1_000}


@pytest.fixture(scope="module")
def dsprites() -> FactorDataset:
    return load("dsprites", test_size=1_000)






# --- the score matrix ---------------------------------------------------------------------


def test_each_true_factor_is_predicted_best_by_its_own_dimension(dsprites):
    rng = np.random.default_rng(0)
    codes, factors = sample_codes(dsprites, FactorRepresentation(dsprites), 2_000, rng)
    test_codes, test_factors = sample_codes(dsprites, FactorRepresentation(dsprites), 1_000, rng)
    scores = _classification_scores(codes, factors, test_codes, test_factors)
    np.testing.assert_array_equal(scores.argmax(axis=0), np.arange(5))
    chance = 1.0 / np.asarray(dsprites.factor_sizes)
    off_diagonal = scores[~np.eye(5, dtype=bool)].reshape(5, 4)  # row d: dimension d on the other factors
    assert scores[0, 0] > 0.99  # three shapes at the values 1, 2, 3: all three named
    for k, _size in enumerate(dsprites.factor_sizes):
        assert scores[k, k] > 1.5 * chance[k], dsprites.factor_names[k]
        others = np.delete(scores[:, k], k)
        assert np.all(np.abs(others - chance[k]) < 0.05), (dsprites.factor_names[k], others)
    assert off_diagonal.max() < 0.4


def test_classification_scores_are_the_reference_svms_test_accuracies():
    """disentanglement_lib fits ``LinearSVC(C=0.01, class_weight="balanced")`` per pair."""
    rng = np.random.default_rng(4)
    factors = rng.integers(0, [3, 7], size=(600, 2))
    codes = np.stack(
        [factors[:, 0] + rng.normal(0, 0.6, 600), rng.normal(size=600), factors[:, 1] * 0.3], axis=1
    )
    train, test = slice(0, 400), slice(400, None)
    scores = _classification_scores(codes[train], factors[train], codes[test], factors[test])
    for d in range(3):
        for k in range(2):
            model = LinearSVC(C=0.01, class_weight="balanced", dual=True, max_iter=100_000, tol=1e-8)
            model.fit(codes[train, d : d + 1], factors[train, k])
            assert scores[d, k] == pytest.approx(
                model.score(codes[test, d : d + 1], factors[test, k]), abs=0.006
            )


def test_dimensions_with_the_same_training_values_share_a_fit_but_score_their_own_test_values():
    rng = np.random.default_rng(5)
    factors = rng.integers(0, [3, 5], size=(300, 2))
    informative = factors[:, 0] + rng.normal(0, 0.5, 300)
    black = np.zeros(300)  # a pixel no training image touched
    train = np.stack([informative, informative, black, black], axis=1)[:200]
    test = np.stack([informative, rng.normal(size=300), black, rng.uniform(0, 3, 300)], axis=1)[200:]
    scores = _classification_scores(train, factors[:200], test, factors[200:])
    for d in range(4):
        for k in range(2):
            alone = LinearSVC(C=0.01, class_weight="balanced", dual=False)
            alone.fit(train[:, d : d + 1], factors[:200, k])
            assert scores[d, k] == alone.score(test[:, d : d + 1], factors[200:, k])
    assert scores[0, 0] != scores[1, 0]  # one fit, two test columns


def test_squared_correlations_match_numpy_and_are_zero_for_a_collapsed_dimension():
    rng = np.random.default_rng(2)
    factors = rng.integers(0, 9, size=(300, 3))
    codes = np.concatenate(
        [factors @ rng.normal(size=(3, 4)) + rng.normal(size=(300, 4)), np.full((300, 1), 3.0)], 1
    )
    scores = _squared_correlations(codes, factors)
    expected = np.corrcoef(codes[:, :4].T, factors.T)[:4, 4:] ** 2
    np.testing.assert_allclose(scores[:4], expected, rtol=1e-10)
    np.testing.assert_array_equal(scores[4], 0.0)


# --- known answers on dSprites --------------------------------------------------------------


def test_true_factors_score_their_ceiling(dsprites):
    discrete = sap(dsprites, FactorRepresentation(dsprites), np.random.default_rng(0), **SIZES)["sap"]
    continuous = sap(
        dsprites, FactorRepresentation(dsprites), np.random.default_rng(0), continuous_factors=True, **SIZES
    )["sap"]
    assert continuous > 0.99
    assert 0.15 < discrete < 0.25  # see the module docstring: ~(1 - 1/3) / 5 from shape, the rest small


def test_independent_noise_scores_near_zero(dsprites):
    assert sap(dsprites, Noise(seed=1), np.random.default_rng(0), **SIZES)["sap"] < 0.02
    assert (
        sap(dsprites, Noise(seed=1), np.random.default_rng(0), continuous_factors=True, **SIZES)["sap"] < 0.01
    )


def test_rotating_the_factors_lowers_sap(dsprites):
    """A rotation spreads every factor over several dimensions. The discrete score rests
    mostly on shape and moves by chance-sized amounts, so it is averaged over rotations."""
    aligned = sap(dsprites, standardised_code(dsprites), np.random.default_rng(0), **SIZES)["sap"]
    rotated = [
        sap(
            dsprites,
            standardised_code(dsprites, lambda v, s=s: v @ rotation(s)),
            np.random.default_rng(0),
            **SIZES,
        )["sap"]
        for s in range(5)
    ]
    assert np.mean(rotated) < aligned - 0.05, (rotated, aligned)
    continuous = sap(
        dsprites,
        standardised_code(dsprites, lambda v: v @ rotation(3)),
        np.random.default_rng(0),
        continuous_factors=True,
        **SIZES,
    )["sap"]
    assert continuous < 0.6


def test_duplicated_dimensions_close_every_gap(dsprites):
    twice = standardised_code(dsprites, lambda v: np.concatenate([v, v], axis=1))
    assert sap(dsprites, twice, np.random.default_rng(0), **SIZES)["sap"] == 0.0
    assert sap(dsprites, twice, np.random.default_rng(0), continuous_factors=True, **SIZES)["sap"] == 0.0


def test_permuted_dimensions_change_nothing(dsprites):
    plain = sap(dsprites, standardised_code(dsprites), np.random.default_rng(0), **SIZES)
    permuted = sap(
        dsprites,
        standardised_code(dsprites, lambda v: v[:, [3, 0, 4, 2, 1]]),
        np.random.default_rng(0),
        **SIZES,
    )
    assert permuted == plain


def test_collapsed_dimensions_change_sap_by_chance_at_most(dsprites):
    """A constant dimension has R² 0, so the continuous score is unchanged. Its classifier
    names one class everywhere and is right at that class's frequency, which is chance:
    like any uninformative dimension it can nudge a runner-up, never the best score."""
    collapsed = standardised_code(dsprites, lambda v: np.concatenate([np.full((len(v), 3), 0.7), v], axis=1))
    for continuous in (False, True):
        plain = sap(
            dsprites,
            standardised_code(dsprites),
            np.random.default_rng(0),
            continuous_factors=continuous,
            **SIZES,
        )
        padded = sap(dsprites, collapsed, np.random.default_rng(0), continuous_factors=continuous, **SIZES)
        if continuous:
            assert padded == plain
        else:
            assert padded["sap"] == pytest.approx(plain["sap"], abs=0.01)


def test_an_encoder_that_reads_the_rendered_position_is_scored_on_position(dsprites):
    """Through real rendering: the lit pixels' centroid follows the sprite's position almost
    linearly (R² > 0.95 on each axis) and their count follows scale (R² ~0.93), so those
    three gaps make up a continuous SAP that shape and orientation add nothing to."""
    rng = np.random.default_rng(0)
    codes, factors = sample_codes(dsprites, centroid_and_area, 1_000, rng)
    scores = _squared_correlations(codes, factors)
    assert scores[0, 3] > 0.95 and scores[1, 4] > 0.95
    assert scores[:, 2].max() < 0.05
    overall = sap(dsprites, centroid_and_area, np.random.default_rng(0), continuous_factors=True, **SIZES)[
        "sap"
    ]
    assert 0.5 < overall < 0.65  # (scale ~0.93 + x ~1 + y ~1 + shape ~0 + orientation ~0) / 5


def test_the_same_seed_gives_the_same_numbers(dsprites):
    def projection(images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1) @ np.random.default_rng(5).standard_normal((64 * 64, 4))

    first = sap(dsprites, projection, np.random.default_rng(11), n_train=400, n_eval=200)
    assert first == sap(dsprites, projection, np.random.default_rng(11), n_train=400, n_eval=200)
    assert set(first) == {"sap"}


def test_a_single_code_dimension_is_refused_with_advice(dsprites):
    with pytest.raises(BetaVAEError, match="at least 2 latent dimensions"):
        sap(
            dsprites,
            standardised_code(dsprites, lambda v: v[:, :1]),
            np.random.default_rng(0),
            n_train=100,
            n_eval=50,
        )


def test_a_factor_that_took_one_value_in_a_small_draw_scores_no_gap_instead_of_failing():
    codes = np.array([[0.0, 1.0], [1.0, 0.0]])
    factors = np.array([[3, 0], [3, 1]])  # factor 0 took one value: no dimension can learn it
    test_factors = np.array([[3, 0], [2, 1], [3, 1]])
    scores = _classification_scores(codes, factors, codes[[0, 1, 1]], test_factors)
    np.testing.assert_allclose(scores[:, 0], [2 / 3, 2 / 3])  # each predicts 3, right on two of three


def test_one_training_point_scores_no_gap_instead_of_failing(dsprites):
    # Every factor took one value in the one training point: each dimension predicts that value and
    # ties the others, so every gap, and the score, is exactly 0.
    result = sap(dsprites, Noise(0, dims=3), np.random.default_rng(0), n_train=1, n_eval=5)
    assert result == {"sap": 0.0}
