"""The training loop: learning, checkpoints, resume, divergence, determinism."""

import json
import signal
import subprocess
import sys

import pytest
import torch

from betavae.config import TrainConfig
from betavae.errors import BetaVAEError
from betavae.runs import RunDir, load_model
from betavae.training.faults import TrainingDiverged
from betavae.training.loop import train
from clocks import steps_take
from processes import wait_until
from runfolders import assert_same_weights

pytestmark = pytest.mark.slow  # every test trains


def small_config(out, **changes) -> TrainConfig:
    settings = dict(dataset="shapes", arch="conv28", latent_dim=4, beta=1.0, steps=30, batch_size=16,
                    checkpoint_every=10, log_every=5, test_size=200, seed=0, out=str(out), device="cpu")
    settings.update(changes)
    if "beta_norm" in changes:
        settings.pop("beta")
    return TrainConfig(**settings)


def weights(run_dir) -> dict[str, torch.Tensor]:
    return RunDir(run_dir).load_checkpoint()["model"]


def test_loss_falls_when_training_on_shapes(tmp_path):
    # 150 steps: the loss of the last window was 0.43 of the first's (2026-12-06), the bound 0.6.
    result = train(
        small_config(tmp_path / "run", steps=150, batch_size=32, log_every=25, lr=1e-3), progress=False
    )
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == list(range(25, 151, 25))
    assert log[-1]["loss"] < 0.6 * log[0]["loss"]
    assert len(log[-1]["kl_per_dim"]) == 4
    assert sum(log[-1]["kl_per_dim"]) == pytest.approx(log[-1]["kl"], rel=1e-4)
    assert result.test["loss"] < log[0]["loss"]
    assert len(result.test["kl_per_dim"]) == 4
    assert result.test["kl"] == pytest.approx(sum(result.test["kl_per_dim"]), rel=1e-6)


def test_run_folder_holds_config_checkpoint_metrics_logs_and_figure(tmp_path):
    train(small_config(tmp_path / "run", beta_norm=0.01), progress=False)
    run = RunDir(tmp_path / "run")
    config = run.read_config()
    assert config.beta_norm == 0.01 and config.beta is None
    derived = __import__("tomllib").loads(run.config_path.read_text())["derived"]
    assert derived["beta"] == pytest.approx(0.01 * 784 / 4)
    metrics = run.read_metrics()
    assert set(metrics["test"]) >= {"loss", "recon", "kl", "kl_per_dim"}
    assert metrics["train"]["beta_norm"] == 0.01
    assert run.load_checkpoint()["step"] == 30
    assert (run.path / "reconstructions.png").stat().st_size > 0
    assert any(run.tensorboard_dir.iterdir())
    model = load_model(run.path)
    assert model.latent_dim == 4 and not model.training


@pytest.mark.parametrize(
    ("dataset", "arch", "given", "used"),
    [
        ("shapes", "conv28", None, 5e-4),
        ("dsprites", "conv64", None, 1e-4),
        ("dsprites", "conv64", 3e-4, 3e-4),
    ],
)
def test_learning_rate_is_the_architectures_unless_given_and_is_recorded(
    tmp_path, dataset, arch, given, used
):
    train(
        small_config(tmp_path / "run", dataset=dataset, arch=arch, lr=given, steps=2, checkpoint_every=2),
        progress=False,
    )
    run = RunDir(tmp_path / "run")
    assert run.read_config().lr == given  # the config keeps what was asked for
    assert run.read_derived().lr == used
    checkpoint = run.load_checkpoint()
    assert [group["lr"] for group in checkpoint["optimizer"]["param_groups"]] == [used]


def test_resume_compares_the_learning_rate_used_not_how_it_was_given(tmp_path):
    train(small_config(tmp_path / "run", lr=5e-4, steps=2, checkpoint_every=2), progress=False)
    # conv28's own rate is 5e-4: leaving it to the architecture is the same run.
    train(small_config(tmp_path / "run", lr=None, steps=4, checkpoint_every=2), resume=True, progress=False)
    assert RunDir(tmp_path / "run").read_derived().lr == 5e-4
    with pytest.raises(BetaVAEError, match="a different lr"):
        train(small_config(tmp_path / "run", lr=1e-3, steps=6), resume=True, progress=False)


