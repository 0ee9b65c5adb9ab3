"""The CUDA path: data stays on the GPU and the loop never waits for it between log points.

Skipped without a CUDA GPU (CI has none); run on a GPU machine with ``pytest tests/test_cuda.py``.
"""

import pytest
import torch

from betavae import data
from betavae.batches import BatchStream, pinned_copy
from betavae.config import TrainConfig
from betavae.data.base import TensorSplit
from betavae.models import build
from betavae.objectives import BetaVAELoss
from betavae.performance import MEMORY_FORMAT, make_optimizer
from betavae.runs import RunDir, load_model
from betavae.train import _Window, train, training_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


def steps_without_syncs(split, steps: int = 20, precision: str = "fp32") -> None:
    """Run ``steps`` steps with every host–device sync turned into an error."""
    torch.manual_seed(0)
    model = build("conv64", 6, (1, 64, 64)).to(CUDA, memory_format=MEMORY_FORMAT)
    optimizer = make_optimizer(model.parameters(), 1e-3, CUDA)
    loss_fn, noise, window = BetaVAELoss(4.0), torch.Generator(device=CUDA).manual_seed(0), _Window(CUDA)
    with BatchStream(split, 32, seed=0, start=0, device=CUDA) as batches:
        for _ in range(2):  # warm-up: lazy initialisation may sync once
            training_step(model, loss_fn, optimizer, batches.next(), noise, precision)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(steps):
                x = batches.next()
                window.add(training_step(model, loss_fn, optimizer, x, noise, precision), x.shape[0])
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert all(value > 0 for value in window.check_finite(steps)[:2])


@pytest.fixture(scope="module")
def dsprites():
    return data.load("dsprites", test_size=1000)


def test_an_in_memory_split_trains_from_gpu_memory_without_syncs(dsprites):
    held = TensorSplit(torch.from_numpy(dsprites.images_at(dsprites.train.indices[:2048]))).to(CUDA)
    assert held.data.is_cuda
    steps_without_syncs(held)


def test_a_rendered_split_is_read_ahead_into_pinned_memory_without_syncs(dsprites):
    images = dsprites.train.images(torch.arange(64))
    pinned = pinned_copy(images)
    assert pinned.is_pinned() and not images.is_pinned() and torch.equal(pinned, images)
    steps_without_syncs(dsprites.train)
    steps_without_syncs(dsprites.train, precision="bf16")


def test_a_run_trained_on_cuda_resumes_there_and_loads_anywhere(tmp_path):
    config = TrainConfig(dataset="shapes", arch="conv28", latent_dim=4, steps=40, checkpoint_every=20,
                         log_every=10, test_size=200, device="cuda", out=str(tmp_path / "run"))
    train(config, progress=False)
    train(TrainConfig(**{**config.to_dict(), "steps": 60}), resume=True, progress=False)
    assert RunDir(tmp_path / "run").read_derived()["device"] == "cuda"
    model = load_model(tmp_path / "run", device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    assert torch.isfinite(model.encode(torch.rand(2, 1, 28, 28))[0]).all()
