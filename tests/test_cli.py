"""The ``betavae`` command end to end, and its one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from betavae.runs import RunDir
from commands import run_cli


def test_train_command_writes_a_complete_run_folder(tmp_path):
    script = Path(sys.executable).with_name("betavae")  # the console script pip installed beside python
    assert script.exists(), "the betavae script is not installed"
    out = tmp_path / "run"
    result = subprocess.run(
        [script, "train", "--dataset", "shapes", "--latent", "3", "--beta-norm", "0.02", "--steps", "20",
         "--batch-size", "16", "--test-size", "100", "--log-every", "10", "--no-progress", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"checkpoint:      {out / 'checkpoint.pt'}" in result.stdout
    assert f"reconstructions: {out / 'reconstructions.png'}" in result.stdout
    for name in ("config.toml", "checkpoint.pt", "metrics.json", "log.jsonl", "reconstructions.png"):
        assert (out / name).is_file(), name
    config = RunDir(out).read_config()
    assert (config.arch, config.latent_dim, config.beta_norm) == (None, 3, 0.02)  # arch chosen by image size
    assert RunDir(out).load_checkpoint()["derived"]["arch"] == "conv28"
    assert json.loads((out / "metrics.json").read_text())["test"]["num_images"] == 100


def test_config_file_sets_options_and_flags_override_it(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(f'dataset = "shapes"\nlatent_dim = 2\nsteps = 12\nbatch_size = 8\ntest_size = 50\n'
                      f'beta = 2.0\nout = "{tmp_path / "from-file"}"\n')
    code, out, err = run_cli(["train", "--config", str(config), "--steps", "6", "--beta-norm", "0.01",
                              "--no-cuda-graph", "--no-progress"], capsys)
    assert code == 0, err
    run = RunDir(tmp_path / "from-file")
    saved = run.read_config()
    assert (saved.steps, saved.latent_dim, saved.beta, saved.beta_norm) == (6, 2, None, 0.01)
    assert saved.cuda_graph is False
    assert run.load_checkpoint()["step"] == 6


@pytest.mark.parametrize("args, message", [
    (["train", "--dataset", "cifar"], "betavae: error: unknown dataset 'cifar'; choose one of: dsprites, mnist, shapes"),
    (["train", "--arch", "vgg"], "betavae: error: unknown architecture 'vgg'; choose one of: burgess64, conv28, conv64"),
    (["train", "--recon", "l1"], "betavae: error: unknown reconstruction loss 'l1'; choose one of: bernoulli, gaussian"),
    (["train", "--colour"], "betavae train: error: No such option '--colour'"),
    (["train", "--steps", "many"], "betavae train: error: Invalid value for '--steps'"),
    (["train", "--beta", "1", "--beta-norm", "0.1"], "not both"),
    (["train", "--resume"], "--resume needs --out"),
])
def test_bad_input_is_a_one_line_error(args, message, capsys):
    code, out, err = run_cli(args, capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert message in err


def test_wrong_image_size_for_the_architecture_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_cli(["train", "--dataset", "shapes", "--arch", "conv64", "--out", str(tmp_path / "r")], capsys)
    assert code == 1
    assert err.strip() == ("betavae: error: architecture conv64 takes 64×64 images, but the data is 28×28; "
                           "use --arch conv28")


def test_help_lists_the_training_options(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    for option in ("--dataset", "--arch", "--latent", "--beta-norm", "--recon", "--resume", "--config", "--no-cuda-graph"):
        assert option in out


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "betavae.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "0.1.0" in result.stdout
