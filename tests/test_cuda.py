"""The CUDA path: data stays on the GPU, the loop never waits for it between log points, and
steps replayed from a CUDA graph train as launched ones do, resuming exactly.

Skipped without a CUDA GPU (CI has none); run on a GPU machine with ``pytest tests/test_cuda.py``.
"""

import pytest
import torch

from betavae import data
from betavae.config import TrainConfig
from betavae.data.base import TensorSplit
from betavae.models import build
from betavae.objectives import BetaVAELoss, make_objective
from betavae.runs import RunDir, load_model
from betavae.training.batches import BatchStream, pinned_copy
from betavae.training.loop import train
from betavae.training.meters import LossWindow
from betavae.training.performance import MEMORY_FORMAT, make_optimizer
from betavae.training.steps import WARMUP_STEPS, GraphedStep, make_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


def make_model_step(cuda_graph: bool, precision: str = "fp32", seed: int = 0):
    """A conv64 model on the GPU and its training step, as ``betavae train`` makes them."""
    torch.manual_seed(seed)
    model = build("conv64", 6, (1, 64, 64)).to(CUDA, memory_format=MEMORY_FORMAT)
    optimizer = make_optimizer(model.parameters(), 1e-3, CUDA, capturable=cuda_graph)
    noise = torch.Generator(device=CUDA).manual_seed(seed)
    return model, make_step(model, BetaVAELoss(4.0), optimizer, noise, precision, cuda_graph)


def steps_without_syncs(split, steps: int = 20, precision: str = "fp32", cuda_graph: bool = False) -> None:
    """Run ``steps`` steps with every host–device sync turned into an error."""
    _, take_step = make_model_step(cuda_graph, precision)
    window = LossWindow(CUDA, first_step=0)
    with BatchStream(split, 32, seed=0, start=0, device=CUDA) as batches:
        for _ in range(WARMUP_STEPS + 1):  # warm-up and capture: lazy initialisation may sync
            take_step(batches.next())
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(steps):
                x = batches.next()
                window.add(take_step(x), x.shape[0])
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert all(value > 0 for value in window.check_finite(steps, None)[:2])


@pytest.fixture(scope="module")
def dsprites():
    return data.load("dsprites", test_size=1000)


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["eager", "graph"])
def test_an_in_memory_split_trains_from_gpu_memory_without_syncs(dsprites, cuda_graph):
    held = TensorSplit(torch.from_numpy(dsprites.images_at(dsprites.train.indices[:2048]))).to(CUDA)
    assert held.data.is_cuda
    steps_without_syncs(held, cuda_graph=cuda_graph)


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["eager", "graph"])
def test_a_rendered_split_is_read_ahead_into_pinned_memory_without_syncs(dsprites, cuda_graph):
    images = dsprites.train.images(torch.arange(64))
    pinned = pinned_copy(images)
    assert pinned.is_pinned() and not images.is_pinned() and torch.equal(pinned, images)
    steps_without_syncs(dsprites.train, cuda_graph=cuda_graph)
    steps_without_syncs(dsprites.train, precision="bf16", cuda_graph=cuda_graph)


def test_steps_replayed_from_a_cuda_graph_train_as_launched_steps_do(dsprites):
    """Same weights, batches and noise seed: the losses of graph replays follow eager steps'."""
    held = TensorSplit(torch.from_numpy(dsprites.images_at(dsprites.train.indices[:2048]))).to(CUDA)
    losses = {}
    for cuda_graph in (False, True):
        model, take_step = make_model_step(cuda_graph)
        with BatchStream(held, 64, seed=0, start=0, device=CUDA) as batches:
            losses[cuda_graph] = torch.stack(
                [take_step(batches.next()).loss.detach().clone() for _ in range(40)]
            ).cpu()
        assert isinstance(take_step, GraphedStep) == cuda_graph
    difference = ((losses[True] - losses[False]).abs() / losses[False]).max().item()
    print(f"largest relative loss difference over 40 steps: {difference:.2e}")
    assert losses[True][-1] < 0.5 * losses[True][0]  # it trained
    assert difference < 1e-3


@pytest.mark.parametrize("arch, recon, reduction", [("fc", "bernoulli", "sum"), ("conv64", "lmse", "sum"),
                                                    ("conv64", "mse", "mean")])
def test_fc_and_each_reconstruction_replay_as_launched_steps(dsprites, arch, recon, reduction):
    """The network without convolutions, lmse's floor and log, and a mean over pixels train in a graph as
    they do launched step by step."""
    held = TensorSplit(torch.from_numpy(dsprites.images_at(dsprites.train.indices[:2048]))).to(CUDA)
    losses = {}
    for cuda_graph in (False, True):
        torch.manual_seed(0)
        model = build(arch, 6, (1, 64, 64)).to(CUDA, memory_format=MEMORY_FORMAT)
        optimizer = make_optimizer(model.parameters(), 1e-3, CUDA, capturable=cuda_graph)
        take_step = make_step(model, BetaVAELoss(4.0, recon, recon_reduction=reduction), optimizer,
                              torch.Generator(device=CUDA).manual_seed(0), "fp32", cuda_graph)
        with BatchStream(held, 64, seed=0, start=0, device=CUDA) as batches:
            losses[cuda_graph] = torch.stack(
                [take_step(batches.next()).loss.detach().clone() for _ in range(40)]
            ).cpu()
        assert isinstance(take_step, GraphedStep) == cuda_graph
    difference = ((losses[True] - losses[False]).abs() / losses[False].abs().clamp(min=1e-6)).max().item()
    assert difference < 1e-3
    assert losses[True][-1] < losses[True][0]  # it trained (lmse's loss is negative: no ratio)


