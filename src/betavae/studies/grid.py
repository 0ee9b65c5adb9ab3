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

A grid whose runs differ in settings that are not a product of lists (a benchmark's learning
rates, batch sizes and precisions; the objectives, each with its own weights) names them as
variants, each a table of the training keys it sets over the fixed ones. They are crossed with
the seeds (and any swept keys), and each run's folder starts with its variant's name
(``default-s0``, ``bf16-s0``)::

    [[variants]]
    name = "default"

    [[variants]]
    name = "bf16"
    precision = "bf16"

A grid's size is counted before any point is made (:func:`check_size`): a list typed too long
is easier than running it, so more than :data:`LARGE_GRID` runs need a confirmation.

Given again to a sweep folder that has a grid, keys and options are laid onto the stored grid
(:func:`continue_grid`), which only grows: every earlier run keeps its name and settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from betavae.checks import check_seed, comma_separated
from betavae.config import TrainConfig, as_declared, read_toml, takes_list, type_problem
from betavae.errors import BetaVAEError

# Keys a grid cannot set: each point's run folder is chosen by the sweep.
NOT_SWEPT = {"out"}
# Short names of keys in run folder names: bn0.02-z10-s0.
NAME_PARTS = {"beta_norm": "bn", "beta": "b", "latent_dim": "z", "seed": "s", "lr": "lr", "batch_size": "bs",
              "steps": "n", "arch": "", "dataset": "", "recon": "", "recon_reduction": "", "precision": "",
              "objective": ""}
# More runs than LARGE_GRID are refused unless confirmed (betavae sweep --large-grid); more than
# MAX_GRID_RUNS always: each point is a config in memory and a row of the state before anything runs.
LARGE_GRID = 10_000
MAX_GRID_RUNS = 1_000_000
# A variant's name starts each of its runs' folder names.
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
# Options of the [sweep] table, with what each must be.
SWEEP_OPTIONS = {"seeds": "a positive integer (how many seeds, from 0) or a list of seeds",
                 "metrics": "a list of metric names", "metric_seed": "a seed",
                 "n_train": "a positive integer", "n_eval": "a positive integer",
                 "metric_batch_size": "a positive integer"}
# The sweep options that are sizes of the metrics (GridSpec.sizes hands them to the metrics).
METRIC_SIZES = ("n_train", "n_eval", "metric_batch_size")


def resumable_keys() -> set[str]:
    """Training keys that may differ between two invocations of one sweep without changing its runs.

    A run's own resumable changes (``betavae.training.checkpoints.RESUMABLE_CHANGES``): more steps,
    another device.
    """
    from betavae.training.checkpoints import RESUMABLE_CHANGES

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
    # The metrics' batch (the β-VAE scores' L pairs a point; None: each metric's own): its own name beside
    # the training key batch_size.
    metric_batch_size: int | None = None
    # Named sets of training keys laid over ``fixed``, crossed with the seeds: [{"name": "bf16", …}, …].
    variants: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GridSpec:
        return cls(**values)

    @property
    def sizes(self) -> dict[str, int | None]:
        """The size options of :func:`betavae.evaluation.score`."""
        from betavae.metrics.settings import metric_sizes

        return metric_sizes(self.n_train, self.n_eval, self.metric_batch_size)

    def varied(self) -> list[str]:
        """The keys whose value differs between points (``variant`` first and seed last, when there are
        several)."""
        keys = [key for key, values in self.swept.items() if len(values) > 1]
        variant = ["variant"] if len(self.variants) > 1 else []
        return variant + keys + (["seed"] if len(self.seeds) > 1 else [])

    def variant_keys(self) -> list[str]:
        """The training keys some variant sets, in the order first set."""
        return list(dict.fromkeys(key for variant in self.variants for key in variant if key != "name"))


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
    points = []
    for name, variant, values in point_names(spec):
        settings = {key: value for key, value in variant.items() if key != "name"}
        # A variant giving β in either form replaces the form the fixed keys gave, as a flag does.
        beta = {"beta", "beta_norm"} if {"beta", "beta_norm"} & set(settings) else set()
        fixed = {key: value for key, value in spec.fixed.items() if key not in beta}
        config = TrainConfig.from_dict({**fixed, **settings, **values, "out": str(Path(out) / name)},
                                       source="grid")
        try:
            config.validate(names)
        except BetaVAEError as error:
            raise BetaVAEError(f"grid point {name}: {error}") from None
        named = {"variant": variant["name"]} if variant else {}
        points.append(GridPoint(name, {**named, **values}, config))
    return points


