"""Time to disentangle: the training wall time at which a β-VAE's MIG first reaches 0.1 and 0.2.

Throughput (``benchmarks/train_throughput.py``) says how fast a step is; this says how
fast a run gets somewhere. Each variant trains conv64 with β = 4 and 10 latent
dimensions on dSprites, and every ``--eval-every`` steps measures its Mutual Information
Gap (Chen et al. 2018) on one fixed sample of ``--mig-points`` factor vectors: the same
points at every evaluation, in every variant and for every seed, so the curves differ by
the model alone. Training measures it (``TrainConfig.eval``, :mod:`betavae.tracking`), and
the clock is training's: seconds since the run's ``train()`` call began, less the seconds
spent evaluating. It includes setup and checkpoint writing, which every real run pays too.

The variants change one training setting (learning rate, batch size, precision) from
``TrainConfig``'s defaults; runs of one seed share the initial weights. One seed decides
nothing: whether β-VAE's MIG takes off early varies more between seeds than between
learning rates (Locatello et al. 2019 found the same at 300,000 steps), so ``--seeds``
trains every variant once per seed, seed by seed (an interrupted benchmark compares
whole seeds), and the summary adds each variant's seeds up: how many reached each
threshold, their median time, mean final and best MIG and held-out loss. The default
settings should be those of the variant that reaches the thresholds first without a
lower final or best MIG, or a worse held-out loss. Times are compared within one
invocation, on one machine: the ``× first`` column is each run's time to the highest
threshold over that of the first variant with the same seed. The objectives issue
(β-VAE's successors: capacity, β-TC, FactorVAE, DIP) has not landed, so only β-VAE
variants are compared here.

    python benchmarks/time_to_disentangle.py [--variants default,lr5e-4,batch256] [--seeds 0,1,2]
        [--steps 30000] [--eval-every 2000] [--mig-points 10000] [--device auto]
        [--out runs/time-to-disentangle] [--resume | --overwrite]

The runs are a sweep (:mod:`betavae.studies.sweep`) whose points are the variants × the
seeds, run one at a time with every core: ``--out`` is a sweep folder (``betavae
results`` and ``betavae plot`` read it), each run an ordinary run folder in it,
``<variant>-s<seed>``, which keeps its evaluations (the ``during_training`` section of
its ``metrics.json``) and its clock (in its checkpoint). A folder that already holds a
run is refused unless ``--resume`` (continue it from its checkpoint: after Ctrl-C or a
kill, or to more ``--steps``; its clock goes on from the training seconds it had
reached, and an evaluation the kill cut short is made first) or ``--overwrite`` (delete
it and start again) is given. Beside the runs go ``time_to_disentangle.json`` (with the
sums over seeds), ``time_to_disentangle.csv`` (one row per evaluation) and
``time_to_disentangle.svg`` (MIG against wall time), describing the runs of this
invocation, also when it was interrupted.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from betavae.config import TrainConfig
from betavae.device import resolve_device
from betavae.errors import BetaVAEError
from betavae.files import atomic_write_text
from betavae.models import learning_rate
from betavae.performance import bf16_supported
from betavae.runs import DURING_TRAINING_SECTION, RunDir
from betavae.studies.grid import GridPoint, GridSpec
from betavae.studies.state import STATE_FILE, SweepState
from betavae.studies.sweep import BackendOptions, SweepInterrupted, run_sweep
from betavae.viz import save_figure

THRESHOLDS = (0.1, 0.2)
MIG_SAMPLE_SEED = 0  # the eval_seed of every run: MIG measured on one sample of factor vectors
FIGURE_FILE = "time_to_disentangle.svg"
# Not results.json/.csv: those are the sweep's own table of the same folder (betavae results).
RESULTS_JSON, RESULTS_CSV = "time_to_disentangle.json", "time_to_disentangle.csv"
# Overrides of TrainConfig, one setting family each; everything else is shared (see base_config).
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},  # conv64's learning rate, 1e-4 (models.ARCHITECTURES)
    "lr5e-4": {"lr": 5e-4},  # the default before this benchmark's measurements
    "lr2e-4": {"lr": 2e-4},
    "lr1e-3": {"lr": 1e-3},
    "batch32": {"batch_size": 32},
    "batch256": {"batch_size": 256, "lr": 2e-4},  # learning rate × √4
    "batch256-lr4e-4": {"batch_size": 256, "lr": 4e-4},  # learning rate × 4
    "bf16": {"precision": "bf16"},
}


def base_config(args: argparse.Namespace, device: torch.device) -> TrainConfig:
    """The settings every run shares: dSprites, conv64, β, latent size, steps, MIG on the fixed sample."""
    return TrainConfig(
        dataset="dsprites",
        arch="conv64",
        latent_dim=args.latent,
        beta=args.beta,
        steps=args.steps,
        device=str(device),
        checkpoint_every=args.eval_every,
        log_every=min(100, args.eval_every),
        eval=["mig"],
        eval_every=args.eval_every,
        eval_n_train=args.mig_points,
        eval_seed=MIG_SAMPLE_SEED,
    )


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type}, {torch.get_num_threads()} threads"


def evaluations(run: RunDir) -> list[dict[str, Any]]:
    """The MIG evaluations training recorded in ``run`` (``during_training``), one row of the CSV each.

    ``wall_s`` is the training clock's seconds, ``eval_s`` the evaluation's; ``mig`` and
    ``mig_<factor>`` come from the metric.
    """
    section = run.read_metrics().get(DURING_TRAINING_SECTION, {})
    return [
        {
            "step": entry["step"],
            "wall_s": entry["train_seconds"],
            "images": entry["images"],
            "eval_s": entry["eval_seconds"],
            **entry["mig"],
        }
        for entry in section.get("entries", [])
    ]


def resume_problem(run: RunDir, config: TrainConfig) -> str | None:
    """Why ``run`` cannot be continued as ``config``'s run of this benchmark, or None."""
    saved = run.resume_config()
    if saved.eval != config.eval:
        return (
            f"{run.path} holds a run that does not measure MIG while training (made by an older version of "
            f"this benchmark, or by hand); pass --overwrite to replace it, or choose another --out"
        )
    for key, name in (("eval_n_train", "mig_points"), ("eval_seed", "mig_sample_seed")):
        if getattr(saved, key) != getattr(config, key):
            return (
                f"{run.path} measured MIG with {name} {getattr(saved, key)}, not {getattr(config, key)}; "
                f"resume it with the same setting, or pass --overwrite"
            )
    if saved.steps > config.steps:
        return f"{run.path} was trained for {saved.steps:,} steps, more than --steps {config.steps:,}"
    return None


