"""Test inputs beside their reconstructions: the first thing to look at after training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from betavae.config import DerivedValues
from betavae.data.base import ImageSplit
from betavae.errors import BetaVAEError
from betavae.files import claim_file, make_folder, record_file
from betavae.models import BetaVAE
from betavae.runs import RunDir, common_parent, load_model, shared_dataset
from betavae.viz.grid import column_grid, save_png, written_by

# The figure training writes into its run folder.
FILE_NAME = "reconstructions.png"
# The figure ``betavae show recon`` writes without --out: another name, so that it never replaces training's.
SHOW_FILE_NAME = "show-recon.png"
# The PNG text that marks a figure as show recon's: the only existing file an --out may replace.
SHOW_SOFTWARE = "betavae show recon"


def run_title(derived: DerivedValues, latent_dim: int) -> str:
    """The label of a run in figures: its β, β_norm and latent size."""
    return f"β={derived.beta:.3g}\nβn={derived.beta_norm:.2g} M={latent_dim}"


def reconstruction_figure(split: ImageSplit, models: Sequence[BetaVAE], titles: Sequence[str], path: Path,
                          n: int = 8, seed: int = 0, software: str | None = None) -> Path:
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
    return save_png(column_grid(columns, ["input", *titles]), path, software)


def compare_reconstructions(run_dirs: Sequence[str | Path], n: int = 8, out: str | Path | None = None,
                            device: str | torch.device = "cpu", users_out: bool = False) -> Path:
    """Held-out inputs and their reconstructions by each run, columns labelled with β, β_norm and M.

    The runs must share a dataset; the figure goes to ``out``, else to
    :data:`SHOW_FILE_NAME` in the run folder (one run) or in the folder that holds the
    runs (several: a sweep's folder), never over training's own :data:`FILE_NAME`. When
    that folder is a run folder, its lock is held while the figure is made and written.
    ``users_out``: ``out`` is a user's ``--out``, which replaces only what show recon wrote
    (:func:`user_figure_path`); library callers that write under names of their own (a sweep's
    figures) leave it off and redraw their files whoever wrote them.
    """
    if not run_dirs:
        raise BetaVAEError("give at least one run folder")
    if n < 1:
        raise BetaVAEError(f"--n {n} draws no image; give --n 1 or more")
    runs = [RunDir(path) for path in run_dirs]
    if out is None:
        folder = runs[0].path if len(runs) == 1 else common_parent([run.path for run in runs])
        out = folder / SHOW_FILE_NAME
    else:
        out = user_figure_path(out) if users_out else _figure_path(out)
        make_folder(out.parent, "output folder")
    target = RunDir(out.parent)
    with target.lock_if_run_folder("betavae show"):
        dataset = shared_dataset(runs, "a reconstruction figure")
        configs = [run.read_config() for run in runs]
        models = [load_model(run, device) for run in runs]
        titles = [
            run_title(run.read_derived(), config.latent_dim)
            for run, config in zip(runs, configs, strict=True)
        ]
        figure = reconstruction_figure(dataset.test, models, titles, out, n=n, software=SHOW_SOFTWARE)
        if users_out:
            record_file(figure, SHOW_SOFTWARE)
        return figure


def user_figure_path(out: str | Path) -> Path:
    """``show recon --out``'s target: a folder's :data:`SHOW_FILE_NAME` (a name only this command
    gives), or a PNG that is new or one this command wrote before (by the folder's mark or the PNG's
    own text); never a run folder's checkpoint, config or log, nor a file of the user's (one line
    naming it, nothing written: :func:`betavae.files.claim_file`)."""
    out = _figure_path(out)
    if out.suffix.lower() != ".png":
        raise BetaVAEError(f"--out {out}: the figure is a PNG; give a file name ending in .png, or a folder")
    return claim_file(out, SHOW_SOFTWARE,
                      ours=lambda path: path.name == SHOW_FILE_NAME or written_by(path, SHOW_SOFTWARE))


def _figure_path(out: str | Path) -> Path:
    """``out`` itself, or the :data:`SHOW_FILE_NAME` in it when it is a folder."""
    return Path(out) / SHOW_FILE_NAME if Path(out).is_dir() else Path(out)
