"""The ``betavae`` command: one short function per command — parse, call the library, print.

User mistakes (:class:`~betavae.errors.BetaVAEError` and usage errors) and faults of the
machine (``OSError``: a full disk, an unwritable folder) are printed as one line on stderr
with a non-zero exit code; anything else is a bug and keeps its trace-back.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from betavae.errors import BetaVAEError


class SeedType(click.ParamType):
    """A ``--seed``: a whole number that every generator takes (:func:`betavae.checks.check_seed`).

    Checked while the flags are read, so a bad seed stops a command before any work.
    """

    name = "integer"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from betavae.checks import check_seed

        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                pass  # check_seed names the flag and the text given
        return check_seed(value, param.opts[0] if param is not None else "seed")


SEED = SeedType()


class Command(click.Command):
    """Every ``betavae`` command: an option that takes a value refuses one that looks like an option.

    click takes whatever follows an option as its value, so ``betavae transfer RUN
    --baselines --out DIR`` read ``--out`` as the baselines and then failed on DIR. A value
    that starts with ``--``, or is ``-h``, is taken for a value left out: a one-line usage
    error naming the option. A negative number (``--seed -1``) is a value, and reaches the
    option's own check; a value that does start with ``--`` can be given as ``--option=--value``.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {name: param for param in self.get_params(ctx)
                       if isinstance(param, click.Option) and not param.is_flag and not param.count
                       for name in param.opts}
        position = 0
        while position < len(args) and args[position] != "--":  # after "--", every word is an argument
            option = takes_value.get(args[position])
            if option is None:
                position += 1
                continue
            for value in args[position + 1:position + 1 + option.nargs]:
                if value.startswith("--") or value in ctx.help_option_names:
                    needed = f"{args[position]} needs a value ({_what_it_takes(option, ctx)})"
                    raise click.UsageError(f"{needed}, got the option {value}", ctx)
            position += 1 + option.nargs
        return super().parse_args(ctx, args)


def _what_it_takes(option: click.Option, ctx: click.Context) -> str:
    """Its help without the default (``comma-separated: mig, dci, …``), else its type (``integer``)."""
    record = option.get_help_record(ctx)
    described = re.sub(r"\[default: [^\]]*\]", "", record[1] if record else "")
    return " ".join(described.split()) or option.type.name


class Group(click.Group):
    """The ``betavae`` group: its commands are :class:`Command`; its sub-groups (``show``) are like it."""

    command_class = Command
    group_class = type


