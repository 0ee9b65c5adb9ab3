"""Disentanglement measured while a run trains: the chosen metrics every ``eval_every`` steps.

``betavae train --eval mig,factor_vae --eval-every N`` scores the model after every N
steps and after the last one, with :func:`betavae.evaluation.score` on one fixed sample:
``eval_seed`` draws it, so every evaluation of a run, and every run of a study with the
same ``eval_seed``, measures on the same points, and their curves differ by the model
alone. The training loop makes every evaluation step a checkpoint step, so each entry
describes saved weights and a resumed run's history is that of a run that never stopped.

The history is the ``during_training`` section of ``metrics.json``: one entry per evaluated
step with its scores, the seconds of training that led to it (``train_seconds``, on the
training clock, :class:`~betavae.training.meters.TrainingClock`, which leaves evaluations
out), the seconds the evaluation took and the images trained on. TensorBoard draws each
score as ``eval/<metric>.<key>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from betavae import evaluation
from betavae.config import TrainConfig
from betavae.data.base import FactorDataset, ImageDataset
from betavae.metrics.representation import model_representation
from betavae.metrics.settings import headline_value, metric_settings
from betavae.runs import DURING_TRAINING_SECTION, RunDir
from betavae.training.log import TrainingLog


class EvaluationHistory:
    """The evaluations of one run: which steps are due, scoring one, and the history in its run folder.

    With no metrics chosen (``config.eval`` empty) no step is due and nothing is written.
    ``first_step`` is the step training starts from: on resume the checkpoint's, and the
    entries after it (evaluations of weights the resumed run trains again) are dropped.
    ``report`` receives one line per evaluation (the progress bar's ``tqdm.write``).
    """

    def __init__(self, run: RunDir, config: TrainConfig, dataset: ImageDataset, log: TrainingLog,
                 first_step: int, report: Callable[[str], None] | None = None) -> None:
        self.run, self.log, self.report = run, log, report
        self.names = list(config.eval)
        self.every = config.eval_every or config.checkpoint_every
        self.last_step = config.steps
        self.seed, self.sizes, self.batch_size = config.eval_seed, config.eval_sizes(), config.batch_size
        self.dataset = dataset
        if self.names:  # TrainConfig.validate refuses --eval on a dataset without factors
            assert isinstance(dataset, FactorDataset)
        self.entries: list[dict[str, Any]] = (
            self._entries_up_to(first_step) if self.names and first_step else []
        )

    def due(self, step: int) -> bool:
        """Whether the weights after ``step`` steps are evaluated: every ``eval_every`` steps, and
        the last."""
        return bool(self.names) and step > 0 and (step % self.every == 0 or step == self.last_step)

    def missing(self, step: int) -> bool:
        """Whether ``step`` is due but has no entry: its evaluation was cut short by a stop or a kill."""
        return self.due(step) and all(entry["step"] != step for entry in self.entries)

    def evaluate(self, step: int, model: torch.nn.Module, train_seconds: float) -> dict[str, Any]:
        """Score ``model``, the weights after ``step`` steps and ``train_seconds`` of training; record
        and report it."""
        began = time.perf_counter()
        results = evaluation.score(
            self.dataset, model_representation(model), self.names, seed=self.seed, sizes=self.sizes
        )
        entry = {
            "step": step,
            "train_seconds": train_seconds,
            "eval_seconds": time.perf_counter() - began,
            "images": step * self.batch_size,
            **results,
        }
        self.entries.append(entry)
        # metrics.json first: a kill before the curves costs a point of a curve, never a duplicate
        self._write()
        self.log.log_evaluation(step, results)
        if self.report is not None:
            self.report(progress_line(entry, self.names))
        return entry

    def _entries_up_to(self, step: int) -> list[dict[str, Any]]:
        """The recorded entries of steps up to ``step``; the section is rewritten if that drops any."""
        recorded = self.run.during_training().get("entries", [])
        kept = [entry for entry in recorded if entry["step"] <= step]
        if kept != recorded:
            self.entries = kept
            self._write()
        return kept

    def _write(self) -> None:
        section: dict[str, Any] = {
            "metrics": self.names,
            "seed": self.seed,
            "settings": {name: metric_settings(name, self.sizes) for name in self.names},
            "entries": self.entries,
        }
        if any(
            value is None
            for entry in self.entries
            for name in self.names
            for value in (entry.get(name) or {}).values()
        ):
            section["null"] = evaluation.NAN_REASON
        self.run.update_metrics(
            DURING_TRAINING_SECTION, section, step=self.entries[-1]["step"] if self.entries else 0
        )


def progress_line(entry: dict[str, Any], names: list[str]) -> str:
    """``step 2000: mig 0.123, factor_vae 0.710 (eval 3.2 s)``: each metric's headline value."""
    scores = ", ".join(headline(name, entry[name]) for name in names)
    return f"step {entry['step']}: {scores} (eval {entry['eval_seconds']:.1f} s)"


def headline(metric: str, values: dict[str, Any]) -> str:
    """``mig 0.123``: a metric's main score (:func:`betavae.metrics.settings.headline_value`),
    ``n/a`` where NaN."""
    value = headline_value(metric, values)
    return f"{metric} {'n/a' if value is None else f'{value:.3f}'}"
