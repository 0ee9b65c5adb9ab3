"""Test inputs beside their reconstructions: the first thing to look at after training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from betavae.data.base import ImageSplit
from betavae.errors import BetaVAEError
from betavae.models import BetaVAE
from betavae.runs import RunDir, common_parent, load_model, shared_dataset
from betavae.viz.grid import column_grid, save_png

FILE_NAME = "reconstructions.png"


def run_title(derived: dict[str, Any], latent_dim: int) -> str:
    """The label of a run in figures: its β, β_norm and latent size."""
    return f"β={derived['beta']:.3g}\nβn={derived['beta_norm']:.2g} M={latent_dim}"


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


def compare_reconstructions(run_dirs: Sequence[str | Path], n: int = 8, out: str | Path | None = None,
                            device: str | torch.device = "cpu") -> Path:
    """Held-out inputs and their reconstructions by each run, columns labelled with β, β_norm and M.

    The runs must share a dataset; the figure goes to ``out``, else into the run folder
    (one run) or the folder that holds the runs (several: a sweep's folder).
    """
    if not run_dirs:
        raise BetaVAEError("give at least one run folder")
    runs = [RunDir(path) for path in run_dirs]
    dataset = shared_dataset(runs, "a reconstruction figure")
    configs = [run.read_config() for run in runs]
    models = [load_model(run, device) for run in runs]
    titles = [run_title(run.read_derived(), config.latent_dim) for run, config in zip(runs, configs)]
    if out is None:
        folder = runs[0].path if len(runs) == 1 else common_parent([run.path for run in runs])
        out = folder / FILE_NAME
    return reconstruction_figure(dataset.test, models, titles, Path(out), n=n)
