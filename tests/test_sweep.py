"""``betavae sweep`` on the local backend: the grid, the SQLite state, stops of every kind, results."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.commands import run_cli
from tests.processes import wait_until
from tests.runfolders import state_rows

from betavae.errors import BetaVAEError
from betavae.runs import RunDir
from betavae.studies.grid import GridSpec, build_spec, expand_grid, spec_from_command_line
from betavae.studies.sweep import BackendOptions, run_sweep
from marks import slow_fixture

# A tiny study: 2 β_norm × 2 latent sizes × 1 seed, a few dozen steps on the Shapes set.
TRAINING = {
    "dataset": "shapes",
    "arch": "conv28",
    "steps": 40,
    "batch_size": 16,
    "test_size": 64,
    "checkpoint_every": 10,
    "log_every": 10,
    "device": "cpu",
    "beta_norm": [0.01, 1.0],
    "latent_dim": [2, 4],
}
OPTIONS = {"seeds": 1, "metrics": ["mig"], "n_train": 200}
NAMES = ["bn0.01-z2-s0", "bn0.01-z4-s0", "bn1-z2-s0", "bn1-z4-s0"]
# The same grid as flags of `betavae sweep`.
FLAGS = [
    "--dataset", "shapes", "--arch", "conv28", "--steps", "40", "--batch-size", "16", "--test-size", "64",
    "--checkpoint-every", "10", "--log-every", "10", "--device", "cpu", "--beta-norm", "0.01,1", "--latent",
    "2,4", "--seeds", "1", "--metrics", "mig", "--n-train", "200", "--workers", "2",
]


def tiny_spec(**training) -> GridSpec:
    return build_spec({**TRAINING, **training}, OPTIONS)


def outcomes(sweep_dir: Path) -> dict[str, tuple]:
    """What must not depend on how the sweep got there: each run's held-out loss terms and MIG."""
    return {
        name: (row["result"]["test"], row["result"]["metrics"]) for name, row in state_rows(sweep_dir).items()
    }


@pytest.fixture(scope="module")
@slow_fixture
def finished(tmp_path_factory) -> Path:
    """The tiny grid swept without a stop, two workers."""
    out = tmp_path_factory.mktemp("sweep") / "tiny"
    summary = run_sweep(tiny_spec(), out, BackendOptions(workers=2), progress=False)
    assert summary.counts == {"queued": 0, "running": 0, "done": 4, "failed": 0}
    return out


# -- the grid ------------------------------------------------------------------------------


def test_the_grid_is_the_product_of_the_lists_with_every_first_seed_first(tmp_path):
    spec = build_spec(
        {"dataset": "shapes", "steps": 10, "beta_norm": [0.1, 2], "latent_dim": [3, 5], "lr": 1e-3},
        {"seeds": 2},
    )
    points = expand_grid(spec, tmp_path)
    assert [point.name for point in points] == [
        "bn0.1-z3-s0", "bn0.1-z5-s0", "bn2-z3-s0", "bn2-z5-s0", "bn0.1-z3-s1", "bn0.1-z5-s1", "bn2-z3-s1",
        "bn2-z5-s1",
    ]
    first = points[1].config
    assert (first.beta_norm, first.latent_dim, first.seed, first.lr, first.steps) == (0.1, 5, 0, 1e-3, 10)
    assert first.out == str(tmp_path / "bn0.1-z5-s0")
    assert points[1].values == {"beta_norm": 0.1, "latent_dim": 5, "seed": 0}
    # Pure: the same spec gives the same points and hashes; the hash ignores where and how long a run goes.
    again = expand_grid(spec, tmp_path / "elsewhere")
    assert [point.config_hash() for point in again] == [point.config_hash() for point in points]
    assert len({point.config_hash() for point in points}) == 8
    longer = expand_grid(
        build_spec(
            {"dataset": "shapes", "steps": 99, "beta_norm": [0.1, 2], "latent_dim": [3, 5], "lr": 1e-3},
            {"seeds": 2},
        ),
        tmp_path,
    )
    assert [point.config_hash() for point in longer] == [point.config_hash() for point in points]


