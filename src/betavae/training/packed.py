"""Packed training: runs of one architecture, dataset and batch size trained as one vectorised network.

A grid row over β, or the seeds of a setting, trains models that differ only in their
numbers. Stacking their parameters along a first dimension and taking one vectorised step
(``torch.func.vmap`` over ``grad_and_value``) launches the kernels of one step for all of
them: on a GPU, where a conv28 step at batch 64 leaves the device mostly idle waiting for
kernel launches, that is the point. On a CPU the step is bound by arithmetic, so packing
gains nothing there (figures and a profile: docs/notes/sweep-throughput.md, "Packed training").

Each packed run is the run :func:`betavae.training.loop.train` would make of its config, in the
same run folder format: its model initialised from its seed as ``train()`` initialises it,
its own batches (:class:`~betavae.training.batches.BatchStream` of its seed), its own
reparameterisation noise drawn from its own generator in the same order (drawn before the
vectorised forward, which takes it as an input), and its own Adam state (Adam is
elementwise, so one Adam over the stacked parameters is K Adams; each checkpoint holds the
run's own slice in ``torch.optim.Adam.state_dict()`` form). So a packed run ends with the
weights of its unpacked run up to float rounding (the vectorised convolutions round
differently), and ``betavae train --out RUN --resume`` continues it.

Only the ``beta`` objective in fp32, stepped eagerly (no CUDA graph), is packed: the
others own networks and optimisers of their own, and packing them is not worth its code
until a GPU measures the gain.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch.func import functional_call, grad_and_value, vmap
from tqdm.auto import tqdm

from betavae import data, models
from betavae.config import TrainConfig
from betavae.errors import BetaVAEError
from betavae.models.vae import VAEOutput
from betavae.objectives import LossTerms, Objective
from betavae.runs import RunDir
from betavae.training import performance
from betavae.training.batches import BatchStream
from betavae.training.checkpoints import (
    checkpoint_to_resume,
    restore_checkpoint,
    save_checkpoint,
    start_fresh,
)
from betavae.training.faults import TrainingDiverged, TrainingInterrupted
from betavae.training.interrupt import StopRequest
from betavae.training.log import TrainingLog
from betavae.training.loop import TrainResult, no_bar
from betavae.training.meters import LossWindow, TrainingClock, check_weights_finite
from betavae.training.results import write_results
from betavae.training.setup import prepare, with_run_folder
from betavae.training.tracking import EvaluationHistory

# What runs packed together may differ in: everything else is one key (pack_key).
PER_RUN_FIELDS = ("seed", "beta", "beta_norm", "out")
PACKED_OBJECTIVES = ("beta",)


def pack_key(config: TrainConfig) -> tuple[tuple[str, str], ...]:
    """What runs must share to be trained packed: every setting but seed, β (either form) and folder.

    A tuple of ``(field, value as JSON)`` pairs, hashable, so runs group by it.
    """
    values = config.to_dict()
    return tuple((key, json.dumps(values[key], sort_keys=True)) for key in sorted(values)
                 if key not in PER_RUN_FIELDS)


def train_packed(configs: Sequence[TrainConfig], resume: bool = False,
                 progress: bool | None = None) -> list[TrainResult]:
    """Train the runs of ``configs`` together as one vectorised network; one :class:`TrainResult` each.

    Every run folder is written and locked as :func:`betavae.training.loop.train` does it, with the
    same checkpoint steps, log entries, held-out loss and figure. ``resume`` continues runs
    whose checkpoints hold the same step. A run whose loss or weights become non-finite stops
    being written (its last checkpoint is kept) while the others train on; its
    :class:`~betavae.training.faults.TrainingDiverged` is raised once the others are finished.
    ``train_seconds`` in each checkpoint is the packed training's wall-clock time: every run
    of the pack was in training all along.
    """
    began = time.perf_counter()
    configs = list(configs)
    check_packable(configs)
    for config in configs:
        config.validate()
    placed = [with_run_folder(config, resume) for config in configs]
    configs = [config for config, _ in placed]
    dataset = next((loaded for _, loaded in placed if loaded is not None), None) or configs[0].load_dataset()
    runs = [RunDir(config.out) for config in configs]
    folders = [run.path.resolve() for run in runs]
    if len(set(folders)) < len(folders):
        raise BetaVAEError("two of the runs to pack share a run folder (out); give each its own")
    with ExitStack() as held:
        for run in runs:
            held.enter_context(run.lock("betavae train"))
            run.remove_stale_temporaries()
            run.read_metrics()  # an unreadable metrics.json fails now, not after the training
        checkpoints = [checkpoint_to_resume(run, config, None) if resume else start_fresh(run)
                       for run, config in zip(runs, configs, strict=True)]
        return _train(configs, runs, checkpoints, dataset, began, progress)


def check_packable(configs: Sequence[TrainConfig]) -> None:
    """Refuse, in one line, configs that cannot train as one pack."""
    if not configs:
        raise BetaVAEError("packed training needs at least one run config")
    first, key = configs[0], dict(pack_key(configs[0]))
    for config in configs[1:]:
        differing = [name for name, value in pack_key(config) if key[name] != value]
        if differing:
            name = differing[0]
            raise BetaVAEError(
                f"runs packed together must share every setting but {', '.join(PER_RUN_FIELDS)}; "
                f"{config.out or 'a run'} has {name} {getattr(config, name)!r} where "
                f"{first.out or 'the first'} has {getattr(first, name)!r}; pack them separately")
    if first.objective not in PACKED_OBJECTIVES:
        raise BetaVAEError(f"packed training trains the beta objective only, not {first.objective}; "
                           f"train these runs one by one (betavae train)")
    if first.precision != "fp32":
        raise BetaVAEError(f"packed training runs in fp32 only, not {first.precision}; "
                           f"give precision fp32 or train these runs one by one")


@dataclasses.dataclass
class _Member:
    """One run of the pack: its folder, its own objects (kept in step with the pack at checkpoints),
    its log and its state."""

    config: TrainConfig
    run: RunDir
    model: models.BetaVAE
    optimizer: torch.optim.Optimizer
    objective: Objective
    noise: torch.Generator
    window: LossWindow
    clock: TrainingClock
    derived: Any = None
    saved_step: int | None = None
    log: TrainingLog | None = None
    history: EvaluationHistory | None = None
    failure: BetaVAEError | None = None


def _train(configs: list[TrainConfig], runs: list[RunDir], checkpoints: list[dict[str, Any] | None],
           dataset: data.ImageDataset, began: float, progress: bool | None) -> list[TrainResult]:
    """The packed loop: :func:`betavae.training.loop.train`'s, with K models in each step."""
    members, start = _members(configs, runs, checkpoints, dataset, began)
    device = members[0].clock.device
    pack = Pack([m.model for m in members], [m.optimizer for m in members], members[0].objective,
                [m.objective.beta for m in members], members[0].derived.lr, device)
    for member in members:
        member.derived = dataclasses.replace(
            member.derived, optimizer=performance.optimizer_name(pack.optimizer),
            step=f"packed ({len(members)} models, vmap)")
        member.run.write_config(member.config, member.derived)
    config = configs[0]
    step_count = torch.tensor(start, dtype=torch.int64, device=device)
    bar = tqdm(total=config.steps, initial=start, unit="step", desc=f"{len(members)} packed runs",
               disable=no_bar(progress))
    report = None if bar.disable else (lambda line: tqdm.write(line, file=sys.stderr))
    streams = [BatchStream(dataset.train, config.batch_size, m.config.seed, start, device) for m in members]
    with ExitStack() as opened, StopRequest() as stop:
        for member, stream in zip(members, streams, strict=True):
            opened.enter_context(stream)
            log = TrainingLog(member.run.log_path, member.run.tensorboard_dir, start)
            member.log = opened.enter_context(log)
            member.history = EvaluationHistory(member.run, member.config, dataset, member.log, start, report)
        for index, member in enumerate(members):
            if member.history.missing(start):  # a stop or a kill cut the evaluation of the checkpoint short
                with _paused(members):
                    member.history.evaluate(start, _evaluated(pack, index, member), member.clock.seconds())
        for step in range(start, config.steps):
            x = torch.stack([stream.next() for stream in streams])
            eps = torch.stack([torch.randn((config.batch_size, config.latent_dim), generator=m.noise,
                                           device=device) for m in members])
            terms = pack.step(x, eps, step_count)
            for index, member in enumerate(members):
                if member.failure is None:
                    member.window.add(terms[index], config.batch_size)

            done = step + 1
            at_end = done == config.steps
            if done % config.log_every == 0 or at_end:
                for member in _training(members):
                    try:
                        member.log.log(done, member.window.flush(done, member.saved_step))
                    except TrainingDiverged as error:
                        member.failure = error
            bar.update(1)
            due = [m for m in _training(members) if m.history.due(done)]
            if done % config.checkpoint_every == 0 or at_end or stop.requested or due:
                seconds = [member.clock.seconds() for member in members]
                for index, member in enumerate(members):
                    if member.failure is None:
                        _checkpoint(pack, index, member, done, seconds[index])
                for index, member in enumerate(members):
                    if not stop.requested and member.failure is None and member.history.due(done):
                        with _paused(members):
                            member.history.evaluate(done, _evaluated(pack, index, member), seconds[index])
            if stop.requested:
                bar.close()
                raise TrainingInterrupted(
                    f"interrupted at step {done}/{config.steps}; checkpoints saved in {len(members)} run "
                    f"folders ({members[0].run.path} …); continue each with: "
                    f"betavae train --out RUN --resume")
    bar.close()
    results = []
    for member in _training(members):
        member.model.eval()
        test = write_results(member.run, member.config, member.derived, dataset, member.model,
                             member.objective)
        results.append(TrainResult(member.run, member.config.steps, test, member.history.entries))
    failed = [m for m in members if m.failure is not None]
    if failed:
        raise TrainingDiverged(f"{failed[0].run.path}: {failed[0].failure}" +
                               (f" (and {len(failed) - 1} more packed runs)" if len(failed) > 1 else "") +
                               f"; the other {len(results)} packed runs finished")
    return results


