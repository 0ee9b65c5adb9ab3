"""One β_norm × latent-size grid trained two ways, drawn on the same axes.

The study trains its squared-error grid again under log-MSE (issue 35); what a reader wants to see is
how each curve of the report's figures moves: held-out squared error, KL, blur and the score against
β_norm, one colour per latent size, the first way solid and the second dashed. Each point is the mean
over the seeds that trained at that setting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from betavae.viz import save_figure


def setting_means(rows: Sequence[Mapping[str, Any]], column: str) -> dict[int, list[tuple[float, float]]]:
    """Per latent size, (β_norm, mean of ``column`` over the seeds that have it), by β_norm."""
    values: dict[tuple[int, float], list[float]] = defaultdict(list)
    for row in rows:
        value = row.get(column)
        if isinstance(value, (int, float)) and np.isfinite(value):
            values[(int(row["latent_dim"]), float(row["beta_norm"]))].append(float(value))
    curves: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for (latent_dim, beta_norm), seen in sorted(values.items()):
        curves[latent_dim].append((beta_norm, float(np.mean(seen))))
    return dict(curves)


def paired_grid_figure(first: Sequence[Mapping[str, Any]], second: Sequence[Mapping[str, Any]],
                       panels: Mapping[str, str], labels: tuple[str, str], path: Path, title: str) -> Path:
    """Write a figure of one panel per ``panels`` item (axis label → column of the rows), each with the
    means of ``first`` (solid) and ``second`` (dashed) against β_norm, a colour per latent size."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    figure = Figure(figsize=(4.2 * len(panels), 3.6), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    latent_dims = sorted({int(row["latent_dim"]) for row in [*first, *second]})
    colours = {m: f"C{index}" for index, m in enumerate(latent_dims)}
    for ax, (label, column) in zip(axes, panels.items(), strict=True):
        for rows, style in ((first, "-"), (second, "--")):
            for latent_dim, points in setting_means(rows, column).items():
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, style, marker="o", markersize=3, color=colours[latent_dim])
        ax.set_xscale("log")
        ax.set_xlabel("β_norm")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colours[m], label=f"M = {m}") for m in latent_dims]
    handles += [Line2D([], [], color="black", linestyle=style, label=label)
                for style, label in zip(("-", "--"), labels, strict=True)]
    figure.legend(handles=handles, loc="outside right center", frameon=False)
    figure.suptitle(title)
    return save_figure(figure, path, dpi=110)
