"""benchmarks/time_to_disentangle.py: its runs survive interruption and continue to more steps.

At a toy size: 4 or 8 steps, MIG on 300 points every 2 steps, the final loss on 200 held-out images.
The script runs once as users run it, in a child process stopped with Ctrl-C; its resume rules are
driven through its ``main()`` in this process, where a child process would add only its start (the
runs train in the sweep's worker processes either way). That a resumed run trains and scores as one
that never stopped is training's own behaviour, pinned in test_eval_during_training.py; here, that
the benchmark's runs resume from their checkpoints, their clocks going on from there.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tests.runfolders import state_rows

from betavae.runs import RunDir
from marks import slow_fixture
from processes import wait_until

pytestmark = pytest.mark.slow  # every test trains, or runs the benchmark in a child process

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "time_to_disentangle.py"
TOY = ["--eval-every", "2", "--mig-points", "300", "--test-size", "200"]


@pytest.fixture(scope="module")
def benchmark() -> ModuleType:
    """The benchmark script as a module, to call its ``main()`` here."""
    spec = importlib.util.spec_from_file_location("time_to_disentangle", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def invoke(benchmark: ModuleType, capsys, out: Path, *flags: str) -> tuple[int, str, str]:
    """``time_to_disentangle.py`` at the toy size with ``flags``: its exit code, stdout and stderr."""
    try:
        benchmark.main([*TOY, "--out", str(out), *flags])
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def evaluations(out: Path) -> list[dict]:
    return json.loads((out / "time_to_disentangle.json").read_text())["variants"][0]["evaluations"]


@pytest.fixture(scope="module")
@slow_fixture
def four_steps(benchmark, tmp_path_factory) -> Path:
    """A benchmark folder holding the default variant trained for 4 steps; tests copy it or only read it."""
    out = tmp_path_factory.mktemp("benchmark") / "four"
    benchmark.main([*TOY, "--out", str(out), "--steps", "4"])
    return out


def test_a_resumed_benchmark_run_goes_on_from_its_checkpoint_and_clock(benchmark, four_steps, tmp_path,
                                                                        capsys):
    out = shutil.copytree(four_steps, tmp_path / "resumed")
    run = RunDir(out / "default-s0")
    section = run.read_metrics()["during_training"]
    before = section["entries"]
    assert [e["step"] for e in before] == [2, 4]
    # As if killed while evaluating step 4: its checkpoint written, its evaluation missing.
    run.update_metrics("during_training", {**section, "entries": before[:1]}, step=2)

    code, stdout, err = invoke(benchmark, capsys, out, "--steps", "8", "--resume")
    assert code == 0, err
    assert run.read_config().test_size == 200  # --test-size reaches the runs
    assert "default-s0 resumed at step 4" in stdout
    assert state_rows(out)["default-s0"]["result"]["started_from"] == 4  # not trained again from step 0

    got = evaluations(out)
    assert [e["step"] for e in got] == [2, 4, 6, 8]
    assert got[0]["wall_s"] == before[0]["train_seconds"] and got[0]["mig"] == before[0]["mig"]["mig"]
    # The evaluation cut short is made first, of the same weights on the same sample, at the time it was due.
    assert got[1]["mig"] == pytest.approx(before[1]["mig"]["mig"], rel=1e-5)
    walls = [e["wall_s"] for e in got]
    assert walls[1] == pytest.approx(before[1]["train_seconds"])
    assert walls == sorted(walls) and walls[2] > walls[1]  # the clock went on from where it stopped
    assert run.load_checkpoint()["train_seconds"] == walls[-1]


def test_resume_is_asked_for_and_refuses_runs_scored_on_another_sample(benchmark, four_steps, capsys):
    checkpoint = (four_steps / "default-s0" / "checkpoint.pt").stat().st_mtime_ns
    refused = {
        ("--steps", "8"): "already holds a run; pass --resume to continue it, --overwrite to replace it",
        ("--steps", "8", "--resume", "--mig-points", "500"): "made with another --mig-points (300, not 500)",
        ("--steps", "2", "--resume"): "trained 4 steps, more than --steps 2",
    }
    for flags, message in refused.items():
        code, stdout, err = invoke(benchmark, capsys, four_steps, *flags)
        assert code == 2 and message in err and not stdout, (flags, stdout, err)
    assert (four_steps / "default-s0" / "checkpoint.pt").stat().st_mtime_ns == checkpoint


def test_ctrl_c_saves_the_clock_at_the_checkpoint_and_says_how_to_go_on(tmp_path):
    command = [sys.executable, str(SCRIPT), *TOY, "--out", str(tmp_path), "--steps", "100000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = RunDir(tmp_path / "default-s0")
    wait_until(process, lambda: bool(run.during_training()), "no evaluation was recorded")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "continue with the same command and --resume" in stdout
    checkpoint = run.load_checkpoint()
    assert checkpoint["train_seconds"] > 0
    # time_to_disentangle.json holds what the run recorded, up to its checkpoint
    assert 0 < evaluations(tmp_path)[-1]["step"] <= checkpoint["step"]