def _members(configs: list[TrainConfig], runs: list[RunDir], checkpoints: list[dict[str, Any] | None],
             dataset: data.ImageDataset, began: float) -> tuple[list[_Member], int]:
    """Each run's objects as :func:`betavae.training.loop.train` makes them (restored from its checkpoint),
    and the step they start from."""
    members, starts = [], []
    for config, run, checkpoint in zip(configs, runs, checkpoints, strict=True):
        setup = prepare(config, dataset)  # the model initialised from this run's seed
        optimizer = performance.make_optimizer(setup.model.parameters(), setup.derived.lr, setup.device)
        noise = torch.Generator(device=setup.device).manual_seed(config.seed)
        start, earlier_seconds = 0, 0.0
        if checkpoint is not None:
            start = restore_checkpoint(checkpoint, setup.model, optimizer, setup.objective, {}, noise)
            earlier_seconds = float(checkpoint.get("train_seconds", 0.0))
        window = LossWindow(setup.device, first_step=start)
        if checkpoint is not None and "window" in checkpoint:
            window.restore(checkpoint["window"])
        clock = TrainingClock(setup.device, began, earlier_seconds)
        members.append(_Member(config, run, setup.model, optimizer, setup.objective, noise, window, clock,
                               setup.derived, saved_step=start if checkpoint is not None else None))
        starts.append(start)
    if len(set(starts)) > 1:
        listed = ", ".join(f"{run.path.name}: {step}" for run, step in zip(runs, starts, strict=True))
        raise BetaVAEError(f"runs resumed packed must stand at one step, these hold {listed}; "
                           f"resume them one by one (betavae train --out RUN --resume)")
    return members, starts[0]


