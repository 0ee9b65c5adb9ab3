"""``betavae evaluate``: metrics of a run's model and of baselines, written and printed."""

import json

import numpy as np
import pytest

from betavae.cli import main
from betavae.config import TrainConfig
from betavae.evaluation import evaluate_baseline, metric_params, parse_metric_names
from betavae.errors import BetaVAEError
from betavae.metrics.baselines import BASELINES, baseline
from betavae.runs import RunDir
from betavae.train import train
from betavae import data

SMALL = ["--n-train", "300", "--n-eval", "100"]


@pytest.fixture(scope="module")
def dsprites_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    train(TrainConfig(dataset="dsprites", arch="conv64", latent_dim=4, steps=5, batch_size=16, test_size=100,
                      out=str(out), device="cpu"), progress=False)
    return out


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_evaluate_writes_every_metric_into_the_runs_metrics_and_keeps_the_test_loss(dsprites_run, capsys):
    code, out, err = run_cli(["evaluate", str(dsprites_run), "--metrics", "all", "--n-train", "60", "--n-eval", "30"],
                             capsys)
    assert code == 0, err
    metrics = RunDir(dsprites_run).read_metrics()
    assert "loss" in metrics["test"]
    section = metrics["disentanglement"]
    assert set(section) == {"beta_vae", "factor_vae", "mig", "dci", "sap", "settings"}
    assert section["settings"] == {"seed": 0, "n_train": 60, "n_eval": 30}
    assert 0 <= section["mig"]["mig"] <= 1
    assert "mig.mig" in out and "written to" in out
    assert all(f"{name}: done in" in err for name in ("beta_vae", "factor_vae", "mig", "dci", "sap"))


def test_json_output_matches_the_written_metrics_and_repeats_with_the_seed(dsprites_run, capsys):
    args = ["evaluate", str(dsprites_run), "--metrics", "mig,sap", "--json", "--seed", "3", *SMALL]
    code, out, _ = run_cli(args, capsys)
    assert code == 0
    printed = json.loads(out)
    written = RunDir(dsprites_run).read_metrics()["disentanglement"]
    assert printed["mig"] == written["mig"] and printed["sap"] == written["sap"]
    _, again, _ = run_cli(args, capsys)
    assert json.loads(again) == printed


def test_a_dataset_without_known_factors_is_refused_with_a_clear_message(tmp_path, mnist_dir, capsys):
    out = tmp_path / "mnist"
    train(TrainConfig(dataset="mnist", data_dir=str(mnist_dir), latent_dim=2, steps=2, batch_size=8, out=str(out),
                      device="cpu"), progress=False)
    code, _, err = run_cli(["evaluate", str(out)], capsys)
    assert code == 1
    assert err.strip() == ("betavae: error: dataset 'mnist' has no known generative factors, so disentanglement "
                           "cannot be measured on it; train on shapes or dsprites")


def test_ground_truth_baseline_scores_far_above_an_untrained_encoder():
    sizes = {"n_train": 2000, "n_eval": 500}
    factors = evaluate_baseline("factors", "dsprites", ["mig"], seed=0, sizes=sizes)["mig"]["mig"]
    untrained = evaluate_baseline("untrained", "dsprites", ["mig"], seed=0, sizes=sizes, device="cpu")["mig"]["mig"]
    assert factors > 0.5 and untrained < 0.2


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_gives_one_code_per_image(name):
    dataset = data.load("shapes", test_size=100)
    represent = baseline(name, dataset, np.random.default_rng(0), latent_dim=6)
    factors = dataset.sample_factors(12, np.random.default_rng(1))
    codes = represent(factors) if getattr(represent, "uses_factors", False) else represent(dataset.render(factors))
    expected = {"pixels": 784, "factors": 5}.get(name, 6)
    assert np.asarray(codes).shape == (12, expected)


def test_baseline_cli_prints_a_table(capsys):
    code, out, err = run_cli(["evaluate", "--baseline", "factors", "--dataset", "dsprites", "--metrics", "mig",
                              *SMALL], capsys)
    assert code == 0, err
    assert out.startswith("disentanglement of baseline factors on dsprites (seed 0)")


@pytest.mark.parametrize("args, message", [
    (["evaluate"], "give a RUN_DIR to evaluate, or --baseline NAME --dataset NAME"),
    (["evaluate", "--baseline", "pca"], "--baseline takes --dataset"),
    (["evaluate", "--baseline", "vgg", "--dataset", "dsprites"], "unknown baseline 'vgg'"),
    (["evaluate", "--baseline", "pca", "--dataset", "mnist"], "no known generative factors"),
    (["evaluate", "somewhere", "--metrics", "mig,fid"], "unknown metric 'fid'; choose one of: beta_vae, dci"),
    (["evaluate", "no/such/run"], "no/such/run is not a run folder"),
])
def test_bad_evaluate_input_is_a_one_line_error(args, message, capsys):
    code, _, err = run_cli(args, capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_size_options_reach_each_metric_under_its_own_name():
    sizes = {"n_train": 100, "n_eval": 40}
    assert metric_params("beta_vae", sizes) == {"num_train": 100, "num_eval": 40}
    assert metric_params("dci", sizes) == {"num_train": 100, "num_test": 40}
    assert metric_params("mig", sizes) == {"num_train": 100}
    assert parse_metric_names("all") == ["beta_vae", "factor_vae", "mig", "dci", "sap"]
    with pytest.raises(BetaVAEError):
        parse_metric_names(" , ")
