"""The β-VAE objective: reconstruction + β·KL(q(z|x) ‖ N(0, I)).

Higgins et al. 2017, Eq. 4. The paper reports β *normalised* by the ratio of latent to
input size, β_norm = β·M/N, which makes a value comparable across image and latent sizes;
:func:`~betavae.objectives.base.beta_from_norm` converts.
"""

from __future__ import annotations

import torch

from betavae.models.vae import VAEOutput
from betavae.objectives.base import LossTerms, Objective


class BetaVAELoss(Objective):
    """reconstruction + β·KL, Higgins et al. 2017, Eq. 4 (with an optional warm-up of β)."""

    name = "beta"
    summary = "reconstruction + β·KL, Higgins et al. 2017"

    def forward(self, output: VAEOutput, x: torch.Tensor, step: torch.Tensor | None = None) -> LossTerms:
        recon = self.reconstruction(output, x)
        kl, kl_dims = self.kl(output)
        loss = recon + self.warmup(step) * self.beta * kl
        return LossTerms(loss, {"recon": recon, "kl": kl}, kl_dims)