def _training(members: list[_Member]) -> Iterator[_Member]:
    return (member for member in members if member.failure is None)


def _checkpoint(pack: Pack, index: int, member: _Member, done: int, seconds: float) -> None:
    """Write run ``index``'s checkpoint of step ``done`` as train() does, or mark it diverged."""
    try:
        member.window.check_finite(done, member.saved_step)
        pack.copy_into(index, member.model, member.optimizer)
        check_weights_finite(member.model, member.saved_step, done)
    except TrainingDiverged as error:
        member.failure = error
        return
    trained = (member.model, member.optimizer, member.objective, {})
    save_checkpoint(member.run, member.config, member.derived, done, trained, member.noise, member.window,
                    seconds, member.saved_step)
    member.saved_step = done
    member.run.archive_results_before(done)


def _evaluated(pack: Pack, index: int, member: _Member) -> models.BetaVAE:
    """Run ``index``'s model with the pack's weights, in eval mode, for an evaluation."""
    pack.copy_into(index, member.model, member.optimizer)
    return member.model.eval()


@contextmanager
def _paused(members: list[_Member]) -> Iterator[None]:
    """An evaluation of one run: every run's clock and images/s leave its time out, as train()'s do."""
    with ExitStack() as stack:
        for member in members:
            stack.enter_context(member.clock.paused())
            stack.enter_context(member.window.paused())
        yield


