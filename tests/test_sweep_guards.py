"""What ``betavae sweep``, ``results`` and ``plot`` say of a sweep folder in an unusual state.

Flags given to an existing sweep, runs whose driver was killed, grids too large to run, a
sweep state that cannot be read: each is said in one line that says what to do.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.commands import run_cli
from tests.runfolders import state_rows

from betavae.runs import RunDir
from betavae.studies.grid import build_spec, expand_grid
from betavae.studies.state import STATE_FILE, SweepState, stored_spec

# Two runs of two steps each: the smallest sweep that trains.
TINY_FLAGS = [
    "--dataset", "shapes", "--arch", "conv28", "--steps", "2", "--batch-size", "8", "--test-size", "16",
    "--checkpoint-every", "2", "--log-every", "1", "--device", "cpu", "--beta-norm", "0.01,1",
]
RUN_FLAGS = ["--workers", "1", "--no-progress"]
TINY = {"dataset": "shapes", "arch": "conv28", "steps": 2, "batch_size": 8, "test_size": 16, "device": "cpu",
        "beta_norm": [0.01, 1.0]}


def queued_sweep(out: Path) -> list[str]:
    """A sweep folder whose state holds the two points of :data:`TINY`, none run; their names."""
    spec = build_spec(TINY, {})
    points = expand_grid(spec, out)
    out.mkdir(parents=True)
    with RunDir(out).lock("betavae sweep"), SweepState(out) as state:
        state.sync(points, spec)
    return [point.name for point in points]


@pytest.mark.slow
def test_flags_given_to_an_existing_sweep_extend_its_grid_or_are_refused(tmp_path, capsys):
    out = tmp_path / "sweep"
    code, stdout, err = run_cli(["sweep", *TINY_FLAGS, *RUN_FLAGS, "--out", out], capsys)
    assert code == 0, stdout + err
    assert "grid: 2 runs (2 beta_norm × 1 seed)" in stdout
    names = ["bn0.01-s0", "bn1-s0"]
    assert list(state_rows(out)) == names

    # A resumable key (more steps) applies to every run of the stored grid: no run is added.
    code, stdout, err = run_cli(["sweep", "--out", out, "--steps", "4", *RUN_FLAGS], capsys)
    assert code == 0, stdout + err
    assert "steps 2 → 4 for every run" in stdout and "2 done, 0 failed" in stdout
    rows = state_rows(out)
    assert list(rows) == names
    assert {name: (row["status"], row["result"]["step"]) for name, row in rows.items()} == {
        name: ("done", 4) for name in names
    }
    stored = stored_spec(out)
    assert (stored.fixed["steps"], stored.swept) == (4, {"beta_norm": [0.01, 1.0]})

    # A value given for a swept key is added to its axis, and the command says so.
    code, stdout, err = run_cli(["sweep", "--out", out, "--beta-norm", "0.1", *RUN_FLAGS], capsys)
    assert code == 0, stdout + err
    assert "extends the grid: beta_norm + 0.1 (1 new run beside the 2 it had)" in stdout
    rows = state_rows(out)
    assert list(rows) == [*names, "bn0.1-s0"]
    assert rows["bn0.1-s0"]["config"]["steps"] == 4 and rows["bn0.1-s0"]["status"] == "done"

    # What would change the runs it holds is refused in one line naming the key, its value and the new one.
    refused = {
        ("--recon", "gaussian"): f"{out} already holds run bn0.01-s0 made with another recon (bernoulli, not "
                                 f"gaussian); a grid that changes what its runs are needs another --out",
        ("--latent", "10,20"): "--latent 10,20 would sweep latent_dim, which every run of",
        ("--steps", "3"): "--steps 3 is fewer than the 4 steps",
        ("--beta", "4"): "gives β as beta_norm",
        ("--beta-norm", "1"): "--beta-norm 1 would shrink the grid of",
    }
    for (flag, value), message in refused.items():
        code, stdout, err = run_cli(["sweep", "--out", out, flag, value, *RUN_FLAGS], capsys)
        assert code == 1 and message in err and err.count("\n") == 1, (flag, err)
    assert list(state_rows(out)) == [*names, "bn0.1-s0"]
    assert stored_spec(out).swept == {"beta_norm": [0.01, 1.0, 0.1]}
    # Its own values in another order continue it as it is.
    code, stdout, err = run_cli(["sweep", "--out", out, "--beta-norm", "0.1,1,0.01", *RUN_FLAGS], capsys)
    assert code == 0 and "extends" not in stdout and "3 done" in stdout, err
    assert stored_spec(out).swept == {"beta_norm": [0.01, 1.0, 0.1]}


@pytest.mark.slow
def test_the_metrics_batch_reaches_the_beta_vae_score_and_a_new_one_measures_again_without_training(
    tmp_path, capsys
):
    out = tmp_path / "sweep"
    metrics = ["--metrics", "beta_vae", "--n-train", "4", "--n-eval", "2"]
    code, stdout, err = run_cli(["sweep", *TINY_FLAGS, *metrics, "--metric-batch-size", "2", *RUN_FLAGS,
                                 "--out", out], capsys)
    assert code == 0, stdout + err

    def measured() -> dict[str, tuple[int, int]]:  # by run: the batch its score averaged, its checkpoint
        return {name: (RunDir(out / name).read_metrics()["disentanglement"]["settings"]["beta_vae"]
                       ["batch_size"], (out / name / "checkpoint.pt").stat().st_mtime_ns)
                for name in state_rows(out)}

    first = measured()
    assert {batch for batch, _ in first.values()} == {2} and stored_spec(out).metric_batch_size == 2
    code, stdout, err = run_cli(["sweep", "--out", out, "--metric-batch-size", "3", *RUN_FLAGS], capsys)
    assert code == 0, stdout + err
    assert "metric_batch_size 2 → 3 (finished runs are measured where they lack it)" in stdout
    # Scored again, not trained again.
    assert measured() == {name: (3, checkpoint) for name, (_, checkpoint) in first.items()}
    code, stdout, err = run_cli(["sweep", "--out", out, *RUN_FLAGS], capsys)  # continued as it is
    assert code == 0 and "→" not in stdout and stored_spec(out).metric_batch_size == 3, err
    code, _, err = run_cli(["sweep", "--out", out, "--metric-batch-size", "0", *RUN_FLAGS], capsys)
    assert code == 1 and "metric_batch_size must be a positive integer, got 0" in err and err.count("\n") == 1


def test_runs_of_a_killed_sweep_show_as_cut_off_with_how_to_resume(tmp_path, capsys):
    out = tmp_path / "sweep"
    names = queued_sweep(out)
    with SweepState(out) as state:
        for name in names:
            state.mark_running(name)  # as a sweep driver killed with kill -9 leaves them

    code, stdout, err = run_cli(["results", out], capsys)
    assert code == 0, err
    statuses = [line.split()[2:4] for line in stdout.splitlines()[1:3]]
    assert statuses == [["cut", "off"], ["cut", "off"]], stdout
    resume = f"2 runs cut off (the sweep running them was stopped); resume with betavae sweep --out {out}"
    assert resume in err
    code, stdout, err = run_cli(["plot", out], capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert "no run has finished (2 cut off)" in err and f"resume with betavae sweep --out {out}" in err

    # While a driver holds the folder, its runs are running.
    with RunDir(out).lock("betavae sweep"):
        code, stdout, err = run_cli(["results", out], capsys)
    assert code == 0 and "cut off" not in stdout + err
    assert [line.split()[2] for line in stdout.splitlines()[1:3]] == ["running", "running"]


def test_a_grid_states_its_size_first_and_a_huge_one_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "sweep"
    beta_norms = ",".join(f"{0.001 * (index + 1):g}" for index in range(100))
    # The first latent size is invalid: a grid that got past its size check fails on its first point, so
    # no test trains thousands of runs.
    latents = ",".join(str(size) for size in range(-1, 101) if size)
    grid = ["--dataset", "shapes", "--device", "cpu", "--beta-norm", beta_norms, "--latent", latents,
            "--out", out]
    started = time.perf_counter()
    code, stdout, err = run_cli(["sweep", *grid, "--seeds", "2"], capsys)
    assert code == 1 and err.count("\n") == 1 and not stdout, stdout + err
    assert ("the grid has 20,200 runs (100 beta_norm × 101 latent_dim × 2 seeds), more than 10,000; sweep "
            "fewer values, or pass --large-grid to run them all") in err
    # Seeds are counted, not listed: a count no machine could hold is one line too.
    code, _, err = run_cli(["sweep", *grid, "--seeds", "5000000000"], capsys)
    assert code == 1 and err.count("\n") == 1 and "seeds 5,000,000,000 is more runs than" in err, err
    code, _, err = run_cli(["sweep", *grid, "--seeds", "100", "--large-grid"], capsys)
    assert code == 1 and "1,010,000 runs" in err and "more than one sweep holds (1,000,000)" in err, err
    assert time.perf_counter() - started < 10
    assert not out.exists()
    # Confirmed, the size is said before the grid's points are made and checked.
    code, stdout, err = run_cli(["sweep", *grid, "--large-grid"], capsys)
    assert stdout == "grid: 10,100 runs (100 beta_norm × 101 latent_dim × 1 seed)\n", stdout
    assert code == 1 and "grid point bn0.001-z_1-s0: --latent must be a positive integer" in err, err
    assert not out.exists()


@pytest.mark.parametrize("content", [b"", b"not a database " * 100], ids=["empty", "corrupt"])
def test_an_empty_or_corrupt_sweep_state_is_unreadable_and_left_alone(tmp_path, capsys, content):
    out = tmp_path / "sweep"
    queued_sweep(out)
    (out / "bn0.01-s0").mkdir()
    (out / STATE_FILE).write_bytes(content)
    for command in (["results", out], ["plot", out], ["sweep", "--out", out, "--no-progress"]):
        code, stdout, err = run_cli(command, capsys)
        assert code == 1 and err.count("\n") == 1, (command, stdout, err)
        assert f"{out / STATE_FILE} is an unreadable sweep state" in err and "move it away" in err, err
    assert (out / STATE_FILE).read_bytes() == content
