"""The local backend: K worker processes on this machine, one process per run.

A process per run, not a thread: a run sets torch's global seed, thread count and
allocator settings, which threads would share. Processes come from a fork server that
has imported betavae once, so starting one costs a fork, not a fresh interpreter
importing torch. Torch's threads are split so that K × threads ≤ cores; on a CUDA
machine the workers take the visible GPUs in turn.

A worker dies with the sweep: a thread in it watches the sweep's process, so a
``kill -9`` of the sweep leaves no orphan training into a folder the next sweep resumes. Ctrl-C reaches the
workers through the sweep (:meth:`LocalBackend.interrupt`; they have a process group of
their own, so the terminal's signal does not reach them twice): each saves a checkpoint
at its next step and reports itself interrupted.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from betavae.studies.worker import run_point


def available_cores() -> int:
    """The cores this process may run on (a container's or ``taskset``'s limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(gpus: int, cores: int) -> int:
    """One worker per GPU; on a CPU one per core, each with one thread.

    On a small CPU two one-thread processes train more images/s than one two-thread
    process (small convolutions do not split well across threads; figures from
    ``benchmarks/sweep_throughput.py`` in docs/sweep-throughput.md).
    """
    return gpus if gpus else max(1, cores)


def threads_per_worker(workers: int, cores: int) -> int:
    """Torch threads of each of ``workers`` processes so that together they use the cores and no more."""
    return max(1, cores // max(1, workers))


@dataclass
class _Worker:
    process: Any  # multiprocessing's Process of the context in use
    results: multiprocessing.connection.Connection
    slot: int


class LocalBackend:
    """Runs tasks (see :func:`betavae.studies.worker.task_for`) in up to ``capacity`` processes at once."""

    def __init__(self, workers: int, threads: int, devices: list[str | None]) -> None:
        self.capacity = workers
        self.threads = threads
        self.devices = devices  # per slot: the device its runs use (None: the config's)
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self._context = multiprocessing.get_context(method)
        if method == "forkserver":
            # What every run imports, once: torch._dynamo is imported when Adam is first built
            # (seconds a run otherwise).
            self._context.set_forkserver_preload(
                ["torch._dynamo", "betavae.studies.worker", "betavae.train", "betavae.evaluation"]
            )
        self._workers: dict[str, _Worker] = {}
        self._free_slots = list(range(workers))

    @property
    def running(self) -> list[str]:
        return list(self._workers)

    def submit(self, task: dict[str, Any]) -> None:
        slot = self._free_slots.pop(0)
        task = {
            **task,
            "threads": self.threads,
            "device": self.devices[slot % len(self.devices)] or task.get("device"),
        }
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main, args=(task, send, os.getpid(), dict(os.environ)),
            name=f"betavae-sweep:{task['name']}",
        )
        process.start()
        send.close()  # the child's end: the parent keeps only its own, so a dead child reads as EOF
        self._workers[task["name"]] = _Worker(process, receive, slot)

    def wait(self, timeout: float) -> list[dict[str, Any]]:
        """The outcomes of the runs that ended within ``timeout`` seconds (maybe none)."""
        by_handle = {}
        for name, worker in self._workers.items():
            by_handle[worker.results] = name
            by_handle[worker.process.sentinel] = name
        ended = {by_handle[handle] for handle in multiprocessing.connection.wait(list(by_handle), timeout)}
        return [self._collect(name) for name in ended]

    def _collect(self, name: str) -> dict[str, Any]:
        worker = self._workers.pop(name)
        outcome = None
        try:
            if worker.results.poll():
                outcome = worker.results.recv()
        except (EOFError, OSError):
            pass
        worker.results.close()
        worker.process.join()
        self._free_slots.append(worker.slot)
        self._free_slots.sort()
        if outcome is None:
            code = worker.process.exitcode
            if code == -signal.SIGKILL:
                how = "killed by SIGKILL: out of memory?"
            else:
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
            outcome = {
                "name": name,
                "status": "lost",
                "result": None,
                "error": f"the worker process ended without a result ({how}); its stderr says why",
            }
        return outcome

    def interrupt(self) -> None:
        """Ask every running worker to stop at its next step and save its checkpoint."""
        for worker in self._workers.values():
            if worker.process.pid is not None and worker.process.is_alive():
                os.kill(worker.process.pid, signal.SIGINT)

    def close(self) -> None:
        """Stop whatever still runs (only after an error in the sweep itself) and wait for it."""
        for worker in self._workers.values():
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join()
            worker.results.close()
        self._workers.clear()


def _worker_main(
    task: dict[str, Any], results: multiprocessing.connection.Connection, sweep_pid: int,
    environment: dict[str, str],
) -> None:
    # The sweep's environment as it is now, not as it was when the fork server started (the first
    # sweep of the process): a $BETAVAE_DATA_DIR set since then is where this run finds its data.
    os.environ.clear()
    os.environ.update(environment)
    # A process group of its own: the terminal's Ctrl-C goes to the sweep, which forwards exactly one
    # SIGINT (a second would make the training loop stop at once instead of saving a checkpoint).
    os.setpgid(0, 0)
    _die_with_sweep(sweep_pid)
    outcome = run_point(task)
    results.send(outcome)
    results.close()


def _die_with_sweep(sweep_pid: int, every: float = 0.5) -> None:
    """End this worker (SIGKILL: as if killed with the sweep) as soon as the sweep's process is gone.

    The worker's parent is the fork server, which outlives the sweep while workers run, so
    the kernel's parent-death signal cannot tell; a thread watching the sweep's pid can.
    """

    def watch() -> None:
        while True:
            time.sleep(every)
            try:
                os.kill(sweep_pid, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGKILL)
            except PermissionError:  # the pid now belongs to another user's process: ours is gone
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="betavae-sweep-watch", daemon=True).start()
