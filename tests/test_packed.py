"""Packed training: runs trained as one vectorised network are the runs train() makes, folder for folder."""

import copy
import dataclasses
import json

import pytest
import torch

from betavae.config import TrainConfig
from betavae.errors import BetaVAEError
from betavae.models import VAEOutput, build
from betavae.objectives import BetaVAELoss
from betavae.runs import RunDir
from betavae.training.loop import train
from betavae.training.packed import Pack, pack_key, train_packed
from betavae.training.performance import make_optimizer

# Not bit for bit: the vectorised kernels sum in another order, and Adam's first steps move a weight
# by about lr (5e-4) whatever its gradient's size, so the rounding flips the step of the few weights
# whose gradient cancels to near zero, and the runs drift apart by a little (measured: under 3% of
# the way training moved each tensor after 20 steps, 1e-4 of it on most seeds). Another batch, noise
# or β moves them by all of it.
DRIFT = 0.05


def small_config(out, **changes) -> TrainConfig:
    settings = dict(dataset="shapes", arch="conv28", latent_dim=4, beta=1.0, steps=20, batch_size=16,
                    checkpoint_every=10, log_every=5, test_size=200, seed=0, out=str(out), device="cpu")
    settings.update(changes)
    return TrainConfig(**settings)


# Three runs of one row: each differs from the others in its seed and its β (one given as β_norm).
ROW = ({"seed": 0, "beta": 1.0}, {"seed": 1, "beta": 4.0}, {"seed": 2, "beta": None, "beta_norm": 0.01})


def row_configs(folder, **changes) -> list[TrainConfig]:
    return [small_config(folder / f"run{index}", **each, **changes) for index, each in enumerate(ROW)]


def weights(run_dir) -> dict[str, torch.Tensor]:
    return RunDir(run_dir).load_checkpoint()["model"]


def initial_weights(config: TrainConfig) -> dict[str, torch.Tensor]:
    """The step-0 weights train() makes for ``config``'s seed."""
    torch.manual_seed(config.seed)
    return build(config.arch, config.latent_dim, (1, 28, 28)).state_dict()


