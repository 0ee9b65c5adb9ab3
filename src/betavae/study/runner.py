"""``betavae reproduce``: the β-VAE study run end to end, and a report that judges each claim.

Built on the existing commands, never beside them: every training run is a point of a
:func:`~betavae.studies.sweep.run_sweep` (so it resumes, records failures and runs on the
local or the Ray backend), the metrics are the sweep's (:func:`betavae.evaluation.score`),
the figures are ``betavae plot``'s and ``show traverse``'s, transfer is ``betavae
transfer``'s. What is new here is the choice of runs, the measurements no command makes
(the blur of reconstructions, the baselines over several metric seeds; the β-VAE score with
weaker classifiers is a metric the grids measure, ``beta_vae_weak``), and the claims
(:mod:`betavae.study.claims`) and report (:mod:`betavae.study.report`) made from them.

The design (parts, scales, constants) is :mod:`betavae.study.design`, which the report imports
too; this module trains and measures, :mod:`betavae.study.study_report` judges. The study folder::

    <set>/grid/           sweep: β_norm × latent size × seeds (loss, metrics, figures)
    <set>/compare/        sweep: β = 1 against the paper's β = 4 at one latent size, same seeds
    <set>/figures/        sweep: the report's raw-β figure settings (medium and paper scales)
    <set>/successors/X/   sweep: objective X over seeds (where the scale or --successors asks)
    <set>/grid-lmse/      sweep: the grid again under log-MSE (smoke, medium and paper scales)
    transfer/<set>/       transfer.csv / .svg / .txt of the compare runs
    measurements.json     blur and baselines, each computed once
    report.html, report.md
    study.json            the claims and every run's row as data (betavae.study.data)
    poster/               the interactive poster of every run (betavae.poster)

A second invocation reuses every finished run (the sweeps skip them) and every
measurement (kept in ``measurements.json`` by run and step), and only rewrites the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from betavae.errors import BetaVAEError
from betavae.files import atomic_write_text, claim_folder, make_folder
from betavae.runs import RunDir
from betavae.studies.backend import BackendOptions
from betavae.studies.grid import GridSpec
from betavae.studies.local import keep_workers
from betavae.study.design import (
    BASELINES,
    FIGURES_SWEEP,
    LMSE_SWEEP,
    MEASUREMENTS_FILE,
    PAPER_BETA,
    PAPER_NET,
    PAPER_NET_BASELINE,
    PAPER_NET_SWEEP,
    SCORE_METRIC,
    SUCCESSORS,
    SUCCESSORS_FOLDER,
    WEAK_CLASSIFIERS,
    WEAK_METRIC,
    Measured,
    Part,
    Scale,
    checked_successors,
    scale_of,
)
from betavae.study.trained import curve_flattened, marks

# The kind in the mark of a study folder (betavae.files), with the scale it was made at.
KIND = "betavae reproduce"

# --- running the parts ---------------------------------------------------------------------------


def reproduce(scale: str = "small", out: str | Path = "runs/reproduce", options: BackendOptions | None = None,
              data_dir: str | Path | None = None, progress: bool | None = None,
              echo: Callable[[str], None] = print, command: str | None = None, download: bool = True,
              successors: Sequence[str] | None = None, poster: bool = True) -> Path:
    """Run (or resume) the study at ``scale`` into ``out`` and write its report (and, with ``poster``, its
    interactive poster, :mod:`betavae.poster`); return the report's path.

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
    options = (options or BackendOptions()).check()
    out = claim_folder(out, KIND, what="study folder", extra={"scale": chosen.name}, adopt=_earlier_study)
    timings: dict[str, float] = {}
    skipped: list[str] = []
    parts = []
    with keep_workers():  # the sweeps one after another share their workers and loaded datasets
        for part in chosen.parts_of():
            problem = _mnist_problem(data_dir, download) if part.dataset == "mnist" else None
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
    with data_folder(data_dir):
        measured = _measure(parts, chosen, out, store, echo)
    timings["measurements"] = time.perf_counter() - started
    timings["in all (this invocation)"] = time.perf_counter() - began
    started = time.perf_counter()
    from betavae.study.study_report import write_study_report

    report = write_study_report(out, chosen, parts, measured, timings, skipped,
                                command or _command(chosen, out, options, data_dir, successors),
                                (lambda: _poster(out, data_dir, echo)) if poster else None)
    timings["report"] = time.perf_counter() - started
    return report


def _poster(out: Path, data_dir: str | None, echo: Callable[[str], None]) -> bool:
    """The interactive poster beside the report, and whether it was built: a failure (ONNX Runtime Web
    not downloadable offline) is said in one line with the command that builds it later, and the
    finished study stands."""
    from betavae.poster import build_poster

    try:
        with data_folder(data_dir):
            poster = build_poster(out, report=echo)
    except BetaVAEError as error:
        echo(f"the poster was not built: {error}; build it later with: betavae poster {out}")
        return False
    echo(f"poster: {poster / 'index.html'} (serve it: betavae poster {out} --serve)")
    return True


