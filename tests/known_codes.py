"""Representations whose disentanglement is known, shared by the metric tests.

Most are built from the true factors (``uses_factors = True``: nothing is rendered), so
their scores are known; ``centroid_and_area`` reads rendered images like an encoder would.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from betavae.data.base import FactorDataset
from betavae.metrics.representation import FactorRepresentation
from imagestats import centroid


def factor_code(dataset: FactorDataset, transform: Callable[[np.ndarray], np.ndarray] = lambda codes: codes,
                standardise: bool = False):
    """The true factor values ``(n, K)`` (optionally scaled to mean 0, variance 1) through ``transform``."""
    values = FactorRepresentation(dataset)
    grid = [dataset.factor_values(k) for k in range(dataset.num_factors)]
    mean = np.array([v.mean() for v in grid]) if standardise else 0.0
    std = np.array([v.std() for v in grid]) if standardise else 1.0

    def represent(factors: np.ndarray) -> np.ndarray:
        return transform((values(factors) - mean) / std)

    represent.uses_factors = True
    return represent


def standardised_code(
    dataset: FactorDataset, transform: Callable[[np.ndarray], np.ndarray] = lambda codes: codes
):
    """The standardised true factor values through ``transform``."""
    return factor_code(dataset, transform, standardise=True)


class Noise:
    """Gaussian noise from a seeded generator, independent of the factors."""

    uses_factors = True

    def __init__(self, seed: int, dims: int = 10) -> None:
        self._rng = np.random.default_rng(seed)
        self._dims = dims

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        return self._rng.standard_normal((len(factors), self._dims))


def rotation(seed: int, size: int = 5) -> np.ndarray:
    """A random orthogonal matrix (Haar-distributed: QR with the signs of R's diagonal fixed)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((size, size)))
    return q * np.sign(np.diag(r))


def centroid_and_area(images: np.ndarray) -> np.ndarray:
    """An encoder by hand: the lit pixels' centroid (column, row) and their count."""
    return np.concatenate([centroid(images), (images[:, 0] > 0).sum(axis=(1, 2))[:, None]], axis=1)


def centroid_and_size(images: np.ndarray, unit: float = 1.0) -> np.ndarray:
    """Centroid (column, row) and √area of the sprite in units of ``unit`` pixels: position and size."""
    area = (images[:, 0] > 0).sum(axis=(1, 2))
    return np.column_stack([centroid(images), np.sqrt(area)]) / unit


def in_units_of_its_spread(
    dataset: FactorDataset, represent: Callable[[np.ndarray], np.ndarray], points: int = 2_000, seed: int = 0
) -> Callable[[np.ndarray], np.ndarray]:
    """``represent`` with each code dimension divided by its standard deviation over ``points`` images.

    The codes are then of order 1 whatever unit the encoder reports in: the scale that the
    default penalty of a classifier fitted on them (scikit-learn's C = 1) assumes.
    """
    images = dataset.render(dataset.sample_factors(points, np.random.default_rng(seed)))
    spread = np.asarray(represent(images), dtype=np.float64).std(axis=0)

    def standardised(images: np.ndarray) -> np.ndarray:
        return np.asarray(represent(images), dtype=np.float64) / spread

    return standardised
