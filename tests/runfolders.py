"""Small runs trained for tests, and what tests compare in run and sweep folders."""

from __future__ import annotations

from pathlib import Path

import torch

from betavae.config import TrainConfig
from betavae.studies.state import SweepState
from betavae.train import train


def train_active_shapes_run(out: Path) -> Path:
    """A tiny Shapes run (latent size 4, 60 steps) into ``out``; lr 3e-3 makes all four dimensions
    active (KL 0.6–2.4), so figures of active dimensions have rows to show."""
    train(TrainConfig(dataset="shapes", arch="conv28", latent_dim=4, beta=1.0, steps=60, batch_size=32,
                      test_size=100, out=str(out), device="cpu", lr=3e-3), progress=False)
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
