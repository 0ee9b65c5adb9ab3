"""``betavae reproduce``: the β-VAE study run end to end, and a report that judges each claim.

Built on the existing commands, never beside them: every training run is a point of a
:func:`~betavae.studies.sweep.run_sweep` (so it resumes, records failures and runs on the
local or the Ray backend), the metrics are the sweep's (:func:`betavae.evaluation.score`),
the figures are ``betavae plot``'s and ``show traverse``'s, transfer is ``betavae
transfer``'s. What is new here is the choice of runs, the measurements no command makes
(the blur of reconstructions, the β-VAE score with a weaker classifier, the baselines over
several metric seeds), and the claims (:mod:`betavae.studies.claims`) and report
(:mod:`betavae.studies.report`) made from them.

The study folder::

    <dataset>/grid/       sweep: β_norm × latent size × seeds (loss, metrics, figures)
    <dataset>/compare/    sweep: β = 1 against the paper's β = 4 at one latent size, same seeds
    transfer/<dataset>/   transfer.csv / .svg / .txt of the compare runs
    measurements.json     blur, weak-classifier scores and baselines, each computed once
    report.html, report.md

A second invocation reuses every finished run (the sweeps skip them) and every
measurement (kept in ``measurements.json`` by run and step), and only rewrites the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from betavae.errors import BetaVAEError
from betavae.runs import RunDir, atomic_write_text, make_folder
from betavae.studies.backend import BackendOptions

MEASUREMENTS_FILE = "measurements.json"
PAPER_BETA = 4.0  # the β of the paper's dSprites model (Higgins et al. 2017, Table 1)
PRIMARY_METRIC = "mig"  # the metric claims 4 and 5 follow: continuous, and not saturated
BASELINES = ("pixels", "pca", "ica", "untrained")
# The paper's Table 1 (its disentanglement metric score, dSprites-like 2D shapes), for the baselines table.
PAPER_SCORES = {"pixels": "45.75 ± 0.8 %", "pca": "84.9 ± 0.4 %", "ica": "42.03 ± 10.6 %",
                "untrained": "44.14 ± 2.5 %", "vae": "61.58 ± 0.5 %", "beta_vae": "99.23 ± 0.1 %"}
# The β-VAE's successors (docs/objectives.md) beside it in the baselines table: the training keys of each
# objective's sweep, the settings of the toolkit's dSprites comparison (docs/objectives.md).
SUCCESSORS = {
    "beta_tc": {"beta": 6.0},  # Chen et al. 2018: total-correlation weight 6
    "factor": {"factor_gamma": 35.0},  # Kim & Mnih 2018: the toolkit's default γ
    "capacity": {"capacity_gamma": 1000.0, "capacity_max": 25.0},  # Burgess et al.'s dSprites γ and C_max
    "dip": {"dip_type": "ii", "dip_lambda_od": 10.0, "beta": 1.0},  # Kumar et al. 2018: DIP-VAE II, KL × 1
}
SUCCESSORS_FOLDER = "successors"  # PART/successors/OBJECTIVE: one sweep over seeds per objective
# The β-VAE score's classifier made weaker, as the reproducibility report suggested ({}: the score's own).
WEAK_CLASSIFIERS = {"strong L2 (C = 0.001)": {"C": 1e-3}, "few iterations (5)": {"max_iter": 5}}


@dataclass(frozen=True)
class Part:
    """One dataset of the study: its name in the registry, its architecture, and what it measures."""

    folder: str
    dataset: str
    arch: str
    factors: bool  # disentanglement metrics (else held-out loss only)
    transfer_task: str | None = None


PARTS = (
    Part("shapes", "shapes_heart", "conv28", True),
    Part("dsprites", "dsprites", "conv64", True, "factor:shape"),
    Part("mnist", "mnist", "conv28", False, "digit"),
)


@dataclass(frozen=True)
class Scale:
    """How big the study is: the grid, the training, the seeds and the sizes of every measurement."""

    name: str
    why: str
    beta_norms: tuple[float, ...]
    latent_dims: tuple[int, ...]
    seeds: int  # of the β = 1 / β = 4 comparison (claims 3, 7 and 8)
    steps: dict[str, int]  # per part folder
    batch_size: int
    compare_latent: int
    metrics: tuple[str, ...]
    n_train: int
    n_eval: int
    test_size: dict[str, int] = field(default_factory=dict)
    baseline_seeds: int = 3
    baseline_fit: int = 10_000  # images PCA and ICA are fitted on
    transfer_labels: tuple[int, ...] = (10, 100, 1000)
    transfer_repeats: int = 3
    transfer_test: int | None = 2000
    blur_images: int = 256
    grid_seeds: int | None = None  # of the β_norm × latent grid (claims 1, 2, 4, 5, 6); None: ``seeds``
    deterministic: bool = False  # on a GPU, kernels that repeat their numbers (train --deterministic)
    successors: tuple[str, ...] = ()  # objectives of SUCCESSORS trained beside the β-VAE …
    successor_parts: tuple[str, ...] = ()  # … on these part folders (sets with known factors) …
    successor_seeds: int | None = None  # … over this many seeds; None: ``seeds``

    @property
    def seeds_of_grid(self) -> int:
        return self.seeds if self.grid_seeds is None else self.grid_seeds

    @property
    def seeds_of_successors(self) -> int:
        return self.seeds if self.successor_seeds is None else self.successor_seeds

    def successors_of(self, part: Part) -> tuple[str, ...]:
        """The successors trained on ``part``: none on a set without factors to score them by."""
        return self.successors if part.factors and part.folder in self.successor_parts else ()

    def sweeps_of(self, part: Part) -> list[str]:
        """The sweeps of ``part``, as folders under it: the grid, the comparison, each successor's."""
        successors = [f"{SUCCESSORS_FOLDER}/{objective}" for objective in self.successors_of(part)]
        return ["grid", "compare", *successors]


