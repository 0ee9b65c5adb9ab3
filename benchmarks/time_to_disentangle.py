"""Time to disentangle: the training wall time at which a β-VAE's MIG first reaches 0.1 and 0.2.

Throughput (``benchmarks/train_throughput.py``) says how fast a step is; this says how
fast a run gets somewhere. Each variant trains conv64 with β = 4 and 10 latent
dimensions on dSprites, and every ``--eval-every`` steps measures its Mutual Information
Gap (Chen et al. 2018) on one fixed sample of ``--mig-points`` factor vectors: the same
points at every evaluation, in every variant and for every seed, so the curves differ by
the model alone. The clock is training's: seconds since the run's ``train()`` call
began, less the seconds spent evaluating. It includes setup and checkpoint writing,
which every real run pays too.

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

Each run trains into its own run folder inside ``--out``, ``<variant>-s<seed>``, and
keeps its clock and evaluations there (``time_to_disentangle.json``, rewritten at every
evaluation). A folder that already holds a run is refused unless ``--resume`` (continue
it from its checkpoint: after Ctrl-C or a kill, or to more ``--steps``; its clock goes
on from the training seconds it had reached, and an evaluation the kill cut short is
made first) or ``--overwrite`` (delete it and start again) is given. Beside the runs go
``results.json`` (with the sums over seeds), ``results.csv`` (one row per evaluation)
and ``time_to_disentangle.svg`` (MIG against wall time), describing the runs of this
invocation; they are rewritten after each run, so an interrupted benchmark keeps what
it finished.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from betavae import metrics
from betavae.config import TrainConfig
from betavae.data.base import FactorDataset
from betavae.device import resolve_device
from betavae.errors import BetaVAEError
from betavae.models import learning_rate
from betavae.performance import bf16_supported
from betavae.runs import RunDir, atomic_write_bytes, atomic_write_text, load_model
from betavae.train import TrainingDiverged, TrainingInterrupted, train

THRESHOLDS = (0.1, 0.2)
MIG_SAMPLE_SEED = 0  # the factor vectors MIG is measured on: one sample for every run
FIGURE_FILE = "time_to_disentangle.svg"
RECORD_FILE = "time_to_disentangle.json"  # in each run folder: its clock and evaluations
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
    """The settings every run shares: dSprites, conv64, β, latent size, steps, evaluation interval."""
    return TrainConfig(dataset="dsprites", arch="conv64", latent_dim=args.latent, beta=args.beta, steps=args.steps,
                       device=str(device), checkpoint_every=args.eval_every,
                       log_every=min(100, args.eval_every))


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type}, {torch.get_num_threads()} threads"


class MIGClock:
    """The ``on_checkpoint`` hook: MIG on a fixed sample, timed on a clock that excludes evaluating.

    ``record`` (see :func:`new_record`) holds the clock and the evaluations and is written
    to ``record_path`` in the run folder twice per checkpoint, before evaluating (the
    clock, marked as evaluating) and after (with the evaluation), so a run continued with
    ``--resume`` goes on from the training seconds it had reached and knows whether a
    kill cut an evaluation short. Call :meth:`start` just before ``train()``; each
    evaluation is appended to :attr:`evaluations` and passed to ``report``.
    """

    def __init__(self, dataset: FactorDataset, num_points: int, seed: int, batch_size: int,
                 device: torch.device, report: Callable[[dict[str, Any]], None],
                 record: dict[str, Any], record_path: Path) -> None:
        self.dataset, self.num_points, self.seed = dataset, num_points, seed
        self.batch_size, self.device, self.report = batch_size, device, report
        self.record, self.record_path = record, record_path
        self.evaluations: list[dict[str, Any]] = record["evaluations"]
        self.started = time.perf_counter()
        self.evaluating_seconds = 0.0

    def start(self) -> None:
        """Start counting, from the training seconds the record's clock had reached."""
        self.started = time.perf_counter() - self.record["clock"]["wall_s"]
        self.evaluating_seconds = 0.0

    def wall(self) -> float:
        """Seconds of training so far (in every invocation that trained this run)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # training's queued work belongs to training's time
        return time.perf_counter() - self.started - self.evaluating_seconds

    def __call__(self, step: int, model: torch.nn.Module) -> None:
        self.set_clock(step, self.wall(), evaluating=True)
        self.evaluate(step, model)

    def evaluate(self, step: int, model: torch.nn.Module) -> None:
        """MIG of ``model`` after ``step`` steps, at the clock's time, appended and saved."""
        began = time.perf_counter()
        rng = np.random.default_rng(self.seed)  # a fresh generator: the same factor vectors every time
        scores = metrics.mig(self.dataset, metrics.model_representation(model), rng, num_train=self.num_points)
        seconds = time.perf_counter() - began
        self.evaluating_seconds += seconds
        evaluation = {"step": step, "wall_s": self.record["clock"]["wall_s"], "images": step * self.batch_size,
                      "eval_s": seconds, **scores}
        self.evaluations.append(evaluation)
        self.set_clock(step, evaluation["wall_s"], evaluating=False)
        self.report(evaluation)

    def set_clock(self, step: int, wall_s: float, evaluating: bool) -> None:
        """Record that ``step`` steps took ``wall_s`` seconds of training, and save the record."""
        self.record["clock"] = {"step": step, "wall_s": wall_s, "evaluating": evaluating}
        atomic_write_text(self.record_path, json.dumps(self.record, indent=2) + "\n")