class RegistryHelp(click.Option):
    """An option whose help lists the names of a registry, written when the help is shown.

    The registries import torch and scikit-learn, which a command loads only when it runs,
    so ``--help`` reads them then. A name not in the registry is refused by the library, with
    the registry's names in a one-line error; no ``click.Choice`` repeats the list.
    """

    def __init__(self, *args: Any, describe: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.describe = describe

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = self.describe()
        return super().get_help_record(ctx)


def _names(where: str, separator: str = " | ") -> str:
    """``a | b | c``: the names held by ``where``, a ``module:ATTRIBUTE`` registry (a dict or tuple)."""
    module, attribute = where.split(":")
    return separator.join(getattr(importlib.import_module(module), attribute))


def _datasets() -> str:
    """``shapes (square, ellipse or triangle; 28×28, known factors) | …``: the dataset registry."""
    from betavae.data import DATASETS

    return " | ".join(f"{name} ({entry.summary}; {entry.image_shape[1]}×{entry.image_shape[2]}"
                      f"{' colour' if entry.image_shape[0] > 1 else ''}"
                      f"{', known factors' if entry.has_factors else ''})"
                      for name, entry in DATASETS.items())


def _architectures() -> str:
    """``conv28 (report's conv + max-pool net for 28×28) | …``: the architecture registry."""
    from betavae.models import ARCHITECTURES

    return " | ".join(f"{name} ({architecture.summary})" for name, architecture in ARCHITECTURES.items())


def _scales() -> dict:
    from betavae.study.design import SCALES

    return SCALES


def _objectives() -> str:
    """``beta (reconstruction + β·KL, Higgins et al. 2017) | …``: the objective registry."""
    from betavae.objectives import OBJECTIVES

    return " | ".join(f"{name} ({objective.summary})" for name, objective in OBJECTIVES.items())


def _with_factors(separator: str = " | ") -> str:
    """The datasets with known generative factors, from the dataset registry."""
    from betavae.data import with_factors

    return separator.join(with_factors())


DEVICES = "betavae.device:DEVICE_CHOICES"
METRIC_NAMES = "betavae.metrics:METRICS"

_DESCRIBED = {"betavae.data:DATASETS": _datasets, "betavae.models:ARCHITECTURES": _architectures,
              "betavae.objectives:OBJECTIVES": _objectives}
"""The registries whose help lists more than their names, by ``module:ATTRIBUTE``."""


class ConfigCommand(Command):
    """A command whose options are made from the training config's fields by ``make_options``.

    They are made when the command first reads its options (to parse its arguments or show
    its help), not when the CLI loads: the config takes in every objective's options, whose
    modules import torch, which ``betavae --help`` and the other commands need not wait for.
    They come after the command's arguments and before the options it declares itself.
    """

    def __init__(self, *args: Any, make_options: Callable[[], list[click.Option]], **kwargs: Any) -> None:
        self._make_options: Callable[[], list[click.Option]] | None = make_options
        super().__init__(*args, **kwargs)

    @property
    def params(self) -> list[click.Parameter]:
        if self._make_options is not None:
            make, self._make_options = self._make_options, None
            arguments = sum(isinstance(param, click.Argument) for param in self._params)
            self._params[arguments:arguments] = make()
        return self._params

    @params.setter
    def params(self, params: list[click.Parameter]) -> None:
        self._params = params


def _train_options() -> list[click.Option]:
    """``betavae train``'s options: one per config field with a flag (:func:`betavae.config.flagged_fields`).

    The value's type comes from the field's annotation (a bool is an on/off switch; ``eval``'s
    list is read from commas by the command), the help and ``[default: …]`` from the field
    (:mod:`betavae.options`), an objective's name before each of its options' help. Every
    default is None, so that a flag not given leaves the config file's value alone.
    """
    from betavae.config import flagged_fields, takes_list, value_type
    from betavae.objectives import OBJECTIVES
    from betavae.options import shown_default

    owners = {key: name for name, objective in OBJECTIVES.items() for key in objective.OPTIONS}
    options: list[click.Option] = []
    for field, described in flagged_fields():
        default = shown_default(field)
        help_text = (f"{owners[field.name]}: " if field.name in owners else "") + described.help
        suffix = f"  [default: {default}]" if default is not None else ""
        kind = value_type(field.name)
        if kind is bool:
            declared = [field.name, f"{described.flag}/--no-{described.flag.removeprefix('--')}"]
            options.append(click.Option(declared, default=None, help=help_text + suffix))
            continue
        click_type = SEED if described.seed else {int: click.INT, float: click.FLOAT}.get(kind, click.STRING)
        if described.names is None:
            options.append(click.Option([described.flag, field.name], type=click_type,
                                        help=help_text + suffix))
            continue
        separator = ", " if takes_list(field.name) else " | "
        options.append(RegistryHelp([described.flag, field.name], type=click_type,
                                    describe=_listing_help(help_text, described.names, separator, suffix)))
    return options


def _listing_help(help_text: str, registry: str, separator: str, suffix: str) -> Callable[[], str]:
    """The help of an option naming an entry of ``registry``, its names put where ``help_text`` has
    ``{names}``, read when the help is shown."""
    def describe() -> str:
        names = _DESCRIBED[registry]() if registry in _DESCRIBED else _names(registry, separator)
        return help_text.format(names=names) + suffix

    return describe


def _sweep_options() -> list[click.Option]:
    """``betavae sweep``'s training options, one per config field with a flag (as ``train``'s): a value,
    or commas to sweep.

    Not the switches, which a sweep's TOML file sets, nor ``--out`` and ``--seed``, which the
    sweep's own ``--out`` and ``--seeds`` replace.
    """
    from betavae.config import flagged_fields, takes_list, value_type

    options = []
    for field, described in flagged_fields():
        if field.name in ("out", "seed") or value_type(field.name) is bool:
            continue
        # What the setting is, as train's help says it (a registry's names are train --help's to list).
        what = described.help.split("{names}", 1)[0].rstrip(" :;,(")
        what = f"{what}: " if what else ""
        if takes_list(field.name):  # its value is a list: the commas give that list, the same for every run
            options.append(click.Option([described.flag, field.name], metavar="A,B",
                                        help=f"{what}comma-separated, one list for every run"))
        else:
            options.append(click.Option([described.flag, field.name], metavar="V[,V…]",
                                        help=f"{what}a value, or comma-separated values to sweep"))
    return options


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="betavae")
def app() -> None:
    """Learn and measure disentangled representations with the β-VAE."""