def test_any_training_key_can_be_swept_and_a_list_valued_key_by_a_list_of_lists(tmp_path):
    spec = build_spec(
        {"recon": ["bernoulli", "gaussian"], "arch": "conv28", "eval": [["mig"], ["mig", "sap"]]},
        {"seeds": [3]},
    )
    points = expand_grid(spec, tmp_path)
    assert [point.name for point in points] == [
        "bernoulli-evalmig-s3",
        "bernoulli-evalmig+sap-s3",
        "gaussian-evalmig-s3",
        "gaussian-evalmig+sap-s3",
    ]
    assert [(p.config.recon, p.config.eval, p.config.seed) for p in points] == [
        ("bernoulli", ["mig"], 3),
        ("bernoulli", ["mig", "sap"], 3),
        ("gaussian", ["mig"], 3),
        ("gaussian", ["mig", "sap"], 3),
    ]
    fixed = build_spec({"eval": ["mig", "sap"]}, {})
    assert fixed.fixed == {"eval": ["mig", "sap"]} and not fixed.swept
    # the reconstruction's reduction names its runs by its value alone, as the loss does
    grid = {"recon": ["mse", "lmse"], "recon_reduction": ["sum", "mean"], "arch": "fc", "dataset": "dsprites"}
    losses = expand_grid(build_spec(grid, {"seeds": 1}), tmp_path)
    assert [point.name for point in losses] == ["mse-sum-s0", "mse-mean-s0", "lmse-sum-s0", "lmse-mean-s0"]
    assert {(p.config.arch, p.config.recon_reduction) for p in losses} == {("fc", "sum"), ("fc", "mean")}
    # On the command line, --eval reads as betavae train's does: one list for every run, "all" included.
    every, _ = spec_from_command_line(None, {"eval": "all", "beta_norm": "0.1,1"}, {})
    assert every.fixed == {"eval": ["beta_vae", "factor_vae", "mig", "dci", "sap"]}