class Pack:
    """K models' parameters stacked along a first dimension, one Adam over them, and the vectorised step.

    ``template`` (the first model) gives the modules that :func:`torch.func.functional_call`
    runs with each model's slice of the stacked parameters; ``objective`` gives the terms
    (reconstruction, KL, warm-up), and ``betas`` each model's weight on the KL.
    """

    def __init__(self, members: list[models.BetaVAE], optimizers: list[torch.optim.Optimizer],
                 objective: Objective, betas: list[float], lr: float, device: torch.device) -> None:
        self.template, self.objective = members[0], objective
        self.names = [name for name, _ in self.template.named_parameters()]
        own = [dict(model.named_parameters()) for model in members]
        self.params = {name: torch.stack([each[name].detach() for each in own]).contiguous().requires_grad_()
                       for name in self.names}
        self.betas = torch.tensor(betas, dtype=torch.float32, device=device)
        self.optimizer = performance.make_optimizer(list(self.params.values()), lr, device)
        for name, stacked in self.params.items():  # a resumed run's Adam state, stacked
            states = [optimizer.state.get(each[name])
                      for optimizer, each in zip(optimizers, own, strict=True)]
            if all(states):  # contiguous as the stacked parameter: the fused step assumes one layout
                self.optimizer.state[stacked] = {
                    key: value.clone() if key == "step"
                    else torch.stack([each[key] for each in states]).contiguous()
                    for key, value in states[0].items()}
        self._grad = vmap(grad_and_value(self._loss, has_aux=True), in_dims=(0, 0, 0, 0, None))

    def _loss(self, params: dict[str, torch.Tensor], x: torch.Tensor, eps: torch.Tensor, beta: torch.Tensor,
              step_count: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One model's β-VAE loss (:class:`~betavae.objectives.beta.BetaVAELoss`) with its noise ``eps``."""
        encoder = {name.removeprefix("encoder."): value for name, value in params.items()
                   if name.startswith("encoder.")}
        decoder = {name.removeprefix("decoder."): value for name, value in params.items()
                   if name.startswith("decoder.")}
        mu, logvar = functional_call(self.template.encoder, encoder, (x,)).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * eps  # BetaVAE.reparameterize, the noise given
        output = VAEOutput(functional_call(self.template.decoder, decoder, (z,)), mu, logvar, z)
        recon = self.objective.reconstruction(output, x)
        kl, kl_dims = self.objective.kl(output)
        loss = recon + self.objective.warmup(step_count) * beta * kl
        return loss, (recon, kl, kl_dims)

    def step(self, x: torch.Tensor, eps: torch.Tensor, step_count: torch.Tensor) -> list[LossTerms]:
        """One optimiser step of every model on its batch ``x[k]`` and noise ``eps[k]``; each one's terms."""
        grads, (loss, (recon, kl, kl_dims)) = self._grad(self.params, x, eps, self.betas, step_count)
        for name, stacked in self.params.items():
            stacked.grad = grads[name]
        self.optimizer.step()
        step_count.add_(1)
        return [LossTerms(loss[k], {"recon": recon[k], "kl": kl[k]}, kl_dims[k]) for k in range(len(loss))]

    @torch.no_grad()
    def copy_into(self, index: int, model: models.BetaVAE, optimizer: torch.optim.Optimizer) -> None:
        """Model ``index``'s weights and Adam state into its own model and optimiser (to save or score)."""
        for name, param in model.named_parameters():
            stacked = self.params[name]
            param.copy_(stacked[index])
            state = self.optimizer.state.get(stacked)
            if state:
                optimizer.state[param] = {
                    key: value.clone() if key == "step" else torch.empty_like(param).copy_(value[index])
                    for key, value in state.items()}