# The five metrics, DCI with its fast predictor (what `--metrics all` computes).
STUDY_METRICS = ("beta_vae", "factor_vae", "mig", "dci", "sap")
# At paper scale, DCI with the reference's gradient-boosted trees, so its numbers compare with published ones.
REFERENCE_METRICS = ("beta_vae", "factor_vae", "mig", "dci_gbt", "sap")
SCALES = {
    "smoke": Scale(
        "smoke", "the test suite's: every part runs, on runs too short to judge anything",
        beta_norms=(0.01, 1.0), latent_dims=(4, 8), seeds=1, steps={"shapes": 30, "dsprites": 6, "mnist": 30},
        batch_size=32, compare_latent=4, metrics=("beta_vae", "mig"), n_train=40, n_eval=20,
        test_size={"shapes": 500, "dsprites": 500}, baseline_seeds=2, baseline_fit=500,
        transfer_labels=(10, 50), transfer_repeats=2, transfer_test=300, blur_images=32,
        successors=("beta_tc", "factor"), successor_parts=("shapes",), successor_seeds=1),
    "small": Scale(
        "small", "sized for two CPU cores in under half an hour (make run; 26 minutes measured, "
        "docs/reproduce.md): the smallest grid that can show each claim, 3 β_norm (the report's lower "
        "three) × 2 latent sizes (a peak needs three β, a shift two sizes) over 2 seeds, and β = 1 "
        "against β = 4 over 3 seeds; short runs (the heart set 400 steps, MNIST 250, dSprites 200: "
        "conv64 on 64 × 64 images is several times the work of a step, and 200 steps are far too few "
        "to disentangle dSprites, which its verdicts then show) and every metric on 300 + 150 points, "
        "the most this budget allows; the β-VAE's successors only when asked (--successors: β-TCVAE "
        "and FactorVAE on the heart set over 2 seeds add some 2½ minutes)",
        beta_norms=(0.002, 0.02, 0.2), latent_dims=(5, 10), seeds=3, grid_seeds=2,
        steps={"shapes": 400, "dsprites": 200, "mnist": 250}, batch_size=64, compare_latent=10,
        metrics=STUDY_METRICS, n_train=300, n_eval=150, test_size={"shapes": 2000, "dsprites": 5000},
        baseline_fit=2000, transfer_labels=(10, 100, 1000), transfer_test=2000, blur_images=256,
        successor_parts=("shapes",), successor_seeds=2),
    "paper": Scale(
        "paper", "the report's 5 × 5 grid over the finer β_norm range 2e-5 … 20 it wished for, the "
        "paper's training lengths, 5 seeds, DCI with the reference's boosted trees, deterministic GPU "
        "kernels (the same seed gives the same numbers): for a GPU or a Ray cluster",
        beta_norms=(2e-5, 2e-4, 2e-3, 2e-2, 2e-1, 2.0, 20.0), latent_dims=(5, 10, 25, 50, 125), seeds=5,
        steps={"shapes": 100_000, "dsprites": 300_000, "mnist": 100_000}, batch_size=64, compare_latent=10,
        metrics=REFERENCE_METRICS, n_train=10_000, n_eval=5_000, baseline_seeds=5, deterministic=True,
        transfer_labels=(10, 30, 100, 300, 1000, 3000, 10000), transfer_repeats=5, transfer_test=None,
        blur_images=1000, successors=tuple(SUCCESSORS), successor_parts=("shapes", "dsprites")),
}


