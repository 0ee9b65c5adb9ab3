"""Disentanglement, Completeness and Informativeness (Eastwood & Williams 2018, "A Framework for
the Quantitative Evaluation of Disentangled Representations", ICLR, Section 2).

Why three numbers: one predictor per factor is trained to read the factor from the
whole code, and how much it relies on each code dimension fills an importance matrix
``R`` (``D × K``). A dimension that matters for one factor only is *disentangled*
(its row concentrates on one column); a factor read from one dimension only is
*complete* (its column concentrates on one row); and how accurately the factors can be
read at all is the *informativeness*. Concentration is 1 minus the entropy of the
normalised row (base ``K``) or column (base ``D``). Disentanglement averages rows
weighted by each dimension's share of the total importance, so dimensions that matter
for nothing (collapsed ones) do not count; completeness averages columns the same way.

Details follow disentanglement_lib's ``compute_dci`` (``evaluation/metrics/dci.py``,
Locatello et al. 2019) and its ``dci.gin``: 10,000 training and 5,000 test points,
factor indices as classes, importances from the predictor's impurity-based
``feature_importances_`` (absolute values), the 1e-11 smoothing before the entropies,
informativeness as plain accuracy on the training and test points.

The predictor. The reference's is scikit-learn's ``GradientBoostingClassifier`` with
default settings (``regressor="gbt"``): 100 rounds of one depth-3 tree *per class*, so
100 × 113 trees for the factors of dSprites, minutes per representation on a small CPU.
The default, ``regressor="extra_trees"``, is 30 extremely randomised trees per factor
that consider every dimension at every split and stop at leaves of 10 points
(:data:`EXTRA_TREES`): about a second for the same fits, and on dSprites codes it ranks
the dimensions as the boosted trees do, with disentanglement and completeness close to
theirs (timings and the comparison: docs/guide/metrics.md). Numbers from the two predictors
are close but not interchangeable: compare runs scored with the same one.

Completeness is an entropy in base ``D``, so the same importance spread over more code
dimensions scores higher: adding collapsed dimensions, which get no importance, raises
it. This is the reference's definition, kept for comparability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from betavae.data.base import FactorDataset
from betavae.errors import BetaVAEError, unknown_choice
from betavae.metrics.information import normalised_entropy
from betavae.metrics.representation import Representation, sample_codes

if TYPE_CHECKING:
    from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier

REGRESSORS = ("extra_trees", "gbt")
# The fast predictor, chosen by measurement against the reference GBT on dSprites codes
# (see the module docstring). Every split looks at all dimensions, as boosting's trees do
# (a forest's usual √D would credit dimensions that merely happened to be offered), and
# leaves of at least 10 points keep deep trees from crediting noise they memorise.
EXTRA_TREES: dict[str, Any] = {"n_estimators": 30, "min_samples_leaf": 10, "max_features": None}


def dci(
    dataset: FactorDataset,
    represent: Representation,
    rng: np.random.Generator,
    n_train: int = 10_000,
    n_eval: int = 5_000,
    regressor: str = "extra_trees",
) -> dict[str, float]:
    """Disentanglement, completeness and informativeness of ``represent`` on ``dataset``.

    Args:
        dataset: the factor dataset whose images are encoded.
        represent: the representation scored (see :mod:`betavae.metrics.representation`).
        rng: the only source of randomness: which points are sampled (with their images' nuisance
            variation, if any), and the predictors' seeds.
        n_train: points each factor's predictor is fitted on.
        n_eval: fresh points its test accuracy is measured on (the reference's ``num_test``).
        regressor: ``"extra_trees"`` (fast, the default) or ``"gbt"`` (the reference's
            gradient boosted trees, far slower); see the module docstring.

    Returns:
        ``disentanglement`` and ``completeness`` in [0, 1], and
        ``informativeness_train`` / ``informativeness_test``, the mean accuracy over
        factors of their predictors on the training and test points.
    """
    if regressor not in REGRESSORS:
        raise unknown_choice("DCI regressor", regressor, REGRESSORS)
    if n_train < 1 or n_eval < 1:
        raise ValueError(f"n_train and n_eval must be positive, got {n_train} and {n_eval}")
    codes, factors = sample_codes(dataset, represent, n_train, rng)
    if codes.shape[1] < 2:
        raise BetaVAEError(
            f"DCI completeness compares how a factor's importance spreads over code dimensions, but "
            f"the representation has {codes.shape[1]}; score a model with at least 2 latent dimensions"
        )
    test_codes, test_factors = sample_codes(dataset, represent, n_eval, rng)
    importance, train_accuracy, test_accuracy = importance_matrix(
        codes, factors, test_codes, test_factors, rng, regressor
    )
    return {
        "disentanglement": disentanglement(importance),
        "completeness": completeness(importance),
        "informativeness_train": float(train_accuracy.mean()),
        "informativeness_test": float(test_accuracy.mean()),
    }


def importance_matrix(
    codes: np.ndarray,
    factors: np.ndarray,
    test_codes: np.ndarray,
    test_factors: np.ndarray,
    rng: np.random.Generator,
    regressor: str = "extra_trees",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How much each factor's predictor relies on each code dimension.

    Fits one classifier per factor on ``codes`` ``(n, D)`` → ``factors[:, k]``; returns
    the importance matrix ``(D, K)`` (each column sums to 1 unless the predictor never
    split), and the train and test accuracy per factor ``(K,)``. Seeds come from ``rng``.

    A factor that took one value in every training point (a small draw) gives nothing to
    learn: no dimension is important for it and it is predicted as that value, which is what
    the extra trees do and what boosting, which refuses a single class, is spared.
    """
    num_codes, num_factors = codes.shape[1], factors.shape[1]
    importance = np.zeros((num_codes, num_factors))
    train_accuracy, test_accuracy = np.zeros(num_factors), np.zeros(num_factors)
    for k in range(num_factors):
        seed = int(rng.integers(2**31))  # drawn for every factor, so the later factors' seeds stay put
        values = np.unique(factors[:, k])
        if len(values) == 1:
            train_accuracy[k] = 1.0
            test_accuracy[k] = np.mean(test_factors[:, k] == values[0])
            continue
        model = _predictor(regressor, seed)
        model.fit(codes, factors[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        train_accuracy[k] = np.mean(model.predict(codes) == factors[:, k])
        test_accuracy[k] = np.mean(model.predict(test_codes) == test_factors[:, k])
    return importance, train_accuracy, test_accuracy


def disentanglement(importance: np.ndarray) -> float:
    """Mean over code dimensions of 1 − entropy (base K) of their importance row, weighted by row sums."""
    per_code = 1.0 - normalised_entropy(importance, axis=1)
    return float(np.sum(per_code * _shares(importance, axis=1)))


def completeness(importance: np.ndarray) -> float:
    """Mean over factors of 1 − entropy (base D) of their importance column, weighted by column sums."""
    per_factor = 1.0 - normalised_entropy(importance, axis=0)
    return float(np.sum(per_factor * _shares(importance, axis=0)))


def _shares(importance: np.ndarray, axis: int) -> np.ndarray:
    """Each row's (``axis=1``) or column's (``axis=0``) share of the total importance; even if
    there is none."""
    if importance.sum() == 0:
        importance = np.ones_like(importance)
    return importance.sum(axis=axis) / importance.sum()


def _predictor(regressor: str, seed: int) -> ExtraTreesClassifier | GradientBoostingClassifier:
    # scikit-learn on first use: a second that every process importing the metrics registry would pay
    from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier

    if regressor == "gbt":
        return GradientBoostingClassifier(random_state=seed)
    # As many threads as torch was given: a sweep's worker has one core, and joblib's threads on a busy
    # core wait (0.3 s a run); the forest is the same at any number of jobs.
    return ExtraTreesClassifier(random_state=seed, n_jobs=torch.get_num_threads(), **EXTRA_TREES)
