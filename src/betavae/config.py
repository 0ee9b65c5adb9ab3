"""Typed training configuration, read from and written to TOML.

Precedence is defaults < ``--config FILE.toml`` < command-line flags. Every run folder
holds the config that made it (``config.toml``), with the values the run derived from it
(β and β_norm both, the resolved architecture and device) in a ``[derived]`` table that
is ignored on reading, so ``betavae train --config runs/x/config.toml`` repeats a run.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from betavae.errors import BetaVAEError, unknown_choice

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DERIVED_TABLE = "derived"

FLOAT32_MAX = 3.4028234663852886e38
"""``torch.finfo(torch.float32).max``: a larger learning rate or β is infinite in training."""

SEED_MAX = 2**32 - 1
"""The largest seed: scikit-learn's ``random_state`` (PCA's, in ``transfer``) refuses 2**32 and above.

numpy refuses negative seeds, torch takes up to 2**64 − 1 and TOML up to 2**63 − 1: the range
every generator a command seeds accepts is scikit-learn's.
"""

FLAGS: dict[str, str] = {
    "dataset": "--dataset", "arch": "--arch", "latent_dim": "--latent", "beta": "--beta",
    "beta_norm": "--beta-norm", "recon": "--recon", "steps": "--steps", "batch_size": "--batch-size",
    "lr": "--lr", "precision": "--precision", "cuda_graph": "--cuda-graph",
    "deterministic": "--deterministic", "seed": "--seed", "out": "--out",
    "device": "--device", "checkpoint_every": "--checkpoint-every", "log_every": "--log-every",
    "data_dir": "--data-dir", "test_size": "--test-size", "eval": "--eval", "eval_every": "--eval-every",
    "eval_seed": "--eval-seed", "eval_n_train": "--eval-n-train", "eval_n_eval": "--eval-n-eval",
    "objective": "--objective", "beta_warmup": "--beta-warmup", "capacity_gamma": "--capacity-gamma",
    "capacity_max": "--capacity-max", "capacity_steps": "--capacity-steps", "tc_alpha": "--tc-alpha",
    "tc_gamma": "--tc-gamma", "tc_sampling": "--tc-sampling", "dip_type": "--dip-type",
    "dip_lambda_od": "--dip-lambda-od", "dip_lambda_d": "--dip-lambda-d", "factor_gamma": "--factor-gamma",
    "factor_lr": "--factor-lr",
}
"""The ``betavae train`` flag of each field that has one, so errors can name what the user typed."""


def typed_names(flags_given: Iterable[str]) -> dict[str, str]:
    """The ``names`` of :meth:`TrainConfig.validate` when the fields ``flags_given`` came from flags."""
    return {name: FLAGS[name] for name in flags_given}


def setting_name(key: str, names: Mapping[str, str] | None) -> str:
    """How a message names field ``key`` as a setting to change: what the user typed for it (``names``),
    else its flag when they typed flags, else its field name.

    For advice ("only --steps, --out … may change"), not for a value's origin: a value the user
    did not type came from their config file (or the library), whose key is its field name.
    """
    names = names or {}
    if key in names:
        return names[key]
    on_command_line = any(name.startswith("--") for name in names.values())
    return FLAGS.get(key, key) if on_command_line else key


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` if every generator of a run takes it, else a one-line error calling it ``name``.

    The one check of seeds, for every command and library entry point that takes one: numpy's
    ``SeedSequence`` refuses negative seeds and scikit-learn's ``random_state`` 2**32 and
    above, each with a trace-back (:data:`SEED_MAX`).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise BetaVAEError(f"{name} must be a whole number from 0 to {SEED_MAX}, got {seed!r}")
    return seed


def check_weight(value: float, name: str, positive: bool = False) -> float:
    """``value`` if training can multiply by it, else a one-line error calling it ``name``.

    The one check of a β, an objective's weight or a learning rate: 0 or more (more than 0 when
    ``positive``) and finite in float32, the precision training computes in; NaN and ±∞ are
    refused here rather than diverging the run with advice about ``--lr``.
    """
    at_least = 0 < value if positive else 0 <= value  # False for NaN
    if isinstance(value, bool) or not (at_least and value <= FLOAT32_MAX):
        raise BetaVAEError(
            f"{name} must be a finite {'positive' if positive else 'non-negative'} number no larger than "
            f"3.4e38 (float32), got {value!r}"
        )
    return value


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
    deterministic: bool = False  # on CUDA, kernels that repeat their numbers (betavae.performance)
    seed: int = 0
    out: str | None = None
    device: str = "auto"
    checkpoint_every: int = 1000
    log_every: int = 50
    data_dir: str | None = None
    test_size: int | None = None
    # Disentanglement measured while training (betavae.tracking): the metrics, every how many steps
    # (None: at each checkpoint), the seed of the one sample every evaluation measures on, and the
    # metrics' n_train / n_eval (None: each metric's own).
    eval: list[str] = field(default_factory=list)
    eval_every: int | None = None
    eval_seed: int = 0
    eval_n_train: int | None = None
    eval_n_eval: int | None = None
    # The objective (betavae.objectives) and its options; each objective reads only its own
    # (objectives.options_of), and setting another's is refused. beta_warmup: steps over which
    # the regulariser's weight rises linearly from 0, for every objective.
    objective: str = "beta"
    beta_warmup: int = 0
    capacity_gamma: float = 1000.0
    capacity_max: float = 25.0
    capacity_steps: int | None = None  # None: the run's steps
    tc_alpha: float = 1.0
    tc_gamma: float = 1.0
    tc_sampling: str = "mws"
    dip_type: str = "ii"
    dip_lambda_od: float = 10.0
    dip_lambda_d: float | None = None  # None: 10·λ_od for DIP-VAE I, λ_od for II
    factor_gamma: float = 35.0
    factor_lr: float = 1e-4  # the discriminator's Adam
    dataset_options: dict[str, Any] = field(default_factory=dict)

    def validate(self, names: Mapping[str, str] | None = None) -> None:
        """Reject impossible values with a message that names the setting to fix.

        ``names`` maps a field to what the user typed for it: a flag such as ``--latent``
        (:func:`typed_names`) or a key of their config file. Other fields are called by their
        field name, which is what a library user or a config file types. Names of datasets,
        architectures … are checked here, before any data is loaded, so a typo fails at once.
        """
        from betavae.data import DATASETS
        from betavae.device import DEVICE_CHOICES
        from betavae.models import ARCHITECTURES
        from betavae.objectives import OBJECTIVES, RECONSTRUCTIONS, options_of
        from betavae.objectives import get as get_objective
        from betavae.performance import PRECISIONS

        called = {**{key: key for key in self.keys()}, **(names or {})}
        setting = functools.partial(setting_name, names=names)
        for key in self.keys():
            problem = type_problem(key, getattr(self, key))
            if problem is not None:
                raise BetaVAEError(f"{called[key]} {problem}")
        for key, kind, value, choices in (
            ("dataset", "dataset", self.dataset, DATASETS),
            ("arch", "architecture", self.arch, ARCHITECTURES),
            ("recon", "reconstruction loss", self.recon, RECONSTRUCTIONS),
            ("objective", "objective", self.objective, OBJECTIVES),
            ("precision", "precision", self.precision, PRECISIONS),
            ("device", "device", self.device.split(":")[0], DEVICE_CHOICES),
        ):
            if value is not None and value not in choices:
                raise BetaVAEError(f"{unknown_choice(kind, value, choices)} ({called[key]})")
        defaults = TrainConfig()
        others = {key for name in OBJECTIVES if name != self.objective for key in options_of(name)}
        for option in sorted(others - set(options_of(self.objective))):
            if getattr(self, option) != getattr(defaults, option):  # set, and ignored: say so
                owners = [name for name in OBJECTIVES if option in options_of(name)]
                raise BetaVAEError(f"{called[option]} is an option of objective {' or '.join(owners)}, "
                                   f"not of {self.objective}; choose {owners[0]} with {setting('objective')}")
        objective = get_objective(self.objective)
        objective.check_options({key: getattr(self, key) for key in objective.OPTIONS}, called)
        if not objective.USES_BETA:
            for key in ("beta", "beta_norm"):
                if getattr(self, key) is not None:
                    own = ", ".join(setting(option) for option in options_of(self.objective))
                    raise BetaVAEError(f"objective {self.objective} does not use β ({called[key]}); its "
                                       f"weights are its own options: {own}")
        if self.beta_warmup < 0:
            raise BetaVAEError(f"{called['beta_warmup']} must be 0 or more steps, got {self.beta_warmup}")
        if self.beta is not None and self.beta_norm is not None:
            raise BetaVAEError(
                f"give β either raw ({called['beta']}) or normalised ({called['beta_norm']}), not both"
            )
        for key in ("latent_dim", "steps", "batch_size", "checkpoint_every", "log_every", "test_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise BetaVAEError(f"{called[key]} must be a positive integer, got {value!r}")
        check_seed(self.seed, called["seed"])
        for key in ("beta", "beta_norm"):
            if getattr(self, key) is not None:
                check_weight(getattr(self, key), called[key])
        if self.lr is not None and not 0 < self.lr <= FLOAT32_MAX:
            raise BetaVAEError(
                f"{called['lr']} must be a positive number no larger than 3.4e38 (float32), got {self.lr!r}"
            )
        self._validate_eval(called)

    def _validate_eval(self, called: Mapping[str, str]) -> None:
        """The settings of evaluation during training: known metrics, sizes they take, a dataset
        with factors."""
        from betavae import metrics
        from betavae.data import has_factors, with_factors
        from betavae.evaluation import check_sizes

        for name in self.eval:
            if name not in metrics.METRICS:
                raise BetaVAEError(f"{unknown_choice('metric', name, metrics.METRICS)} ({called['eval']})")
        repeated = sorted({name for name in self.eval if self.eval.count(name) > 1})
        if repeated:
            raise BetaVAEError(
                f"{called['eval']} names {', '.join(repeated)} more than once; name each metric once"
            )
        if self.eval_every is not None and self.eval_every < 1:
            raise BetaVAEError(f"{called['eval_every']} must be a positive integer, got {self.eval_every!r}")
        check_seed(self.eval_seed, called["eval_seed"])
        check_sizes(
            self.eval, self.eval_sizes(), {"n_train": called["eval_n_train"], "n_eval": called["eval_n_eval"]}
        )
        if self.eval and not has_factors(self.dataset):
            raise BetaVAEError(
                f"dataset {self.dataset!r} has no known generative factors, so {called['eval']} "
                f"cannot measure disentanglement on it; train on {' or '.join(with_factors())}, "
                f"or leave out {called['eval']}"
            )

    def eval_sizes(self) -> dict[str, int | None]:
        """The sizes of the evaluations during training, as :func:`betavae.evaluation.score` takes them."""
        return {"n_train": self.eval_n_train, "n_eval": self.eval_n_eval}

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

    def load_dataset(self, names: Mapping[str, str] | None = None):
        """The dataset (and held-out split) this config trains on: ``betavae.data.load`` with its options.

        ``names`` as for :meth:`validate`: a ``test_size`` larger than the set, which only the
        loaded set can tell, is refused under the name the user typed (``--test-size``).
        """
        from betavae.data import load

        try:
            return load(self.dataset, **self.dataset_kwargs())
        except BetaVAEError as error:
            typed = (names or {}).get("test_size", "test_size")
            if self.test_size is None or typed == "test_size" or "test_size" not in str(error):
                raise
            raise BetaVAEError(str(error).replace("test_size", typed, 1)) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """The config of ``values`` (a config file's keys), refusing unknown keys and values of the
        wrong type.

        A whole number is taken for a float setting (``lr = 1``) and stored as a float.
        """
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise BetaVAEError(
                f"{source}: unknown key {', '.join(unknown)}; valid keys: {', '.join(cls.keys())}"
            )
        for key, value in values.items():
            problem = type_problem(key, value)
            if problem is not None:
                raise BetaVAEError(f"{source}: {key} {problem}")
        return cls(**{key: as_declared(key, value) for key, value in values.items()})

    def merged(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with the non-``None`` ``overrides`` applied (the flags a user gave)."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return dataclasses.replace(self, **given)


_TYPE_WORDS = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    dict: "a table",
    list[str]: "an array of strings",
}


@functools.cache
def _field_types() -> dict[str, tuple[Any, ...]]:
    """The types each field of :class:`TrainConfig` takes, from its annotation:
    ``str | None`` → (str, NoneType).

    A list keeps its item type (``list[str]``), which :func:`_has_type` checks item by item;
    a table is any ``dict``.
    """
    declared = {}
    for key, hint in typing.get_type_hints(TrainConfig).items():
        options = (
            typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        )
        declared[key] = tuple(
            option if typing.get_origin(option) is list else typing.get_origin(option) or option
            for option in options
        )
    return declared


def _has_type(value: Any, kind: Any) -> bool:
    if typing.get_origin(kind) is list:
        (item_kind,) = typing.get_args(kind)
        return isinstance(value, list) and all(_has_type(item, item_kind) for item in value)
    if isinstance(value, bool):  # a bool is an int to Python, but true is no β and no step count
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def takes_list(key: str) -> bool:
    """Whether field ``key``'s value is a list (``eval``): a sweep's list of it is a list of lists."""
    return any(typing.get_origin(kind) is list for kind in _field_types()[key])


def comma_separated(text: str, flag: str) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]``: how every option that takes a list reads its value.

    ``train --eval``, ``evaluate --metrics``, ``transfer --labels`` and ``--baselines``,
    ``sweep --seeds``, ``--metrics`` and the swept values, and ``show traverse --dims`` all
    read here, so a list is written the same way everywhere: items separated by commas,
    spaces around them ignored. An empty item (``a,,b``, a trailing comma) is refused, naming
    ``flag``, rather than skipped: it is most likely a value left out.
    """
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise BetaVAEError(f"{flag} takes values separated by single commas, got {text!r}")
    return items


def type_problem(key: str, value: Any) -> str | None:
    """``must be a number, got the string 'x'`` when ``value`` does not fit field ``key``'s annotation.

    Public for callers that name the setting their own way (a sweep's ``--latent`` or grid key).
    """
    kinds = _field_types()[key]
    if any(_has_type(value, kind) for kind in kinds):
        return None
    wanted = " or ".join(_TYPE_WORDS[kind] for kind in kinds if kind is not type(None))
    item_kinds = [typing.get_args(kind)[0] for kind in kinds if typing.get_origin(kind) is list]
    if isinstance(value, list) and item_kinds:  # the right container: say which item is wrong
        wrong = next(item for item in value if not any(_has_type(item, kind) for kind in item_kinds))
        return f"must be {wanted}, got an array holding {_describe(wrong)}"
    return f"must be {wanted}, got {_describe(value)}"


def _describe(value: Any) -> str:
    """A value as a config file's reader sees it: ``the boolean true``, ``the string '1'``."""
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "None"
    return f"the {type(value).__name__} {value}"


def as_declared(key: str, value: Any) -> Any:
    """``value`` as field ``key`` stores it: a whole number given for a float setting becomes a float."""
    if type(value) is int and float in _field_types()[key]:
        try:
            return float(value)
        except OverflowError:  # beyond any float: left for validate() to refuse by its size
            return value
    return value


@dataclass(frozen=True, kw_only=True)
class DerivedValues:
    """What a run derived from its config, its data and its machine: ``config.toml``'s ``[derived]`` table.

    Written for readers (β and β_norm both, whichever form the config gave; the
    architecture and learning rate a run left to the defaults; where and how it trained)
    and ignored when the config is read back. The fields are the table's keys, in its
    order. Run folders of earlier versions lack the later fields (``lr``,
    ``memory_format``, ``optimizer``, ``step``), which read as None.
    """

    arch: str
    lr: float | None = None
    beta: float
    beta_norm: float
    num_pixels: int
    image_shape: tuple[int, int, int]
    num_train: int
    num_test: int
    device: str
    torch_version: str
    betavae_version: str
    num_threads: int
    memory_format: str | None = None
    optimizer: str | None = None  # the optimiser's name, e.g. "Adam (fused)"
    step: str | None = None  # how each training step ran: "eager" or "cuda graph"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str) -> DerivedValues:
        """The values of a ``[derived]`` table (or a checkpoint's ``derived``); keys it does not know
        are ignored."""
        known = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is dataclasses.MISSING]
        missing = [name for name in required if name not in values]
        if missing:
            raise BetaVAEError(f"the derived values of {source} lack {', '.join(missing)}")
        given = {key: value for key, value in values.items() if key in known}
        given["image_shape"] = tuple(int(size) for size in given["image_shape"])
        return cls(**given)

    def to_dict(self) -> dict[str, Any]:
        """The table as TOML and checkpoints hold it (a None value is left out of TOML)."""
        values = dataclasses.asdict(self)
        values["image_shape"] = list(self.image_shape)
        return values


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
    except UnicodeDecodeError:
        raise BetaVAEError(f"config file {path} is not valid TOML: it is not UTF-8 text") from None


def load_config(path: str | Path) -> TrainConfig:
    """A :class:`TrainConfig` from TOML, ignoring the informational ``[derived]`` table."""
    values = read_toml(path)
    values.pop(DERIVED_TABLE, None)
    return TrainConfig.from_dict(values, source=f"config file {path}")


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
