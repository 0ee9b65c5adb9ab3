"""The Ray backend: each run a Ray task, on a cluster (``--ray-address``) or on a Ray instance started here.

This is how a sweep goes past one machine. The driver (:mod:`betavae.studies.sweep`)
stays where the command was typed and keeps the SQLite state; each task calls
:func:`betavae.studies.worker.run_point` and returns its small outcome dict, which Ray
carries back to the driver. Each task reserves ``--cpus-per-run`` CPUs (default 1; its
torch threads are that many) and ``--gpus-per-run`` GPUs (default 1 when the cluster
has GPUs and the run's device is not ``cpu``; Ray gives the task its GPU through
``CUDA_VISIBLE_DEVICES`` and the run uses ``cuda``). A task runs in a fresh worker
process (``max_calls=1``): a run sets torch's global seed, thread count and allocator
settings, which a reused process would carry into the next run.

**Run folders are written by the workers, wherever they run.** The driver gives every
task the sweep folder's absolute path (and a relative ``data_dir`` made absolute), so on
a cluster of several machines that path must be on a filesystem every node mounts at
the same path (NFS, a cluster filesystem, a bind mount in every container), and every
node needs betavae installed (the same version) and its datasets reachable. On one
machine, the local instance, nothing needs setting up.

Without ``--ray-address``, a Ray instance is started for the sweep on this machine (as
many CPUs as this process may use, its GPUs, no dashboard) and shut down at the end.
``--ray-address auto`` joins the cluster this machine belongs to (``$RAY_ADDRESS`` or the
last ``ray start`` here); ``host:6379`` or ``ray://host:10001`` name one; at the end the
sweep disconnects from it and leaves it running. A Ray session already open in this
process (``ray.init()`` in a notebook) is used as it is and left open.

Stopping: Ctrl-C reaches only the driver (Ray's processes block SIGINT), which
:meth:`RayBackend.interrupt` turns into ``ray.cancel``: Ray raises the interrupt in the
task's main thread, where training's stop handler takes it like a Ctrl-C at a terminal,
saves a checkpoint at the next step and ends the task ``interrupted``; a task still
waiting for a slot is dropped. A task whose worker dies (killed, out of memory, its
node lost) is not retried by Ray (``max_retries=0``) but reported ``lost``, which the sweep
treats as on the local backend: it resumes the run from its last checkpoint, up to
:data:`~betavae.studies.sweep.MAX_ATTEMPTS` starts, then records it failed with Ray's reason. Worker output (a
failing run's trace-back) is printed by the driver, prefixed with the run's name.
"""

from __future__ import annotations

import logging
import math
import signal
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from betavae.errors import BetaVAEError
from betavae.studies.backend import BackendOptions
from betavae.studies.worker import run_point

INSTALL_HINT = "pip install 'betavae[ray]'"
CONNECT_TIMEOUT_S = 5.0  # a cluster address that does not answer a TCP connection in this time is refused
# Results are small dicts; a small object store fits a container's small /dev/shm.
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20


