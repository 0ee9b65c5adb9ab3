"""The run folder never lies and never loses work: its lock, what training may delete, checkpoints
that are always whole and finite, results tagged with their weights, and one-line errors for faults."""

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from betavae.config import TrainConfig, read_toml, to_toml
from betavae.errors import BetaVAEError
from betavae.files import atomic_write_text
from betavae.runs import RunDir, load_model
from betavae.training.faults import CheckpointNotWritten, TrainingDiverged, TrainingInterrupted
from betavae.training.loop import train
from commands import run_cli
from marks import slow_fixture
from processes import locked_by_another_process, wait_until
from runfolders import assert_same_weights, copy_run, untrained_run


def tiny_config(out, **changes) -> TrainConfig:
    settings = dict(dataset="shapes", arch="conv28", latent_dim=3, beta=1.0, steps=4, batch_size=8,
                    checkpoint_every=2, log_every=2, test_size=100, seed=0, out=str(out), device="cpu")
    settings.update(changes)
    return TrainConfig(**settings)


@pytest.mark.slow
def test_the_tests_untrained_run_folder_is_what_train_leaves_before_its_first_step(tmp_path):
    """tests/runfolders.untrained_run stands in for a run in tests that need a folder: it must be one
    train() takes up as its own, resuming into exactly the run a fresh training makes."""
    untrained = RunDir(untrained_run(tiny_config(None), tmp_path / "untrained"))
    assert untrained.checkpoint_step() == 0 and untrained.read_config() == tiny_config(untrained.path)
    assert load_model(untrained.path).latent_dim == 3
    train(tiny_config(untrained.path), resume=True, progress=False)
    train(tiny_config(tmp_path / "fresh"), progress=False)
    fresh = RunDir(tmp_path / "fresh")
    assert_same_weights(untrained.load_checkpoint()["model"], fresh.load_checkpoint()["model"])


def one_line_error(capsys, args, code=1) -> str:
    exit_code, _, err = run_cli(args, capsys)
    assert exit_code == code, err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def tiny_flags(out, steps=4):
    return [
        "train", "--dataset", "shapes", "--arch", "conv28", "--latent", "3", "--beta", "1", "--steps",
        str(steps), "--batch-size", "8", "--test-size", "100", "--checkpoint-every", "2", "--log-every", "2",
        "--device", "cpu", "--no-progress", "--out", str(out),
    ]


def log_entries(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]


def without_timing(entries: list[dict]) -> list[dict]:
    return [{key: value for key, value in entry.items() if key != "images_per_s"} for entry in entries]


def temporaries(folder) -> list[str]:
    return sorted(path.name for path in Path(folder).glob(".*.tmp"))


@pytest.fixture(scope="module")
@slow_fixture
def trained(tmp_path_factory) -> Path:
    """A finished 4-step run, copied by tests that change it."""
    out = tmp_path_factory.mktemp("trained") / "run"
    train(tiny_config(out), progress=False)
    return out


