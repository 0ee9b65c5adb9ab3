"""The β-VAE loss against independent references."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal, kl_divergence

from betavae import models, objectives
from betavae.config import FLAGS, CoreOptions, TrainConfig, typed_names
from betavae.errors import BetaVAEError
from betavae.models import VAEOutput
from betavae.objectives import (
    BetaVAELoss,
    CapacityLoss,
    FactorVAELoss,
    beta_from_norm,
    kl_per_dim,
    norm_from_beta,
    permute_dims,
    reconstruction_loss,
)
from betavae.options import option_help
from betavae.training.steps import make_step


def test_kl_matches_torch_distributions():
    generator = torch.Generator().manual_seed(0)
    mu = torch.randn(16, 6, generator=generator) * 2
    logvar = torch.randn(16, 6, generator=generator)
    expected = kl_divergence(
        Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    )
    assert torch.allclose(kl_per_dim(mu, logvar), expected, atol=1e-5)


def test_kl_is_zero_exactly_at_the_prior():
    assert kl_per_dim(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0


@given(beta=st.floats(1e-4, 1e3), latent=st.integers(1, 256), pixels=st.sampled_from([784, 4096, 12288]))
@settings(max_examples=50, deadline=None)
def test_beta_and_beta_norm_convert_both_ways(beta, latent, pixels):
    beta_norm = norm_from_beta(beta, latent, pixels)
    assert math.isclose(beta_norm, beta * latent / pixels)
    assert math.isclose(beta_from_norm(beta_norm, latent, pixels), beta, rel_tol=1e-12)


def test_report_grid_corner_beta_norm_maps_to_raw_beta():
    # β_norm = 0.002 with M = 5 on 28×28 images is β = 0.002·784/5.
    assert math.isclose(beta_from_norm(0.002, 5, 784), 0.3136)


def test_bernoulli_reconstruction_is_bce_summed_over_pixels():
    logits = torch.randn(4, 1, 5, 5)
    x = torch.rand(4, 1, 5, 5)
    expected = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").sum(dim=(1, 2, 3))
    assert torch.allclose(reconstruction_loss(logits, x, "bernoulli"), expected, atol=1e-4)


def test_gaussian_reconstruction_is_squared_error_of_the_mean_image():
    logits = torch.zeros(2, 1, 3, 3)  # mean image 0.5 everywhere
    x = torch.ones(2, 1, 3, 3)
    assert torch.allclose(reconstruction_loss(logits, x, "gaussian"), torch.full((2,), 9 * 0.25))


def test_loss_is_reconstruction_plus_beta_times_kl():
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 4, 4, generator=generator)
    out = VAEOutput(
        torch.randn(8, 1, 4, 4, generator=generator),
        torch.randn(8, 3, generator=generator),
        torch.randn(8, 3, generator=generator),
        torch.zeros(8, 3),
    )
    plain, weighted = BetaVAELoss(1.0)(out, x), BetaVAELoss(4.0)(out, x)
    assert torch.allclose(weighted.loss, plain.terms["recon"] + 4.0 * plain.terms["kl"])
    assert torch.allclose(plain.terms["kl"], plain.kl_per_dim.sum())
    assert plain.kl_per_dim.shape == (3,)


def test_bad_objective_settings_are_user_errors():
    with pytest.raises(BetaVAEError, match="choose one of: bernoulli, gaussian, lmse, mse$"):
        BetaVAELoss(1.0, "laplace")
    with pytest.raises(BetaVAEError, match="non-negative"):
        BetaVAELoss(-1.0)


def small_output(seed: int = 1, batch: int = 8, latent: int = 3):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, 4, 4, generator=generator)
    mu, logvar = (torch.randn(batch, latent, generator=generator) for _ in range(2))
    out = VAEOutput(torch.randn(batch, 1, 4, 4, generator=generator), mu, logvar, torch.zeros(batch, latent))
    return out, x


@pytest.mark.parametrize(("step", "weight"), [(0, 0.0), (25, 0.25), (100, 1.0), (400, 1.0), (None, 1.0)])
def test_the_beta_warmup_weighs_the_kl_linearly_over_its_steps(step, weight):
    out, x = small_output()
    terms = BetaVAELoss(4.0, warmup_steps=100)(out, x, None if step is None else torch.tensor(step))
    expected = terms.terms["recon"] + weight * 4.0 * terms.terms["kl"]
    assert torch.allclose(terms.loss, expected)


@pytest.mark.parametrize(("step", "capacity"), [(0, 0.0), (50, 10.0), (100, 20.0), (250, 20.0), (None, 20.0)])
def test_capacity_loss_is_reconstruction_plus_gamma_times_the_kls_distance_from_c(step, capacity):
    out, x = small_output()
    objective = CapacityLoss(gamma=100.0, capacity_max=20.0, capacity_steps=100)
    terms = objective(out, x, None if step is None else torch.tensor(step))
    kl = terms.terms["kl"]
    assert float(terms.terms["capacity"]) == pytest.approx(capacity)
    assert torch.allclose(terms.loss, terms.terms["recon"] + 100.0 * (kl - capacity).abs())


def test_capacity_at_a_known_kl_and_c():
    # μ = 0 and log σ² = 0 everywhere: KL = 0, so the penalty is γ·C.
    x = torch.full((4, 1, 2, 2), 0.5)
    out = VAEOutput(torch.zeros(4, 1, 2, 2), torch.zeros(4, 5), torch.zeros(4, 5), torch.zeros(4, 5))
    terms = CapacityLoss(gamma=10.0, capacity_max=3.0, capacity_steps=10)(out, x, torch.tensor(5))
    recon = 4 * math.log(2.0)  # four pixels of target 0.5 against logit 0: log 2 each
    assert float(terms.loss) == pytest.approx(recon + 10.0 * 1.5, rel=1e-6)


@pytest.mark.slow  # it takes real training steps
def test_a_schedule_advances_under_the_graph_paths_logic():
    """The step count is a tensor the step advances in place, the way a replayed CUDA graph runs it:
    the same step function, called again, sees a later point of the schedule."""
    torch.manual_seed(0)
    model = models.build("conv28", 2, (1, 28, 28))
    objective = CapacityLoss(gamma=1.0, capacity_max=8.0, capacity_steps=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0)  # weights fixed: only C changes the loss
    step_count = torch.tensor(0)
    step = make_step(model, objective, optimizer, None, "fp32", cuda_graph=False, step_count=step_count)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    capacities = [float(step(x).terms["capacity"]) for _ in range(6)]
    assert capacities == [0.0, 2.0, 4.0, 6.0, 8.0, 8.0]
    assert int(step_count) == 6


def test_every_registered_objective_is_built_from_a_config_and_gives_recon_and_kl():
    out, x = small_output()
    for name in objectives.OBJECTIVES:
        objective = objectives.make_objective(TrainConfig(objective=name, latent_dim=3), beta=4.0)
        assert objective.name == name
        objective.set_dataset_size(100)
        terms = objective(out, x, torch.tensor(0))
        assert {"recon", "kl"} <= set(terms.terms) and torch.isfinite(terms.loss)


@pytest.mark.parametrize("name", objectives.OBJECTIVES)
def test_an_objectives_options_are_the_fields_of_its_options_dataclass_each_with_flag_and_help(name):
    objective = objectives.OBJECTIVES[name]
    declared = dataclasses.fields(objective.Options) if objective.Options is not None else ()
    assert objectives.options_of(name) == objective.OPTIONS == tuple(field.name for field in declared)
    for field in declared:
        described = option_help(field)
        assert described.help and FLAGS[field.name] == described.flag
        assert described.flag == "--" + field.name.replace("_", "-")  # the flag of its config key


def test_the_config_is_the_core_options_and_every_registered_objectives_options():
    own = [field.name for options in objectives.OPTION_CLASSES for field in dataclasses.fields(options)]
    core = [field.name for field in dataclasses.fields(CoreOptions)]
    assert TrainConfig.keys() == [*core, *own, "dataset_options"]
    assert len(set(own)) == len(own)  # no two objectives share a key
    defaults = TrainConfig()
    for options in objectives.OPTION_CLASSES:
        for key, value in dataclasses.asdict(options()).items():
            assert getattr(defaults, key) == value


def test_an_option_of_another_objective_is_refused_naming_its_flag():
    config = TrainConfig(objective="beta", capacity_max=10.0)
    with pytest.raises(BetaVAEError, match=r"--capacity-max is an option of objective capacity, not of beta"):
        config.validate(typed_names(["objective", "capacity_max"]))
    TrainConfig(objective="capacity", capacity_max=10.0).validate()
    with pytest.raises(BetaVAEError, match="unknown objective"):
        TrainConfig(objective="vae++").validate()


@pytest.mark.parametrize("objective", ["capacity", "factor"])
def test_a_beta_given_to_an_objective_that_ignores_it_is_refused(objective):
    with pytest.raises(BetaVAEError, match=f"objective {objective} does not use β \\(--beta-norm\\)"):
        TrainConfig(objective=objective, beta_norm=0.1).validate(typed_names(["beta_norm"]))


def test_the_factorvae_permutation_keeps_each_marginal_and_breaks_the_dependence():
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(4000, 1, generator=generator)
    z = torch.cat([first, first + 0.01 * torch.randn(4000, 1, generator=generator),
                   torch.randn(4000, 1, generator=generator)], dim=1)
    shuffled = permute_dims(z, torch.Generator().manual_seed(1))
    for dim in range(3):  # the same values in each column, reordered
        assert torch.equal(shuffled[:, dim].sort().values, z[:, dim].sort().values)
    assert not torch.equal(shuffled, z)
    correlation = torch.corrcoef(shuffled.T)
    assert torch.corrcoef(z.T)[0, 1] > 0.99 and abs(correlation[0, 1]) < 0.05
    # Within each sample a permutation would keep the rows' joint dependence: ours moves values
    # across samples, so a row of the result is generally not a permutation of any input row.
    assert not torch.equal(shuffled.sort(dim=1).values, z.sort(dim=1).values)


def test_the_factorvae_discriminator_learns_to_tell_correlated_codes_from_permuted_ones():
    torch.manual_seed(0)
    objective = FactorVAELoss(latent_dim=2, gamma=1.0, lr=1e-3, hidden=64)
    optimizers = objective.make_optimizers(torch.device("cpu"), capturable=False)
    generator = torch.Generator().manual_seed(0)
    accuracies = []
    for _ in range(300):
        first = torch.randn(128, 1, generator=generator)
        z = torch.cat([first, first], dim=1)  # all mass on the diagonal: TC is large
        out = VAEOutput(torch.zeros(128, 1, 2, 2), z, torch.zeros_like(z), z)
        accuracies.append(float(objective.update(out, None, optimizers, generator)["discriminator_accuracy"]))
    assert sum(accuracies[:10]) / 10 < 0.7 and sum(accuracies[-10:]) / 10 > 0.9
    # Its logits now estimate a large total correlation on such codes, and about none on independent ones.
    first = torch.randn(1000, 1, generator=generator)
    with torch.no_grad():
        correlated = objective.total_correlation(torch.cat([first, first], dim=1))
        independent = objective.total_correlation(torch.randn(1000, 2, generator=generator))
    assert correlated > 1.0 and correlated > independent + 1.0


def test_a_sweep_over_objectives_names_its_runs_by_objective_and_checks_each_before_running(tmp_path):
    from betavae.studies.grid import build_spec, expand_grid

    spec = build_spec({"dataset": "shapes", "objective": ["beta", "factor"], "steps": 10}, {"seeds": 1})
    points = expand_grid(spec, tmp_path)
    assert [(p.name, p.config.objective) for p in points] == [("beta-s0", "beta"), ("factor-s0", "factor")]
    grid = {"dataset": "shapes", "objective": ["beta", "capacity"], "beta": 4.0}
    with_beta = build_spec(grid, {"seeds": 1})
    with pytest.raises(BetaVAEError, match="objective capacity does not use β"):
        expand_grid(with_beta, tmp_path)
