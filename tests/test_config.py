"""Config precedence, TOML round trips and the run folder's atomic writes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from betavae.config import TrainConfig, load_config, read_toml, to_toml
from betavae.errors import BetaVAEError
from betavae.runs import RunDir, atomic_write_bytes


def test_flags_override_file_which_overrides_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('dataset = "dsprites"\nsteps = 20\nlr = 0.001\n')
    config = load_config(path).merged({"steps": 7, "lr": None})
    assert (config.dataset, config.steps, config.lr, config.batch_size) == ("dsprites", 7, 0.001, TrainConfig().batch_size)


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


@given(steps=st.integers(1, 10**9), lr=st.floats(1e-8, 1.0), out=st.text(min_size=1, max_size=30),
       beta=st.one_of(st.none(), st.floats(0, 1e3)), options=st.dictionaries(
           st.sampled_from(["in_memory", "seed", "path"]), st.one_of(st.booleans(), st.integers(0, 99), st.text(max_size=10))))
@settings(max_examples=60, deadline=None)
def test_config_survives_a_toml_round_trip(tmp_path_factory, steps, lr, out, beta, options):
    config = TrainConfig(steps=steps, lr=lr, out=out, beta=beta, dataset_options=options)
    path = tmp_path_factory.mktemp("rt") / "config.toml"
    path.write_text(to_toml({**config.to_dict(), "derived": {"beta": 1.5, "image_shape": [1, 28, 28]}}))
    assert load_config(path) == config


@pytest.mark.parametrize("change, message", [
    ({"beta": 1.0, "beta_norm": 0.1}, "not both"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"beta_norm": float("nan")}, "beta_norm must be a finite"),
    ({"dataset": "cifar"}, "unknown dataset 'cifar'; choose one of: dsprites, mnist, shapes"),
    ({"recon": "l1"}, "choose one of: bernoulli, gaussian"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
    ({"cuda_graph": "yes"}, "cuda_graph must be true or false, got 'yes'"),
])
def test_invalid_settings_fail_before_any_work(change, message):
    with pytest.raises(BetaVAEError, match=message):
        TrainConfig(**change).validate()


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
    run.update_metrics("test", {"loss": 1.0})
    run.update_metrics("beta_vae", {"eval_accuracy": 0.9})
    run.update_metrics("test", {"loss": 2.0})
    assert run.read_metrics() == {"test": {"loss": 2.0}, "beta_vae": {"eval_accuracy": 0.9}}
