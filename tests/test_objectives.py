"""The β-VAE loss against independent references."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal, kl_divergence

from betavae.errors import BetaVAEError
from betavae.models import VAEOutput
from betavae.objectives import BetaVAELoss, beta_from_norm, kl_per_dim, norm_from_beta, reconstruction_loss


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
    assert torch.allclose(weighted.loss, plain.recon + 4.0 * plain.kl)
    assert torch.allclose(plain.kl, plain.kl_per_dim.sum())
    assert plain.kl_per_dim.shape == (3,)


def test_bad_objective_settings_are_user_errors():
    with pytest.raises(BetaVAEError, match="choose one of: bernoulli, gaussian"):
        BetaVAELoss(1.0, "laplace")
    with pytest.raises(BetaVAEError, match="non-negative"):
        BetaVAELoss(-1.0)