@app.command(cls=ConfigCommand, make_options=_train_options)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML file with the same keys; flags override it",
)
@click.option("--resume", is_flag=True, help="continue the run in --out from its checkpoint")
@click.option("--progress/--no-progress", default=None, help="progress bar  [default: on a terminal]")
def train(config_file: str | None, resume: bool, progress: bool | None, **flags: object) -> None:
    """Train a β-VAE and write a run folder: config, checkpoint, logs, metrics, reconstructions."""
    from betavae.config import typed_names
    from betavae.data import has_factors
    from betavae.metrics.settings import parse_metric_names
    from betavae.training.loop import train as run_training
    from betavae.training.setup import config_from_sources

    names = typed_names(key for key, value in flags.items() if value is not None)
    if flags["eval"] is not None:
        flags["eval"] = parse_metric_names(str(flags["eval"]), "--eval")
    config = config_from_sources(flags, config_file, resume)
    result = run_training(config, resume=resume, progress=progress, names=names)
    test = result.test
    # a mean over pixels is a per-pixel number, often below 0.01: say so, and show its digits
    per_pixel = config.recon_reduction == "mean"
    recon = f"{test['recon']:.4g} per pixel" if per_pixel else f"{test['recon']:.2f}"
    click.echo(
        f"trained {result.steps} steps; held-out loss {test['loss']:{'.4g' if per_pixel else '.2f'}} "
        f"(reconstruction {recon}, KL {test['kl']:.2f})"
    )
    click.echo(f"run folder:      {result.run.path}")
    click.echo(f"checkpoint:      {result.run.checkpoint_path}")
    click.echo(f"reconstructions: {result.run.path / 'reconstructions.png'}")
    click.echo(f"curves:          tensorboard --logdir {result.run.tensorboard_dir}")
    if result.evaluations:
        click.echo(
            f"evaluations:     {len(result.evaluations)} in {result.run.metrics_path} (during_training)"
        )
    click.echo(
        f"next:            betavae show traverse {result.run.path} --gif"
        + (f"; betavae evaluate {result.run.path}" if has_factors(result.run.read_config().dataset) else "")
    )


