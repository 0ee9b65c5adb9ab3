"""β-TCVAE: the KL split into index-code mutual information, total correlation and dimension-wise KL.

Chen et al., "Isolating Sources of Disentanglement in Variational Autoencoders", NeurIPS
2018. Their Eq. 2 decomposes the averaged KL(q(z|x) ‖ p(z)) as

    E[log q(z|x) − log q(z)]  +  E[log q(z) − Σ_j log q(z_j)]  +  E[Σ_j log q(z_j) − log p(z_j)]
    (mutual information MI)      (total correlation TC)           (dimension-wise KL)

and Eq. 4 weighs them α, β, γ; β alone above 1 penalises the TC. The aggregate posterior
q(z) and its marginals q(z_j) have no closed form, so log q(z_i) is estimated from the
minibatch, z_i being the sample drawn from q(z|x_i):

- minibatch weighted sampling (``"mws"``, Appendix C.1, Eq. S5):
  log q(z_i) ≈ log Σ_j q(z_i|x_j) − log(N·M), N the dataset size and M the batch size;
- minibatch stratified sampling (``"mss"``, Appendix C.2): q(z_i) ≈ Σ_j w_ij q(z_i|x_j) with
  weight 1/N on the sample's own point, (N − M + 1)/(N·(M − 1)) on one other point and
  1/(M − 1) on the rest (the weights of a row sum to 1).

Both for log q(z_j) alike, per dimension. The three estimates always sum to the sample KL
E[log q(z|x) − log p(z)], whatever the estimator. MWS's − log(N·M) is biased by a constant
that does not change the gradient but does shift the logged terms: against the minibatch's
own mixture (1/M each) MI reads log N too high, TC (D − 1)·log N too high and the
dimension-wise KL D·log N too low (D latent dimensions). MSS is nearly unbiased, so its
terms are the ones to read as nats. (The authors' code puts the 1/N weights in the first
column rather than on the diagonal; here they sit on the diagonal, as in the appendix.)

The estimators need N: the training loop sets it with :meth:`BetaTCVAELoss.set_dataset_size`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from betavae.checks import check_weight
from betavae.errors import BetaVAEError, unknown_choice
from betavae.models.vae import VAEOutput
from betavae.objectives.base import LossTerms, Objective
from betavae.options import option

SAMPLINGS = ("mws", "mss")


@dataclass
class BetaTCOptions:
    """The options of objective ``beta_tc``, as config fields (:class:`betavae.config.TrainConfig`)."""

    tc_alpha: float = option(1.0, "--tc-alpha", "weight of the index-code MI")
    tc_gamma: float = option(1.0, "--tc-gamma", "weight of the dimension-wise KL")
    tc_sampling: str = option("mws", "--tc-sampling", "{names} (minibatch weighted / stratified)",
                              names="betavae.objectives.beta_tc:SAMPLINGS")


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, σ²), elementwise."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def log_stratified_weights(batch_size: int, dataset_size: int,
                           device: torch.device | None = None) -> torch.Tensor:
    """log w_ij of minibatch stratified sampling (Chen et al. 2018, Appendix C.2), shape (M, M).

    Made on ``device`` directly, with no copy from the host, so that a captured CUDA graph can hold it.
    """
    if batch_size < 2 or dataset_size < batch_size - 1:
        raise BetaVAEError(
            f"minibatch stratified sampling needs a batch of at least 2 and a dataset at least one smaller "
            f"than the batch, got a batch of {batch_size} and a dataset of {dataset_size}; "
            f"set the dataset size (set_dataset_size) or use tc_sampling = \"mws\"")
    others = batch_size - 1
    stratum = (dataset_size - others) / (dataset_size * others)
    log_w = torch.full((batch_size, batch_size), -math.log(others), device=device)
    rows = torch.arange(batch_size, device=device)
    log_w[rows, (rows + 1) % batch_size] = math.log(stratum) if stratum > 0 else -math.inf
    log_w[rows, rows] = -math.log(dataset_size)
    return log_w


class BetaTCVAELoss(Objective):
    """reconstruction + α·MI + β·TC + γ·dimension-wise KL, Chen et al. 2018, Eq. 4."""

    name = "beta_tc"
    summary = "reconstruction + α·MI + β·TC + γ·dimension-wise KL, Chen et al. 2018"
    Options = BetaTCOptions

    def __init__(self, beta: float, alpha: float = BetaTCOptions.tc_alpha,
                 gamma: float = BetaTCOptions.tc_gamma, sampling: str = BetaTCOptions.tc_sampling,
                 dataset_size: int = 1, recon: str = "bernoulli", warmup_steps: int = 0,
                 recon_reduction: str = "sum") -> None:
        super().__init__(beta=beta, recon=recon, warmup_steps=warmup_steps, recon_reduction=recon_reduction)
        self.check_options({"tc_alpha": alpha, "tc_gamma": gamma, "tc_sampling": sampling})
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.sampling = sampling
        self.set_dataset_size(dataset_size)

    @classmethod
    def from_config(cls, config: Any, beta: float) -> BetaTCVAELoss:
        return cls(beta, config.tc_alpha, config.tc_gamma, config.tc_sampling,
                   recon=config.recon, warmup_steps=config.beta_warmup,
                   recon_reduction=config.recon_reduction)

    @classmethod
    def check_options(cls, values: Mapping[str, Any], called: Mapping[str, str] | None = None) -> None:
        """α and γ finite and 0 or more; a known estimator of q(z)."""
        name = cls.option_names(called)
        check_weight(values["tc_alpha"], name["tc_alpha"])
        check_weight(values["tc_gamma"], name["tc_gamma"])
        sampling = values["tc_sampling"]
        if sampling not in SAMPLINGS:
            raise unknown_choice(f"β-TCVAE sampling ({name['tc_sampling']})", sampling, SAMPLINGS)

    def set_dataset_size(self, dataset_size: int) -> None:
        """N, the number of training images the minibatch estimates of q(z) stand for."""
        if dataset_size < 1:
            raise BetaVAEError(f"the β-TCVAE dataset size must be at least 1, got {dataset_size}")
        self.dataset_size = int(dataset_size)

    def log_weights(self, batch_size: int, device: torch.device) -> torch.Tensor:
        """log w_ij such that log q(z_i) ≈ logsumexp_j(log w_ij + log q(z_i|x_j)), broadcastable to (M, M)."""
        if self.sampling == "mws":
            return torch.full((1, 1), -math.log(self.dataset_size * batch_size), device=device)
        return log_stratified_weights(batch_size, self.dataset_size, device)

    def decomposition(self, output: VAEOutput) -> dict[str, torch.Tensor]:
        """Batch means of the mutual information, total correlation and dimension-wise KL (Eq. 2)."""
        mu, logvar, z = output.mu.float(), output.logvar.float(), output.z.float()
        # pairs[i, j, d] = log q(z_id | x_j): every sample under every posterior of the batch.
        pairs = gaussian_log_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))
        log_w = self.log_weights(z.shape[0], z.device)
        log_qz_given_x = pairs.diagonal(dim1=0, dim2=1).sum(dim=0)
        log_qz = torch.logsumexp(log_w + pairs.sum(dim=2), dim=1)
        log_prod_qzj = torch.logsumexp(log_w.unsqueeze(2) + pairs, dim=1).sum(dim=1)
        log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(dim=1)
        return {"mi": (log_qz_given_x - log_qz).mean(), "tc": (log_qz - log_prod_qzj).mean(),
                "dwkl": (log_prod_qzj - log_pz).mean()}

    def forward(self, output: VAEOutput, x: torch.Tensor, step: torch.Tensor | None = None) -> LossTerms:
        recon = self.reconstruction(output, x)
        kl, kl_dims = self.kl(output)
        parts = self.decomposition(output)
        regulariser = self.alpha * parts["mi"] + self.beta * parts["tc"] + self.gamma * parts["dwkl"]
        loss = recon + self.warmup(step) * regulariser
        return LossTerms(loss, {"recon": recon, "kl": kl, **parts}, kl_dims)
