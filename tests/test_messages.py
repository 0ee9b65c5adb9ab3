"""One-line messages that name what the user typed and end as sentences (issue 32, items 12–14)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.commands import run_cli

import betavae
from betavae.checks import SEED_MAX, check_seed
from betavae.config import FLAGS, TrainConfig, typed_names
from betavae.errors import BetaVAEError
from betavae.objectives import OBJECTIVES, options_of
from betavae.runs import CHECKPOINT_FILE, RunDir
from betavae.transfer import run_transfer

FINITE = "must be a finite non-negative number no larger than 3.4e38 (float32)"


@pytest.mark.parametrize("cut", ["half", "empty"])
@pytest.mark.parametrize("mmap", [False, True])
def test_an_unreadable_checkpoint_is_one_whole_sentence_with_its_advice(tmp_path, cut, mmap):
    whole = tmp_path / "whole.pt"
    torch.save({"step": 1, "model": {"weight": torch.zeros(1000)}}, whole)
    data = whole.read_bytes()
    (tmp_path / CHECKPOINT_FILE).write_bytes(data[: len(data) // 2] if cut == "half" else b"")
    with pytest.raises(BetaVAEError) as error:
        RunDir(tmp_path).load_checkpoint(mmap=mmap)
    message = str(error.value)
    assert message.startswith(f"checkpoint {tmp_path / CHECKPOINT_FILE} cannot be read: it is truncated, "
                              f"damaged or not a PyTorch file")
    assert message.endswith("; delete it and train again")
    assert "likelihood" not in message and "please" not in message  # torch's advice is left out, not cut
    if cut == "half":
        assert "(PytorchStreamReader failed reading zip archive: failed finding central directory)" in message


def _float_options() -> list[tuple[str, str]]:
    """(objective, option) for every option of an objective that is a number."""
    return [(name, option) for name in OBJECTIVES for option in options_of(name)
            if isinstance(getattr(TrainConfig(), option), float) or option == "dip_lambda_d"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(("objective", "option"), _float_options())
def test_every_number_option_of_an_objective_must_be_finite_named_as_typed(objective, option, value):
    config = TrainConfig(objective=objective, **{option: value})
    wanted = "positive" if option == "factor_lr" else "non-negative"
    for names, called in ((typed_names([option]), FLAGS[option]), (None, option)):
        with pytest.raises(BetaVAEError) as error:
            config.validate(names)
        assert str(error.value) == (f"{called} must be a finite {wanted} number no larger than 3.4e38 "
                                    f"(float32), got {value!r}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--objective", "capacity", "--capacity-gamma", "nan"], f"--capacity-gamma {FINITE}, got nan"),
        (["--objective", "dip", "--dip-lambda-od", "inf"], f"--dip-lambda-od {FINITE}, got inf"),
        (["--objective", "beta_tc", "--tc-alpha", "-1"], f"--tc-alpha {FINITE}, got -1.0"),
        (
            ["--objective", "capacity", "--capacity-steps", "0"],
            "--capacity-steps must be at least 1 step, got 0",
        ),
        (["--test-size", "0"], "--test-size must be a positive integer, got 0"),
    ],
)
def test_train_refuses_a_bad_option_naming_its_flag_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", *args, "--steps", "2", "--out", out], capsys)
    assert code == 1
    assert err.splitlines() == [f"betavae: error: {message}"]
    assert not out.exists()


def test_a_test_size_larger_than_the_set_is_named_as_typed(tmp_path):
    config = TrainConfig(dataset="shapes", test_size=30_000)
    for names, called in ((typed_names(["test_size"]), "--test-size"), (None, "test_size")):
        with pytest.raises(BetaVAEError, match=f"^shapes: {called} must be between 1 and 25919, got 30000"):
            config.load_dataset(names)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('objective = "capacity"\ncapacity_gamma = nan', f"capacity_gamma {FINITE}, got nan"),
        ("test_size = 0", "test_size must be a positive integer, got 0"),
    ],
)
def test_a_config_files_values_keep_their_keys(tmp_path, capsys, lines, message):
    config = tmp_path / "run.toml"
    config.write_text(f'{lines}\nout = "{tmp_path / "run"}"\n')
    code, _, err = run_cli(["train", "--config", config, "--steps", "2"], capsys)
    assert (code, err) == (1, f"betavae: error: {message}\n")


def _fake_checkpoint(run: RunDir, config: TrainConfig) -> None:
    """A checkpoint holding only what a resume compares: enough to be refused, no training."""
    derived = {"arch": "conv28", "beta": 4.0, "beta_norm": 4.0 * config.latent_dim / 784, "num_pixels": 784,
               "image_shape": [1, 28, 28], "num_train": 100, "num_test": 50, "device": "cpu",
               "torch_version": torch.__version__, "betavae_version": betavae.__version__, "num_threads": 1}
    run.path.mkdir(parents=True)
    torch.save({"step": 2, "model": {}, "optimizer": {}, "noise_state": torch.zeros(1),
                "config": config.to_dict(), "derived": derived}, run.checkpoint_path)


RESUMABLE = "checkpoint_every, cuda_graph, data_dir, deterministic, device, eval_every, log_every, out, steps"


def test_a_refused_resume_lists_flags_after_flags_and_keys_after_a_config_file(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    _fake_checkpoint(run, TrainConfig(latent_dim=2, steps=4, out=str(run.path)))
    code, _, err = run_cli(["train", "--out", run.path, "--resume", "--latent", "3"], capsys)
    flags = ", ".join("--" + key.replace("_", "-") for key in RESUMABLE.split(", "))
    assert (code, err) == (1, f"betavae: error: cannot resume {run.path} with a different --latent: that "
                              f"would be another experiment; only {flags} may change (train a new run with "
                              f"another --out)\n")
    config = tmp_path / "run.toml"
    config.write_text(f'latent_dim = 3\nsteps = 4\nout = "{run.path}"\n')
    code, _, err = run_cli(["train", "--config", config, "--resume"], capsys)
    assert code == 1
    assert f"with a different latent_dim: that would be another experiment; only {RESUMABLE} may change" \
        in err


def test_an_objective_that_ignores_beta_lists_its_options_as_flags(tmp_path, capsys):
    args = ["train", "--objective", "capacity", "--beta", "2", "--out", tmp_path / "run"]
    code, _, err = run_cli(args, capsys)
    assert (code, err) == (1, "betavae: error: objective capacity does not use β (--beta); its weights are "
                              "its own options: --capacity-gamma, --capacity-max, --capacity-steps\n")


def test_the_largest_seed_is_one_every_generator_takes():
    from sklearn.decomposition import PCA

    np.random.default_rng(SEED_MAX)
    torch.Generator().manual_seed(SEED_MAX)
    PCA(n_components=1, random_state=SEED_MAX, svd_solver="randomized").fit(np.eye(3))
    with pytest.raises(ValueError):  # what check_seed keeps users from: scikit-learn's trace-back
        PCA(n_components=1, random_state=SEED_MAX + 1, svd_solver="randomized").fit(np.eye(3))
    assert check_seed(SEED_MAX) == SEED_MAX


@pytest.mark.parametrize(
    "args",
    [["transfer", "runs/a"], ["evaluate", "runs/a"], ["train", "--steps", "2"],
     ["show", "traverse", "runs/a"], ["show", "factors", "runs/a"], ["show", "samples", "runs/a"]],
)
def test_a_seed_beyond_scikit_learns_is_one_line_from_every_command(tmp_path, capsys, args):
    out = tmp_path / "out"
    given_out = ["--out", out] if args[0] in ("transfer", "train") else []
    code, _, err = run_cli([*args, *given_out, "--seed", "4294967296"], capsys)
    assert (code, err) == (1, "betavae: error: --seed must be a whole number from 0 to 4294967295, "
                              "got 4294967296\n")
    assert not out.exists()


def test_run_transfer_checks_its_seed_before_any_work(tmp_path):
    refused = "^--seed must be a whole number from 0 to 4294967295, got 4294967296$"
    with pytest.raises(BetaVAEError, match=refused):
        run_transfer([tmp_path / "run"], seed=2**32, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
