"""The local backend: K long-lived worker processes on this machine, each running one run at a time.

Processes, not threads: a run sets torch's global seed, thread count and allocator settings,
which threads would share; one after another in a process they are set again by each run.
A worker serves run after run, so the datasets it loaded stay loaded (rendering the heart set
or parsing MNIST is paid once per worker, not once per run). Processes come from a fork
server that has imported betavae once, so starting one (the first time, or after one died)
costs a fork, not a fresh interpreter importing torch. Torch's threads are split so that
K × threads ≤ cores; on a CUDA machine the workers take the visible GPUs in turn.

Within :func:`keep_workers` (a study: many sweeps one after another) the sweeps of this process
share their workers: each is started once, and each set it loaded stays loaded, for the whole study
instead of once per sweep.

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
from collections.abc import Iterator
from contextlib import contextmanager
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
    ``benchmarks/sweep_throughput.py`` in docs/notes/sweep-throughput.md).
    """
    return gpus if gpus else max(1, cores)


def threads_per_worker(workers: int, cores: int) -> int:
    """Torch threads of each of ``workers`` processes so that together they use the cores and no more."""
    return max(1, cores // max(1, workers))


@dataclass
class _Worker:
    """One long-lived worker process: runs a task at a time, sent down ``tasks``, results up ``results``."""

    process: Any  # multiprocessing's Process of the context in use
    tasks: multiprocessing.connection.Connection
    results: multiprocessing.connection.Connection
    running: str | None = None  # the task it works on


class LocalBackend:
    """Runs tasks (see :func:`betavae.studies.worker.task_for`) in up to ``capacity`` processes at once."""

    def __init__(self, workers: int, threads: int, devices: list[str | None], kept: bool = False) -> None:
        self.capacity = workers
        self.threads = threads
        self.kept = kept  # shared by the sweeps inside keep_workers(): close() keeps its idle workers
        self.devices = devices  # per slot: the device its runs use (None: the config's)
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self._context = multiprocessing.get_context(method)
        if method == "forkserver":
            # What every run imports, once: torch._dynamo is imported when Adam is first built
            # (seconds a run otherwise), scikit-learn when a metric is first computed.
            self._context.set_forkserver_preload(
                ["torch._dynamo", "betavae.studies.worker", "betavae.training.loop", "betavae.evaluation",
                 "sklearn.linear_model", "sklearn.svm", "sklearn.ensemble"]
            )
        self._slots: list[_Worker | None] = [None] * workers

    @property
    def running(self) -> list[str]:
        return [worker.running for worker in self._slots if worker is not None and worker.running]

    def submit(self, task: dict[str, Any]) -> None:
        slot = next(k for k, worker in enumerate(self._slots) if worker is None or worker.running is None)
        worker = self._slots[slot] or self._start()
        self._slots[slot] = worker
        # The sweep's environment as it is now, not as it was when the fork server started (the
        # process's first sweep): a $BETAVAE_DATA_DIR set since is where this run finds its data.
        worker.tasks.send({**task, "threads": self.threads, "environment": dict(os.environ),
                           "device": self.devices[slot % len(self.devices)] or task.get("device")})
        worker.running = task["name"]

    def _start(self) -> _Worker:
        get_task, send_task = self._context.Pipe(duplex=False)
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(target=_worker_main, args=(get_task, send, os.getpid()),
                                        name="betavae-sweep-worker")
        process.start()
        get_task.close()  # the child's ends: the parent keeps only its own, so a dead child reads as EOF
        send.close()
        return _Worker(process, send_task, receive)

    def wait(self, timeout: float) -> list[dict[str, Any]]:
        """The outcomes of the runs that ended within ``timeout`` seconds (maybe none)."""
        by_handle = {}
        for slot, worker in enumerate(self._slots):
            if worker is not None and worker.running is not None:
                by_handle[worker.results] = slot
                by_handle[worker.process.sentinel] = slot
        ended = {by_handle[handle] for handle in multiprocessing.connection.wait(list(by_handle), timeout)}
        return [self._collect(slot) for slot in sorted(ended)]

    def _collect(self, slot: int) -> dict[str, Any]:
        worker = self._slots[slot]
        name, worker.running = worker.running, None
        outcome = None
        try:
            if worker.results.poll():
                outcome = worker.results.recv()
        except (EOFError, OSError):
            pass
        if outcome is not None:
            return outcome  # the worker waits for its next task
        worker.process.join()
        self._stop(slot)
        code = worker.process.exitcode
        if code == -signal.SIGKILL:
            how = "killed by SIGKILL: out of memory?"
        else:
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return {
            "name": name,
            "status": "lost",
            "result": None,
            "error": f"the worker process ended without a result ({how}); its stderr says why",
        }

    def _stop(self, slot: int) -> None:
        worker, self._slots[slot] = self._slots[slot], None
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        worker.tasks.close()
        worker.results.close()

    def interrupt(self) -> None:
        """Ask every running worker to stop at its next step and save its checkpoint."""
        for worker in self._slots:
            if worker is not None and worker.running is not None and worker.process.is_alive():
                os.kill(worker.process.pid, signal.SIGINT)

    def resize(self, workers: int, threads: int) -> None:
        """Serve a sweep of ``workers`` runs at once with ``threads`` each (sent with every task)."""
        self.capacity, self.threads = workers, threads
        self._slots.extend([None] * (workers - len(self._slots)))

    def close(self) -> None:
        """End the workers: an idle one when asked, one still running (an error in the sweep) at once.

        A kept backend (:func:`keep_workers`) keeps its idle workers for the next sweep;
        :meth:`shut_down` ends them.
        """
        if not self.kept:
            self.shut_down()
            return
        for slot, worker in enumerate(self._slots):
            if worker is not None and worker.running is not None:
                self._stop(slot)

    def shut_down(self) -> None:
        """End every worker: an idle one when asked, one still running at once."""
        for slot, worker in enumerate(self._slots):
            if worker is None:
                continue
            if worker.running is None:
                try:
                    worker.tasks.send(None)
                    worker.process.join(timeout=5)
                except OSError:
                    pass
            self._stop(slot)


_kept: dict[tuple[str | None, ...], LocalBackend] = {}  # by devices: the pools keep_workers() keeps
_keeping = 0  # how many keep_workers() contexts are open


@contextmanager
def keep_workers() -> Iterator[None]:
    """Within it, local sweeps of this process share their worker processes (one pool per set of devices).

    A study runs a dozen sweeps one after another (each dataset's grid, comparison, figure settings and
    successors); without it each sweep starts its workers and loads its datasets again. The workers end
    when the outermost context closes.
    """
    global _keeping
    _keeping += 1
    try:
        yield
    finally:
        _keeping -= 1
        if not _keeping:
            for backend in _kept.values():
                backend.shut_down()
            _kept.clear()


def local_backend(workers: int, threads: int, devices: list[str | None]) -> LocalBackend:
    """A backend of ``workers`` processes: the kept one inside :func:`keep_workers`, else a new one."""
    if not _keeping:
        return LocalBackend(workers, threads, devices)
    backend = _kept.get(tuple(devices))
    if backend is None:
        backend = _kept[tuple(devices)] = LocalBackend(workers, threads, devices, kept=True)
    backend.resize(workers, threads)
    return backend


def _worker_main(tasks: multiprocessing.connection.Connection, results: multiprocessing.connection.Connection,
                 sweep_pid: int) -> None:
    """Run the tasks the sweep sends, one after another, until it sends None or goes away.

    One process for many runs: the datasets it loaded stay loaded (:func:`betavae.data.keep_loaded`),
    so a run's fixed cost is its own work, not the set's rendering. Between runs Ctrl-C is the
    sweep's to handle: it is ignored here, and raised only while a run works.
    """
    from betavae import data

    # A process group of its own: the terminal's Ctrl-C goes to the sweep, which forwards exactly one
    # SIGINT (a second would make the training loop stop at once instead of saving a checkpoint).
    os.setpgid(0, 0)
    _die_with_sweep(sweep_pid)
    data.keep_loaded()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            task = tasks.recv()
        except EOFError:
            return
        if task is None:
            return
        os.environ.clear()
        os.environ.update(task.pop("environment"))
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            outcome = run_point(task)  # a Ctrl-C while it works makes it "interrupted"
        except KeyboardInterrupt:  # one that came as it returned
            outcome = {"name": task["name"], "status": "interrupted", "error": None, "result": None}
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        results.send(outcome)


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
