"""Decoded draws from the prior: what the generative model believes images look like."""

from __future__ import annotations

from pathlib import Path

import torch

from betavae.runs import RunDir, load_model
from betavae.viz.grid import column_grid, save_png

FILE_NAME = "samples.png"


def sample_figure(run_dir: str | Path, rows: int = 8, columns: int = 8, seed: int = 0,
                  device: str | torch.device = "cpu") -> Path:
    """A ``rows`` × ``columns`` grid of images decoded from z ~ N(0, I), written into the run folder.

    The folder's lock is held meanwhile, so a training or another command writing into it
    is a one-line error instead of interleaved writes.
    """
    run = RunDir(run_dir)
    with run.lock("betavae show"):
        model = load_model(run, device)
        images = model.sample(
            rows * columns, generator=torch.Generator(device=device).manual_seed(seed)
        ).cpu()
        grid = column_grid(list(images.view(columns, rows, *images.shape[1:])), [""] * columns)
        return save_png(grid, run.path / FILE_NAME)
