"""FactorVAE: the ELBO + γ·TC, the total correlation estimated by a discriminator.

Kim & Mnih, "Disentangling by Factorising", ICML 2018, Eq. 2 and Algorithm 2. A
discriminator D learns to tell codes z ~ q(z) from codes whose dimensions were shuffled
independently across the batch (samples of Π_j q(z_j)); by the density-ratio trick,
TC(z) ≈ E[log D(z) − log(1 − D(z))], the difference of its two logits, which the VAE
minimises with weight γ while D trains on the same step with its own Adam (lr 1e-4,
β₁ = 0.5, β₂ = 0.9 as in the paper). As in disentanglement_lib, D sees the batch the VAE
trained on (the paper draws a second batch).

The permutation is per dimension, across the batch (:func:`permute_dims`): one popular
PyTorch toolkit permutes within each sample instead, which keeps every code's joint
dependence and estimates nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from betavae.checks import check_weight
from betavae.models.vae import VAEOutput
from betavae.objectives.base import LossTerms, Objective
from betavae.options import option
from betavae.training import performance

DISCRIMINATOR_OPTIMIZER = "discriminator"


@dataclass
class FactorOptions:
    """The options of objective ``factor``, as config fields (:class:`betavae.config.TrainConfig`)."""

    factor_gamma: float = option(35.0, "--factor-gamma", "weight of the total correlation")
    factor_lr: float = option(1e-4, "--factor-lr", "the discriminator's learning rate (Adam)")


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``z`` (B, M) with each column shuffled by its own permutation of the batch.

    Every dimension keeps its marginal (the same values, reordered), while the dependence
    between dimensions is broken: a sample of Π_j q(z_j) (Kim & Mnih 2018, Algorithm 1).
    """
    keys = torch.rand(z.shape, generator=generator, device=z.device)
    return z.gather(0, keys.argsort(dim=0))


def discriminator(latent_dim: int, hidden: int = 1000, layers: int = 6) -> nn.Sequential:
    """The paper's discriminator: ``layers`` linear layers of ``hidden`` units, LeakyReLU 0.2, two logits."""
    modules: list[nn.Module] = []
    width = latent_dim
    for _ in range(layers - 1):
        modules += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    modules.append(nn.Linear(width, 2))
    return nn.Sequential(*modules)


class FactorVAELoss(Objective):
    """reconstruction + KL + γ·TC, TC from the discriminator's logits (class 0: q(z), class 1: permuted)."""

    name = "factor"
    summary = "reconstruction + KL + γ·TC from a discriminator, Kim & Mnih 2018"
    USES_BETA: ClassVar[bool] = False
    Options = FactorOptions

    def __init__(self, latent_dim: int, gamma: float = FactorOptions.factor_gamma,
                 lr: float = FactorOptions.factor_lr, recon: str = "bernoulli", warmup_steps: int = 0,
                 hidden: int = 1000, recon_reduction: str = "sum") -> None:
        super().__init__(beta=1.0, recon=recon, warmup_steps=warmup_steps, recon_reduction=recon_reduction)
        self.check_options({"factor_gamma": gamma, "factor_lr": lr})
        self.gamma = float(gamma)
        self.lr = float(lr)
        self.discriminator = discriminator(latent_dim, hidden)

    @classmethod
    def from_config(cls, config: Any, beta: float) -> FactorVAELoss:
        return cls(config.latent_dim, config.factor_gamma, config.factor_lr, config.recon, config.beta_warmup,
                   recon_reduction=config.recon_reduction)

    @classmethod
    def check_options(cls, values: Mapping[str, Any], called: Mapping[str, str] | None = None) -> None:
        """γ finite and 0 or more; the discriminator's learning rate finite and more than 0."""
        name = cls.option_names(called)
        check_weight(values["factor_gamma"], name["factor_gamma"])
        check_weight(values["factor_lr"], name["factor_lr"], positive=True)

    def total_correlation(self, z: torch.Tensor) -> torch.Tensor:
        """The density-ratio estimate of TC on codes ``z``: batch mean of logit(q(z)) − logit(permuted).

        The discriminator's weights enter detached: the VAE's loss moves the codes, not the
        discriminator (whose own step follows in :meth:`update`), so the backward pass skips
        the weight gradients it would otherwise compute and throw away.
        """
        weights = {name: value.detach() for name, value in self.discriminator.named_parameters()}
        logits = torch.func.functional_call(self.discriminator, weights, (z,))
        return (logits[:, 0] - logits[:, 1]).mean()

    def forward(self, output: VAEOutput, x: torch.Tensor, step: torch.Tensor | None = None) -> LossTerms:
        recon = self.reconstruction(output, x)
        kl, kl_dims = self.kl(output)
        tc = self.total_correlation(output.z.float())
        loss = recon + self.warmup(step) * (kl + self.gamma * tc)
        return LossTerms(loss, {"recon": recon, "kl": kl, "tc": tc}, kl_dims)

    def make_optimizers(self, device: torch.device, capturable: bool) -> dict[str, torch.optim.Optimizer]:
        return {DISCRIMINATOR_OPTIMIZER: performance.make_optimizer(
            self.discriminator.parameters(), self.lr, device, capturable=capturable, betas=(0.5, 0.9))}

    def update(self, output: VAEOutput, x: torch.Tensor, optimizers: Mapping[str, torch.optim.Optimizer],
               noise: torch.Generator | None) -> dict[str, torch.Tensor]:
        """One step of the discriminator: cross-entropy of q(z) (class 0) against permuted codes (class 1)."""
        z = output.z.detach().float()
        shuffled = permute_dims(z, noise)
        logits = self.discriminator(torch.cat([z, shuffled]))
        labels = torch.cat([torch.zeros(len(z), dtype=torch.long, device=z.device),
                            torch.ones(len(z), dtype=torch.long, device=z.device)])
        loss = F.cross_entropy(logits, labels)
        optimizer = optimizers[DISCRIMINATOR_OPTIMIZER]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
        return {"discriminator_loss": loss.detach(), "discriminator_accuracy": accuracy}
