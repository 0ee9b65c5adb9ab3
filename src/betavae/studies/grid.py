"""A sweep's grid: training keys with lists of values, expanded into one :class:`TrainConfig` per point.

Any key of :class:`~betavae.config.TrainConfig` can be swept: a list of values sweeps it,
a single value fixes it. The grid is the product of the lists (seeds last to vary least:
every point's first seed comes before any second seed, so a sweep stopped half-way has
covered the whole grid once). :func:`expand_grid` is pure: the same spec gives the same
points, names and hashes on every machine, which is what lets a restarted sweep find the
runs it already has.

A grid file (``betavae sweep GRID.toml``) holds the training keys at its top level and the
sweep's own options in a ``[sweep]`` table::

    dataset = "shapes"
    steps = 5000
    beta_norm = [0.002, 0.02, 0.2, 2, 20]
    latent_dim = [5, 10, 25, 50, 125]

    [sweep]
    seeds = 3                    # or a list: [0, 4, 7]
    metrics = ["mig", "factor_vae"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from betavae.config import (
    TrainConfig,
    as_declared,
    check_seed,
    comma_separated,
    read_toml,
    takes_list,
    type_problem,
)
from betavae.errors import BetaVAEError

# Keys a grid cannot set: each point's run folder is chosen by the sweep.
NOT_SWEPT = {"out"}
# Short names of keys in run folder names: bn0.02-z10-s0.
NAME_PARTS = {"beta_norm": "bn", "beta": "b", "latent_dim": "z", "seed": "s", "lr": "lr", "batch_size": "bs",
              "steps": "n", "arch": "", "dataset": "", "recon": "", "precision": "", "objective": ""}
# Options of the [sweep] table, with what each must be.
SWEEP_OPTIONS = {"seeds": "a positive integer (how many seeds, from 0) or a list of seeds",
                 "metrics": "a list of metric names", "metric_seed": "a seed",
                 "n_train": "a positive integer", "n_eval": "a positive integer"}


def resumable_keys() -> set[str]:
    """Training keys that may differ between two invocations of one sweep without changing its runs.

    A run's own resumable changes (``betavae.train.RESUMABLE_CHANGES``): more steps, another device.
    """
    from betavae.train import RESUMABLE_CHANGES

    return set(RESUMABLE_CHANGES)


@dataclass
class GridSpec:
    """What a sweep trains: fixed training keys, swept ones, seeds, and the metrics measured at the end."""

    fixed: dict[str, Any] = field(default_factory=dict)
    swept: dict[str, list[Any]] = field(default_factory=dict)  # key -> its values, in the order given
    seeds: list[int] = field(default_factory=lambda: [0])
    metrics: list[str] = field(default_factory=list)
    metric_seed: int = 0
    n_train: int | None = None
    n_eval: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GridSpec:
        return cls(**values)

    @property
    def sizes(self) -> dict[str, int | None]:
        """The size options of :func:`betavae.evaluation.score`."""
        return {"n_train": self.n_train, "n_eval": self.n_eval}

    def varied(self) -> list[str]:
        """The keys whose value differs between points (seed last, when there are several seeds)."""
        keys = [key for key, values in self.swept.items() if len(values) > 1]
        return keys + (["seed"] if len(self.seeds) > 1 else [])


@dataclass(frozen=True)
class GridPoint:
    """One run of a sweep: its folder name, the swept values that make it, and its config."""

    name: str
    values: dict[str, Any]
    config: TrainConfig

    def config_hash(self) -> str:
        return config_hash(self.config)


def config_hash(config: TrainConfig) -> str:
    """A short hash of what makes a run the experiment it is (not where it runs or for how long).

    Only settings that differ from :class:`TrainConfig`'s defaults count, so a setting added
    to betavae later (with a default that keeps old runs as they were) leaves the hashes of
    existing sweeps alone.
    """
    defaults = TrainConfig().to_dict()
    values = {key: value for key, value in config.to_dict().items()
              if key not in resumable_keys() and value != defaults[key]}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def expand_grid(spec: GridSpec, out: str | Path, names: Mapping[str, str] | None = None) -> list[GridPoint]:
    """Every point of ``spec``'s grid as a validated config whose run folder is inside ``out``.

    ``names`` maps keys to what the user typed (``--beta-norm``) for messages. A value that
    no run could take (a negative latent size, an unknown architecture) fails here, before
    anything runs, naming the point.
    """
    axes = {key: values for key, values in spec.swept.items()}
    keys = list(axes)
    labels = _value_labels(axes)
    points = []
    for seed, *combination in itertools.product(spec.seeds, *(axes[key] for key in keys)):
        values = dict(zip(keys, combination, strict=True))
        parts = [f"{NAME_PARTS.get(key, key)}{labels[key][index]}"
                 for key, index in ((key, axes[key].index(value)) for key, value in values.items())
                 if len(axes[key]) > 1]
        name = "-".join([*parts, f"s{seed}"])
        config = dataclasses.replace(TrainConfig.from_dict({**spec.fixed, **values}, source="grid"),
                                     seed=seed, out=str(Path(out) / name))
        try:
            config.validate(names)
        except BetaVAEError as error:
            raise BetaVAEError(f"grid point {name}: {error}") from None
        points.append(GridPoint(name, {**values, "seed": seed}, config))
    return points


def _value_labels(axes: Mapping[str, Sequence[Any]]) -> dict[str, list[str]]:
    """How each value appears in folder names: ``%g`` for numbers, safe characters only, unique per key."""
    labels = {}
    for key, values in axes.items():
        texts = [_safe(_label(value)) for value in values]
        if len(set(texts)) < len(texts):  # 0.1 and 0.1000001 look alike at %g: the full repr tells them apart
            texts = [_safe(repr(value)) for value in values]
        labels[key] = texts
    return labels


def _label(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(map(_label, value))
    return f"{value:g}" if _is_number(value) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+]", "_", text)


# -- building a spec from a grid file or from flags ----------------------------------------


def spec_from_file(path: str | Path) -> GridSpec:
    """The grid of a TOML file (see the module's docstring); a bad grid is a one-line error naming the key."""
    values = read_toml(path)
    options = values.pop("sweep", {})
    if not isinstance(options, dict):
        raise BetaVAEError(f"grid file {path}: sweep must be a table ([sweep]) of sweep options")
    return build_spec(values, options, source=f"grid file {path}")


def build_spec(training: Mapping[str, Any], options: Mapping[str, Any], source: str = "grid",
               names: Mapping[str, str] | None = None) -> GridSpec:
    """A checked :class:`GridSpec` from training keys (a list sweeps a key) and sweep options.

    Refused with one line before anything runs: an unknown key, an empty list, a value
    listed twice, a value of the wrong type for its key, a key no grid may set.
    """
    called = {**{key: key for key in TrainConfig.keys()}, **(names or {})}
    unknown = sorted(set(training) - set(TrainConfig.keys()) - {"seeds", "metrics"})
    if unknown:
        raise BetaVAEError(f"{source}: unknown training key {', '.join(unknown)}; valid keys: "
                           f"{', '.join(TrainConfig.keys())} (sweep options go in the [sweep] table)")
    misplaced = sorted(set(training) & set(SWEEP_OPTIONS))
    if misplaced:
        raise BetaVAEError(f"{source}: {', '.join(misplaced)} is a sweep option; put it in the [sweep] table")
    forbidden = sorted(set(training) & NOT_SWEPT)
    if forbidden:
        raise BetaVAEError(f"{source}: {', '.join(forbidden)} cannot be set in a grid: the sweep names each "
                           f"run's folder inside its own folder (--out)")
    fixed: dict[str, Any] = {}
    swept: dict[str, list[Any]] = {}
    for key, value in training.items():
        values = _as_list(key, value)
        if values is None:
            fixed[key] = _checked(key, value, source, called)
            continue
        if not values:
            raise BetaVAEError(f"{source}: {called[key]} is an empty list; give at least one value")
        values = [_checked(key, item, source, called) for item in values]
        repeated = [item for index, item in enumerate(values) if item in values[:index]]
        if repeated:
            raise BetaVAEError(f"{source}: {called[key]} lists {repeated[0]!r} twice")
        if key == "seed":
            continue  # handled with the seeds below
        swept[key] = list(values)
    unknown_options = sorted(set(options) - set(SWEEP_OPTIONS))
    if unknown_options:
        raise BetaVAEError(f"{source}: unknown sweep option {', '.join(unknown_options)}; valid options: "
                           f"{', '.join(SWEEP_OPTIONS)}")
    seeds = _seeds(training, options, source, called)
    spec = GridSpec(fixed=fixed, swept=swept, seeds=seeds)
    if "metrics" in options:
        spec.metrics = _metrics(options["metrics"], source)
    if "metric_seed" in options:
        spec.metric_seed = check_seed(options["metric_seed"], f"{source}: metric_seed")
    for size in ("n_train", "n_eval"):
        if size in options:
            value = options[size]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BetaVAEError(f"{source}: {size} must be {SWEEP_OPTIONS[size]}, got {value!r}")
            setattr(spec, size, value)
    if spec.metrics:
        from betavae.evaluation import check_sizes

        check_sizes(spec.metrics, spec.sizes)
    return spec


def _checked(key: str, value: Any, source: str, called: Mapping[str, str]) -> Any:
    """``value`` as field ``key`` stores it (an integer given for a float becomes a float), or a
    one-line error."""
    problem = type_problem(key, value)
    if problem is not None:
        raise BetaVAEError(f"{source}: {called[key]} {problem}")
    return as_declared(key, value)


def _as_list(key: str, value: Any) -> list[Any] | None:
    """The values of a swept key, or None when ``value`` fixes it.

    A key whose own value is a list (``eval = ["mig"]``) is swept by a list of lists.
    """
    if not isinstance(value, (list, tuple)):
        return None
    if takes_list(key) and not all(isinstance(v, (list, tuple)) for v in value):
        return None
    return [list(item) if isinstance(item, tuple) else item for item in value]


def _seeds(
    training: Mapping[str, Any], options: Mapping[str, Any], source: str, called: Mapping[str, str]
) -> list[int]:
    """The seeds: ``seeds = N`` (0 … N − 1) or a list, in the [sweep] table; or the training key ``seed``."""
    if "seeds" in options and "seed" in training:
        raise BetaVAEError(
            f"{source}: give the seeds once, as seeds in [sweep] or as {called['seed']}, not both"
        )
    if "seed" in training:
        given = training["seed"]
        return [check_seed(seed, called["seed"]) for seed in (given if isinstance(given, list) else [given])]
    given = options.get("seeds", 1)
    if isinstance(given, list):
        if not given:
            raise BetaVAEError(f"{source}: seeds is an empty list; give at least one seed")
        seeds = [check_seed(seed, f"{source}: seeds") for seed in given]
        if len(set(seeds)) < len(seeds):
            raise BetaVAEError(f"{source}: seeds lists a seed twice")
        return seeds
    if isinstance(given, bool) or not isinstance(given, int) or given < 1:
        raise BetaVAEError(f"{source}: seeds must be {SWEEP_OPTIONS['seeds']}, got {given!r}")
    return list(range(given))


def _metrics(given: Any, source: str) -> list[str]:
    from betavae.evaluation import parse_metric_names

    if isinstance(given, str):
        return list(parse_metric_names(given))
    if not isinstance(given, list) or not all(isinstance(name, str) for name in given):
        raise BetaVAEError(f"{source}: metrics must be {SWEEP_OPTIONS['metrics']}, got {given!r}")
    return list(parse_metric_names(",".join(given))) if given else []


def parse_flag_values(text: str, flag: str) -> list[Any]:
    """``"0.002,0.02"`` → ``[0.002, 0.02]``: each comma-separated item as an integer, number,
    boolean or string.

    The types are checked against the key afterwards (:func:`build_spec`), so ``--latent 5,x``
    fails there naming the flag.
    """
    return [_parse_item(item) for item in comma_separated(text, flag)]


def _parse_item(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def spec_from_command_line(
    grid_file: str | None,
    training_flags: Mapping[str, str | None],
    option_flags: Mapping[str, Any],
    stored: GridSpec | None = None,
) -> tuple[GridSpec, dict[str, str]]:
    """The grid of ``betavae sweep``: the grid file's, with the flags given laid over it.

    Without a file and without training flags, ``stored``: the grid the sweep folder was
    last started with (so ``betavae sweep --out DIR`` continues a sweep). Returns the spec
    and the flags given for each key, for messages.
    """
    from betavae.config import FLAGS
    from betavae.evaluation import parse_metric_names

    given = {key: text for key, text in training_flags.items() if text is not None}
    options_given = {key: value for key, value in option_flags.items() if value is not None}
    if grid_file is None and not given:
        if stored is None:
            raise BetaVAEError(
                "no grid given: pass a GRID_FILE or flags such as --beta-norm 0.002,0.2 --latent 5,10"
            )
        return _with_options(stored, options_given), {}
    training: dict[str, Any] = {}
    options: dict[str, Any] = {}
    source = "sweep flags"
    if grid_file is not None:
        training = read_toml(grid_file)
        options = training.pop("sweep", {})
        if not isinstance(options, dict):
            raise BetaVAEError(f"grid file {grid_file}: sweep must be a table ([sweep]) of sweep options")
        source = f"grid file {grid_file} and flags" if given else f"grid file {grid_file}"
    if "beta" in given or "beta_norm" in given:
        training.pop("beta", None)
        training.pop("beta_norm", None)  # a β flag replaces whichever form the file gave
    for key, text in given.items():
        # --eval reads as betavae train reads it ("all" included); other flags as numbers, booleans or names.
        flag = FLAGS.get(key, key)
        values = parse_metric_names(text, flag) if key == "eval" else parse_flag_values(text, flag)
        training[key] = values if takes_list(key) or len(values) > 1 else values[0]
    options.update(_parsed_seeds(options_given))
    names = {key: FLAGS[key] for key in given if key in FLAGS}
    return build_spec(training, options, source=source, names=names), names


def _with_options(spec: GridSpec, options: Mapping[str, Any]) -> GridSpec:
    """A stored grid with sweep options given again on the command line (metrics, sizes, seeds)."""
    if not options:
        return spec
    values = {
        "seeds": spec.seeds,
        "metrics": spec.metrics,
        "metric_seed": spec.metric_seed,
        **{key: value for key, value in spec.sizes.items() if value is not None},
    }
    values.update(_parsed_seeds(options))
    return build_spec({**spec.fixed, **spec.swept}, values, source="sweep flags")


def _parsed_seeds(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with ``--seeds`` text read: ``3`` → 3 (a count), ``0,4,7`` → [0, 4, 7]."""
    if "seeds" not in options:
        return dict(options)
    seeds = parse_flag_values(str(options["seeds"]), "--seeds")
    return {**options, "seeds": seeds if len(seeds) > 1 else seeds[0]}
