"""The reconstruction losses and their reduction against direct computations on small tensors: values at a
known error, gradients against their closed forms, lmse against the σ-VAE's Gaussian, and β under a mean."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from betavae import objectives
from betavae.config import TrainConfig
from betavae.errors import BetaVAEError
from betavae.models import VAEOutput
from betavae.objectives import RECONSTRUCTIONS, REDUCTIONS, BetaVAELoss, reconstruction_loss
from betavae.runs import RunDir
from commands import run_cli

SHAPE = (3, 2, 4, 5)  # B images of C × H × W
D = 2 * 4 * 5  # values per image


def at_error(error: float = 0.1, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Images x in [0.05, 0.85] and the logits whose sigmoid is x + ``error`` at every pixel."""
    x = torch.rand(SHAPE, generator=torch.Generator().manual_seed(0), dtype=dtype) * 0.8 + 0.05
    return torch.logit(x + error), x


@pytest.mark.parametrize("kind", ["mse", "gaussian"])
def test_mse_at_a_known_error_is_d_times_its_square_summed_and_its_square_averaged(kind):
    logits, x = at_error(0.1)
    torch.testing.assert_close(reconstruction_loss(logits, x, kind), torch.full((3,), D * 0.01))
    torch.testing.assert_close(reconstruction_loss(logits, x, kind, "mean"), torch.full((3,), 0.01))
    # the mean is PyTorch's default reduction of F.mse_loss, image by image
    means = torch.stack([F.mse_loss(torch.sigmoid(logits[i]), x[i]) for i in range(3)])
    torch.testing.assert_close(reconstruction_loss(logits, x, kind, "mean"), means)


def test_lmse_at_a_known_error_is_half_d_times_the_log_of_the_mse():
    logits, x = at_error(0.1)
    summed, mean = (reconstruction_loss(logits, x, "lmse", reduction) for reduction in ("sum", "mean"))
    torch.testing.assert_close(summed, torch.full((3,), D / 2 * math.log(0.01)))
    torch.testing.assert_close(mean, torch.full((3,), math.log(0.01) / 2))


def test_bernoulli_at_a_known_image_is_the_cross_entropy_summed_or_averaged():
    logits, x = at_error(0.1)
    p = x + 0.1
    per_pixel = -(x * torch.log(p) + (1 - x) * torch.log(1 - p))
    summed, mean = (reconstruction_loss(logits, x, "bernoulli", reduction) for reduction in ("sum", "mean"))
    torch.testing.assert_close(summed, per_pixel.flatten(1).sum(1))
    torch.testing.assert_close(mean, per_pixel.flatten(1).mean(1))


