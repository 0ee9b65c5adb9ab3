"""A run's checkpoint: writing it, and resuming from it only as the same experiment.

A checkpoint holds everything the next step depends on: the weights and Adam state (the
objective's own networks and optimisers too), the noise generator's state, the loss window
and the seconds trained. With the batch at step ``s`` following from ``(seed, s)`` alone
(:class:`~betavae.training.batches.BatchOrder`), a run interrupted and resumed ends with the
weights of one that never stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from betavae import models
from betavae.config import DerivedValues, TrainConfig, setting_name
from betavae.errors import BetaVAEError
from betavae.objectives import Objective
from betavae.runs import RunDir
from betavae.training import performance
from betavae.training.faults import CheckpointNotWritten, kept
from betavae.training.meters import LossWindow

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


def start_fresh(run: RunDir) -> None:
    """Check that a new run may start in ``run`` and clear what an unfinished attempt left; no checkpoint."""
    if run.has_checkpoint():
        raise BetaVAEError(
            f"{run.path} already holds a run; pass --resume to continue it, or choose another --out"
        )
    run.clear_unfinished_attempt()


def checkpoint_to_resume(
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


def restore_checkpoint(
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


def save_checkpoint(
    run: RunDir,
    config: TrainConfig,
    derived: DerivedValues,
    step: int,
    trained: tuple[torch.nn.Module, torch.optim.Optimizer, Objective, Mapping[str, torch.optim.Optimizer]],
    noise: torch.Generator,
    window: LossWindow,
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
            f"{kept(saved_step)}; free space or make the folder writable, then continue with: "
            f"betavae train --out {run.path} --resume"
        ) from None
