"""The training loop, :func:`train`: the part inside ``for step in …`` is the whole story on one screen.

Batch, step (forward, loss, backward, Adam, as :func:`~betavae.training.setup.assemble` built
it), log, checkpoint. Everything that is not the loop lives in the other modules of
:mod:`betavae.training`.

Determinism: the batch at step ``s`` depends only on ``(seed, s)``
(:class:`~betavae.training.batches.BatchOrder`), and the noise generator's state travels in
the checkpoint, so a run interrupted and resumed ends with the same weights as one that never
stopped (on the same machine; on a GPU, only with ``--deterministic``, see
:func:`betavae.training.performance.use_deterministic_kernels`).

Time: a training clock (:class:`~betavae.training.meters.TrainingClock`) counts the seconds
of training since the run began, carried across resumes in the checkpoint; evaluations during
training (:mod:`betavae.training.tracking`) and the ``on_checkpoint`` hook count neither on it
nor in images/s.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from betavae import models
from betavae.config import TrainConfig
from betavae.runs import RunDir
from betavae.training.batches import BatchStream
from betavae.training.checkpoints import checkpoint_to_resume, save_checkpoint, start_fresh
from betavae.training.faults import TrainingInterrupted
from betavae.training.interrupt import StopRequest
from betavae.training.log import TrainingLog
from betavae.training.meters import LossWindow, TrainingClock, check_weights_finite
from betavae.training.results import write_results
from betavae.training.setup import assemble, with_run_folder
from betavae.training.tracking import EvaluationHistory


@dataclass
class TrainResult:
    """What :func:`train` returns: the run folder, its steps and its held-out loss (``test``)."""

    run: RunDir
    steps: int
    test: dict[str, Any]
    # The evaluations during training: the entries of metrics.json's during_training section.
    evaluations: list[dict[str, Any]] = field(default_factory=list)


def train(
    config: TrainConfig,
    resume: bool = False,
    progress: bool | None = None,
    on_checkpoint: Callable[[int, models.BetaVAE], None] | None = None,
    names: Mapping[str, str] | None = None,
) -> TrainResult:
    """Train a β-VAE as ``config`` says, writing everything into its run folder.

    The run folder is locked for the whole call (:meth:`RunDir.lock`), so a second
    process training, evaluating or drawing into it gets a one-line error instead of
    interleaving its writes. With ``config.eval``, the metrics are measured every
    ``eval_every`` steps and at the end, right after that step's checkpoint
    (:mod:`betavae.training.tracking`); a resumed run first evaluates its checkpoint if a stop or a
    kill cut that evaluation short. ``on_checkpoint(step, model)`` is called after each
    checkpoint is written (and evaluated), with the model in eval mode (it is put back into
    training mode after): the hook for reporting progress to a scheduler. Neither counts as
    training time. ``names`` maps config fields to what the user typed for them
    (``--latent``), for messages.
    """
    began = time.perf_counter()  # the training clock counts from here: every run pays its set-up
    config.validate(names)
    config, dataset = with_run_folder(config, resume, names)
    run = RunDir(config.out)
    with run.lock("betavae train"):
        run.remove_stale_temporaries()
        run.read_metrics()  # an unreadable metrics.json fails now, not after the training
        checkpoint = checkpoint_to_resume(run, config, names) if resume else start_fresh(run)
        parts = assemble(config, dataset, names)
        model, objective, device, derived = parts.model, parts.objective, parts.device, parts.derived
        start = parts.restore(checkpoint) if checkpoint is not None else 0
        saved_step = start if checkpoint is not None else None  # the step of the checkpoint on disk
        # Checkpoints from before the training clock was saved count from 0.
        earlier_seconds = float(checkpoint.get("train_seconds", 0.0)) if checkpoint is not None else 0.0
        clock = TrainingClock(device, began, earlier_seconds)
        window = LossWindow(device, first_step=start)
        # Older checkpoints lack the window: their first log entry after a resume is shorter.
        if checkpoint is not None and "window" in checkpoint:
            window.restore(checkpoint["window"])
        run.write_config(config, derived)

        bar = tqdm(total=config.steps, initial=start, unit="step", desc=run.path.name,
                   disable=no_bar(progress))
        batches = BatchStream(parts.dataset.train, config.batch_size, config.seed, start, device)
        report = None if bar.disable else (lambda line: tqdm.write(line, file=sys.stderr))  # above the bar
        with StopRequest() as stop, TrainingLog(run.log_path, run.tensorboard_dir, start) as log, batches:
            history = EvaluationHistory(run, config, parts.dataset, log, start, report)
            if history.missing(start):  # a stop or a kill cut the evaluation of the checkpoint short
                with _not_training(model, window, clock):
                    history.evaluate(start, model, earlier_seconds)
            model.train()
            for step in range(start, config.steps):
                x = batches.next()
                terms = parts.take_step(x)
                window.add(terms, x.shape[0])

                done = step + 1
                at_end = done == config.steps
                if done % config.log_every == 0 or at_end:
                    values = window.flush(done, saved_step)
                    log.log(done, values)
                    bar.set_postfix(loss=f"{values['loss']:.2f}", kl=f"{values['kl']:.2f}",
                                    img_s=f"{values['images_per_s']:.0f}")
                bar.update(1)
                if done % config.checkpoint_every == 0 or at_end or stop.requested or history.due(done):
                    window.check_finite(done, saved_step)
                    check_weights_finite(model, saved_step, done)
                    trained_seconds = clock.seconds()
                    trained = (model, parts.optimizer, objective, parts.objective_optimizers)
                    save_checkpoint(run, config, derived, done, trained, parts.noise, window, trained_seconds,
                                    saved_step)
                    saved_step = done
                    run.archive_results_before(done)
                    if not stop.requested:  # a stop leaves this step's evaluation to the resumed run
                        with _not_training(model, window, clock):
                            if history.due(done):
                                history.evaluate(done, model, trained_seconds)
                            if on_checkpoint is not None:
                                on_checkpoint(done, model)
                if stop.requested:
                    bar.close()
                    raise TrainingInterrupted(
                        f"interrupted at step {done}/{config.steps}; checkpoint saved in {run.path}; "
                        f"continue with: betavae train --out {run.path} --resume")
        bar.close()
        test = write_results(run, config, derived, parts.dataset, model, objective)
    return TrainResult(run, config.steps, test, history.entries)


@contextmanager
def _not_training(model: models.BetaVAE, window: LossWindow, clock: TrainingClock) -> Iterator[None]:
    """Evaluations and hooks: the model in eval mode, their time counted neither as training time
    nor in images/s."""
    model.eval()
    try:
        with clock.paused(), window.paused():
            yield
    finally:
        model.train()


def no_bar(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None hides the bar when stderr is not a terminal."""
    return None if progress is None else not progress
