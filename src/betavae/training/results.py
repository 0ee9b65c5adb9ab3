"""What a finished run adds to its folder: the held-out loss, the summary in ``metrics.json``
and the reconstructions figure.

Shared by :func:`~betavae.training.loop.train` and packed training, so that a packed run's
folder ends as its unpacked run's does.
"""

from __future__ import annotations

from typing import Any

import torch

from betavae import data, models
from betavae.config import DerivedValues, TrainConfig
from betavae.data.base import ImageSplit
from betavae.objectives import Objective, reconstruction_loss
from betavae.runs import RunDir
from betavae.training import performance
from betavae.viz.reconstructions import FILE_NAME as RECONSTRUCTIONS_FILE
from betavae.viz.reconstructions import reconstruction_figure, run_title


def write_results(run: RunDir, config: TrainConfig, derived: DerivedValues, dataset: data.ImageDataset,
                  model: models.BetaVAE, objective: Objective) -> dict[str, Any]:
    """What a finished run adds to its folder: the held-out loss, the training's summary in
    ``metrics.json`` and the reconstructions figure; returns the held-out loss."""
    device = next(model.parameters()).device
    test = test_loss(model, dataset.test.to(device), objective, seed=config.seed)
    run.update_metrics("test", test, step=config.steps)
    run.update_metrics(
        "train",
        {"steps": config.steps, "beta": derived.beta, "beta_norm": derived.beta_norm},
        step=config.steps,
    )
    reconstruction_figure(
        dataset.test,
        [model],
        [run_title(derived, config.latent_dim)],
        run.path / RECONSTRUCTIONS_FILE,
    )
    return test


def test_loss(
    model: models.BetaVAE, split: ImageSplit, objective: Objective, seed: int, batch_size: int = 500
) -> dict[str, Any]:
    """Held-out loss and the objective's terms averaged over ``split``, z sampled from a seeded generator.

    Schedules are at their end (``step`` None): the held-out loss is the objective the
    run finished training with. ``squared_error`` (per image, summed over its values, of the same
    decoded z) is recorded whatever the reconstruction loss, so runs trained with different ones
    (squared error, its logarithm, a Bernoulli likelihood) compare on one scale.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    noise = torch.Generator(device=device).manual_seed(seed + 1)
    totals: dict[str, float] = {}
    kl_dims = torch.zeros(model.latent_dim, dtype=torch.float64)
    with torch.no_grad():
        for begin in range(0, len(split), batch_size):
            positions = torch.arange(begin, min(begin + batch_size, len(split)))
            x = performance.fast_layout(split.images(positions).to(device).float().div_(255))
            output = model(x, generator=noise)
            terms = objective(output, x, None)
            count = len(positions)
            squared_error = reconstruction_loss(output.logits.float(), x, "mse").mean()
            for name, value in {"loss": terms.loss, **terms.terms, "squared_error": squared_error}.items():
                totals[name] = totals.get(name, 0.0) + value.item() * count
            kl_dims += terms.kl_per_dim.double().cpu() * count
    model.train(was_training)
    return {**{name: total / len(split) for name, total in totals.items()},
            "kl_per_dim": (kl_dims / len(split)).tolist(), "num_images": len(split)}
