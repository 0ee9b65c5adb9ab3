"""β-TCVAE and DIP-VAE against hand computations: the KL decomposition, the covariance penalties."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.distributions import Normal

from betavae.errors import BetaVAEError
from betavae.models import VAEOutput
from betavae.objectives import OBJECTIVES, BetaTCVAELoss, DIPVAELoss, make_objective


def posterior_batch(mu: torch.Tensor, logvar: torch.Tensor, seed: int = 0) -> tuple[VAEOutput, torch.Tensor]:
    """A VAEOutput for posteriors (μ, log σ²) with z drawn from them, and images to reconstruct."""
    generator = torch.Generator().manual_seed(seed)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator)
    x = torch.rand(mu.shape[0], 1, 4, 4, generator=generator)
    return VAEOutput(torch.zeros_like(x), mu, logvar, z), x


def random_posteriors(batch: int, dims: int, seed: int = 0) -> tuple[VAEOutput, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed + 1)
    mu = torch.randn(batch, dims, generator=generator)
    logvar = torch.randn(batch, dims, generator=generator) * 0.5 - 1.0
    return posterior_batch(mu, logvar, seed)


def sample_kl(output: VAEOutput) -> torch.Tensor:
    """E[log q(z|x) − log p(z)] at the drawn z: the single-sample estimate of the KL."""
    std = torch.exp(0.5 * output.logvar)
    log_q = Normal(output.mu, std).log_prob(output.z).sum(dim=1)
    log_p = Normal(0.0, 1.0).log_prob(output.z).sum(dim=1)
    return (log_q - log_p).mean()


def log_normal(value: float, mean: float, logvar: float) -> float:
    return -0.5 * (math.log(2 * math.pi) + logvar + (value - mean) ** 2 / math.exp(logvar))


def log_sum_exp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


@pytest.mark.parametrize("sampling", ["mws", "mss"])
def test_tc_decomposition_sums_to_the_sample_kl(sampling):
    output, _ = random_posteriors(16, 4)
    parts = BetaTCVAELoss(4.0, sampling=sampling, dataset_size=1000).decomposition(output)
    total = parts["mi"] + parts["tc"] + parts["dwkl"]
    assert torch.allclose(total, sample_kl(output), atol=1e-4)


def test_mws_terms_match_a_brute_force_computation():
    output, _ = random_posteriors(5, 3, seed=3)
    dataset_size = 50
    mu, logvar, z = output.mu.tolist(), output.logvar.tolist(), output.z.tolist()
    batch, dims = 5, 3
    log_nm = math.log(dataset_size * batch)
    mi = tc = dwkl = 0.0
    for i in range(batch):
        log_q_given_x = sum(log_normal(z[i][d], mu[i][d], logvar[i][d]) for d in range(dims))
        joint = [sum(log_normal(z[i][d], mu[j][d], logvar[j][d]) for d in range(dims)) for j in range(batch)]
        log_qz = log_sum_exp(joint) - log_nm
        marginals = [[log_normal(z[i][d], mu[j][d], logvar[j][d]) for j in range(batch)] for d in range(dims)]
        log_prod = sum(log_sum_exp(marginal) - log_nm for marginal in marginals)
        log_pz = sum(log_normal(z[i][d], 0.0, 0.0) for d in range(dims))
        mi += (log_q_given_x - log_qz) / batch
        tc += (log_qz - log_prod) / batch
        dwkl += (log_prod - log_pz) / batch
    parts = BetaTCVAELoss(1.0, sampling="mws", dataset_size=dataset_size).decomposition(output)
    assert parts["mi"].item() == pytest.approx(mi, abs=1e-4)
    assert parts["tc"].item() == pytest.approx(tc, abs=1e-4)
    assert parts["dwkl"].item() == pytest.approx(dwkl, abs=1e-4)


def test_mss_weights_average_each_sample_with_its_own_point_at_one_over_n():
    log_w = BetaTCVAELoss(1.0, sampling="mss", dataset_size=100).log_weights(6, torch.device("cpu"))
    weights = log_w.double().exp()
    assert torch.allclose(weights.sum(dim=1), torch.ones(6, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(weights.diagonal(), torch.full((6,), 0.01, dtype=torch.float64))


def two_latents(correlated: bool, batch: int = 2000) -> VAEOutput:
    generator = torch.Generator().manual_seed(7)
    first = torch.randn(batch, generator=generator)
    second = first + 0.01 * torch.randn(batch, generator=generator) if correlated else torch.randn(
        batch, generator=generator)
    mu = torch.stack([first, second], dim=1)
    return posterior_batch(mu, torch.full_like(mu, math.log(0.1**2)))[0]


def total_correlation(output: VAEOutput, sampling: str) -> float:
    """The TC estimate with the batch as the dataset; MWS's constant offset (D − 1)·log N taken off."""
    batch, dims = output.mu.shape
    tc = BetaTCVAELoss(1.0, sampling=sampling, dataset_size=batch).decomposition(output)["tc"].item()
    return tc - (dims - 1) * math.log(batch) if sampling == "mws" else tc


