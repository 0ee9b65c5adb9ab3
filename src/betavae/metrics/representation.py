"""Representations the metrics score, and how the metrics query them.

A *representation* is a function from a batch of images to codes:
``represent(images: uint8 array (n, C, H, W)) -> array (n, D)``. For a trained model it
is the posterior mean μ (:func:`model_representation`). Metrics never call it directly
but through :func:`encode_factors`, which renders factor vectors in chunks and encodes
each chunk, so no metric has a per-sample Python loop and memory stays bounded.

One representation is not a function of images: the ground-truth factors themselves,
the ceiling every metric is checked against. A representation with the attribute
``uses_factors = True`` is handed the factor-index vectors instead of images (and no
rendering happens), which also makes tests on known answers fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from betavae.data.base import FactorDataset

Representation = Callable[[np.ndarray], np.ndarray]

# Images rendered and encoded per call: large enough to keep matrix products efficient,
# small enough that a 64×64 chunk and its activations stay well under a gigabyte.
ENCODE_CHUNK = 2048
# Images per block of points a metric encodes in one call: bounds float64 codes even for
# a 4,096-dimensional pixel code (about 270 MB a block).
IMAGES_PER_BLOCK = 4 * ENCODE_CHUNK


def encode_factors(dataset: FactorDataset, represent: Representation, factors: np.ndarray,
                   chunk: int = ENCODE_CHUNK) -> np.ndarray:
    """Codes ``(n, D)`` (float64) of the images with factor-index vectors ``factors`` ``(n, K)``."""
    factors = np.asarray(factors, dtype=np.int64)
    if getattr(represent, "uses_factors", False):
        return np.asarray(represent(factors), dtype=np.float64)
    parts = [np.asarray(represent(dataset.render(factors[start:start + chunk])), dtype=np.float64)
             for start in range(0, len(factors), chunk)]
    if not parts:
        raise ValueError("no factors to encode")
    return np.concatenate(parts)


def point_blocks(num_points: int, images_per_point: int) -> Iterator[int]:
    """Points per block, whole points only, so that a block encodes at most ~IMAGES_PER_BLOCK images.

    Metrics whose points are each made of many images (β-VAE and FactorVAE scores) encode
    block by block: one :func:`encode_factors` call per block, never one per point.
    """
    per_block = max(1, IMAGES_PER_BLOCK // images_per_point)
    for start in range(0, num_points, per_block):
        yield min(per_block, num_points - start)


def sample_codes(dataset: FactorDataset, represent: Representation, n: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` i.i.d. points: (codes ``(n, D)``, factor indices ``(n, K)``)."""
    factors = dataset.sample_factors(n, rng)
    return encode_factors(dataset, represent, factors), factors


def model_representation(model: torch.nn.Module, batch_size: int = 1024) -> Representation:
    """μ of a trained :class:`~betavae.models.BetaVAE`: the deterministic code of an image."""
    device = next(model.parameters()).device

    @torch.no_grad()
    def represent(images: np.ndarray) -> np.ndarray:
        was_training = model.training
        model.eval()
        codes = []
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start:start + batch_size]).to(device).float().div_(255)
            codes.append(model.encode(x)[0].float().cpu())
        model.train(was_training)
        return torch.cat(codes).numpy()

    return represent


class FactorRepresentation:
    """The ground-truth factor values as the code: the ceiling of every metric."""

    uses_factors = True

    def __init__(self, dataset: FactorDataset) -> None:
        self._values = [dataset.factor_values(k) for k in range(dataset.num_factors)]

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        return np.stack([values[factors[:, k]] for k, values in enumerate(self._values)], axis=1)
