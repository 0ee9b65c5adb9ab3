"""The run folder: the unit every command exchanges.

A run folder holds ``config.toml`` (what made it), ``checkpoint.pt`` (weights, optimiser
and random state, written atomically), ``metrics.json`` (results, merged section by
section so that later commands add to it), ``log.jsonl`` and ``tensorboard/`` (curves),
and the figures made from it. Training, evaluation, figures, transfer and the demo all
take run folders, so they compose without glue.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from betavae.config import TrainConfig, load_config, to_toml
from betavae.errors import BetaVAEError

CONFIG_FILE = "config.toml"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.jsonl"
TENSORBOARD_DIR = "tensorboard"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new content, never half.

    The bytes go to a temporary file in the same folder, are flushed to disk, and then
    replace ``path`` with one rename, which POSIX makes atomic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class RunDir:
    """Paths and atomic reads/writes of one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    def write_config(self, config: TrainConfig, derived: dict[str, Any]) -> None:
        atomic_write_text(self.config_path, to_toml({**config.to_dict(), "derived": derived}))

    def read_config(self) -> TrainConfig:
        if not self.config_path.exists():
            raise BetaVAEError(f"{self.path} is not a run folder (no {CONFIG_FILE})")
        return load_config(self.config_path)

    def read_derived(self) -> dict[str, Any]:
        """The values the run derived from its config (β and β_norm, arch, image shape …)."""
        from betavae.config import DERIVED_TABLE, read_toml

        if not self.config_path.exists():
            raise BetaVAEError(f"{self.path} is not a run folder (no {CONFIG_FILE})")
        return read_toml(self.config_path).get(DERIVED_TABLE, {})

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.checkpoint_path, buffer.getvalue())

    def load_checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        if not self.has_checkpoint():
            raise BetaVAEError(f"{self.path} has no checkpoint ({CHECKPOINT_FILE}); train it first")
        try:
            return torch.load(self.checkpoint_path, map_location=map_location, weights_only=False)
        except Exception as error:  # a truncated or foreign file: say which and what to do
            raise BetaVAEError(f"checkpoint {self.checkpoint_path} cannot be read ({error}); "
                               f"delete it and train again") from None

    def read_metrics(self) -> dict[str, Any]:
        if not self.metrics_path.exists():
            return {}
        return json.loads(self.metrics_path.read_text())

    def update_metrics(self, section: str, values: dict[str, Any]) -> None:
        """Replace one section of ``metrics.json``, keeping the others (written atomically)."""
        metrics = self.read_metrics()
        metrics[section] = values
        atomic_write_text(self.metrics_path, json.dumps(metrics, indent=2) + "\n")


def common_parent(paths: Sequence[Path]) -> Path:
    """The deepest folder holding every path (for one run: its parent folder): a sweep's folder."""
    resolved = [path.resolve() for path in paths]
    parents = [set(path.parents) for path in resolved]
    return max(set.intersection(*parents), key=lambda path: len(path.parts))


def shared_dataset(runs: Sequence[RunDir], purpose: str):
    """The one dataset (name and split options) every run was trained on; runs of several are an error.

    ``purpose`` completes the error message: "<purpose> compares runs of one dataset".
    """
    configs = [run.read_config() for run in runs]

    def identity(config: TrainConfig) -> str:
        return repr((config.dataset, {k: v for k, v in config.dataset_kwargs().items() if k != "data_dir"}))

    if len({identity(config) for config in configs}) > 1:
        listed = ", ".join(f"{run.path.name}: {config.dataset}" for run, config in zip(runs, configs))
        raise BetaVAEError(f"runs trained on different datasets or splits ({listed}); {purpose} compares runs "
                           f"of one dataset, so give them in separate calls")
    return configs[0].load_dataset()


def load_model(run: str | Path | RunDir, device: str | torch.device = "cpu"):
    """The trained :class:`~betavae.models.BetaVAE` of a run folder, in eval mode."""
    from betavae.models import build

    run = run if isinstance(run, RunDir) else RunDir(run)
    checkpoint = run.load_checkpoint(map_location=device)
    derived = checkpoint["derived"]
    model = build(derived["arch"], checkpoint["config"]["latent_dim"], tuple(derived["image_shape"]))
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()
