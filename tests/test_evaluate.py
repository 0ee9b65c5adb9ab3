"""``betavae evaluate``: metrics of a run's model and of baselines, written and printed."""

import json
import shutil

import numpy as np
import pytest

from betavae.config import TrainConfig
from betavae.evaluation import evaluate_baseline, metric_params, parse_metric_names
from betavae.errors import BetaVAEError
from betavae.metrics.baselines import BASELINES, baseline
from betavae.runs import RunDir
from betavae.train import train
from betavae import data
from commands import run_cli
from processes import locked_by_another_process

SMALL = ["--n-train", "300", "--n-eval", "100"]


@pytest.fixture(scope="module")
def dsprites_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    train(TrainConfig(dataset="dsprites", arch="conv64", latent_dim=4, steps=5, batch_size=16, test_size=100,
                      out=str(out), device="cpu"), progress=False)
    return out


def test_evaluate_writes_every_metric_into_the_runs_metrics_and_keeps_the_test_loss(dsprites_run, capsys):
    code, out, err = run_cli(["evaluate", str(dsprites_run), "--metrics", "all", "--n-train", "60", "--n-eval", "30"],
                             capsys)
    assert code == 0, err
    metrics = RunDir(dsprites_run).read_metrics()
    assert "loss" in metrics["test"]
    section = metrics["disentanglement"]
    assert set(section) == {"beta_vae", "factor_vae", "mig", "dci", "sap", "settings", "step"}
    assert section["step"] == RunDir(dsprites_run).checkpoint_step()
    assert section["settings"]["mig"] == {"seed": 0, "num_train": 60, "num_bins": 20}
    assert section["settings"]["dci"] == {"seed": 0, "num_train": 60, "num_test": 30, "regressor": "extra_trees"}
    assert section["settings"]["beta_vae"] == {"seed": 0, "batch_size": 64, "num_train": 60, "num_eval": 30}
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


def test_non_finite_codes_are_a_clear_error_for_every_metric():
    from betavae.metrics import encode_factors

    dataset = data.load("dsprites", test_size=100)

    def broken(images):
        codes = np.zeros((len(images), 3))
        codes[0, 1] = np.nan
        return codes

    with pytest.raises(BetaVAEError, match="NaN or infinite codes"):
        encode_factors(dataset, broken, dataset.sample_factors(5, np.random.default_rng(0)))


class CountingProjection:
    """A fixed random projection of the pixels to 6 dimensions that counts the images it encodes."""

    def __init__(self, pixels: int) -> None:
        self.weights = np.random.default_rng(0).standard_normal((pixels, 6))
        self.images = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.images += len(images)
        return images.reshape(len(images), -1) @ self.weights


@pytest.mark.parametrize("name", ["beta_vae", "factor_vae", "mig", "dci", "sap"])
def test_predicted_image_counts_match_what_each_metric_encodes(name):
    from betavae import metrics
    from betavae.evaluation import images_encoded

    dataset = data.load("dsprites", test_size=100)
    represent = CountingProjection(4096)
    params = metric_params(name, {"n_train": 40, "n_eval": 20})
    metrics.get(name)(dataset, represent, np.random.default_rng(0), **params)
    assert represent.images == images_encoded(name, params)


def test_a_code_table_is_used_only_when_it_saves_work_and_gives_the_same_codes():
    from betavae.evaluation import cheapest_representation
    from betavae.metrics.representation import CodeTable, encode_factors

    dataset = data.load("shapes", test_size=100)
    direct = CountingProjection(784)
    assert cheapest_representation(dataset, direct, len(dataset)) is direct
    table = cheapest_representation(dataset, direct, len(dataset) + 1)
    assert isinstance(table, CodeTable)
    factors = dataset.sample_factors(300, np.random.default_rng(0))
    np.testing.assert_allclose(encode_factors(dataset, table, factors), encode_factors(dataset, direct, factors),
                               rtol=1e-6, atol=1e-3)
    dsprites = data.load("dsprites", test_size=100)
    pixels = baseline("pixels", dsprites, np.random.default_rng(0))  # 737,280 × 4,096 codes: 12 GB
    assert cheapest_representation(dsprites, pixels, 10**9) is pixels


