"""The Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in
Variational Autoencoders", NeurIPS, Section 5).

Why a *gap*: a factor captured by one code dimension shares much information with that
dimension and little with any other, while a factor smeared over several dimensions (or
copied into two) shares about as much with the second-best dimension as with the best.
So for each factor, MIG takes the mutual information of the best code dimension minus
that of the runner-up, divided by the factor's entropy to put factors with many and
few values on one [0, 1] scale, and averages over factors. It is axis-aligned on
purpose: rotating a perfect code lowers it.

Details follow disentanglement_lib's ``compute_mig`` (``evaluation/metrics/mig.py`` and
``utils.py``, Locatello et al. 2019) and its ``mig.gin``: 10,000 points, every code
dimension cut into 20 equal-width bins over its observed range
(``_histogram_discretize``), mutual information and entropy counted on the sampled
labels in nats (as ``sklearn.metrics.mutual_info_score``). Binning caps the score of a
factor with more values than bins: a 40-valued factor in 20 bins keeps at most
``log 20 / log 40 ≈ 0.81`` of its entropy, so even the true factors of dSprites score
below 1 on orientation and position.
"""

from __future__ import annotations

import numpy as np

from betavae.data.base import FactorDataset
from betavae.errors import BetaVAEError
from betavae.metrics.information import discrete_entropy, discrete_mutual_information, histogram_discretize
from betavae.metrics.representation import Representation, sample_codes


def mig(
    dataset: FactorDataset,
    represent: Representation,
    rng: np.random.Generator,
    n_train: int = 10_000,
    num_bins: int = 20,
) -> dict[str, float]:
    """The mutual information gap of ``represent`` on ``dataset``, overall and per factor.

    Args:
        dataset: the factor dataset whose images are encoded.
        represent: the representation scored (see :mod:`betavae.metrics.representation`).
        rng: the only source of randomness: which factor vectors are sampled (and their images'
            nuisance variation, on a dataset that has some).
        n_train: points sampled to estimate the information (the reference's ``num_train``).
        num_bins: equal-width bins each code dimension is cut into before counting.

    Returns:
        ``mig``, the mean over factors, and ``mig_<factor name>`` for each factor, all in
        [0, 1]: 1 when one code dimension holds all of a factor's information and no
        other holds any; 0 when the best two dimensions hold the same amount.
    """
    if n_train < 1 or num_bins < 1:
        raise ValueError(f"n_train and num_bins must be positive, got {n_train} and {num_bins}")
    codes, factors = sample_codes(dataset, represent, n_train, rng)
    if codes.shape[1] < 2:
        raise BetaVAEError(f"MIG compares the two most informative code dimensions, but the representation "
                           f"has {codes.shape[1]}; score a model with at least 2 latent dimensions")
    information = discrete_mutual_information(histogram_discretize(codes, num_bins), factors)
    gaps = _normalised_gaps(information, discrete_entropy(factors))
    return {"mig": float(gaps.mean()),
            **{f"mig_{name}": float(gap) for name, gap in zip(dataset.factor_names, gaps, strict=True)}}


def _normalised_gaps(information: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """Per factor: (largest − second largest mutual information over code dims) / the factor's entropy.

    ``information`` is ``(D, K)``, ``entropy`` ``(K,)``; returns ``(K,)``.
    """
    top_two = np.sort(information, axis=0)[-2:]
    return (top_two[1] - top_two[0]) / entropy