def closed_form_gradient(kind: str, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d(loss of an image)/d(logits), summed reduction: with s = sigmoid(l), ds/dl = s(1 − s)."""
    s = torch.sigmoid(logits)
    if kind == "bernoulli":
        return s - x
    if kind in ("mse", "gaussian"):
        return 2 * (s - x) * s * (1 - s)
    mse = (s - x).pow(2).flatten(1).mean(1).view(-1, 1, 1, 1)  # lmse: D/2 · (1/MSE) · (2(s − x)/D) · s(1 − s)
    return (s - x) * s * (1 - s) / mse


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", RECONSTRUCTIONS)
def test_each_reconstructions_gradient_is_its_closed_form(kind, reduction):
    logits = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.rand(SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    logits.requires_grad_()
    reconstruction_loss(logits, x, kind, reduction).sum().backward()  # images are independent
    expected = closed_form_gradient(kind, logits.detach(), x) / (D if reduction == "mean" else 1)
    torch.testing.assert_close(logits.grad, expected)


def sigma_vae_nll(logits: torch.Tensor, x: torch.Tensor, detach_sigma: bool) -> torch.Tensor:
    """Rybkin et al. 2021's σ-VAE: the Gaussian NLL summed over pixels with one σ per image at its optimum,
    log σ = ½·log MSE: Σ ½((x − x̂)/σ)² + log σ + ½·log 2π."""
    mean = torch.sigmoid(logits)
    log_sigma = 0.5 * (mean - x).pow(2).flatten(1).mean(1).log().view(-1, 1, 1, 1)
    if detach_sigma:
        log_sigma = log_sigma.detach()
    per_pixel = 0.5 * ((x - mean) / log_sigma.exp()).pow(2) + log_sigma + 0.5 * math.log(2 * math.pi)
    return per_pixel.flatten(1).sum(1)


def test_lmse_is_the_sigma_vae_less_a_constant_with_its_gradient():
    logits = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.rand(SHAPE, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    constant = D / 2 * (1 + math.log(2 * math.pi))
    lmse = reconstruction_loss(logits, x, "lmse")
    torch.testing.assert_close(sigma_vae_nll(logits, x, False), lmse + constant)
    # Envelope theorem: at its optimum the NLL does not move with σ, so σ held fixed gives lmse's gradient.
    gradients = []
    for loss in (lambda l: reconstruction_loss(l, x, "lmse"), lambda l: sigma_vae_nll(l, x, True)):
        leaf = logits.clone().requires_grad_()
        loss(leaf).sum().backward()
        gradients.append(leaf.grad)
    torch.testing.assert_close(gradients[0], gradients[1])


def test_lmse_of_a_perfect_reconstruction_stays_finite():
    """sigmoid(20) is 1.0 in float32: the floor keeps log 0 and its infinite gradient out of the loss."""
    x = torch.ones(2, 1, 3, 3)
    logits = torch.full((2, 1, 3, 3), 20.0, requires_grad=True)
    loss = reconstruction_loss(logits, x, "lmse")
    torch.testing.assert_close(loss, torch.full((2,), 9 / 2 * math.log(objectives.base.LMSE_FLOOR)))
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_a_mean_over_pixels_makes_beta_d_times_stronger():
    """recon/D + β·KL is (recon + D·β·KL)/D: the run of β under the mean is the run of D·β under the sum."""
    logits, x = at_error(0.1)
    generator = torch.Generator().manual_seed(5)
    mu, logvar = torch.randn(3, 4, generator=generator), torch.randn(3, 4, generator=generator)
    output = VAEOutput(logits, mu, logvar, mu)
    mean = BetaVAELoss(0.5, "mse", recon_reduction="mean")(output, x)
    summed = BetaVAELoss(0.5 * D, "mse", recon_reduction="sum")(output, x)
    torch.testing.assert_close(mean.loss * D, summed.loss)
    torch.testing.assert_close(mean.terms["recon"] * D, summed.terms["recon"])
    torch.testing.assert_close(mean.terms["kl"], summed.terms["kl"])  # the KL is the KL either way


def test_every_objective_takes_the_reduction_from_the_config():
    for name in objectives.OBJECTIVES:
        config = TrainConfig(objective=name, latent_dim=3, recon="lmse", recon_reduction="mean")
        objective = objectives.make_objective(config, beta=1.0)
        assert (objective.recon, objective.recon_reduction) == ("lmse", "mean"), name


def test_an_unknown_reduction_is_a_user_error_listing_the_choices():
    message = "unknown reconstruction reduction 'median'; choose one of: mean, sum$"
    with pytest.raises(BetaVAEError, match=message):
        BetaVAELoss(1.0, "mse", recon_reduction="median")
    with pytest.raises(BetaVAEError, match="choose one of: mean, sum"):
        reconstruction_loss(*at_error(), "mse", "median")


def test_train_offers_the_reconstructions_and_the_reduction(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    assert "--recon TEXT bernoulli | gaussian | mse | lmse" in flat
    assert "--recon-reduction TEXT the reconstruction over an image's pixels: sum | mean" in flat
    code, _, err = run_cli(["train", "--recon", "mse", "--recon-reduction", "median"], capsys)
    assert code != 0 and err.strip().endswith("choose one of: mean, sum (--recon-reduction)")


@pytest.mark.slow
def test_a_run_with_a_mean_reduction_reports_its_reconstruction_per_pixel(tmp_path, capsys):
    code, out, err = run_cli(["train", "--dataset", "shapes", "--recon", "mse", "--recon-reduction", "mean",
                              "--steps", 2, "--batch-size", 8, "--test-size", 32, "--device", "cpu",
                              "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    assert "per pixel" in out
    code, out, err = run_cli(["train", "--dataset", "shapes", "--recon", "lmse", "--steps", 2, "--batch-size",
                              8, "--test-size", 32, "--device", "cpu", "--out", tmp_path / "lmse"], capsys)
    assert code == 0, err
    assert "per pixel" not in out
    # Runs of any loss share one scale: the held-out squared error, summed over each image's pixels.
    mean_run, lmse_run = (RunDir(tmp_path / name).read_metrics()["test"] for name in ("run", "lmse"))
    assert mean_run["squared_error"] == pytest.approx(mean_run["recon"] * 28 * 28, rel=1e-5)
    assert 0 < lmse_run["squared_error"] < 28 * 28 and lmse_run["recon"] < 0  # log of an MSE below 1
