"""No command overwrites or deletes what it did not write (issue 32): each data-loss case found by a
hostile tester, and one property over every command that writes."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.commands import run_cli
from tests.runfolders import ACTIVE_SHAPES
from tests.test_sweep import tiny_spec

from betavae import files
from betavae.studies.sweep import BackendOptions, run_sweep
from betavae.study import runner
from marks import slow_fixture

# Names of files that some command writes, and a run folder's own: as a user's files they must survive.
FOREIGN_NAMES = (
    "notes.txt", "model.json", "encoder.onnx", "demo.json", "index.html", "report.md", "report.html",
    "measurements.json", "transfer.csv", "transfer.svg", "transfer.txt", "results.csv", "results.json",
    "loss_vs_beta_norm.png", "reconstructions.png", "show-recon.png", "config.toml", "checkpoint.pt",
    "log.jsonl", "metrics.json",
)


@pytest.fixture(scope="module")
@slow_fixture
def trained(tmp_path_factory, trained_runs) -> Path:
    return trained_runs.copy(ACTIVE_SHAPES, tmp_path_factory.mktemp("ownership") / "run")


@pytest.fixture(scope="module")
@slow_fixture
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ownership") / "sweep"
    run_sweep(tiny_spec(steps=10, beta_norm=[0.1], latent_dim=[3]), out, BackendOptions(workers=1),
              progress=False)
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the lock (whose text names its last holder) and the mark."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*")
            if path.is_file() and path.name not in (".lock", files.MARKER)}


def refused_in_one_line(code: int, err: str) -> bool:
    return code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def assert_refused_or_untouched(args: list[object], watched: Path, capsys) -> tuple[int, str]:
    """Run ``betavae ARGS``: it refuses in one line, or every byte under ``watched`` that was there stays."""
    before = snapshot(watched)
    code, _, err = run_cli(args, capsys)
    after = snapshot(watched)
    lost = sorted(name for name, data in before.items() if after.get(name) != data)
    assert not lost, f"betavae {' '.join(map(str, args))} changed {lost} (exit {code}: {err.strip()})"
    assert code == 0 or refused_in_one_line(code, err), err
    return code, err


# Every command that writes, given its output location.
COMMANDS: dict[str, Callable[[Path, Path, Path], list[object]]] = {
    "train": lambda out, run, sweep: [
        "train", "--dataset", "shapes", "--latent", "3", "--steps", "2", "--batch-size", "8",
        "--test-size", "32", "--no-progress", "--device", "cpu", "--out", out],
    "show recon": lambda out, run, sweep: ["show", "recon", run, "--n", "2", "--out", out],
    "export": lambda out, run, sweep: ["export", run, "--images", "2", "--out", out],
    "demo --static": lambda out, run, sweep: ["demo", run, "--images", "2", "--static", out],
    "transfer": lambda out, run, sweep: ["transfer", run, "--labels", "10", "--repeats", "1", "--baselines",
                                         "none", "--task", "factor:scale", "--out", out],
    "plot": lambda out, run, sweep: ["plot", sweep, "--no-recon", "--out", out],
    "sweep": lambda out, run, sweep: ["sweep", "--dataset", "shapes", "--steps", "2", "--batch-size", "8",
                                      "--test-size", "32", "--workers", "1", "--no-progress", "--out", out],
    "reproduce": lambda out, run, sweep: ["reproduce", "--scale", "smoke", "--no-download", "--no-progress",
                                          "--out", out],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_writing_command_refuses_or_leaves_every_foreign_byte(command, trained, finished, tmp_path,
                                                                     capsys):
    """The property: whatever foreign files the output location holds, and whatever run folder's own
    file it names, the command refuses in one line or leaves every byte that was there unchanged."""
    make_args = COMMANDS[command]
    rng = random.Random(f"{command}-32")
    for trial in range(3):
        out = tmp_path / f"users-{trial}"
        out.mkdir()
        for name in rng.sample(FOREIGN_NAMES, rng.randint(1, 6)):
            (out / name).write_bytes(os.urandom(rng.randint(0, 64)))
        target = out / "reconstructions.png" if command == "show recon" else out
        if command == "show recon":
            (out / "reconstructions.png").write_bytes(b"the user's figure")
        assert_refused_or_untouched(make_args(target, trained, finished), out, capsys)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    for own in ("checkpoint.pt", "config.toml", "log.jsonl", "metrics.json", "."):
        code, err = assert_refused_or_untouched(make_args(run / own, trained, finished), run, capsys)
        if own != "." or command not in ("transfer", "show recon"):  # those two may add their files to a run
            assert code != 0, f"{command} wrote over {own} of a run folder"


def test_reproduce_refuses_a_users_folder_before_any_work(tmp_path, capsys):
    (tmp_path / "report.md").write_text("# my report")
    (tmp_path / "measurements.json").write_text('{"mine": 1}')
    code, out, err = run_cli(["reproduce", "--scale", "smoke", "--out", tmp_path, "--no-download"], capsys)
    assert refused_in_one_line(code, err) and "(measurements.json and 1 more)" in err and out == ""
    assert (tmp_path / "report.md").read_text() == "# my report"
    assert (tmp_path / "measurements.json").read_text() == '{"mine": 1}'
    assert sorted(path.name for path in tmp_path.iterdir()) == ["measurements.json", "report.md"]


def test_a_study_folder_is_refused_at_another_scale(tmp_path, capsys):
    files.claim_folder(tmp_path / "study", runner.KIND, extra={"scale": "smoke"})  # as reproduce marks it
    code, out, err = run_cli(["reproduce", "--scale", "small", "--out", tmp_path / "study"], capsys)
    assert refused_in_one_line(code, err)
    assert "with scale smoke, not small" in err
    assert sorted(path.name for path in (tmp_path / "study").iterdir()) == [files.MARKER]


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_bad_workers_are_refused_before_anything_is_printed_or_created(workers, tmp_path, capsys):
    for args in (["reproduce", "--scale", "smoke", "--out", tmp_path / "study"],
                 ["sweep", "--dataset", "shapes", "--out", tmp_path / "sweep"]):
        code, out, err = run_cli([*args, "--workers", workers], capsys)
        assert refused_in_one_line(code, err) and "--workers must be a positive integer" in err
        assert out == "" and list(tmp_path.iterdir()) == []


def test_export_refuses_a_users_model_json_and_replaces_its_own_export(trained, tmp_path, capsys):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "model.json").write_text('{"mine": true}')
    code, _, err = run_cli(["export", trained, "--images", "2", "--out", tmp_path / "site"], capsys)
    assert refused_in_one_line(code, err) and "did not write (model.json)" in err
    assert (tmp_path / "site" / "model.json").read_text() == '{"mine": true}'
    for _ in range(2):  # a second export replaces the first: the folder is export's own
        code, _, err = run_cli(["export", trained, "--images", "2", "--out", tmp_path / "mine"], capsys)
        assert code == 0, err
    assert files.read_mark(tmp_path / "mine").kind == "betavae export"


def test_demo_of_a_run_still_training_says_so_instead_of_advising_resume(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "metrics.json").unlink()  # its held-out KL is written when training finishes
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, f'{os.getpid()} betavae train'.encode())\nprint('held', flush=True)\ntime.sleep(60)",
         str(run / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run_cli(["demo", run, "--static", tmp_path / "site"], capsys)
    finally:
        holder.kill()
        holder.wait()
    assert refused_in_one_line(code, err)
    assert f"in use by process {holder.pid} (betavae train)" in err and "--resume" not in err
    assert not (tmp_path / "site").exists()