def first_reached(evaluations: list[dict[str, Any]], threshold: float) -> dict[str, Any] | None:
    """The first evaluation whose MIG is at least ``threshold`` (its step and wall time), or None."""
    for record in evaluations:
        if record["mig"] is not None and record["mig"] >= threshold:
            return {"step": record["step"], "wall_s": record["wall_s"]}
    return None


def summarise(result: dict[str, Any]) -> None:
    """Add the thresholds' first crossings and the final and best MIG to a variant's result."""
    evaluations = result["evaluations"]
    scored = [record["mig"] for record in evaluations if record["mig"] is not None]  # None: MIG was NaN
    result["reached"] = {f"{threshold:g}": first_reached(evaluations, threshold) for threshold in THRESHOLDS}
    result["final_mig"] = evaluations[-1]["mig"] if evaluations else None
    result["best_mig"] = max(scored) if scored else None


def variant_result(
    name: str, config: TrainConfig, row: dict[str, Any] | None, device_name: str
) -> dict[str, Any]:
    """One run's line of the results: its settings, what the sweep's state says of it, its evaluations.

    A diverged run is a result, not a crash; an interrupted one keeps its clock and
    evaluations up to its last checkpoint, so ``--resume`` goes on from there.
    """
    run = RunDir(config.out)
    result = {
        "variant": name,
        "seed": config.seed,
        "overrides": VARIANTS[name],
        "batch_size": config.batch_size,
        "lr": learning_rate(config.arch, config.lr),
        "precision": config.precision,
        "run": config.out,
        "device": device_name,
        "status": "done",
        "note": "",
        "evaluations": [],
        "test": None,
    }
    status = row["status"] if row else "queued"
    if status == "done":
        test = run.read_metrics()["test"]
        result["test"] = {key: test[key] for key in ("loss", "recon", "kl")}
    elif status == "failed":
        diverged = "training diverged" in (row["error"] or "")
        result["status"], result["note"] = ("diverged" if diverged else "failed"), row["error"]
    else:  # stopped by Ctrl-C before it finished (or before it began)
        step = run.checkpoint_step() if run.has_checkpoint() else 0
        result["status"] = "interrupted"
        result["note"] = (
            f"interrupted at step {step:,}/{config.steps:,}; continue with the same command and --resume"
        )
    if run.metrics_path.exists():
        result["evaluations"] = evaluations(run)
    summarise(result)
    return result


