"""Training objectives by name: ``make_objective(config, beta)``.

:data:`OBJECTIVES` maps each name to its :class:`~betavae.objectives.base.Objective`
class; adding an objective is one file in this package and one line here. The CLI's
choices and help, and the config's check of ``objective``, read the registry. Each class
declares its options as a dataclass of config fields (``Options``, each field with its flag
and help): :class:`~betavae.config.TrainConfig` takes in every registered objective's
(:data:`OPTION_CLASSES`), so ``betavae train`` and ``sweep`` offer them, and a setting of
another objective than the run's is refused instead of silently ignored.
"""

from __future__ import annotations

from typing import Any

from betavae.errors import unknown_choice
from betavae.objectives.base import (
    RECONSTRUCTIONS,
    REDUCTIONS,
    LossTerms,
    Objective,
    beta_from_norm,
    kl_per_dim,
    linear_ramp,
    norm_from_beta,
    reconstruction_loss,
)
from betavae.objectives.beta import BetaVAELoss
from betavae.objectives.beta_tc import BetaTCVAELoss
from betavae.objectives.capacity import CapacityLoss
from betavae.objectives.dip import DIPVAELoss
from betavae.objectives.factor import FactorVAELoss, permute_dims

OBJECTIVES: dict[str, type[Objective]] = {
    "beta": BetaVAELoss,
    "capacity": CapacityLoss,
    "beta_tc": BetaTCVAELoss,
    "dip": DIPVAELoss,
    "factor": FactorVAELoss,
}

OPTION_CLASSES: tuple[type, ...] = tuple(
    objective.Options for objective in OBJECTIVES.values() if objective.Options is not None
)
"""The options dataclass of every objective that has options, in the registry's order."""


def options_of(name: str) -> tuple[str, ...]:
    """The config fields objective ``name`` reads besides β, ``beta_warmup`` and the reconstruction's two."""
    return get(name).OPTIONS


def get(name: str) -> type[Objective]:
    """The objective class called ``name``; an unknown name is a :class:`~betavae.errors.BetaVAEError`."""
    if name not in OBJECTIVES:
        raise unknown_choice("objective", name, OBJECTIVES)
    return OBJECTIVES[name]


def make_objective(config: Any, beta: float) -> Objective:
    """The objective a run of ``config`` (a :class:`~betavae.config.TrainConfig`) trains with."""
    return get(config.objective).from_config(config, beta)


__all__ = ["OBJECTIVES", "OPTION_CLASSES", "RECONSTRUCTIONS", "REDUCTIONS", "BetaTCVAELoss", "BetaVAELoss",
           "CapacityLoss", "DIPVAELoss", "FactorVAELoss", "LossTerms", "Objective", "beta_from_norm", "get",
           "kl_per_dim", "linear_ramp", "make_objective", "norm_from_beta", "options_of", "permute_dims",
           "reconstruction_loss"]
