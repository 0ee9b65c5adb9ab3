"""Few-label transfer curves: test loss and accuracy against the number of labels.

One line per run (coloured by β) and per baseline (grey, dashed), each with a band of
± one standard deviation over repeats, on a log axis of labelled samples; the figure of
the reproducibility report's MNIST experiment (see :mod:`betavae.transfer`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from betavae.runs import atomic_write_bytes
from betavae.viz import SVG_SETTINGS

BASELINE_STYLES = {"baseline:pixels": ("black", ":"), "baseline:pca": ("tab:gray", "--"),
                   "baseline:untrained": ("tab:brown", "-.")}


def transfer_figure(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Write the two-panel SVG of ``rows`` (as in ``transfer.csv``) to ``path``; the format follows the suffix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from betavae.transfer import group_stats

    groups = list(group_stats(rows).values())
    betas = sorted({g["beta"] for g in groups if g["beta"] is not None})
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, max(len(betas), 1)))
    markers = {dim: marker for dim, marker in zip(sorted({g["latent_dim"] for g in groups}), "osD^v<>p*h")}
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    for group in groups:
        if group["run"] in BASELINE_STYLES:
            colour, linestyle = BASELINE_STYLES[group["run"]]
            marker = markers[group["latent_dim"]] if group["run"] == "baseline:pca" else None
        else:
            colour = colours[betas.index(group["beta"])] if group["beta"] is not None else "tab:red"
            linestyle, marker = "-", markers[group["latent_dim"]]
        n = np.array(list(group["stats"]))
        for axes, key in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
            mean = np.array([s[key] for s in group["stats"].values()])
            std = np.array([s[key + "_std"] for s in group["stats"].values()])
            axes.plot(n, mean, color=colour, linestyle=linestyle, marker=marker, markersize=4,
                      label=group["label"])
            axes.fill_between(n, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
    for axes, name in ((loss_axes, "test cross-entropy (nats)"), (accuracy_axes, "test accuracy")):
        axes.set_xscale("log")
        axes.set_xlabel("labelled training samples")
        axes.set_ylabel(name)
        axes.grid(True, which="major", alpha=0.3)
    accuracy_axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize="small")
    figure.suptitle(f"few-label transfer: {title} (band: ± 1 std over repeats)")
    figure.tight_layout()
    path = Path(path)
    buffer = io.BytesIO()
    with plt.rc_context(SVG_SETTINGS):
        figure.savefig(buffer, format=path.suffix.lstrip(".") or "svg",
                       metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path
