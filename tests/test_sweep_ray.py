"""``betavae sweep --backend ray`` on a real Ray instance started on this machine (no mock).

The module's Ray instance is started once, by the backend itself (:func:`ray_instance`),
and shut down by it at the end; the sweeps of the tests join it, as a sweep joins a Ray
session already open in its process.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.commands import run_cli
from tests.runfolders import state_rows

from betavae.config import TrainConfig
from betavae.errors import BetaVAEError
from betavae.runs import RunDir
from betavae.studies import local
from betavae.studies.grid import GridSpec, build_spec
from betavae.studies.sweep import BackendOptions, SweepInterrupted, run_sweep
from betavae.studies.worker import task_for

ray = pytest.importorskip("ray", reason="the ray backend's tests need Ray: pip install 'betavae[ray]'")

from betavae.studies.ray_backend import RayBackend  # noqa: E402  (after the skip: it needs ray)
from marks import shared_resource

# A tiny study: 2 β_norm × 1 seed, a few dozen steps on the Shapes set, on the CPU: one run per
# worker at once, each worker serving its run as it serves any.
TRAINING = {
    "dataset": "shapes",
    "arch": "conv28",
    "steps": 20,
    "batch_size": 16,
    "test_size": 64,
    "checkpoint_every": 10,
    "log_every": 10,
    "device": "cpu",
    "beta_norm": [0.01, 1.0],
    "latent_dim": 2,
}
OPTIONS = {"seeds": 1, "metrics": ["mig"], "n_train": 200}
NAMES = ["bn0.01-s0", "bn1-s0"]
RAY = BackendOptions(backend="ray", workers=2)


def spec() -> GridSpec:
    return build_spec(TRAINING, OPTIONS)


@pytest.fixture(scope="module")
@shared_resource("ray")
def ray_instance():
    """A Ray instance started by the backend, as a sweep without --ray-address starts it; shut down
    at the end."""
    assert not ray.is_initialized()
    backend = RayBackend(BackendOptions(backend="ray", workers=2))
    try:
        yield backend
    finally:
        backend.close()
    assert not ray.is_initialized(), "the backend shuts down the instance it started"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_ray_address_is_a_one_line_error(tmp_path, capsys):
    port = free_port()  # nothing listens there once the probe is closed
    code, out, err = run_cli(
        [
            "sweep", "--dataset", "shapes", "--steps", "10", "--beta-norm", "0.1,1", "--out",
            tmp_path / "sweep", "--backend", "ray", "--ray-address", f"127.0.0.1:{port}",
        ],
        capsys,
    )
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert f"cannot reach the Ray cluster at --ray-address 127.0.0.1:{port}" in err
    assert not ray.is_initialized()


def test_ray_not_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(BetaVAEError, match=r"pip install 'betavae\[ray\]'"):
        RayBackend(RAY)


def test_ray_sweep_trains_every_point_like_the_local_backend(ray_instance, tmp_path, monkeypatch):
    summary = run_sweep(spec(), tmp_path / "ray", RAY, progress=False)

    assert summary.counts == {"queued": 0, "running": 0, "done": 2, "failed": 0}
    assert ray.is_initialized(), "a sweep leaves alone a Ray session it joined"
    for name in NAMES:
        run = RunDir(tmp_path / "ray" / name)
        assert run.checkpoint_step() == 20
        metrics = run.read_metrics()
        assert metrics["test"]["step"] == 20 and metrics["disentanglement"]["step"] == 20
        assert 0 <= metrics["disentanglement"]["mig"]["mig"] <= 1
    with open(tmp_path / "ray" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((float(row["beta_norm"]), int(row["latent_dim"]), row["status"]) for row in rows) == [
        (0.01, 2, "done"),
        (1.0, 2, "done"),
    ]

    # The same grid on the local backend, with the same one thread per run as the Ray tasks.
    monkeypatch.setattr(local, "threads_per_worker", lambda workers, cores: 1)
    run_sweep(spec(), tmp_path / "local", BackendOptions(backend="local", workers=2), progress=False)
    on_ray, on_local = state_rows(tmp_path / "ray"), state_rows(tmp_path / "local")
    for name in NAMES:
        ray_result, local_result = on_ray[name]["result"], on_local[name]["result"]
        assert ray_result["test"] == local_result["test"], name
        assert ray_result["metrics"] == local_result["metrics"], name


def test_failing_point_is_recorded_with_its_message_and_the_others_finish(ray_instance, tmp_path):
    grid = build_spec({**TRAINING, "beta_norm": 1.0, "latent_dim": 2, "test_size": [64, 10**9]}, {"seeds": 1})
    summary = run_sweep(grid, tmp_path, RAY, progress=False)

    assert summary.counts == {"queued": 0, "running": 0, "done": 1, "failed": 1}
    ((name, error),) = summary.failed
    assert name == "test_size1e+09-s0"
    assert error.startswith("shapes: test_size must be between 1 and") and "\n" not in error
    assert RunDir(tmp_path / "test_size64-s0").checkpoint_step() == 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker's process through /proc")
def test_killed_worker_is_a_lost_run_not_a_crash_of_the_sweep(ray_instance, tmp_path):
    config = TrainConfig.from_dict(
        {**TRAINING, "beta_norm": 1.0, "latent_dim": 2, "steps": 100_000, "out": str(tmp_path / "killed")}
    )
    ray_instance.submit(task_for("killed", config.to_dict(), [], 0, {"n_train": None, "n_eval": None}))
    os.kill(wait_for_worker("betavae:killed"), signal.SIGKILL)

    outcomes = wait_for_outcomes(ray_instance)

    # Lost, as a local worker killed: the sweep resumes it from its checkpoint (test_sweep.py pins that part).
    assert [(outcome["name"], outcome["status"]) for outcome in outcomes] == [("killed", "lost")]
    assert outcomes[0]["error"].startswith("the Ray task was lost: ") and "\n" not in outcomes[0]["error"]


def test_ctrl_c_stops_the_runs_at_a_checkpoint_and_the_sweep_resumes_them(ray_instance, tmp_path):
    # 2,000 steps: long enough to be stopped early, short enough that a stop not taken fails
    # instead of hanging.
    one_point = {**TRAINING, "beta_norm": 1.0, "latent_dim": 2, "checkpoint_every": 2_000, "log_every": 5}
    log = tmp_path / "s0" / "log.jsonl"
    sweep_ended = threading.Event()
    stopper = threading.Thread(
        target=interrupt_when, args=(lambda: log.is_file() and log.stat().st_size > 0, sweep_ended)
    )
    stopper.start()
    try:
        with pytest.raises(SweepInterrupted):
            run_sweep(build_spec({**one_point, "steps": 2_000}, {}), tmp_path, RAY, progress=False)
    finally:
        sweep_ended.set()
        stopper.join()

    assert state_rows(tmp_path)["s0"]["status"] == "queued"
    stopped_at = RunDir(tmp_path / "s0").checkpoint_step()
    assert 5 <= stopped_at < 2_000, (
        "the stop saved a checkpoint at the step it reached, not at checkpoint_every"
    )

    summary = run_sweep(build_spec({**one_point, "steps": stopped_at + 5}, {}), tmp_path, RAY, progress=False)
    assert summary.counts["done"] == 1
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps[0] == 5 and steps[-1] == stopped_at + 5, "the run went on from its checkpoint"


# -- helpers -------------------------------------------------------------------------------


def interrupt_when(reached, sweep_ended: threading.Event, timeout: float = 120) -> None:
    """Send this process SIGINT (a Ctrl-C at the terminal) once ``reached()``; never once the sweep
    has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not sweep_ended.is_set():
        if reached():
            os.kill(os.getpid(), signal.SIGINT)
            return
        time.sleep(0.05)


def wait_for_worker(task_name: str, timeout: float = 60) -> int:
    """The pid of the Ray worker running the task named ``task_name`` (its process title is ``ray::NAME``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(
                    f"ray::{task_name}".encode()
                ):
                    return int(entry.name)
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no Ray worker ran {task_name} within {timeout:g} s")


def wait_for_outcomes(backend: RayBackend, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    outcomes = []
    while backend.running:
        assert time.monotonic() < deadline, f"the tasks ended within {timeout:g} s"
        outcomes += backend.wait(1.0)
    return outcomes