def point_names(spec: GridSpec) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Each point's run folder name, variant ({} without variants) and swept values with its seed,
    in the order the points run, without making their configs."""
    axes = dict(spec.swept)
    labels = _value_labels(axes)
    for seed, variant, *combination in itertools.product(spec.seeds, spec.variants or [{}], *axes.values()):
        values = dict(zip(axes, combination, strict=True))
        yield _point_name(values, seed, axes, labels, variant.get("name")), variant, {**values, "seed": seed}


def _point_name(values: Mapping[str, Any], seed: int, axes: Mapping[str, Sequence[Any]],
                labels: Mapping[str, list[str]], variant: str | None = None) -> str:
    """A point's run folder name: its variant's name, the label of its value of each key that varies,
    then its seed. Labels hold no ``-``, so every point of a grid has as many ``-`` past its variant's
    name, and two variants' runs never share a name."""
    parts = [f"{NAME_PARTS.get(key, key)}{labels[key][axes[key].index(value)]}"
             for key, value in values.items() if len(axes[key]) > 1]
    return "-".join([*([variant] if variant else []), *parts, f"s{seed}"])


def grid_size(spec: GridSpec) -> int:
    """How many runs ``spec``'s grid holds, counted without making them."""
    variants = max(1, len(spec.variants))
    return len(spec.seeds) * variants * math.prod(len(values) for values in spec.swept.values())


def describe_size(spec: GridSpec) -> str:
    """``20,000 runs (100 beta_norm × 100 latent_dim × 2 seeds)``: the size and what makes it."""
    runs, seeds = grid_size(spec), len(spec.seeds)
    variants = len(spec.variants)
    factors = [f"{variants} variant{'s' if variants != 1 else ''}"] if variants else []
    factors += [f"{len(values)} {key}" for key, values in spec.swept.items() if len(values) > 1]
    factors.append(f"{seeds:,} seed{'s' if seeds != 1 else ''}")
    return f"{runs:,} run{'s' if runs != 1 else ''} ({' × '.join(factors)})"


def check_size(spec: GridSpec, large: bool = False) -> int:
    """The number of runs of ``spec``'s grid; refused in one line above :data:`LARGE_GRID` unless
    ``large`` (the user confirmed it), and above :data:`MAX_GRID_RUNS` always."""
    runs = grid_size(spec)
    if runs > MAX_GRID_RUNS:
        raise BetaVAEError(f"the grid has {describe_size(spec)}, more than one sweep holds "
                           f"({MAX_GRID_RUNS:,}); sweep fewer values")
    if runs > LARGE_GRID and not large:
        raise BetaVAEError(f"the grid has {describe_size(spec)}, more than {LARGE_GRID:,}; sweep fewer "
                           f"values, or pass --large-grid to run them all")
    return runs


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
    """A checked :class:`GridSpec` from training keys (a list sweeps a key; ``variants`` lists the
    named variants) and sweep options.

    Refused with one line before anything runs: an unknown key, an empty list, a value
    listed twice, a value of the wrong type for its key, a key no grid may set, a variant
    named twice or setting a swept key.
    """
    called = {**{key: key for key in TrainConfig.keys()}, **(names or {})}
    training = dict(training)
    variants = training.pop("variants", None)
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
    if variants is not None:
        spec.variants = _variants(variants, swept, source, called)
    if "metrics" in options:
        spec.metrics = _metrics(options["metrics"], source)
    if "metric_seed" in options:
        spec.metric_seed = check_seed(options["metric_seed"], f"{source}: metric_seed")
    for size in METRIC_SIZES:
        if size in options:
            value = options[size]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BetaVAEError(f"{source}: {size} must be {SWEEP_OPTIONS[size]}, got {value!r}")
            setattr(spec, size, value)
    if spec.metrics:
        from betavae.metrics.settings import check_sizes

        check_sizes(spec.metrics, spec.sizes)
    return spec


