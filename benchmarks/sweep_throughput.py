"""Images/s of a small sweep: one run after another with all threads, against K runs at once,
locally and on Ray.

One grid (2 β_norm × 2 latent sizes × ``--seeds``, conv28 on Shapes, no metrics) is trained
three times, side by side in one run of this script:

- ``sequential``: :func:`betavae.training.loop.train` for each point in order, in this process,
  with torch on every core: what a user without ``betavae sweep`` would do.
- ``local K=…``: ``run_sweep`` on the local backend with its default K (one run per
  core, one thread each, on a CPU machine).
- ``ray K=…``: ``run_sweep`` on the Ray backend, a Ray instance started for the sweep,
  the same K and the same threads per run.

For each it prints the images trained over the wall seconds; the ratio of the local
backend to sequential against its target (≥ 1.15 on a 2-core machine: small convolutions
do not split well across threads, so K one-thread runs beat one K-thread run); and
Ray's overhead per run against the local backend, against its target (≤ 5 s: a fresh
worker process importing torch, scheduling, returning the result). Per run, the sweep's
state gives the seconds from its start to its result coming back to the driver
(``s/run``); ``outside train()`` is what of them the training clock its checkpoint keeps
does not count (process start, imports, scheduling, the result's return, and the same
held-out loss and figure on both backends), so Ray's minus the local backend's is the
overhead, free of the noise in the training itself. Ray's start-up is paid once per sweep.

    python benchmarks/sweep_throughput.py [--steps 1500] [--batch-size 64] [--seeds 1] [--no-ray]

The default length is that of short real runs: at a few hundred steps a run's fixed costs
(rendering the dataset, the held-out loss) are a large part of its time and hide the gain
(docs/notes/sweep-throughput.md).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from betavae.runs import RunDir
from betavae.studies.grid import build_spec, expand_grid
from betavae.studies.local import available_cores, default_workers, threads_per_worker
from betavae.studies.state import SweepState
from betavae.studies.sweep import BackendOptions, run_sweep
from betavae.training.loop import train

LOCAL_TARGET = 1.15  # local backend's images/s over sequential's, on a 2-core machine
RAY_OVERHEAD_TARGET_S = 5.0  # Ray's seconds per run beyond the local backend's


def grid(steps: int, batch_size: int, seeds: int):
    training = {
        "dataset": "shapes",
        "arch": "conv28",
        "steps": steps,
        "batch_size": batch_size,
        "test_size": 256,
        "checkpoint_every": steps,
        "log_every": max(1, steps // 5),
        "device": "cpu",
        "beta_norm": [0.01, 1.0],
        "latent_dim": [5, 10],
    }
    return build_spec(training, {"seeds": seeds})


def sequential(spec, out: Path) -> float:
    """Wall seconds of training every point in order in this process, torch on every core."""
    torch.set_num_threads(available_cores())
    start = time.perf_counter()
    for point in expand_grid(spec, out):
        train(point.config, progress=False)
    return time.perf_counter() - start


def swept(spec, out: Path, options: BackendOptions) -> tuple[float, dict]:
    """Wall seconds of ``run_sweep`` and, from its state, when it started each run and got its result back."""
    began = time.time()
    start = time.perf_counter()
    summary = run_sweep(spec, out, options, progress=False)
    seconds = time.perf_counter() - start
    assert summary.counts["done"] == sum(summary.counts.values()), summary
    with SweepState(out) as state:
        rows = state.rows()
    runs = [row["ended"] - row["started"] for row in rows]
    trained = [RunDir(out / row["name"]).load_checkpoint()["train_seconds"] for row in rows]
    first_start = min(row["started"] for row in rows) - began
    return seconds, {
        "run": statistics.mean(runs),
        "outside": statistics.mean(r - t for r, t in zip(runs, trained, strict=True)),
        "first_start": first_start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1500, help="training steps of each run")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=1, help="seeds per grid point (runs: 4 × seeds)")
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray backend")
    args = parser.parse_args()

    spec = grid(args.steps, args.batch_size, args.seeds)
    runs = 4 * args.seeds
    images = runs * args.steps * args.batch_size
    cores = available_cores()
    workers = min(default_workers(0, cores), runs)
    threads = threads_per_worker(workers, cores)
    print(
        f"torch {torch.__version__}, {cores} cores; {runs} runs of conv28 on Shapes, {args.steps} steps of "
        f"{args.batch_size} images each ({images:,} images); default K = {workers}, "
        f"{threads} thread(s) per run"
    )

    rows = []
    with tempfile.TemporaryDirectory(prefix="sweep-throughput-") as folder:
        folder = Path(folder)
        seconds = sequential(spec, folder / "sequential")
        rows.append((f"sequential, {cores} threads", seconds, None))
        seconds, local = swept(spec, folder / "local", BackendOptions("local"))
        rows.append((f"local K={workers}", seconds, local))
        ray = None
        if not args.no_ray:
            options = BackendOptions("ray", workers=workers, cpus_per_run=cores / workers)
            seconds, ray = swept(spec, folder / "ray", options)
            rows.append((f"ray K={workers}", seconds, ray))

    print(
        f"{'':<24} {'wall s':>7} {'img/s':>7} {'vs seq':>7} {'s/run':>7} {'outside train()':>16} "
        f"{'1st start s':>12}"
    )
    base = images / rows[0][1]
    for label, seconds, times in rows:
        rate = images / seconds
        extra = (
            f"{times['run']:>7.1f} {times['outside']:>16.1f} {times['first_start']:>12.1f}"
            if times
            else f"{'-':>7} {'-':>16} {'-':>12}"
        )
        print(f"{label:<24} {seconds:>7.1f} {rate:>7.0f} {rate / base:>6.2f}× {extra}")
    ratio = (images / rows[1][1]) / base
    print(
        f"local K={workers} over sequential: {ratio:.2f}× (target ≥ {LOCAL_TARGET}×: "
        f"{'met' if ratio >= LOCAL_TARGET else 'MISSED'})"
    )
    if ray is not None:
        overhead = ray["outside"] - local["outside"]
        print(
            f"ray overhead per run against local (outside train()): {overhead:+.1f} s (target ≤ "
            f"{RAY_OVERHEAD_TARGET_S:g} s: {'met' if overhead <= RAY_OVERHEAD_TARGET_S else 'MISSED'}); "
            f"s/run {ray['run'] - local['run']:+.1f} s; Ray's start-up, once per sweep: "
            f"{ray['first_start'] - local['first_start']:+.1f} s"
        )


if __name__ == "__main__":
    main()
