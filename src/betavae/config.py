"""Typed training configuration, read from and written to TOML.

Precedence is defaults < ``--config FILE.toml`` < command-line flags. Every run folder
holds the config that made it (``config.toml``), with the values the run derived from it
(β and β_norm both, the resolved architecture and device) in a ``[derived]`` table that
is ignored on reading, so ``betavae train --config runs/x/config.toml`` repeats a run.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from betavae.errors import BetaVAEError, unknown_choice

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DERIVED_TABLE = "derived"


@dataclass
class TrainConfig:
    """Everything that determines a training run. ``None`` means "the dataset's default"."""

    dataset: str = "shapes"
    arch: str | None = None
    latent_dim: int = 10
    beta: float | None = None
    beta_norm: float | None = None
    recon: str = "bernoulli"
    steps: int = 5000
    batch_size: int = 64
    lr: float | None = None  # the architecture's (models.ARCHITECTURES)
    precision: str = "fp32"
    cuda_graph: bool = True  # on CUDA, replay each step from a captured graph (betavae.steps)
    seed: int = 0
    out: str | None = None
    device: str = "auto"
    checkpoint_every: int = 1000
    log_every: int = 50
    data_dir: str | None = None
    test_size: int | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Reject impossible values with a message that says which option to fix.

        Names are checked here, before any data is loaded, so a typo fails at once.
        """
        from betavae.data import DATASETS
        from betavae.device import DEVICE_CHOICES
        from betavae.models import ARCHITECTURES
        from betavae.objectives import RECONSTRUCTIONS
        from betavae.performance import PRECISIONS

        for kind, value, choices in (("dataset", self.dataset, DATASETS), ("architecture", self.arch, ARCHITECTURES),
                                     ("reconstruction loss", self.recon, RECONSTRUCTIONS),
                                     ("precision", self.precision, PRECISIONS),
                                     ("device", self.device.split(":")[0], DEVICE_CHOICES)):
            if value is not None and value not in choices:
                raise unknown_choice(kind, value, choices)
        if self.beta is not None and self.beta_norm is not None:
            raise BetaVAEError("give β either raw (--beta) or normalised (--beta-norm), not both")
        for name in ("latent_dim", "steps", "batch_size", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise BetaVAEError(f"{name} must be a positive integer, got {value!r}")
        for name in ("beta", "beta_norm"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise BetaVAEError(f"{name} must be a finite non-negative number, got {value!r}")
        if not isinstance(self.cuda_graph, bool):
            raise BetaVAEError(f"cuda_graph must be true or false, got {self.cuda_graph!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise BetaVAEError(f"lr must be a positive number, got {self.lr!r}")

    def dataset_kwargs(self) -> dict[str, Any]:
        """Keyword options for :func:`betavae.data.load`."""
        kwargs = dict(self.dataset_options)
        if self.data_dir is not None:
            kwargs["data_dir"] = self.data_dir
        if self.test_size is not None:
            kwargs["test_size"] = self.test_size
        # The held-out split keeps the dataset's own seed (dataset_options.seed), not the run's:
        # runs that differ only in their training seed must be tested on the same images.
        return kwargs

    def load_dataset(self):
        """The dataset (and held-out split) this config trains on: ``betavae.data.load`` with its options."""
        from betavae.data import load

        return load(self.dataset, **self.dataset_kwargs())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise BetaVAEError(f"{source}: unknown key {', '.join(unknown)}; valid keys: {', '.join(cls.keys())}")
        return cls(**values)

    def merged(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with the non-``None`` ``overrides`` applied (the flags a user gave)."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return dataclasses.replace(self, **given)


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a one-line error."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise BetaVAEError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise BetaVAEError(f"config file {path} is not valid TOML: {error}") from None


def load_config(path: str | Path) -> TrainConfig:
    """A :class:`TrainConfig` from TOML, ignoring the informational ``[derived]`` table."""
    values = read_toml(path)
    values.pop(DERIVED_TABLE, None)
    return TrainConfig.from_dict(values, source=str(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_toml_char(char) for char in value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_char(char: str) -> str:
    """One character of a TOML basic string: quotes, backslashes and control characters escaped."""
    if char in '"\\':
        return "\\" + char
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\u{ord(char):04x}"
    return char


def to_toml(values: dict[str, Any]) -> str:
    """Flat keys first, then one level of tables; ``None`` values are left out (TOML has no null)."""
    lines: list[str] = []
    tables: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append(f"\n[{key}]\n" + to_toml(value))
        else:
            lines.append(f"{key} = {_toml_value(value)}\n")
    return "".join(lines) + "".join(tables)