def _earlier_study(folder: Path) -> bool:
    """A study folder written before marks: it holds a sweep of the study's (``<part>/<kind>/sweep.db``)."""
    return any(folder.glob("*/*/sweep.db"))


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


def _training(part: Part, scale: Scale, data_dir: str | None, recon: str) -> dict[str, Any]:
    training: dict[str, Any] = {"dataset": part.dataset, "arch": part.arch, "steps": scale.steps[part.folder],
                                "batch_size": scale.batch_size, "recon": recon}
    if part.folder in scale.test_size:
        training["test_size"] = scale.test_size[part.folder]
    if part.dataset == "mnist" and data_dir:
        training["data_dir"] = data_dir
    if scale.deterministic:
        training["deterministic"] = True
    return training


def _recon_of(part: Part, kind: str) -> str:
    """The reconstruction loss of a sweep of ``part``: the grid's and the report's figure settings',
    log-MSE for the grid trained again under it, or the comparison's (which the successors, compared
    with it, share)."""
    if kind == LMSE_SWEEP:
        return "lmse"
    return part.recon if kind in ("grid", FIGURES_SWEEP) else part.compare_recon


def sweep_spec(part: Part, kind: str, scale: Scale, data_dir: str | None = None) -> GridSpec:
    """The grid of ``part``'s sweep ``kind`` (grid, compare, figures, successors/OBJECTIVE) at ``scale``:
    what the study trains there, and what it measures of each run."""
    from betavae.studies.grid import build_spec

    training = _training(part, scale, data_dir, _recon_of(part, kind))
    seeds = scale.seeds
    if kind in ("grid", LMSE_SWEEP):
        training.update(beta_norm=list(scale.beta_norms), latent_dim=list(scale.latent_dims))
        seeds = scale.grid_seeds_of(part)
    elif kind in ("compare", PAPER_NET_SWEEP):
        training.update(beta=[1.0, PAPER_BETA], latent_dim=scale.compare_latent)
        if kind == PAPER_NET_SWEEP:
            training["arch"] = PAPER_NET
    elif kind == FIGURES_SWEEP:
        training.update(beta=list(scale.figure_betas), latent_dim=list(scale.figure_latents))
    else:  # successors/OBJECTIVE
        objective = kind.removeprefix(f"{SUCCESSORS_FOLDER}/")
        training.update(objective=objective, latent_dim=scale.compare_latent, **SUCCESSORS[objective])
        seeds = scale.seeds_of_successors
    sweep_options: dict[str, Any] = {"seeds": seeds}
    if part.factors and kind != FIGURES_SWEEP:
        # The grid's runs are also scored with weaker classifiers (claim 6b), on the codes their other
        # metrics encode: a measurement at the end would encode the whole set again for every run.
        weak = [WEAK_METRIC] if kind == "grid" and SCORE_METRIC in scale.metrics else []
        metrics = scale.metrics_of(part) if kind == PAPER_NET_SWEEP else scale.metrics
        sweep_options.update(metrics=[*metrics, *weak], n_train=scale.n_train, n_eval=scale.n_eval)
        if scale.metric_batch_size is not None:
            sweep_options.update(metric_batch_size=scale.metric_batch_size)
    return build_spec(training, sweep_options, source=f"reproduce {part.folder} {kind}")


def _sweep(part: Part, kind: str, scale: Scale, out: Path, options: BackendOptions, data_dir: str | None,
           progress: bool | None) -> None:
    from betavae.studies.sweep import run_sweep

    summary = run_sweep(sweep_spec(part, kind, scale, data_dir), out / part.folder / kind, options,
                        progress=progress)
    for name, error in summary.failed:
        raise BetaVAEError(f"run {name} of {out / part.folder / kind} failed ({error}); fix it and run "
                           f"betavae reproduce again, which resumes (see betavae sweep --retry-failed)")


def rows_of(sweep_dir: Path, recon: str) -> list[dict[str, Any]]:
    """The finished runs of a sweep as result rows, each with its loss (``recon``), whether its training
    loss flattened (``flat``) and its mark (``trained``, ``trained_why``; :mod:`betavae.study.trained`)."""
    from betavae.studies.results import result_rows

    rows = [row for row in result_rows(sweep_dir)[0] if row["status"] == "done"]
    for row in rows:
        row["recon"] = recon
        row["flat"] = curve_flattened(training_losses(sweep_dir / row["run"]))
    marked = marks(rows)
    for row in rows:
        row["trained"], row["trained_why"] = marked[row["run"]].trained, marked[row["run"]].why
    return rows


def training_losses(run_dir: Path) -> list[float]:
    """The training loss of each entry of a run's ``log.jsonl``, in order (evaluations left out)."""
    losses = []
    path = RunDir(run_dir).log_path
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill: the entries before it still tell the curve
        if isinstance(entry.get("loss"), (int, float)) and "images_per_s" in entry:
            losses.append(float(entry["loss"]))
    return losses


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


