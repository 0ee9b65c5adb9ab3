"""The training step, run eagerly or, on CUDA, replayed from a captured CUDA graph.

On a GPU the models here are small enough that a step is bound by launching its ~100
kernels from Python, not by running them: replaying the same step as one CUDA graph
trains several times the images/s of launching each kernel. A replay is also one call
that holds the interpreter lock only briefly, so the reader thread rendering dSprites
beside it no longer slows the step: rendered and read ahead, training runs at about the
in-memory rate replayed, and measurably below it launched (figures in
docs/notes/performance.md, "Rendering and encoding").

A graph replays fixed memory: the batch is copied into a static input, and the loss
terms come back in static outputs that the next replay overwrites (the training loop only
adds them to device-side sums, in stream order, so it never sees a stale value). The
noise generator is registered with the graph, so each replay draws fresh noise and the
generator's state, saved in checkpoints, advances as in eager steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from betavae import models
from betavae.errors import BetaVAEError
from betavae.objectives import LossTerms, Objective
from betavae.training import performance

Step = Callable[[torch.Tensor], LossTerms]
# Eager steps before the capture: lazy initialisation (cuBLAS and cuDNN handles, Adam's
# state on a fresh run) must happen outside the graph, as PyTorch's CUDA-graph notes ask.
WARMUP_STEPS = 2


def training_step(model: models.BetaVAE, objective: Objective, optimizer: torch.optim.Optimizer,
                  x: torch.Tensor, noise: torch.Generator | None, precision: str = "fp32",
                  step_count: torch.Tensor | None = None,
                  objective_optimizers: Mapping[str, torch.optim.Optimizer] | None = None) -> LossTerms:
    """One optimiser step on the batch ``x``: forward (in ``precision``), loss in fp32, backward, Adam.

    Then the objective's own networks train on the same step (:meth:`Objective.update`,
    with ``objective_optimizers``). ``step_count``, the steps taken so far as a tensor on
    the device, is what the objective's schedules read; it is advanced in place, so a
    replayed graph advances it too.
    """
    with performance.autocast(x.device, precision):
        output = model(x, generator=noise)
    terms = objective(output, x, step_count)
    optimizer.zero_grad(set_to_none=True)
    terms.loss.backward()
    optimizer.step()
    if objective_optimizers:
        extra = objective.update(output, x, objective_optimizers, noise)
        terms = terms._replace(terms={**terms.terms, **extra})
    if step_count is not None:
        step_count.add_(1)
    return terms


def uses_cuda_graph(device: torch.device, cuda_graph: bool) -> bool:
    """Whether steps on ``device`` are replayed from a graph: only on CUDA, and only when asked."""
    return cuda_graph and device.type == "cuda"


def make_step(model: models.BetaVAE, objective: Objective, optimizer: torch.optim.Optimizer,
              noise: torch.Generator | None, precision: str, cuda_graph: bool,
              step_count: torch.Tensor | None = None,
              objective_optimizers: Mapping[str, torch.optim.Optimizer] | None = None) -> Step:
    """``step(x) -> LossTerms``: a graph replay where :func:`uses_cuda_graph`, else an eager step.

    A graph needs an optimizer made with ``capturable=True``
    (:func:`betavae.training.performance.make_optimizer`).
    """
    device = next(model.parameters()).device
    if uses_cuda_graph(device, cuda_graph):
        return GraphedStep(model, objective, optimizer, noise, precision, step_count, objective_optimizers)
    return lambda x: training_step(model, objective, optimizer, x, noise, precision, step_count,
                                   objective_optimizers)


class GraphedStep:
    """Training steps replayed from one CUDA graph, captured at the call after
    :data:`WARMUP_STEPS` eager ones.

    The warm-up steps are real steps (they train on their batches), run on a side stream
    as the capture will be. Every batch after them must have the same shape.
    """

    def __init__(
        self,
        model: models.BetaVAE,
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        noise: torch.Generator | None,
        precision: str,
        step_count: torch.Tensor | None = None,
        objective_optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    ) -> None:
        for each in (optimizer, *(objective_optimizers or {}).values()):
            if not all(group.get("capturable") for group in each.param_groups):
                raise ValueError("a CUDA-graph step needs optimizers made with capturable=True")
        self.model, self.objective, self.optimizer = model, objective, optimizer
        self.noise, self.precision, self.step_count = noise, precision, step_count
        self.objective_optimizers = objective_optimizers
        self.eager_steps_left = WARMUP_STEPS
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_x: torch.Tensor | None = None
        self.static_terms: LossTerms | None = None
        self.side_stream = torch.cuda.Stream()

    def __call__(self, x: torch.Tensor) -> LossTerms:
        if self.graph is None:
            if self.eager_steps_left > 0:
                self.eager_steps_left -= 1
                terms = self._on_side_stream(
                    lambda: training_step(self.model, self.objective, self.optimizer, x, self.noise,
                                          self.precision, self.step_count, self.objective_optimizers)
                )
                # Detached, so that no autograd node of this side-stream step is alive at the
                # capture, which would otherwise reuse its gradient accumulators on another stream.
                return terms.detach()
            self._capture(x)  # records this step without running it; the replay below runs it
        elif x.shape != self.static_x.shape:
            raise ValueError(
                f"a CUDA-graph step was captured for batches of shape {tuple(self.static_x.shape)}, "
                f"got {tuple(x.shape)}"
            )
        self.static_x.copy_(x)
        self.graph.replay()
        return self.static_terms

    def _on_side_stream(self, work: Callable[[], LossTerms]) -> LossTerms:
        side = self.side_stream
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            result = work()
        torch.cuda.current_stream().wait_stream(side)
        return result

    def _capture(self, x: torch.Tensor) -> None:
        self.static_x = torch.empty_like(x)
        graph = torch.cuda.CUDAGraph()
        if self.noise is not None:
            graph.register_generator_state(self.noise)
        try:
            # thread_local: the reader thread may allocate pinned memory while this thread captures.
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.static_terms = training_step(self.model, self.objective, self.optimizer, self.static_x,
                                                  self.noise, self.precision, self.step_count,
                                                  self.objective_optimizers)
        except RuntimeError as error:
            reason = str(error).splitlines()[0]
            raise BetaVAEError(
                f"capturing the training step in a CUDA graph failed ({reason}); "
                "train with --no-cuda-graph to launch each kernel instead"
            ) from error
        self.graph = graph
