"""Discrete information measures shared by the metrics: binning, entropy, mutual information.

MIG (Chen et al. 2018) compares how much each code dimension tells about each factor.
Codes are continuous, so, like disentanglement_lib (Locatello et al. 2019,
``evaluation/metrics/utils.py``), every code dimension is first cut into equal-width
bins (:func:`histogram_discretize`, its ``_histogram_discretize``), and information is
counted on the resulting labels with the plug-in estimator, in nats, exactly as
``sklearn.metrics.mutual_info_score`` (which the reference calls once per pair) does.

Here the (code dimension, factor) pairs are counted together: one ``np.bincount`` over
combined indices fills many contingency tables at once, which is much faster than one
scikit-learn call per pair (figures in docs/guide/metrics.md). DCI's entropy of an
importance row or column (:func:`normalised_entropy`) lives here too. All functions are
pure: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np


def histogram_discretize(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """Each column of ``codes`` ``(n, D)`` cut into ``num_bins`` equal-width bins: ``(n, D)``
    labels 0..num_bins-1.

    The bins span each column's own range, as ``np.histogram(column, num_bins)`` draws
    them, and a value on an inner edge goes to the bin above it: the reference's
    ``np.digitize(column, np.histogram(column, num_bins)[1][:-1])`` minus one. The edges
    are computed the way ``np.histogram`` computes them, so the labels agree exactly,
    including for values that sit on an edge. A constant column lands in one bin.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"expected codes of shape (n, D), got {codes.shape}")
    if num_bins < 1:
        raise ValueError(f"num_bins must be at least 1, got {num_bins}")
    if not np.isfinite(codes).all():
        raise ValueError("codes must be finite to be binned; the representation produced NaN or infinity")
    low, high = codes.min(axis=0), codes.max(axis=0)
    flat = low == high
    low, high = np.where(flat, low - 0.5, low), np.where(flat, high + 0.5, high)  # np.histogram's rule
    edges = np.linspace(low, high, num_bins + 1, axis=0)[:-1]  # (num_bins, D): the left edge of each bin
    labels = np.empty(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        labels[:, d] = np.searchsorted(edges[:, d], codes[:, d], side="right") - 1
    return labels


def discrete_entropy(labels: np.ndarray) -> np.ndarray:
    """The entropy (nats) of each column of ``labels`` ``(n, K)``: ``(K,)``.

    The plug-in estimate from label frequencies, equal to ``mutual_info_score(y, y)``,
    which is how disentanglement_lib's ``discrete_entropy`` computes it.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise ValueError(f"expected labels of shape (n, K) with n > 0, got {labels.shape}")
    entropies = np.empty(labels.shape[1])
    for k, column in enumerate(labels.T):
        p = np.unique(column, return_counts=True)[1] / len(column)
        entropies[k] = -(p * np.log(p)).sum()
    return entropies


def discrete_mutual_information(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Mutual information (nats) between every column of ``codes`` and every column of
    ``factors``: ``(D, K)``.

    Both are integer labels ``(n, D)`` and ``(n, K)`` over the same ``n`` points, e.g.
    binned codes and factor indices. Entry ``[d, k]`` equals
    ``sklearn.metrics.mutual_info_score(factors[:, k], codes[:, d])``; the ``D × K``
    contingency tables are counted by ``np.bincount``, as many columns at a time as
    keep the index array and the tables under 32 MB each.
    """
    codes, code_sizes = _compact(codes)
    factors, factor_sizes = _compact(factors)
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"codes and factors must describe the same points, got {codes.shape[0]} and {factors.shape[0]}"
        )
    table_cells = int(code_sizes.max()) * int(factor_sizes.max())
    cells_per_column = factors.shape[1] * max(codes.shape[0], table_cells)
    info = np.concatenate(
        [
            _mutual_information_block(codes[:, block], code_sizes[block], factors, factor_sizes)
            for block in _column_blocks(codes.shape[1], cells_per_column)
        ]
    )
    return np.maximum(info, 0.0)  # rounding can leave -1e-17 for independent labels; sklearn clips too


def normalised_entropy(weights: np.ndarray, axis: int = 0) -> np.ndarray:
    """Entropy of non-negative ``weights`` normalised along ``axis``, in base ``weights.shape[axis]``.

    The base makes 0 mean all weight on one entry and 1 mean weight spread evenly, which is
    what DCI (Eastwood & Williams 2018) reads off importance rows and columns. As in
    disentanglement_lib's ``dci.py`` (``scipy.stats.entropy(importance + 1e-11, base=…)``),
    ``1e-11`` is added to every weight first, so an all-zero slice counts as spread evenly.
    """
    weights = np.asarray(weights, dtype=np.float64) + 1e-11
    p = weights / weights.sum(axis=axis, keepdims=True)
    return -(p * np.log(p)).sum(axis=axis) / np.log(weights.shape[axis])


def _mutual_information_block(
    codes: np.ndarray, code_sizes: np.ndarray, factors: np.ndarray, factor_sizes: np.ndarray
) -> np.ndarray:
    """:func:`discrete_mutual_information` of compact labels, every contingency table in one bincount."""
    n, num_codes = codes.shape
    num_factors = factors.shape[1]
    a, b = int(code_sizes.max()), int(factor_sizes.max())
    table = np.arange(num_codes * num_factors).reshape(num_codes, num_factors)
    index = (table[None] * a + codes[:, :, None]) * b + factors[:, None, :]  # (n, D, K): cell of each point
    joint = np.bincount(index.ravel(), minlength=table.size * a * b).reshape(num_codes, num_factors, a, b) / n
    outer = joint.sum(axis=3, keepdims=True) * joint.sum(axis=2, keepdims=True)  # p(code) p(factor)
    ratio = np.divide(joint, outer, where=joint > 0, out=np.ones_like(joint))
    return (joint * np.log(ratio)).sum(axis=(2, 3))


def _column_blocks(num_codes: int, cells_per_column: int, max_cells: int = 1 << 22) -> list[slice]:
    """Slices of ``num_codes`` columns, each holding at most ``max_cells`` cells (32 MB of int64
    or float64)."""
    step = max(1, max_cells // max(1, cells_per_column))
    return [slice(start, start + step) for start in range(0, num_codes, step)]


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relabel each column to 0..m-1 in value order: ``(labels (n, C), m per column (C,))``."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise ValueError(f"expected labels of shape (n, C) with n > 0, got {labels.shape}")
    columns, sizes = [], []
    for column in labels.T:
        values, inverse = np.unique(column, return_inverse=True)
        columns.append(inverse.reshape(-1))
        sizes.append(len(values))
    return np.stack(columns, axis=1).astype(np.int64), np.asarray(sizes, dtype=np.int64)