def evaluation_line(name: str, seed: int, record: dict[str, Any], factor_names: tuple[str, ...]) -> str:
    factors = ", ".join(f"{factor} {number(record[f'mig_{factor}'], 0, 2)}" for factor in factor_names)
    return (
        f"{name:<9} s{seed:<3} step {record['step']:>6}  {record['wall_s']:>8.1f} s  {record['images']:>10,} "
        f"images  MIG {number(record['mig'], 0, 3)}  ({factors})  eval {record['eval_s']:.1f} s"
    )


def number(value: float | None, width: int, places: int) -> str:
    """A table cell: ``value`` right-aligned, or a dash where there is none."""
    return f"{value:>{width}.{places}f}" if value is not None else f"{'-':>{width}}"


def print_summary(results: list[dict[str, Any]]) -> None:
    """One row per run, then (with several seeds) one row per variant over its seeds."""
    last = f"{THRESHOLDS[-1]:g}"
    crossings = "".join(f" {f'MIG≥{t:g} s':>11} {'step':>6}" for t in THRESHOLDS)
    print(
        f"\n{'variant':<9} {'seed':>4} {'batch':>5} {'lr':>7} {'prec':>4}{crossings} {'× first':>7} "
        f"{'final MIG':>9} {'best MIG':>8} {'test loss':>9} {'img/s':>6}  device"
    )
    for result in results:
        head = (
            f"{result['variant']:<9} {result['seed']:>4} {result['batch_size']:>5} {result['lr']:>7g} "
            f"{result['precision']:>4}"
        )
        if result["status"] == "skipped":
            print(f"{head}  skipped: {result['note']}")
            continue
        reference = next(
            r["reached"][last] for r in results if r["seed"] == result["seed"] and r["status"] != "skipped"
        )
        cells = ""
        for threshold in THRESHOLDS:
            reached = result["reached"][f"{threshold:g}"]
            cells += (
                f" {reached['wall_s']:>11.1f} {reached['step']:>6}"
                if reached
                else f" {'not reached':>11} {'-':>6}"
            )
        reached = result["reached"][last]
        ratio = f"{reached['wall_s'] / reference['wall_s']:>7.2f}" if reached and reference else f"{'-':>7}"
        evaluations = result["evaluations"]
        final_mig, best_mig = number(result["final_mig"], 9, 3), number(result["best_mig"], 8, 3)
        loss = number(result["test"]["loss"] if result["test"] else None, 9, 2)
        rate = (
            f"{evaluations[-1]['images'] / evaluations[-1]['wall_s']:>6.0f}" if evaluations else f"{'-':>6}"
        )
        status = "" if result["status"] == "done" else f"  ({result['status']})"
        print(f"{head}{cells} {ratio} {final_mig} {best_mig} {loss} {rate}  {result['device']}{status}")
    print(
        f"times: seconds of training (evaluations excluded); × first: time to MIG {last} over that of the "
        f"first variant with the same seed, measured in this run"
    )
    if len({result["seed"] for result in results}) > 1:
        print_over_seeds(results)


