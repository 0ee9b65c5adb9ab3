"""Which factor each latent dimension tracks: the mean code as a function of each factor's value.

For a dataset with known generative factors, points are sampled uniformly, encoded to
their posterior mean μ, and grouped by the value of one factor; the average μ of one
dimension per value is one curve. Averaging over the other factors (sampled uniformly)
leaves only what the dimension says about that factor, so in a disentangled model each
active dimension's row has one strongly varying curve and flat others (the view behind
the β-VAE paper's Fig. 7 and Chen et al.'s MIG, "Isolating Sources of Disentanglement in
VAEs", NeurIPS 2018, Fig. 1). The y axes are shared along a row so that flat means flat.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from betavae import data
from betavae.data.base import FactorDataset
from betavae.errors import BetaVAEError
from betavae.metrics.representation import model_representation, sample_codes
from betavae.runs import RunDir, load_model
from betavae.viz import save_figure
from betavae.viz.traversals import active_dims, held_out_kl

FILE_NAME = "factors.svg"


def mean_code_by_factor(
    codes: np.ndarray, factors: np.ndarray, factor_sizes: tuple[int, ...]
) -> list[np.ndarray]:
    """For each factor ``k``: ``(factor_sizes[k], D)`` averages of ``codes`` over the points with each value.

    A value no point has gives NaN (a gap in the curve) rather than a made-up zero.
    """
    means = []
    for k, size in enumerate(factor_sizes):
        counts = np.bincount(factors[:, k], minlength=size).astype(np.float64)
        sums = np.zeros((size, codes.shape[1]))
        np.add.at(sums, factors[:, k], codes)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(sums / counts[:, None])
    return means


def factor_tracking_figure(
    run_dir: str | Path, num_points: int = 10_000, seed: int = 0, device: str = "cpu"
) -> Path:
    """Write ``factors.svg`` into a run folder: rows = active dimensions (most informative first),
    columns = factors, each panel the mean μ of that dimension against the factor's value.
    The folder's lock is held meanwhile.

    Args:
        run_dir: a trained run folder whose dataset has known factors
            (:func:`betavae.data.with_factors`).
        num_points: points sampled uniformly over the factors and encoded; with 10,000
            each of the 12 positions of Shapes averages about 800 codes.
        seed: seeds the sampled points.
    """
    run = RunDir(run_dir)
    if num_points < 1:
        raise BetaVAEError(f"--points {num_points} encodes no image; give --points 1 or more")
    with run.lock("betavae show"):
        config = run.read_config()
        if not data.has_factors(config.dataset):
            raise BetaVAEError(
                f"{run.path} was trained on {config.dataset}, which has no known generative "
                f"factors; factor plots need one of: {', '.join(data.with_factors())}"
            )
        kl = held_out_kl(run, config.latent_dim)
        dims = active_dims(kl)
        dataset = config.load_dataset()
        assert isinstance(dataset, FactorDataset)
        represent = model_representation(load_model(run, device))
        codes, factors = sample_codes(dataset, represent, num_points, np.random.default_rng(seed))
        means = mean_code_by_factor(codes, factors, dataset.factor_sizes)
        return save_figure(_plot(dataset, dims, [kl[d] for d in dims], means), run.path / FILE_NAME)


def _plot(dataset: FactorDataset, dims: list[int], kls: list[float], means: list[np.ndarray]) -> Figure:
    """The grid of panels (a ``Figure`` of its own: no pyplot global state)."""
    rows, cols = len(dims), dataset.num_factors
    figure = Figure(figsize=(2.0 * cols + 0.6, 1.5 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, cols, sharey="row", squeeze=False)
    for i, (dim, kl) in enumerate(zip(dims, kls, strict=True)):
        for k, name in enumerate(dataset.factor_names):
            ax = axes[i, k]
            ax.plot(dataset.factor_values(k), means[k][:, dim], marker="o", markersize=2.5, linewidth=1.2)
            if name == "shape" and hasattr(dataset, "shape_names"):
                ax.set_xticks(dataset.factor_values(k), dataset.shape_names)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(name, fontsize=9)
            if i == rows - 1:
                ax.set_xlabel(f"{name} value", fontsize=8)
        axes[i, 0].set_ylabel(f"mean μ of z{dim}\nKL {kl:.2f}", fontsize=8)
    figure.suptitle("mean code per factor value (rows: active dimensions by KL)", fontsize=10)
    return figure
