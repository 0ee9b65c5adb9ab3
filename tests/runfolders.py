"""Small runs trained for tests, and what tests compare in run and sweep folders."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import torch

from betavae.config import TrainConfig
from betavae.runs import RunDir
from betavae.studies.state import SweepState
from betavae.training.loop import train

# A tiny Shapes run (latent size 4, 60 steps); lr 3e-3 makes all four dimensions active (KL 0.6–2.4),
# so figures of active dimensions have rows to show.
ACTIVE_SHAPES = TrainConfig(dataset="shapes", arch="conv28", latent_dim=4, beta=1.0, steps=60, batch_size=32,
                            test_size=100, device="cpu", lr=3e-3)


def copy_run(source: Path, target: Path) -> Path:
    """A copy of run folder ``source`` at ``target``, without its lock (whose text names its holder)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock"))
    return target


class TrainedRuns:
    """Runs trained once per test process, keyed by their config, handed out as copies.

    The same small run serves the demo's export, its site, the factor figures, the traversals and
    the ownership checks: trained once, each test module gets its own copy to write into. Held by
    the session fixture ``trained_runs`` (tests/conftest.py).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def copy(self, config: TrainConfig, target: Path) -> Path:
        """A copy at ``target`` of a run of ``config`` (its ``out`` ignored), trained on first use."""
        settings = dataclasses.asdict(dataclasses.replace(config, out=None))
        key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
        trained = self.folder / key
        if not (trained / "metrics.json").is_file():
            train(dataclasses.replace(config, out=str(trained)), progress=False)
        return copy_run(trained, target)


def untrained_run(config: TrainConfig, out: Path) -> Path:
    """A run folder at ``out`` as ``train(config)`` leaves it after its set-up, before any step: its
    ``config.toml`` with the derived values and a step-0 checkpoint of the seed's initial weights,
    optimiser and noise. For tests that need a folder, not a trained model: milliseconds once the
    process has the dataset (the set-up is train()'s own, ``training.setup.assemble``)."""
    from betavae.training.checkpoints import save_checkpoint
    from betavae.training.meters import LossWindow
    from betavae.training.setup import assemble

    config = dataclasses.replace(config, out=str(out))
    made = assemble(config)
    run = RunDir(out)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(config, made.derived)
    save_checkpoint(run, config, made.derived, 0, (made.model, made.optimizer, made.objective,
                                                   made.objective_optimizers),
                    made.noise, LossWindow(made.device, 0), train_seconds=0.0, saved_step=None)
    return out


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Two state dicts hold the same tensors, bit for bit."""
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def state_rows(sweep_dir: Path) -> dict[str, dict]:
    """The rows of a sweep's state, by run name."""
    with SweepState(sweep_dir) as state:
        return {row["name"]: row for row in state.rows()}