class RayBackend:
    """Runs tasks (see :func:`betavae.studies.worker.task_for`) as Ray tasks, up to ``capacity`` at once."""

    def __init__(self, options: BackendOptions) -> None:
        self._ray = _import_ray()
        if options.cpus_per_run is not None and options.cpus_per_run < 0:
            raise BetaVAEError(f"--cpus-per-run must be 0 or more, got {options.cpus_per_run:g}")
        if options.gpus_per_run is not None and options.gpus_per_run < 0:
            raise BetaVAEError(f"--gpus-per-run must be 0 or more, got {options.gpus_per_run:g}")
        self.address = None if options.ray_address in (None, "", "local") else options.ray_address
        self._tasks: dict[str, Any] = {}  # run name -> the ObjectRef of its outcome
        self._names: dict[Any, str] = {}  # ObjectRef -> run name
        here = None
        if self.address is None and not self._ray.is_initialized():
            # what the instance started here will hold: refuse a run it cannot, before starting
            here = _this_machine()
            _check_fits_here(*_per_run(options, here["GPU"]), here["CPU"], here["GPU"])
        in_main_thread = threading.current_thread() is threading.main_thread()
        # Kept to be put back: ray.init replaces the SIGTERM handler.
        self._sigterm_handler = signal.getsignal(signal.SIGTERM) if in_main_thread else None
        self._connected_here = _connect(self._ray, self.address, here)
        try:
            resources = self._ray.cluster_resources()
            self.cpus_per_run, self.gpus_per_run = _per_run(options, float(resources.get("GPU", 0)))
            self.capacity = options.workers or _runs_at_once(resources, self.cpus_per_run, self.gpus_per_run)
            self.threads = max(1, int(self.cpus_per_run))
            # max_retries=0: the sweep, not Ray, decides whether a run whose worker died starts again.
            self._remote = self._ray.remote(max_calls=1, max_retries=0)(run_point)
        except BaseException:
            self.close()
            raise

    @property
    def running(self) -> list[str]:
        return list(self._tasks)

    def submit(self, task: dict[str, Any]) -> None:
        config = dict(task["config"])
        if config.get("data_dir") and not Path(config["data_dir"]).expanduser().is_absolute():
            # Workers start in other folders (and on other machines): give them an absolute path.
            config["data_dir"] = str(Path(config["data_dir"]).expanduser().resolve())
        wanted = str(config.get("device", "auto"))
        uses_gpu = self.gpus_per_run > 0 and wanted != "cpu"
        # A run that reserved no GPU must not take one Ray gave another task: "auto" means the CPU then.
        device = "cuda" if uses_gpu else "cpu" if wanted == "auto" else task.get("device")
        task = {**task, "config": config, "threads": self.threads, "device": device}
        ref = self._remote.options(
            num_cpus=self.cpus_per_run,
            num_gpus=self.gpus_per_run if uses_gpu else 0,
            name=f"betavae:{task['name']}",
        ).remote(task)
        self._tasks[task["name"]] = ref
        self._names[ref] = task["name"]

    def wait(self, timeout: float) -> list[dict[str, Any]]:
        """The outcomes of the runs that ended within ``timeout`` seconds (maybe none)."""
        if not self._tasks:
            return []
        refs = list(self._tasks.values())
        ready, _ = self._ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        return [self._collect(ref) for ref in ready]

    def _collect(self, ref: Any) -> dict[str, Any]:
        name = self._names.pop(ref)
        del self._tasks[name]
        exceptions = self._ray.exceptions
        try:
            return self._ray.get(ref)
        except exceptions.TaskCancelledError:  # cancelled before it started, or while it imported
            return {"name": name, "status": "interrupted", "error": None, "result": None}
        except (
            exceptions.RayTaskError
        ) as error:  # raised by the task's own code (run_point catches a run's errors)
            return {
                "name": name,
                "status": "failed",
                "result": None,
                "error": f"the Ray task failed: {_one_line(error)}",
            }
        except exceptions.RayError as error:  # its worker or node died: the run was cut off, not wrong
            return {
                "name": name,
                "status": "lost",
                "result": None,
                "error": f"the Ray task was lost: {_one_line(error)}",
            }

    def interrupt(self) -> None:
        """Ask every running task to stop at its next step and save its checkpoint (``ray.cancel``)."""
        for ref in self._tasks.values():
            self._ray.cancel(ref, force=False)

    def close(self) -> None:
        """Stop whatever still runs (only after an error in the sweep itself); leave the Ray this
        sweep connected to.

        ``ray.shutdown`` stops an instance started here; from a cluster it only disconnects.
        """
        for ref in self._tasks.values():
            try:
                self._ray.cancel(ref, force=True)
            except self._ray.exceptions.RayError:
                pass
        self._tasks, self._names = {}, {}
        if self._connected_here and self._ray.is_initialized():
            self._ray.shutdown()
            self._connected_here = False
            if self._sigterm_handler is not None:
                signal.signal(signal.SIGTERM, self._sigterm_handler)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BetaVAEError(f"the ray backend needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _connect(ray: Any, address: str | None, here: dict[str, float] | None) -> bool:
    """Join the cluster at ``address`` or start a Ray instance holding ``here``; False when
    already connected."""
    if address:
        _check_reachable(address)
    if ray.is_initialized():
        return False
    if address:
        try:
            ray.init(address=address, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise BetaVAEError(
                f"cannot join the Ray cluster at --ray-address {address}: {_one_line(error)}; "
                f"start it with `ray start --head`, or leave --ray-address out to run on this "
                f"machine"
            ) from None
        return True
    here = here or _this_machine()
    # address="local": a new instance even where $RAY_ADDRESS names a cluster (--ray-address auto joins that).
    ray.init(
        address="local",
        num_cpus=int(here["CPU"]),
        num_gpus=int(here["GPU"]),
        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        include_dashboard=False,
        logging_level=logging.ERROR,
    )
    return True


def _this_machine() -> dict[str, float]:
    """The CPUs this process may use and the GPUs torch sees: what a Ray instance started here is given."""
    import torch

    from betavae.studies.local import available_cores

    return {"CPU": float(available_cores()), "GPU": float(torch.cuda.device_count())}


def _per_run(options: BackendOptions, gpus: float) -> tuple[float, float]:
    """The CPUs and GPUs each run reserves: as given, else 1 CPU and, where there are ``gpus``, 1 GPU."""
    cpus_per_run = 1.0 if options.cpus_per_run is None else float(options.cpus_per_run)
    gpus_per_run = (1.0 if gpus else 0.0) if options.gpus_per_run is None else float(options.gpus_per_run)
    return cpus_per_run, gpus_per_run


def _check_reachable(address: str) -> None:
    """Refuse at once an address whose host and port do not answer (``ray.init`` would wait minutes)."""
    if address == "auto" or "://" in address and not address.startswith("ray://"):
        return
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = parts.hostname, parts.port or (10001 if address.startswith("ray://") else None)
    except ValueError:
        raise BetaVAEError(f"--ray-address {address} is not host:port, ray://host:port or auto") from None
    if not host or port is None:
        raise BetaVAEError(
            f"--ray-address {address} names no port: give host:port (6379 by default), "
            f"ray://host:port (10001) or auto"
        )
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise BetaVAEError(
            f"cannot reach the Ray cluster at --ray-address {address} ({reason}); is it started "
            f"(`ray start --head`) and is port {port} open from here?"
        ) from None


def _check_fits_here(cpus_per_run: float, gpus_per_run: float, cpus: float, gpus: float) -> None:
    """On the instance started here a task that asks more than the machine has would wait
    forever: refuse it."""
    if cpus_per_run > cpus:
        raise BetaVAEError(
            f"--cpus-per-run {cpus_per_run:g} is more than the {cpus:g} CPUs this machine gives Ray"
        )
    if gpus_per_run > gpus:
        raise BetaVAEError(f"--gpus-per-run {gpus_per_run:g} is more than the {gpus:g} GPUs of this machine")


def _runs_at_once(resources: dict[str, float], cpus_per_run: float, gpus_per_run: float) -> int:
    """How many runs the cluster's CPUs and GPUs hold at once (at least 1; more are queued by Ray)."""
    limits = [
        math.floor(resources.get(kind, 0) / need + 1e-9)
        for kind, need in (("CPU", cpus_per_run), ("GPU", gpus_per_run))
        if need > 0
    ]
    return max(1, min(limits) if limits else int(resources.get("CPU", 1)))


def _one_line(error: BaseException) -> str:
    """A Ray error as one line: a task's own exception by its type and message, else Ray's first line."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        error = cause
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0].rstrip('.') if lines else 'no message'}"
