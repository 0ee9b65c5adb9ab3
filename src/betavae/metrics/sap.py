"""The Separated Attribute Predictability score (Kumar et al. 2018, "Variational Inference of
Disentangled Latent Concepts from Unlabeled Observations", ICLR, Section 3).

Why it measures disentanglement: if each factor lives in one code dimension, that single
dimension predicts the factor well and every other dimension predicts it poorly. SAP
scores how well each code dimension *alone* predicts each factor, giving a
``D × K`` score matrix, and for each factor takes the gap between the best and the
second-best dimension; the mean gap over factors is the score. Like MIG it is
axis-aligned and drops to 0 when a factor is copied into two dimensions.

Details follow disentanglement_lib's ``compute_sap`` (``evaluation/metrics/sap_score.py``,
Locatello et al. 2019) and its ``sap_score.gin``: 10,000 training and 5,000 test points;
factors treated as discrete, scored by the test accuracy of
``LinearSVC(C=0.01, class_weight="balanced")`` fitted on the one code dimension; or,
with ``continuous_factors``, by the squared correlation between the dimension and the
factor index (the R² of a linear regression), 0 for a dimension with no variance.
The SVM is solved in the primal (``dual=False``): the optimum is the same one the
reference's dual solver approaches, reached in a few Newton steps and without the dual
solver's random coordinate order, so no seed is needed.

What the discrete score can reach: a one-vs-rest linear classifier on one dimension
gives each class a line, and under the strong regularisation (C = 0.01) few of the lines
ever come out on top, mostly those of the classes at the two ends of the dimension. A
perfect dimension thus names only a few of a factor's m ordered values: on dSprites the
true factors score ~1 on shape (3 values), 1/3 to 2/3 on scale (6, depending on the
dimension's spread), but only ~2/m on orientation (0.05) and position (0.06), and their
SAP is ~0.18, not 1. The continuous variant has no such cap (the true factors score ~1).
A collapsed dimension names one class everywhere and scores that class's frequency,
which is chance, as the reference does; only the continuous variant gives it 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from betavae.data.base import FactorDataset
from betavae.errors import BetaVAEError
from betavae.metrics.representation import Representation, sample_codes

if TYPE_CHECKING:
    from sklearn.dummy import DummyClassifier
    from sklearn.svm import LinearSVC


def sap(
    dataset: FactorDataset,
    represent: Representation,
    rng: np.random.Generator,
    n_train: int = 10_000,
    n_eval: int = 5_000,
    continuous_factors: bool = False,
) -> dict[str, float]:
    """The SAP score of ``represent`` on ``dataset``.

    Args:
        dataset: the factor dataset whose images are encoded.
        represent: the representation scored (see :mod:`betavae.metrics.representation`).
        rng: the only source of randomness: which factor vectors are sampled (and their images'
            nuisance variation, on a dataset that has some).
        n_train: points the per-dimension predictors are fitted on.
        n_eval: fresh points the classifiers are scored on (the reference's ``num_test``;
            unused, and not sampled, with ``continuous_factors``, whose score is computed on
            the training points).
        continuous_factors: score each pair by R² of a linear fit of the factor index
            instead of by the accuracy of a classifier.

    Returns:
        ``sap`` in [0, 1]: the mean over factors of the best minus the second-best score
        of a single code dimension.
    """
    if n_train < 1 or (n_eval < 1 and not continuous_factors):
        raise ValueError(f"n_train and n_eval must be positive, got {n_train} and {n_eval}")
    codes, factors = sample_codes(dataset, represent, n_train, rng)
    if codes.shape[1] < 2:
        raise BetaVAEError(f"SAP compares the two most predictive code dimensions, but the representation "
                           f"has {codes.shape[1]}; score a model with at least 2 latent dimensions")
    if continuous_factors:
        scores = _squared_correlations(codes, factors)
    else:
        test_codes, test_factors = sample_codes(dataset, represent, n_eval, rng)
        scores = _classification_scores(codes, factors, test_codes, test_factors)
    return {"sap": float(_mean_top_two_gap(scores))}


def _classification_scores(codes: np.ndarray, factors: np.ndarray, test_codes: np.ndarray,
                           test_factors: np.ndarray) -> np.ndarray:
    """``(D, K)`` test accuracies of a linear SVM predicting factor ``k`` from code dimension ``d`` alone.

    A factor that took one value in every training point (a small draw) cannot be learned from
    any dimension: each predicts that value, as the best classifier would, and ties the others.
    Dimensions whose training values are identical (pixels that stayed black in every training
    image, a third of dSprites' raw pixels) share one fit: the solver is deterministic, so
    the same inputs give the same classifier, which then predicts each dimension's own test values.
    """
    from sklearn.dummy import DummyClassifier  # on first use: a second every registry import would pay
    from sklearn.svm import LinearSVC

    scores = np.zeros((codes.shape[1], factors.shape[1]))
    fitted: dict[tuple[bytes, int], LinearSVC | DummyClassifier] = {}
    for d in range(codes.shape[1]):
        column = np.ascontiguousarray(codes[:, d:d + 1])
        values = column.tobytes()
        for k in range(factors.shape[1]):
            classifier = fitted.get((values, k))
            if classifier is None:
                classifier = LinearSVC(C=0.01, class_weight="balanced", dual=False)
                if len(np.unique(factors[:, k])) == 1:
                    classifier = DummyClassifier(strategy="most_frequent")
                classifier.fit(column, factors[:, k])
                fitted[(values, k)] = classifier
            scores[d, k] = np.mean(classifier.predict(test_codes[:, d:d + 1]) == test_factors[:, k])
    return scores


def _squared_correlations(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``(D, K)`` squared correlations; 0 for a code dimension whose variance is at most 1e-12.

    The reference's per-pair ``cov(μ, y)² / (var μ · var y)`` with ``ddof=1``, all pairs at once.
    """
    centred_codes = codes - codes.mean(axis=0)
    centred_factors = factors - factors.mean(axis=0)
    n = len(codes) - 1
    covariance = centred_codes.T @ centred_factors / n
    code_variance = (centred_codes**2).sum(axis=0) / n
    factor_variance = (centred_factors**2).sum(axis=0) / n
    active = code_variance > 1e-12
    scores = np.zeros_like(covariance)
    scores[active] = covariance[active] ** 2 / np.outer(code_variance[active], factor_variance)
    return scores


def _mean_top_two_gap(scores: np.ndarray) -> float:
    """Mean over factors (columns) of the largest minus the second-largest score."""
    top_two = np.sort(scores, axis=0)[-2:]
    return float(np.mean(top_two[1] - top_two[0]))
