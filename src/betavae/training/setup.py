"""Everything a run builds before its first step, from its config: folder, data, model, objective,
optimisers, noise and the step function.

:func:`assemble` is the one place that does it, so :func:`~betavae.training.loop.train`
and the benchmarks that time its step (``benchmarks/train_throughput.py``) run the same
step: the same learning rate, optimiser, precision, memory format and CUDA-graph choice.
:func:`prepare` is its first half (data, model, objective, derived values), for packed
training, which makes its own optimiser and step over the stacked models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import betavae
from betavae import data, files, models
from betavae.config import DEFAULT_BETA, DerivedValues, TrainConfig, load_config
from betavae.device import resolve_device
from betavae.errors import BetaVAEError
from betavae.files import make_folder
from betavae.objectives import Objective, beta_from_norm, make_objective, norm_from_beta
from betavae.runs import RunDir
from betavae.training import performance
from betavae.training.checkpoints import restore_checkpoint
from betavae.training.steps import Step, make_step, uses_cuda_graph


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
class Setup:
    """What a run needs before its optimiser: data, model, loss, device, derived values."""

    dataset: data.ImageDataset
    model: models.BetaVAE
    objective: Objective
    device: torch.device
    derived: DerivedValues  # all but the optimiser and the step, which assemble() adds once it made them


def prepare(config: TrainConfig, dataset: data.ImageDataset | None = None,
            names: Mapping[str, str] | None = None) -> Setup:
    """The run's data (``dataset``, or loaded as ``config`` says), its model initialised from the
    seed and placed on the device in the models' memory format, its objective and derived values.

    Also switches the process to the run's kernels (:func:`performance.use_deterministic_kernels`)
    before the first CUDA product, and refuses a precision the device lacks.
    """
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
    return Setup(dataset, model, objective, device, derived)


@dataclass
class Assembly(Setup):
    """A :class:`Setup` with what steps it: the optimisers, the noise, the step counter and the step.

    ``derived`` here names the optimiser and how the step runs (CUDA graph or eager).
    ``step_count`` is the steps taken so far, on the device, where the objective's schedules
    read it; ``take_step(x)`` trains on the batch ``x`` and returns its loss terms.
    """

    optimizer: torch.optim.Adam
    objective_optimizers: dict[str, torch.optim.Optimizer]  # of the objective's own networks
    noise: torch.Generator  # the reparameterisation noise, its state saved in checkpoints
    step_count: torch.Tensor
    take_step: Step

    def restore(self, checkpoint: dict[str, Any]) -> int:
        """Load ``checkpoint`` into these objects; return its step, the first step to run."""
        start = restore_checkpoint(checkpoint, self.model, self.optimizer, self.objective,
                                   self.objective_optimizers, self.noise)
        self.step_count.fill_(start)
        return start


def assemble(config: TrainConfig, dataset: data.ImageDataset | None = None,
             names: Mapping[str, str] | None = None) -> Assembly:
    """Everything a run builds before its first step, as :func:`~betavae.training.loop.train` runs it.

    :func:`prepare`, then Adam at the architecture's learning rate
    (:func:`models.learning_rate`, unless ``config.lr`` gives one) in its fast form
    (:func:`performance.make_optimizer`, capturable when steps are replayed from a CUDA
    graph), the objective's own optimisers, the noise generator seeded by ``config.seed``
    and the step in ``config.precision`` (:func:`~betavae.training.steps.make_step`). A
    benchmark that times ``take_step`` times the step ``betavae train`` takes.
    """
    setup = prepare(config, dataset, names)
    device = setup.device
    graphed = uses_cuda_graph(device, config.cuda_graph)
    optimizer = performance.make_optimizer(setup.model.parameters(), setup.derived.lr, device,
                                           capturable=graphed)
    objective_optimizers = setup.objective.make_optimizers(device, capturable=graphed)
    derived = dataclasses.replace(setup.derived, optimizer=performance.optimizer_name(optimizer),
                                  step="cuda graph" if graphed else "eager")
    noise = torch.Generator(device=device).manual_seed(config.seed)
    step_count = torch.zeros((), dtype=torch.int64, device=device)
    take_step = make_step(setup.model, setup.objective, optimizer, noise, config.precision, config.cuda_graph,
                          step_count, objective_optimizers)
    return Assembly(setup.dataset, setup.model, setup.objective, device, derived, optimizer,
                    objective_optimizers, noise, step_count, take_step)


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


def with_run_folder(
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
