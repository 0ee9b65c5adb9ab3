"""``betavae sweep --pack N``: runs differing only in seed and β trained together, each in its own folder."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from tests.runfolders import state_rows
from tests.test_packed import assert_same_training, weights

from betavae.config import TrainConfig
from betavae.errors import BetaVAEError
from betavae.runs import RunDir
from betavae.studies.grid import build_spec
from betavae.studies.packing import config_pack_key, member_outcomes, next_pack, trainable_groups
from betavae.studies.sweep import BackendOptions, run_sweep
from marks import slow_fixture

# A grid row over β at one latent size and seed: one pack of three.
TRAINING = {
    "dataset": "shapes", "arch": "conv28", "steps": 20, "batch_size": 16, "test_size": 64,
    "checkpoint_every": 10, "log_every": 5, "device": "cpu", "beta_norm": [0.01, 0.1, 1.0], "latent_dim": 4,
}
OPTIONS = {"seeds": 1, "metrics": ["mig"], "n_train": 100}
NAMES = ["bn0.01-s0", "bn0.1-s0", "bn1-s0"]


def row_spec(**training):
    return build_spec({**TRAINING, **training}, OPTIONS)


def step_kind(run: Path) -> str:
    """How the run's steps were taken, as its config records it: ``eager``, ``packed (3 models, vmap)``."""
    return RunDir(run).read_derived().step


def assert_trained_alike(a: Path, b: Path) -> None:
    """Two runs of one config ended at the same weights, up to the packed kernels' rounding (test_packed)."""
    assert_same_training(RunDir(a).read_config(), weights(a), weights(b))


# --- grouping ------------------------------------------------------------------------------------

def test_a_pack_takes_the_next_run_and_later_ones_with_its_key_keeping_the_rest_in_order():
    queue = ["a1", "b1", "a2", "x1", "a3", "b2"]
    key = {"a": "A", "b": "B", "x": None}

    def key_of(name: str):
        return key[name[0]]

    assert next_pack(queue, key_of, 2) == ["a1", "a2"]
    assert queue == ["b1", "x1", "a3", "b2"]
    assert next_pack(queue, key_of, 5) == ["b1", "b2"]
    assert next_pack(queue, key_of, 5) == ["x1"]  # no key: trains alone
    assert next_pack(queue, key_of, 1) == ["a3"] and queue == []


def test_only_what_the_packed_trainer_trains_has_a_pack_key():
    config = TrainConfig(dataset="shapes", steps=10).to_dict()
    assert config_pack_key(config) is not None
    assert config_pack_key({**config, "seed": 7, "beta": 8.0}) == config_pack_key(config)
    assert config_pack_key({**config, "latent_dim": 3}) != config_pack_key(config)
    assert config_pack_key({**config, "objective": "beta_tc"}) is None
    assert config_pack_key({**config, "precision": "bf16"}) is None


def test_a_lost_pack_is_lost_for_each_of_its_runs_and_a_pack_reports_each_run():
    lost = {"name": "a", "status": "lost", "error": "killed", "result": None}
    assert member_outcomes(lost, ["a", "b"]) == [lost, {**lost, "name": "b"}]
    each = [{"name": "a", "status": "done"}, {"name": "b", "status": "failed"}]
    assert member_outcomes({"name": "a", "status": "pack", "pack": each}, ["a", "b"]) == each


def test_runs_standing_at_one_step_train_together_and_finished_or_lone_runs_alone():
    started = {"a": 0, "b": 10, "c": 0, "d": 10, "e": 20, "f": 5}
    assert trainable_groups(started, dict.fromkeys(started, 20)) == [(["a", "c"], False), (["b", "d"], True)]
    assert trainable_groups({"a": 0}, {"a": 20}) == []


def test_bad_pack_sizes_are_refused_in_one_line():
    for size in (0, -2, 1.5, True):
        with pytest.raises(BetaVAEError, match="--pack must be a positive integer"):
            BackendOptions(pack=size).check()