@pytest.mark.parametrize("sampling", ["mws", "mss"])
def test_tc_is_near_zero_for_independent_latents(sampling):
    assert abs(total_correlation(two_latents(correlated=False), sampling)) < 0.1


@pytest.mark.parametrize("sampling", ["mws", "mss"])
def test_tc_is_large_for_correlated_latents(sampling):
    # z_2 ≈ z_1: the mutual information of the two is about ½·log(1/(1 − ρ²)) ≈ 2 nats.
    assert total_correlation(two_latents(correlated=True), sampling) > 1.0


@pytest.mark.parametrize("sampling", ["mws", "mss"])
def test_unit_weights_reduce_the_regulariser_to_the_sample_kl(sampling):
    output, x = random_posteriors(32, 5, seed=5)
    objective = BetaTCVAELoss(1.0, alpha=1.0, gamma=1.0, sampling=sampling, dataset_size=32)
    terms = objective(output, x)
    assert torch.allclose(terms.loss - terms.terms["recon"], sample_kl(output), atol=1e-4)
    assert set(terms.terms) == {"recon", "kl", "mi", "tc", "dwkl"}


def test_beta_weighs_only_the_total_correlation():
    output, x = random_posteriors(16, 3, seed=6)
    one = BetaTCVAELoss(1.0, alpha=0.5, gamma=2.0, dataset_size=100)(output, x)
    six = BetaTCVAELoss(6.0, alpha=0.5, gamma=2.0, dataset_size=100)(output, x)
    assert torch.allclose(six.loss - one.loss, 5.0 * one.terms["tc"], atol=1e-4)


def identity_covariance_means(batch: int, dims: int, scale: float) -> torch.Tensor:
    """Means whose batch covariance (divided by the batch size) is exactly scale·I."""
    generator = torch.Generator().manual_seed(11)
    raw = torch.randn(batch, dims, generator=generator, dtype=torch.float64)
    orthonormal, _ = torch.linalg.qr(raw - raw.mean(dim=0))
    return (orthonormal * math.sqrt(batch * scale)).float()


def test_dip_penalties_vanish_at_identity_covariance():
    mu_i = identity_covariance_means(64, 4, scale=1.0)
    output_i = posterior_batch(mu_i, torch.randn(64, 4))[0]
    variance = 0.25
    mu_ii = identity_covariance_means(64, 4, scale=1.0 - variance)
    output_ii = posterior_batch(mu_ii, torch.full((64, 4), math.log(variance)))[0]
    for dip_type, output in (("i", output_i), ("ii", output_ii)):
        parts = DIPVAELoss(1.0, dip_type=dip_type).penalties(output)
        assert parts["dip_off_diagonal"].item() == pytest.approx(0.0, abs=1e-8)
        assert parts["dip_diagonal"].item() == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("dip_type", ["i", "ii"])
