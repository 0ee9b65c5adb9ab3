"""One grid point's work, wherever it runs: train (or continue) the run, evaluate it, return its result.

:func:`run_point` is what a local worker process and a Ray task both call. It brings the
run folder to what the grid asks, doing only what is missing: a new run trains from step
0; a run cut off (or asked for more steps) resumes from its checkpoint; a finished run
whose held-out loss or metrics are missing gets only those. It never raises for a run's
own failure (an exception, NaN): the failure is the result, so one bad point does not
stop a sweep.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import traceback
from typing import Any

from betavae.errors import BetaVAEError
from betavae.studies.packing import PACK_KEY, trainable_groups


def task_for(
    name: str,
    config: dict[str, Any],
    metrics: list[str],
    metric_seed: int,
    sizes: dict[str, int | None],
    threads: int | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """The plain-data description of one run's work, which crosses process and machine boundaries."""
    return {
        "name": name,
        "config": config,
        "metrics": list(metrics),
        "metric_seed": metric_seed,
        "sizes": dict(sizes),
        "threads": threads,
        "device": device,
        "submitted": time.time(),  # the wait until a worker starts on it is a cost of the sweep's
    }


def run_point(task: dict[str, Any]) -> dict[str, Any]:
    """Do ``task`` (see :func:`task_for`); return ``{"name", "status", "error", "result", "process"}``.

    ``status`` is ``done`` (with ``result``), ``interrupted`` (Ctrl-C or SIGTERM: the
    checkpoint is saved, the run resumes next time) or ``failed`` (with a one-line ``error``;
    a bug's trace-back is printed on this process's stderr too). A backend whose worker
    died without returning (killed, out of memory) reports ``lost``. ``process`` is the pid
    that did it (a local worker serves many runs). A pack's task (:mod:`betavae.studies.packing`)
    returns the outcome of each of its runs under ``pack``.
    """
    if PACK_KEY in task:
        return run_pack(task)
    import torch

    from betavae.config import TrainConfig
    from betavae.training.faults import TrainingInterrupted

    outcome: dict[str, Any] = {"name": task["name"], "status": "done", "error": None, "result": None,
                               "process": os.getpid()}
    began = time.time()
    try:
        if task.get("threads"):
            torch.set_num_threads(int(task["threads"]))
        config = TrainConfig.from_dict(task["config"], source=f"run {task['name']}")
        if task.get("device"):
            config.device = task["device"]
        outcome["result"] = _bring_up_to_date(config, task, began)
    except (TrainingInterrupted, KeyboardInterrupt):
        outcome["status"] = "interrupted"
    except BetaVAEError as error:
        outcome["status"], outcome["error"] = "failed", str(error)
    except Exception as error:  # a bug, or the machine's fault: recorded, and the sweep goes on
        traceback.print_exc()
        outcome["status"] = "failed"
        outcome["error"] = f"{type(error).__name__}: {' '.join(str(error).split())}"
    return outcome


def run_pack(task: dict[str, Any]) -> dict[str, Any]:
    """Train a pack's runs together (:mod:`betavae.studies.packing`), then bring each up to date with
    :func:`run_point` (its held-out loss and figure are there: its metrics are measured);
    ``{"name", "status", "pack": [outcome of each run]}``.

    Each packed run's ``timings`` share the pack's training among its runs (one step trains them
    all; ``packed``: how many), ``start`` is the wait before the pack began, and ``started_from``
    the step it stood at.
    A stop (Ctrl-C, SIGTERM) during the packed training makes the whole pack ``interrupted``.
    """
    import torch

    from betavae.config import TrainConfig
    from betavae.runs import RunDir
    from betavae.training.faults import TrainingInterrupted
    from betavae.training.packed import train_packed

    began = time.time()
    members = [{**member, **{key: task[key] for key in ("threads", "device") if task.get(key)}}
               for member in task[PACK_KEY]]
    shared: dict[str, tuple[float, int]] = {}  # by run: the seconds of the pack that trained it, its size
    started: dict[str, int] = {}  # by run: the step it stood at
    try:
        if task.get("threads"):
            torch.set_num_threads(int(task["threads"]))
        configs = {}
        for member in members:
            config = TrainConfig.from_dict(member["config"], source=f"run {member['name']}")
            if member.get("device"):
                config.device = member["device"]
            configs[member["name"]] = config
            run = RunDir(config.out)
            started[member["name"]] = run.checkpoint_step() if run.has_checkpoint() else 0
        steps = {name: config.steps for name, config in configs.items()}
        for names, resume in trainable_groups(started, steps):
            clock = time.perf_counter()
            train_packed([configs[name] for name in names], resume=resume, progress=False)
            shared.update(dict.fromkeys(names, (time.perf_counter() - clock, len(names))))
    except (TrainingInterrupted, KeyboardInterrupt):
        return {"name": task["name"], "status": "interrupted", "error": None, "result": None,
                "process": os.getpid()}
    except BetaVAEError:
        pass  # each run alone below: a run that failed says why, the others finish or resume
    except Exception:  # a bug: its trace-back here, and each run alone below records what it does
        traceback.print_exc()
    outcomes = []
    for member in members:
        outcome = run_point(member)
        name, result = member["name"], outcome.get("result")
        if result is not None and name in shared:
            seconds, size = shared[name]
            result["started_from"] = started[name]
            # Each run's log times the pack's steps, which trained all of its runs at once.
            steps = step_seconds(RunDir(configs[name].out), after=started[name]) / size
            result["timings"].update(
                start=max(0.0, began - member["submitted"]) if member.get("submitted") else None,
                steps=steps, outside_steps=max(0.0, seconds / size - steps), packed=size)
        outcomes.append(outcome)
    return {"name": task["name"], "status": "pack", "error": None, "result": None, PACK_KEY: outcomes,
            "process": os.getpid()}