@contextlib.contextmanager
def data_folder(data_dir: str | None) -> Iterator[None]:
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
    from betavae.study.sharpness import reconstruction_sharpness

    measured = Measured()
    for part in parts:
        grid_dir, compare_dir = out / part.folder / "grid", out / part.folder / "compare"
        measured.grid[part.folder] = grid = rows_of(grid_dir, _recon_of(part, "grid"))
        measured.compare[part.folder] = rows_of(compare_dir, _recon_of(part, "compare"))
        if FIGURES_SWEEP in scale.sweeps_of(part):
            measured.figure_runs[part.folder] = rows_of(out / part.folder / FIGURES_SWEEP,
                                                        _recon_of(part, FIGURES_SWEEP))
        echo(f"{part.folder}: blur of reconstructions")
        measured.blur[part.folder] = _per_run(
            store, "blur", grid_dir, grid, lambda run: reconstruction_sharpness(run, scale.blur_images))
        if scale.lmse_of(part):
            lmse_dir = out / part.folder / LMSE_SWEEP
            measured.lmse[part.folder] = lmse = rows_of(lmse_dir, _recon_of(part, LMSE_SWEEP))
            measured.lmse_blur[part.folder] = _per_run(
                store, "blur", lmse_dir, lmse, lambda run: reconstruction_sharpness(run, scale.blur_images))
        if scale.paper_net_of(part):
            measured.paper_net[part.folder] = rows_of(out / part.folder / PAPER_NET_SWEEP,
                                                      _recon_of(part, PAPER_NET_SWEEP))
        if part.factors:
            echo(f"{part.folder}: baselines")
            measured.weak[part.folder] = weak_rows(grid)
            measured.baselines[part.folder] = _baselines(store, part, scale)
            successors_dir = out / part.folder / SUCCESSORS_FOLDER
            measured.factor_counts[part.folder] = _factor_count(part)
            measured.successors[part.folder] = {
                objective: rows_of(successors_dir / objective, _recon_of(part, SUCCESSORS_FOLDER))
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
        cells.append({**_cell(row), **values})
    return cells


def _cell(row: dict[str, Any]) -> dict[str, Any]:
    """A result row's grid cell: which run, its seed and setting, and whether it trained."""
    return {key: row[key] for key in ("run", "seed", "beta", "beta_norm", "latent_dim", "trained")}


def _baselines(store: Measurements, part: Part, scale: Scale) -> dict[str, list[dict[str, float | None]]]:
    """Each baseline's headline scores, once per metric seed (their spread over seeds); on the paper's set
    at a scale that trains the paper's network, its untrained weights too."""
    names = [*BASELINES, *([PAPER_NET_BASELINE] if scale.paper_net_of(part) else [])]
    metrics = scale.metrics_of(part)
    suffix = "" if metrics == scale.metrics else ":" + ",".join(metrics)  # older studies' keys stay valid
    return {name: [store.get(f"baseline:{part.folder}:{name}:{seed}{suffix}",
                             lambda name=name, seed=seed: baseline_scores(part, name, seed, scale))
                   for seed in range(scale.baseline_seeds)]
            for name in names}


def _factor_count(part: Part) -> int:
    """How many factors of ``part``'s set vary: the paper's and FactorVAE's scores are at chance at 1/this."""
    from betavae.evaluation import factor_dataset

    return factor_dataset(part.dataset).num_factors


def weak_rows(grid: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The grid's β-VAE scores with the score's own classifier (``default``) and each weaker one (by its
    report name), fitted on the same points: the metric :data:`WEAK_METRIC` of each run."""
    cells = []
    for row in grid:
        cell = _cell(row)
        cell["default"] = row.get(f"{WEAK_METRIC}.eval_accuracy")
        for label, name in WEAK_CLASSIFIERS.items():
            cell[label] = row.get(f"{WEAK_METRIC}.{name}_eval_accuracy")
        cells.append(cell)
    return cells


def baseline_scores(part: Part, name: str, seed: int, scale: Scale) -> dict[str, float | None]:
    """A baseline's headline scores: they depend on the dataset and the metrics' settings, not on the
    runs, so they are computed once per machine and user (the user's cache, ``baselines/``) and every
    later study with the same settings reads them back."""
    from betavae import __version__
    from betavae.evaluation import evaluate_baseline
    from betavae.files import cached
    from betavae.metrics.settings import headline_value

    sizes = scale.metric_sizes
    metrics = list(scale.metrics_of(part))
    key = {"betavae": __version__, "dataset": part.dataset, "baseline": name, "seed": seed,
           "metrics": metrics, "sizes": sizes, "latent_dim": scale.compare_latent,
           "num_fit": scale.baseline_fit}
    # The paper's untrained network: the untrained baseline of architecture PAPER_NET.
    kind, arch = ("untrained", PAPER_NET) if name == PAPER_NET_BASELINE else (name, None)

    def compute() -> dict[str, float | None]:
        results = evaluate_baseline(kind, part.dataset, metrics, seed=seed, sizes=sizes, arch=arch,
                                    latent_dim=scale.compare_latent, device="cpu", num_fit=scale.baseline_fit)
        return {metric: headline_value(metric, values) for metric, values in results.items()}

    return cached("baselines", key, compute)


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