def test_flags_give_the_same_grid_as_a_grid_file(tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(
        'dataset = "shapes"\narch = "conv28"\nsteps = 40\nbatch_size = 16\ntest_size = 64\n'
        'checkpoint_every = 10\nlog_every = 10\ndevice = "cpu"\nbeta_norm = [0.01, 1]\n'
        'latent_dim = [2, 4]\n[sweep]\nseeds = 1\nmetrics = ["mig"]\nn_train = 200\n'
    )
    from_file, _ = spec_from_command_line(str(grid_file), {}, {})
    flags = dict(zip(FLAGS[0:-2:2], FLAGS[1:-2:2], strict=True))
    training = {
        "dataset": "shapes",
        "arch": "conv28",
        "steps": "40",
        "batch_size": "16",
        "test_size": "64",
        "checkpoint_every": "10",
        "log_every": "10",
        "device": "cpu",
        "beta_norm": "0.01,1",
        "latent_dim": "2,4",
    }
    from_flags, names = spec_from_command_line(
        None, training, {"seeds": flags["--seeds"], "metrics": "mig", "n_train": 200}
    )
    assert names["latent_dim"] == "--latent"
    assert [p.config for p in expand_grid(from_file, tmp_path)] == [
        p.config for p in expand_grid(from_flags, tmp_path)
    ]
    # A flag overrides the file's key, here turning a swept key into a fixed one.
    narrowed, _ = spec_from_command_line(str(grid_file), {"latent_dim": "4"}, {})
    assert [p.name for p in expand_grid(narrowed, tmp_path)] == ["bn0.01-s0", "bn1-s0"]


# A grid with named variants (tests/test_sweep_variants.py): the bad ones below follow it.
VARIANT_GRID = 'dataset = "shapes"\nbeta_norm = [0.1, 1]\n'


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("beta_norm = [0.1, 1]\nlatnet_dim = [2, 4]\n", "unknown training key latnet_dim"),
        ("beta_norm = []\n", "beta_norm is an empty list"),
        ('latent_dim = [2, "four"]\n', "latent_dim must be an integer, got the string 'four'"),
        ("beta_norm = [0.1, 0.1]\n", "lists 0.1 twice"),
        ('out = "x"\nbeta_norm = [0.1, 1]\n', "out cannot be set in a grid"),
        ("latent_dim = [2, -1]\n", "grid point z_1-s0: latent_dim must be a positive integer"),
        ('arch = ["conv28", "convnext"]\n', "unknown architecture 'convnext'"),
        ("beta_norm = [0.1, 1]\n[sweep]\nseeds = 0\n", "seeds must be a positive integer"),
        ('beta_norm = [0.1, 1]\n[sweep]\nmetrics = ["mig", "nope"]\n', "unknown metric 'nope'"),
        ("beta_norm = [0.1, 1]\n[sweep]\nworkers = 2\n", "unknown sweep option workers"),
        ("beta_norm = [0.1, 1]\nseeds = 2\n", "seeds is a sweep option; put it in the [sweep] table"),
        (VARIANT_GRID + '[[variants]]\nname = "a"\n[[variants]]\nname = "a"\nlr = 0.001\n',
         "two variants are named a"),
        (VARIANT_GRID + '[[variants]]\nname = "a"\nlr_x = 1\n', "variant a sets unknown training key lr_x"),
        (VARIANT_GRID + '[[variants]]\nname = "a"\nbeta_norm = 1\n',
         "variant a sets beta_norm, which the sweep sets"),
        (VARIANT_GRID + '[[variants]]\nname = "a"\nseed = 3\n', "variant a sets seed, which the sweep sets"),
        (VARIANT_GRID + '[[variants]]\nname = "a"\nout = "x"\n', "variant a sets out, which the sweep sets"),
        (VARIANT_GRID + '[[variants]]\nlr = 0.001\n', "a variant's name must be letters, digits and . _ + -"),
        (VARIANT_GRID + '[[variants]]\nname = "a/b"\n', "got 'a/b'"),
        (VARIANT_GRID + '[[variants]]\nname = "a"\nlatent_dim = "x"\n',
         "latent_dim must be an integer, got the string 'x'"),
        (VARIANT_GRID + "variants = []\n", "variants is an empty list"),
        (VARIANT_GRID + 'variants = ["a", "b"]\n', "variants must be a list of tables"),
    ],
)
def test_a_bad_grid_is_a_one_line_error_before_anything_runs(tmp_path, capsys, grid, message):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(grid)
    code, out, err = run_cli(["sweep", grid_file, "--out", tmp_path / "sweep"], capsys)
    assert code == 1 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "sweep").exists()


def test_a_bad_flag_value_names_the_flag(tmp_path, capsys):
    code, _, err = run_cli(["sweep", "--latent", "2,x", "--out", tmp_path / "s"], capsys)
    assert code == 1 and "--latent must be an integer, got the string 'x'" in err, err
    code, _, err = run_cli(["sweep", "--out", tmp_path / "s"], capsys)
    assert code == 1 and "no grid given" in err


# -- running it ----------------------------------------------------------------------------