@pytest.mark.parametrize("objective", ["capacity", "factor"])
def test_a_scheduled_objective_and_one_with_a_discriminator_replay_as_launched_steps(dsprites, objective):
    """Capacity's C follows the step count inside the graph; FactorVAE's discriminator trains in it."""
    held = TensorSplit(torch.from_numpy(dsprites.images_at(dsprites.train.indices[:2048]))).to(CUDA)
    config = TrainConfig(objective=objective, latent_dim=6, steps=40, capacity_max=10.0, capacity_steps=20)
    if objective == "factor":
        config = TrainConfig(objective=objective, latent_dim=6, steps=40)
    runs = {}
    for cuda_graph in (False, True):
        torch.manual_seed(0)
        model = build("conv64", 6, (1, 64, 64)).to(CUDA, memory_format=MEMORY_FORMAT)
        loss_fn = make_objective(config, beta=1.0).to(CUDA)
        optimizer = make_optimizer(model.parameters(), 1e-3, CUDA, capturable=cuda_graph)
        step_count = torch.zeros((), dtype=torch.int64, device=CUDA)
        take_step = make_step(model, loss_fn, optimizer, torch.Generator(device=CUDA).manual_seed(0), "fp32",
                              cuda_graph, step_count, loss_fn.make_optimizers(CUDA, capturable=cuda_graph))
        with BatchStream(held, 64, seed=0, start=0, device=CUDA) as batches:
            steps = []
            for _ in range(40):  # a replay overwrites the last one's terms: copy them
                terms = take_step(batches.next())
                steps.append({"loss": float(terms.loss), **{k: float(v) for k, v in terms.terms.items()}})
        assert int(step_count) == 40
        runs[cuda_graph] = steps
    eager, graphed = runs[False], runs[True]
    for key in set(eager[0]) - {"discriminator_accuracy"}:  # a count: one flipped code moves it by 1/128
        pairs = zip(eager, graphed, strict=True)
        difference = max(abs(g[key] - e[key]) / max(abs(e[key]), 1e-6) for e, g in pairs)
        assert difference < 1e-3, (key, difference)
    if objective == "capacity":
        assert [step["capacity"] for step in graphed[:3]] == [0.0, 0.5, 1.0]
        assert graphed[-1]["capacity"] == 10.0
    else:
        assert graphed[-1]["discriminator_accuracy"] > 0.5


def test_a_cuda_graph_step_refuses_a_batch_of_another_shape():
    _, take_step = make_model_step(cuda_graph=True)
    x = torch.rand(16, 1, 64, 64, device=CUDA)
    for _ in range(WARMUP_STEPS + 1):
        take_step(x)
    with pytest.raises(
        ValueError, match=r"captured for batches of shape \(16, 1, 64, 64\), got \(8, 1, 64, 64\)"
    ):
        take_step(x[:8])


def test_a_cuda_graph_run_resumed_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    """The noise generator's state advances with each replay and travels in the checkpoint."""
    # Without --deterministic, GPU runs of one seed differ (docs/notes/time-to-disentangle.md).
    config = TrainConfig(
        dataset="dsprites",
        arch="conv64",
        latent_dim=4,
        steps=40,
        checkpoint_every=20,
        log_every=10,
        test_size=200,
        device="cuda",
        deterministic=True,
        out=str(tmp_path / "whole"),
    )
    train(config, progress=False)
    halves = TrainConfig(**{**config.to_dict(), "steps": 20, "out": str(tmp_path / "halves")})
    train(halves, progress=False)
    train(TrainConfig(**{**halves.to_dict(), "steps": 40}), resume=True, progress=False)
    assert RunDir(tmp_path / "halves").read_derived().step == "cuda graph"
    whole, resumed = (RunDir(tmp_path / name).load_checkpoint()["model"] for name in ("whole", "halves"))
    largest = max((whole[key].float() - resumed[key].float()).abs().max().item() for key in whole)
    print(f"largest weight difference, resumed against uninterrupted: {largest:.2e}")
    assert largest < 1e-5


def test_a_run_trained_on_cuda_resumes_there_and_loads_anywhere(tmp_path):
    config = TrainConfig(
        dataset="shapes",
        arch="conv28",
        latent_dim=4,
        steps=40,
        checkpoint_every=20,
        log_every=10,
        test_size=200,
        device="cuda",
        out=str(tmp_path / "run"),
    )
    train(config, progress=False)
    train(TrainConfig(**{**config.to_dict(), "steps": 60}), resume=True, progress=False)
    assert RunDir(tmp_path / "run").read_derived().device == "cuda"
    model = load_model(tmp_path / "run", device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    assert torch.isfinite(model.encode(torch.rand(2, 1, 28, 28))[0]).all()


def test_deterministic_runs_of_one_seed_end_with_the_same_weights(tmp_path):
    """``--deterministic`` (what ``betavae reproduce --scale paper`` trains with) repeats a run's numbers."""
    config = TrainConfig(dataset="dsprites", arch="conv64", latent_dim=4, steps=60, checkpoint_every=60,
                         log_every=20, test_size=200, device="cuda", deterministic=True,
                         out=str(tmp_path / "a"))
    train(config, progress=False)
    assert torch.backends.cudnn.deterministic and torch.are_deterministic_algorithms_enabled()
    train(TrainConfig(**{**config.to_dict(), "out": str(tmp_path / "b")}), progress=False)
    first, second = (RunDir(tmp_path / name).load_checkpoint()["model"] for name in ("a", "b"))
    assert all(torch.equal(first[key], second[key]) for key in first)
    fast = TrainConfig(**{**config.to_dict(), "deterministic": False, "out": str(tmp_path / "c")})
    train(fast, progress=False)
    assert not torch.backends.cudnn.deterministic and not torch.are_deterministic_algorithms_enabled()
