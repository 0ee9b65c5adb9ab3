"""What every objective shares: the reconstruction term, the Gaussian KL, β's two forms, schedules.

An objective (:class:`Objective`) returns its total and a dict of named terms
(:class:`LossTerms`); the training loop, the log, TensorBoard and the held-out loss take
whatever terms it returns, so an objective is one file and one registry line
(:mod:`betavae.objectives`). Terms are batch means, summed over pixels and latent
dimensions, so that β = 1 is the ordinary evidence lower bound; a run may instead average the
reconstruction over its pixels (``recon_reduction = "mean"``, PyTorch's ``F.mse_loss`` default),
which divides it by the pixel count D and so makes a given β D times stronger.

Schedules (a β warm-up, capacity's C) read the number of steps taken from a tensor on the
device (``step``), which the training step advances in place: a step replayed from a
captured CUDA graph (:mod:`betavae.training.steps`) then follows the schedule, where a Python
number would be frozen at its value when the graph was captured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from betavae.checks import check_weight
from betavae.errors import BetaVAEError, unknown_choice
from betavae.models.vae import VAEOutput
from betavae.options import field_names

RECONSTRUCTIONS = ("bernoulli", "gaussian", "mse", "lmse")
# How the reconstruction of one image is taken over its D values (pixels × channels): summed, the
# negative log-likelihood of the image, or averaged, as PyTorch's losses do by default.
REDUCTIONS = ("sum", "mean")
# lmse's floor under an image's MSE. A sigmoid output can match binary pixels exactly in float32
# (sigmoid(17) rounds to 1), and log 0 = −∞ with an infinite gradient would end the run. 1e-8 is
# far below any error an image can resolve (8-bit quantisation alone has a variance of
# 1/(12·255²) ≈ 1.3e-6), so no trained model is held up by it.
LMSE_FLOOR = 1e-8


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


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, kind: str,
                        reduction: str = "sum") -> torch.Tensor:
    """Negative log-likelihood of ``x`` per sample (up to constants), shape (B,).

    ``bernoulli``: binary cross-entropy with logits (pixel intensities as probabilities).
    ``gaussian`` and ``mse`` (two names of one loss; old run folders record ``gaussian``):
    squared error of sigmoid(logits), the report's MSE, i.e. a Gaussian likelihood with fixed
    variance up to constants. ``lmse``: D/2 · log MSE, D the image's values (pixels × channels) and
    MSE their mean squared error: the Gaussian's NLL with its variance, shared by the image's
    pixels, set to its optimum σ² = MSE (Yu 2020; Rybkin et al. 2021's σ-VAE), less the constant
    D/2·(1 + log 2π). Its gradient is the squared error's divided by 2·MSE: where squared error
    weighs the KL against a variance fixed by hand, the variance here is the one that fits, so the
    balance between reconstruction and KL follows how well images are reconstructed.

    ``reduction``: ``sum`` over the image's values (the likelihood of the image), or ``mean``,
    the sum divided by D (PyTorch's default for ``F.mse_loss``; lmse then is ½·log MSE).
    """
    if reduction not in REDUCTIONS:
        raise unknown_choice("reconstruction reduction", reduction, REDUCTIONS)
    values = math.prod(x.shape[1:])
    if kind == "bernoulli":
        per_image = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)
    elif kind in ("gaussian", "mse"):
        per_image = (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(dim=1)
    elif kind == "lmse":
        mse = (torch.sigmoid(logits) - x).pow(2).flatten(1).mean(dim=1)
        per_image = 0.5 * values * mse.clamp(min=LMSE_FLOOR).log()
    else:
        raise unknown_choice("reconstruction loss", kind, RECONSTRUCTIONS)
    return per_image / values if reduction == "mean" else per_image


def linear_ramp(step: torch.Tensor | None, steps: int) -> torch.Tensor | float:
    """A weight rising linearly from 0 at step 0 to 1 at ``steps`` and staying there.

    ``step`` is the count of steps taken before this one, a tensor the training step
    advances in place; None (a held-out loss after training) and ``steps`` = 0 give 1.
    """
    if step is None or steps <= 0:
        return 1.0
    return (step.float() / steps).clamp(max=1.0)


class LossTerms(NamedTuple):
    """Batch means: the total to minimise, the named terms to log, and the KL per latent dimension.

    ``terms`` always holds ``recon`` and ``kl`` (the KL of the posterior from the prior,
    whatever the objective does with it), so every objective's runs compare on them.
    """

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    kl_per_dim: torch.Tensor

    def detach(self) -> LossTerms:
        return LossTerms(self.loss.detach(), {k: v.detach() for k, v in self.terms.items()},
                         self.kl_per_dim.detach())


class Objective(nn.Module):
    """One training objective: ``objective(output, x, step) -> LossTerms``.

    A module, so that an objective may own networks (and its checkpoint their weights).
    Subclasses set :attr:`name` and implement :meth:`forward`; :meth:`reconstruction` and
    :meth:`kl` give them the shared terms in float32 (under bf16 autocast the network's
    outputs are bf16, whose 8-bit mantissa would round away most of a sum over 4,096 pixels).
    ``warmup_steps`` > 0 raises the regulariser's weight linearly from 0 over that many
    steps (:func:`linear_ramp`), for every objective alike.
    """

    name: ClassVar[str] = ""
    # What it minimises and whose it is, in one line, for the CLI's help.
    summary: ClassVar[str] = ""
    # Its options: a dataclass of the config fields it reads besides beta, recon, recon_reduction and
    # beta_warmup, declared with betavae.options.option (flag and help on each), which TrainConfig takes
    # in; None where it has none. OPTIONS, their names (objectives.options_of), is derived from it.
    Options: ClassVar[type | None] = None
    OPTIONS: ClassVar[tuple[str, ...]] = ()
    # False where the run's β is not its weight on the KL (capacity's γ, FactorVAE's fixed 1): a β
    # given is refused, and the run records the KL weight it used as its β.
    USES_BETA: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.OPTIONS = field_names(cls.Options) if cls.Options is not None else ()

    def __init__(self, beta: float, recon: str = "bernoulli", warmup_steps: int = 0,
                 recon_reduction: str = "sum") -> None:
        super().__init__()
        if recon not in RECONSTRUCTIONS:
            raise unknown_choice("reconstruction loss", recon, RECONSTRUCTIONS)
        if recon_reduction not in REDUCTIONS:
            raise unknown_choice("reconstruction reduction", recon_reduction, REDUCTIONS)
        check_weight(beta, "beta")
        if warmup_steps < 0:
            raise BetaVAEError(f"the β warm-up must be 0 or more steps, got {warmup_steps}")
        self.beta = float(beta)
        self.recon = recon
        self.recon_reduction = recon_reduction
        self.warmup_steps = int(warmup_steps)

    @classmethod
    def from_config(cls, config: Any, beta: float) -> Objective:
        """The objective a run of ``config`` (a :class:`~betavae.config.TrainConfig`) trains with."""
        return cls(beta, config.recon, config.beta_warmup, config.recon_reduction)

    @classmethod
    def check_options(cls, values: Mapping[str, Any], called: Mapping[str, str] | None = None) -> None:
        """Refuse values of :attr:`OPTIONS` (``values``, by field) that the objective cannot train with.

        One line naming the option as ``called`` says (what the user typed: ``--capacity-gamma``),
        else by its field. The config calls it before any work, the constructor for a library
        user; none to check here.
        """

    @classmethod
    def option_names(cls, called: Mapping[str, str] | None = None) -> dict[str, str]:
        """How :meth:`check_options`' messages name each option: as ``called`` says, else by its field."""
        return {key: key for key in cls.OPTIONS} | dict(called or {})

    def set_dataset_size(self, dataset_size: int) -> None:
        """The number of training images; for objectives that estimate over the dataset
        (β-TCVAE's q(z)). The training loop tells every objective; none else needs it."""

    def reconstruction(self, output: VAEOutput, x: torch.Tensor) -> torch.Tensor:
        """The batch mean of the reconstruction term, in float32."""
        return reconstruction_loss(output.logits.float(), x, self.recon, self.recon_reduction).mean()

    @staticmethod
    def kl(output: VAEOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """(KL summed over dimensions, KL per dimension), batch means in float32."""
        kl_dims = kl_per_dim(output.mu.float(), output.logvar.float()).mean(dim=0)
        return kl_dims.sum(), kl_dims

    def warmup(self, step: torch.Tensor | None) -> torch.Tensor | float:
        """The regulariser's weight now: 1, or rising over the first ``warmup_steps`` steps."""
        return linear_ramp(step, self.warmup_steps)

    def forward(self, output: VAEOutput, x: torch.Tensor, step: torch.Tensor | None = None) -> LossTerms:
        raise NotImplementedError

    def make_optimizers(self, device: torch.device, capturable: bool) -> dict[str, torch.optim.Optimizer]:
        """The optimisers of networks the objective owns, by name (FactorVAE's discriminator); none here.

        The training loop keeps them beside the model's, saves each in the checkpoint under
        its name and restores it on ``--resume``; ``capturable`` as for the model's
        (:func:`betavae.training.performance.make_optimizer`).
        """
        return {}

    def update(self, output: VAEOutput, x: torch.Tensor, optimizers: Mapping[str, torch.optim.Optimizer],
               noise: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Train the objective's own networks on this step's ``output``, after the model's update.

        Returns terms to log beside :meth:`forward`'s. Nothing to train here.
        """
        return {}