def scale_of(name: str) -> Scale:
    """The scale called ``name``; another name is a one-line error listing them."""
    from betavae.errors import unknown_choice

    if name not in SCALES:
        raise unknown_choice("scale", name, SCALES)
    return SCALES[name]


# --- running the parts ---------------------------------------------------------------------------


def reproduce(scale: str = "small", out: str | Path = "runs/reproduce", options: BackendOptions | None = None,
              data_dir: str | Path | None = None, progress: bool | None = None,
              echo: Callable[[str], None] = print, command: str | None = None, download: bool = True,
              successors: Sequence[str] | None = None) -> Path:
    """Run (or resume) the study at ``scale`` into ``out`` and write its report; return the report's path.

    ``successors``: the objectives of :data:`SUCCESSORS` to train beside the β-VAE (the scale's
    parts, seeds and length) and score in the baselines table, instead of the scale's own choice
    (none at ``small``, whose half hour they do not fit; all at ``paper``).

    MNIST is read from ``data_dir`` (else ``$BETAVAE_DATA_DIR``, else the user cache) and, when
    absent there and ``download``, fetched from its mirrors; if that fails (offline) its parts are
    skipped with the reason, which the report repeats. A ``data_dir`` given now also serves the
    finished runs of an earlier invocation that found MNIST elsewhere (their measurements and
    figures read it again).
    """
    began = time.perf_counter()
    data_dir = str(data_dir) if data_dir is not None else None
    chosen = scale_of(scale)
    if successors is not None:
        chosen = dataclasses.replace(chosen, successors=checked_successors(successors))
    out = make_folder(out, "study folder")
    options = options or BackendOptions()
    timings: dict[str, float] = {}
    skipped: list[str] = []
    parts = []
    for part in PARTS:
        problem = _mnist_problem(data_dir, download) if part.folder == "mnist" else None
        if problem is not None:
            skipped.append(f"MNIST: {problem}; then run this command again, which goes on from here")
            echo(f"skipping the MNIST parts: {skipped[-1]}")
            continue
        parts.append(part)
        for kind in chosen.sweeps_of(part):
            started = time.perf_counter()
            echo(f"{part.folder} {kind}: {out / part.folder / kind}")
            _sweep(part, kind, chosen, out, options, data_dir, progress)
            timings[f"{part.folder} {kind}"] = time.perf_counter() - started
    store = Measurements(out / MEASUREMENTS_FILE)
    started = time.perf_counter()
    with _data_folder(data_dir):
        measured = _measure(parts, chosen, out, store, echo)
    timings["measurements"] = time.perf_counter() - started
    timings["in all (this invocation)"] = time.perf_counter() - began
    started = time.perf_counter()
    from betavae.studies.study_report import write_study_report

    report = write_study_report(out, chosen, parts, measured, timings, skipped,
                                command or _command(chosen, out, options, data_dir, successors))
    timings["report"] = time.perf_counter() - started
    return report


