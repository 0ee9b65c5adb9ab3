"""Where a sweep's runs happen: the interface every backend implements, and the options that pick one.

A backend takes plain-data tasks (:func:`betavae.studies.worker.task_for`) and returns
outcome dicts (:func:`betavae.studies.worker.run_point`); the sweep's driver
(:mod:`betavae.studies.sweep`) does all the bookkeeping, so a backend only starts, waits
and stops. Implementations: :mod:`~betavae.studies.local` and :mod:`~betavae.studies.ray_backend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from betavae.errors import BetaVAEError

BACKENDS = ("local", "ray")


class Backend(Protocol):
    """Where runs happen: ``capacity`` at once, each a task dict in, an outcome dict out."""

    capacity: int

    @property
    def running(self) -> list[str]: ...

    def submit(self, task: dict[str, Any]) -> None: ...

    def wait(self, timeout: float) -> list[dict[str, Any]]: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class BackendOptions:
    """How to run the runs: ``backend`` local or ray, ``workers`` at once (None: chosen from the machine),
    ``pack`` runs to a task."""

    backend: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    cpus_per_run: float | None = None  # ray: CPUs each run reserves (None: 1)
    gpus_per_run: float | None = None
    # Runs trained together in one task as one vectorised network (betavae.training.packed): up to this many
    # queued runs that differ only in seed and β. 1: each run alone. Faster only where a step leaves
    # the device idle (a GPU); on a CPU it measured slower (docs/notes/sweep-throughput.md).
    pack: int = 1

    def check(self) -> BackendOptions:
        """These options, or a one-line error: called before a command prints or creates anything."""
        if self.backend not in BACKENDS:
            raise BetaVAEError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 1):
            raise BetaVAEError(f"--workers must be a positive integer, got {self.workers}")
        if isinstance(self.pack, bool) or not isinstance(self.pack, int) or self.pack < 1:
            raise BetaVAEError(f"--pack must be a positive integer (1: no packing), got {self.pack}")
        for flag, value in (("--cpus-per-run", self.cpus_per_run), ("--gpus-per-run", self.gpus_per_run)):
            if value is not None and not (value >= 0 and value != float("inf")):
                raise BetaVAEError(f"{flag} must be a finite number 0 or above, got {value}")
        return self