def runs_by_variant(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each variant's runs that were not skipped, variants in the order they ran."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        runs = grouped.setdefault(result["variant"], [])
        if result["status"] != "skipped":
            runs.append(result)
    return grouped


def over_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A variant's runs added up: seeds reaching each threshold and their median time, mean MIG and loss."""
    scored = [run for run in runs if run["final_mig"] is not None]
    tested = [run["test"]["loss"] for run in runs if run["test"]]
    summary: dict[str, Any] = {"seeds": len(runs)}
    for threshold in THRESHOLDS:
        times = [
            run["reached"][f"{threshold:g}"]["wall_s"] for run in runs if run["reached"][f"{threshold:g}"]
        ]
        summary[f"reached_{threshold:g}"] = len(times)
        summary[f"median_s_{threshold:g}"] = float(np.median(times)) if times else None
    summary["mean_final_mig"] = float(np.mean([run["final_mig"] for run in scored])) if scored else None
    best = [run["best_mig"] for run in runs if run["best_mig"] is not None]
    summary["mean_best_mig"] = float(np.mean(best)) if best else None
    summary["mean_test_loss"] = float(np.mean(tested)) if tested else None
    return summary


def print_over_seeds(results: list[dict[str, Any]]) -> None:
    crossings = "".join(f" {f'MIG≥{t:g}':>8} {'median s':>8}" for t in THRESHOLDS)
    print(
        f"\nover seeds\n{'variant':<9} {'seeds':>5} {'lr':>7}{crossings} {'final MIG':>9} {'best MIG':>8} "
        f"{'test loss':>9}   (mean over seeds)"
    )
    for name, runs in runs_by_variant(results).items():
        if not runs:
            continue
        summary = over_seeds(runs)
        cells = "".join(
            f" {summary[f'reached_{t:g}']:>4}/{len(runs):<3} {number(summary[f'median_s_{t:g}'], 8, 1)}"
            for t in THRESHOLDS
        )
        print(
            f"{name:<9} {len(runs):>5} {runs[0]['lr']:>7g}{cells} {number(summary['mean_final_mig'], 9, 3)} "
            f"{number(summary['mean_best_mig'], 8, 3)} {number(summary['mean_test_loss'], 9, 2)}"
        )


def write_results(
    out: Path, settings: dict[str, Any], results: list[dict[str, Any]], factor_names: tuple[str, ...]
) -> None:
    """The JSON (everything), the CSV (one row per evaluation) and the figure, each written atomically."""
    seeds = {name: over_seeds(runs) for name, runs in runs_by_variant(results).items()}
    atomic_write_text(
        out / RESULTS_JSON,
        json.dumps({"settings": settings, "variants": results, "over_seeds": seeds}, indent=2) + "\n",
    )
    columns = [
        "variant", "seed", "batch_size", "lr", "precision", "step", "wall_s", "images", "eval_s", "mig",
        *(f"mig_{factor}" for factor in factor_names),
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for result in results:
        for record in result["evaluations"]:
            writer.writerow({**{key: result[key] for key in columns[:5]}, **record})
    atomic_write_text(out / RESULTS_CSV, buffer.getvalue())
    save_figure(mig_figure(settings, results), out / FIGURE_FILE)


def mig_figure(settings: dict[str, Any], results: list[dict[str, Any]]) -> Figure:
    """MIG against training wall time, one colour per variant and one line per seed, the thresholds dashed."""
    figure = Figure(figsize=(7.0, 4.2))
    axes = figure.subplots()
    colours = {name: f"C{index}" for index, name in enumerate(dict.fromkeys(r["variant"] for r in results))}
    labelled: set[str] = set()
    for result in results:
        evaluations, name = result["evaluations"], result["variant"]
        if evaluations:
            migs = [np.nan if r["mig"] is None else r["mig"] for r in evaluations]  # None: MIG was NaN
            axes.plot(
                [r["wall_s"] for r in evaluations],
                migs,
                marker="o",
                markersize=3,
                linewidth=1.2,
                color=colours[name],
                label=None if name in labelled else name,
            )
            labelled.add(name)
    for threshold in THRESHOLDS:
        axes.axhline(threshold, color="gray", linestyle="--", linewidth=0.8)
        axes.annotate(
            f"MIG {threshold:g}",
            (0, threshold),
            xycoords=("axes fraction", "data"),
            xytext=(3, 2),
            textcoords="offset points",
            fontsize=8,
            color="gray",
        )
    axes.set_xlabel("training wall time (s, evaluations excluded)")
    axes.set_ylabel(f"MIG ({settings['mig_points']:,} fixed points)")
    axes.set_ylim(bottom=0)
    axes.set_xlim(left=0)
    axes.set_title(
        f"Time to disentangle: conv64 on dSprites, β = {settings['beta']:g}, "
        f"{settings['latent']} latents\n{settings['device']}",
        fontsize=10,
    )
    axes.legend(frameon=False, fontsize=9)
    figure.tight_layout()
    return figure


def seed_list(text: str) -> list[int]:
    try:
        seeds = list(dict.fromkeys(int(part) for part in text.split(",") if part.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=positive_int, default=30_000, help="training steps per variant")
    parser.add_argument("--eval-every", type=positive_int, default=2000, help="steps between MIG evaluations")
    parser.add_argument(
        "--mig-points", type=positive_int, default=10_000, help="factor vectors in the fixed sample"
    )
    parser.add_argument("--variants", default="default", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--out", default="runs/time-to-disentangle", help="folder of the variants' run folders"
    )
    again = parser.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue runs that already exist (after an interruption, or to more --steps)",
    )
    again.add_argument(
        "--overwrite", action="store_true", help="delete variant run folders that already hold a run"
    )
    parser.add_argument("--seeds", type=seed_list, default=[0], help="comma-separated training seeds (0)")
    parser.add_argument("--latent", type=positive_int, default=10)
    parser.add_argument("--beta", type=float, default=4.0)
    args = parser.parse_args()

    names = list(dict.fromkeys(name.strip() for name in args.variants.split(",") if name.strip()))
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        parser.error(
            f"unknown variant {', '.join(unknown) or '(none given)'}; choose from: {', '.join(VARIANTS)}"
        )
    try:
        device = resolve_device(args.device)
    except BetaVAEError as error:
        parser.error(str(error))
    out = Path(args.out)
    base = base_config(args, device)
    runs = [
        (name, dataclasses.replace(base, seed=seed, out=str(out / f"{name}-s{seed}"), **VARIANTS[name]))
        for seed in args.seeds
        for name in names
    ]
    device_name = describe_device(device)
    settings = {
        "steps": args.steps,
        "eval_every": args.eval_every,
        "mig_points": args.mig_points,
        "seeds": args.seeds,
        "mig_sample_seed": MIG_SAMPLE_SEED,
        "latent": args.latent,
        "beta": args.beta,
        "arch": base.arch,
        "dataset": base.dataset,
        "device": device_name,
        "torch_version": torch.__version__,
    }
    to_resume: set[str] = set()  # the run folders to continue
    for _name, config in runs:
        run = RunDir(config.out)
        if not run.has_checkpoint():
            continue
        if args.overwrite:
            shutil.rmtree(run.path)
            if (out / STATE_FILE).exists():
                with SweepState(out) as state:
                    state.forget([run.path.name])  # a new run, not a finished one the sweep would skip
        elif not args.resume:
            parser.error(
                f"{run.path} already holds a run; pass --resume to continue it, --overwrite to replace it, "
                f"or choose another --out"
            )
        else:
            try:
                problem = resume_problem(run, config)
            except BetaVAEError as error:
                problem = str(error)
            if problem is not None:
                parser.error(problem)
            to_resume.add(config.out)

    dataset = base.load_dataset()
    factor_names = tuple(dataset.factor_names)
    print(
        f"torch {torch.__version__}, {device_name}; conv64 on dSprites, β = {args.beta:g}, "
        f"{args.latent} latents, "
        f"{args.steps:,} steps, MIG on {args.mig_points:,} fixed points every {args.eval_every:,} steps; "
        f"seeds {', '.join(map(str, args.seeds))}",
        flush=True,
    )

    skipped = {
        config.out: f"no bfloat16 arithmetic on this {device.type}"
        for _, config in runs
        if config.precision == "bf16" and not bf16_supported(device)
    }
    points = [
        GridPoint(Path(config.out).name, {"variant": name, "seed": config.seed}, config)
        for name, config in runs
        if config.out not in skipped
    ]
    for name, config in runs:
        if config.out in to_resume:
            checkpoint = RunDir(config.out).load_checkpoint(mmap=True)
            print(
                f"{name:<9} s{config.seed:<3} resumed at step {int(checkpoint['step']):,}, "
                f"{checkpoint.get('train_seconds', 0.0):.1f} s of training",
                flush=True,
            )
    interrupted = False
    try:  # one run at a time, each with every core: the times compare runs, not how they shared the machine
        run_sweep(GridSpec(), out, BackendOptions(workers=1), points=points)
    except SweepInterrupted:
        interrupted = True
    except BetaVAEError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    with SweepState(out) as state:
        rows = {row["name"]: row for row in state.rows()}
    results: list[dict[str, Any]] = []
    for name, config in runs:
        if config.out in skipped:
            print(f"{name:<9} skipped: {skipped[config.out]}", flush=True)
            results.append(
                {
                    "variant": name,
                    "seed": config.seed,
                    "overrides": VARIANTS[name],
                    "batch_size": config.batch_size,
                    "lr": learning_rate(config.arch, config.lr),
                    "precision": config.precision,
                    "device": device_name,
                    "status": "skipped",
                    "note": skipped[config.out],
                    "evaluations": [],
                }
            )
            continue
        result = variant_result(name, config, rows.get(Path(config.out).name), device_name)
        results.append(result)
        if result["status"] != "done":
            print(f"{name:<9} {result['status']}: {result['note']}", flush=True)
    write_results(out, settings, results, factor_names)

    print_summary(results)
    print(f"results: {out / RESULTS_JSON}, {out / RESULTS_CSV}, {out / FIGURE_FILE}")
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