def _variants(given: Any, swept: Collection[str], source: str, called: Mapping[str, str]
              ) -> list[dict[str, Any]]:
    """The named variants, each ``{"name": …, key: value, …}`` with its values as the keys store them."""
    if not isinstance(given, list) or not all(isinstance(variant, dict) for variant in given):
        raise BetaVAEError(f"{source}: variants must be a list of tables ([[variants]]), each a name and the "
                           f"training keys it sets")
    if not given:
        raise BetaVAEError(f"{source}: variants is an empty list; give at least one variant")
    variants: list[dict[str, Any]] = []
    for variant in given:
        name = variant.get("name")
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
            raise BetaVAEError(f"{source}: a variant's name must be letters, digits and . _ + - (it starts "
                               f"its runs' folder names), got {name!r}")
        if any(other["name"] == name for other in variants):
            raise BetaVAEError(f"{source}: two variants are named {name}; name each once")
        keys = [key for key in variant if key != "name"]
        unknown = [key for key in keys if key not in TrainConfig.keys()]
        if unknown:
            raise BetaVAEError(f"{source}: variant {name} sets unknown training key {', '.join(unknown)}; "
                               f"valid keys: {', '.join(TrainConfig.keys())}")
        taken = [key for key in keys if key in NOT_SWEPT or key == "seed" or key in swept]
        if taken:
            raise BetaVAEError(f"{source}: variant {name} sets {', '.join(taken)}, which the sweep sets for "
                               f"every run (seeds, swept keys, run folders); set it outside the variants")
        variants.append({"name": name, **{key: _checked(key, variant[key], source, called) for key in keys}})
    return variants


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
    if given > MAX_GRID_RUNS:  # counted before listed: a list of billions of seeds fills the memory
        raise BetaVAEError(f"{source}: seeds {given:,} is more runs than one sweep holds "
                           f"({MAX_GRID_RUNS:,}); give fewer seeds")
    return list(range(given))


def _metrics(given: Any, source: str) -> list[str]:
    from betavae.metrics.settings import parse_metric_names

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
    out: str | Path | None = None,
) -> tuple[GridSpec, dict[str, str]]:
    """The grid of ``betavae sweep``: the grid file's, with the flags given laid over it.

    For a sweep folder that already has a grid (``stored``), what is given is laid onto that
    grid by :func:`continue_grid`, so that its earlier runs keep what they are; with nothing
    given, the stored grid is continued as it is (``betavae sweep --out DIR``). ``out`` names
    the folder in refusals. Returns the spec and the flags given for each key, for messages.
    """
    from betavae.config import FLAGS
    from betavae.metrics.settings import parse_metric_names

    given = {key: text for key, text in training_flags.items() if text is not None}
    options_given = {key: value for key, value in option_flags.items() if value is not None}
    if grid_file is None and not given and stored is None:
        raise BetaVAEError(
            "no grid given: pass a GRID_FILE or flags such as --beta-norm 0.002,0.2 --latent 5,10"
        )
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
    spec = build_spec(training, options, source=source, names=names)
    if stored is None:
        return spec, names
    return continue_grid(stored, spec, set(training), set(options), names, out), names