@app.command()
@click.argument("run_dir", required=False)
@click.option(
    "--metrics",
    "metric_names",
    default="all",
    show_default=True,
    cls=RegistryHelp,
    describe=lambda: f"comma-separated: {_names(METRIC_NAMES, ', ')}, or all",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--n-train", type=int, help="training points of every metric  [default: each metric's own]")
@click.option("--n-eval", type=int, help="evaluation points of every metric  [default: each metric's own]")
@click.option(
    "--baseline",
    cls=RegistryHelp,
    describe=lambda: f"score a baseline instead of a run: {_names('betavae.metrics.baselines:BASELINES')}",
)
@click.option(
    "--dataset", cls=RegistryHelp, describe=lambda: f"the dataset of a --baseline: {_with_factors()}"
)
@click.option(
    "--latent", "latent_dim", type=int, default=10, show_default=True, help="code size of pca, ica, untrained"
)
@click.option(
    "--arch",
    cls=RegistryHelp,
    describe=lambda: (f"architecture of --baseline untrained: {_names('betavae.models:ARCHITECTURES')}  "
                      "[default: the dataset's; fc is the paper's network]"),
)
@click.option(
    "--device", default="auto", show_default=True, cls=RegistryHelp, describe=lambda: _names(DEVICES)
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of a table")
def evaluate(
    run_dir: str | None,
    metric_names: str,
    seed: int,
    n_train: int | None,
    n_eval: int | None,
    baseline: str | None,
    dataset: str | None,
    latent_dim: int,
    arch: str | None,
    device: str,
    as_json: bool,
) -> None:
    """Score disentanglement of RUN_DIR's model (written to its metrics.json), or of a --baseline."""
    import json

    from betavae.evaluation import evaluate_baseline, evaluate_run
    from betavae.metrics.settings import parse_metric_names

    names = parse_metric_names(metric_names)
    sizes = {"n_train": n_train, "n_eval": n_eval}

    def report(name: str, values: dict[str, float | None], seconds: float) -> None:
        click.echo(f"{name}: done in {seconds:.1f} s", err=True)

    if baseline is not None:
        if run_dir is not None or dataset is None:
            raise BetaVAEError(
                "--baseline takes --dataset and no RUN_DIR, e.g. betavae evaluate --baseline pca "
                "--dataset dsprites"
            )
        if arch is not None and baseline != "untrained":
            raise BetaVAEError(f"--arch chooses the network of --baseline untrained; {baseline} has none")
        results = evaluate_baseline(
            baseline, dataset, names, seed, sizes, latent_dim, device, report, arch=arch
        )
        subject = f"baseline {baseline} on {dataset}"
    elif run_dir is not None:
        if arch is not None:
            raise BetaVAEError("--arch chooses the network of --baseline untrained; a run has its own")
        results = evaluate_run(run_dir, names, seed, sizes, device, report)
        subject = run_dir
    else:
        raise BetaVAEError("give a RUN_DIR to evaluate, or --baseline NAME --dataset NAME")
    if as_json:
        click.echo(json.dumps(results))
        return
    click.echo(f"disentanglement of {subject} (seed {seed})")
    width = max(len(f"{name}.{key}") for name, values in results.items() for key in values)
    for name, values in results.items():
        for key, value in values.items():  # None: not a number (the reason is in metrics.json)
            shown = f"{value:8.4f}" if value is not None else f"{'n/a':>8}"
            click.echo(f"  {f'{name}.{key}':<{width}}  {shown}")
    if run_dir is not None:
        click.echo(f"written to {Path(run_dir) / 'metrics.json'}")


@app.command()
@click.argument("run_dirs", nargs=-1, required=True)
@click.option(
    "--labels",
    default="10,30,100,300,1000,3000,10000",
    show_default=True,
    help="numbers of labelled training samples, comma-separated",
)
@click.option("--repeats", type=int, default=5, show_default=True, help="labelled samples drawn per number")
@click.option(
    "--task",
    cls=RegistryHelp,
    describe=lambda: (
        f"digit (the class label, on a dataset that has one) | factor:NAME (on a dataset with "
        f"known factors: {_with_factors(', ')}) | attr:NAME (a binary attribute such as attr:Smiling, "
        f"on {', '.join(importlib.import_module('betavae.data').with_attributes())})  [default: digit]"
    ),
)
@click.option(
    "--baselines",
    cls=RegistryHelp,
    describe=lambda: (
        f"comma-separated from {_names('betavae.transfer:TRANSFER_BASELINES', ', ')}, or none  "
        f"[default: all of them]"
    ),
)
@click.option("--out", help="output folder  [default: the folder holding the runs]")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "--device", default="auto", show_default=True, cls=RegistryHelp, describe=lambda: _names(DEVICES)
)
def transfer(
    run_dirs: tuple[str, ...],
    labels: str,
    repeats: int,
    task: str | None,
    baselines: str | None,
    out: str | None,
    seed: int,
    device: str,
) -> None:
    """Frozen encoders + a linear softmax classifier, test loss and accuracy against the number of labels."""
    from betavae.checks import comma_separated
    from betavae.transfer import TRANSFER_BASELINES, run_transfer

    try:
        counts = [int(text) for text in comma_separated(labels, "--labels")]
    except ValueError:
        raise BetaVAEError(f"--labels takes whole numbers separated by commas, got {labels!r}") from None
    if baselines is None:
        chosen = TRANSFER_BASELINES
    elif baselines.strip() == "none":
        chosen = ()
    else:
        chosen = tuple(comma_separated(baselines, "--baselines"))
    result = run_transfer(
        run_dirs,
        labels=counts,
        repeats=repeats,
        task=task,
        out=out,
        seed=seed,
        baselines=chosen,
        device=device,
    )
    click.echo(result.summary.rstrip())
    for path in (result.csv_path, result.plot_path, result.summary_path):
        click.echo(f"written: {path}")


# sweep's and reproduce's: how many runs a worker trains as one network (betavae.studies.packing).
PACK_OPTION = click.option(
    "--pack", type=int, default=1, show_default=True,
    help="runs trained together in one process as one vectorised network (those differing only in seed and "
         "β; the beta objective in fp32): for a GPU, which one small run leaves idle; slower on a CPU. "
         "1: each run alone")


@app.command(cls=ConfigCommand, make_options=_sweep_options)
@click.argument("grid_file", required=False, type=click.Path(dir_okay=False))
@click.option("--seeds", help="how many seeds (3: seeds 0, 1, 2) or a list (0,4,7)  [default: 1]")
@click.option(
    "--metrics",
    "metric_names",
    cls=RegistryHelp,
    describe=lambda: (
        f"metrics measured at the end of each run, comma-separated: {_names(METRIC_NAMES, ', ')}, or all"
    ),
)
@click.option("--n-train", type=int, help="training points of every metric  [default: each metric's own]")
@click.option("--n-eval", type=int, help="evaluation points of every metric  [default: each metric's own]")
@click.option("--metric-batch-size", type=int,
              help="pairs a point of the β-VAE scores averages (their L), images a FactorVAE vote takes  "
                   "[default: each metric's own, 64]")
@click.option("--metric-seed", type=SEED, help="seed of the metrics' samples  [default: 0]")
@click.option("--out", help="sweep folder  [default: sweeps/<grid file name>; needed without a grid file]")
@click.option("--workers", type=int, help="runs at once  [default: one per GPU, else one per core]")
@click.option(
    "--backend",
    default="local",
    show_default=True,
    cls=RegistryHelp,
    describe=lambda: _names("betavae.studies.backend:BACKENDS"),
)
@click.option(
    "--ray-address", help="a Ray cluster to join (ray://host:10001 or auto)  [default: start one here]"
)
@click.option("--cpus-per-run", type=float, help="Ray: CPUs each run reserves  [default: 1]")
@click.option(
    "--gpus-per-run", type=float, help="Ray: GPUs each run reserves  [default: 1 when the cluster has GPUs]"
)
@PACK_OPTION
@click.option("--retry-failed", is_flag=True, help="run the failed runs again")
@click.option("--large-grid", is_flag=True, help="run a grid of more than 10,000 runs (refused without it)")
@click.option("--progress/--no-progress", default=None, help="progress bar  [default: on a terminal]")
def sweep(
    grid_file: str | None,
    seeds: str | None,
    metric_names: str | None,
    n_train: int | None,
    n_eval: int | None,
    metric_batch_size: int | None,
    metric_seed: int | None,
    out: str | None,
    workers: int | None,
    backend: str,
    ray_address: str | None,
    cpus_per_run: float | None,
    gpus_per_run: float | None,
    pack: int,
    retry_failed: bool,
    large_grid: bool,
    progress: bool | None,
    **training: str | None,
) -> None:
    """Train every point of a grid (β × latent size × seeds × …) into run folders in --out; resumable.

    The grid comes from GRID_FILE (TOML: training keys, a list sweeps a key; options in a
    [sweep] table) and/or the flags, which override it. Without either, the grid the sweep
    folder was last run with is continued. Given to a folder that has a grid, they only grow
    it: values are added to its swept keys, seeds to its seeds, more --steps to every run; a
    change to what its runs are is refused.
    """
    from betavae.studies.grid import grid_changes, spec_from_command_line
    from betavae.studies.state import stored_spec
    from betavae.studies.sweep import BackendOptions, run_sweep

    if out is None:
        if grid_file is None:
            raise BetaVAEError("give --out (the sweep folder), or a GRID_FILE whose name names it")
        out = str(Path("sweeps") / Path(grid_file).stem)
    options = {
        "seeds": seeds,
        "metrics": metric_names,
        "n_train": n_train,
        "n_eval": n_eval,
        "metric_batch_size": metric_batch_size,
        "metric_seed": metric_seed,
    }
    backend = BackendOptions(backend, workers, ray_address, cpus_per_run, gpus_per_run, pack).check()
    stored = stored_spec(out)
    spec, names = spec_from_command_line(grid_file, training, options, stored, out)
    for line in grid_changes(stored, spec) if stored is not None else []:
        click.echo(line)
    summary = run_sweep(
        spec,
        out,
        backend,
        retry_failed=retry_failed,
        progress=progress,
        names=names,
        large_grid=large_grid,
        echo=click.echo,
    )
    counts = summary.counts
    left = counts["queued"] + counts["running"]
    click.echo(
        f"sweep {summary.out}: {counts['done']} done, {counts['failed']} failed"
        + (f", {left} not run" if left else "")
        + (" (betavae sweep --retry-failed to run the failed again)" if counts["failed"] else "")
    )
    click.echo(f"next: betavae results {summary.out}; betavae plot {summary.out}")
    if counts["failed"]:
        raise SystemExit(1)


@app.command()
@click.argument("sweep_dir")
@click.option("--json", "as_json", is_flag=True, help="print the rows as JSON instead of a table")
def results(sweep_dir: str, as_json: bool) -> None:
    """The table of a sweep: grid keys, seed, held-out loss terms, each metric; writes results.csv
    and .json."""
    import json

    from betavae.studies.results import cut_off_note, format_table, result_rows, write_results

    rows, spec = result_rows(sweep_dir)
    csv_path, json_path = write_results(sweep_dir, rows, spec)
    note = cut_off_note(rows, sweep_dir)
    if note:
        click.echo(note, err=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(format_table(rows, spec))
    click.echo(f"written: {csv_path}, {json_path}")


@app.command()
@click.argument("sweep_dir")
@click.option("--out", help="folder of the figures  [default: SWEEP_DIR/figures]")
@click.option("--no-recon", is_flag=True, help="skip the reconstructions (they load every run's model)")
def plot(sweep_dir: str, out: str | None, no_recon: bool) -> None:
    """The report's figures of a sweep: held-out loss against β_norm, metric heatmaps, reconstructions."""
    from betavae.studies.results import cut_off_note, result_rows
    from betavae.viz.sweep import plot_sweep

    rows, spec = result_rows(sweep_dir)
    note = cut_off_note(rows, sweep_dir)
    if note and any(row["status"] == "done" for row in rows):  # else plot_sweep refuses, with the note
        click.echo(note, err=True)
    for path in plot_sweep(
        Path(sweep_dir), rows, spec.varied(), out=Path(out) if out else None, recon=not no_recon
    ):
        click.echo(path)


@app.command()
@click.option("--scale", default="small", show_default=True, cls=RegistryHelp,
              describe=lambda: " | ".join(f"{name} ({scale.brief})" for name, scale in _scales().items()))
@click.option("--out", default="runs/reproduce", show_default=True, help="the study folder")
@click.option("--backend", default="local", show_default=True, cls=RegistryHelp,
              describe=lambda: _names("betavae.studies.backend:BACKENDS"))
@click.option("--workers", type=int, help="runs at once  [default: one per GPU, else one per core]")
@click.option("--ray-address", help="a Ray cluster to join  [default: start one here]")
@PACK_OPTION
@click.option("--data-dir", help="where MNIST's files are; also $BETAVAE_DATA_DIR")
@click.option("--download/--no-download", default=True, show_default=True,
              help="fetch MNIST from its mirrors when its files are absent (offline: its parts are skipped)")
@click.option("--successors", metavar="NAMES", cls=RegistryHelp,
              describe=lambda: "the β-VAE's successors to train beside it and score in the baselines "
                               "table, separated by commas: "
                               f"{_names('betavae.study.design:SUCCESSORS', ', ')}; all; none  "
                               "[default: the scale's: none at small (they do not fit its half hour), "
                               "all at paper]")
@click.option("--poster/--no-poster", default=True, show_default=True,
              help="also write the interactive poster of every run (DIR/poster; betavae poster rebuilds it)")
@click.option("--progress/--no-progress", default=None, help="progress bars  [default: on a terminal]")
def reproduce(scale: str, out: str, backend: str, workers: int | None, ray_address: str | None, pack: int,
              data_dir: str | None, download: bool, successors: str | None, poster: bool,
              progress: bool | None) -> None:
    """Run the β-VAE study and write report.html / report.md judging each of the paper's claims.

    Killed and run again, it reuses every finished run and measurement; run on a finished
    folder, it only rewrites the report.
    """
    from betavae.checks import comma_separated
    from betavae.studies.backend import BackendOptions
    from betavae.study.design import SUCCESSORS
    from betavae.study.runner import reproduce as run_study

    named = {"all": list(SUCCESSORS), "none": []}
    chosen = None
    if successors is not None:
        chosen = named[successors.strip()] if successors.strip() in named \
            else comma_separated(successors, "--successors")
    options = BackendOptions(backend=backend, workers=workers, ray_address=ray_address, pack=pack)
    report = run_study(scale, out, options, data_dir=data_dir, progress=progress, echo=click.echo,
                       download=download, successors=chosen, poster=poster)
    click.echo(f"report: {report}  (and {report.with_suffix('.md').name} beside it)")


@app.command()
@click.argument("study_dir")
@click.option("--serve", is_flag=True, help="serve the poster after building it (Ctrl-C stops)")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="the port to serve on with --serve (0: any free port)")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="the address to serve on; anything but loopback shows the poster to the network")
@click.option("--data-dir", help="where MNIST's files are (held-out images); also $BETAVAE_DATA_DIR")
def poster(study_dir: str, serve: bool, port: int, host: str, data_dir: str | None) -> None:
    """Build (or bring up to date) the interactive poster of a finished study: STUDY_DIR/poster.

    Every grid cell of every figure opens its runs in the browser, decoded there by ONNX Runtime
    Web. Runs exported by an earlier build are kept while their checkpoint is unchanged. Any
    static web server can serve the folder; --serve starts betavae's own.
    """
    from betavae.demo.server import DemoServer
    from betavae.poster import build_poster
    from betavae.study.runner import data_folder

    with data_folder(data_dir):
        if not serve:
            folder = build_poster(study_dir, report=click.echo)
            click.echo(f"wrote {folder}: open it through a web server (betavae poster {study_dir} --serve, "
                       f"or python -m http.server -d {folder})")
            return
        with _exit_on_sigterm():
            _build_then_serve(DemoServer(study_dir, host=host, port=port),
                              lambda: build_poster(study_dir, report=click.echo), "the poster")


@app.group()
def show() -> None:
    """Figures from run folders: reconstructions, traversals, samples, KL, factors."""


@show.command("recon")
@click.argument("run_dirs", nargs=-1, required=True)
@click.option(
    "--n", "count", type=int, default=8, show_default=True, help="held-out images (rows), at least 1"
)
@click.option(
    "--out",
    help="the PNG file, or a folder to write show-recon.png into  [default: the run folder, or "
    "the folder holding the runs]",
)
def show_recon(run_dirs: tuple[str, ...], count: int, out: str | None) -> None:
    """Held-out inputs (first column) and their reconstruction by each run, labelled with β, β_norm, M.

    Written as show-recon.png, beside (never over) the reconstructions.png that training writes.
    """
    from betavae.viz.reconstructions import compare_reconstructions

    click.echo(compare_reconstructions(run_dirs, n=count, out=out, users_out=True))


@show.command("traverse")
@click.argument("run_dir")
@click.option("--dims", default="all", show_default=True, help="all | active | a list such as 0,3")
@click.option(
    "--range",
    "value_range",
    type=(float, float),
    default=(-2.5, 2.5),
    show_default=True,
    help="the values each dimension sweeps",
)
@click.option("--steps", type=int, default=11, show_default=True, help="values per row")
@click.option(
    "--around", default="mean", show_default=True, help="mean | zero | sample:K: the code the others keep"
)
@click.option("--gif", is_flag=True, help="also write an animated GIF sweeping every row together")
@click.option("--seed", type=SEED, default=0, show_default=True)
def show_traverse(
    run_dir: str, dims: str, value_range: tuple[float, float], steps: int, around: str, gif: bool, seed: int
) -> None:
    """One row per latent dimension, sorted by its KL, each varied over --range with the others fixed."""
    from betavae.viz.traversals import traversal_figure

    for path in traversal_figure(
        run_dir, dims=dims, value_range=value_range, steps=steps, around=around, gif=gif, seed=seed
    ):
        click.echo(path)


@show.command("factors")
@click.argument("run_dir")
@click.option("--points", type=int, default=10_000, show_default=True, help="images encoded")
@click.option("--seed", type=SEED, default=0, show_default=True)
def show_factors(run_dir: str, points: int, seed: int) -> None:
    """For each active dimension, the mean code against each factor's values (SVG)."""
    from betavae.viz.factors import factor_tracking_figure

    click.echo(factor_tracking_figure(run_dir, num_points=points, seed=seed))


@show.command("samples")
@click.argument("run_dir")
@click.option("--seed", type=SEED, default=0, show_default=True)
def show_samples(run_dir: str, seed: int) -> None:
    """Images decoded from draws of the prior N(0, I)."""
    from betavae.viz.samples import sample_figure

    click.echo(sample_figure(run_dir, seed=seed))


@show.command("kl")
@click.argument("run_dir")
def show_kl(run_dir: str) -> None:
    """A bar chart of the held-out KL of each latent dimension (SVG)."""
    from betavae.viz.kl import kl_figure

    click.echo(kl_figure(run_dir))


@app.command()
@click.argument("run_dir")
@click.option("--out", help="folder of the models, model.json and test_images.png  [default: RUN_DIR/export]")
@click.option(
    "--images", type=int, default=16, show_default=True, help="held-out test images to check and ship"
)
@click.option(
    "--tolerance", type=float, default=1e-4, show_default=True, help="largest |ONNX − PyTorch| allowed"
)
def export(run_dir: str, out: str | None, images: int, tolerance: float) -> None:
    """The run's encoder and decoder as ONNX models for the in-browser demo, checked against PyTorch."""
    from betavae.demo.export import export_run

    exported = export_run(run_dir, out, images=images, tolerance=tolerance)
    click.echo(f"wrote {exported.out_dir}: {', '.join(path.name for path in exported.files)}")
    for line in exported.check_lines():
        click.echo(line)


@app.command()
@click.argument("run_dirs", nargs=-1, required=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="the port to serve on (0: any free port)")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="the address to serve on; anything but loopback shows the page and models to the network")
@click.option("--static", "static_dir",
              help="write a self-contained folder for any static host instead of serving")