def _bring_up_to_date(config, task: dict[str, Any], began: float) -> dict[str, Any]:
    from betavae.evaluation import evaluate_run
    from betavae.runs import RunDir
    from betavae.training.loop import train

    run = RunDir(config.out)
    started_from = run.checkpoint_step() if run.has_checkpoint() else 0
    # Where this attempt's time went, for benchmarks/study_throughput.py: the wait from the driver's
    # submit to this process, train()'s steps and the rest of it (data, model, held-out loss, figure),
    # the metrics.
    timings = {"start": max(0.0, began - task["submitted"]) if task.get("submitted") else None}
    clock = time.perf_counter()
    if not run.has_checkpoint():
        train(config, progress=False)
    elif not _finished(run, config.steps):
        train(config, resume=True, progress=False)
    trained = time.perf_counter() - clock
    steps = step_seconds(run, after=started_from)
    timings.update(steps=steps, outside_steps=max(0.0, trained - steps))
    missing = _metrics_to_measure(run, task, step=config.steps)  # the checkpoint's step, now trained
    clock = time.perf_counter()
    if missing:
        evaluate_run(run.path, missing, seed=task["metric_seed"], sizes=task["sizes"], device=config.device)
    timings["metrics"] = time.perf_counter() - clock
    return {**collect_result(run, task), "started_from": started_from, "timings": timings}


def step_seconds(run, after: int = 0) -> float:
    """The seconds a run's training steps took past step ``after``, from its log's images/s.

    Each log entry covers the steps since the one before it at its images/s, a window that
    leaves out evaluations and checkpoints' metrics; read from the log, so that a run of any
    betavae version can be measured the same way.
    """
    batch_size = run.read_config().batch_size
    seconds, previous = 0.0, 0
    for entry in _log_entries(run):
        step, rate = entry.get("step"), entry.get("images_per_s")
        if not isinstance(step, int) or not isinstance(rate, (int, float)) or rate <= 0:
            continue
        if step > after:
            seconds += (step - max(previous, after)) * batch_size / rate
        previous = step
    return seconds


def _log_entries(run) -> list[dict[str, Any]]:
    try:
        lines = run.log_path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _finished(run, steps: int) -> bool:
    """Whether the run's checkpoint holds all ``steps`` and its held-out loss was computed from it."""
    test = run.read_metrics().get("test")
    return run.checkpoint_step() == steps and isinstance(test, dict) and test.get("step") == steps


def _metrics_to_measure(run, task: dict[str, Any], step: int) -> list[str]:
    """The task's metrics that the run's ``metrics.json`` lacks for the weights of ``step`` and
    its settings."""
    from betavae.evaluation import METRICS_SECTION
    from betavae.metrics.settings import recorded_settings

    section = run.read_metrics().get(METRICS_SECTION)
    if not isinstance(section, dict) or section.get("step") != step:
        return list(task["metrics"])
    settings = section.get("settings", {})
    missing = []
    for name in task["metrics"]:
        wanted = recorded_settings(name, task["metric_seed"], task["sizes"])
        have = {key: value for key, value in settings.get(name, {}).items() if key != "null"}
        if name not in section or have != wanted:
            missing.append(name)
    return missing


def collect_result(run, task: dict[str, Any]) -> dict[str, Any]:
    """What the sweep's state keeps of a finished run: derived β values, held-out loss, metrics, speed."""
    from betavae.evaluation import METRICS_SECTION

    metrics = run.read_metrics()
    derived = run.read_derived()
    test = metrics.get("test", {})
    section = metrics.get(METRICS_SECTION, {})
    return {
        "step": int(test.get("step", 0)),
        "derived": {
            key: getattr(derived, key) for key in ("arch", "beta", "beta_norm", "num_pixels", "lr", "device")
        },
        # squared_error: runs trained with different reconstruction losses compare on it (older runs lack it)
        "test": {key: test.get(key) for key in ("loss", "recon", "kl", "squared_error")},
        "metrics": {
            name: {key: value for key, value in section.get(name, {}).items()} for name in task["metrics"]
        },
        "metric_settings": {"seed": task["metric_seed"], **task["sizes"]},
        "images_per_s": typical_rate(run),
    }


def typical_rate(run) -> float | None:
    """The median images/s of the run's log entries (the last attempt's speed dominates a resumed run,
    and a first window slowed by warm-up or a CUDA graph's capture does not move it)."""
    rates = [entry["images_per_s"] for entry in _log_entries(run)
             if isinstance(entry.get("images_per_s"), (int, float))]
    return statistics.median(rates) if rates else None
