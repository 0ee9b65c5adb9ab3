"""The dataset registry: each entry says, without loading, what its dataset loads as."""

import math

import pytest
import torch

from betavae import data
from betavae.errors import BetaVAEError


def load_small(name, request):
    """Dataset ``name``, as small as its options make it, from local files only.

    A dataset read from files takes them from the fixture ``<name>_dir`` (real MNIST, a tiny CelebA folder).
    """
    accepted = data.options_of(name)
    options = {}
    if "test_size" in accepted:
        options["test_size"] = 100
    if "data_dir" in accepted:
        options["data_dir"] = str(request.getfixturevalue(f"{name}_dir"))
    if "download" in accepted:
        options["download"] = False
    return data.load(name, **options)


@pytest.mark.parametrize("name", list(data.DATASETS))
def test_each_entry_says_whether_its_dataset_loads_with_factors_and_its_image_shape(name, request):
    entry = data.DATASETS[name]
    dataset = load_small(name, request)
    assert isinstance(dataset, data.FactorDataset) is entry.has_factors is data.has_factors(name)
    assert (name in data.with_factors()) is entry.has_factors
    assert (name in data.with_attributes()) is entry.has_attributes
    if entry.has_attributes:
        names = dataset.attribute_names
        assert len(names) == len(set(names)) >= 1
        assert dataset.train.attributes().shape == (len(dataset.train), len(names))
    assert tuple(dataset.image_shape) == entry.image_shape
    assert tuple(dataset.train.images(torch.arange(2)).shape) == (2, *entry.image_shape)
    assert tuple(dataset.test.images(torch.arange(2)).shape) == (2, *entry.image_shape)
    assert entry.summary.strip() and "\n" not in entry.summary
    if entry.has_factors:
        assert len(dataset.factor_names) == len(set(dataset.factor_names)) == len(dataset.factor_sizes) >= 1
        assert all(size >= 1 for size in dataset.factor_sizes)
        assert math.prod(dataset.factor_sizes) == len(dataset)  # one image per factor vector


def test_an_unknown_dataset_name_is_an_error_listing_the_registry():
    with pytest.raises(BetaVAEError, match="unknown dataset 'cifar'.*" + ".*".join(sorted(data.DATASETS))):
        data.has_factors("cifar")
    with pytest.raises(BetaVAEError, match="unknown dataset 'cifar'"):
        data.load("cifar")


def test_an_option_a_dataset_does_not_take_lists_the_ones_it_does():
    with pytest.raises(
        BetaVAEError, match="dataset 'shapes' has no option colour; its options are: test_size, seed"
    ):
        data.load("shapes", colour=True)


def test_a_kept_dataset_is_loaded_once_and_only_the_last_ones_are_kept():
    """A sweep's worker keeps what it loaded (data.keep_loaded): the next run on the same set and
    options gets the same object, other options load afresh, and the oldest is let go."""
    assert data.load("shapes", test_size=50) is not data.load("shapes", test_size=50)  # not kept
    data.keep_loaded(2)
    try:
        first = data.load("shapes", test_size=50)
        assert data.load("shapes", test_size=50) is first
        second = data.load("shapes", test_size=60)
        assert second is not first and data.load("shapes", test_size=60) is second
        data.load("shapes", test_size=70)
        assert data.load("shapes", test_size=60) is second
        assert data.load("shapes", test_size=50) is not first  # the oldest of three was let go
    finally:
        data.keep_loaded(0)