def test_same_seed_same_config_gives_identical_numbers(tmp_path):
    first = train(small_config(tmp_path / "a"), progress=False)
    # --deterministic picks GPU kernels; a CPU's repeat their numbers already, and nothing changes here
    second = train(small_config(tmp_path / "b", deterministic=True), progress=False)
    assert first.test == second.test
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert RunDir(tmp_path / "b").read_config().deterministic
    assert not torch.are_deterministic_algorithms_enabled()  # the process's switches left alone on a CPU
    third = train(small_config(tmp_path / "c", seed=1), progress=False)
    assert third.test["loss"] != first.test["loss"]


def test_resume_matches_uninterrupted_run(tmp_path):
    train(small_config(tmp_path / "whole", steps=40), progress=False)
    train(small_config(tmp_path / "parts", steps=20), progress=False)
    with (tmp_path / "parts" / "log.jsonl").open("a") as log:  # a kill in the middle of a log write
        log.write('{"step": 25, "loss": 1')
    train(small_config(tmp_path / "parts", steps=40), resume=True, progress=False)
    assert_same_weights(weights(tmp_path / "whole"), weights(tmp_path / "parts"))
    log = [json.loads(line)["step"] for line in (tmp_path / "parts" / "log.jsonl").read_text().splitlines()]
    assert log == list(range(5, 41, 5))


@pytest.mark.parametrize("recon, reduction", [("lmse", "sum"), ("mse", "mean")])
def test_a_reconstruction_and_its_reduction_resume_into_the_same_weights(tmp_path, recon, reduction):
    settings = dict(recon=recon, recon_reduction=reduction)
    whole = train(small_config(tmp_path / "whole", steps=20, **settings), progress=False)
    train(small_config(tmp_path / "parts", steps=10, **settings), progress=False)
    parts = train(small_config(tmp_path / "parts", steps=20, **settings), resume=True, progress=False)
    assert_same_weights(weights(tmp_path / "whole"), weights(tmp_path / "parts"))
    assert whole.test == parts.test
    assert RunDir(tmp_path / "parts").read_config().recon_reduction == reduction
    with pytest.raises(BetaVAEError, match="cannot resume .* with a different recon_reduction"):
        other = "sum" if reduction == "mean" else "mean"
        train(small_config(tmp_path / "parts", steps=30, recon=recon, recon_reduction=other), resume=True,
              progress=False)


def test_sigterm_saves_a_checkpoint_and_resume_ends_with_the_same_weights(tmp_path):
    # The child trains towards a step it never reaches, so the stop cannot miss it; stopped near step
    # 20, the run is resumed to 20 steps past its stop and compared with one trained that far at once.
    run_dir = tmp_path / "killed"
    command = [
        sys.executable, "-m", "betavae.cli", "train", "--dataset", "shapes", "--arch", "conv28", "--latent",
        "4", "--beta", "1", "--steps", "100000", "--batch-size", "16", "--test-size", "200",
        "--checkpoint-every", "1000", "--log-every", "5", "--device", "cpu", "--no-progress", "--out",
        str(run_dir),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run_dir / "log.jsonl"
    wait_until(process, lambda: log.exists() and log.read_text().count("\n") >= 4, "training never started")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted at step" in stderr and "--resume" in stderr
    assert len(stderr.strip().splitlines()) == 1
    stopped_at = RunDir(run_dir).load_checkpoint()["step"]
    assert stopped_at >= 20

    steps = stopped_at + 20
    train(small_config(tmp_path / "x", steps=steps, checkpoint_every=1000), progress=False)  # the reference
    resumed = RunDir(run_dir).read_config().merged({"steps": steps})
    train(resumed, resume=True, progress=False)
    assert_same_weights(weights(tmp_path / "x"), weights(run_dir))


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    config = small_config(
        tmp_path / "run", lr=1e4, recon="gaussian", steps=200, checkpoint_every=1, log_every=1
    )
    with pytest.raises(
        TrainingDiverged,
        match=r"NaN or infinite between steps (\d+) and \d+; the checkpoint of step \1 is kept",
    ) as error:
        train(config, progress=False)
    checkpoint = RunDir(tmp_path / "run").load_checkpoint()
    assert 1 <= checkpoint["step"] < 200
    assert f"the checkpoint of step {checkpoint['step']} is kept" in str(error.value)
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())