def new_record(settings: dict[str, Any]) -> dict[str, Any]:
    """A run's record before its first step: what its MIG is measured on, a clock at zero, no evaluations."""
    return {"mig_points": settings["mig_points"], "mig_sample_seed": settings["mig_sample_seed"],
            "devices": [settings["device"]], "clock": {"step": 0, "wall_s": 0.0, "evaluating": False},
            "evaluations": []}


def read_record(run: RunDir, settings: dict[str, Any]) -> dict[str, Any]:
    """The record of a run to resume; a clear error if it has none or measured MIG on other points."""
    path = run.path / RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise BetaVAEError(f"{run.path} holds a run without this benchmark's {RECORD_FILE}; "
                           f"pass --overwrite to replace it, or choose another --out") from None
    except (OSError, ValueError) as error:
        raise BetaVAEError(f"{path} cannot be read ({error}); pass --overwrite to start the run again") from None
    for key in ("mig_points", "mig_sample_seed"):
        if record.get(key) != settings[key]:
            raise BetaVAEError(f"{run.path} measured MIG with {key} {record.get(key)}, not {settings[key]}; "
                               f"resume it with the same setting, or pass --overwrite")
    if settings["device"] not in record["devices"]:
        record["devices"].append(settings["device"])
    return record


def resume_clock(clock: MIGClock, run: RunDir, eval_every: int) -> int:
    """Ready ``clock`` to continue ``run``; return the step its checkpoint had reached.

    The evaluation of the checkpoint is made here if it is due and missing (a kill during
    the evaluation, or an interruption that saved the checkpoint at an evaluation step).
    """
    saved = run.read_config()
    checkpoint_step = int(run.load_checkpoint()["step"])
    clock_step = clock.record["clock"]["step"]
    if clock_step != checkpoint_step:  # killed between writing the checkpoint and the record
        tqdm.write(f"{run.path.name}: steps {clock_step}-{checkpoint_step} were not timed; "
                   f"its times from here on are short by their seconds")
        clock.record["clock"]["step"] = checkpoint_step
    evaluated = {evaluation["step"] for evaluation in clock.evaluations}
    due = checkpoint_step % eval_every == 0 or checkpoint_step == saved.steps
    if checkpoint_step and due and checkpoint_step not in evaluated:
        clock.evaluate(checkpoint_step, load_model(run, clock.device))
    return checkpoint_step


def first_reached(evaluations: list[dict[str, Any]], threshold: float) -> dict[str, Any] | None:
    """The first evaluation whose MIG is at least ``threshold`` (its step and wall time), or None."""
    for record in evaluations:
        if record["mig"] >= threshold:
            return {"step": record["step"], "wall_s": record["wall_s"]}
    return None


def summarise(result: dict[str, Any]) -> None:
    """Add the thresholds' first crossings and the final and best MIG to a variant's result."""
    evaluations = result["evaluations"]
    result["reached"] = {f"{threshold:g}": first_reached(evaluations, threshold) for threshold in THRESHOLDS}
    result["final_mig"] = evaluations[-1]["mig"] if evaluations else None
    result["best_mig"] = max(record["mig"] for record in evaluations) if evaluations else None


