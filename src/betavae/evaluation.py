"""Score a representation with the disentanglement metrics: a run's model, or a baseline.

This is the library behind ``betavae evaluate``. The results of a run go into the
``disentanglement`` section of its ``metrics.json``, beside the held-out loss, with the
seed and sizes that produced them so that the numbers can be reproduced.
"""

from __future__ import annotations

import inspect
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
from betavae.runs import RunDir, load_model

METRICS_SECTION = "disentanglement"
# The size options users set once for every metric; each metric takes those it has.
SIZE_ALIASES = {"n_train": ("num_train",), "n_eval": ("num_eval", "num_test")}


def parse_metric_names(text: str) -> list[str]:
    """``"mig,dci"`` or ``"all"`` → metric names, each checked against the registry."""
    names = list(metrics.METRICS) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        metrics.get(name)
    if not names:
        raise BetaVAEError("no metric given; choose from: all, " + ", ".join(metrics.METRICS))
    return names


def metric_params(name: str, sizes: dict[str, int | None]) -> dict[str, int]:
    """The size options (``n_train``, ``n_eval``) that metric ``name`` accepts, under its own names."""
    accepted = inspect.signature(metrics.get(name)).parameters
    params: dict[str, int] = {}
    for option, value in sizes.items():
        if value is None:
            continue
        for param in SIZE_ALIASES[option]:
            if param in accepted:
                params[param] = value
    return params


# The largest table of codes of a whole dataset worth keeping in memory (float32).
CODE_TABLE_MAX_BYTES = 1 << 30


def images_encoded(name: str, params: dict[str, int]) -> int:
    """How many images metric ``name`` encodes given ``params`` (its defaults fill the rest)."""
    signature = inspect.signature(metrics.get(name)).parameters
    p = {key: value.default for key, value in signature.items() if value.default is not inspect.Parameter.empty}
    p.update(params)
    counts = {
        "beta_vae": lambda: (p["num_train"] + p["num_eval"]) * 2 * p["batch_size"],
        "factor_vae": lambda: (p["num_train"] + p["num_eval"]) * p["batch_size"] + p["num_variance_estimate"],
        "mig": lambda: p["num_train"],
        "dci": lambda: p["num_train"] + p["num_test"],
        "sap": lambda: p["num_train"] + p["num_test"],
    }
    return counts[name]()


def cheapest_representation(dataset: FactorDataset, represent: Representation, images_needed: int) -> Representation:
    """``represent`` itself, or a :class:`CodeTable` of it when encoding every image once is less work.

    The table is used when the metrics would encode more images than the dataset holds
    and its codes fit in :data:`CODE_TABLE_MAX_BYTES` (so never for the 4,096-pixel code).
    """
    if getattr(represent, "uses_factors", False) or images_needed <= len(dataset):
        return represent
    code_dim = encode_factors(dataset, represent, dataset.index_to_factors([0])).shape[1]
    if len(dataset) * code_dim * 4 > CODE_TABLE_MAX_BYTES:
        return represent
    return CodeTable(dataset, represent)


def score(dataset: FactorDataset, represent: Representation, names: Sequence[str], seed: int,
          sizes: dict[str, int | None] | None = None,
          on_metric: Callable[[str, dict[str, float], float], None] | None = None) -> dict[str, dict[str, float]]:
    """Every metric in ``names`` on ``represent``; each metric gets its own generator from ``seed``.

    Giving each metric a generator of its own (seeded by the seed and the metric's place
    in the registry) makes its numbers independent of which other metrics ran with it.
    """
    needed = sum(images_encoded(name, metric_params(name, sizes or {})) for name in names)
    represent = cheapest_representation(dataset, represent, needed)
    results: dict[str, dict[str, float]] = {}
    for name in names:
        rng = np.random.default_rng([seed, list(metrics.METRICS).index(name)])
        start = time.perf_counter()
        values = metrics.get(name)(dataset, represent, rng, **metric_params(name, sizes or {}))
        values = {key: float(value) for key, value in values.items()}
        results[name] = values
        if on_metric is not None:
            on_metric(name, values, time.perf_counter() - start)
    return results


def factor_dataset(config_dataset: str, **options: Any) -> FactorDataset:
    """The dataset of a run, which must have known factors for the metrics to mean anything."""
    if not data.has_factors(config_dataset):
        raise BetaVAEError(f"dataset {config_dataset!r} has no known generative factors, so disentanglement "
                           f"cannot be measured on it; train on shapes or dsprites")
    dataset = data.load(config_dataset, **options)
    assert isinstance(dataset, FactorDataset)
    return dataset


def evaluate_run(run_dir: str | Path, names: Sequence[str], seed: int = 0, sizes: dict[str, int | None] | None = None,
                 device: str = "auto", on_metric: Callable[[str, dict[str, float], float], None] | None = None,
                 ) -> dict[str, Any]:
    """Score a run's model (its posterior mean μ) and record the results in its ``metrics.json``."""
    run = RunDir(run_dir)
    config = run.read_config()
    dataset = factor_dataset(config.dataset, **config.dataset_kwargs())
    model = load_model(run, resolve_device(device))
    results = score(dataset, model_representation(model), names, seed, sizes, on_metric)
    section = {**run.read_metrics().get(METRICS_SECTION, {}), **results}
    section["settings"] = {"seed": seed, **{k: v for k, v in (sizes or {}).items() if v is not None}}
    run.update_metrics(METRICS_SECTION, section)
    return results


def evaluate_baseline(baseline_name: str, dataset_name: str, names: Sequence[str], seed: int = 0,
                      sizes: dict[str, int | None] | None = None, latent_dim: int = 10, device: str = "auto",
                      on_metric: Callable[[str, dict[str, float], float], None] | None = None,
                      ) -> dict[str, dict[str, float]]:
    """Score a baseline representation (see :mod:`betavae.metrics.baselines`) on a dataset."""
    from betavae.metrics.baselines import baseline

    dataset = factor_dataset(dataset_name)
    represent = baseline(baseline_name, dataset, np.random.default_rng([seed, 1]), latent_dim=latent_dim,
                         device=resolve_device(device))
    return score(dataset, represent, names, seed, sizes, on_metric)
