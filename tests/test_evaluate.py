"""``betavae evaluate``: metrics of a run's model and of baselines, written and printed."""

import dataclasses
import functools
import json
import shutil

import numpy as np
import pytest
import torch

from betavae import data, metrics, models
from betavae.config import TrainConfig
from betavae.errors import BetaVAEError
from betavae.evaluation import evaluate_baseline, score
from betavae.metrics.baselines import BASELINES, baseline
from betavae.metrics.representation import FactorRepresentation, model_representation
from betavae.metrics.settings import (
    images_encoded,
    metric_generator,
    metric_params,
    metric_settings,
    parse_metric_names,
)
from betavae.runs import RunDir, load_model
from betavae.training.loop import train
from commands import run_cli
from marks import slow_fixture
from processes import locked_by_another_process
from runfolders import untrained_run

SMALL = ["--n-train", "300", "--n-eval", "100"]


@pytest.fixture(scope="module")
@slow_fixture
def dsprites_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    train(TrainConfig(dataset="dsprites", arch="conv64", latent_dim=4, steps=5, batch_size=16, test_size=100,
                      out=str(out), device="cpu"), progress=False)
    return out


def test_evaluate_writes_every_metric_and_settings_that_reproduce_it_and_keeps_the_test_loss(
    dsprites_run, capsys
):
    code, out, err = run_cli(
        ["evaluate", str(dsprites_run), "--metrics", "all", "--n-train", "60", "--n-eval", "30"], capsys
    )
    assert code == 0, err
    written = RunDir(dsprites_run).read_metrics()
    assert "loss" in written["test"]
    section = written["disentanglement"]
    assert set(section) == {*metrics.ALL_METRICS, "settings", "step"}
    assert section["step"] == RunDir(dsprites_run).checkpoint_step()
    assert section["settings"]["mig"] == {"seed": 0, "n_train": 60, "num_bins": 20}
    assert section["settings"]["dci"] == {"seed": 0, "n_train": 60, "n_eval": 30, "regressor": "extra_trees"}
    assert section["settings"]["beta_vae"] == {"seed": 0, "batch_size": 64, "n_train": 60, "n_eval": 30}
    assert "mig.mig" in out and "written to" in out
    assert all(f"{name}: done in" in err for name in metrics.ALL_METRICS)
    # What metrics.json records of each metric reproduces its numbers: its function called with the
    # recorded parameters and the generator of the recorded seed and its name.
    run = RunDir(dsprites_run)
    config = run.read_config()
    dataset = data.load(config.dataset, **config.dataset_kwargs())
    represent = model_representation(load_model(run, torch.device("cpu")))
    for name in metrics.ALL_METRICS:
        settings = dict(section["settings"][name])
        seed = settings.pop("seed")
        with np.errstate(divide="ignore", invalid="ignore"):
            again = metrics.get(name).compute(dataset, represent, metric_generator(seed, name), **settings)
        assert {key: None if np.isnan(value) else float(value) for key, value in again.items()} == section[
            name
        ], name


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
    out = untrained_run(TrainConfig(dataset="mnist", data_dir=str(mnist_dir), latent_dim=2, device="cpu"),
                        tmp_path / "mnist")
    code, _, err = run_cli(["evaluate", str(out)], capsys)
    assert code == 1
    assert err.strip() == (
        "betavae: error: dataset 'mnist' has no known generative factors, so disentanglement "
        f"cannot be measured on it; train on {' or '.join(data.with_factors())}"
    )


def test_ground_truth_baseline_scores_far_above_an_untrained_encoder():
    sizes = {"n_train": 2000, "n_eval": 500}
    factors = evaluate_baseline("factors", "dsprites", ["mig"], seed=0, sizes=sizes)["mig"]["mig"]
    untrained = evaluate_baseline("untrained", "dsprites", ["mig"], seed=0, sizes=sizes, device="cpu")["mig"][
        "mig"
    ]
    assert factors > 0.5 and untrained < 0.2


# FastICA takes seconds to fit
@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name == "ica" else name for name in BASELINES]
)
def test_every_baseline_gives_one_code_per_image(name):
    dataset = data.load("shapes", test_size=100)
    represent = baseline(name, dataset, np.random.default_rng(0), latent_dim=6)
    factors = dataset.sample_factors(12, np.random.default_rng(1))
    codes = (
        represent(factors)
        if getattr(represent, "uses_factors", False)
        else represent(dataset.render(factors))
    )
    expected = {"pixels": 784, "factors": 5}.get(name, 6)
    assert np.asarray(codes).shape == (12, expected)


