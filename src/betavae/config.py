"""Typed training configuration, read from and written to TOML.

Every field is declared once, with its flag and help (:mod:`betavae.options`): the core
settings here (:class:`CoreOptions`), each objective's in its own module; :class:`TrainConfig`
takes them all in, and ``betavae train`` and ``sweep`` make their options from it.
Precedence is defaults < ``--config FILE.toml`` < command-line flags
(:func:`betavae.training.setup.config_from_sources`). Every run folder
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

from betavae.checks import FLOAT32_MAX, check_seed, check_weight
from betavae.errors import BetaVAEError, unknown_choice
from betavae.objectives import OBJECTIVES, OPTION_CLASSES, RECONSTRUCTIONS, REDUCTIONS, options_of
from betavae.objectives import get as get_objective
from betavae.options import OptionHelp, option, option_help

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DERIVED_TABLE = "derived"

DEFAULT_BETA = 4.0
"""The β of a run that gives neither ``beta`` nor ``beta_norm``."""

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


@dataclass
class CoreOptions:
    """The settings of every run, whatever its objective; each field carries its flag and help
    (:func:`betavae.options.option`). ``None`` means "the default of the data, the architecture
    or the machine", as each field's ``default_text`` says."""

    dataset: str = option("shapes", "--dataset", "{names}", names="betavae.data:DATASETS")
    arch: str | None = option(None, "--arch", "{names}", default_text="by image size",
                              names="betavae.models:ARCHITECTURES")
    latent_dim: int = option(10, "--latent", "latent size M")
    beta: float | None = option(None, "--beta", "raw β", default_text=f"{DEFAULT_BETA:g}")
    beta_norm: float | None = option(None, "--beta-norm", "normalised β = β·M/N (N pixels)")
    recon: str = option("bernoulli", "--recon", "{names}", names="betavae.objectives:RECONSTRUCTIONS")
    # sum: the image's negative log-likelihood; mean: PyTorch's F.mse_loss default, β made D times
    # stronger (docs/guide/objectives.md). Configs written before it read as sum, what they trained with.
    recon_reduction: str = option("sum", "--recon-reduction", "the reconstruction over an image's pixels: "
                                  "{names} (mean: per pixel, a given β N times stronger; N pixels)",
                                  names="betavae.objectives:REDUCTIONS")
    steps: int = option(5000, "--steps", "optimiser steps")
    batch_size: int = option(64, "--batch-size", "images per step")
    lr: float | None = option(None, "--lr", "Adam learning rate", default_text="the architecture's")
    precision: str = option("fp32", "--precision", "{names} (bf16: autocast; CPUs with AVX-512 BF16 or AMX, "
                            "Ampere+ GPUs)", names="betavae.training.performance:PRECISIONS")
    cuda_graph: bool = option(True, "--cuda-graph", "on CUDA, replay each step from one captured graph "
                              "instead of launching its kernels")
    deterministic: bool = option(False, "--deterministic", "on CUDA, kernels that give the same numbers for "
                                 "the same seed every time (slower)")
    seed: int = option(0, "--seed", "seed of the initial weights, the batches and the sampling noise",
                       seed=True)
    out: str | None = option(None, "--out", "run folder",
                             default_text="runs/<dataset>-<arch>-z<M>-b<β>-s<seed>")
    device: str = option("auto", "--device", "{names}", names="betavae.device:DEVICE_CHOICES")
    checkpoint_every: int = option(1000, "--checkpoint-every", "steps between checkpoints")
    log_every: int = option(50, "--log-every", "steps between log entries")
    data_dir: str | None = option(None, "--data-dir", "where dataset files are (MNIST, shapes3d, celeba); "
                                  "also $BETAVAE_DATA_DIR")
    test_size: int | None = option(None, "--test-size", "held-out images (MNIST: of its test set)",
                                   default_text="the dataset's")
    # Disentanglement measured while training (betavae.training.tracking): the metrics, every how many steps
    # (None: at each checkpoint), the seed of the one sample every evaluation measures on, and the
    # metrics' n_train / n_eval (None: each metric's own).
    eval: list[str] = option(flag="--eval", help="metrics measured during training, comma-separated: "
                             "{names}, or all", default_factory=list, names="betavae.metrics:METRICS")
    eval_every: int | None = option(None, "--eval-every", "steps between those evaluations",
                                    default_text="--checkpoint-every")
    eval_seed: int = option(0, "--eval-seed", "seed of the one sample every evaluation measures on",
                            seed=True)
    eval_n_train: int | None = option(None, "--eval-n-train", "training points of every metric",
                                      default_text="each metric's own")
    eval_n_eval: int | None = option(None, "--eval-n-eval", "evaluation points of every metric",
                                     default_text="each metric's own")
    # The objective (betavae.objectives); its own options are fields of its options dataclass, which
    # TrainConfig takes in. beta_warmup: steps over which the regulariser's weight rises linearly
    # from 0, for every objective.
    objective: str = option("beta", "--objective", "{names}", names="betavae.objectives:OBJECTIVES")
    beta_warmup: int = option(0, "--beta-warmup", "steps over which the regulariser's weight rises from 0")


