"""How each metric is run and reported: its names, sizes, seeds and headline, from the registry alone.

The config checks ``--eval``'s sizes, a sweep's grid its metrics, evaluation records the
settings of every number, and tables, figures and progress lines show each metric's main
score. All of that depends on :data:`betavae.metrics.METRICS` and nothing else, so it lives
here, beside the registry, where the config, the sweeps and evaluation can all read it
without importing one another. A metric's ``settings`` (``metrics.json``'s
``settings[<metric>]``) are its seed and every parameter it ran with: its function called
with those parameters and :func:`metric_generator` of the seed and its name gives the same
numbers again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from betavae import metrics
from betavae.checks import comma_separated
from betavae.errors import BetaVAEError
from betavae.generators import named_generator


def parse_metric_names(text: str, flag: str = "--metrics") -> list[str]:
    """``"mig,dci"`` or ``"all"`` → metric names, each checked against the registry; errors name ``flag``.

    Read as every list option is (:func:`betavae.checks.comma_separated`).
    """
    if not text.strip():
        raise BetaVAEError(f"no metric given; choose from: all, {', '.join(metrics.METRICS)} ({flag})")
    names = list(metrics.ALL_METRICS) if text.strip() == "all" else comma_separated(text, flag)
    for name in names:
        try:
            metrics.get(name)
        except BetaVAEError as error:
            raise BetaVAEError(f"{error} ({flag})") from None
    return names


def metric_sizes(
    n_train: int | None, n_eval: int | None, batch_size: int | None = None
) -> dict[str, int | None]:
    """The sizes (:data:`betavae.metrics.SIZE_NAMES`) a sweep or a study hands every metric; the batch only
    when set, so that the settings of runs measured before it could be set still match what is asked."""
    sizes = {"n_train": n_train, "n_eval": n_eval}
    return {**sizes, "batch_size": batch_size} if batch_size is not None else sizes


def metric_params(name: str, sizes: Mapping[str, int | None]) -> dict[str, int]:
    """The sizes given (``n_train``, ``n_eval``; None: its default) that metric ``name`` takes."""
    taken = metrics.get(name).sizes
    return {option: value for option, value in sizes.items() if value is not None and option in taken}


def metric_settings(name: str, sizes: Mapping[str, int | None]) -> dict[str, Any]:
    """Every parameter metric ``name`` runs with given ``sizes``: its defaults, overridden by the
    sizes given."""
    return {**metrics.get(name).defaults, **metric_params(name, sizes)}


def recorded_settings(name: str, seed: int, sizes: Mapping[str, int | None] | None) -> dict[str, Any]:
    """What ``metrics.json`` records of how metric ``name`` was run: its seed and every parameter."""
    return {"seed": seed, **metric_settings(name, sizes or {})}


def metric_generator(seed: int, name: str) -> np.random.Generator:
    """The generator metric ``name`` draws its points from under ``seed``, whatever else runs with it."""
    return named_generator(seed, f"metric:{name}")


def baseline_generator(seed: int) -> np.random.Generator:
    """The generator a baseline (PCA, ICA, an untrained encoder) is fitted with under ``seed``."""
    return named_generator(seed, "baseline")


def images_encoded(name: str, sizes: Mapping[str, int | None]) -> int:
    """How many images metric ``name`` encodes given ``sizes`` (its defaults fill the rest)."""
    return metrics.get(name).images_encoded(metric_settings(name, sizes))


def check_sizes(
    names: Sequence[str], sizes: Mapping[str, int | None] | None, called: Mapping[str, str] | None = None
) -> None:
    """Refuse sizes too small for a metric in ``names`` (its ``min_sizes``), before any work.

    A metric given too few points either crashes deep in scikit-learn or returns NaN after
    the model was loaded and the dataset encoded; saying so first, with the size that
    works, costs nothing. ``called`` maps a size option to what the user typed for it
    (``betavae train``'s ``--eval-n-train``); by default ``betavae evaluate``'s flags.
    """
    sizes = sizes or {}

    def flag(option: str) -> str:
        return (called or {}).get(option, "--" + option.replace("_", "-"))

    for name in names:
        for option, value in metric_params(name, sizes).items():
            least = metrics.get(name).min_sizes.get(option, 1)
            if value < least:
                typed = flag(option)
                raise BetaVAEError(
                    f"{typed} {value} is too small for {name} (it needs at least {least}); "
                    f"give {typed} {least} or more"
                )
    for option, value in sizes.items():
        if value is not None and value < 1:  # an option none of the chosen metrics takes
            raise BetaVAEError(
                f"{flag(option)} {value} is too small (it counts points); give {flag(option)} 1 or more"
            )


def headline_value(name: str, values: Mapping[str, Any]) -> Any:
    """The main score among metric ``name``'s ``values`` (its :attr:`~betavae.metrics.Metric.headline`),
    None where absent."""
    return values.get(metrics.get(name).headline)


def headline_column(name: str) -> str:
    """The key of metric ``name``'s main score in a flat row of results: ``mig.mig``,
    ``factor_vae.eval_accuracy``.

    A sweep's result rows (:func:`betavae.studies.results.result_rows`) flatten every score to
    ``<metric>.<key>``; tables, heatmaps and the study's claims read the headline's.
    """
    return f"{name}.{metrics.get(name).headline}"