@pytest.mark.slow  # fits FastICA on 5,000 images of 4,096 pixels (about 15 s)
def test_ica_fits_the_medium_scales_dsprites_sample_into_finite_codes():
    """At the medium scale's 5,000 fitting images FastICA on every pixel ended in NaN weights for every
    seed tried ("A has a NaN entry"), which would stop a study's measurements: the constant pixels
    (dSprites' unlit border) are left out of the fit."""
    dataset = data.load("dsprites", test_size=100)
    represent = baseline("ica", dataset, np.random.default_rng(0), latent_dim=10, num_fit=5_000)
    codes = np.asarray(represent(dataset.render(dataset.sample_factors(64, np.random.default_rng(1)))))
    assert codes.shape == (64, 10) and np.isfinite(codes).all() and codes.std(axis=0).min() > 0


def test_the_untrained_baseline_takes_the_papers_fully_connected_network_when_asked():
    dataset = data.load("dsprites", test_size=100)
    images = dataset.render(dataset.sample_factors(8, np.random.default_rng(1)))
    default, fc = (baseline("untrained", dataset, np.random.default_rng(0), latent_dim=3, arch=arch)
                   for arch in (None, "fc"))
    torch.manual_seed(int(np.random.default_rng(0).integers(2**31)))
    by_hand = model_representation(models.build("fc", 3, dataset.image_shape).eval())
    np.testing.assert_array_equal(fc(images), by_hand(images))
    assert not np.allclose(default(images), fc(images))  # the default is still the dataset's conv64
    with pytest.raises(BetaVAEError, match="untrained baseline only"):
        baseline("pca", dataset, np.random.default_rng(0), arch="fc")


def test_the_arch_option_reaches_the_untrained_baseline(capsys, monkeypatch):
    from betavae.metrics import baselines

    built = []
    monkeypatch.setattr(baselines, "untrained", lambda *args, arch=None, **kwargs: built.append(arch) or (
        lambda images: np.zeros((len(images), 2))))
    code, out, err = run_cli(["evaluate", "--baseline", "untrained", "--dataset", "dsprites", "--arch", "fc",
                              "--metrics", "beta_vae_paper", "--n-train", "20", "--n-eval", "20"], capsys)
    assert code == 0, err
    assert built == ["fc"] and "beta_vae_paper.eval_accuracy" in out


