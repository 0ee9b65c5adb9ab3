"""The training loop, and what a run folder gets at its start and end.

The loop itself (:func:`train`, the part inside ``for step in …``) is the whole story on
one screen: batch, forward, loss, backward, step, log, checkpoint. Everything that is
not the loop lives in small helpers below it.

Determinism: the batch at step ``s`` depends only on ``(seed, s)`` (:class:`~betavae.batches.BatchOrder`),
and the noise generator's state travels in the checkpoint, so a run interrupted and
resumed ends with the same weights as one that never stopped (on the same machine; on a
GPU, only with ``torch.backends.cudnn.deterministic`` on, see the README).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import betavae
from betavae import data, models, performance
from betavae.batches import BatchStream
from betavae.config import TrainConfig
from betavae.data.base import ImageSplit
from betavae.device import resolve_device
from betavae.errors import BetaVAEError
from betavae.interrupt import StopRequest
from betavae.objectives import BetaVAELoss, beta_from_norm, norm_from_beta
from betavae.runs import RunDir
from betavae.steps import make_step, uses_cuda_graph
from betavae.traininglog import TrainingLog
from betavae.viz.reconstructions import FILE_NAME as RECONSTRUCTIONS_FILE
from betavae.viz.reconstructions import reconstruction_figure, run_title

DEFAULT_BETA = 4.0
# Settings that may change when a run is resumed; any other difference would make the
# resumed run a different experiment.
RESUMABLE_CHANGES = {"steps", "checkpoint_every", "log_every", "device", "cuda_graph", "out", "data_dir"}


class TrainingInterrupted(BetaVAEError):
    """Ctrl-C or SIGTERM: a checkpoint was saved and the run can be resumed."""

    exit_code = 130


class TrainingDiverged(BetaVAEError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    run: RunDir
    steps: int
    test: dict[str, Any]


def train(config: TrainConfig, resume: bool = False, progress: bool | None = None,
          on_checkpoint: Callable[[int, models.BetaVAE], None] | None = None) -> TrainResult:
    """Train a β-VAE as ``config`` says, writing everything into its run folder.

    ``on_checkpoint(step, model)`` is called after each checkpoint is written, with the
    model in eval mode (it is put back into training mode after): the hook for
    intermediate evaluations (``benchmarks/time_to_disentangle.py``) and for reporting
    progress to a scheduler. Time spent in it is not training time.
    """
    config.validate()
    setup = _Setup.create(config)
    run, model, loss_fn, device = setup.run, setup.model, setup.loss_fn, setup.device
    graphed = uses_cuda_graph(device, config.cuda_graph)
    optimizer = performance.make_optimizer(model.parameters(), setup.derived["lr"], device, capturable=graphed)
    setup.derived["optimizer"] = performance.optimizer_name(optimizer)
    setup.derived["step"] = "cuda graph" if graphed else "eager"
    noise = torch.Generator(device=device).manual_seed(config.seed)
    start = _prepare_run_dir(run, config, setup.derived, resume, model, optimizer, noise)
    take_step = make_step(model, loss_fn, optimizer, noise, config.precision, config.cuda_graph)

    window = _Window(device)
    bar = tqdm(total=config.steps, initial=start, unit="step", desc=run.path.name, disable=_no_bar(progress))
    batches = BatchStream(setup.dataset.train, config.batch_size, config.seed, start, device)
    with StopRequest() as stop, TrainingLog(run.log_path, run.tensorboard_dir, start) as log, batches:
        model.train()
        for step in range(start, config.steps):
            x = batches.next()
            terms = take_step(x)
            window.add(terms, x.shape[0])

            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                values = window.flush(done)
                log.log(done, values)
                bar.set_postfix(loss=f"{values['loss']:.2f}", kl=f"{values['kl']:.2f}",
                                img_s=f"{values['images_per_s']:.0f}")
            bar.update(1)
            if done % config.checkpoint_every == 0 or done == config.steps or stop.requested:
                window.check_finite(done)
                _save_checkpoint(run, config, setup.derived, done, model, optimizer, noise)
                if on_checkpoint is not None and not stop.requested:
                    window.pause(lambda: _call_in_eval_mode(on_checkpoint, done, model))
            if stop.requested:
                bar.close()
                raise TrainingInterrupted(
                    f"interrupted at step {done}/{config.steps}; checkpoint saved in {run.path}; "
                    f"continue with: betavae train --out {run.path} --resume")
    bar.close()

    test = test_loss(model, setup.dataset.test.to(device), loss_fn, seed=config.seed)
    run.update_metrics("test", test)
    run.update_metrics("train", {"steps": config.steps, "beta": setup.derived["beta"],
                                 "beta_norm": setup.derived["beta_norm"]})
    reconstruction_figure(setup.dataset.test, [model], [run_title(setup.derived, config.latent_dim)], run.path / RECONSTRUCTIONS_FILE)
    return TrainResult(run, config.steps, test)


def _call_in_eval_mode(hook: Callable[[int, models.BetaVAE], None], step: int, model: models.BetaVAE) -> None:
    model.eval()
    try:
        hook(step, model)
    finally:
        model.train()


class _Window:
    """Running sums of the loss terms between two log points, kept on the device.

    Summing on the device and reading once per window avoids a host sync every step;
    the same read tells whether the loss stayed finite.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._reset(0)

    def _reset(self, step: int) -> None:
        self.sums = torch.zeros(3, device=self.device)
        self.kl_per_dim = 0.0
        self.steps = 0
        self.images = 0
        self.first_step = step
        self.started = time.perf_counter()

    def add(self, terms, batch_size: int) -> None:
        self.sums += torch.stack([terms.loss.detach(), terms.recon.detach(), terms.kl.detach()])
        self.kl_per_dim = self.kl_per_dim + terms.kl_per_dim.detach()
        self.steps += 1
        self.images += batch_size

    def pause(self, work: Callable[[], None]) -> None:
        """Run ``work`` without counting its time towards images/s."""
        started = time.perf_counter()
        work()
        self.started += time.perf_counter() - started

    def check_finite(self, step: int) -> list[float]:
        values = self.sums.tolist()
        if not all(math.isfinite(v) for v in values):
            raise TrainingDiverged(
                f"loss became NaN or infinite between steps {self.first_step} and {step}; "
                f"the last good checkpoint is kept; lower --lr or check the data")
        return values

    def flush(self, step: int) -> dict[str, float]:
        loss, recon, kl = self.check_finite(step)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        count = max(self.steps, 1)
        kl_per_dim = (self.kl_per_dim / count).tolist() if self.steps else []
        values = {"loss": loss / count, "recon": recon / count, "kl": kl / count,
                  "images_per_s": self.images / elapsed, "kl_per_dim": kl_per_dim}
        self._reset(step)
        return values