def tiny_run(out, steps, resume=False):
    """A Shapes run of a few steps, checkpointed every 2, trained (or continued) into ``out``."""
    train(TrainConfig(dataset="shapes", arch="conv28", latent_dim=3, steps=steps, batch_size=8, test_size=100,
                      checkpoint_every=2, log_every=2, out=str(out), device="cpu"), resume=resume, progress=False)
    return out


def strict_json(path):
    """``path`` parsed as standard JSON: NaN and Infinity, which Python writes by default, are refused."""
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_evaluate_into_a_folder_being_trained_names_the_holders_pid(dsprites_run, capsys):
    before = RunDir(dsprites_run).metrics_path.read_bytes()
    with locked_by_another_process(dsprites_run) as pid:
        code, out, err = run_cli(["evaluate", str(dsprites_run), "--metrics", "mig", "--n-train", "100"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"in use by process {pid} (betavae train)" in err and f"kill {pid}" in err
    assert "done in" not in err and out == ""  # no metric ran
    assert RunDir(dsprites_run).metrics_path.read_bytes() == before


def test_scores_of_earlier_weights_move_to_history_when_training_goes_on(tmp_path, capsys):
    run = RunDir(tiny_run(tmp_path / "run", steps=4))
    code, _, err = run_cli(["evaluate", str(run.path), "--metrics", "mig", "--n-train", "100"], capsys)
    assert code == 0, err
    assert run.read_metrics()["disentanglement"]["step"] == 4
    tiny_run(run.path, steps=8, resume=True)
    metrics = run.read_metrics()
    assert "disentanglement" not in metrics
    (old,) = [entry for entry in metrics["history"] if entry["section"] == "disentanglement"]
    assert old["step"] == 4 and "mig" in old
    code, _, err = run_cli(["evaluate", str(run.path), "--metrics", "sap", "--n-train", "100"], capsys)
    assert code == 0, err
    section = run.read_metrics()["disentanglement"]
    assert section["step"] == 8 and "sap" in section and "mig" not in section
    assert set(section["settings"]) == {"sap"}


def test_evaluate_does_not_merge_its_scores_with_scores_of_another_step(tmp_path, capsys):
    run = RunDir(tiny_run(tmp_path / "run", steps=4))
    stale = {"dci": {"disentanglement": 0.5}, "settings": {"dci": {"seed": 0, "num_train": 7}}}
    run.update_metrics("disentanglement", stale, step=2)
    code, _, err = run_cli(["evaluate", str(run.path), "--metrics", "mig", "--n-train", "100"], capsys)
    assert code == 0, err
    metrics = run.read_metrics()
    assert set(metrics["disentanglement"]) == {"mig", "settings", "step"}
    assert set(metrics["disentanglement"]["settings"]) == {"mig"}
    assert {"section": "disentanglement", **stale, "step": 2} in metrics["history"]


def test_evaluating_one_metric_keeps_the_settings_of_the_others(dsprites_run, capsys):
    run_cli(["evaluate", str(dsprites_run), "--metrics", "dci,mig", "--n-train", "60", "--n-eval", "30"], capsys)
    code, _, err = run_cli(["evaluate", str(dsprites_run), "--metrics", "mig", "--n-train", "50", "--seed", "4"],
                           capsys)
    assert code == 0, err
    settings = RunDir(dsprites_run).read_metrics()["disentanglement"]["settings"]
    assert settings["dci"] == {"seed": 0, "num_train": 60, "num_test": 30, "regressor": "extra_trees"}
    assert settings["mig"] == {"seed": 4, "num_train": 50, "num_bins": 20}


def test_a_result_that_is_not_a_number_is_written_as_null_with_its_reason_and_printed_as_na(dsprites_run, capsys):
    # Seed 1 draws two points of the same shape: the shape's entropy is 0, its MIG 0/0.
    code, out, err = run_cli(["evaluate", str(dsprites_run), "--metrics", "mig", "--n-train", "2", "--seed", "1"],
                             capsys)
    assert code == 0, err
    section = strict_json(RunDir(dsprites_run).metrics_path)["disentanglement"]
    assert section["mig"]["mig_shape"] is None and section["mig"]["mig"] is None
    assert isinstance(section["mig"]["mig_scale"], float)
    reasons = section["settings"]["mig"]["null"]
    assert set(reasons) == {key for key, value in section["mig"].items() if value is None}
    assert reasons["mig_shape"].startswith("not a number")
    assert [line.split() for line in out.splitlines() if "mig.mig_shape" in line] == [["mig.mig_shape", "n/a"]]
    code, out, _ = run_cli(["evaluate", str(dsprites_run), "--metrics", "mig", "--n-train", "2", "--seed", "1",
                            "--json"], capsys)
    assert code == 0 and json.loads(out)["mig"]["mig_shape"] is None and "NaN" not in out


@pytest.mark.parametrize("args, message", [
    (["--metrics", "mig", "--n-train", "1"], "--n-train 1 is too small for mig (it needs at least 2); "
                                             "give --n-train 2 or more"),
    (["--metrics", "all", "--n-train", "1"], "--n-train 1 is too small for mig (it needs at least 2)"),
    (["--metrics", "sap", "--n-train", "0"], "--n-train 0 is too small for sap (it needs at least 1)"),
    (["--metrics", "dci", "--n-train", "0"], "--n-train 0 is too small for dci (it needs at least 1); "
                                             "give --n-train 1 or more"),
    (["--metrics", "dci", "--n-eval", "-5"], "--n-eval -5 is too small for dci (it needs at least 1)"),
    (["--metrics", "mig", "--n-eval", "0"], "--n-eval 0 is too small (it counts points); give --n-eval 1 or more"),
])
def test_sizes_too_small_for_a_metric_are_refused_before_any_work(dsprites_run, args, message, capsys, monkeypatch):
    import betavae.evaluation

    def no_work(*args, **kwargs):
        raise AssertionError("sizes must be checked before the model or the dataset is loaded")

    monkeypatch.setattr(betavae.evaluation, "load_model", no_work)
    monkeypatch.setattr(betavae.evaluation, "factor_dataset", no_work)
    for target in ([str(dsprites_run)], ["--baseline", "pca", "--dataset", "dsprites"]):
        code, _, err = run_cli(["evaluate", *target, *args], capsys)
        assert code == 1 and len(err.strip().splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("name", ["beta_vae", "factor_vae", "mig", "dci", "sap"])
def test_one_point_below_the_minimum_sizes_no_metric_computes(name):
    """MIN_SIZES is where each metric starts to compute: one point fewer fails or gives NaN, every time."""
    from betavae import metrics
    from betavae.evaluation import MIN_SIZES

    dataset = data.load("dsprites", test_size=100)
    params = metric_params(name, {"n_train": 40, "n_eval": 20})
    for param, least in MIN_SIZES.get(name, {}).items():
        for seed in range(5):
            try:
                with np.errstate(invalid="ignore"):
                    values = metrics.get(name)(dataset, CountingProjection(4096), np.random.default_rng(seed),
                                               **{**params, param: least - 1})
            except ValueError:
                continue
            assert any(np.isnan(value) for value in values.values())
    at_least = {param: MIN_SIZES.get(name, {}).get(param, 1) for param in params}
    values = metrics.get(name)(dataset, CountingProjection(4096), np.random.default_rng(0), **at_least)
    assert values


def test_an_unreadable_metrics_json_is_refused_before_any_metric_is_computed(dsprites_run, tmp_path, capsys,
                                                                              monkeypatch):
    import betavae.evaluation

    run = tmp_path / "run"
    shutil.copytree(dsprites_run, run)
    (run / "metrics.json").write_text("{not json")

    def no_scoring(*args, **kwargs):
        raise AssertionError("metrics.json must be checked before scoring")

    monkeypatch.setattr(betavae.evaluation, "score", no_scoring)
    code, _, err = run_cli(["evaluate", str(run), "--metrics", "mig", "--n-train", "100"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "metrics.json is not valid JSON" in err and "done in" not in err
    assert (run / "metrics.json").read_text() == "{not json"