def test_baseline_cli_prints_a_table(capsys):
    code, out, err = run_cli(
        ["evaluate", "--baseline", "factors", "--dataset", "dsprites", "--metrics", "mig", *SMALL], capsys
    )
    assert code == 0, err
    assert out.startswith("disentanglement of baseline factors on dsprites (seed 0)")


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate"], "give a RUN_DIR to evaluate, or --baseline NAME --dataset NAME"),
        (["evaluate", "--baseline", "pca"], "--baseline takes --dataset"),
        (["evaluate", "--baseline", "vgg", "--dataset", "dsprites"], "unknown baseline 'vgg'"),
        (["evaluate", "--baseline", "pca", "--dataset", "mnist"], "no known generative factors"),
        (["evaluate", "--baseline", "pca", "--dataset", "dsprites", "--arch", "fc"], "pca has none"),
        (["evaluate", "somewhere", "--arch", "fc"], "a run has its own"),
        (["evaluate", "--baseline", "untrained", "--dataset", "dsprites", "--arch", "vgg"],
         "unknown architecture 'vgg'"),
        (
            ["evaluate", "somewhere", "--metrics", "mig,fid"],
            "unknown metric 'fid'; choose one of: beta_vae, beta_vae_paper, beta_vae_weak, dci",
        ),
        (["evaluate", "no/such/run"], "no/such/run is not a run folder"),
    ],
)
def test_bad_evaluate_input_is_a_one_line_error(args, message, capsys):
    code, _, err = run_cli(args, capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("name", list(metrics.METRICS))
def test_size_options_reach_every_metric_under_the_same_names(name):
    metric = metrics.get(name)
    assert "n_train" in metric.sizes and set(metric.sizes) <= set(metrics.SIZE_NAMES)
    sizes = {"n_train": 100, "n_eval": 40, "batch_size": 8}
    assert metric_params(name, sizes) == {size: sizes[size] for size in metric.sizes}
    # The batch is the L pairs of the β-VAE scores and the votes' batch of the FactorVAE score, no other's.
    assert ("batch_size" in metric.sizes) == (name in ("beta_vae", "beta_vae_weak", "beta_vae_paper",
                                                       "factor_vae"))
    assert metric_params(name, {"n_train": None, "n_eval": 40}) == (
        {"n_eval": 40} if "n_eval" in metric.sizes else {}
    )
    assert set(metric.min_sizes) <= set(metric.sizes)


def test_all_names_every_metric_but_slower_variants_and_nothing_is_no_metric():
    assert parse_metric_names("all") == [name for name in metrics.METRICS
                                         if name not in ("dci_gbt", "beta_vae_weak", "beta_vae_paper")]
    assert parse_metric_names("beta_vae_weak") == ["beta_vae_weak"]  # the study's grids ask for it by name
    assert parse_metric_names("beta_vae_paper") == ["beta_vae_paper"]  # the paper's protocol, by name
    assert parse_metric_names("dci_gbt") == ["dci_gbt"]  # the reference's predictor, asked for by name
    assert metric_settings("dci_gbt", {"n_train": 50})["regressor"] == "gbt"
    assert metric_settings("dci", {"n_train": 50})["regressor"] == "extra_trees"
    assert parse_metric_names(" mig, dci ") == ["mig", "dci"]
    with pytest.raises(BetaVAEError):
        parse_metric_names(" , ")


@pytest.mark.parametrize("name", list(metrics.METRICS))
def test_non_finite_codes_are_a_clear_error_for_every_metric(name):
    dataset = data.load("dsprites", test_size=100)

    def broken(images):
        codes = np.zeros((len(images), 3))
        codes[0, 1] = np.nan
        return codes

    sizes = {size: max(metrics.get(name).min_sizes.get(size, 1), 8) for size in metrics.get(name).sizes}
    with pytest.raises(BetaVAEError, match="NaN or infinite codes"):
        metrics.get(name).compute(dataset, broken, np.random.default_rng(0), **sizes)


class CountingProjection:
    """A fixed random projection of the pixels to 6 dimensions that counts the images it encodes."""

    def __init__(self, pixels: int) -> None:
        self.weights = np.random.default_rng(0).standard_normal((pixels, 6))
        self.images = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.images += len(images)
        return images.reshape(len(images), -1) @ self.weights


@pytest.mark.parametrize("name", list(metrics.METRICS))
def test_predicted_image_counts_match_what_each_metric_encodes(name):
    dataset = data.load("dsprites", test_size=100)
    represent = CountingProjection(4096)
    sizes = {"n_train": 40, "n_eval": 20}
    metrics.get(name).compute(dataset, represent, np.random.default_rng(0), **metric_params(name, sizes))
    assert represent.images == images_encoded(name, sizes)


def test_a_metrics_numbers_do_not_change_when_a_metric_is_inserted_before_it(monkeypatch):
    dataset = data.load("dsprites", test_size=100)
    sizes = {"n_train": 200, "n_eval": 100}
    before = score(dataset, CountingProjection(4096), ["mig", "sap"], seed=3, sizes=sizes)
    inserted = metrics.Metric(
        lambda dataset, represent, rng, n_train=1: {"value": 0.0},
        "new",
        headline="value",
        images_encoded=lambda p: 0,
    )
    place = list(metrics.METRICS).index("mig")
    monkeypatch.setattr(metrics, "METRICS", {"new": inserted, **metrics.METRICS})
    assert list(metrics.METRICS).index("mig") == place + 1  # its place moved
    assert score(dataset, CountingProjection(4096), ["mig", "sap"], seed=3, sizes=sizes) == before
    assert (
        score(dataset, CountingProjection(4096), ["new", "sap", "mig"], seed=3, sizes=sizes)["mig"]
        == before["mig"]
    )


def test_baselines_are_fitted_with_a_stream_that_no_metric_draws_from(monkeypatch):
    from betavae.metrics import baselines

    first_draws = {}

    def recording(name, compute):
        @functools.wraps(compute)  # keeps the signature: the metric's defaults and sizes
        def compute_nothing(dataset, represent, rng, **params):
            first_draws[name] = tuple(rng.integers(2**63, size=4))
            return {"value": 0.0}

        return compute_nothing

    def fitted(name, dataset, rng, latent_dim=10, device="cpu", num_fit=10_000, arch=None):
        first_draws["baseline fitting"] = tuple(rng.integers(2**63, size=4))
        return FactorRepresentation(dataset)

    monkeypatch.setattr(
        metrics,
        "METRICS",
        {
            name: dataclasses.replace(metric, compute=recording(name, metric.compute))
            for name, metric in metrics.METRICS.items()
        },
    )
    monkeypatch.setattr(baselines, "baseline", fitted)
    evaluate_baseline("pca", "shapes", list(metrics.METRICS), seed=5, sizes={"n_train": 10, "n_eval": 10})
    assert set(first_draws) == {*metrics.METRICS, "baseline fitting"}
    assert len(set(first_draws.values())) == len(first_draws)  # every stream differs from every other


def test_a_code_table_is_used_only_when_it_saves_work_and_gives_the_same_codes():
    from betavae.evaluation import cheapest_representation
    from betavae.metrics.representation import CodeTable, encode_factors

    dataset = data.load("shapes", test_size=100)
    direct = CountingProjection(784)
    assert cheapest_representation(dataset, direct, len(dataset)) is direct
    table = cheapest_representation(dataset, direct, len(dataset) + 1)
    assert isinstance(table, CodeTable)
    factors = dataset.sample_factors(300, np.random.default_rng(0))
    np.testing.assert_allclose(
        encode_factors(dataset, table, factors),
        encode_factors(dataset, direct, factors),
        rtol=1e-6,
        atol=1e-3,
    )
    dsprites = data.load("dsprites", test_size=100)
    pixels = baseline("pixels", dsprites, np.random.default_rng(0))  # 737,280 × 4,096 codes: 12 GB
    assert cheapest_representation(dsprites, pixels, 10**9) is pixels


def tiny_run(out, steps, resume=False):
    """A Shapes run of a few steps, checkpointed every 2, trained (or continued) into ``out``."""
    train(
        TrainConfig(
            dataset="shapes",
            arch="conv28",
            latent_dim=3,
            steps=steps,
            batch_size=8,
            test_size=100,
            checkpoint_every=2,
            log_every=2,
            out=str(out),
            device="cpu",
        ),
        resume=resume,
        progress=False,
    )
    return out


def strict_json(path):
    """``path`` parsed as standard JSON: NaN and Infinity, which Python writes by default, are refused."""

    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_evaluate_into_a_folder_being_trained_names_the_holders_pid(dsprites_run, capsys):
    before = RunDir(dsprites_run).metrics_path.read_bytes()
    with locked_by_another_process(dsprites_run) as pid:
        code, out, err = run_cli(
            ["evaluate", str(dsprites_run), "--metrics", "mig", "--n-train", "100"], capsys
        )
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"in use by process {pid} (betavae train)" in err and f"kill {pid}" in err
    assert "done in" not in err and out == ""  # no metric ran
    assert RunDir(dsprites_run).metrics_path.read_bytes() == before


@pytest.mark.slow
def test_scores_of_earlier_weights_move_to_history_when_training_goes_on(tmp_path, capsys):
    run = RunDir(tiny_run(tmp_path / "run", steps=4))
    code, _, err = run_cli(["evaluate", str(run.path), "--metrics", "mig", "--n-train", "100"], capsys)
    assert code == 0, err
    assert run.read_metrics()["disentanglement"]["step"] == 4
    tiny_run(run.path, steps=8, resume=True)
    written = run.read_metrics()
    assert "disentanglement" not in written
    (old,) = [entry for entry in written["history"] if entry["section"] == "disentanglement"]
    assert old["step"] == 4 and "mig" in old
    code, _, err = run_cli(["evaluate", str(run.path), "--metrics", "sap", "--n-train", "100"], capsys)
    assert code == 0, err
    section = run.read_metrics()["disentanglement"]
    assert section["step"] == 8 and "sap" in section and "mig" not in section
    assert set(section["settings"]) == {"sap"}


@pytest.mark.slow
def test_evaluate_does_not_merge_its_scores_with_scores_of_another_step(tmp_path, capsys):
    run = RunDir(tiny_run(tmp_path / "run", steps=4))
    stale = {"dci": {"disentanglement": 0.5}, "settings": {"dci": {"seed": 0, "n_train": 7}}}
    run.update_metrics("disentanglement", stale, step=2)
    code, _, err = run_cli(["evaluate", str(run.path), "--metrics", "mig", "--n-train", "100"], capsys)
    assert code == 0, err
    written = run.read_metrics()
    assert set(written["disentanglement"]) == {"mig", "settings", "step"}
    assert set(written["disentanglement"]["settings"]) == {"mig"}
    assert {"section": "disentanglement", **stale, "step": 2} in written["history"]


def test_evaluating_one_metric_keeps_the_settings_of_the_others(dsprites_run, capsys):
    run_cli(
        ["evaluate", str(dsprites_run), "--metrics", "dci,mig", "--n-train", "60", "--n-eval", "30"], capsys
    )
    code, _, err = run_cli(
        ["evaluate", str(dsprites_run), "--metrics", "mig", "--n-train", "50", "--seed", "4"], capsys
    )
    assert code == 0, err
    settings = RunDir(dsprites_run).read_metrics()["disentanglement"]["settings"]
    assert settings["dci"] == {"seed": 0, "n_train": 60, "n_eval": 30, "regressor": "extra_trees"}
    assert settings["mig"] == {"seed": 4, "n_train": 50, "num_bins": 20}


def test_a_result_that_is_not_a_number_is_written_as_null_with_its_reason_and_printed_as_na(
    dsprites_run, capsys
):
    # Seed 3 draws two points of the same shape: the shape's entropy is 0, its MIG 0/0.
    code, out, err = run_cli(
        ["evaluate", str(dsprites_run), "--metrics", "mig", "--n-train", "2", "--seed", "3"], capsys
    )
    assert code == 0, err
    section = strict_json(RunDir(dsprites_run).metrics_path)["disentanglement"]
    assert section["mig"]["mig_shape"] is None and section["mig"]["mig"] is None
    assert isinstance(section["mig"]["mig_scale"], float)
    reasons = section["settings"]["mig"]["null"]
    assert set(reasons) == {key for key, value in section["mig"].items() if value is None}
    assert reasons["mig_shape"].startswith("not a number")
    assert [line.split() for line in out.splitlines() if "mig.mig_shape" in line] == [
        ["mig.mig_shape", "n/a"]
    ]
    code, out, _ = run_cli(
        ["evaluate", str(dsprites_run), "--metrics", "mig", "--n-train", "2", "--seed", "3", "--json"], capsys
    )
    assert code == 0 and json.loads(out)["mig"]["mig_shape"] is None and "NaN" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--metrics", "mig", "--n-train", "1"],
            "--n-train 1 is too small for mig (it needs at least 2); give --n-train 2 or more",
        ),
        (["--metrics", "all", "--n-train", "1"], "--n-train 1 is too small for mig (it needs at least 2)"),
        (["--metrics", "sap", "--n-train", "0"], "--n-train 0 is too small for sap (it needs at least 1)"),
        (
            ["--metrics", "dci", "--n-train", "0"],
            "--n-train 0 is too small for dci (it needs at least 1); give --n-train 1 or more",
        ),
        (["--metrics", "dci", "--n-eval", "-5"], "--n-eval -5 is too small for dci (it needs at least 1)"),
        (
            ["--metrics", "mig", "--n-eval", "0"],
            "--n-eval 0 is too small (it counts points); give --n-eval 1 or more",
        ),
    ],
)
def test_sizes_too_small_for_a_metric_are_refused_before_any_work(
    dsprites_run, args, message, capsys, monkeypatch
):
    import betavae.evaluation

    def no_work(*args, **kwargs):
        raise AssertionError("sizes must be checked before the model or the dataset is loaded")

    monkeypatch.setattr(betavae.evaluation, "load_model", no_work)
    monkeypatch.setattr(betavae.evaluation, "factor_dataset", no_work)
    for target in ([str(dsprites_run)], ["--baseline", "pca", "--dataset", "dsprites"]):
        code, _, err = run_cli(["evaluate", *target, *args], capsys)
        assert code == 1 and len(err.strip().splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("name", list(metrics.METRICS))
def test_one_point_below_the_minimum_sizes_no_metric_computes(name):
    """A metric's min_sizes is where it starts to compute: one point fewer fails or gives NaN, every time."""
    metric = metrics.get(name)
    dataset = data.load("dsprites", test_size=100)
    params = metric_params(name, {"n_train": 40, "n_eval": 20})
    for size, least in metric.min_sizes.items():
        for seed in range(5):
            try:
                with np.errstate(invalid="ignore"):
                    values = metric.compute(
                        dataset,
                        CountingProjection(4096),
                        np.random.default_rng(seed),
                        **{**params, size: least - 1},
                    )
            except ValueError:
                continue
            assert any(np.isnan(value) for value in values.values())
    at_least = {size: metric.min_sizes.get(size, 1) for size in params}
    values = metric.compute(dataset, CountingProjection(4096), np.random.default_rng(0), **at_least)
    assert values


def test_an_unreadable_metrics_json_is_refused_before_any_metric_is_computed(
    dsprites_run, tmp_path, capsys, monkeypatch
):
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
