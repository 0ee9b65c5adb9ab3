"""Few-label transfer curves: test loss and accuracy against the number of labels.

One line per run (coloured by β) and per baseline (grey, dashed), each with a band of
± one standard deviation over repeats, on a log axis of labelled samples; the figure of
the reproducibility report's MNIST experiment (see :mod:`betavae.transfer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from betavae.viz import save_figure

BASELINE_STYLES = {"baseline:pixels": ("black", ":"), "baseline:pca": ("tab:gray", "--"),
                   "baseline:untrained": ("tab:brown", "-.")}


@dataclass(frozen=True)
class Score:
    """Mean and standard deviation (``ddof=0``) over repeats of one representation's scores at one ``n``."""

    loss: float
    loss_std: float
    accuracy: float
    accuracy_std: float


@dataclass(frozen=True)
class TransferCurve:
    """One representation (a run, or a baseline of one latent size) and its :class:`Score` per ``n``.

    ``run`` is the run folder's name, or ``baseline:NAME``; ``label`` is how the figure and
    the summary name it (β, β_norm and the latent size M, and the run's folder name when
    another run shares them: seeds of one setting).
    """

    run: str
    beta: float | None
    beta_norm: float | None
    latent_dim: int
    label: str
    scores: dict[int, Score]

    @property
    def is_baseline(self) -> bool:
        return self.run.startswith("baseline:")


def transfer_figure(curves: Sequence[TransferCurve], path: str | Path, title: str) -> Path:
    """Write the two-panel figure of ``curves`` to ``path`` (SVG or PNG, by its suffix)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    betas = sorted({curve.beta for curve in curves if curve.beta is not None})
    colours = colormaps["viridis"](np.linspace(0.0, 0.9, max(len(betas), 1)))
    markers = {
        dim: marker
        for dim, marker in zip(sorted({curve.latent_dim for curve in curves}), "osD^v<>p*h", strict=False)
    }
    figure = Figure(figsize=(11, 4.2))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for curve in curves:
        if curve.run in BASELINE_STYLES:
            colour, linestyle = BASELINE_STYLES[curve.run]
            marker = markers[curve.latent_dim] if curve.run == "baseline:pca" else None
        else:
            colour = colours[betas.index(curve.beta)] if curve.beta is not None else "tab:red"
            linestyle, marker = "-", markers[curve.latent_dim]
        n = np.array(list(curve.scores))
        for axes, key in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
            mean = np.array([getattr(score, key) for score in curve.scores.values()])
            std = np.array([getattr(score, key + "_std") for score in curve.scores.values()])
            axes.plot(
                n, mean, color=colour, linestyle=linestyle, marker=marker, markersize=4, label=curve.label
            )
            axes.fill_between(n, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
    for axes, name in ((loss_axes, "test cross-entropy (nats)"), (accuracy_axes, "test accuracy")):
        axes.set_xscale("log")
        axes.set_xlabel("labelled training samples")
        axes.set_ylabel(name)
        axes.grid(True, which="major", alpha=0.3)
    accuracy_axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize="small")
    figure.suptitle(f"few-label transfer: {title} (band: ± 1 std over repeats)")
    figure.tight_layout()
    return save_figure(figure, path)