def checked_successors(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple in :data:`SUCCESSORS`' order, each once; an unknown one is a one-line error."""
    from betavae.errors import unknown_choice

    for name in names:
        if name not in SUCCESSORS:
            raise unknown_choice("successor", name, SUCCESSORS)
    return tuple(name for name in SUCCESSORS if name in names)


def _command(scale: Scale, out: Path, options: BackendOptions, data_dir: str | None,
             successors: Sequence[str] | None) -> str:
    words = ["betavae", "reproduce", "--scale", scale.name, "--out", str(out), "--backend", options.backend]
    if options.workers is not None:
        words += ["--workers", str(options.workers)]
    if options.ray_address:
        words += ["--ray-address", options.ray_address]
    if data_dir:
        words += ["--data-dir", data_dir]
    if successors is not None:
        words += ["--successors", ",".join(scale.successors) or "none"]
    return shlex.join(words)


def _mnist_problem(data_dir: str | None, download: bool) -> str | None:
    """Why MNIST cannot be read (files missing and not downloaded, or corrupt), or None when it can."""
    from betavae import data

    try:
        data.load("mnist", data_dir=data_dir, download=download)
    except BetaVAEError as error:
        return str(error)
    return None


def _training(part: Part, scale: Scale, data_dir: str | None) -> dict[str, Any]:
    training: dict[str, Any] = {"dataset": part.dataset, "arch": part.arch, "steps": scale.steps[part.folder],
                                "batch_size": scale.batch_size}
    if part.folder in scale.test_size:
        training["test_size"] = scale.test_size[part.folder]
    if part.folder == "mnist" and data_dir:
        training["data_dir"] = data_dir
    if scale.deterministic:
        training["deterministic"] = True
    return training


def _sweep(part: Part, kind: str, scale: Scale, out: Path, options: BackendOptions, data_dir: str | None,
           progress: bool | None) -> None:
    from betavae.studies.grid import build_spec
    from betavae.studies.sweep import run_sweep

    training = _training(part, scale, data_dir)
    seeds = scale.seeds
    if kind == "grid":
        training.update(beta_norm=list(scale.beta_norms), latent_dim=list(scale.latent_dims))
        seeds = scale.seeds_of_grid
    elif kind == "compare":
        training.update(beta=[1.0, PAPER_BETA], latent_dim=scale.compare_latent)
    else:  # successors/OBJECTIVE
        objective = kind.removeprefix(f"{SUCCESSORS_FOLDER}/")
        training.update(objective=objective, latent_dim=scale.compare_latent, **SUCCESSORS[objective])
        seeds = scale.seeds_of_successors
    sweep_options: dict[str, Any] = {"seeds": seeds}
    if part.factors:
        sweep_options.update(metrics=list(scale.metrics), n_train=scale.n_train, n_eval=scale.n_eval)
    spec = build_spec(training, sweep_options, source=f"reproduce {part.folder} {kind}")
    summary = run_sweep(spec, out / part.folder / kind, options, progress=progress)
    for name, error in summary.failed:
        raise BetaVAEError(f"run {name} of {out / part.folder / kind} failed ({error}); fix it and run "
                           f"betavae reproduce again, which resumes (see betavae sweep --retry-failed)")


def rows_of(sweep_dir: Path) -> list[dict[str, Any]]:
    from betavae.studies.results import result_rows

    return [row for row in result_rows(sweep_dir)[0] if row["status"] == "done"]


# --- measurements no command makes, each kept once computed ---------------------------------------


class Measurements:
    """``measurements.json``: values keyed by what they were computed from, written after each one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.values: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        except json.JSONDecodeError:
            self.values = {}  # written atomically, so only a hand-edited file gets here: measure again

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self.values:
            self.values[key] = compute()
            atomic_write_text(self.path, json.dumps(self.values, indent=1, allow_nan=True))
        return self.values[key]


def _run_key(run_dir: Path, what: str) -> str:
    """``blur:shapes/grid/bn0.01-z4-s0@30``: a measurement of one run's weights at one step."""
    where = f"{run_dir.parent.parent.name}/{run_dir.parent.name}/{run_dir.name}"
    return f"{what}:{where}@{RunDir(run_dir).checkpoint_step()}"


@dataclass
class Measured:
    """Everything the claims and the report read, per part folder."""

    grid: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    compare: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    blur: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    weak: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    baselines: dict[str, dict[str, list[dict[str, float | None]]]] = field(default_factory=dict)
    transfer: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    successors: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)  # part → objective
    figures: dict[str, list[Path]] = field(default_factory=dict)


