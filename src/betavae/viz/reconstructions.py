"""Test inputs beside their reconstructions: the first thing to look at after training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from betavae.data.base import ImageSplit
from betavae.models import BetaVAE
from betavae.viz.grid import column_grid, save_png


def reconstruction_figure(split: ImageSplit, models: Sequence[BetaVAE], titles: Sequence[str], path: Path,
                          n: int = 8, seed: int = 0) -> Path:
    """First column: ``n`` images of ``split``; column ``j + 1``: ``models[j]``'s reconstructions.

    The images are drawn at random with ``seed`` (the same for every run, so figures of
    different runs show the same inputs); the first ``n`` of a sorted synthetic split
    would all share one shape. Reconstructions decode the posterior mean μ, the
    deterministic summary of each input.
    """
    positions = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]
    inputs = split.images(positions)
    columns = [inputs]
    for model in models:
        device = next(model.parameters()).device
        columns.append(model.reconstruct(inputs.to(device).float().div(255)).cpu())
    return save_png(column_grid(columns, ["input", *titles]), path)