@torch.no_grad()
def test_loss(model: models.BetaVAE, split: ImageSplit, loss_fn: BetaVAELoss, seed: int, batch_size: int = 500) -> dict[str, Any]:
    """Held-out loss terms averaged over ``split``, with z sampled from a seeded generator."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    noise = torch.Generator(device=device).manual_seed(seed + 1)
    totals = torch.zeros(3, dtype=torch.float64)
    kl_dims = torch.zeros(model.latent_dim, dtype=torch.float64)
    for begin in range(0, len(split), batch_size):
        positions = torch.arange(begin, min(begin + batch_size, len(split)))
        x = performance.fast_layout(split.images(positions).to(device).float().div_(255))
        terms = loss_fn(model(x, generator=noise), x)
        count = len(positions)
        totals += torch.tensor([terms.loss.item(), terms.recon.item(), terms.kl.item()], dtype=torch.float64) * count
        kl_dims += terms.kl_per_dim.double().cpu() * count
    model.train(was_training)
    loss, recon, kl = (totals / len(split)).tolist()
    return {"loss": loss, "recon": recon, "kl": kl, "kl_per_dim": (kl_dims / len(split)).tolist(),
            "num_images": len(split)}


@dataclass
class _Setup:
    """What a run needs before its first step: data, model, loss, device, derived values."""

    dataset: data.ImageDataset
    model: models.BetaVAE
    loss_fn: BetaVAELoss
    device: torch.device
    run: RunDir
    derived: dict[str, Any]

    @classmethod
    def create(cls, config: TrainConfig) -> _Setup:
        dataset = config.load_dataset()
        arch = config.arch or models.default_arch(dataset.image_shape[-1])
        num_pixels = dataset.num_pixels
        if config.beta_norm is not None:
            beta, beta_norm = beta_from_norm(config.beta_norm, config.latent_dim, num_pixels), config.beta_norm
        else:
            beta = DEFAULT_BETA if config.beta is None else config.beta
            beta_norm = norm_from_beta(beta, config.latent_dim, num_pixels)
        device = resolve_device(config.device)
        performance.check_precision(config.precision, device)
        performance.keep_freed_memory()
        torch.manual_seed(config.seed)  # the initial weights
        model = models.build(arch, config.latent_dim, dataset.image_shape)
        model = model.to(device, memory_format=performance.MEMORY_FORMAT)
        loss_fn = BetaVAELoss(beta, config.recon)
        out = config.out or default_run_path(config, arch, beta)
        derived = {
            "arch": arch, "lr": models.learning_rate(arch, config.lr),
            "beta": beta, "beta_norm": beta_norm, "num_pixels": num_pixels,
            "image_shape": list(dataset.image_shape), "num_train": len(dataset.train),
            "num_test": len(dataset.test), "device": str(device), "torch_version": torch.__version__,
            "betavae_version": betavae.__version__, "num_threads": torch.get_num_threads(),
            "memory_format": str(performance.MEMORY_FORMAT).removeprefix("torch."),
        }
        return cls(dataset, model, loss_fn, device, RunDir(out), derived)


def default_run_path(config: TrainConfig, arch: str, beta: float) -> str:
    """``runs/<dataset>-<arch>-z<M>-b<β>-s<seed>``: a name that says what the run is."""
    beta_text = f"bn{config.beta_norm:g}" if config.beta_norm is not None else f"b{beta:g}"
    return str(Path("runs") / f"{config.dataset}-{arch}-z{config.latent_dim}-{beta_text}-s{config.seed}")


def _prepare_run_dir(run: RunDir, config: TrainConfig, derived: dict[str, Any], resume: bool,
                     model: torch.nn.Module, optimizer: torch.optim.Optimizer, noise: torch.Generator) -> int:
    """Write the config of a new run, or restore a checkpoint; return the first step to run."""
    if not resume:
        if run.has_checkpoint():
            raise BetaVAEError(f"{run.path} already holds a run; pass --resume to continue it, or choose another --out")
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(config, derived)
        # Curves of an earlier attempt that died before its first checkpoint would mix with ours.
        run.log_path.unlink(missing_ok=True)
        shutil.rmtree(run.tensorboard_dir, ignore_errors=True)
        return 0
    if not run.has_checkpoint():
        raise BetaVAEError(f"nothing to resume: {run.path} has no checkpoint")
    saved = run.read_config()
    saved_values = saved.to_dict()
    changed = sorted(key for key, value in config.to_dict().items()
                     if key not in RESUMABLE_CHANGES and saved_values[key] != value)
    if "lr" in changed and models.learning_rate(derived["arch"], saved.lr) == derived["lr"]:
        changed.remove("lr")  # the same rate, given by hand once and left to the architecture the other time
    if changed:
        raise BetaVAEError(f"cannot resume {run.path} with different {', '.join(changed)}; "
                           f"only {', '.join(sorted(RESUMABLE_CHANGES))} may change")
    checkpoint = run.load_checkpoint(map_location=next(model.parameters()).device)
    model.load_state_dict(checkpoint["model"])
    performance.load_optimizer_state(optimizer, checkpoint["optimizer"])
    noise.set_state(checkpoint["noise_state"].cpu())
    run.write_config(config, derived)
    return int(checkpoint["step"])


def _save_checkpoint(run: RunDir, config: TrainConfig, derived: dict[str, Any], step: int,
                     model: torch.nn.Module, optimizer: torch.optim.Optimizer, noise: torch.Generator) -> None:
    run.save_checkpoint({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "noise_state": noise.get_state(), "config": config.to_dict(), "derived": derived})


def _no_bar(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None hides the bar when stderr is not a terminal."""
    return None if progress is None else not progress
