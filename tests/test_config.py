"""Config precedence (config_from_sources), TOML round trips and the run folder's atomic writes."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from betavae.checks import FLOAT32_MAX
from betavae.cli import main, train
from betavae.config import FLAGS, TrainConfig, load_config, read_toml, to_toml, typed_names
from betavae.data import DATASETS
from betavae.errors import BetaVAEError
from betavae.files import atomic_write_bytes
from betavae.objectives import RECONSTRUCTIONS, REDUCTIONS
from betavae.runs import RunDir
from betavae.training.setup import config_from_sources


def test_flags_override_file_which_overrides_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('dataset = "dsprites"\nsteps = 20\nlr = 0.001\n')
    config = load_config(path).merged({"steps": 7, "lr": None})
    assert (config.dataset, config.steps, config.lr, config.batch_size) == (
        "dsprites",
        7,
        0.001,
        TrainConfig().batch_size,
    )


def given_flags(**given):
    """Every ``betavae train`` flag, None but those ``given``: what the command hands the library."""
    return {key: given.get(key) for key in FLAGS}


def test_train_config_takes_flags_over_the_file_over_the_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('dataset = "dsprites"\nsteps = 20\nlr = 0.001\n')
    config = config_from_sources(given_flags(steps=7, latent_dim=3), config_file=path)
    assert (config.dataset, config.steps, config.lr, config.latent_dim, config.batch_size) == (
        "dsprites", 7, 0.001, 3, TrainConfig().batch_size)
    assert config_from_sources(given_flags(steps=7)) == TrainConfig(steps=7)


@pytest.mark.parametrize(
    "in_file, flags, beta, beta_norm",
    [
        ("beta = 4.0", {"beta_norm": 0.1}, None, 0.1),  # the flag's form replaces the file's
        ("beta_norm = 0.1", {"beta": 2.0}, 2.0, None),
        ("beta = 4.0", {"beta": 2.0}, 2.0, None),
        ("beta = 4.0", {"latent_dim": 5}, 4.0, None),  # no β flag: the file's form stays
        ("beta_norm = 0.1", {}, None, 0.1),
    ],
)
def test_a_beta_flag_replaces_whichever_form_of_beta_the_file_gave(tmp_path, in_file, flags, beta, beta_norm):
    path = tmp_path / "c.toml"
    path.write_text(in_file + "\n")
    config = config_from_sources(given_flags(**flags), config_file=path)
    assert (config.beta, config.beta_norm) == (beta, beta_norm)
    config.validate()  # never both forms at once


def saved_run(path, config):
    """A run folder holding ``config`` as its config.toml and a checkpoint: what --resume reads."""
    path.mkdir()
    (path / "config.toml").write_text(to_toml(config.to_dict()))
    RunDir(path).checkpoint_path.write_bytes(b"")
    return path


def test_resume_continues_from_the_runs_saved_config_with_the_flags_over_it(tmp_path):
    out = saved_run(tmp_path / "run", TrainConfig(latent_dim=3, beta_norm=0.05, steps=10, objective="dip",
                                                  dip_type="i", out=str(tmp_path / "run")))
    config = config_from_sources(given_flags(out=str(out), steps=20), resume=True)
    assert (config.latent_dim, config.beta_norm, config.steps, config.objective, config.dip_type) == (
        3, 0.05, 20, "dip", "i")
    raw = config_from_sources(given_flags(out=str(out), beta=2.0), resume=True)
    assert (raw.beta, raw.beta_norm) == (2.0, None)


def test_a_config_file_is_the_base_even_when_resuming(tmp_path):
    out = saved_run(tmp_path / "run", TrainConfig(latent_dim=3, out=str(tmp_path / "run")))
    path = tmp_path / "c.toml"
    path.write_text("latent_dim = 6\n")
    assert config_from_sources(given_flags(out=str(out)), config_file=path, resume=True).latent_dim == 6


def test_resume_without_out_is_refused():
    with pytest.raises(BetaVAEError, match="^--resume needs --out: the run folder to continue$"):
        config_from_sources(given_flags(), resume=True)


def test_a_config_written_before_the_reconstruction_reduction_reads_as_the_sum_it_trained_with(tmp_path):
    path = tmp_path / "config.toml"
    written = TrainConfig(recon="gaussian").to_dict()
    del written["recon_reduction"]
    path.write_text(to_toml(written))
    assert "recon_reduction" not in path.read_text()
    config = load_config(path)
    assert (config.recon, config.recon_reduction) == ("gaussian", "sum")
    path.write_text(to_toml(TrainConfig(recon="mse", recon_reduction="mean").to_dict()))
    assert 'recon_reduction = "mean"' in path.read_text() and load_config(path).recon_reduction == "mean"


def test_unknown_config_key_lists_the_valid_ones(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("stepz = 3\n")
    with pytest.raises(BetaVAEError, match="unknown key stepz; valid keys: dataset, arch"):
        load_config(path)


def test_malformed_or_missing_toml_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3\n")
    with pytest.raises(BetaVAEError, match="not valid TOML"):
        read_toml(bad)
    with pytest.raises(BetaVAEError, match="does not exist"):
        read_toml(tmp_path / "absent.toml")


@given(
    steps=st.integers(1, 10**9),
    lr=st.floats(1e-8, 1.0),
    out=st.text(min_size=1, max_size=30),
    beta=st.one_of(st.none(), st.floats(0, 1e3)),
    recon=st.sampled_from(RECONSTRUCTIONS),
    reduction=st.sampled_from(REDUCTIONS),
    options=st.dictionaries(
        st.sampled_from(["in_memory", "seed", "path"]),
        st.one_of(st.booleans(), st.integers(0, 99), st.text(max_size=10)),
    ),
)
@settings(max_examples=60, deadline=None)
def test_config_survives_a_toml_round_trip(tmp_path_factory, steps, lr, out, beta, recon, reduction, options):
    config = TrainConfig(steps=steps, lr=lr, out=out, beta=beta, recon=recon, recon_reduction=reduction,
                         dataset_options=options)
    path = tmp_path_factory.mktemp("rt") / "config.toml"
    path.write_text(to_toml({**config.to_dict(), "derived": {"beta": 1.5, "image_shape": [1, 28, 28]}}))
    assert load_config(path) == config


@pytest.mark.parametrize(
    "change, message",
    [
        ({"beta": 1.0, "beta_norm": 0.1}, "not both"),
        ({"steps": 0}, "steps must be a positive integer"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"beta_norm": float("nan")}, "beta_norm must be a finite"),
        ({"dataset": "cifar"}, f"unknown dataset 'cifar'; choose one of: {', '.join(sorted(DATASETS))}"),
        ({"recon": "l1"}, "choose one of: bernoulli, gaussian, lmse, mse"),
        ({"recon_reduction": "median"}, r"reduction 'median'; choose one of: mean, sum \(recon_reduction\)"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"cuda_graph": "yes"}, "cuda_graph must be true or false, got the string 'yes'"),
        ({"beta": True}, "beta must be a number, got the boolean true"),
        ({"device": 3}, "device must be a string, got the integer 3"),
        ({"seed": -1}, "seed must be a whole number from 0 to 4294967295, got -1"),
        (
            {"seed": 2**63},
            "seed must be a whole number from 0 to 4294967295, got 9223372036854775808",
        ),
    ],
)
def test_invalid_settings_fail_before_any_work(change, message):
    with pytest.raises(BetaVAEError, match=message):
        TrainConfig(**change).validate()


@pytest.mark.parametrize(
    "line, message",
    [
        ('beta = "x"', "beta must be a number, got the string 'x'"),
        ('seed = "1"', "seed must be an integer, got the string '1'"),
        ("device = 3", "device must be a string, got the integer 3"),
        ("beta = true", "beta must be a number, got the boolean true"),
        ("steps = true", "steps must be an integer, got the boolean true"),
        ("steps = 1.5", "steps must be an integer, got the number 1.5"),
        ("cuda_graph = 1", "cuda_graph must be true or false, got the integer 1"),
        ("dataset_options = 3", "dataset_options must be a table, got the integer 3"),
        ("arch = [1, 2]", "arch must be a string, got an array"),
    ],
)
def test_a_config_value_of_the_wrong_type_is_one_line_naming_key_and_types(tmp_path, line, message):
    path = tmp_path / "run.toml"
    path.write_text(f"{line}\n")
    with pytest.raises(BetaVAEError) as error:
        load_config(path)
    assert str(error.value) == f"config file {path}: {message}"


def test_a_whole_number_is_taken_for_a_float_setting(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("lr = 1\nbeta = 4\n")
    config = load_config(path)
    assert (config.lr, config.beta) == (1.0, 4.0) and type(config.lr) is type(config.beta) is float


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--dataset", "shapes", "--steps", "2", "--out", "{out}"], ["evaluate"],
        ["transfer", "runs/a", "--out", "{out}"], ["show", "traverse", "runs/a"],
        ["show", "factors", "runs/a"], ["show", "samples", "runs/a"],
    ],
)
@pytest.mark.parametrize(
    "seed, shown", [("-1", "-1"), ("99999999999999999999", "99999999999999999999"), ("1.5", "'1.5'")]
)
def test_seed_out_of_range_is_refused_by_every_command(tmp_path, capsys, args, seed, shown):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main([arg.format(out=out) for arg in args] + ["--seed", seed])
    err = capsys.readouterr().err
    assert exit_info.value.code != 0
    assert err.splitlines() == [
        f"betavae: error: --seed must be a whole number from 0 to 4294967295, got {shown}"
    ]
    assert not out.exists()  # refused before any work


def test_validation_names_the_flag_the_user_typed():
    every_flag = typed_names(FLAGS)
    for change, message in [
        ({"latent_dim": 0}, "--latent must be a positive integer, got 0"),
        ({"batch_size": 0}, "--batch-size must be a positive integer, got 0"),
        ({"beta": 1.0, "beta_norm": 0.1}, "give β either raw (--beta) or normalised (--beta-norm), not both"),
        (
            {"arch": "vgg"},
            "unknown architecture 'vgg'; choose one of: burgess64, conv28, conv64, conv64_dlib, fc (--arch)",
        ),
        ({"seed": -1}, "--seed must be a whole number from 0 to 4294967295, got -1"),
        ({"lr": 1e39}, "--lr must be a positive number no larger than 3.4e38 (float32), got 1e+39"),
        ({"cuda_graph": 1}, "--cuda-graph must be true or false, got the integer 1"),
    ]:
        with pytest.raises(BetaVAEError) as error:
            TrainConfig(**change).validate(every_flag)
        assert str(error.value) == message
    # a field not typed as a flag
    with pytest.raises(BetaVAEError, match="^latent_dim must be a positive integer, got 0$"):
        TrainConfig(latent_dim=0).validate(typed_names(["batch_size"]))


def test_flags_names_the_train_command_flag_of_each_field():
    options = {param.name: param.opts for param in train.params if param.name in TrainConfig.keys()}
    assert set(FLAGS) == set(options) == set(TrainConfig.keys()) - {"dataset_options"}
    assert all(FLAGS[name] in opts for name, opts in options.items())


@pytest.mark.parametrize(
    "name, message",
    [
        ("lr", "lr must be a positive number no larger than 3.4e38 (float32), got 1e+39"),
        ("beta", "beta must be a finite non-negative number no larger than 3.4e38 (float32), got 1e+39"),
        (
            "beta_norm",
            "beta_norm must be a finite non-negative number no larger than 3.4e38 (float32), got 1e+39",
        ),
    ],
)
def test_learning_rate_overflowing_float32_is_refused(name, message):
    assert FLOAT32_MAX == torch.finfo(torch.float32).max
    TrainConfig(**{name: FLOAT32_MAX}).validate()
    with pytest.raises(BetaVAEError) as error:
        TrainConfig(**{name: 1e39}).validate()
    assert str(error.value) == message


def test_atomic_write_keeps_the_old_content_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_bytes(b"old")

    def disk_full(fd):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_metrics_sections_merge_instead_of_overwriting(tmp_path):
    run = RunDir(tmp_path)
    run.update_metrics("test", {"loss": 1.0}, step=5)
    run.update_metrics("beta_vae", {"eval_accuracy": 0.9}, step=5)
    run.update_metrics("test", {"loss": 2.0}, step=5)
    assert run.read_metrics() == {
        "test": {"loss": 2.0, "step": 5},
        "beta_vae": {"eval_accuracy": 0.9, "step": 5},
    }