# --- sweeps --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
@slow_fixture
def packed_and_alone(tmp_path_factory) -> tuple[Path, Path]:
    """The row swept as one pack, and swept one run at a time, each with one worker."""
    folder = tmp_path_factory.mktemp("packed-sweep")
    run_sweep(row_spec(), folder / "packed", BackendOptions(workers=1, pack=3), progress=False)
    run_sweep(row_spec(), folder / "alone", BackendOptions(workers=1), progress=False)
    return folder / "packed", folder / "alone"


def test_a_packed_sweep_trains_its_row_as_one_network_into_ordinary_run_folders(packed_and_alone):
    packed, alone = packed_and_alone
    rows = state_rows(packed)
    assert sorted(rows) == NAMES and all(row["status"] == "done" for row in rows.values())
    for name in NAMES:
        assert step_kind(packed / name) == "packed (3 models, vmap)"
        assert step_kind(alone / name) == "eager"
        assert_trained_alike(packed / name, alone / name)
        timings = rows[name]["result"]["timings"]
        assert timings["packed"] == 3 and timings["steps"] > 0  # its share of the pack's steps
        measured = rows[name]["result"]["metrics"]["mig"]
        assert measured.keys() == state_rows(alone)[name]["result"]["metrics"]["mig"].keys()
        # Everything an unpacked run's folder holds.
        assert {p.name for p in (alone / name).iterdir()} <= {p.name for p in (packed / name).iterdir()}


@pytest.mark.slow
def test_a_pack_of_runs_at_different_steps_trains_those_at_one_step_together(tmp_path):
    out = tmp_path / "grown"
    run_sweep(row_spec(steps=10, beta_norm=[0.01, 0.1]), out, BackendOptions(workers=1, pack=3),
              progress=False)
    # The grid grows: one β more, and 20 steps for all: two runs stand at step 10, one at 0.
    started = {name: RunDir(out / name).checkpoint_step() if (out / name).is_dir() else 0 for name in NAMES}
    assert trainable_groups(started, dict.fromkeys(NAMES, 20)) == [(NAMES[:2], True)]
    run_sweep(row_spec(), out, BackendOptions(workers=1, pack=3), progress=False)
    rows = state_rows(out)
    assert all(row["status"] == "done" and row["result"]["step"] == 20 for row in rows.values())
    assert [rows[name]["result"]["started_from"] for name in NAMES] == [10, 10, 0]
    assert step_kind(out / NAMES[0]) == step_kind(out / NAMES[1]) == "packed (2 models, vmap)"
    assert step_kind(out / NAMES[2]) == "eager"  # alone at its step


@pytest.mark.slow
def test_a_pack_whose_worker_is_killed_resumes_packed_from_its_checkpoints(packed_and_alone, tmp_path):
    out = tmp_path / "killed"
    runs = [RunDir(out / name) for name in NAMES]
    killed: list[int] = []

    def kill_the_worker_once_each_run_has_a_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while not all(10 <= _step(run) < 40 for run in runs):
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)
        holders = {int((run.path / ".lock").read_text().split()[0]) for run in runs}
        killed.extend(holders)
        os.kill(holders.pop(), signal.SIGKILL)

    killer = threading.Thread(target=kill_the_worker_once_each_run_has_a_checkpoint)
    killer.start()
    summary = run_sweep(row_spec(steps=40), out, BackendOptions(workers=1, pack=3), progress=False)
    killer.join()
    assert len(killed) == 1, killed  # one process trained the three
    assert summary.counts["done"] == 3
    rows = state_rows(out)
    started = {name: rows[name]["result"]["started_from"] for name in NAMES}
    for name in NAMES:
        assert rows[name]["status"] == "done" and rows[name]["attempts"] == 2, rows[name]
        assert started[name] >= 10, started  # resumed, not trained again from step 0
        # Runs that stood at one step train on packed (a kill can come between two runs' checkpoints).
        together = sum(step == started[name] for step in started.values())
        expected = f"packed ({together} models, vmap)" if together > 1 else "eager"
        assert step_kind(out / name) == expected, started


def _step(run: RunDir) -> int:
    try:
        return run.checkpoint_step()
    except (BetaVAEError, OSError, RuntimeError, EOFError):
        return 0
