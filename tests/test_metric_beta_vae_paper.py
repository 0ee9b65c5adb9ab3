"""The β-VAE score under the paper's protocol (Higgins et al. 2017): known answers, its classes, its
classifier and what its registry entry records.

The representations are functions of the true factor values (``uses_factors``), so no image
is rendered and no network is trained.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from betavae import metrics
from betavae.data import load
from betavae.data.dsprites import DSpritesDataset
from betavae.metrics.beta_vae import difference_points
from betavae.metrics.beta_vae_paper import (
    beta_vae_paper_score,
    fit_softmax_adagrad,
    fixable_factors,
    shuffled_minibatches,
)
from betavae.metrics.representation import FactorRepresentation
from betavae.metrics.settings import metric_settings, recorded_settings
from known_codes import Noise, rotation, standardised_code

SIZES = {"n_train": 1_000, "n_eval": 1_000}
# Labels independent of the codes: eval accuracy is Binomial(1000, p) / 1000 whatever the classifier
# learned; for p = 1/4 its standard deviation is 0.0137, and 0.055 is four of them.
CHANCE_TOLERANCE = 0.055


@pytest.fixture(scope="module")
def dsprites() -> DSpritesDataset:
    return load("dsprites", test_size=1_000)


def score(dataset, represent, seed: int = 0, **options) -> dict[str, float]:
    return beta_vae_paper_score(dataset, represent, np.random.default_rng(seed), **{**SIZES, **options})


def test_true_factors_score_perfectly(dsprites):
    assert score(dsprites, FactorRepresentation(dsprites)) == {"train_accuracy": 1.0, "eval_accuracy": 1.0}


def test_independent_noise_scores_at_the_chance_of_the_four_factors_held_fixed(dsprites):
    assert score(dsprites, Noise(7))["eval_accuracy"] == pytest.approx(1 / 4, abs=CHANCE_TOLERANCE)


def test_holding_every_factor_fixed_in_turn_brings_chance_to_one_in_five(dsprites):
    noise = score(dsprites, Noise(7), never_held_fixed="")
    assert noise["eval_accuracy"] == pytest.approx(1 / 5, abs=0.05)


def test_shape_varies_in_every_pair_but_is_never_the_factor_held_fixed(dsprites):
    fixable = fixable_factors(dsprites, "shape")
    assert [dsprites.factor_names[k] for k in fixable] == ["scale", "orientation", "pos_x", "pos_y"]
    _, labels = difference_points(dsprites, FactorRepresentation(dsprites), np.random.default_rng(0), 4, 400,
                                  fixable)
    assert set(labels) == set(fixable)
    # A code of shape alone: its differences are zero only where shape is held fixed, which never happens,
    # so it tells no two classes apart.
    shape_only = standardised_code(dsprites, lambda v: v[:, :1])
    assert score(dsprites, shape_only)["eval_accuracy"] == pytest.approx(1 / 4, abs=CHANCE_TOLERANCE)


def test_names_the_dataset_lacks_are_ignored_and_fewer_than_two_classes_refused(dsprites):
    assert len(fixable_factors(load("shapes", test_size=100), "shape, colour")) == 4
    with pytest.raises(ValueError, match="fewer than two"):
        fixable_factors(dsprites, "shape,scale,orientation,pos_x")


def test_same_seed_gives_identical_scores_and_another_seed_different_ones(dsprites):
    rotated = standardised_code(dsprites, lambda v: v @ rotation(5))
    first = score(dsprites, rotated, seed=1)
    assert score(dsprites, rotated, seed=1) == first
    assert score(dsprites, rotated, seed=2) != first


def test_a_larger_step_budget_raises_an_imperfect_codes_score(dsprites):
    # Adagrad's steps shrink as 1/√t: a fixed budget is not convergence, which is why it is a parameter.
    rotated = standardised_code(dsprites, lambda v: v @ rotation(5))
    few, many = (score(dsprites, rotated, steps=steps)["eval_accuracy"] for steps in (1_000, 10_000))
    assert many - few >= 0.02


# --- the classifier ---------------------------------------------------------------------


def test_the_classifier_is_a_softmax_layer_trained_by_torchs_adagrad_at_the_papers_rate():
    """Step for step what ``nn.Linear`` from zero, the softmax's cross-entropy and ``torch.optim.Adagrad``
    at lr 0.01 with its defaults compute: the optimiser the protocol names, not a look-alike."""
    rng = np.random.default_rng(0)
    points, labels = rng.random((60, 7)) * 3, rng.integers(4, size=60)
    batches = list(shuffled_minibatches(60, 10, 25, np.random.default_rng(1)))
    weights, bias = fit_softmax_adagrad(points, labels, 4, batches, learning_rate=0.01)

    layer = torch.nn.Linear(7, 4, dtype=torch.float64)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    optimiser = torch.optim.Adagrad(layer.parameters(), lr=0.01)
    inputs, targets = torch.from_numpy(points), torch.from_numpy(labels)
    for batch in batches:
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(layer(inputs[batch]), targets[batch]).backward()
        optimiser.step()
    np.testing.assert_allclose(weights, layer.weight.detach().numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bias, layer.bias.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_minibatches_are_successive_shuffled_passes_over_the_training_points():
    batches = list(shuffled_minibatches(30, 10, 9, np.random.default_rng(0)))
    assert [len(batch) for batch in batches] == [10] * 9
    for start in range(0, 9, 3):
        assert sorted(np.concatenate(batches[start:start + 3])) == list(range(30))
    assert [len(batch) for batch in shuffled_minibatches(4, 10, 3, np.random.default_rng(0))] == [4, 4, 4]


# --- the registry -----------------------------------------------------------------------


def test_the_registered_protocol_is_the_documented_one_and_apart_from_all():
    assert metric_settings("beta_vae_paper", {}) == {
        "batch_size": 64, "n_train": 10_000, "n_eval": 5_000, "never_held_fixed": "shape",
        "learning_rate": 0.01, "steps": 10_000, "minibatch": 10,
    }
    metric = metrics.get("beta_vae_paper")
    assert metric.headline == metrics.get("beta_vae").headline == "eval_accuracy"
    assert "beta_vae_paper" not in metrics.ALL_METRICS and "beta_vae" in metrics.ALL_METRICS


def test_recorded_settings_read_back_from_json_equal_the_settings_asked_for():
    # A sweep re-measures a metric whose recorded settings differ from those asked for (studies.worker):
    # every parameter must survive metrics.json unchanged, which a tuple would not.
    recorded = recorded_settings("beta_vae_paper", 3, {"n_train": 50})
    assert json.loads(json.dumps(recorded)) == recorded
