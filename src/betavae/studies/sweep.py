"""``betavae sweep``: train every point of a grid into its own run folder, resumably, locally or on Ray.

The sweep folder holds one ordinary run folder per grid point (so ``evaluate``, ``show``
and ``transfer`` work on each unchanged), the SQLite state (:mod:`~betavae.studies.state`)
and, at the end, ``results.csv`` and ``results.json``. The driver, this module, is the
state's only writer and holds the sweep folder's lock while it runs, so a second sweep on
the same folder is refused with the holder's pid instead of running a point twice.
Workers (:mod:`~betavae.studies.local`, :mod:`~betavae.studies.ray_backend`) do the runs
and return results.

Started again after any stop, a sweep runs only what is not done: runs the state found
``running`` were cut off and resume from their checkpoints; failed runs stay failed
(with their error) unless ``retry_failed``. A caller that must not continue runs it did not
start (a benchmark timing them) asks first which points already hold runs
(:func:`held_runs`), and may have them started again from step 0 (``replace``).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from betavae.errors import BetaVAEError
from betavae.files import check_folder, claim_folder
from betavae.runs import LOCK_FILE, RunDir
from betavae.studies.backend import Backend, BackendOptions
from betavae.studies.grid import GridPoint, GridSpec, check_size, describe_size, expand_grid
from betavae.studies.packing import config_pack_key, member_outcomes, next_pack, pack_task
from betavae.studies.results import result_rows, write_results
from betavae.studies.state import STATE_FILE, SweepState
from betavae.studies.worker import task_for
from betavae.training.interrupt import StopRequest
from betavae.training.tracking import headline, progress_line

POLL_SECONDS = 1.0  # how often the display reads the running runs' logs
MAX_ATTEMPTS = 3  # starts of a run whose worker keeps dying before it is marked failed
# The kind in the mark of a sweep folder (betavae.files): the only folder a sweep writes its runs into.
KIND = "betavae sweep"


class SweepInterrupted(BetaVAEError):
    """Ctrl-C: running runs saved their checkpoints; the same command continues the sweep."""

    exit_code = 130


@dataclass
class SweepSummary:
    out: Path
    counts: dict[str, int]
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run, error)


def _earlier_sweep(folder: Path) -> bool:
    """A sweep folder written before marks (its state), or one a kill cut off before its state (its lock)."""
    return (folder / STATE_FILE).is_file() or {path.name for path in folder.iterdir()} <= {LOCK_FILE}


def run_sweep(spec: GridSpec, out: str | Path, options: BackendOptions | None = None,
              retry_failed: bool = False, progress: bool | None = None,
              names: dict[str, str] | None = None, large_grid: bool = False,
              echo: Callable[[str], None] | None = None, replace: bool = False) -> SweepSummary:
    """Run every point of ``spec`` not yet done into ``out``; return what the sweep folder then holds.

    The grid's size is counted first, and said through ``echo``: a grid of more than
    :data:`~betavae.studies.grid.LARGE_GRID` runs is refused unless ``large_grid`` (see
    :func:`~betavae.studies.grid.check_size`), since making its points alone takes minutes.
    The grid is then expanded and checked (every point's config validated) before anything
    runs; ``names`` maps keys to the flags the user typed, for messages. With ``replace``,
    the grid's runs start again from step 0: their run folders are deleted first.
    """
    options = (options or BackendOptions()).check()
    out = Path(out)
    if options.backend == "ray":
        out = out.resolve()  # the workers may run elsewhere: they need the path the cluster shares
    check_folder(out, KIND, adopt=_earlier_sweep)  # before a word is printed: never among a user's files
    check_size(spec, large_grid)
    if echo is not None:
        echo(f"grid: {describe_size(spec)}")
    points = expand_grid(spec, out, names)
    claim_folder(out, KIND, what="sweep folder", adopt=_earlier_sweep)  # never among a user's files
    with RunDir(out).lock("betavae sweep"), SweepState(out) as state:
        if replace:
            _start_again(state, points)
        state.sync(points, spec, names)
        # cut off by the stop of an earlier sweep: they resume from their checkpoints
        state.requeue("running")
        if retry_failed:
            state.requeue("failed")
        point_names = [point.name for point in points]
        counted = set(point_names)
        todo = state.queued(point_names)
        try:
            if todo:
                _run_all(
                    state,
                    _make_backend(options, todo, points),
                    todo,
                    spec,
                    _Display(out, points, state, progress),
                    options.pack,
                )
        finally:  # an interrupted sweep's table too: what is done is worth reading
            write_results(out, *result_rows(out))
        counts = state.counts(point_names)
        failed = [
            (row["name"], row["error"] or "")
            for row in state.rows()
            if row["status"] == "failed" and row["name"] in counted
        ]
    return SweepSummary(out, counts, failed)


def held_runs(spec: GridSpec, out: str | Path, names: dict[str, str] | None = None) -> list[GridPoint]:
    """The points of ``spec``'s grid whose run folders in ``out`` already hold a run (a checkpoint).

    Points that :func:`run_sweep` would refuse (another experiment, or fewer steps, under a run's
    name) are refused here, before anything is said or run; ``names`` as for :func:`run_sweep`.
    """
    points = expand_grid(spec, out, names)
    if (Path(out) / STATE_FILE).is_file():
        with SweepState(out) as state:
            state.check(points, names)
    return [point for point in points if RunDir(point.config.out).has_checkpoint()]


def _start_again(state: SweepState, points: Sequence[GridPoint]) -> None:
    """Delete the run folders of ``points`` that hold runs and forget their rows: they run as new points."""
    for point in points:
        if RunDir(point.config.out).has_checkpoint():
            shutil.rmtree(point.config.out)
    state.forget([point.name for point in points])


def _run_all(
    state: SweepState, backend: Backend, todo: Sequence[str], spec: GridSpec, display: _Display, pack: int = 1
) -> None:
    """Run ``todo`` on ``backend``; on Ctrl-C, let the running runs save their checkpoints and say
    how to go on.

    Ctrl-C (or SIGTERM) sets a flag that the loop reads between its steps instead of
    raising wherever the driver happens to be: a stop between marking a run ``running``
    and starting its worker, or between reading an outcome and recording it, would leave
    a run marked ``running`` that no worker runs.
    """
    try:
        tasks = _Tasks(state, spec, pack)
        with StopRequest() as stop:
            _drive(state, backend, todo, tasks, display, stop)
            if stop.requested:
                backend.interrupt()
                _drain(state, backend, tasks, display)
                counts = state.counts(display.names)
                raise SweepInterrupted(
                    f"interrupted: {counts['done']} of {len(display.names)} runs done, the "
                    f"running ones saved their checkpoints; continue with the same command"
                )
    finally:
        backend.close()
        display.close()


class _Tasks:
    """The tasks the driver submits: one per run, or one per pack of runs (``--pack``,
    :mod:`betavae.studies.packing`), and which runs each running task trains."""

    def __init__(self, state: SweepState, spec: GridSpec, pack: int) -> None:
        self.state, self.spec, self.pack = state, spec, pack
        self.runs: dict[str, list[str]] = {}  # by running task's name: its runs
        self._keys: dict[str, Any] = {}

    def submit_next(self, queue: list[str], backend: Backend) -> list[str]:
        """Take the next run (and the runs packed with it) off ``queue``, mark them running, submit them."""
        names = next_pack(queue, self._key, self.pack)
        for name in names:
            self.state.mark_running(name)
        spec = self.spec
        task = pack_task([task_for(name, self.state.config(name), spec.metrics, spec.metric_seed, spec.sizes)
                          for name in names])
        backend.submit(task)
        self.runs[task["name"]] = names
        return names

    def outcomes(self, outcome: dict[str, Any]) -> list[dict[str, Any]]:
        """The outcome of each run of the task that ended with ``outcome``."""
        return member_outcomes(outcome, self.runs.pop(outcome["name"], [outcome["name"]]))

    def running(self, backend: Backend) -> list[str]:
        """The runs that ``backend``'s running tasks train."""
        return [run for name in backend.running for run in self.runs.get(name, [name])]

    def _key(self, name: str) -> Any:
        if name not in self._keys:
            self._keys[name] = config_pack_key(self.state.config(name))
        return self._keys[name]


def _drive(
    state: SweepState,
    backend: Backend,
    todo: Sequence[str],
    tasks: _Tasks,
    display: _Display,
    stop: StopRequest,
) -> None:
    """Keep ``backend`` full until every run of ``todo`` has ended (or a stop is asked), recording
    each outcome."""
    queue = list(todo)
    while (queue or backend.running) and not stop.requested:
        while queue and len(backend.running) < backend.capacity and not stop.requested:
            for name in tasks.submit_next(queue, backend):
                display.started(name)
        for ended in backend.wait(POLL_SECONDS):
            for outcome in tasks.outcomes(ended):
                if _record(state, outcome, display):
                    queue.append(outcome["name"])
        display.refresh(tasks.running(backend))


def _drain(state: SweepState, backend: Backend, tasks: _Tasks, display: _Display) -> None:
    """After Ctrl-C: wait for the running runs to save their checkpoints and report; a second
    Ctrl-C stops now."""
    try:
        while backend.running:
            for ended in backend.wait(POLL_SECONDS):
                for outcome in tasks.outcomes(ended):
                    _record(state, outcome, display)
    except KeyboardInterrupt:
        pass  # the runs still running stay 'running' in the state: the next sweep resumes them


def _record(state: SweepState, outcome: dict[str, Any], display: _Display) -> bool:
    """Write a run's outcome into the state; True when the run should be started again now.

    A run whose worker vanished (``lost``: killed, out of memory, a node gone) is cut off,
    not wrong: it goes back to the queue and resumes from its checkpoint, up to
    :data:`MAX_ATTEMPTS` starts, so a run that kills its worker every time ends as failed.
    """
    name, status = outcome["name"], outcome["status"]
    again = False
    if status == "done":
        state.mark_done(name, outcome["result"])
    elif status == "interrupted":
        state.mark_queued(name)
    elif status == "lost" and state.attempts(name) < MAX_ATTEMPTS:
        state.mark_queued(name)
        again = True
    else:
        state.mark_failed(name, outcome["error"] or "unknown error")
    display.ended(name, outcome, again)
    return again


def _make_backend(options: BackendOptions, todo: Sequence[str], points: Sequence[GridPoint]) -> Backend:
    if options.backend == "ray":
        from betavae.studies.ray_backend import RayBackend

        return RayBackend(options)
    import torch

    from betavae.studies.local import available_cores, default_workers, local_backend, threads_per_worker

    cores = available_cores()
    wants_cuda = any(point.config.device in ("auto", "cuda") for point in points)
    gpus = torch.cuda.device_count() if wants_cuda and torch.cuda.is_available() else 0
    workers = options.workers or default_workers(gpus, cores)
    workers = max(1, min(workers, len(todo) or 1))
    devices: list[str | None] = [f"cuda:{slot % gpus}" for slot in range(workers)] if gpus else [None]
    return local_backend(workers, threads_per_worker(workers, cores), devices)


class _Display:
    """The sweep's progress: a bar over all the grid's training steps, and a line per run that ends.

    The bar's position comes from the running runs' ``log.jsonl`` (the last entry's step
    and images/s), so it needs nothing from the workers but the files they write anyway,
    locally or on a cluster's shared folder.
    """

    def __init__(
        self, out: Path, points: Sequence[GridPoint], state: SweepState, progress: bool | None
    ) -> None:
        self.out = out
        self.steps = {point.name: point.config.steps for point in points}
        self.state = state
        self.names = list(self.steps)
        self.finished_steps = sum(
            self.steps[row["name"]]
            for row in state.rows()
            if row["status"] == "done" and row["name"] in self.steps
        )
        self.bar = tqdm(
            total=sum(self.steps.values()),
            initial=self.finished_steps,
            unit="step",
            desc="sweep",
            disable=None if progress is None else not progress,
            dynamic_ncols=True,
        )
        self.started_at: dict[str, float] = {}
        self.rates: dict[str, float] = {}
        self.evaluated: dict[str, int] = {}  # per run: the last evaluation during training shown

    def started(self, name: str) -> None:
        self.started_at[name] = time.perf_counter()
        self.evaluated[name] = _last_evaluated_step(self.out / name)  # earlier attempts' were shown then

    def refresh(self, running: Sequence[str]) -> None:
        position = self.finished_steps
        self.rates = {}
        for name in running:
            step, rate = _last_log_entry(self.out / name)
            position += step
            if rate is not None:
                self.rates[name] = rate
            self._show_evaluations(name)
        self.bar.n = min(position, self.bar.total)
        counts = self.state.counts(self.names)
        self.bar.set_postfix_str(
            f"done {counts['done']}/{len(self.names)}, running {len(running)}, "
            f"failed {counts['failed']}, {sum(self.rates.values()):,.0f} img/s",
            refresh=True,
        )

    def _show_evaluations(self, name: str) -> None:
        """A line for each evaluation during training (``--eval``) the run made since the last look."""
        section = _during_training(self.out / name)
        for entry in section.get("entries", []):
            if entry["step"] > self.evaluated.get(name, 0):
                tqdm.write(f"eval    {name} {progress_line(entry, section['metrics'])}")
                self.evaluated[name] = entry["step"]

    def ended(self, name: str, outcome: dict[str, Any], again: bool = False) -> None:
        self._show_evaluations(name)
        seconds = time.perf_counter() - self.started_at.pop(name, time.perf_counter())
        if outcome["status"] == "done":
            self.finished_steps += self.steps[name]
            result = outcome["result"]
            scores = "".join(f", {headline(metric, values)}" for metric, values in result["metrics"].items())
            line = f"done    {name}: held-out loss {result['test']['loss']:.2f}{scores} ({seconds:.0f} s)"
        elif outcome["status"] == "interrupted":
            line = f"stopped {name}: checkpoint saved, resumes next time"
        elif again:
            line = f"lost    {name}: {outcome['error']}; resuming it from its last checkpoint"
        else:
            line = f"failed  {name}: {outcome['error']}"
        tqdm.write(line)

    def close(self) -> None:
        self.bar.close()


def _during_training(run_path: Path) -> dict[str, Any]:
    """The evaluations a running run made so far (:meth:`RunDir.during_training`); {} when its
    ``metrics.json`` cannot be read now: the display must not stop the sweep."""
    try:
        return RunDir(run_path).during_training()
    except (OSError, BetaVAEError):
        return {}


def _last_evaluated_step(run_path: Path) -> int:
    entries = _during_training(run_path).get("entries") or [{"step": 0}]
    return int(entries[-1]["step"])


def _last_log_entry(run_path: Path) -> tuple[int, float | None]:
    """The step and images/s of a run's last log entry (0, None before its first)."""
    path = run_path / "log.jsonl"
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 4096))
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return 0, None
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("step"), int):
            return entry["step"], entry.get("images_per_s")
    return 0, None