def test_every_point_becomes_a_complete_run_folder_and_a_row_of_results(finished, capsys):
    rows = state_rows(finished)
    assert list(rows) == NAMES
    for name, row in rows.items():
        assert (row["status"], row["attempts"], row["error"]) == ("done", 1, None)
        run = RunDir(finished / name)
        config = run.read_config()
        assert (config.beta_norm, config.latent_dim) == (
            row["config"]["beta_norm"],
            row["config"]["latent_dim"],
        )
        metrics = run.read_metrics()
        assert run.current_result("test")["loss"] == row["result"]["test"]["loss"]
        assert metrics["disentanglement"]["mig"] == row["result"]["metrics"]["mig"]
        assert metrics["disentanglement"]["settings"]["mig"]["n_train"] == 200
        assert row["result"]["derived"]["beta_norm"] == config.beta_norm
        assert row["result"]["started_from"] == 0
    with open(finished / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [line["run"] for line in table] == NAMES
    assert [float(line["test.loss"]) for line in table] == [
        rows[name]["result"]["test"]["loss"] for name in NAMES
    ]
    assert all(line["mig.mig"] for line in table)

    code, out, _ = run_cli(["results", finished], capsys)
    assert code == 0
    header, *lines = out.splitlines()[:5]
    assert header.split() == ["beta_norm", "latent_dim", "seed", "status", "loss", "recon", "kl", "mig"]
    assert [line.split()[:4] for line in lines] == [
        ["0.01", "2", "0", "done"],
        ["0.01", "4", "0", "done"],
        ["1", "2", "0", "done"],
        ["1", "4", "0", "done"],
    ]
    code, out, _ = run_cli(["results", finished, "--json"], capsys)
    assert [row["run"] for row in json.loads(out)] == NAMES
    # The run folders are ordinary ones: other commands work on them unchanged.
    code, out, err = run_cli(
        ["evaluate", finished / NAMES[0], "--metrics", "sap", "--n-train", "100", "--n-eval", "50"], capsys
    )
    assert code == 0, err


def test_started_again_on_a_finished_sweep_it_runs_nothing(finished, capsys):
    before = {name: (RunDir(finished / name).checkpoint_path.stat().st_mtime_ns) for name in NAMES}
    code, out, err = run_cli(["sweep", "--out", finished, "--no-progress"], capsys)
    assert code == 0, err
    assert "4 done, 0 failed" in out and "next: betavae results" in out
    assert {name: RunDir(finished / name).checkpoint_path.stat().st_mtime_ns for name in NAMES} == before
    assert [row["attempts"] for row in state_rows(finished).values()] == [1, 1, 1, 1]


def test_plot_writes_the_reports_figures(finished, capsys):
    code, out, err = run_cli(["plot", finished], capsys)
    assert code == 0, err
    written = {Path(line).name for line in out.splitlines()}
    assert {
        "loss_vs_beta_norm.png",
        "loss_vs_beta_norm.svg",
        "heatmap_mig.png",
        "heatmap_mig.svg",
        "recon_z2.png",
        "recon_z4.png",
    } <= written
    assert all((finished / "figures" / name).stat().st_size > 1000 for name in written)


def run_sweep_process(out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "betavae.cli", "sweep", *FLAGS, "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def checkpoint_step(run: Path) -> int:
    try:
        return RunDir(run).checkpoint_step()
    except (BetaVAEError, OSError, RuntimeError, EOFError):
        return 0  # not written yet


def holder_pid(run: Path) -> int | None:
    try:
        return int((run / ".lock").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def status_of(out: Path) -> dict[str, str]:
    try:
        with sqlite3.connect(out / "sweep.db", timeout=30) as db:
            return dict(db.execute("SELECT name, status FROM runs"))
    except sqlite3.Error:
        return {}


def test_killed_workers_ctrl_c_and_a_killed_sweep_lose_nothing_and_change_no_result(
    finished, tmp_path, capsys
):
    out = tmp_path / "killed"
    sweep = run_sweep_process(out)
    try:
        # A worker killed with SIGKILL mid-run: the sweep resumes that run from its checkpoint.
        first = out / NAMES[0]
        wait_until(
            sweep,
            lambda: 10 <= checkpoint_step(first) < 40 and holder_pid(first) is not None,
            "a first checkpoint of the first run",
        )
        os.kill(holder_pid(first), signal.SIGKILL)
        # A second sweep on the same folder is refused, naming the first one's pid.
        code, _, err = run_cli(["sweep", *FLAGS, "--out", out], capsys)
        assert code == 1 and f"is in use by process {sweep.pid} (betavae sweep)" in err, err
        # Ctrl-C (the terminal signals the whole process group): the running runs save a checkpoint and the
        # sweep stops with a line saying how to go on.
        wait_until(
            sweep,
            lambda: any(
                status_of(out).get(name) == "running" and checkpoint_step(out / name) >= 10
                for name in NAMES[1:]
            ),
            "a checkpoint of another run",
        )
        os.killpg(sweep.pid, signal.SIGINT)
        stdout, stderr = sweep.communicate(timeout=120)
        assert sweep.returncode == 130 and "continue with the same command" in stderr, stdout + stderr
        assert "running" not in status_of(out).values()
        # Started again, then killed with SIGKILL once a run is done and a later one is part-trained.
        sweep = run_sweep_process(out)
        wait_until(
            sweep,
            lambda: (
                "done" in status_of(out).values()
                and any(
                    status_of(out).get(name) == "running" and 10 <= checkpoint_step(out / name) < 40
                    for name in NAMES[1:]
                )
            ),
            "one run done and another cut off",
        )
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.wait()
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    rows = state_rows(out)
    done_before = {name for name, row in rows.items() if row["status"] == "done"}
    attempts = {name: rows[name]["attempts"] for name in done_before}
    # Its workers die with it (no orphan trains on into a folder the next sweep resumes).
    deadline = time.monotonic() + 30
    while any(holder_pid(out / name) and _alive(holder_pid(out / name)) for name in NAMES):
        assert time.monotonic() < deadline, "the killed sweep's workers exited"
        time.sleep(0.1)
    cut_off = {name: checkpoint_step(out / name) for name, row in rows.items() if row["status"] == "running"}
    assert done_before and cut_off

    code, stdout, err = run_cli(["sweep", *FLAGS, "--out", out, "--no-progress"], capsys)
    assert code == 0, stdout + err
    rows = state_rows(out)
    assert all(row["status"] == "done" for row in rows.values())
    assert {
        name: rows[name]["attempts"] for name in done_before
    } == attempts  # finished runs are not run again
    assert rows[NAMES[0]]["attempts"] >= 2
    # A cut-off run continues from the checkpoint it had (one of them had one), not from step 0.
    assert {name: rows[name]["result"]["started_from"] for name in cut_off} == cut_off
    assert max(cut_off.values()) >= 10
    assert outcomes(out) == outcomes(finished)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_a_failing_run_is_recorded_with_its_message_and_the_others_finish(tmp_path, capsys):
    out = tmp_path / "failing"
    spec = build_spec(
        {
            **TRAINING,
            "steps": 20,
            "latent_dim": 2,
            "beta_norm": 0.1,
            "lr": [5e-4, 1e30],
            "eval": ["mig"],
            "eval_every": 10,
            "eval_n_train": 200,
        },
        {"seeds": 1},
    )
    summary = run_sweep(spec, out, BackendOptions(workers=2), progress=False)
    assert summary.counts["done"] == 1 and summary.counts["failed"] == 1
    # The evaluations during training are shown as they come, one line each.
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("eval ")]
    assert [line.split(":")[0].split() for line in shown] == [
        ["eval", "lr0.0005-s0", "step", "10"],
        ["eval", "lr0.0005-s0", "step", "20"],
    ]
    rows = state_rows(out)
    assert rows["lr0.0005-s0"]["status"] == "done"
    failed = rows["lr1e+30-s0"]
    assert failed["status"] == "failed" and "training diverged" in failed["error"]
    # Started again it leaves the failure alone; --retry-failed runs it again (and it fails again).
    run_sweep(spec, out, BackendOptions(workers=2), progress=False)
    assert state_rows(out)["lr1e+30-s0"]["attempts"] == 1
    code, stdout, _ = run_cli(["sweep", "--out", out, "--retry-failed", "--no-progress"], capsys)
    assert code == 1 and "1 done, 1 failed" in stdout
    assert state_rows(out)["lr1e+30-s0"]["attempts"] == 2


def test_more_steps_continue_finished_runs_from_their_checkpoints(finished, tmp_path):
    out = tmp_path / "longer"
    shutil.copytree(finished, out)
    run_sweep(tiny_spec(steps=50), out, BackendOptions(workers=2), progress=False)
    rows = state_rows(out)
    assert {row["result"]["started_from"] for row in rows.values()} == {40}
    assert {RunDir(out / name).checkpoint_step() for name in NAMES} == {50}
    assert {row["result"]["step"] for row in rows.values()} == {50}


def test_a_grid_that_changes_what_a_run_is_needs_another_folder(finished, tmp_path, capsys):
    out = tmp_path / "changed"
    shutil.copytree(finished, out)
    code, _, err = run_cli(["sweep", *FLAGS, "--recon", "gaussian", "--out", out], capsys)
    assert code == 1 and "already holds run bn0.01-z2-s0 made with another recon" in err, err


@pytest.mark.slow
def test_a_workers_environment_is_the_sweeps_when_it_starts_not_the_first_sweeps(tmp_path, monkeypatch,
                                                                                  mnist_dir):
    """The local backend forks its workers from a server started by the process's first sweep; a
    ``$BETAVAE_DATA_DIR`` set after that (as ``reproduce`` does for MNIST) must reach later runs."""
    monkeypatch.delenv("BETAVAE_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no MNIST in a user cache either
    one = {**TRAINING, "steps": 2, "beta_norm": 1.0, "latent_dim": 2}
    first = run_sweep(build_spec(one, {"seeds": 1}), tmp_path / "shapes", BackendOptions(workers=1),
                      progress=False)
    assert first.counts["done"] == 1
    monkeypatch.setenv("BETAVAE_DATA_DIR", str(mnist_dir))
    mnist = {**one, "dataset": "mnist"}
    second = run_sweep(build_spec(mnist, {"seeds": 1}), tmp_path / "mnist", BackendOptions(workers=1),
                       progress=False)
    assert second.counts == {**second.counts, "done": 1, "failed": 0}


@pytest.mark.slow
def test_one_local_worker_serves_run_after_run_in_one_process(tmp_path):
    """Workers are long-lived: three runs on one worker are done by one process (which keeps the set
    loaded between them), each as it would be alone, and the sweep ends with no worker left."""
    from betavae.studies.local import LocalBackend
    from betavae.studies.worker import task_for

    spec = build_spec({**TRAINING, "steps": 2, "beta_norm": [0.01, 0.1, 1.0], "latent_dim": 2}, {"seeds": 1})
    backend = LocalBackend(1, 1, [None])
    outcomes = []
    try:
        for point in expand_grid(spec, tmp_path):
            backend.submit(task_for(point.name, point.config.to_dict(), [], 0, {}))
            assert backend.running == [point.name]
            ended = []
            while not ended:
                ended = backend.wait(1.0)
            outcomes += ended
    finally:
        backend.close()
    assert [outcome["status"] for outcome in outcomes] == ["done"] * 3
    assert len({outcome["process"] for outcome in outcomes}) == 1
    assert backend.running == [] and backend._slots == [None]
    assert all(outcome["result"]["timings"]["steps"] > 0 for outcome in outcomes)


@pytest.mark.slow
def test_a_studys_sweeps_share_their_workers_inside_keep_workers(tmp_path):
    """One sweep after another inside keep_workers(): the second is served by the first's worker
    process, which ends when the context closes; outside it, every sweep ends its own."""
    from betavae.studies import local

    def sweep(out: Path, beta_norm: float):
        spec = build_spec({**TRAINING, "steps": 2, "latent_dim": 2, "beta_norm": [beta_norm]}, {"seeds": 1})
        summary = run_sweep(spec, out, BackendOptions(workers=1), progress=False)
        assert summary.counts["done"] == 1

    with local.keep_workers():
        sweep(tmp_path / "first", 0.1)
        (backend,) = local._kept.values()
        (worker,) = [worker for worker in backend._slots if worker is not None]
        assert worker.process.is_alive() and worker.running is None
        sweep(tmp_path / "second", 1.0)
        assert [other for other in backend._slots if other is not None] == [worker]
        assert worker.process.is_alive()
    worker.process.join(timeout=10)
    assert not worker.process.is_alive() and local._kept == {}
    sweep(tmp_path / "alone", 0.5)
    assert local._kept == {}