def _parsed_seeds(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with ``--seeds`` text read: ``3`` → 3 (a count), ``0,4,7`` → [0, 4, 7]."""
    if "seeds" not in options:
        return dict(options)
    seeds = parse_flag_values(str(options["seeds"]), "--seeds")
    return {**options, "seeds": seeds if len(seeds) > 1 else seeds[0]}


# -- a grid given again to its sweep folder --------------------------------------------------


def continue_grid(
    stored: GridSpec,
    given: GridSpec,
    training_keys: Collection[str],
    option_keys: Collection[str],
    names: Mapping[str, str] | None = None,
    out: str | Path | None = None,
) -> GridSpec:
    """A sweep folder's grid ``stored`` with the keys and options set in ``given`` laid onto it.

    ``training_keys`` and ``option_keys`` are the ones the user set (by flag or grid file);
    the others keep their stored values. The grid only grows, so that every run the folder
    holds keeps its name and stays the experiment it was (a shrunk grid would leave rows in
    ``betavae results`` that no longer belong to it; a changed one, runs that are not what
    their grid says):

    - values given for a swept key are added to its axis (those already there stay); only values
      already there would shrink it, which is refused;
    - seeds given are added to the stored ones;
    - a key every run shares takes a new value only when it is resumable (``resumable_keys``:
      more steps make finished runs train on from their checkpoints; fewer are refused);
    - any other new value of a key every run shares is refused in one line naming the key,
      its stored value and the new one: it would change what the runs are, or, as a second
      value, sweep the key and rename every run;
    - variants given are added to the stored ones; a variant given with other settings than its
      stored namesake, or variants that would shrink the stored ones or rename a grid without
      any, are refused;
    - the metrics options given replace the stored ones (finished runs are only measured).

    :func:`grid_changes` says what the result changed, for the command to print.
    """
    from betavae.config import FLAGS

    called = {**{key: key for key in TrainConfig.keys()}, **(names or {})}
    where = str(out) if out is not None else "this sweep folder"
    defaults = TrainConfig().to_dict()
    fixed = dict(stored.fixed)
    swept = {key: list(values) for key, values in stored.swept.items()}
    for key, other in (("beta", "beta_norm"), ("beta_norm", "beta")):
        held = _values_of(stored, other, defaults)
        if key in training_keys and other not in training_keys and held != [None]:
            wanted = _shown(_values_of(given, key, defaults))
            raise BetaVAEError(
                f"{where} gives β as {other} ({_shown(held)}); {called[key]} {wanted} would change every "
                f"run's β: give {other} values ({FLAGS.get(other, other)}), or use another --out"
            )
    for key in training_keys:
        if key in ("seed", "variants"):
            continue  # seeds and variants are added below
        old, new = _values_of(stored, key, defaults), _values_of(given, key, defaults)
        if new == old:
            continue
        if len(old) > 1:
            if all(value in new for value in old):
                continue  # the same values, in another order
            if all(value in old for value in new):  # nothing added: it would only leave runs out
                raise BetaVAEError(
                    f"{called[key]} {_shown(new)} would shrink the grid of {where} ({key} {_shown(old)}); "
                    f"a sweep's grid only grows: give none of its values to continue it, or new ones to add"
                )
            swept[key] = old + [value for value in new if value not in old]
        elif key in resumable_keys() and len(new) == 1:
            if key == "steps" and new[0] < old[0]:
                raise BetaVAEError(
                    f"{called[key]} {new[0]} is fewer than the {old[0]} steps the runs of {where} were "
                    f"asked for; a sweep's runs only train on: give {called[key]} {old[0]} or more"
                )
            swept.pop(key, None)
            fixed[key] = new[0]
        elif old[0] in new:
            raise BetaVAEError(
                f"{called[key]} {_shown(new)} would sweep {key}, which every run of {where} has at "
                f"{_shown(old)}: their folder names would change; sweep {key} in another --out"
            )
        else:
            raise BetaVAEError(
                f"{where} already holds run {_first_name(stored)} made with another {key} ({_shown(old)}, "
                f"not {_shown(new)}); a grid that changes what its runs are needs another --out"
            )
    seeds = list(stored.seeds)
    if "seeds" in option_keys or "seed" in training_keys:
        seeds += [seed for seed in given.seeds if seed not in seeds]
    options: dict[str, Any] = {"seeds": seeds, "metrics": stored.metrics, "metric_seed": stored.metric_seed,
                               **{key: getattr(stored, key) for key in METRIC_SIZES
                                  if getattr(stored, key) is not None}}
    for key in set(option_keys) - {"seeds"}:
        options[key] = getattr(given, key)
    options = {key: value for key, value in options.items() if value is not None}
    variants = _continued_variants(stored, given, where) if "variants" in training_keys else stored.variants
    training = {**fixed, **swept, **({"variants": variants} if variants else {})}
    merged = build_spec(training, options, source="sweep flags", names=names)
    _check_names_kept(stored, merged, where)
    return merged


def _continued_variants(stored: GridSpec, given: GridSpec, where: str) -> list[dict[str, Any]]:
    """The stored variants with the new ones of ``given`` after them (see :func:`continue_grid`)."""
    held = {variant["name"]: variant for variant in stored.variants}
    if not held:
        raise BetaVAEError(f"variants would rename every run of {where}, a grid without them; give them in "
                           f"another --out")
    for variant in given.variants:
        if variant["name"] in held and held[variant["name"]] != variant:
            raise BetaVAEError(f"{where} already holds variant {variant['name']} with other settings "
                               f"({_settings(held[variant['name']])}, not {_settings(variant)}); a grid that "
                               f"changes what its runs are needs another --out")
    added = [variant for variant in given.variants if variant["name"] not in held]
    if not added and len(given.variants) < len(held):
        raise BetaVAEError(f"variants {', '.join(v['name'] for v in given.variants)} would shrink the grid "
                           f"of {where} ({', '.join(held)}); a sweep's grid only grows: give none of its "
                           f"variants to continue it, or new ones to add")
    return [*stored.variants, *added]


def _settings(variant: Mapping[str, Any]) -> str:
    """``lr 0.0002, batch_size 256``: what a variant sets, or ``nothing``."""
    settings = [f"{key} {shown(value)}" for key, value in variant.items() if key != "name"]
    return ", ".join(settings) or "nothing"


def grid_changes(stored: GridSpec, merged: GridSpec) -> list[str]:
    """What :func:`continue_grid` changed of a sweep's grid, a line each: added values and seeds with
    the runs they add, new values of resumable keys, new metrics options. Empty when nothing changed."""
    defaults = TrainConfig().to_dict()
    added = [
        f"{key} + {_shown(values[len(stored.swept[key]):])}"
        for key, values in merged.swept.items()
        if key in stored.swept and len(values) > len(stored.swept[key])
    ]
    if len(merged.variants) > len(stored.variants):
        added.insert(0, f"variants + {','.join(v['name'] for v in merged.variants[len(stored.variants):])}")
    if len(merged.seeds) > len(stored.seeds):
        added.append(f"seeds + {_shown(merged.seeds[len(stored.seeds):])}")
    lines = []
    if added:
        before, new_runs = grid_size(stored), grid_size(merged) - grid_size(stored)
        runs = f"{new_runs:,} new run{'s' if new_runs != 1 else ''}"
        lines.append(f"extends the grid: {'; '.join(added)} ({runs} beside the {before:,} it had)")
    for key in sorted(set(stored.fixed) | set(merged.fixed)):
        old, new = _values_of(stored, key, defaults), _values_of(merged, key, defaults)
        if old != new:
            then = " (finished runs train on from their checkpoints)" if key == "steps" else ""
            lines.append(f"{key} {_shown(old)} → {_shown(new)} for every run{then}")
    for key in ("metrics", "metric_seed", *METRIC_SIZES):
        old, new = getattr(stored, key), getattr(merged, key)
        if old != new:
            lines.append(f"{key} {_option_text(old)} → {_option_text(new)} (finished runs are measured "
                         f"where they lack it)")
    return lines


def _values_of(spec: GridSpec, key: str, defaults: Mapping[str, Any]) -> list[Any]:
    """The values ``spec`` gives ``key``: its axis, its one fixed value, or TrainConfig's default."""
    if key in spec.swept:
        return list(spec.swept[key])
    return [spec.fixed[key] if key in spec.fixed else defaults.get(key)]


def shown(value: Any) -> str:
    """One value as a flag takes it (``0.01``, ``mig+sap``), for messages; None as the default."""
    return _shown([value])


def _shown(values: Sequence[Any]) -> str:
    """Values as a flag takes them (``0.01,1``); None as the default it stands for, [] as none."""
    return ",".join("the default" if value is None else _label(value) if value != [] else "none"
                    for value in values)


def _option_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value) or "none"
    return _shown([value])


def _first_name(spec: GridSpec) -> str:
    """The run folder name of ``spec``'s first point, without making the grid."""
    return next(point_names(spec))[0]


def _check_names_kept(stored: GridSpec, merged: GridSpec, where: str) -> None:
    """Refuse a grown grid whose values would be labelled otherwise in folder names (0.1 beside
    0.1000001 needs more digits): the folder's runs would not be found under their names."""
    old_labels, new_labels = _value_labels(stored.swept), _value_labels(merged.swept)
    for key, labels in old_labels.items():
        if len(labels) > 1 and new_labels[key][:len(labels)] != labels:
            index = next(i for i, label in enumerate(labels) if new_labels[key][i] != label)
            raise BetaVAEError(
                f"the values given would rename the runs of {where} ({key} {labels[index]} would read "
                f"{new_labels[key][index]} in their folder names); sweep them in another --out"
            )
