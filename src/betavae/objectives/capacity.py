"""Controlled capacity: reconstruction + γ·|KL − C|, C raised linearly from 0 to C_max.

Burgess et al., "Understanding disentangling in β-VAE", 2018, Eq. 8. Instead of weighing
the KL by a fixed β, the KL is pulled towards a target capacity C (nats) that grows during
training, so the code takes in information a little at a time. Their dSprites settings
(γ = 1000, C_max = 25 nats over 100,000 steps) are the defaults of γ and C_max; the
schedule's length defaults to the run's own number of steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from betavae.checks import check_weight
from betavae.errors import BetaVAEError
from betavae.models.vae import VAEOutput
from betavae.objectives.base import LossTerms, Objective, linear_ramp
from betavae.options import option


@dataclass
class CapacityOptions:
    """The options of objective ``capacity``, as config fields (:class:`betavae.config.TrainConfig`)."""

    capacity_gamma: float = option(1000.0, "--capacity-gamma", "γ, the weight of |KL − C|")
    capacity_max: float = option(25.0, "--capacity-max", "C_max in nats")
    capacity_steps: int | None = option(None, "--capacity-steps", "steps over which C rises",
                                        default_text="--steps")


class CapacityLoss(Objective):
    """reconstruction + γ·|KL − C(step)|, C(step) = C_max·min(1, step / capacity_steps)."""

    name = "capacity"
    summary = "reconstruction + γ·|KL − C|, C rising to C_max, Burgess et al. 2018"
    USES_BETA: ClassVar[bool] = False
    Options = CapacityOptions

    def __init__(self, gamma: float = CapacityOptions.capacity_gamma,
                 capacity_max: float = CapacityOptions.capacity_max, capacity_steps: int = 100_000,
                 recon: str = "bernoulli", warmup_steps: int = 0, recon_reduction: str = "sum") -> None:
        self.check_options(
            {"capacity_gamma": gamma, "capacity_max": capacity_max, "capacity_steps": capacity_steps}
        )
        super().__init__(beta=gamma, recon=recon, warmup_steps=warmup_steps, recon_reduction=recon_reduction)
        self.gamma = float(gamma)
        self.capacity_max = float(capacity_max)
        self.capacity_steps = int(capacity_steps)

    @classmethod
    def from_config(cls, config: Any, beta: float) -> CapacityLoss:
        return cls(config.capacity_gamma, config.capacity_max, config.capacity_steps or config.steps,
                   config.recon, config.beta_warmup, config.recon_reduction)

    @classmethod
    def check_options(cls, values: Mapping[str, Any], called: Mapping[str, str] | None = None) -> None:
        """γ and C_max (nats) finite and 0 or more; a schedule of at least 1 step (None: the run's)."""
        name = cls.option_names(called)
        check_weight(values["capacity_gamma"], name["capacity_gamma"])
        check_weight(values["capacity_max"], name["capacity_max"])
        steps = values["capacity_steps"]
        if steps is not None and steps < 1:
            raise BetaVAEError(f"{name['capacity_steps']} must be at least 1 step, got {steps}")

    def capacity(self, step: torch.Tensor | None) -> torch.Tensor | float:
        """C at ``step``: C_max·min(1, step / capacity_steps); C_max after training (None)."""
        return self.capacity_max * linear_ramp(step, self.capacity_steps)

    def forward(self, output: VAEOutput, x: torch.Tensor, step: torch.Tensor | None = None) -> LossTerms:
        recon = self.reconstruction(output, x)
        kl, kl_dims = self.kl(output)
        capacity = self.capacity(step)
        loss = recon + self.warmup(step) * self.gamma * (kl - capacity).abs()
        capacity_term = torch.as_tensor(capacity, dtype=kl.dtype, device=kl.device)
        return LossTerms(loss, {"recon": recon, "kl": kl, "capacity": capacity_term}, kl_dims)
