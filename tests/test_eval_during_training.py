"""Evaluation during training: scores on one fixed sample every N steps, a resumable history,
off the clock."""

import json
import os
import re
import signal

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from betavae import data, evaluation
from betavae.errors import BetaVAEError
from betavae.metrics import METRICS, model_representation
from betavae.runs import RunDir, load_model
from betavae.training.faults import TrainingInterrupted
from betavae.training.loop import train
from clocks import steps_take
from commands import run_cli
from runfolders import assert_same_weights
from test_train import small_config, weights

MIG_KEYS = {"mig", "mig_shape", "mig_scale", "mig_rotation", "mig_pos_x", "mig_pos_y"}


def eval_config(out, **changes):
    """A tiny run measuring MIG on 200 points every 2 steps; checkpoints only where evaluations put them."""
    settings = dict(steps=4, checkpoint_every=100, log_every=2, eval=["mig"], eval_every=2, eval_n_train=200)
    settings.update(changes)
    return small_config(out, **settings)


def history(run_dir) -> dict:
    return RunDir(run_dir).read_metrics()["during_training"]


def scores(run_dir) -> list[dict]:
    """The entries without their timings, which no two runs share."""
    timings = ("train_seconds", "eval_seconds")
    return [
        {key: value for key, value in entry.items() if key not in timings}
        for entry in history(run_dir)["entries"]
    ]


@pytest.mark.slow
def test_history_holds_real_scores_at_every_eval_every_steps_and_the_last(tmp_path, capsys):
    config = eval_config(tmp_path / "run", steps=5, eval=["mig", "sap"], eval_n_train=100, eval_n_eval=50)
    checkpoints, rescored = [], []
    dataset = data.load("shapes", test_size=200)

    def hook(step, model):  # called after the evaluation of its step, which describes the checkpoint
        checkpoints.append(
            (step, RunDir(config.out).checkpoint_step(), history(config.out)["entries"][-1]["step"])
        )
        rescored.append(
            evaluation.score(
                dataset,
                model_representation(model),
                ["mig", "sap"],
                seed=0,
                sizes={"n_train": 100, "n_eval": 50},
            )
        )

    result = train(config, progress=True, on_checkpoint=hook)
    section = history(config.out)
    assert [entry["step"] for entry in section["entries"]] == [2, 4, 5]
    assert checkpoints == [(2, 2, 2), (4, 4, 4), (5, 5, 5)]
    assert section["step"] == 5 and section["metrics"] == ["mig", "sap"] and section["seed"] == 0
    assert section["settings"]["mig"]["n_train"] == 100
    assert section["settings"]["sap"]["n_eval"] == 50
    # Each entry holds the scores of the weights it names on the fixed sample: scored again, the same.
    assert [{"mig": entry["mig"], "sap": entry["sap"]} for entry in section["entries"]] == rescored
    assert all(set(entry["mig"]) == MIG_KEYS for entry in section["entries"])
    assert [entry["images"] for entry in section["entries"]] == [2 * 16, 4 * 16, 5 * 16]
    clock = [entry["train_seconds"] for entry in section["entries"]]
    assert clock == sorted(clock) and clock[0] > 0
    assert result.evaluations == section["entries"]
    assert RunDir(config.out).read_config() == config  # config.toml repeats the run, evaluations included
    assert "history" not in RunDir(config.out).read_metrics()  # a history itself: never moved to history
    lines = re.findall(
        r"step (\d+): mig \d\.\d{3}, sap \d\.\d{3} \(eval \d+\.\d s\)", capsys.readouterr().err
    )
    assert lines == ["2", "4", "5"]


@pytest.mark.slow
def test_the_same_weights_score_the_same_on_the_fixed_sample(tmp_path):
    every_two = train(eval_config(tmp_path / "every-two"), progress=False)
    at_the_end = train(eval_config(tmp_path / "at-the-end", eval_every=4), progress=False)
    other_sample = train(eval_config(tmp_path / "other-sample", eval_every=4, eval_seed=1), progress=False)
    # Evaluating changes nothing in training: the weights after step 4 are the same in every run.
    assert_same_weights(weights(tmp_path / "every-two"), weights(tmp_path / "at-the-end"))
    # a second evaluation, same points
    assert at_the_end.evaluations[-1]["mig"] == every_two.evaluations[-1]["mig"]
    assert other_sample.evaluations[-1]["mig"] != every_two.evaluations[-1]["mig"]
    model = load_model(tmp_path / "every-two")
    again = evaluation.score(
        data.load("shapes", test_size=200),
        model_representation(model),
        ["mig"],
        seed=0,
        sizes={"n_train": 200, "n_eval": None},
    )
    assert again["mig"] == every_two.evaluations[-1]["mig"]


def interrupt_at(step_to_stop):
    def hook(step, model):
        if step == step_to_stop:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the loop stops at this step with a checkpoint

    return hook


@pytest.mark.slow
def test_an_interrupted_and_resumed_run_has_the_history_and_curves_of_an_uninterrupted_one(tmp_path):
    config = eval_config(tmp_path / "cut", steps=8, checkpoint_every=3)
    train(eval_config(tmp_path / "whole", steps=8, checkpoint_every=3), progress=False)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 4/8"):
        train(config, progress=False, on_checkpoint=interrupt_at(4))  # after the evaluation of step 4
    assert [entry["step"] for entry in history(config.out)["entries"]] == [2, 4]
    train(config, resume=True, progress=False)
    assert scores(config.out) == scores(tmp_path / "whole")
    assert [entry["step"] for entry in scores(config.out)] == [2, 4, 6, 8]

    curves = EventAccumulator(str(RunDir(config.out).tensorboard_dir))
    curves.Reload()
    for key in ("mig", "mig_scale"):
        drawn = [(event.step, event.value) for event in curves.Scalars(f"eval/mig.{key}")]
        assert drawn == [(e["step"], pytest.approx(e["mig"][key], rel=1e-6)) for e in scores(config.out)]