@contextmanager
def mounted_tmpfs(folder: Path, options: str):
    """A small real filesystem (full or read-only faults are real ones); skipped where mounting is
    not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'}); this fault needs one"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# -- data loss -------------------------------------------------------------------------------


def test_a_new_run_refuses_a_folder_holding_run_files_that_are_not_its_own(tmp_path, capsys):
    (tmp_path / "u" / "tensorboard").mkdir(parents=True)
    (tmp_path / "u" / "tensorboard" / "mine").write_text("keep me")
    err = one_line_error(capsys, tiny_flags(tmp_path / "u"))
    assert "did not write" in err and "tensorboard/mine" in err
    assert (tmp_path / "u" / "tensorboard" / "mine").read_text() == "keep me"
    assert not (tmp_path / "u" / "config.toml").exists()


def test_a_new_run_refuses_a_folder_of_the_users_own_files(tmp_path, capsys):
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "reconstructions.png").write_bytes(b"my figure")
    err = one_line_error(capsys, tiny_flags(tmp_path / "u"))
    assert "already holds files that betavae train did not write (reconstructions.png)" in err
    assert (tmp_path / "u" / "reconstructions.png").read_bytes() == b"my figure"
    assert sorted(path.name for path in (tmp_path / "u").iterdir()) == ["reconstructions.png"]


def test_a_new_run_clears_only_the_log_and_curves_an_unfinished_attempt_wrote(tmp_path, trained):
    run_dir = copy_run(trained, tmp_path / "run")
    (run_dir / "checkpoint.pt").unlink()  # an attempt that died before its first checkpoint
    (run_dir / "metrics.json").unlink()
    old_events = sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert old_events
    (run_dir / "tensorboard" / "mine").write_text("keep me")
    (run_dir / "notes.txt").write_text("mine too")
    with (run_dir / "log.jsonl").open("a") as log:
        log.write('{"step": 99, "loss": 1.0}\n')
    train(tiny_config(run_dir), progress=False)
    assert (run_dir / "tensorboard" / "mine").read_text() == "keep me"
    assert (run_dir / "notes.txt").read_text() == "mine too"
    assert not any(path.exists() for path in old_events)
    assert [entry["step"] for entry in log_entries(run_dir)] == [2, 4]


def test_a_second_writer_gets_one_line_naming_the_holder_and_a_killed_holder_leaves_no_lock(
    tmp_path, trained, capsys
):
    run_dir = copy_run(trained, tmp_path / "run")
    log_before = (run_dir / "log.jsonl").read_text()
    with locked_by_another_process(run_dir) as pid:
        err = one_line_error(capsys, ["train", "--out", run_dir, "--resume", "--steps", "6", "--no-progress"])
        assert f"in use by process {pid} (betavae train)" in err
        assert (run_dir / "log.jsonl").read_text() == log_before
        assert RunDir(run_dir).checkpoint_step() == 4
    # the holder was killed with SIGKILL: no stale lock
    code, _, err = run_cli(["train", "--out", run_dir, "--resume", "--steps", "6", "--no-progress"], capsys)
    assert code == 0, err
    assert RunDir(run_dir).checkpoint_step() == 6


def test_two_trainings_at_once_in_one_folder_one_is_refused(tmp_path, trained, capsys):
    run_dir = copy_run(trained, tmp_path / "run")
    command = [
        sys.executable, "-m", "betavae.cli", "train", "--out", str(run_dir), "--resume", "--steps", "100000",
        "--checkpoint-every", "1000", "--no-progress",
    ]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(first, lambda: last_logged_step(run_dir) >= 12, "the first training never reached step 12")
        err = one_line_error(capsys, ["train", "--out", run_dir, "--resume", "--steps", "8", "--no-progress"])
        assert f"in use by process {first.pid} (betavae train)" in err
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    steps = RunDir(run_dir).checkpoint_step()
    assert steps >= 12
    assert RunDir(run_dir).read_config().steps == 100000  # the config of the run that holds the weights
    # whole, not cut at 8
    assert [entry["step"] for entry in log_entries(run_dir)] == list(range(2, steps + 1, 2))


@pytest.mark.slow
def test_weights_made_non_finite_by_the_last_update_are_never_checkpointed(tmp_path):
    # Adam's first step moves every weight by ~10·lr: 1e38 overflows float32, yet the loss
    # of that step was computed before the update and is finite.
    with pytest.raises(TrainingDiverged) as error:
        train(tiny_config(tmp_path / "run", lr=1e38, checkpoint_every=1, log_every=1), progress=False)
    assert str(error.value).startswith(
        "training diverged: the weights became NaN or infinite between steps 0 and 1; "
        "no checkpoint was written; train again with a lower --lr"
    )
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_diverged_run_keeps_a_finite_checkpoint_and_says_which(tmp_path, trained):
    run_dir = copy_run(trained, tmp_path / "run")
    # A resumed run diverging: weights of the kept checkpoint blown up by hand, as a bad step would.
    checkpoint = RunDir(run_dir).load_checkpoint()
    first = next(iter(checkpoint["model"]))
    checkpoint["model"][first] = checkpoint["model"][first] * 1e30
    RunDir(run_dir).save_checkpoint(checkpoint)
    with pytest.raises(TrainingDiverged) as error:
        train(tiny_config(run_dir, steps=8, checkpoint_every=1, log_every=1), resume=True, progress=False)
    message = str(error.value)
    assert "between steps 4 and 5; the checkpoint of step 4 is kept" in message
    assert "another --out" in message  # resume cannot change the learning rate: the advice says so
    assert RunDir(run_dir).checkpoint_step() == 4


# -- wrong results ---------------------------------------------------------------------------


def test_training_on_moves_results_of_earlier_weights_to_history(tmp_path, trained):
    run_dir = copy_run(trained, tmp_path / "run")
    run = RunDir(run_dir)
    run.update_metrics("disentanglement", {"mig": {"mig": 0.25}}, step=4)
    assert run.read_metrics()["test"]["step"] == 4
    train(tiny_config(run_dir, steps=6), resume=True, progress=False)
    metrics = run.read_metrics()
    assert "disentanglement" not in metrics
    assert metrics["test"]["step"] == 6 and metrics["train"]["steps"] == 6
    earlier = {(entry["section"], entry["step"]) for entry in metrics["history"]}
    assert earlier == {("disentanglement", 4), ("test", 4), ("train", 4)}
    assert next(e for e in metrics["history"] if e["section"] == "disentanglement")["mig"] == {"mig": 0.25}


def test_a_result_of_other_weights_is_reported_stale(tmp_path, trained):
    run = RunDir(copy_run(trained, tmp_path / "run"))
    run.update_metrics("test", {"loss": 1.0}, step=2)
    with pytest.raises(
        BetaVAEError, match="computed at step 2, but the checkpoint holds step 4: they are stale"
    ):
        run.current_result("test")


def test_the_evaluations_during_training_read_back_without_entries_that_name_no_step(tmp_path):
    run = RunDir(tmp_path)
    assert run.during_training() == {}  # no metrics.json
    run.update_metrics("test", {"loss": 1.0}, step=2)
    assert run.during_training() == {}  # no section
    good = [{"step": 2, "mig": {"mig": 0.1}}, {"step": 4, "mig": {"mig": None}}]
    torn = [good[0], "x", {"step": "2"}, good[1]]
    run.update_metrics("during_training", {"metrics": ["mig"], "entries": torn}, step=4)
    assert run.during_training() == {"metrics": ["mig"], "entries": good, "step": 4}
    run.update_metrics("during_training", {"metrics": ["mig"], "entries": "not a list"}, step=4)
    assert run.during_training()["entries"] == []
    run.metrics_path.write_text("{not json")
    with pytest.raises(BetaVAEError, match="is not valid JSON"):
        run.during_training()


def test_resume_refuses_fewer_steps_than_the_checkpoint_holds(tmp_path, trained, capsys):
    run_dir = copy_run(trained, tmp_path / "run")
    err = one_line_error(capsys, ["train", "--out", run_dir, "--resume", "--steps", "2", "--no-progress"])
    assert (
        err == f"betavae: error: {run_dir} holds 4 trained steps, more than --steps 2; give --steps 4 or more"
    )
    assert RunDir(run_dir).read_config().steps == 4


@pytest.mark.slow
def test_the_log_entry_after_a_resume_covers_the_whole_window_cut_by_an_interruption(tmp_path):
    train(tiny_config(tmp_path / "whole", steps=12, log_every=4, checkpoint_every=5), progress=False)

    def interrupt(step, model):
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the loop stops at this step with a checkpoint

    cut = tiny_config(tmp_path / "cut", steps=12, log_every=4, checkpoint_every=5)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 5/12"):
        train(cut, progress=False, on_checkpoint=interrupt)
    train(cut, resume=True, progress=False)
    assert without_timing(log_entries(tmp_path / "cut")) == without_timing(log_entries(tmp_path / "whole"))


# -- faults that must be one line and lose nothing ---------------------------------------------


@pytest.mark.slow
def test_a_full_disk_at_checkpoint_time_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, capsys):
    # A checkpoint of this model is ~20 MB and is written beside the old one before replacing it:
    # the second checkpoint cannot fit in 32 MB.
    with mounted_tmpfs(tmp_path / "disk", "size=32m") as disk:
        run_dir = disk / "run"
        code, _, err = run_cli(tiny_flags(run_dir, steps=2), capsys)
        assert code == 0, err
        err = one_line_error(capsys, ["train", "--out", run_dir, "--resume", "--steps", "4", "--no-progress"])
        assert err == (
            f"betavae: error: cannot write the checkpoint of step 4 in {run_dir}: No space left on device; "
            f"the checkpoint of step 2 is kept; free space or make the folder writable, then continue "
            f"with: betavae train --out {run_dir} --resume"
        )
        assert RunDir(run_dir).checkpoint_step() == 2
        assert temporaries(run_dir) == []


def test_an_unwritable_folder_at_checkpoint_time_is_one_line(tmp_path, trained, monkeypatch):
    import tempfile

    run_dir = copy_run(trained, tmp_path / "run")
    real_mkstemp = tempfile.mkstemp

    def refused(*args, prefix="", **kwargs):  # the folder turned unwritable just before the checkpoint
        if prefix.startswith(".checkpoint.pt"):
            raise PermissionError(13, "Permission denied", str(run_dir))
        return real_mkstemp(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr("betavae.files.tempfile.mkstemp", refused)
    with pytest.raises(
        CheckpointNotWritten, match="step 6 in .*: Permission denied; the checkpoint of step 4 is kept"
    ):
        train(tiny_config(run_dir, steps=6), resume=True, progress=False)
    monkeypatch.undo()
    assert RunDir(run_dir).checkpoint_step() == 4


@pytest.mark.slow
def test_an_out_that_cannot_be_a_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert "is a file, not a folder" in one_line_error(capsys, tiny_flags(tmp_path / "file"))
    err = one_line_error(capsys, tiny_flags(tmp_path / "file" / "run"))
    assert f"{tmp_path / 'file'} is a file, not a folder" in err
    with mounted_tmpfs(tmp_path / "ro", "size=1m,ro") as read_only:
        err = one_line_error(capsys, tiny_flags(read_only / "run"))
        assert err == f"betavae: error: cannot create run folder {read_only / 'run'}: Read-only file system"


def test_a_garbage_config_toml_offers_the_recovery_that_resume_performs(tmp_path, trained, capsys):
    run_dir = copy_run(trained, tmp_path / "run")
    (run_dir / "config.toml").write_bytes(bytes(range(256)) * 4)
    err = one_line_error(capsys, ["show", "kl", run_dir])
    assert "is not valid TOML" in err
    assert (
        f"the checkpoint holds the whole config: betavae train --out {run_dir} --resume rewrites config.toml"
        in err
    )
    code, out, err = run_cli(["train", "--out", run_dir, "--resume", "--no-progress"], capsys)
    assert code == 0, err
    config = RunDir(run_dir).read_config()
    assert (config.latent_dim, config.steps, config.batch_size) == (3, 4, 8)
    code, _, err = run_cli(["show", "kl", run_dir], capsys)
    assert code == 0, err


def test_a_foreign_checkpoint_is_one_line(tmp_path, trained, capsys):
    run_dir = copy_run(trained, tmp_path / "run")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, run_dir / "checkpoint.pt")
    for args in (["train", "--out", run_dir, "--resume", "--no-progress"], ["show", "samples", run_dir]):
        err = one_line_error(capsys, args)
        assert (
            "is not a betavae checkpoint (it lacks step, model, optimizer, noise_state, config, derived)"
            in err
        )


def test_config_toml_keeps_its_derived_table_key_for_key(trained):
    table = read_toml(RunDir(trained).config_path)["derived"]
    assert list(table) == [
        "arch",
        "lr",
        "beta",
        "beta_norm",
        "num_pixels",
        "image_shape",
        "num_train",
        "num_test",
        "device",
        "torch_version",
        "betavae_version",
        "num_threads",
        "memory_format",
        "optimizer",
        "step",
    ]
    assert (table["arch"], table["beta"], table["image_shape"], table["step"]) == (
        "conv28",
        1.0,
        [1, 28, 28],
        "eager",
    )
    derived = RunDir(trained).read_derived()
    assert derived.to_dict() == table and derived.image_shape == (1, 28, 28)


def test_a_run_folder_of_an_earlier_version_loads_and_resumes(tmp_path, trained):
    """Folders written before lr, memory_format, optimizer and step were recorded: those read as None."""
    run = RunDir(copy_run(trained, tmp_path / "run"))
    later = ("lr", "memory_format", "optimizer", "step")
    values = read_toml(run.config_path)
    values["derived"] = {key: value for key, value in values["derived"].items() if key not in later}
    run.config_path.write_text(to_toml(values))
    checkpoint = run.load_checkpoint()
    checkpoint["derived"] = {key: value for key, value in checkpoint["derived"].items() if key not in later}
    run.save_checkpoint(checkpoint)
    derived = run.read_derived()
    assert (derived.arch, derived.lr, derived.optimizer, derived.step) == ("conv28", None, None, None)
    assert load_model(run).latent_dim == 3
    train(tiny_config(run.path, steps=6), resume=True, progress=False)
    assert run.checkpoint_step() == 6
    assert (run.read_derived().lr, run.read_derived().step) == (5e-4, "eager")


def test_a_derived_table_without_the_architecture_is_one_line(tmp_path, trained, capsys):
    run = RunDir(copy_run(trained, tmp_path / "run"))
    values = read_toml(run.config_path)
    del values["derived"]["arch"]
    run.config_path.write_text(to_toml(values))
    err = one_line_error(capsys, ["show", "recon", run.path])
    assert f"the derived values of {run.config_path} lack arch" in err
    assert "betavae train --out" in err and "--resume rewrites config.toml" in err


def test_non_utf8_bytes_in_the_log_are_dropped_like_a_torn_line(tmp_path, trained):
    run_dir = copy_run(trained, tmp_path / "run")
    with (run_dir / "log.jsonl").open("ab") as log:
        log.write(b'{"step": 5, "loss": \xff\xfe}\n')
    train(tiny_config(run_dir, steps=6), resume=True, progress=False)
    assert [entry["step"] for entry in log_entries(run_dir)] == [2, 4, 6]


# -- messages --------------------------------------------------------------------------------


def test_nothing_to_resume_says_to_run_without_resume(tmp_path, capsys):
    err = one_line_error(capsys, ["train", "--out", tmp_path / "empty", "--resume", "--no-progress"])
    assert err.endswith("has no checkpoint; run the same command without --resume to start it")


def test_resume_compares_configs_before_loading_any_data(tmp_path, trained, capsys, monkeypatch):
    run_dir = copy_run(trained, tmp_path / "run")

    def no_loading(*args, **kwargs):
        raise AssertionError("data loaded before the configs were compared")

    monkeypatch.setattr("betavae.data.load", no_loading)
    err = one_line_error(
        capsys, ["train", "--out", run_dir, "--resume", "--dataset", "mnist", "--latent", "5"]
    )
    assert err.startswith(f"betavae: error: cannot resume {run_dir} with a different --dataset, --latent:")


def test_errors_name_the_flags_the_user_typed(tmp_path, capsys):
    err = one_line_error(capsys, ["train", "--latent", "0", "--out", tmp_path / "r"])
    assert err == "betavae: error: --latent must be a positive integer, got 0"
    err = one_line_error(capsys, ["train", "--batch-size", "-3", "--out", tmp_path / "r"])
    assert err == "betavae: error: --batch-size must be a positive integer, got -3"
    assert not (tmp_path / "r").exists()


def test_stale_temporaries_of_a_killed_write_are_removed_on_the_next_start(tmp_path, trained):
    run_dir = copy_run(trained, tmp_path / "run")
    (run_dir / ".checkpoint.pt.betavae-k1ll3d.tmp").write_bytes(b"\0" * 1000)
    (run_dir / ".metrics.json.betavae-x.tmp").write_text("{")
    (run_dir / ".mynotes.tmp").write_text("the user's own")  # not ours: it stays
    (run_dir / ".config.toml.draft.tmp").write_text("the user's own too")
    train(tiny_config(run_dir, steps=6), resume=True, progress=False)
    assert temporaries(run_dir) == [".config.toml.draft.tmp", ".mynotes.tmp"]
    assert (run_dir / ".mynotes.tmp").read_text() == "the user's own"


def test_an_atomic_write_names_its_temporary_with_the_mark_a_resume_looks_for(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda source, target: (seen.append(Path(source).name),
                                                                real_replace(source, target)))
    atomic_write_text(tmp_path / "metrics.json", "{}")
    assert len(seen) == 1 and seen[0].startswith(".metrics.json.betavae-") and seen[0].endswith(".tmp")


# -- fault injection -------------------------------------------------------------------------


def last_logged_step(run_dir: Path) -> int:
    """The last step in the log (0 without one), reading past a line torn by a kill."""
    steps = [0]
    if (run_dir / "log.jsonl").exists():
        for line in (run_dir / "log.jsonl").read_text(errors="replace").splitlines():
            try:
                steps.append(json.loads(line)["step"])
            except (ValueError, KeyError, TypeError):
                pass
    return max(steps)


@pytest.mark.slow
def test_killed_at_random_moments_and_resumed_ends_as_an_uninterrupted_run(tmp_path):
    """SIGKILL (no handler, no clean-up) at each kind of moment, resumed each time: same weights and log.

    One kill per kind of moment, in this order: during start-up, a random fraction of a second
    after the log reached a random step of the middle (in a step, a log write or a checkpoint
    write), and after the last step (in the held-out evaluation and the final writes); more kills
    of the same kinds cover nothing new and cost a process start each.
    """
    steps = 48
    flags = [
        "--dataset", "shapes", "--arch", "conv28", "--latent", "3", "--beta", "1", "--steps", str(steps),
        "--batch-size", "8", "--test-size", "100", "--checkpoint-every", "5", "--log-every", "3",
        "--device", "cpu", "--no-progress",
    ]
    reference = tmp_path / "whole"  # trained here, as the SIGTERM test's reference: one process start fewer
    train(TrainConfig(dataset="shapes", arch="conv28", latent_dim=3, beta=1.0, steps=steps, batch_size=8,
                      test_size=100, checkpoint_every=5, log_every=3, device="cpu", out=str(reference)),
          progress=False)

    run_dir = tmp_path / "killed"
    rng = np.random.default_rng(0)
    moments = ["start-up", "middle", "end"]
    while True:
        resume = ["--resume"] if RunDir(run_dir).has_checkpoint() else []
        command = [sys.executable, "-m", "betavae.cli", "train", *flags, "--out", str(run_dir), *resume]
        if not moments:  # every kind of moment was hit: let it finish
            subprocess.run(command, check=True, capture_output=True, timeout=300)
            break
        began_after = RunDir(run_dir).checkpoint_step() if resume else 0
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        moment = moments[0]
        try:
            if moment == "start-up":
                process.wait(timeout=float(rng.uniform(0.2, 1.5)))
            else:
                target = steps if moment == "end" else int(rng.integers(began_after + 1, steps))
                wait_until(
                    process,
                    lambda process=process, target=target: (
                        process.poll() is not None or last_logged_step(run_dir) >= target
                    ),
                    f"training never reached step {target}",
                )
                process.wait(timeout=float(rng.uniform(0.0, 0.1 if moment == "end" else 0.3)))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            moments.pop(0)
            continue
        _, stderr = process.communicate()
        assert process.returncode == 0, stderr
        break
    assert RunDir(run_dir).checkpoint_step() == steps
    assert_same_weights(
        RunDir(reference).load_checkpoint()["model"], RunDir(run_dir).load_checkpoint()["model"]
    )
    assert without_timing(log_entries(run_dir)) == without_timing(log_entries(reference))
    assert RunDir(run_dir).read_metrics()["test"] == RunDir(reference).read_metrics()["test"]
    assert temporaries(run_dir) == []