# dataclasses order the fields of the bases from the last base to the first: the core fields
# come first, then each objective's in the registry's order (the order of config.toml's keys).
@dataclass
class TrainConfig(*reversed(OPTION_CLASSES), CoreOptions):
    """Everything that determines a training run: :class:`CoreOptions`, the options of every
    registered objective (:data:`betavae.objectives.OPTION_CLASSES`; each objective reads only
    its own, :func:`~betavae.objectives.options_of`, and setting another's is refused), and the
    dataset's own options (a table, ``dataset_options``, which has no flag)."""

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
        from betavae.training.performance import PRECISIONS

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
            ("recon_reduction", "reconstruction reduction", self.recon_reduction, REDUCTIONS),
            ("objective", "objective", self.objective, OBJECTIVES),
            ("precision", "precision", self.precision, PRECISIONS),
            ("device", "device", self.device.split(":")[0], DEVICE_CHOICES),
        ):
            if value is not None and value not in choices:
                raise BetaVAEError(f"{unknown_choice(kind, value, choices)} ({called[key]})")
        defaults = TrainConfig()
        others = {key for name in OBJECTIVES if name != self.objective for key in options_of(name)}
        for other in sorted(others - set(options_of(self.objective))):
            if getattr(self, other) != getattr(defaults, other):  # set, and ignored: say so
                owners = [name for name in OBJECTIVES if other in options_of(name)]
                raise BetaVAEError(f"{called[other]} is an option of objective {' or '.join(owners)}, "
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
        from betavae.metrics.settings import check_sizes

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


FLAGS: dict[str, str] = {
    each.name: described.flag for each in fields(TrainConfig)
    if (described := option_help(each)) is not None and described.flag is not None
}
"""The ``betavae train`` flag of each field that has one, so errors can name what the user typed."""


def flagged_fields() -> list[tuple[dataclasses.Field, OptionHelp]]:
    """The fields of :class:`TrainConfig` that have a flag, in order, each with its :class:`OptionHelp`:
    the options ``betavae train`` and ``betavae sweep`` are made from."""
    return [(each, option_help(each)) for each in fields(TrainConfig) if each.name in FLAGS]


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


def value_type(key: str) -> Any:
    """The type field ``key`` holds when it is set: ``int`` for ``test_size: int | None``,
    ``list[str]`` for ``eval``."""
    (kind,) = [kind for kind in _field_types()[key] if kind is not type(None)]
    return kind


def takes_list(key: str) -> bool:
    """Whether field ``key``'s value is a list (``eval``): a sweep's list of it is a list of lists."""
    return any(typing.get_origin(kind) is list for kind in _field_types()[key])


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