def test_resume_refuses_a_changed_experiment(tmp_path):
    train(small_config(tmp_path / "run", steps=10), progress=False)
    with pytest.raises(BetaVAEError, match="cannot resume .* with a different lr"):
        train(small_config(tmp_path / "run", steps=20, lr=0.1), resume=True, progress=False)
    with pytest.raises(BetaVAEError, match="already holds a run; pass --resume"):
        train(small_config(tmp_path / "run", steps=20), progress=False)
    with pytest.raises(BetaVAEError, match="nothing to resume"):
        train(small_config(tmp_path / "empty"), resume=True, progress=False)


def test_training_on_real_mnist_evaluates_on_its_official_test_set(tmp_path, mnist_dir):
    result = train(
        small_config(
            tmp_path / "mnist",
            dataset="mnist",
            data_dir=str(mnist_dir),
            test_size=None,
            steps=20,
            recon="gaussian",
        ),
        progress=False,
    )
    assert result.test["num_images"] == 10_000
    # The squared error every run records (whatever its loss) is, for squared error, its reconstruction.
    assert result.test["squared_error"] == pytest.approx(result.test["recon"], rel=1e-6)
    derived = RunDir(tmp_path / "mnist").load_checkpoint()["derived"]
    assert (derived["num_train"], derived["num_pixels"]) == (60_000, 784)


def test_on_checkpoint_sees_each_checkpoint_in_eval_mode_and_its_time_is_no_training_time(
    tmp_path, monkeypatch
):
    # Each step takes 0.25 s and each call of the hook 1000 s on a clock only they move, so the
    # timings training records are exact, whatever this machine's speed.
    clock = steps_take(monkeypatch, seconds=0.25)
    seen = []

    def hook(step, model):
        seen.append((step, model.training, RunDir(tmp_path / "run").load_checkpoint()["step"]))
        clock.advance(1000.0)

    train(
        small_config(tmp_path / "run", steps=30, batch_size=16, checkpoint_every=10, log_every=10),
        progress=False,
        on_checkpoint=hook,
    )
    assert seen == [(10, False, 10), (20, False, 20), (30, False, 30)]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    # 10 steps × 16 images in 10 × 0.25 s a window; counting a hook's 1000 s would make it ~0.16 images/s.
    assert [entry["images_per_s"] for entry in log] == [64.0, 64.0, 64.0]
    train_seconds = RunDir(tmp_path / "run").load_checkpoint()["train_seconds"]
    assert train_seconds == 30 * 0.25  # the steps' time, none of the hooks' 3000 s
    assert 30 * 16 / train_seconds == 64.0  # images/s agree with the training clock


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["beta", "capacity", "beta_tc", "dip", "factor"])
def test_an_objective_resumes_into_the_same_weights_and_log(tmp_path, objective):
    """The schedule's position is the step count, set from the checkpoint's step on resume, and an
    objective's own networks and optimisers (FactorVAE's discriminator) travel in the checkpoint: a
    run cut at step 20 and resumed logs the same terms and ends with the same weights."""
    options = {"beta": {"beta_warmup": 30}, "capacity": {"capacity_max": 6.0, "capacity_steps": 30},
               "beta_tc": {"tc_sampling": "mss"}, "dip": {"dip_type": "i"},
               "factor": {"factor_gamma": 10.0}}[objective]
    if objective != "beta":  # capacity and FactorVAE weigh the KL with their own options
        options["beta"] = None
    whole = train(small_config(tmp_path / "whole", steps=40, objective=objective, **options), progress=False)
    train(small_config(tmp_path / "parts", steps=20, objective=objective, **options), progress=False)
    parts = train(small_config(tmp_path / "parts", steps=40, objective=objective, **options), resume=True,
                  progress=False)
    assert_same_weights(weights(tmp_path / "whole"), weights(tmp_path / "parts"))
    assert whole.test == parts.test
    log = [json.loads(line) for line in (tmp_path / "parts" / "log.jsonl").read_text().splitlines()]
    assert log == [json.loads(line) | {"images_per_s": entry["images_per_s"]}
                   for line, entry in zip((tmp_path / "whole" / "log.jsonl").read_text().splitlines(), log,
                                          strict=True)]
    if objective == "capacity":  # C = 6·min(1, step/30), averaged over each window of 5 steps
        assert [round(entry["capacity"], 6) for entry in log[-2:]] == [6.0, 6.0]
        assert "capacity" in whole.test
    if objective == "factor":
        both = [RunDir(tmp_path / name).load_checkpoint() for name in ("whole", "parts")]
        assert_same_weights(*(checkpoint["objective"] for checkpoint in both))
        assert {"tc", "discriminator_accuracy"} <= set(log[-1])