def assert_same_training(config: TrainConfig, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """``a`` and ``b`` trained from ``config``'s initial weights to the same place, up to :data:`DRIFT`."""
    start = initial_weights(config)
    assert a.keys() == b.keys() == start.keys()
    for name in a:
        moved = (b[name] - start[name]).norm()
        assert moved > 0, name
        assert (a[name] - b[name]).norm() <= DRIFT * moved, name


@pytest.fixture(scope="module")
def packed_and_unpacked(tmp_path_factory):
    """The row trained packed, and each of its runs trained alone by train()."""
    folder = tmp_path_factory.mktemp("packed")
    packed = row_configs(folder / "packed")
    results = train_packed(packed, progress=False)
    unpacked = row_configs(folder / "unpacked")
    alone = [train(config, progress=False) for config in unpacked]
    return packed, results, unpacked, alone


@pytest.mark.slow
def test_packed_runs_match_their_unpacked_runs(packed_and_unpacked):
    packed, results, unpacked, alone = packed_and_unpacked
    assert [result.run.path.name for result in results] == ["run0", "run1", "run2"]
    for config, result, other, single in zip(packed, results, unpacked, alone, strict=True):
        assert_same_training(config, weights(config.out), weights(other.out))
        assert result.test["loss"] == pytest.approx(single.test["loss"], rel=1e-4)
        assert result.test["kl_per_dim"] == pytest.approx(single.test["kl_per_dim"], rel=1e-3, abs=1e-4)
        logged = [json.loads(line) for line in (RunDir(config.out).log_path).read_text().splitlines()]
        expected = [json.loads(line) for line in (RunDir(other.out).log_path).read_text().splitlines()]
        assert [entry["step"] for entry in logged] == [entry["step"] for entry in expected] == [5, 10, 15, 20]
        assert [e["loss"] for e in logged] == pytest.approx([e["loss"] for e in expected], rel=1e-4)
        assert RunDir(config.out).read_metrics()["test"]["step"] == 20
        derived = RunDir(config.out).read_derived()
        assert derived.beta == RunDir(other.out).read_derived().beta
        assert derived.step.startswith("packed")


@pytest.mark.slow
def test_packed_run_folders_hold_the_files_of_unpacked_ones(packed_and_unpacked):
    packed, _, unpacked, _ = packed_and_unpacked
    for config, other in zip(packed, unpacked, strict=True):
        names = sorted(path.name for path in RunDir(config.out).path.iterdir())
        assert names == sorted(path.name for path in RunDir(other.out).path.iterdir())
        assert {"config.toml", "checkpoint.pt", "metrics.json", "log.jsonl", "reconstructions.png",
                "tensorboard"} <= set(names)
        mine, theirs = RunDir(config.out).load_checkpoint(), RunDir(other.out).load_checkpoint()
        assert mine.keys() == theirs.keys()
        assert mine["optimizer"]["param_groups"] == theirs["optimizer"]["param_groups"]
        assert torch.equal(mine["noise_state"], theirs["noise_state"])
        assert RunDir(config.out).read_metrics().keys() == RunDir(other.out).read_metrics().keys()


@pytest.mark.slow
def test_packed_run_resumed_unpacked_ends_as_an_uninterrupted_run(packed_and_unpacked, tmp_path):
    _, _, unpacked, _ = packed_and_unpacked
    half = row_configs(tmp_path, steps=10)[:2]
    train_packed(half, progress=False)
    for config, uninterrupted in zip(half, unpacked, strict=False):
        train(dataclasses.replace(config, steps=20), resume=True, progress=False)
        assert_same_training(config, weights(config.out), weights(uninterrupted.out))


@pytest.mark.slow
def test_packed_runs_resume_packed(packed_and_unpacked, tmp_path):
    _, _, unpacked, _ = packed_and_unpacked
    train_packed(row_configs(tmp_path, steps=10), progress=False)
    train_packed(row_configs(tmp_path, steps=20), resume=True, progress=False)
    for config, uninterrupted in zip(row_configs(tmp_path), unpacked, strict=True):
        assert RunDir(config.out).checkpoint_step() == 20
        assert_same_training(config, weights(config.out), weights(uninterrupted.out))


@pytest.mark.slow  # three training steps; fc's 14M parameters take seconds
@pytest.mark.parametrize("arch, recon, reduction", [("fc", "bernoulli", "sum"), ("conv28", "lmse", "sum"),
                                                    ("conv28", "mse", "mean")])
def test_a_pack_steps_each_model_as_its_own_step_would(arch, recon, reduction):
    """A network without convolutions (fc) and every reconstruction and reduction: the vectorised step
    gives each model the loss and, up to :data:`DRIFT`, the weights of its own eager steps."""
    size, betas, cpu = (64 if arch == "fc" else 28), [1.0, 4.0], torch.device("cpu")
    alone = []
    for seed in range(len(betas)):
        torch.manual_seed(seed)
        alone.append(build(arch, 3, (1, size, size)))
    start = [copy.deepcopy(model.state_dict()) for model in alone]
    packed = [copy.deepcopy(model) for model in alone]
    pack = Pack(packed, [make_optimizer(m.parameters(), 1e-3, cpu) for m in packed],
                BetaVAELoss(1.0, recon, recon_reduction=reduction), betas, 1e-3, cpu)
    optimizers = [make_optimizer(model.parameters(), 1e-3, cpu) for model in alone]
    generator, step_count = torch.Generator().manual_seed(0), torch.zeros((), dtype=torch.int64)
    for _ in range(3):
        x = (torch.rand(len(betas), 8, 1, size, size, generator=generator) > 0.7).float()
        eps = torch.randn(len(betas), 8, 3, generator=generator)
        terms = pack.step(x, eps, step_count)
        for k, (model, optimizer) in enumerate(zip(alone, optimizers, strict=True)):
            mu, logvar = model.encode(x[k])
            z = mu + torch.exp(0.5 * logvar) * eps[k]
            objective = BetaVAELoss(betas[k], recon, recon_reduction=reduction)
            own = objective(VAEOutput(model.decoder(z), mu, logvar, z), x[k])
            assert terms[k].loss.item() == pytest.approx(own.loss.item(), rel=1e-4)
            optimizer.zero_grad()
            own.loss.backward()
            optimizer.step()
    for k, model in enumerate(alone):
        pack.copy_into(k, packed[k], make_optimizer(packed[k].parameters(), 1e-3, cpu))
        mine, theirs = packed[k].state_dict(), model.state_dict()
        for name in theirs:
            moved = (theirs[name] - start[k][name]).norm()
            assert moved > 0, name
            assert (mine[name] - theirs[name]).norm() <= DRIFT * moved, name


def test_runs_of_another_latent_size_are_refused_in_one_line(tmp_path):
    configs = [small_config(tmp_path / "a"), small_config(tmp_path / "b", seed=1, latent_dim=8)]
    with pytest.raises(BetaVAEError, match="latent_dim 8 where .* has 4") as caught:
        train_packed(configs, progress=False)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "a").exists()


def test_runs_of_another_architecture_are_refused(tmp_path):
    configs = [small_config(tmp_path / "a"), small_config(tmp_path / "b", arch="conv64")]
    with pytest.raises(BetaVAEError, match="has arch 'conv64'"):
        train_packed(configs, progress=False)


def test_objectives_other_than_beta_are_refused(tmp_path):
    configs = [small_config(tmp_path / "a", objective="beta_tc", beta=None)]
    with pytest.raises(BetaVAEError, match="beta objective only, not beta_tc"):
        train_packed(configs, progress=False)


def test_pack_key_leaves_out_seed_beta_and_folder_only(tmp_path):
    base = small_config(tmp_path / "a")
    assert pack_key(base) == pack_key(small_config(tmp_path / "b", seed=3, beta=None, beta_norm=0.1))
    assert pack_key(base) != pack_key(small_config(tmp_path / "a", batch_size=32))
    assert hash(pack_key(base)) == hash(pack_key(small_config(tmp_path / "a")))