def test_dip_penalties_match_numpy(dip_type):
    output, _ = random_posteriors(7, 3, seed=9)
    mu, logvar = output.mu.double().numpy(), output.logvar.double().numpy()
    covariance = np.cov(mu, rowvar=False, bias=True)
    if dip_type == "ii":
        covariance = covariance + np.diag(np.exp(logvar).mean(axis=0))
    off_diagonal = sum(covariance[i, j] ** 2 for i in range(3) for j in range(3) if i != j)
    diagonal = sum((covariance[i, i] - 1.0) ** 2 for i in range(3))
    assert off_diagonal > 0.01 and diagonal > 0.01
    objective = DIPVAELoss(2.0, dip_type=dip_type, lambda_od=3.0, lambda_d=5.0)
    parts = objective.penalties(output)
    assert parts["dip_off_diagonal"].item() == pytest.approx(off_diagonal, rel=1e-5)
    assert parts["dip_diagonal"].item() == pytest.approx(diagonal, rel=1e-5)
    terms = objective(output, torch.rand(7, 1, 4, 4))
    expected = terms.terms["recon"] + 2.0 * terms.terms["kl"] + 3.0 * off_diagonal + 5.0 * diagonal
    assert terms.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(terms.terms) == {"recon", "kl", "dip_off_diagonal", "dip_diagonal"}


def test_dip_diagonal_weight_defaults_to_the_papers_settings():
    assert DIPVAELoss(1.0, dip_type="i", lambda_od=10.0).lambda_d == 100.0
    assert DIPVAELoss(1.0, dip_type="ii", lambda_od=10.0).lambda_d == 10.0


@pytest.mark.parametrize("objective", [BetaTCVAELoss(4.0, dataset_size=100, warmup_steps=10),
                                       DIPVAELoss(4.0, warmup_steps=10)], ids=["beta_tc", "dip"])
def test_warmup_starts_from_the_reconstruction_alone(objective):
    output, x = random_posteriors(16, 3, seed=4)
    at_start = objective(output, x, torch.tensor(0))
    assert at_start.loss.item() == pytest.approx(at_start.terms["recon"].item(), rel=1e-6)
    after = objective(output, x, None)
    assert after.loss.item() > after.terms["recon"].item() + 1.0
    halfway = objective(output, x, torch.tensor(5))
    regulariser = after.loss - after.terms["recon"]
    assert halfway.loss.item() == pytest.approx((after.terms["recon"] + 0.5 * regulariser).item(), rel=1e-5)


def test_objectives_are_built_from_the_config_by_name():
    config = SimpleNamespace(objective="beta_tc", recon="gaussian", recon_reduction="mean", beta_warmup=3,
                             tc_alpha=0.5, tc_gamma=2.0, tc_sampling="mss", dip_type="i", dip_lambda_od=4.0,
                             dip_lambda_d=None)
    tc = make_objective(config, 6.0)
    assert isinstance(tc, BetaTCVAELoss) and OBJECTIVES["beta_tc"] is BetaTCVAELoss
    assert (tc.beta, tc.alpha, tc.gamma, tc.sampling, tc.recon, tc.recon_reduction, tc.warmup_steps) == (
        6.0, 0.5, 2.0, "mss", "gaussian", "mean", 3)
    tc.set_dataset_size(737_280)
    assert tc.dataset_size == 737_280
    config.objective = "dip"
    dip = make_objective(config, 1.0)
    assert isinstance(dip, DIPVAELoss)
    assert (dip.dip_type, dip.lambda_od, dip.lambda_d) == ("i", 4.0, 40.0)


@pytest.mark.parametrize("build", [
    lambda: BetaTCVAELoss(1.0, alpha=-1.0),
    lambda: BetaTCVAELoss(1.0, gamma=-0.5),
    lambda: BetaTCVAELoss(1.0, sampling="exact"),
    lambda: BetaTCVAELoss(1.0, dataset_size=0),
    lambda: DIPVAELoss(1.0, dip_type="iii"),
    lambda: DIPVAELoss(1.0, lambda_od=-1.0),
    lambda: DIPVAELoss(1.0, lambda_d=-1.0),
])
def test_bad_settings_are_user_errors(build):
    with pytest.raises(BetaVAEError):
        build()


def test_stratified_sampling_without_the_dataset_size_is_a_user_error():
    output, x = random_posteriors(8, 2)
    with pytest.raises(BetaVAEError, match="set_dataset_size"):
        BetaTCVAELoss(1.0, sampling="mss")(output, x)