@contextlib.contextmanager
def _data_folder(data_dir: str | None) -> Iterator[None]:
    """``$BETAVAE_DATA_DIR`` set to ``data_dir`` (when given) while the study measures and draws.

    Measurements, transfer and figures load each run's dataset from its recorded config, and a
    run trained while MNIST came from ``$BETAVAE_DATA_DIR`` or the user cache records no folder:
    without this, a later invocation given ``--data-dir`` instead would not find MNIST for them.
    """
    from betavae.data.mnist import DATA_DIR_VARIABLE

    if data_dir is None:
        yield
        return
    before = os.environ.get(DATA_DIR_VARIABLE)
    os.environ[DATA_DIR_VARIABLE] = data_dir
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(DATA_DIR_VARIABLE, None)
        else:
            os.environ[DATA_DIR_VARIABLE] = before


def _measure(parts: Sequence[Part], scale: Scale, out: Path, store: Measurements,
             echo: Callable[[str], None]) -> Measured:
    from betavae.studies.sharpness import reconstruction_sharpness

    measured = Measured()
    for part in parts:
        grid_dir, compare_dir = out / part.folder / "grid", out / part.folder / "compare"
        measured.grid[part.folder] = grid = rows_of(grid_dir)
        measured.compare[part.folder] = rows_of(compare_dir)
        echo(f"{part.folder}: blur of reconstructions")
        measured.blur[part.folder] = _per_run(
            store, "blur", grid_dir, grid, lambda run: reconstruction_sharpness(run, scale.blur_images))
        if part.factors:
            echo(f"{part.folder}: the β-VAE score with weaker classifiers; baselines")
            measured.weak[part.folder] = _per_run(store, "weak", grid_dir, grid,
                                                  lambda run: _weak_scores(run, scale))
            measured.baselines[part.folder] = _baselines(store, part, scale)
            successors_dir = out / part.folder / SUCCESSORS_FOLDER
            measured.successors[part.folder] = {objective: rows_of(successors_dir / objective)
                                                for objective in scale.successors_of(part)}
        figures = _figures(part, grid_dir, compare_dir, measured.compare[part.folder])
        if part.transfer_task:
            echo(f"{part.folder}: transfer ({part.transfer_task})")
            measured.transfer[part.folder] = _transfer(part, scale, out, compare_dir,
                                                       measured.compare[part.folder], store)
            figures.append(_transfer_figure(part, scale, out, measured.transfer[part.folder]))
        measured.figures[part.folder] = figures
    return measured


def _per_run(store: Measurements, what: str, sweep_dir: Path, rows: Sequence[dict[str, Any]],
             compute: Callable[[Path], dict[str, float]]) -> list[dict[str, Any]]:
    """``compute(run folder)`` for each row's run, kept in ``store``, beside the row's grid cell."""
    cells = []
    for row in rows:
        run_dir = sweep_dir / row["run"]
        values = store.get(_run_key(run_dir, what), lambda run_dir=run_dir: compute(run_dir))
        cell = {key: row[key] for key in ("run", "seed", "beta", "beta_norm", "latent_dim")}
        cells.append({**cell, **values})
    return cells


def _baselines(store: Measurements, part: Part, scale: Scale) -> dict[str, list[dict[str, float | None]]]:
    """Each baseline's headline scores, once per metric seed (their spread over seeds)."""
    return {name: [store.get(f"baseline:{part.folder}:{name}:{seed}",
                             lambda name=name, seed=seed: _baseline(part, name, seed, scale))
                   for seed in range(scale.baseline_seeds)]
            for name in BASELINES}


