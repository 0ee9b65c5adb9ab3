"""The training loop, and what a run folder gets at its start and end.

The loop itself (:func:`train`, the part inside ``for step in …``) is the whole story on
one screen: batch, forward, loss, backward, step, log, checkpoint. Everything that is
not the loop lives in small helpers below it.

Determinism: the batch at step ``s`` depends only on ``(seed, s)`` (:class:`~betavae.batches.BatchOrder`),
and the noise generator's state travels in the checkpoint, so a run interrupted and
resumed ends with the same weights as one that never stopped (on the same machine; on a
GPU, only with ``--deterministic``, see :func:`betavae.performance.use_deterministic_kernels`).

Time: a training clock (:class:`_TrainingClock`) counts the seconds of training since the
run began, carried across resumes in the checkpoint; evaluations during training
(:mod:`betavae.tracking`) and the ``on_checkpoint`` hook count neither on it nor in images/s.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import betavae
from betavae import data, files, models, performance
from betavae.batches import BatchStream
from betavae.config import DEFAULT_BETA, DerivedValues, TrainConfig, load_config, setting_name
from betavae.data.base import ImageSplit
from betavae.device import resolve_device
from betavae.errors import BetaVAEError
from betavae.files import make_folder
from betavae.interrupt import StopRequest
from betavae.objectives import LossTerms, Objective, beta_from_norm, make_objective, norm_from_beta
from betavae.runs import RunDir
from betavae.steps import make_step, uses_cuda_graph
from betavae.tracking import EvaluationHistory
from betavae.traininglog import TrainingLog
from betavae.viz.reconstructions import FILE_NAME as RECONSTRUCTIONS_FILE
from betavae.viz.reconstructions import reconstruction_figure, run_title

# Settings that may change when a run is resumed; any other difference would make the
# resumed run a different experiment.
# The evaluation settings other than eval_every define what the history of evaluations measures.
RESUMABLE_CHANGES = {
    "steps",
    "checkpoint_every",
    "log_every",
    "device",
    "cuda_graph",
    "deterministic",
    "out",
    "data_dir",
    "eval_every",
}


class TrainingInterrupted(BetaVAEError):
    """Ctrl-C or SIGTERM: a checkpoint was saved and the run can be resumed."""

    exit_code = 130


class TrainingDiverged(BetaVAEError):
    """The loss or the weights became NaN or infinite; no checkpoint of such weights is written."""


class CheckpointNotWritten(BetaVAEError):
    """The disk is full or the folder unwritable; the previous checkpoint is still whole."""


def config_from_sources(flags: Mapping[str, Any], config_file: str | Path | None = None,
                        resume: bool = False) -> TrainConfig:
    """The config ``betavae train`` runs: the flags given, over a base config, over the defaults.

    ``flags`` maps config fields to what the command line gave (None: not given). The base is
    ``config_file`` when one is given; else, with ``resume``, the config the run in
    ``flags["out"]`` was saved with (:meth:`RunDir.resume_config`), so ``--resume --out RUN``
    continues the run as it was and a flag changes only what it names; else the defaults.
    β has two forms: a flag giving either (``beta`` or ``beta_norm``) replaces whichever form
    the base gave, since a file's ``beta = 4`` under ``--beta-norm 0.1`` would otherwise be
    refused as both forms at once.
    """
    if config_file is not None:
        base = load_config(config_file)
    elif resume:
        if flags.get("out") is None:
            raise BetaVAEError("--resume needs --out: the run folder to continue")
        base = RunDir(str(flags["out"])).resume_config()
    else:
        base = TrainConfig()
    if flags.get("beta") is not None or flags.get("beta_norm") is not None:
        base = dataclasses.replace(base, beta=None, beta_norm=None)
    return base.merged(dict(flags))


@dataclass
class TrainResult:
    run: RunDir
    steps: int
    test: dict[str, Any]
    # The evaluations during training: the entries of metrics.json's during_training section.
    evaluations: list[dict[str, Any]] = field(default_factory=list)


def train(
    config: TrainConfig,
    resume: bool = False,
    progress: bool | None = None,
    on_checkpoint: Callable[[int, models.BetaVAE], None] | None = None,
    names: Mapping[str, str] | None = None,
) -> TrainResult:
    """Train a β-VAE as ``config`` says, writing everything into its run folder.

    The run folder is locked for the whole call (:meth:`RunDir.lock`), so a second
    process training, evaluating or drawing into it gets a one-line error instead of
    interleaving its writes. With ``config.eval``, the metrics are measured every
    ``eval_every`` steps and at the end, right after that step's checkpoint
    (:mod:`betavae.tracking`); a resumed run first evaluates its checkpoint if a stop or a
    kill cut that evaluation short. ``on_checkpoint(step, model)`` is called after each
    checkpoint is written (and evaluated), with the model in eval mode (it is put back into
    training mode after): the hook for reporting progress to a scheduler. Neither counts as
    training time. ``names`` maps config fields to what the user typed for them
    (``--latent``), for messages.
    """
    began = time.perf_counter()  # the training clock counts from here: every run pays its set-up
    config.validate(names)
    config, dataset = _with_run_folder(config, resume, names)
    run = RunDir(config.out)
    with run.lock("betavae train"):
        run.remove_stale_temporaries()
        run.read_metrics()  # an unreadable metrics.json fails now, not after the training
        checkpoint = _checkpoint_to_resume(run, config, names) if resume else _start_fresh(run)
        setup = _Setup.create(config, dataset, names)
        model, objective, device = setup.model, setup.objective, setup.device
        graphed = uses_cuda_graph(device, config.cuda_graph)
        optimizer = performance.make_optimizer(model.parameters(), setup.derived.lr, device,
                                               capturable=graphed)
        objective_optimizers = objective.make_optimizers(device, capturable=graphed)  # of its own networks
        derived = dataclasses.replace(setup.derived, optimizer=performance.optimizer_name(optimizer),
                                      step="cuda graph" if graphed else "eager")
        noise = torch.Generator(device=device).manual_seed(config.seed)
        start = 0
        if checkpoint is not None:
            start = _restore(checkpoint, model, optimizer, objective, objective_optimizers, noise)
        saved_step = start if checkpoint is not None else None  # the step of the checkpoint on disk
        # Checkpoints from before the training clock was saved count from 0.
        earlier_seconds = float(checkpoint.get("train_seconds", 0.0)) if checkpoint is not None else 0.0
        clock = _TrainingClock(device, began, earlier_seconds)
        window = _Window(device, first_step=start)
        # Older checkpoints lack the window: their first log entry after a resume is shorter.
        if checkpoint is not None and "window" in checkpoint:
            window.restore(checkpoint["window"])
        run.write_config(config, derived)
        step_count = torch.tensor(start, dtype=torch.int64, device=device)  # what schedules read
        take_step = make_step(model, objective, optimizer, noise, config.precision, config.cuda_graph,
                              step_count, objective_optimizers)

        bar = tqdm(total=config.steps, initial=start, unit="step", desc=run.path.name,
                   disable=_no_bar(progress))
        batches = BatchStream(setup.dataset.train, config.batch_size, config.seed, start, device)
        report = None if bar.disable else (lambda line: tqdm.write(line, file=sys.stderr))  # above the bar
        with StopRequest() as stop, TrainingLog(run.log_path, run.tensorboard_dir, start) as log, batches:
            history = EvaluationHistory(run, config, setup.dataset, log, start, report)
            if history.missing(start):  # a stop or a kill cut the evaluation of the checkpoint short
                with _not_training(model, window, clock):
                    history.evaluate(start, model, earlier_seconds)
            model.train()
            for step in range(start, config.steps):
                x = batches.next()
                terms = take_step(x)
                window.add(terms, x.shape[0])

                done = step + 1
                at_end = done == config.steps
                if done % config.log_every == 0 or at_end:
                    values = window.flush(done, saved_step)
                    log.log(done, values)
                    bar.set_postfix(loss=f"{values['loss']:.2f}", kl=f"{values['kl']:.2f}",
                                    img_s=f"{values['images_per_s']:.0f}")
                bar.update(1)
                if done % config.checkpoint_every == 0 or at_end or stop.requested or history.due(done):
                    window.check_finite(done, saved_step)
                    _check_weights_finite(model, saved_step, done)
                    trained_seconds = clock.seconds()
                    trained = (model, optimizer, objective, objective_optimizers)
                    _save_checkpoint(run, config, derived, done, trained, noise, window, trained_seconds,
                                     saved_step)
                    saved_step = done
                    run.archive_results_before(done)
                    if not stop.requested:  # a stop leaves this step's evaluation to the resumed run
                        with _not_training(model, window, clock):
                            if history.due(done):
                                history.evaluate(done, model, trained_seconds)
                            if on_checkpoint is not None:
                                on_checkpoint(done, model)
                if stop.requested:
                    bar.close()
                    raise TrainingInterrupted(
                        f"interrupted at step {done}/{config.steps}; checkpoint saved in {run.path}; "
                        f"continue with: betavae train --out {run.path} --resume")
        bar.close()
        test = _write_results(run, config, derived, setup.dataset, model, objective)
    return TrainResult(run, config.steps, test, history.entries)


def _write_results(run: RunDir, config: TrainConfig, derived: DerivedValues, dataset: data.ImageDataset,
                   model: models.BetaVAE, objective: Objective) -> dict[str, Any]:
    """What a finished run adds to its folder: the held-out loss, the training's summary in
    ``metrics.json`` and the reconstructions figure; returns the held-out loss."""
    device = next(model.parameters()).device
    test = test_loss(model, dataset.test.to(device), objective, seed=config.seed)
    run.update_metrics("test", test, step=config.steps)
    run.update_metrics(
        "train",
        {"steps": config.steps, "beta": derived.beta, "beta_norm": derived.beta_norm},
        step=config.steps,
    )
    reconstruction_figure(
        dataset.test,
        [model],
        [run_title(derived, config.latent_dim)],
        run.path / RECONSTRUCTIONS_FILE,
    )
    return test


@contextmanager
def _not_training(model: models.BetaVAE, window: _Window, clock: _TrainingClock) -> Iterator[None]:
    """Evaluations and hooks: the model in eval mode, their time counted neither as training time
    nor in images/s."""
    model.eval()
    try:
        with clock.paused(), window.paused():
            yield
    finally:
        model.train()


class _TrainingClock:
    """Seconds of training since the run began, in every call that trained it; time paused is left out.

    It counts from the start of :func:`train` (set-up and checkpoint writes are part of
    every run) and goes on from the ``train_seconds`` of the checkpoint a run resumes from.
    On CUDA it waits for the queued kernels before reading: their time is training's.
    """

    def __init__(self, device: torch.device, began: float, earlier_seconds: float) -> None:
        self.device = device
        self.began = began
        self.earlier_seconds = earlier_seconds
        self.paused_seconds = 0.0

    def seconds(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return self.earlier_seconds + time.perf_counter() - self.began - self.paused_seconds

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.seconds()  # the training queued so far finishes on training's time
        started = time.perf_counter()
        try:
            yield
        finally:
            self.paused_seconds += time.perf_counter() - started


def _diverged(what: str, since: int, step: int, saved_step: int | None) -> TrainingDiverged:
    """The message of a run whose ``what`` became non-finite after step ``since``: true about what is kept."""
    again = (
        "train again with a lower --lr"
        if saved_step is None
        else "train a new run (another --out: a resumed run keeps its learning rate) with a lower --lr"
    )
    return TrainingDiverged(
        f"training diverged: the {what} became NaN or infinite between steps {since} and "
        f"{step}; {_kept(saved_step)}; {again}, or check the data"
    )


def _kept(saved_step: int | None) -> str:
    """What a run that stops on a fault leaves: the checkpoint on disk, if it wrote one."""
    return (
        "no checkpoint was written" if saved_step is None else f"the checkpoint of step {saved_step} is kept"
    )


def _check_weights_finite(model: torch.nn.Module, saved_step: int | None, step: int) -> None:
    """Refuse to checkpoint non-finite weights: one fused max-norm over every parameter, read once.

    The loss of a step is computed before its update, so a finite loss does not prove the
    weights the update left are finite (a huge learning rate overflows them at once). The
    max-norm, unlike the 2-norm, cannot itself overflow on finite weights.
    """
    norm = torch.nn.utils.get_total_norm([p.detach() for p in model.parameters()], norm_type=math.inf)
    if not torch.isfinite(norm).item():
        raise _diverged("weights", saved_step or 0, step, saved_step)


class _Window:
    """Running sums of the loss terms between two log points, kept on the device.

    Summing on the device and reading once per window avoids a host sync every step;
    the same read tells whether the loss stayed finite. The sums travel in checkpoints
    (:meth:`state`), so the first entry logged after a resume covers the whole window, as
    in a run that never stopped.
    """

    def __init__(self, device: torch.device, first_step: int) -> None:
        self.device = device
        self.names = ["loss", "recon", "kl"]  # until the objective's first step names its terms
        self._reset(first_step)

    def _reset(self, step: int) -> None:
        self.sums = torch.zeros(len(self.names), device=self.device)
        self.kl_per_dim: torch.Tensor | float = 0.0
        self.steps = 0
        self.images = 0
        self.first_step = step
        self.started = time.perf_counter()

    def add(self, terms: LossTerms, batch_size: int) -> None:
        names = ["loss", *terms.terms]
        if names != self.names:  # the objective's terms, known from its first step
            self.names = names
            self.sums = torch.zeros(len(names), device=self.device)
        self.sums += torch.stack([terms.loss.detach(), *(value.detach() for value in terms.terms.values())])
        self.kl_per_dim = self.kl_per_dim + terms.kl_per_dim.detach()
        self.steps += 1
        self.images += batch_size

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the window (its seconds too, so images/s stay true)."""
        kl_per_dim = self.kl_per_dim.clone() if isinstance(self.kl_per_dim, torch.Tensor) else self.kl_per_dim
        return {
            "names": list(self.names),
            "sums": self.sums.clone(),
            "kl_per_dim": kl_per_dim,
            "steps": self.steps,
            "images": self.images,
            "first_step": self.first_step,
            "seconds": time.perf_counter() - self.started,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.names = list(state.get("names", ["loss", "recon", "kl"]))  # older checkpoints: three terms
        self.sums = state["sums"].to(self.device)
        kl_per_dim = state["kl_per_dim"]
        self.kl_per_dim = kl_per_dim.to(self.device) if isinstance(kl_per_dim, torch.Tensor) else kl_per_dim
        self.steps, self.images, self.first_step = state["steps"], state["images"], state["first_step"]
        self.started = time.perf_counter() - state["seconds"]

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the time of the ``with`` block out of images/s."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.started += time.perf_counter() - started

    def check_finite(self, step: int, saved_step: int | None) -> list[float]:
        values = self.sums.tolist()
        if not all(math.isfinite(v) for v in values):
            # The sums were finite when the last checkpoint was written, so the fault came after it.
            since = self.first_step if saved_step is None else max(self.first_step, saved_step)
            raise _diverged("loss", since, step, saved_step)
        return values

    def flush(self, step: int, saved_step: int | None) -> dict[str, float]:
        sums = self.check_finite(step, saved_step)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        count = max(self.steps, 1)
        kl_per_dim = (self.kl_per_dim / count).tolist() if self.steps else []
        values: dict[str, Any] = {name: total / count for name, total in zip(self.names, sums, strict=True)}
        values.update(images_per_s=self.images / elapsed, kl_per_dim=kl_per_dim)
        self._reset(step)
        return values


def test_loss(
    model: models.BetaVAE, split: ImageSplit, objective: Objective, seed: int, batch_size: int = 500
) -> dict[str, Any]:
    """Held-out loss and the objective's terms averaged over ``split``, z sampled from a seeded generator.

    Schedules are at their end (``step`` None): the held-out loss is the objective the
    run finished training with.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    noise = torch.Generator(device=device).manual_seed(seed + 1)
    totals: dict[str, float] = {}
    kl_dims = torch.zeros(model.latent_dim, dtype=torch.float64)
    with torch.no_grad():
        for begin in range(0, len(split), batch_size):
            positions = torch.arange(begin, min(begin + batch_size, len(split)))
            x = performance.fast_layout(split.images(positions).to(device).float().div_(255))
            terms = objective(model(x, generator=noise), x, None)
            count = len(positions)
            for name, value in {"loss": terms.loss, **terms.terms}.items():
                totals[name] = totals.get(name, 0.0) + value.item() * count
            kl_dims += terms.kl_per_dim.double().cpu() * count
    model.train(was_training)
    return {**{name: total / len(split) for name, total in totals.items()},
            "kl_per_dim": (kl_dims / len(split)).tolist(), "num_images": len(split)}


@dataclass
class _Setup:
    """What a run needs before its first step: data, model, loss, device, derived values."""

    dataset: data.ImageDataset
    model: models.BetaVAE
    objective: Objective
    device: torch.device
    derived: DerivedValues  # all but the optimiser and the step, which train() adds once it made them

    @classmethod
    def create(cls, config: TrainConfig, dataset: data.ImageDataset | None = None,
               names: Mapping[str, str] | None = None) -> _Setup:
        dataset = config.load_dataset(names) if dataset is None else dataset
        arch = _arch(config, dataset)
        num_pixels = dataset.num_pixels
        beta, beta_norm = _betas(config, num_pixels)
        device = resolve_device(config.device)
        performance.check_precision(config.precision, device)
        performance.use_deterministic_kernels(device, config.deterministic)  # before any CUDA product
        performance.keep_freed_memory()
        torch.manual_seed(config.seed)  # the initial weights
        model = models.build(arch, config.latent_dim, dataset.image_shape)
        model = model.to(device, memory_format=performance.MEMORY_FORMAT)
        objective = make_objective(config, beta).to(device)
        objective.set_dataset_size(len(dataset.train))
        if not objective.USES_BETA:  # record the KL weight the objective uses, not a β it ignores
            beta, beta_norm = objective.beta, norm_from_beta(objective.beta, config.latent_dim, num_pixels)
        derived = DerivedValues(
            arch=arch,
            lr=models.learning_rate(arch, config.lr),
            beta=beta,
            beta_norm=beta_norm,
            num_pixels=num_pixels,
            image_shape=tuple(dataset.image_shape),
            num_train=len(dataset.train),
            num_test=len(dataset.test),
            device=str(device),
            torch_version=torch.__version__,
            betavae_version=betavae.__version__,
            num_threads=torch.get_num_threads(),
            memory_format=str(performance.MEMORY_FORMAT).removeprefix("torch."),
        )
        return cls(dataset, model, objective, device, derived)


def _arch(config: TrainConfig, dataset: data.ImageDataset) -> str:
    return config.arch or models.default_arch(dataset.image_shape[-1])


def _betas(config: TrainConfig, num_pixels: int) -> tuple[float, float]:
    """(β, β_norm) of ``config``, whichever form it gave (β = 4 when it gave neither)."""
    if config.beta_norm is not None:
        return beta_from_norm(config.beta_norm, config.latent_dim, num_pixels), config.beta_norm
    beta = DEFAULT_BETA if config.beta is None else config.beta
    return beta, norm_from_beta(beta, config.latent_dim, num_pixels)


def default_run_path(config: TrainConfig, arch: str, beta: float) -> str:
    """``runs/<dataset>-<arch>-z<M>-b<β>-s<seed>``: a name that says what the run is."""
    beta_text = f"bn{config.beta_norm:g}" if config.beta_norm is not None else f"b{beta:g}"
    return str(Path("runs") / f"{config.dataset}-{arch}-z{config.latent_dim}-{beta_text}-s{config.seed}")


def _with_run_folder(
    config: TrainConfig, resume: bool, names: Mapping[str, str] | None = None
) -> tuple[TrainConfig, data.ImageDataset | None]:
    """``config`` with its run folder (named after the run when not given), and the dataset if that loaded it.

    A new run's folder is created here; a run to resume must exist, and nothing is loaded
    for it before its saved config has been compared with this one.
    """
    dataset = None
    if config.out is None:
        if resume:
            raise BetaVAEError("--resume needs --out: the run folder to continue")
        dataset = config.load_dataset(names)
        out = default_run_path(config, _arch(config, dataset), _betas(config, dataset.num_pixels)[0])
        config = dataclasses.replace(config, out=out)
    run = RunDir(config.out)
    if not resume:
        _refuse_a_folder_of_others(run, names)
        make_folder(run.path, "run folder")
    else:
        run.require_checkpoint_to_resume()
    return config, dataset


def _refuse_a_folder_of_others(run: RunDir, names: Mapping[str, str] | None) -> None:
    """A new run goes into a new or empty folder, or one an earlier attempt of a run left (its
    ``config.toml``, judged by :meth:`RunDir.clear_unfinished_attempt`); never among a user's files."""
    if not run.path.is_dir() or run.config_path.exists():
        return
    others = files.files_of_others(run.path, ours=(run.lock_path.name,))
    if others:
        files.refuse_files_of_others(run.path, others, "betavae train", (names or {}).get("out", "out"))


def _start_fresh(run: RunDir) -> None:
    """Check that a new run may start in ``run`` and clear what an unfinished attempt left; no checkpoint."""
    if run.has_checkpoint():
        raise BetaVAEError(
            f"{run.path} already holds a run; pass --resume to continue it, or choose another --out"
        )
    run.clear_unfinished_attempt()


def _checkpoint_to_resume(
    run: RunDir, config: TrainConfig, names: Mapping[str, str] | None
) -> dict[str, Any]:
    """The checkpoint to continue, once ``config`` is known to describe the same experiment.

    Compared with the config stored in the checkpoint (the one that made its weights),
    before any data is loaded, so a wrong flag fails at once and a damaged ``config.toml``
    does not stop the run (it is rewritten from this one).
    """
    checkpoint = run.load_checkpoint()
    saved_values = checkpoint["config"]
    saved = DerivedValues.from_dict(checkpoint["derived"], str(run.checkpoint_path))
    label = lambda key: (names or {}).get(key, key)  # the value's origin: a flag typed, else a file's key
    changed = [
        key
        for key, value in config.to_dict().items()
        if key not in RESUMABLE_CHANGES and key in saved_values and saved_values[key] != value
    ]
    if "lr" in changed and models.learning_rate(saved.arch, config.lr) == saved.lr:
        changed.remove("lr")  # the same rate, given by hand once and left to the architecture the other time
    if changed:
        listed = ", ".join(label(key) for key in sorted(changed))
        raise BetaVAEError(
            f"cannot resume {run.path} with a different {listed}: that would be another experiment; "
            f"only {', '.join(setting_name(key, names) for key in sorted(RESUMABLE_CHANGES))} may change "
            f"(train a new run with another --out)"
        )
    step = int(checkpoint["step"])
    if config.steps < step:
        steps = label("steps")
        raise BetaVAEError(
            f"{run.path} holds {step} trained steps, more than {steps} {config.steps}; "
            f"give {steps} {step} or more"
        )
    return checkpoint


def _restore(
    checkpoint: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    objective_optimizers: Mapping[str, torch.optim.Optimizer],
    noise: torch.Generator,
) -> int:
    """Load a checkpoint into the run's objects; return its step, the first step to run.

    The objective's networks and optimisers (FactorVAE's discriminator) come back by name;
    checkpoints of objectives without them hold empty ones (older checkpoints: none).
    """
    model.load_state_dict(checkpoint["model"])
    performance.load_optimizer_state(optimizer, checkpoint["optimizer"])
    objective.load_state_dict(checkpoint.get("objective", {}))
    saved = checkpoint.get("objective_optimizers", {})
    if set(saved) != set(objective_optimizers):
        raise BetaVAEError(f"the checkpoint holds the optimisers {sorted(saved)} of the objective, this run "
                           f"makes {sorted(objective_optimizers)}; train a new run with another --out")
    for name, each in objective_optimizers.items():
        performance.load_optimizer_state(each, saved[name])
    noise.set_state(checkpoint["noise_state"].cpu())
    return int(checkpoint["step"])


def _save_checkpoint(
    run: RunDir,
    config: TrainConfig,
    derived: DerivedValues,
    step: int,
    trained: tuple[torch.nn.Module, torch.optim.Optimizer, Objective, Mapping[str, torch.optim.Optimizer]],
    noise: torch.Generator,
    window: _Window,
    train_seconds: float,
    saved_step: int | None,
) -> None:
    """Write the checkpoint of ``step``; ``trained``: the model, its optimiser, the objective and its own."""
    model, optimizer, objective, objective_optimizers = trained
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "objective": objective.state_dict(),
        "objective_optimizers": {name: each.state_dict() for name, each in objective_optimizers.items()},
        "noise_state": noise.get_state(),
        "config": config.to_dict(),
        "derived": derived.to_dict(),
        "window": window.state(),
        "train_seconds": train_seconds,
    }
    try:
        run.save_checkpoint(state)
    except OSError as error:
        raise CheckpointNotWritten(
            f"cannot write the checkpoint of step {step} in {run.path}: {error.strerror or error}; "
            f"{_kept(saved_step)}; free space or make the folder writable, then continue with: "
            f"betavae train --out {run.path} --resume"
        ) from None


def _no_bar(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None hides the bar when stderr is not a terminal."""
    return None if progress is None else not progress
