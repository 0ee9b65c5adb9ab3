"""Disentanglement metrics by name: :data:`METRICS` maps each to a :class:`Metric`.

Each metric is a function ``compute(dataset, represent, rng, **params) -> dict``:
``dataset`` is a :class:`~betavae.data.base.FactorDataset`, ``represent`` a
representation (see :mod:`betavae.metrics.representation`), ``rng`` a
``numpy.random.Generator``. One module per metric, each citing its paper; defaults
follow disentanglement_lib (Locatello et al. 2019) so numbers compare with published ones.
Every metric calls its sizes by the same names (:data:`SIZE_NAMES`), so one ``--n-train``
reaches them all. Adding a metric is adding one entry; the CLI, evaluation and the
sweep's tables read the rest from it, through :mod:`betavae.metrics.settings` (names, sizes,
seeds, the headline score), which this registry does not import.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from betavae.errors import unknown_choice
from betavae.metrics.beta_vae import beta_vae_score, beta_vae_weaker_score
from betavae.metrics.beta_vae_paper import beta_vae_paper_score
from betavae.metrics.dci import dci
from betavae.metrics.factor_vae import factor_vae_score
from betavae.metrics.mig import mig
from betavae.metrics.representation import (
    FactorRepresentation,
    Representation,
    encode_factors,
    model_representation,
    sample_codes,
)
from betavae.metrics.sap import sap

# The size parameters set once for every metric (--n-train, --n-eval; a sweep's --metric-batch-size, the L
# of the β-VAE scores and the votes' batch of the FactorVAE score); each metric takes those it has.
SIZE_NAMES = ("n_train", "n_eval", "batch_size")


@dataclass(frozen=True)
class Metric:
    """One entry of :data:`METRICS`: the function and what evaluation needs to know of it."""

    compute: Callable[..., dict[str, float]]
    # Its name in figures and tables ("MIG").
    label: str
    # The key of its main score: the one value progress lines, tables and heatmaps show
    # (through betavae.metrics.settings: headline_value, headline_column).
    headline: str
    # How many images it encodes, given every parameter it runs with (metrics.settings.metric_settings).
    images_encoded: Callable[[Mapping[str, Any]], int]
    # The smallest sizes it computes with, by size name (every size not listed: 1 point).
    min_sizes: Mapping[str, int] = field(default_factory=dict)
    # The paper that defined it, and what it fits on the codes: how a report names its variant.
    reference: str = ""
    predictor: str = ""
    # Whether ``--metrics all`` includes it (not a variant that gives the same numbers far slower).
    in_all: bool = True

    @property
    def defaults(self) -> dict[str, Any]:
        """Every parameter of :attr:`compute` with its default value."""
        parameters = inspect.signature(self.compute).parameters.values()
        return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}

    @property
    def sizes(self) -> tuple[str, ...]:
        """The size parameters (of :data:`SIZE_NAMES`) it takes."""
        return tuple(name for name in SIZE_NAMES if name in self.defaults)


def _difference_pairs(params: Mapping[str, Any]) -> int:
    """Images the β-VAE score encodes (and ``beta_vae_weak``, on the same points): two per pair, a batch
    of pairs per point."""
    return (params["n_train"] + params["n_eval"]) * 2 * params["batch_size"]


METRICS: dict[str, Metric] = {
    "beta_vae": Metric(
        beta_vae_score,
        "β-VAE score",
        headline="eval_accuracy",
        images_encoded=_difference_pairs,
        reference="Higgins et al. 2017",
        predictor="logistic regression (scikit-learn's defaults) on |z₁ − z₂| averaged over batch_size pairs",
    ),
    # The paper's score beside weaker classifiers on the same points (the reproducibility report's
    # suspicion that its classifier is too expressive); what the study's grids measure, not part of "all".
    "beta_vae_weak": Metric(
        beta_vae_weaker_score,
        "β-VAE score, strong-L2 classifier",
        headline="strong_l2_eval_accuracy",
        images_encoded=_difference_pairs,
        reference="Higgins et al. 2017",
        predictor="the β-VAE score's points; logistic regression on standardised |z₁ − z₂| with C = 0.001, "
                  "and with 5 iterations",
        in_all=False,
    ),
    # The paper's own protocol (its four dSprites classes, a softmax layer trained by Adagrad), beside the
    # reference's: what its Figure 6 was measured with, as far as it is known. Not part of "all", which
    # keeps meaning the reference library's metrics.
    "beta_vae_paper": Metric(
        beta_vae_paper_score,
        "β-VAE score, paper's protocol",
        headline="eval_accuracy",
        images_encoded=_difference_pairs,
        reference="Higgins et al. 2017",
        predictor="a softmax layer trained by Adagrad (learning_rate, steps of minibatch points) on "
                  "|z₁ − z₂| averaged over batch_size pairs; never_held_fixed factors are never the label",
        in_all=False,
    ),
    "factor_vae": Metric(
        factor_vae_score,
        "FactorVAE score",
        headline="eval_accuracy",
        images_encoded=lambda p: (p["n_train"] + p["n_eval"]) * p["batch_size"] + p["num_variance_estimate"],
        reference="Kim & Mnih 2018",
        predictor="majority vote from the least-variance (rescaled) dimension to the fixed factor",
    ),
    # With one point MIG divides by the entropy of factors that took one value (0/0, NaN every time),
    # found by running each metric on dSprites with a random projection of the pixels at sizes 1, 2, 3 …
    # Above it a small draw can still be degenerate by chance (at 2 points, half the MIGs are NaN,
    # written as null with evaluation.NAN_REASON), rarely once the sizes reach tens of points.
    "mig": Metric(
        mig, "MIG", headline="mig", images_encoded=lambda p: p["n_train"], min_sizes={"n_train": 2},
        reference="Chen et al. 2018",
        predictor="mutual information of each dimension with each factor, histograms of num_bins bins",
    ),
    "dci": Metric(
        dci,
        "DCI disentanglement",
        headline="disentanglement",
        images_encoded=lambda p: p["n_train"] + p["n_eval"],
        reference="Eastwood & Williams 2018",
        predictor="importances of extremely randomised trees, 30 per factor (fast; close to the reference's)",
    ),
    # The reference's predictor (disentanglement_lib's GradientBoostingClassifier): the numbers that
    # compare with published ones, minutes per representation on a CPU; so not part of "all".
    "dci_gbt": Metric(
        functools.partial(dci, regressor="gbt"),
        "DCI disentanglement (GBT)",
        headline="disentanglement",
        images_encoded=lambda p: p["n_train"] + p["n_eval"],
        reference="Eastwood & Williams 2018",
        predictor="importances of gradient-boosted trees, scikit-learn's defaults (disentanglement_lib's)",
        in_all=False,
    ),
    # With continuous_factors SAP scores the training points alone and draws no evaluation points.
    "sap": Metric(
        sap,
        "SAP score",
        headline="sap",
        images_encoded=lambda p: p["n_train"] + (0 if p["continuous_factors"] else p["n_eval"]),
        reference="Kumar et al. 2018",
        predictor="per dimension and factor, a linear SVM (C = 0.01) on that one dimension",
    ),
}

# What ``--metrics all`` means: every metric but slower variants of another.
ALL_METRICS = tuple(name for name, metric in METRICS.items() if metric.in_all)


def get(name: str) -> Metric:
    """The metric called ``name``; an unknown name is a :class:`~betavae.errors.BetaVAEError`."""
    if name not in METRICS:
        raise unknown_choice("metric", name, METRICS)
    return METRICS[name]


__all__ = [
    "ALL_METRICS", "METRICS", "SIZE_NAMES", "FactorRepresentation", "Metric", "Representation",
    "beta_vae_paper_score", "beta_vae_score", "beta_vae_weaker_score", "dci", "encode_factors",
    "factor_vae_score", "get", "mig", "model_representation", "sample_codes", "sap",
]
