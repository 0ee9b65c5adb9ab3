"""The FactorVAE disentanglement score (Kim & Mnih 2018, "Disentangling by Factorising",
ICML, Section 4).

Why it measures disentanglement, and why it replaces the β-VAE score: fix one factor
across a batch of images and let the others vary; in a disentangled code the dimension
holding that factor is the one that barely varies. After dividing each dimension by its
spread over the whole data (so the answer does not depend on the code's units), the
dimension of least variance is a *vote* (dimension, factor). The classifier is a
majority vote, one factor per dimension, which has no parameters to fit: unlike the
β-VAE score's linear classifier it cannot combine dimensions, so a code that spreads one
factor over several dimensions, or mixes factors by a rotation, scores lower, and one
that captures only some factors cannot reach 100%.

Follows disentanglement_lib's ``compute_factor_vae`` (``evaluation/metrics/factor_vae.py``,
Locatello et al. 2019) and the values its study configuration binds
(``unsupervised_study_v1/metric_configs``: batch 64, 10,000 training and 5,000
evaluation points, 10,000 points for the global variances, ``prune_dims.threshold =
0.05``): variances with ``ddof=1``; a dimension is *active* when its global standard
deviation (the square root of the variance, as in its ``_prune_dims``) is at least the
threshold, which drops dimensions collapsed to a constant; the fixed factor takes the
value of the batch's first sample; a dimension that got no training vote predicts
factor 0 (``argmax`` of a zero column); if no dimension is active both accuracies are 0.
One deliberate difference: ``num_active_dims`` counts the active dimensions, where the
reference reports ``len(active_dims)``, the length of its boolean mask, i.e. every
dimension.
"""

from __future__ import annotations

import numpy as np

from betavae.data.base import FactorDataset
from betavae.metrics.representation import Representation, encode_factors, point_blocks, sample_codes


def factor_vae_score(
    dataset: FactorDataset,
    represent: Representation,
    rng: np.random.Generator,
    batch_size: int = 64,
    n_train: int = 10_000,
    n_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
) -> dict[str, float]:
    """Accuracy of the majority-vote classifier from least-variance dimension to fixed factor.

    Args:
        dataset: the factor dataset whose images are encoded.
        represent: the representation scored (see :mod:`betavae.metrics.representation`).
        rng: the only source of randomness (points, and their images' nuisance variation if any).
        batch_size: images per vote, all sharing the value of one factor (L in the paper).
        n_train: votes the majority-vote classifier is built from.
        n_eval: fresh votes it is scored on.
        num_variance_estimate: random images whose codes give each dimension's global variance.
        prune_threshold: smallest global *standard deviation* of an active dimension.

    Returns:
        ``train_accuracy`` and ``eval_accuracy`` in [0, 1] (chance is 1 / num_factors), and
        ``num_active_dims``, the dimensions that took part.
    """
    if batch_size < 2 or num_variance_estimate < 2 or min(n_train, n_eval) < 1:
        raise ValueError(
            "batch_size and num_variance_estimate must be at least 2 (a variance needs two samples) "
            f"and n_train, n_eval positive; got {batch_size}, {num_variance_estimate}, "
            f"{n_train}, {n_eval}"
        )
    codes, _ = sample_codes(dataset, represent, num_variance_estimate, rng)
    global_variances = codes.var(axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    train_votes = _votes(dataset, represent, rng, batch_size, n_train, global_variances, active)
    classifier = train_votes.argmax(axis=0)  # per dimension, the factor it voted for most
    eval_votes = _votes(dataset, represent, rng, batch_size, n_eval, global_variances, active)
    return {
        "train_accuracy": _accuracy(train_votes, classifier),
        "eval_accuracy": _accuracy(eval_votes, classifier),
        "num_active_dims": int(active.sum()),
    }


def _accuracy(votes: np.ndarray, classifier: np.ndarray) -> float:
    """The share of votes ``(num_factors, D)`` whose factor is the one ``classifier`` gives their
    dimension."""
    return float(votes[classifier, np.arange(votes.shape[1])].sum() / votes.sum())


def _votes(
    dataset: FactorDataset,
    represent: Representation,
    rng: np.random.Generator,
    batch_size: int,
    num_points: int,
    global_variances: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """Vote counts ``(num_factors, D)``: how often each dimension had the least variance per fixed factor."""
    votes = np.zeros((dataset.num_factors, len(global_variances)), dtype=np.int64)
    for count in point_blocks(num_points, batch_size):
        factors, dims = _vote_block(dataset, represent, rng, batch_size, count, global_variances, active)
        np.add.at(votes, (factors, dims), 1)
    return votes


def _vote_block(
    dataset: FactorDataset,
    represent: Representation,
    rng: np.random.Generator,
    batch_size: int,
    num_points: int,
    global_variances: np.ndarray,
    active: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One encoder call's worth of votes: (the factor each batch fixed, its least-variance active
    dimension)."""
    fixed = rng.integers(dataset.num_factors, size=num_points)
    factors = dataset.sample_factors(num_points * batch_size, rng).reshape(num_points, batch_size, -1)
    points = np.arange(num_points)
    factors[points, :, fixed] = factors[points, 0, fixed][:, None]
    codes = encode_factors(dataset, represent, factors.reshape(num_points * batch_size, -1), rng)
    local_variances = codes.reshape(num_points, batch_size, -1).var(axis=1, ddof=1)
    relative = local_variances[:, active] / global_variances[active]
    return fixed, np.flatnonzero(active)[relative.argmin(axis=1)]
