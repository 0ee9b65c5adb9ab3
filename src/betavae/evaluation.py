"""Score a representation with the disentanglement metrics: a run's model, or a baseline.

This is the library behind ``betavae evaluate``. The results of a run go into the
``disentanglement`` section of its ``metrics.json``, beside the held-out loss, tagged with
the checkpoint step they describe, and with each metric's seed and parameters under
``settings[<metric>]`` so that every number can be reproduced
(:func:`betavae.metrics.settings.recorded_settings`).
A result a metric could not compute (NaN) is written as null, with the reason under
``settings[<metric>]["null"]``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from betavae import data, metrics
from betavae.data.base import FactorDataset
from betavae.device import resolve_device
from betavae.errors import BetaVAEError
from betavae.metrics.representation import CodeTable, Representation, encode_factors, model_representation
from betavae.metrics.settings import (
    baseline_generator,
    check_sizes,
    images_encoded,
    metric_generator,
    metric_params,
    recorded_settings,
)
from betavae.runs import RunDir, load_model

METRICS_SECTION = "disentanglement"
# Why a result is null in metrics.json: NaN is not JSON, and a missing key would look like a bug.
NAN_REASON = ("not a number: undefined on the points drawn (such as a factor that took one value in all of "
              "them); a larger --n-train usually gives a number")


# The largest table of codes of a whole dataset worth keeping in memory (float32).
CODE_TABLE_MAX_BYTES = 1 << 30


def cheapest_representation(
    dataset: FactorDataset, represent: Representation, images_needed: int
) -> Representation:
    """``represent`` itself, or a :class:`CodeTable` of it when encoding every image once is less work.

    The table is used when the metrics would encode more images than the dataset holds
    and its codes fit in :data:`CODE_TABLE_MAX_BYTES` (so never for the 4,096-pixel code),
    and never for a dataset with nuisance variation, whose images differ at every draw.
    """
    if getattr(represent, "uses_factors", False) or dataset.has_nuisance or images_needed <= len(dataset):
        return represent
    code_dim = encode_factors(dataset, represent, dataset.index_to_factors([0])).shape[1]
    if len(dataset) * code_dim * 4 > CODE_TABLE_MAX_BYTES:
        return represent
    return CodeTable(dataset, represent)


def score(
    dataset: FactorDataset,
    represent: Representation,
    names: Sequence[str],
    seed: int,
    sizes: dict[str, int | None] | None = None,
    on_metric: Callable[[str, dict[str, float | None], float], None] | None = None,
) -> dict[str, dict[str, float | None]]:
    """Every metric in ``names`` on ``represent``; each metric gets its own generator from ``seed``.

    Giving each metric a generator of its own (:func:`metric_generator`: the seed and the
    metric's name) makes its numbers independent of which other metrics ran with it, and of
    which other metrics the registry holds.
    A value that is not a finite number comes back as None (:data:`NAN_REASON`).
    """
    needed = sum(images_encoded(name, sizes or {}) for name in names)
    represent = cheapest_representation(dataset, represent, needed)
    results: dict[str, dict[str, float | None]] = {}
    for name in names:
        start = time.perf_counter()
        with np.errstate(divide="ignore", invalid="ignore"):  # a NaN is reported as None, not as a warning
            computed = metrics.get(name).compute(
                dataset, represent, metric_generator(seed, name), **metric_params(name, sizes or {})
            )
        values = {key: float(value) if math.isfinite(value) else None for key, value in computed.items()}
        results[name] = values
        if on_metric is not None:
            on_metric(name, values, time.perf_counter() - start)
    return results


def factor_dataset(config_dataset: str, **options: Any) -> FactorDataset:
    """The dataset of a run, which must have known factors for the metrics to mean anything."""
    if not data.has_factors(config_dataset):
        raise BetaVAEError(
            f"dataset {config_dataset!r} has no known generative factors, so disentanglement "
            f"cannot be measured on it; train on {' or '.join(data.with_factors())}"
        )
    dataset = data.load(config_dataset, **options)
    assert isinstance(dataset, FactorDataset)
    return dataset


def evaluate_run(
    run_dir: str | Path,
    names: Sequence[str],
    seed: int = 0,
    sizes: dict[str, int | None] | None = None,
    device: str = "auto",
    on_metric: Callable[[str, dict[str, float | None], float], None] | None = None,
) -> dict[str, Any]:
    """Score a run's model (its posterior mean μ) and record the results in its ``metrics.json``.

    Everything that can refuse the run is checked before the minutes of scoring: the sizes,
    the folder's lock (a training or another evaluation writing into it), the config, the
    checkpoint and ``metrics.json``. The results are tagged with the checkpoint's step;
    results of another step are moved to ``history`` first, so that only scores of the same
    weights share the section.
    """
    check_sizes(names, sizes)
    run = RunDir(run_dir)
    with run.lock("betavae evaluate"):
        config = run.read_config()
        run.read_metrics()  # an unreadable metrics.json fails now, not after the scoring
        step = run.checkpoint_step()
        dataset = factor_dataset(config.dataset, **config.dataset_kwargs())
        model = load_model(run, resolve_device(device))
        results = score(dataset, model_representation(model), names, seed, sizes, on_metric)
        run.archive_results_before(step)
        section = dict(run.read_metrics().get(METRICS_SECTION, {}))
        settings = dict(section.get("settings", {}))
        for name, values in results.items():
            section[name] = values
            settings[name] = recorded_settings(name, seed, sizes)
            nulls = {key: NAN_REASON for key, value in values.items() if value is None}
            if nulls:
                settings[name]["null"] = nulls
        section["settings"] = settings
        run.update_metrics(METRICS_SECTION, section, step=step)
    return results


def evaluate_baseline(
    baseline_name: str,
    dataset_name: str,
    names: Sequence[str],
    seed: int = 0,
    sizes: dict[str, int | None] | None = None,
    latent_dim: int = 10,
    device: str = "auto",
    on_metric: Callable[[str, dict[str, float | None], float], None] | None = None,
    num_fit: int = 10_000,
    arch: str | None = None,
) -> dict[str, dict[str, float | None]]:
    """Score a baseline representation (see :mod:`betavae.metrics.baselines`) on a dataset; PCA and ICA
    are fitted on ``num_fit`` images, ``untrained`` is of architecture ``arch`` (None: the dataset's
    default)."""
    from betavae.metrics.baselines import baseline

    check_sizes(names, sizes)
    dataset = factor_dataset(dataset_name)
    represent = baseline(
        baseline_name, dataset, baseline_generator(seed), latent_dim=latent_dim,
        device=resolve_device(device), num_fit=num_fit, arch=arch,
    )
    return score(dataset, represent, names, seed, sizes, on_metric)
