"""Measurements of rendered sprites shared by the dataset tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def factor_grid(names: Sequence[str], sizes: Sequence[int], **fixed: int) -> np.ndarray:
    """Every factor vector with the named factors fixed and the others free."""
    axes = [np.array([fixed[n]]) if n in fixed else np.arange(s) for n, s in zip(names, sizes, strict=True)]
    return np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)


def centroid(images: np.ndarray) -> np.ndarray:
    """(n, 2) intensity centroid as (column, row) in pixel-index coordinates."""
    weights = images[:, 0].astype(np.float64)
    rows, cols = np.indices(weights.shape[1:])
    total = weights.sum(axis=(1, 2))
    return np.stack(
        [(weights * cols).sum(axis=(1, 2)) / total, (weights * rows).sum(axis=(1, 2)) / total], axis=1
    )
