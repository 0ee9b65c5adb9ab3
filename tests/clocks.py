"""A clock for the training loop that moves only when a test says so: exact images/s and training seconds."""

from __future__ import annotations

import time

import pytest

import betavae.training.setup


class StepClock:
    """``time.perf_counter`` for a test: 0 until a training step or :meth:`advance` moves it.

    Installed by :func:`steps_take`; every other reader of the clock (set-up, checkpoint
    writes, logging) sees no time pass, so timings recorded by training are exact.
    """

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def steps_take(monkeypatch: pytest.MonkeyPatch, seconds: float) -> StepClock:
    """Make every training step of :func:`betavae.training.loop.train` take ``seconds`` on the clock returned.

    The step is made by :func:`betavae.training.setup.assemble`, so that is where it is timed.
    """
    clock = StepClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    make_step = betavae.training.setup.make_step

    def make_timed_step(*args, **kwargs):
        step = make_step(*args, **kwargs)

        def timed_step(x):
            terms = step(x)
            clock.advance(seconds)
            return terms

        return timed_step

    monkeypatch.setattr(betavae.training.setup, "make_step", make_timed_step)
    return clock