@pytest.mark.slow
def test_resume_evaluates_a_checkpoint_whose_evaluation_a_kill_cut_short(tmp_path):
    train(eval_config(tmp_path / "whole", steps=6), progress=False)
    run = RunDir(tmp_path / "killed")
    train(eval_config(run.path, steps=4), progress=False)
    # As if killed while evaluating step 4 (its checkpoint written, its entry not), with an entry
    # of weights past the checkpoint that the resumed run trains again.
    section = history(run.path)
    cut_short = section["entries"].pop()
    section["entries"].append({**cut_short, "step": 5, "mig": {"mig": 0.5}})
    run.update_metrics("during_training", section, step=5)

    train(eval_config(run.path, steps=6), resume=True, progress=False)
    entries = history(run.path)["entries"]
    assert [entry["step"] for entry in entries] == [2, 4, 6]
    # made from the checkpoint's weights, before training went on
    assert entries[1]["mig"] == cut_short["mig"]
    assert entries[1]["train_seconds"] == cut_short["train_seconds"]  # the seconds those 4 steps took
    assert scores(run.path) == scores(tmp_path / "whole")


@pytest.mark.slow
def test_evaluations_count_neither_as_training_time_nor_in_images_per_second(tmp_path, monkeypatch):
    # Each step takes 0.25 s and each evaluation 1000 s on a clock only they move: exact timings.
    clock = steps_take(monkeypatch, seconds=0.25)
    real_score = evaluation.score

    def slow_score(*args, **kwargs):
        clock.advance(1000.0)
        return real_score(*args, **kwargs)

    monkeypatch.setattr(evaluation, "score", slow_score)
    result = train(eval_config(tmp_path / "run", steps=6), progress=False)
    assert [entry["eval_seconds"] for entry in result.evaluations] == [1000.0, 1000.0, 1000.0]
    assert [entry["train_seconds"] for entry in result.evaluations] == [0.5, 1.0, 1.5]  # 2, 4, 6 steps
    assert RunDir(tmp_path / "run").load_checkpoint()["train_seconds"] == 1.5
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    # 2 steps × 16 images in 0.5 s a window; counting an evaluation would make it 0.03 images/s.
    assert [entry["images_per_s"] for entry in log] == [64.0, 64.0, 64.0]


@pytest.mark.slow
def test_the_training_clock_goes_on_from_the_checkpoint_on_resume(tmp_path):
    run = RunDir(tmp_path / "run")
    train(eval_config(run.path, steps=2), progress=False)
    checkpoint = run.load_checkpoint()
    checkpoint["train_seconds"] = 5000.0  # as if the first 2 steps had taken 5000 s
    run.save_checkpoint(checkpoint)
    result = train(eval_config(run.path, steps=4), resume=True, progress=False)
    assert 5000 < result.evaluations[-1]["train_seconds"] < 5600
    del checkpoint["train_seconds"]  # a checkpoint written before the clock existed: it starts at 0
    run.save_checkpoint(checkpoint)
    result = train(eval_config(run.path, steps=4), resume=True, progress=False)
    assert result.evaluations[-1]["train_seconds"] < 600


@pytest.mark.slow
def test_resume_takes_a_new_eval_every_but_no_other_evaluation_change(tmp_path):
    run_dir = tmp_path / "run"
    train(eval_config(run_dir, steps=2), progress=False)
    for change, name in [
        ({"eval_n_train": 300}, "eval_n_train"),
        ({"eval_seed": 1}, "eval_seed"),
        ({"eval": ["mig", "sap"]}, "eval"),
        ({"eval_n_eval": 50}, "eval_n_eval"),
    ]:
        with pytest.raises(
            BetaVAEError, match=f"cannot resume .* with a different {name}: that would be another"
        ):
            train(eval_config(run_dir, steps=6, **change), resume=True, progress=False)
    train(eval_config(run_dir, steps=6, eval_every=3), resume=True, progress=False)
    assert [entry["step"] for entry in history(run_dir)["entries"]] == [2, 3, 6]


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--eval", "nope"],
            f"unknown metric 'nope'; choose one of: {', '.join(sorted(METRICS))} (--eval)",
        ),
        (
            ["--dataset", "mnist", "--eval", "mig"],
            "dataset 'mnist' has no known generative factors, so --eval cannot measure disentanglement "
            f"on it; train on {' or '.join(data.with_factors())}, or leave out --eval",
        ),
        (["--eval", "mig", "--eval-every", "0"], "--eval-every must be a positive integer, got 0"),
        (
            ["--eval", "mig", "--eval-n-train", "1"],
            "--eval-n-train 1 is too small for mig (it needs at least 2); give --eval-n-train 2 or more",
        ),
        (
            ["--config", "{config}"],
            "config file {config}: eval must be an array of strings, got an array holding the integer 1",
        ),
    ],
)
def test_bad_evaluation_settings_are_one_line_errors_before_any_work(tmp_path, capsys, flags, message):
    config = tmp_path / "run.toml"
    config.write_text('eval = ["mig", 1]\n')
    out = tmp_path / "run"
    code, _, err = run_cli(["train", *[flag.format(config=config) for flag in flags], "--out", out], capsys)
    assert code == 1
    assert err.splitlines() == [f"betavae: error: {message.format(config=config)}"]
    assert not out.exists()
