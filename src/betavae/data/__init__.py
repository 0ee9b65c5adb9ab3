"""Datasets by name: ``betavae.data.load("shapes")``.

:data:`DATASETS` maps each name to a :class:`DatasetEntry`: the module function that
builds it (imported on first use, so that the CLI starts fast) and what is known of it
without loading it. Adding a dataset is adding one entry; the CLI's help, the checks of
which datasets have factors and their messages all read the registry.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from betavae.data.base import FactorDataset, FactorSplit, ImageDataset, ImageSplit, TensorSplit
from betavae.errors import BetaVAEError, unknown_choice


@dataclass(frozen=True)
class DatasetEntry:
    """What the registry knows of a dataset without loading it."""

    loader: str  # "module:function"; the function takes keyword options and returns an ImageDataset
    has_factors: bool  # rendered from known generative factors: it loads as a FactorDataset
    image_shape: tuple[int, int, int]  # (channels, height, width) of its images
    summary: str  # what its images show, in a few words, for the CLI's help
    # Named binary attributes per image (CelebA's Smiling, …): its splits have attributes(), its
    # dataset attribute_names, and transfer offers them as tasks attr:NAME.
    has_attributes: bool = False


DATASETS: dict[str, DatasetEntry] = {
    "shapes": DatasetEntry(
        "betavae.data.shapes:load_shapes", True, (1, 28, 28), "square, ellipse or triangle"
    ),
    "shapes_heart": DatasetEntry(
        "betavae.data.shapes:load_shapes_heart", True, (1, 28, 28), "the reproducibility report's heart"
    ),
    "dsprites": DatasetEntry(
        "betavae.data.dsprites:load_dsprites", True, (1, 64, 64), "Matthey et al. 2017's sprites"
    ),
    "color_dsprites": DatasetEntry(
        "betavae.data.dsprites_variants:load_color_dsprites", True, (3, 64, 64),
        "dSprites' sprites, each in a random colour on black",
    ),
    "noisy_dsprites": DatasetEntry(
        "betavae.data.dsprites_variants:load_noisy_dsprites", True, (3, 64, 64),
        "dSprites' white sprites on uniform noise",
    ),
    "shapes3d": DatasetEntry(
        "betavae.data.shapes3d:load_shapes3d", True, (3, 64, 64), "Burgess & Kim 2018's rendered rooms"
    ),
    "mnist": DatasetEntry("betavae.data.mnist:load_mnist", False, (1, 28, 28), "handwritten digits"),
    "celeba": DatasetEntry(
        "betavae.data.celeba:load_celeba", False, (3, 64, 64), "aligned celebrity faces, 40 attributes",
        has_attributes=True,
    ),
}


def entry(name: str) -> DatasetEntry:
    """The registry entry of dataset ``name``; an unknown name is a :class:`BetaVAEError`."""
    if name not in DATASETS:
        raise unknown_choice("dataset", name, DATASETS)
    return DATASETS[name]


def has_factors(name: str) -> bool:
    """Whether dataset ``name`` has known generative factors (known without loading it)."""
    return entry(name).has_factors


def with_factors() -> list[str]:
    """The names of the datasets with known generative factors, the ones disentanglement is measured on."""
    return [name for name, dataset in DATASETS.items() if dataset.has_factors]


def with_attributes() -> list[str]:
    """The names of the datasets with named binary attributes, the ones ``attr:NAME`` transfer tasks use."""
    return [name for name, dataset in DATASETS.items() if dataset.has_attributes]


def _loader(name: str):
    module_name, function_name = entry(name).loader.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def options_of(name: str) -> list[str]:
    """The keyword options dataset ``name`` accepts."""
    return list(inspect.signature(_loader(name)).parameters)


# Datasets this process keeps loaded, by name and options (:func:`keep_loaded`), most recent last.
_kept: dict[str, ImageDataset] = {}
_keep = 0


def keep_loaded(count: int = 2) -> None:
    """Keep the last ``count`` datasets loaded in this process, so that loading one again is free.

    For a sweep's worker, which trains run after run on the same set: rendering the heart set
    or parsing MNIST once per run is a fixed cost of every run. Datasets are never changed
    after loading (a split's ``to`` makes a new one), so sharing one between runs is safe.
    ``count`` 0 stops keeping them.
    """
    global _keep
    _keep = count
    while len(_kept) > _keep:
        _kept.pop(next(iter(_kept)))


def load(name: str, **options: Any) -> ImageDataset:
    """Build dataset ``name``; an option it does not know is a :class:`BetaVAEError`."""
    loader = _loader(name)
    accepted = options_of(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise BetaVAEError(
            f"dataset {name!r} has no option {', '.join(unknown)}; its options are: {', '.join(accepted)}"
        )
    if not _keep:
        return loader(**options)
    key = repr((name, sorted(options.items())))
    dataset = _kept.pop(key, None)
    if dataset is None:
        dataset = loader(**options)
    _kept[key] = dataset
    keep_loaded(_keep)
    return dataset


__all__ = [
    "DATASETS", "DatasetEntry", "FactorDataset", "FactorSplit", "ImageDataset", "ImageSplit", "TensorSplit",
    "entry", "has_factors", "keep_loaded", "load", "options_of", "with_attributes", "with_factors",
]
