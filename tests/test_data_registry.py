"""The dataset registry: names, options, and which sets have known factors."""

import pytest

from betavae import data
from betavae.errors import BetaVAEError


@pytest.mark.parametrize("name", data.WITH_FACTORS)
def test_datasets_said_to_have_factors_load_as_factor_datasets(name):
    assert data.has_factors(name)
    assert isinstance(data.load(name, test_size=100), data.FactorDataset)


def test_mnist_has_no_known_factors_and_unknown_names_are_errors():
    assert not data.has_factors("mnist")
    assert set(data.DATASETS) - set(data.WITH_FACTORS) == {"mnist"}
    with pytest.raises(BetaVAEError, match="unknown dataset 'cifar'"):
        data.has_factors("cifar")


def test_an_option_a_dataset_does_not_take_lists_the_ones_it_does():
    with pytest.raises(BetaVAEError, match="dataset 'shapes' has no option colour; its options are: test_size, seed"):
        data.load("shapes", colour=True)
