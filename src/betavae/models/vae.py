"""The β-VAE: encoder → (μ, log σ²) → z = μ + σ·ε → decoder.

Higgins et al., "β-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework", ICLR 2017. The decoder outputs logits; :meth:`BetaVAE.decode` applies the
sigmoid, while the loss works on logits for numerical stability.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from betavae.errors import BetaVAEError


class VAEOutput(NamedTuple):
    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class BetaVAE(nn.Module):
    """A VAE with a diagonal Gaussian posterior and a standard normal prior.

    ``encoder`` maps images ``image_shape`` to ``(B, 2·latent_dim)`` [μ, log σ²] and
    ``decoder`` maps codes to logits; :func:`betavae.models.build` makes them by
    architecture name, which ``arch`` records for messages.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, arch: str, latent_dim: int,
                 image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.arch = arch
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        self.encoder, self.decoder = encoder, decoder

    def check_images(self, x: torch.Tensor) -> None:
        """A one-line error for a batch this model cannot take, instead of a shape error deep inside."""
        if tuple(x.shape[1:]) != self.image_shape or x.dim() != 4:
            raise BetaVAEError(
                f"{self.arch} model expects images of shape (B, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters (μ, log σ²) for images in [0, 1]."""
        self.check_images(x)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """z = μ + σ·ε with ε ~ N(0, I), differentiable in μ and log σ²."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (Bernoulli means) for latent codes ``z``."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator)
        return VAEOutput(self.decoder(z), mu, logvar, z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Images decoded from the posterior mean: the deterministic reconstruction."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images decoded from draws of the prior N(0, I)."""
        device = next(self.parameters()).device
        z = torch.randn((n, self.latent_dim), generator=generator, device=device)
        return self.decode(z)