@click.option("--images", type=int, default=16, show_default=True,
              help="held-out test images the page offers")
def demo(run_dirs: tuple[str, ...], port: int, host: str, static_dir: str | None, images: int) -> None:
    """Explore runs in the browser: sliders per latent dimension, drawing, held-out images (ONNX Runtime Web).

    Runs of the same latent size are driven by the same sliders. The models run in the
    page; the server only hands out the page's files.
    """
    import tempfile

    from betavae.demo.server import DemoServer
    from betavae.demo.site import build_site

    if static_dir is not None:
        out = build_site(run_dirs, static_dir, images=images, report=click.echo)
        click.echo(f"wrote {out}: serve it from any static host (e.g. python -m http.server -d {out})")
        return
    with tempfile.TemporaryDirectory(prefix="betavae-demo-") as folder, _exit_on_sigterm():
        site = Path(folder) / "site"
        site.mkdir()
        _build_then_serve(DemoServer(site, host=host, port=port),
                          lambda: build_site(run_dirs, site, images=images, report=click.echo),
                          f"the demo of {len(run_dirs)} run(s)")


def _build_then_serve(server: Any, build: Callable[[], Path], what: str) -> None:
    """Build the folder to serve (``build`` returns it) while ``server`` already holds the port, then serve
    it from this thread until Ctrl-C. The port first: a taken one is a one-line error (the server's)
    before minutes of exporting, not after; a failed build frees it again."""
    try:
        folder = build()
    except BaseException:
        server.close()
        raise
    server.reload(folder)
    try:
        if server.warning:
            click.echo(server.warning, err=True)
        click.echo(f"serving {what} at {server.url} (Ctrl-C stops)")
        server.serve_forever()
    except KeyboardInterrupt:  # a stop before the loop began (its own catches the rest): the same
        server.close()


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """SIGTERM (``kill``, a service manager) ends the block as Ctrl-C does, through its clean-up: the
    demo's temporary folder (its models and ONNX Runtime Web, ~30 MB) would otherwise stay behind.

    SIGINT is handled here too rather than left to Python's default, which a process started with SIGINT
    ignored (from a background job of a script) keeps ignored: ``kill -INT`` would not stop the server.
    """
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():  # only the main thread takes signals
        yield
        return
    previous = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``betavae`` script."""
    try:
        code = app.main(args=argv, prog_name="betavae", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:
        print(error.format_message(), file=sys.stderr)
        sys.exit(2)
    except click.UsageError as error:
        where = error.ctx.command_path if error.ctx else "betavae"
        message = " ".join(error.format_message().split())
        print(f"{where}: error: {message} (see '{where} --help')", file=sys.stderr)
        sys.exit(2)
    except (click.Abort, KeyboardInterrupt):  # outside the training loop, which saves and exits by itself
        print("betavae: interrupted", file=sys.stderr)
        sys.exit(130)
    except BetaVAEError as error:
        print(f"betavae: error: {error}", file=sys.stderr)
        sys.exit(getattr(error, "exit_code", 1))
    except OSError as error:  # the machine's, not the code's: a full disk, a read-only or vanished folder
        where = f"{error.filename}: " if error.filename else ""
        print(f"betavae: error: {where}{error.strerror or error}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
