"""Time to disentangle: the training wall time at which a β-VAE's MIG first reaches 0.1 and 0.2.

Throughput (``benchmarks/train_throughput.py``) says how fast a step is; this says how fast a run
gets somewhere. Each variant trains conv64 (β = 4, 10 latents) on dSprites, and every
``--eval-every`` steps training measures its MIG (Chen et al. 2018; ``TrainConfig.eval``) on one
fixed sample of ``--mig-points`` factor vectors, the same in every variant and seed, so the curves
differ by the model alone. The clock is training's: seconds since ``train()`` began, less those
spent evaluating. The variants change one setting (learning rate, batch size, precision); runs of
one seed share the initial weights. One seed decides nothing (whether MIG takes off early varies
more between seeds than between learning rates; Locatello et al. 2019), so ``--seeds`` trains each
variant once per seed, seed by seed, and the summary adds each variant's seeds up. ``× first`` is
a run's time to the highest threshold over that of the first variant of its seed, in this
invocation. β-VAE's successors are compared by ``benchmarks/objectives_dsprites.py``.

    python benchmarks/time_to_disentangle.py [--variants default,lr5e-4,batch256] [--seeds 0,1,2]
        [--steps 30000] [--eval-every 2000] [--mig-points 10000] [--device auto]
        [--out runs/time-to-disentangle] [--resume | --overwrite]

``--out`` is a sweep folder (:mod:`betavae.studies.sweep`) whose grid is the named variants × the
seeds, run one at a time with every core into run folders ``<variant>-s<seed>``. A run already
there is refused unless ``--resume`` (continue it after Ctrl-C, a kill, or to more ``--steps``;
its clock goes on from its checkpoint, and an evaluation a kill cut short is made first) or
``--overwrite`` (start it again). Beside the runs go ``time_to_disentangle.json`` (with the sums
over seeds), ``.csv`` (one row per evaluation) and ``.svg`` (MIG against wall time), of this
invocation's runs, also when it was interrupted.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from betavae.data.dsprites import FACTOR_NAMES
from betavae.device import resolve_device
from betavae.errors import BetaVAEError
from betavae.files import atomic_write_text
from betavae.models import learning_rate
from betavae.runs import RunDir
from betavae.studies.grid import GridPoint, GridSpec, build_spec, expand_grid, parse_flag_values
from betavae.studies.state import SweepState
from betavae.studies.sweep import BackendOptions, SweepInterrupted, held_runs, run_sweep
from betavae.training.performance import bf16_supported
from betavae.viz import save_figure

THRESHOLDS = ("0.1", "0.2")
MIG_SAMPLE_SEED = 0  # the eval_seed of every run: MIG measured on one sample of factor vectors
# Not results.json/.csv: those are the sweep's own table of the same folder (betavae results).
RESULTS_JSON, RESULTS_CSV, FIGURE_FILE = (f"time_to_disentangle.{end}" for end in ("json", "csv", "svg"))
# The named variants: what each sets over the settings every run shares (grid), one family each.
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
# The training keys the flags set, as the sweep engine's refusals name them.
FLAGS = {"steps": "--steps", "eval_every": "--eval-every", "eval_n_train": "--mig-points",
         "latent_dim": "--latent", "beta": "--beta", "device": "--device", "seed": "--seeds",
         "test_size": "--test-size"}


def grid(args: argparse.Namespace, device: torch.device, variants: Sequence[str]) -> GridSpec:
    """The sweep of ``variants`` × ``--seeds``: dSprites, conv64, β, latent size, MIG on the fixed sample."""
    training = {"dataset": "dsprites", "arch": "conv64", "latent_dim": args.latent, "beta": args.beta,
                "steps": args.steps, "device": str(device), "checkpoint_every": args.eval_every,
                "log_every": min(100, args.eval_every), "eval": ["mig"], "eval_every": args.eval_every,
                "eval_n_train": args.mig_points, "eval_seed": MIG_SAMPLE_SEED,
                "seed": list(dict.fromkeys(parse_flag_values(args.seeds, "--seeds"))),
                "variants": [{"name": name, **VARIANTS[name]} for name in variants]}
    if args.test_size is not None:  # else dSprites' own (10,000), as runs made before the flag recorded it
        training["test_size"] = args.test_size
    return build_spec(training, {}, source="time_to_disentangle", names=FLAGS)


def run_result(point: GridPoint, row: dict[str, Any] | None, device: str) -> dict[str, Any]:
    """A run's line of the results: its settings, what the sweep's state says of it, its evaluations
    (through :meth:`RunDir.during_training`; ``wall_s`` is the training clock's seconds).

    A diverged run is a result, not a crash; an interrupted one keeps its clock and evaluations up
    to its last checkpoint, so ``--resume`` goes on from there.
    """
    config, run, name = point.config, RunDir(point.config.out), point.values["variant"]
    result: dict[str, Any] = {
        "variant": name, "seed": config.seed, "overrides": VARIANTS[name], "batch_size": config.batch_size,
        "lr": learning_rate(config.arch, config.lr), "precision": config.precision, "run": config.out,
        "device": device, "status": row["status"] if row else "queued", "note": "", "test": None}
    if result["status"] == "done":
        result["test"] = row["result"]["test"]
    elif result["status"] == "failed":
        result["status"] = "diverged" if "training diverged" in (row["error"] or "") else "failed"
        result["note"] = row["error"]
    else:  # stopped by Ctrl-C before it finished (or before it began)
        step = run.checkpoint_step() if run.has_checkpoint() else 0
        result["status"] = "interrupted"
        result["note"] = f"at step {step:,}/{config.steps:,}; continue with the same command and --resume"
    evaluations = result["evaluations"] = [
        {"step": entry["step"], "wall_s": entry["train_seconds"], "images": entry["images"],
         "eval_s": entry["eval_seconds"], **entry["mig"]}
        for entry in run.during_training().get("entries", [])]
    scored = [record["mig"] for record in evaluations if record["mig"] is not None]  # None: MIG was NaN
    first = {t: next((r for r in evaluations if (r["mig"] or 0) >= float(t)), None) for t in THRESHOLDS}
    result["reached"] = {t: r and {"step": r["step"], "wall_s": r["wall_s"]} for t, r in first.items()}
    result["final_mig"] = evaluations[-1]["mig"] if evaluations else None
    result["best_mig"] = max(scored) if scored else None
    return result


def over_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A variant's runs added up: seeds reaching each threshold and their median time, mean MIG and loss."""
    def mean(values: list[float | None]) -> float | None:
        present = [value for value in values if value is not None]
        return float(np.mean(present)) if present else None

    summary: dict[str, Any] = {"seeds": len(runs)}
    for threshold in THRESHOLDS:
        times = [run["reached"][threshold]["wall_s"] for run in runs if run["reached"][threshold]]
        summary[f"reached_{threshold}"] = len(times)
        summary[f"median_s_{threshold}"] = float(np.median(times)) if times else None
    summary["mean_final_mig"] = mean([run["final_mig"] for run in runs])
    summary["mean_best_mig"] = mean([run["best_mig"] for run in runs])
    summary["mean_test_loss"] = mean([run["test"] and run["test"]["loss"] for run in runs])
    return summary


def cell(value: float | None, places: int = 3) -> str:
    return "-" if value is None else f"{value:.{places}f}"


def print_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> None:
    """Columns as wide as their widest cell: the first left-aligned, the others right-aligned."""
    widths = [max(map(len, column)) for column in zip(header, *lines, strict=True)]
    for line in (header, *lines):
        print("  ".join(text.rjust(width) if column else text.ljust(width)
                        for column, (text, width) in enumerate(zip(line, widths, strict=True))).rstrip())


def print_summary(results: list[dict[str, Any]], summaries: dict[str, dict[str, Any]]) -> None:
    """One row per run, then (with several seeds) one row per variant over its seeds."""
    last, lines = THRESHOLDS[-1], []
    for result in results:
        reached, latest = result["reached"], (result["evaluations"] or [None])[-1]
        first = next(r for r in results if r["seed"] == result["seed"])["reached"][last]  # the seed's first
        crossings = [text for t in THRESHOLDS for text in (
            (cell(reached[t]["wall_s"], 1), str(reached[t]["step"])) if reached[t] else ("not reached", "-"))]
        lines.append([result["variant"], str(result["seed"]), str(result["batch_size"]), f"{result['lr']:g}",
                      result["precision"], *crossings,
                      cell(first and reached[last] and reached[last]["wall_s"] / first["wall_s"], 2),
                      cell(result["final_mig"]), cell(result["best_mig"]),
                      cell(result["test"] and result["test"]["loss"], 2),
                      cell(latest and latest["images"] / latest["wall_s"], 0),
                      result["device"] + ("" if result["status"] == "done" else f"  ({result['status']})")])
    print()
    crossings = [header for t in THRESHOLDS for header in (f"MIG≥{t} s", "step")]
    print_table(["variant", "seed", "batch", "lr", "prec", *crossings, "× first", "final MIG", "best MIG",
                 "test loss", "img/s", "device"], lines)
    print(f"times: seconds of training (evaluations excluded); × first: time to MIG {last} over that of the "
          f"first variant with the same seed, measured in this run")
    if len({result["seed"] for result in results}) > 1:
        lr = {result["variant"]: f"{result['lr']:g}" for result in results}
        print("\nover seeds (means over seeds)")
        print_table(["variant", "seeds", "lr", *(h for t in THRESHOLDS for h in (f"MIG≥{t}", "median s")),
                     "final MIG", "best MIG", "test loss"],
                    [[name, str(s["seeds"]), lr[name], *(text for t in THRESHOLDS for text in (
                        f"{s[f'reached_{t}']}/{s['seeds']}", cell(s[f"median_s_{t}"], 1))),
                      cell(s["mean_final_mig"]), cell(s["mean_best_mig"]), cell(s["mean_test_loss"], 2)]
                     for name, s in summaries.items()])


def write_results(out: Path, document: dict[str, Any]) -> None:
    """The JSON (everything), the CSV (one row per evaluation) and the figure, each written atomically."""
    atomic_write_text(out / RESULTS_JSON, json.dumps(document, indent=2) + "\n")
    columns = ["variant", "seed", "batch_size", "lr", "precision", "step", "wall_s", "images", "eval_s",
               "mig", *(f"mig_{factor}" for factor in FACTOR_NAMES)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({**run, **record} for run in document["variants"] for record in run["evaluations"])
    atomic_write_text(out / RESULTS_CSV, buffer.getvalue())
    save_figure(mig_figure(document["settings"], document["variants"]), out / FIGURE_FILE)


def mig_figure(settings: dict[str, Any], results: list[dict[str, Any]]) -> Figure:
    """MIG against training wall time, one colour per variant and one line per seed, the thresholds dashed."""
    figure = Figure(figsize=(7.0, 4.2))
    axes = figure.subplots()
    colours = {name: f"C{index}" for index, name in enumerate(dict.fromkeys(r["variant"] for r in results))}
    for result in (result for result in results if result["evaluations"]):
        name, evaluations = result["variant"], result["evaluations"]
        migs = [np.nan if r["mig"] is None else r["mig"] for r in evaluations]  # None: MIG was NaN
        labelled = name in axes.get_legend_handles_labels()[1]
        axes.plot([r["wall_s"] for r in evaluations], migs, marker="o", markersize=3, linewidth=1.2,
                  color=colours[name], label=None if labelled else name)
    for threshold in map(float, THRESHOLDS):
        axes.axhline(threshold, color="gray", linestyle="--", linewidth=0.8)
        axes.annotate(f"MIG {threshold:g}", (0, threshold), xycoords=("axes fraction", "data"), xytext=(3, 2),
                      textcoords="offset points", fontsize=8, color="gray")
    axes.set(xlabel="training wall time (s, evaluations excluded)",
             ylabel=f"MIG ({settings['mig_points']:,} fixed points)", xlim=(0, None), ylim=(0, None))
    axes.set_title(f"Time to disentangle: conv64 on dSprites, β = {settings['beta']:g}, {settings['latent']} "
                   f"latents\n{settings['device']}", fontsize=10)
    axes.legend(frameon=False, fontsize=9)
    figure.tight_layout()
    return figure


def positive_int(text: str) -> int:
    if int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return int(text)


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--steps", type=positive_int, default=30_000, help="training steps per variant")
    add("--eval-every", type=positive_int, default=2000, help="steps between MIG evaluations")
    add("--mig-points", type=positive_int, default=10_000, help="factor vectors in the fixed sample")
    add("--variants", default="default", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    add("--device", default="auto")
    add("--out", default="runs/time-to-disentangle", help="folder of the variants' run folders")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue runs that already exist (after an interruption, or to more --steps)")
    again.add_argument("--overwrite", action="store_true", help="delete variant run folders that hold a run")
    add("--seeds", default="0", help="comma-separated training seeds (0)")
    add("--test-size", type=positive_int, default=None,
        help="held-out images of the final loss (default: dSprites' 10,000)")
    add("--latent", type=positive_int, default=10)
    add("--beta", type=float, default=4.0)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments()
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(name.strip() for name in args.variants.split(",") if name.strip()))
    if not names or not set(names) <= set(VARIANTS):
        unknown = ", ".join(name for name in names if name not in VARIANTS) or "(none given)"
        parser.error(f"unknown variant {unknown}; choose from: {', '.join(VARIANTS)}")
    try:
        device, out = resolve_device(args.device), Path(args.out)
        skipped = {name: f"no bfloat16 arithmetic on this {device.type}" for name in names
                   if VARIANTS[name].get("precision") == "bf16" and not bf16_supported(device)}
        if len(skipped) == len(names):
            raise BetaVAEError(f"no variant of {', '.join(names)} runs here: {skipped[names[0]]}")
        spec = grid(args, device, [name for name in names if name not in skipped])
        held = held_runs(spec, out, FLAGS) if not args.overwrite else []
    except BetaVAEError as error:
        parser.error(str(error))
    if held and not (args.resume or args.overwrite):
        parser.error(f"{held[0].config.out} already holds a run; pass --resume to continue it, --overwrite "
                     f"to replace it, or choose another --out")
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"{device.type}, {torch.get_num_threads()} threads")
    print(f"torch {torch.__version__}, {device_name}; conv64 on dSprites, β = {args.beta:g}, {args.latent} "
          f"latents, {args.steps:,} steps, MIG on {args.mig_points:,} fixed points every {args.eval_every:,} "
          f"steps; seeds {', '.join(map(str, spec.seeds))}", flush=True)
    for name, why in skipped.items():
        print(f"{name} skipped: {why}", flush=True)
    for point in held if args.resume else []:
        checkpoint = RunDir(point.config.out).load_checkpoint(mmap=True)
        print(f"{point.name} resumed at step {int(checkpoint['step']):,}, "
              f"{checkpoint.get('train_seconds', 0.0):.1f} s of training", flush=True)
    interrupted = False
    try:  # one run at a time, each with every core: the times compare runs, not how they shared the machine
        run_sweep(spec, out, BackendOptions(workers=1), names=FLAGS, replace=args.overwrite)
    except SweepInterrupted:
        interrupted = True
    except BetaVAEError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    with SweepState(out) as state:
        rows = {row["name"]: row for row in state.rows()}
    results = [run_result(point, rows.get(point.name), device_name) for point in expand_grid(spec, out)]
    for result in (result for result in results if result["status"] != "done"):
        print(f"{result['variant']} s{result['seed']} {result['status']}: {result['note']}", flush=True)
    summaries = {name: over_seeds([r for r in results if r["variant"] == name])
                 for name in dict.fromkeys(result["variant"] for result in results)}
    settings = {"steps": args.steps, "eval_every": args.eval_every, "mig_points": args.mig_points,
                "seeds": spec.seeds, "mig_sample_seed": MIG_SAMPLE_SEED, "latent": args.latent,
                "beta": args.beta, "arch": "conv64", "dataset": "dsprites", "test_size": args.test_size,
                "device": device_name,
                "torch_version": torch.__version__, "skipped": skipped}
    write_results(out, {"settings": settings, "variants": results, "over_seeds": summaries})
    print_summary(results, summaries)
    print(f"results: {out / RESULTS_JSON}, {out / RESULTS_CSV}, {out / FIGURE_FILE}")
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
