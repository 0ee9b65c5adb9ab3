"""The β-VAE objective: reconstruction + β·KL(q(z|x) ‖ N(0, I)).

Higgins et al. 2017, Eq. 4. Both terms are summed over pixels and latent dimensions and
averaged over the batch, so that β = 1 is the ordinary evidence lower bound. The paper
reports β *normalised* by the ratio of latent to input size, β_norm = β·M/N, which makes
a value comparable across image and latent sizes; :func:`beta_from_norm` converts.

The loss returns its terms instead of logging them: the caller decides what to record.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from betavae.errors import BetaVAEError, unknown_choice
from betavae.models.vae import VAEOutput

RECONSTRUCTIONS = ("bernoulli", "gaussian")


def beta_from_norm(beta_norm: float, latent_dim: int, num_pixels: int) -> float:
    """β = β_norm·N/M (Higgins et al. 2017, Section 4)."""
    return beta_norm * num_pixels / latent_dim


def norm_from_beta(beta: float, latent_dim: int, num_pixels: int) -> float:
    """β_norm = β·M/N, the inverse of :func:`beta_from_norm`."""
    return beta * latent_dim / num_pixels


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) for each sample and latent dimension, shape (B, M).

    Closed form for diagonal Gaussians (Kingma & Welling 2014, Appendix B):
    ½(μ² + σ² − 1 − log σ²).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Negative log-likelihood of ``x`` per sample, summed over pixels: shape (B,).

    ``bernoulli``: binary cross-entropy with logits (pixel intensities as probabilities).
    ``gaussian``: squared error of sigmoid(logits), the report's MSE, i.e. a Gaussian
    likelihood with fixed variance up to constants.
    """
    if kind == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    elif kind == "gaussian":
        per_pixel = (torch.sigmoid(logits) - x).pow(2)
    else:
        raise unknown_choice("reconstruction loss", kind, RECONSTRUCTIONS)
    return per_pixel.flatten(1).sum(dim=1)


class LossTerms(NamedTuple):
    """Batch means: the total to minimise, its two terms, and KL per latent dimension."""

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    kl_per_dim: torch.Tensor


class BetaVAELoss:
    """reconstruction + β·KL, Higgins et al. 2017, Eq. 4."""

    def __init__(self, beta: float, recon: str = "bernoulli") -> None:
        if recon not in RECONSTRUCTIONS:
            raise unknown_choice("reconstruction loss", recon, RECONSTRUCTIONS)
        if not beta >= 0:
            raise BetaVAEError(f"beta must be a non-negative number, got {beta}")
        self.beta = float(beta)
        self.recon = recon

    def __call__(self, output: VAEOutput, x: torch.Tensor) -> LossTerms:
        # Always summed in float32: under bf16 autocast the network's outputs are bf16,
        # whose 8-bit mantissa would round away most of a sum over 4,096 pixels.
        recon = reconstruction_loss(output.logits.float(), x, self.recon).mean()
        kl_dims = kl_per_dim(output.mu.float(), output.logvar.float()).mean(dim=0)
        kl = kl_dims.sum()
        return LossTerms(recon + self.beta * kl, recon, kl, kl_dims)
