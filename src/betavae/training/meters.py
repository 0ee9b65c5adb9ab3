"""What the loop measures as it trains: the loss window between log points, the training clock,
and whether the weights stayed finite.

Both the window and the clock travel in checkpoints (:mod:`betavae.training.checkpoints`), so
a resumed run logs and times as one that never stopped. Evaluations during training and
the ``on_checkpoint`` hook are paused out of both: they are not training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from betavae.objectives import LossTerms
from betavae.training.faults import diverged


class TrainingClock:
    """Seconds of training since the run began, in every call that trained it; time paused is left out.

    It counts from the start of :func:`~betavae.training.loop.train` (set-up and checkpoint
    writes are part of every run) and goes on from the ``train_seconds`` of the checkpoint a
    run resumes from. On CUDA it waits for the queued kernels before reading: their time is
    training's.
    """

    def __init__(self, device: torch.device, began: float, earlier_seconds: float) -> None:
        self.device = device
        self.began = began
        self.earlier_seconds = earlier_seconds
        self.paused_seconds = 0.0

    def seconds(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return self.earlier_seconds + time.perf_counter() - self.began - self.paused_seconds

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.seconds()  # the training queued so far finishes on training's time
        started = time.perf_counter()
        try:
            yield
        finally:
            self.paused_seconds += time.perf_counter() - started


def check_weights_finite(model: torch.nn.Module, saved_step: int | None, step: int) -> None:
    """Refuse to checkpoint non-finite weights: one fused max-norm over every parameter, read once.

    The loss of a step is computed before its update, so a finite loss does not prove the
    weights the update left are finite (a huge learning rate overflows them at once). The
    max-norm, unlike the 2-norm, cannot itself overflow on finite weights.
    """
    norm = torch.nn.utils.get_total_norm([p.detach() for p in model.parameters()], norm_type=math.inf)
    if not torch.isfinite(norm).item():
        raise diverged("weights", saved_step or 0, step, saved_step)


class LossWindow:
    """Running sums of the loss terms between two log points, kept on the device.

    Summing on the device and reading once per window avoids a host sync every step;
    the same read tells whether the loss stayed finite. The sums travel in checkpoints
    (:meth:`state`), so the first entry logged after a resume covers the whole window, as
    in a run that never stopped.
    """

    def __init__(self, device: torch.device, first_step: int) -> None:
        self.device = device
        self.names = ["loss", "recon", "kl"]  # until the objective's first step names its terms
        self._reset(first_step)

    def _reset(self, step: int) -> None:
        self.sums = torch.zeros(len(self.names), device=self.device)
        self.kl_per_dim: torch.Tensor | float = 0.0
        self.steps = 0
        self.images = 0
        self.first_step = step
        self.started = time.perf_counter()

    def add(self, terms: LossTerms, batch_size: int) -> None:
        names = ["loss", *terms.terms]
        if names != self.names:  # the objective's terms, known from its first step
            self.names = names
            self.sums = torch.zeros(len(names), device=self.device)
        self.sums += torch.stack([terms.loss.detach(), *(value.detach() for value in terms.terms.values())])
        self.kl_per_dim = self.kl_per_dim + terms.kl_per_dim.detach()
        self.steps += 1
        self.images += batch_size

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the window (its seconds too, so images/s stay true)."""
        kl_per_dim = self.kl_per_dim.clone() if isinstance(self.kl_per_dim, torch.Tensor) else self.kl_per_dim
        return {
            "names": list(self.names),
            "sums": self.sums.clone(),
            "kl_per_dim": kl_per_dim,
            "steps": self.steps,
            "images": self.images,
            "first_step": self.first_step,
            "seconds": time.perf_counter() - self.started,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.names = list(state.get("names", ["loss", "recon", "kl"]))  # older checkpoints: three terms
        self.sums = state["sums"].to(self.device)
        kl_per_dim = state["kl_per_dim"]
        self.kl_per_dim = kl_per_dim.to(self.device) if isinstance(kl_per_dim, torch.Tensor) else kl_per_dim
        self.steps, self.images, self.first_step = state["steps"], state["images"], state["first_step"]
        self.started = time.perf_counter() - state["seconds"]

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the time of the ``with`` block out of images/s."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.started += time.perf_counter() - started

    def check_finite(self, step: int, saved_step: int | None) -> list[float]:
        values = self.sums.tolist()
        if not all(math.isfinite(v) for v in values):
            # The sums were finite when the last checkpoint was written, so the fault came after it.
            since = self.first_step if saved_step is None else max(self.first_step, saved_step)
            raise diverged("loss", since, step, saved_step)
        return values

    def flush(self, step: int, saved_step: int | None) -> dict[str, float]:
        sums = self.check_finite(step, saved_step)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        count = max(self.steps, 1)
        kl_per_dim = (self.kl_per_dim / count).tolist() if self.steps else []
        values: dict[str, Any] = {name: total / count for name, total in zip(self.names, sums, strict=True)}
        values.update(images_per_s=self.images / elapsed, kl_per_dim=kl_per_dim)
        self._reset(step)
        return values