def _weak_scores(run_dir: Path, scale: Scale) -> dict[str, float]:
    """The β-VAE score of a run with its own classifier ("default") and each weaker one, same points."""
    from betavae.evaluation import factor_dataset, metric_generator
    from betavae.metrics.beta_vae import beta_vae_scores
    from betavae.metrics.representation import model_representation
    from betavae.runs import load_model

    run = RunDir(run_dir)
    config = run.read_config()
    dataset = factor_dataset(config.dataset, **config.dataset_kwargs())
    represent = model_representation(load_model(run))
    scores = beta_vae_scores(dataset, represent, metric_generator(0, "beta_vae"),
                             {"default": {}, **WEAK_CLASSIFIERS}, n_train=scale.n_train, n_eval=scale.n_eval)
    return {name: values["eval_accuracy"] for name, values in scores.items()}


def _baseline(part: Part, name: str, seed: int, scale: Scale) -> dict[str, float | None]:
    from betavae.evaluation import evaluate_baseline
    from betavae.metrics import headline_value

    results = evaluate_baseline(name, part.dataset, list(scale.metrics), seed=seed,
                                sizes={"n_train": scale.n_train, "n_eval": scale.n_eval},
                                latent_dim=scale.compare_latent, device="cpu",
                                num_fit=scale.baseline_fit)
    return {metric: headline_value(metric, values) for metric, values in results.items()}


def _transfer(part: Part, scale: Scale, out: Path, compare_dir: Path, runs: Sequence[dict[str, Any]],
              store: Measurements) -> list[dict[str, Any]]:
    from betavae.transfer import run_transfer

    key = "transfer:" + part.folder + ":" + ",".join(
        f"{row['run']}@{RunDir(compare_dir / row['run']).checkpoint_step()}" for row in runs)

    def compute() -> list[dict[str, Any]]:
        result = run_transfer([compare_dir / row["run"] for row in runs], labels=scale.transfer_labels,
                              repeats=scale.transfer_repeats, task=part.transfer_task,
                              out=out / "transfer" / part.folder, baselines=(), max_test=scale.transfer_test)
        seeds = {row["run"]: row["seed"] for row in runs}
        return [{**row, "seed": seeds.get(row["run"])} for row in result.rows]

    return store.get(key, compute)


def _transfer_figure(part: Part, scale: Scale, out: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """The transfer experiment's figure as ``run_transfer`` drew it, or drawn again from the kept rows
    when its file is gone: the study keeps the rows (``measurements.json``), not the picture."""
    from betavae.transfer import PLOT_FILE, transfer_curves, transfer_title
    from betavae.viz.transfer import transfer_figure

    path = make_folder(out / "transfer" / part.folder, "transfer folder") / PLOT_FILE
    if not path.is_file() or path.stat().st_size == 0:
        title = transfer_title(part.dataset, part.transfer_task, scale.transfer_repeats)
        transfer_figure(transfer_curves(rows), path, title)
    return path


def _figures(part: Part, grid_dir: Path, compare_dir: Path, compare_rows: Sequence[dict[str, Any]]
             ) -> list[Path]:
    from betavae.studies.results import result_rows
    from betavae.viz.sweep import plot_sweep
    from betavae.viz.traversals import traversal_figure

    rows, spec = result_rows(grid_dir)
    figures = [path for path in plot_sweep(grid_dir, rows, spec.varied()) if path.suffix == ".png"]
    paper_runs = [row for row in compare_rows if row["beta"] == PAPER_BETA and row["seed"] == 0]
    for row in paper_runs[:1]:
        figures += traversal_figure(compare_dir / row["run"], dims="all")
    return figures


# --- the environment -------------------------------------------------------------------------------


def environment() -> dict[str, str]:
    import sklearn
    import torch

    from betavae.device import resolve_device

    device = resolve_device("auto")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "device": f"{device.type} ({name})",
            "threads": str(torch.get_num_threads()), "cores": str(os.cpu_count()),
            "platform": platform.platform()}