def run_variant(name: str, config: TrainConfig, clock: MIGClock, resume: bool) -> dict[str, Any]:
    """Train (or continue) one variant with the clock as its checkpoint hook.

    A diverged run is a result, not a crash; an interrupted one saves its clock at its
    last checkpoint, so ``--resume`` goes on from there.
    """
    result = {"variant": name, "seed": config.seed, "overrides": VARIANTS[name], "batch_size": config.batch_size,
              "lr": learning_rate(config.arch, config.lr), "precision": config.precision, "run": config.out,
              "device": " + ".join(clock.record["devices"]), "status": "done", "note": "",
              "evaluations": clock.evaluations, "test": None}
    clock.start()
    try:
        trained = train(config, resume=resume, on_checkpoint=clock)
        result["test"] = {key: value for key, value in trained.test.items() if key != "kl_per_dim"}
    except TrainingDiverged as error:
        result["status"], result["note"] = "diverged", str(error)
    except TrainingInterrupted:
        checkpoint_step = int(RunDir(config.out).load_checkpoint()["step"])
        clock.set_clock(checkpoint_step, clock.wall(), evaluating=False)
        # Not train's advice (betavae train --resume), which would go on without the evaluations.
        result["status"] = "interrupted"
        result["note"] = (f"interrupted at step {checkpoint_step:,}/{config.steps:,}; continue with the same "
                          f"command and --resume")
    summarise(result)
    return result


def evaluation_line(name: str, seed: int, record: dict[str, Any], factor_names: tuple[str, ...]) -> str:
    factors = ", ".join(f"{factor} {record[f'mig_{factor}']:.2f}" for factor in factor_names)
    return (f"{name:<9} s{seed:<3} step {record['step']:>6}  {record['wall_s']:>8.1f} s  {record['images']:>10,} "
            f"images  MIG {record['mig']:.3f}  ({factors})  eval {record['eval_s']:.1f} s")


def number(value: float | None, width: int, places: int) -> str:
    """A table cell: ``value`` right-aligned, or a dash where there is none."""
    return f"{value:>{width}.{places}f}" if value is not None else f"{'-':>{width}}"


def print_summary(results: list[dict[str, Any]]) -> None:
    """One row per run, then (with several seeds) one row per variant over its seeds."""
    last = f"{THRESHOLDS[-1]:g}"
    crossings = "".join(f" {f'MIG≥{t:g} s':>11} {'step':>6}" for t in THRESHOLDS)
    print(f"\n{'variant':<9} {'seed':>4} {'batch':>5} {'lr':>7} {'prec':>4}{crossings} {'× first':>7} "
          f"{'final MIG':>9} {'best MIG':>8} {'test loss':>9} {'img/s':>6}  device")
    for result in results:
        head = (f"{result['variant']:<9} {result['seed']:>4} {result['batch_size']:>5} {result['lr']:>7g} "
                f"{result['precision']:>4}")
        if result["status"] == "skipped":
            print(f"{head}  skipped: {result['note']}")
            continue
        reference = next(r["reached"][last] for r in results
                         if r["seed"] == result["seed"] and r["status"] != "skipped")
        cells = ""
        for threshold in THRESHOLDS:
            reached = result["reached"][f"{threshold:g}"]
            cells += (f" {reached['wall_s']:>11.1f} {reached['step']:>6}" if reached
                      else f" {'not reached':>11} {'-':>6}")
        reached = result["reached"][last]
        ratio = f"{reached['wall_s'] / reference['wall_s']:>7.2f}" if reached and reference else f"{'-':>7}"
        evaluations = result["evaluations"]
        final_mig, best_mig = number(result["final_mig"], 9, 3), number(result["best_mig"], 8, 3)
        loss = number(result["test"]["loss"] if result["test"] else None, 9, 2)
        rate = f"{evaluations[-1]['images'] / evaluations[-1]['wall_s']:>6.0f}" if evaluations else f"{'-':>6}"
        status = "" if result["status"] == "done" else f"  ({result['status']})"
        print(f"{head}{cells} {ratio} {final_mig} {best_mig} {loss} {rate}  {result['device']}{status}")
    print(f"times: seconds of training (evaluations excluded); × first: time to MIG {last} over that of the "
          f"first variant with the same seed, measured in this run")
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
    scored = [run for run in runs if run["evaluations"]]
    tested = [run["test"]["loss"] for run in runs if run["test"]]
    summary: dict[str, Any] = {"seeds": len(runs)}
    for threshold in THRESHOLDS:
        times = [run["reached"][f"{threshold:g}"]["wall_s"] for run in runs if run["reached"][f"{threshold:g}"]]
        summary[f"reached_{threshold:g}"] = len(times)
        summary[f"median_s_{threshold:g}"] = float(np.median(times)) if times else None
    summary["mean_final_mig"] = float(np.mean([run["final_mig"] for run in scored])) if scored else None
    summary["mean_best_mig"] = float(np.mean([run["best_mig"] for run in scored])) if scored else None
    summary["mean_test_loss"] = float(np.mean(tested)) if tested else None
    return summary


