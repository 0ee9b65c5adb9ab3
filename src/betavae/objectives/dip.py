"""DIP-VAE: the KL plus a penalty pulling the aggregate posterior's covariance towards the identity.

Kumar et al., "Variational Inference of Disentangled Latent Concepts from Unlabeled
Observations", ICLR 2018. To make the inferred prior q(z) match the factorised p(z) =
N(0, I), they match its second moments (Eq. 6):

    λ_od·Σ_{i≠j} Cov_ij²  +  λ_d·Σ_i (Cov_ii − 1)²

with Cov the batch covariance of the posterior means μ (DIP-VAE-I, Eq. 7) or the covariance
of q(z) itself, Cov(μ) + E[diag σ²] by the law of total covariance (DIP-VAE-II, Eq. 8).
λ_d defaults to 10·λ_od for type I and λ_od for type II, the paper's settings and
disentanglement_lib's. The batch covariance divides by the batch size, as there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from betavae.checks import check_weight
from betavae.errors import unknown_choice
from betavae.models.vae import VAEOutput
from betavae.objectives.base import LossTerms, Objective
from betavae.options import option

DIP_TYPES = ("i", "ii")


@dataclass
class DIPOptions:
    """The options of objective ``dip``, as config fields (:class:`betavae.config.TrainConfig`)."""

    dip_type: str = option("ii", "--dip-type", "{names}: the covariance of μ (i) or of q(z) (ii)",
                           names="betavae.objectives.dip:DIP_TYPES")
    dip_lambda_od: float = option(10.0, "--dip-lambda-od", "weight of the off-diagonal penalty")
    dip_lambda_d: float | None = option(None, "--dip-lambda-d", "weight of the diagonal one",
                                        default_text="10·λ_od for i, λ_od for ii")


def dip_covariance(mu: torch.Tensor, logvar: torch.Tensor, dip_type: str) -> torch.Tensor:
    """Cov(μ) over the batch (type ``"i"``), or Cov(μ) + diag(E[σ²]) (type ``"ii"``), shape (D, D)."""
    centred = mu - mu.mean(dim=0)
    covariance = centred.T @ centred / mu.shape[0]
    if dip_type == "ii":
        covariance = covariance + torch.diag(logvar.exp().mean(dim=0))
    return covariance


class DIPVAELoss(Objective):
    """reconstruction + β·KL + λ_od·Σ_{i≠j} Cov_ij² + λ_d·Σ_i (Cov_ii − 1)², Kumar et al. 2018, Eq. 6–8."""

    name = "dip"
    summary = "reconstruction + β·KL + λ·(Cov(z) − I)², DIP-VAE I/II, Kumar et al. 2018"
    Options = DIPOptions

    def __init__(self, beta: float, dip_type: str = DIPOptions.dip_type,
                 lambda_od: float = DIPOptions.dip_lambda_od, lambda_d: float | None = None,
                 recon: str = "bernoulli", warmup_steps: int = 0, recon_reduction: str = "sum") -> None:
        super().__init__(beta=beta, recon=recon, warmup_steps=warmup_steps, recon_reduction=recon_reduction)
        self.check_options({"dip_type": dip_type, "dip_lambda_od": lambda_od, "dip_lambda_d": lambda_d})
        if lambda_d is None:
            lambda_d = 10.0 * lambda_od if dip_type == "i" else lambda_od
        self.dip_type = dip_type
        self.lambda_od = float(lambda_od)
        self.lambda_d = float(lambda_d)

    @classmethod
    def from_config(cls, config: Any, beta: float) -> DIPVAELoss:
        return cls(beta, config.dip_type, config.dip_lambda_od, config.dip_lambda_d,
                   recon=config.recon, warmup_steps=config.beta_warmup,
                   recon_reduction=config.recon_reduction)

    @classmethod
    def check_options(cls, values: Mapping[str, Any], called: Mapping[str, str] | None = None) -> None:
        """A known type; λ_od and λ_d (None: its default from λ_od) finite and 0 or more."""
        name = cls.option_names(called)
        if values["dip_type"] not in DIP_TYPES:
            raise unknown_choice(f"DIP-VAE type ({name['dip_type']})", values["dip_type"], DIP_TYPES)
        check_weight(values["dip_lambda_od"], name["dip_lambda_od"])
        if values["dip_lambda_d"] is not None:
            check_weight(values["dip_lambda_d"], name["dip_lambda_d"])

    def penalties(self, output: VAEOutput) -> dict[str, torch.Tensor]:
        """Σ_{i≠j} Cov_ij² and Σ_i (Cov_ii − 1)² of this batch."""
        covariance = dip_covariance(output.mu.float(), output.logvar.float(), self.dip_type)
        diagonal = covariance.diagonal()
        return {"dip_off_diagonal": (covariance - torch.diag(diagonal)).pow(2).sum(),
                "dip_diagonal": (diagonal - 1.0).pow(2).sum()}

    def forward(self, output: VAEOutput, x: torch.Tensor, step: torch.Tensor | None = None) -> LossTerms:
        recon = self.reconstruction(output, x)
        kl, kl_dims = self.kl(output)
        parts = self.penalties(output)
        regulariser = (self.beta * kl + self.lambda_od * parts["dip_off_diagonal"]
                       + self.lambda_d * parts["dip_diagonal"])
        loss = recon + self.warmup(step) * regulariser
        return LossTerms(loss, {"recon": recon, "kl": kl, **parts}, kl_dims)
