"""benchmarks/time_to_disentangle.py: its runs survive interruption and continue to more steps.

The benchmark is run as users run it (a child process), at a toy size: 4 or 8 steps, MIG on
300 points every 2 steps.
"""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from betavae.runs import RunDir
from processes import wait_until

pytestmark = pytest.mark.slow  # every test runs the benchmark in a child process

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "time_to_disentangle.py"


def command(out: Path, *flags: str) -> list[str]:
    return [
        sys.executable, str(SCRIPT), "--eval-every", "2", "--mig-points", "300", "--out", str(out), *flags,
    ]


def benchmark(out: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(out, *flags), capture_output=True, text=True, timeout=300)


def evaluations(out: Path) -> list[dict]:
    return json.loads((out / "time_to_disentangle.json").read_text())["variants"][0]["evaluations"]


def test_resumed_benchmark_run_scores_as_one_that_never_stopped(tmp_path):
    # The uninterrupted run goes beside the interrupted one (its child processes mostly wait on
    # imports and process starts, so two at a time take little longer than one).
    straight = subprocess.Popen(command(tmp_path / "straight", "--steps", "8"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = benchmark(tmp_path / "resumed", "--steps", "4")
    assert first.returncode == 0, first.stderr
    run = RunDir(tmp_path / "resumed" / "default-s0")
    section = run.read_metrics()["during_training"]
    assert [e["step"] for e in section["entries"]] == [2, 4]
    wall_at_4 = section["entries"][-1]["train_seconds"]
    # As if killed while evaluating step 4: its checkpoint written, its evaluation missing.
    section["entries"].pop()
    run.update_metrics("during_training", section, step=2)

    again = benchmark(tmp_path / "resumed", "--steps", "8")
    assert again.returncode != 0 and "--resume" in again.stderr

    resumed = benchmark(tmp_path / "resumed", "--steps", "8", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at step 4" in resumed.stdout
    _, straight_err = straight.communicate(timeout=300)
    assert straight.returncode == 0, straight_err

    got, expected = evaluations(tmp_path / "resumed"), evaluations(tmp_path / "straight")
    assert [e["step"] for e in got] == [2, 4, 6, 8]
    assert [e["mig"] for e in got] == pytest.approx([e["mig"] for e in expected], rel=1e-5)
    walls = [e["wall_s"] for e in got]
    assert walls[1] == pytest.approx(wall_at_4)  # the cut-short evaluation keeps the time it was due at
    assert walls == sorted(walls) and walls[2] > wall_at_4  # the clock went on from where it stopped
    assert run.load_checkpoint()["train_seconds"] == walls[-1]


def test_resume_refuses_runs_scored_on_another_sample(tmp_path):
    assert benchmark(tmp_path, "--steps", "2").returncode == 0
    refused = (("--steps", "4", "--resume", "--mig-points", "500"), ("--steps", "1", "--resume"))
    other, fewer = (subprocess.Popen(command(tmp_path, *flags), stdout=subprocess.PIPE,  # both at once:
                                     stderr=subprocess.PIPE, text=True)  # each is mostly its imports
                    for flags in refused)
    other_err, fewer_err = other.communicate(timeout=120)[1], fewer.communicate(timeout=120)[1]
    assert other.returncode != 0 and "mig_points 300, not 500" in other_err
    assert fewer.returncode != 0 and "more than --steps 1" in fewer_err


def test_ctrl_c_saves_the_clock_at_the_checkpoint_and_says_how_to_go_on(tmp_path):
    process = subprocess.Popen(
        command(tmp_path, "--steps", "100000"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run = RunDir(tmp_path / "default-s0")
    wait_until(
        process,
        lambda: run.metrics_path.exists() and "during_training" in run.read_metrics(),
        "no evaluation was recorded",
    )
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "continue with the same command and --resume" in stdout
    checkpoint = run.load_checkpoint()
    assert checkpoint["train_seconds"] > 0
    # time_to_disentangle.json holds what the run recorded
    assert evaluations(tmp_path)[-1]["step"] <= checkpoint["step"]