def print_over_seeds(results: list[dict[str, Any]]) -> None:
    crossings = "".join(f" {f'MIG≥{t:g}':>8} {'median s':>8}" for t in THRESHOLDS)
    print(f"\nover seeds\n{'variant':<9} {'seeds':>5} {'lr':>7}{crossings} {'final MIG':>9} {'best MIG':>8} "
          f"{'test loss':>9}   (mean over seeds)")
    for name, runs in runs_by_variant(results).items():
        if not runs:
            continue
        summary = over_seeds(runs)
        cells = "".join(f" {summary[f'reached_{t:g}']:>4}/{len(runs):<3} {number(summary[f'median_s_{t:g}'], 8, 1)}"
                        for t in THRESHOLDS)
        print(f"{name:<9} {len(runs):>5} {runs[0]['lr']:>7g}{cells} {number(summary['mean_final_mig'], 9, 3)} "
              f"{number(summary['mean_best_mig'], 8, 3)} {number(summary['mean_test_loss'], 9, 2)}")


def write_results(out: Path, settings: dict[str, Any], results: list[dict[str, Any]],
                  factor_names: tuple[str, ...]) -> None:
    """``results.json`` (everything), ``results.csv`` (one row per evaluation) and the figure, each atomically."""
    seeds = {name: over_seeds(runs) for name, runs in runs_by_variant(results).items()}
    atomic_write_text(out / "results.json",
                      json.dumps({"settings": settings, "variants": results, "over_seeds": seeds}, indent=2) + "\n")
    columns = ["variant", "seed", "batch_size", "lr", "precision", "step", "wall_s", "images", "eval_s", "mig",
               *(f"mig_{factor}" for factor in factor_names)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for result in results:
        for record in result["evaluations"]:
            writer.writerow({**{key: result[key] for key in columns[:5]}, **record})
    atomic_write_text(out / "results.csv", buffer.getvalue())
    atomic_write_bytes(out / FIGURE_FILE, figure_svg(settings, results))


def figure_svg(settings: dict[str, Any], results: list[dict[str, Any]]) -> bytes:
    """MIG against training wall time, one colour per variant and one line per seed, the thresholds dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.0, 4.2))
    colours = {name: f"C{index}" for index, name in enumerate(dict.fromkeys(r["variant"] for r in results))}
    labelled: set[str] = set()
    for result in results:
        evaluations, name = result["evaluations"], result["variant"]
        if evaluations:
            axes.plot([r["wall_s"] for r in evaluations], [r["mig"] for r in evaluations], marker="o",
                      markersize=3, linewidth=1.2, color=colours[name], label=None if name in labelled else name)
            labelled.add(name)
    for threshold in THRESHOLDS:
        axes.axhline(threshold, color="gray", linestyle="--", linewidth=0.8)
        axes.annotate(f"MIG {threshold:g}", (0, threshold), xycoords=("axes fraction", "data"),
                      xytext=(3, 2), textcoords="offset points", fontsize=8, color="gray")
    axes.set_xlabel("training wall time (s, evaluations excluded)")
    axes.set_ylabel(f"MIG ({settings['mig_points']:,} fixed points)")
    axes.set_ylim(bottom=0)
    axes.set_xlim(left=0)
    axes.set_title(f"Time to disentangle: conv64 on dSprites, β = {settings['beta']:g}, "
                   f"{settings['latent']} latents\n{settings['device']}", fontsize=10)
    axes.legend(frameon=False, fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    with plt.rc_context({"svg.fonttype": "none"}):  # text stays text: searchable and selectable
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    return buffer.getvalue()


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=positive_int, default=30_000, help="training steps per variant")
    parser.add_argument("--eval-every", type=positive_int, default=2000, help="steps between MIG evaluations")
    parser.add_argument("--mig-points", type=positive_int, default=10_000, help="factor vectors in the fixed sample")
    parser.add_argument("--variants", default="default", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/time-to-disentangle", help="folder of the variants' run folders")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue runs that already exist (after an interruption, or to more --steps)")
    again.add_argument("--overwrite", action="store_true", help="delete variant run folders that already hold a run")
    parser.add_argument("--seeds", type=seed_list, default=[0], help="comma-separated training seeds (0)")
    parser.add_argument("--latent", type=positive_int, default=10)
    parser.add_argument("--beta", type=float, default=4.0)
    args = parser.parse_args()

    names = list(dict.fromkeys(name.strip() for name in args.variants.split(",") if name.strip()))
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        parser.error(f"unknown variant {', '.join(unknown) or '(none given)'}; choose from: {', '.join(VARIANTS)}")
    try:
        device = resolve_device(args.device)
    except BetaVAEError as error:
        parser.error(str(error))
    out = Path(args.out)
    base = base_config(args, device)
    runs = [(name, dataclasses.replace(base, seed=seed, out=str(out / f"{name}-s{seed}"), **VARIANTS[name]))
            for seed in args.seeds for name in names]
    device_name = describe_device(device)
    settings = {"steps": args.steps, "eval_every": args.eval_every, "mig_points": args.mig_points,
                "seeds": args.seeds, "mig_sample_seed": MIG_SAMPLE_SEED, "latent": args.latent, "beta": args.beta,
                "arch": base.arch, "dataset": base.dataset, "device": device_name, "torch_version": torch.__version__}
    records: dict[str, dict[str, Any]] = {}  # the runs to continue, by run folder
    for name, config in runs:
        run = RunDir(config.out)
        if not run.has_checkpoint():
            continue
        if args.overwrite:
            shutil.rmtree(run.path)
        elif not args.resume:
            parser.error(f"{run.path} already holds a run; pass --resume to continue it, --overwrite to replace it, "
                         f"or choose another --out")
        else:
            try:
                records[config.out] = read_record(run, settings)
                trained_steps = run.read_config().steps
            except BetaVAEError as error:
                parser.error(str(error))
            if trained_steps > args.steps:
                parser.error(f"{run.path} was trained for {trained_steps:,} steps, more than --steps {args.steps:,}")

    dataset = base.load_dataset()
    factor_names = tuple(dataset.factor_names)
    print(f"torch {torch.__version__}, {device_name}; conv64 on dSprites, β = {args.beta:g}, {args.latent} latents, "
          f"{args.steps:,} steps, MIG on {args.mig_points:,} fixed points every {args.eval_every:,} steps; "
          f"seeds {', '.join(map(str, args.seeds))}", flush=True)

    results: list[dict[str, Any]] = []
    for name, config in runs:
        if config.precision == "bf16" and not bf16_supported(device):
            note = f"no bfloat16 arithmetic on this {device.type}"
            print(f"{name:<9} skipped: {note}", flush=True)
            results.append({"variant": name, "seed": config.seed, "overrides": VARIANTS[name],
                            "batch_size": config.batch_size, "lr": learning_rate(config.arch, config.lr),
                            "precision": config.precision, "device": device_name, "status": "skipped", "note": note,
                            "evaluations": []})
            write_results(out, settings, results, factor_names)
            continue

        def report(record: dict[str, Any], name: str = name, seed: int = config.seed) -> None:
            tqdm.write(evaluation_line(name, seed, record, factor_names))
            sys.stdout.flush()

        resume = config.out in records
        record = records[config.out] if resume else new_record(settings)
        clock = MIGClock(dataset, args.mig_points, MIG_SAMPLE_SEED, config.batch_size, device, report,
                         record, Path(config.out) / RECORD_FILE)
        try:
            if resume:
                step = resume_clock(clock, RunDir(config.out), args.eval_every)
                tqdm.write(f"{name:<9} s{config.seed:<3} resumed at step {step:,}, "
                           f"{clock.record['clock']['wall_s']:.1f} s of training")
            else:
                Path(config.out).mkdir(parents=True, exist_ok=True)
            result = run_variant(name, config, clock, resume)
        except BetaVAEError as error:
            parser.exit(1, f"{parser.prog}: error: variant {name}: {error}\n")
        results.append(result)
        if result["status"] != "done":
            print(f"{name:<9} {result['status']}: {result['note']}", flush=True)
        write_results(out, settings, results, factor_names)
        if result["status"] == "interrupted":
            break

    print_summary(results)
    print(f"results: {out / 'results.json'}, {out / 'results.csv'}, {out / FIGURE_FILE}")
    if results and results[-1]["status"] == "interrupted":
        sys.exit(130)


if __name__ == "__main__":
    main()
