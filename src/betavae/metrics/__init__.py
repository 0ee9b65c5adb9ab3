"""Disentanglement metrics by name, each ``NAME(dataset, represent, rng, **params) -> dict``.

``dataset`` is a :class:`~betavae.data.base.FactorDataset`, ``represent`` a
representation (see :mod:`betavae.metrics.representation`), ``rng`` a
``numpy.random.Generator``. One module per metric, each citing its paper; defaults
follow disentanglement_lib (Locatello et al. 2019) so numbers compare with published ones.
"""

from __future__ import annotations

from collections.abc import Callable

from betavae.errors import unknown_choice
from betavae.metrics.beta_vae import beta_vae_score
from betavae.metrics.dci import dci
from betavae.metrics.factor_vae import factor_vae_score
from betavae.metrics.mig import mig
from betavae.metrics.representation import (FactorRepresentation, Representation, encode_factors,
                                            model_representation, sample_codes)
from betavae.metrics.sap import sap

METRICS: dict[str, Callable[..., dict[str, float]]] = {
    "beta_vae": beta_vae_score,
    "factor_vae": factor_vae_score,
    "mig": mig,
    "dci": dci,
    "sap": sap,
}

# The main score of each metric: the one value progress lines, tables and heatmaps show.
HEADLINE: dict[str, str] = {
    "beta_vae": "eval_accuracy",
    "factor_vae": "eval_accuracy",
    "mig": "mig",
    "dci": "disentanglement",
    "sap": "sap",
}


def get(name: str) -> Callable[..., dict[str, float]]:
    """The metric function called ``name``."""
    if name not in METRICS:
        raise unknown_choice("metric", name, METRICS)
    return METRICS[name]


__all__ = ["HEADLINE", "METRICS", "FactorRepresentation", "Representation", "beta_vae_score", "dci", "encode_factors",
           "factor_vae_score", "get", "mig", "model_representation", "sample_codes", "sap"]
