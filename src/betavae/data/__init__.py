"""Datasets by name: ``betavae.data.load("shapes")``.

A plain dict maps each name to the module function that builds it; modules are
imported on first use so that the CLI starts fast.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from betavae.data.base import FactorDataset, FactorSplit, ImageDataset, ImageSplit, TensorSplit
from betavae.errors import BetaVAEError, unknown_choice

# name -> "module:function"; every function takes keyword options and returns an ImageDataset.
DATASETS: dict[str, str] = {
    "shapes": "betavae.data.shapes:load_shapes",
    "dsprites": "betavae.data.dsprites:load_dsprites",
    "mnist": "betavae.data.mnist:load_mnist",
}

# The datasets rendered from known generative factors (they load as FactorDataset).
WITH_FACTORS = ("dsprites", "shapes")


def has_factors(name: str) -> bool:
    """Whether dataset ``name`` has known generative factors (known without loading it)."""
    _loader(name)
    return name in WITH_FACTORS


def _loader(name: str):
    if name not in DATASETS:
        raise unknown_choice("dataset", name, DATASETS)
    module_name, function_name = DATASETS[name].split(":")
    return getattr(importlib.import_module(module_name), function_name)


def options_of(name: str) -> list[str]:
    """The keyword options dataset ``name`` accepts."""
    return list(inspect.signature(_loader(name)).parameters)


def load(name: str, **options: Any) -> ImageDataset:
    """Build dataset ``name``; an option it does not know is a :class:`BetaVAEError`."""
    loader = _loader(name)
    accepted = options_of(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise BetaVAEError(f"dataset {name!r} has no option {', '.join(unknown)}; its options are: {', '.join(accepted)}")
    return loader(**options)


__all__ = ["DATASETS", "FactorDataset", "FactorSplit", "ImageDataset", "ImageSplit", "TensorSplit", "WITH_FACTORS", "has_factors", "load", "options_of"]
