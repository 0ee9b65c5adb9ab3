"""A study grid swept with packed runs (``--pack K``) against the same grid swept run by run.

The grid is the ``small`` scale's heart-set grid as ``betavae reproduce`` sweeps it
(``betavae.study.design``: conv28 on ``shapes_heart``, squared error, batch 64, its steps,
β_norm 0.002 / 0.02 / 0.2 × latent sizes 5 and 50, the scale's metrics and sizes), over
``--seeds`` seeds. It is swept twice, side by side in one run of this script, on the
local backend with the same workers: run by run (``--pack 1``, the default), and with up to
``--pack`` runs of one latent size trained together as one vectorised network
(:mod:`betavae.studies.packing`). For each it prints the wall seconds, the training images
per wall-second, and the sweep state's per-run timings (steps, the rest of ``train()``,
metrics); then packed's rate over run by run's. Packing is the study's default only where
this measures it faster (docs/notes/sweep-throughput.md, "Packed training").

    python benchmarks/packed_sweep.py [--seeds 1] [--pack 3] [--steps 600] [--workers N] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from betavae.studies.grid import GridSpec
from betavae.studies.local import available_cores
from betavae.studies.state import SweepState
from betavae.studies.sweep import BackendOptions, run_sweep
from betavae.study.design import PARTS, SCALES
from betavae.study.runner import sweep_spec


def study_grid(seeds: int, steps: int | None, device: str) -> GridSpec:
    """The small scale's heart-set grid as the study sweeps it (its metrics included), over ``seeds``."""
    spec = sweep_spec(PARTS["shapes"], "grid", SCALES["small"])
    spec.seeds = list(range(seeds))
    spec.fixed.update(device=device, **({"steps": steps} if steps else {}))
    return spec


def swept(spec, out: Path, options: BackendOptions) -> tuple[float, list[dict]]:
    """Wall seconds of the sweep, and each run's timings from its state."""
    start = time.perf_counter()
    summary = run_sweep(spec, out, options, progress=False)
    seconds = time.perf_counter() - start
    assert summary.counts["done"] == sum(summary.counts.values()), summary
    with SweepState(out) as state:
        return seconds, [row["result"]["timings"] for row in state.rows()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1, help="seeds of each setting (runs: 6 × seeds)")
    parser.add_argument("--pack", type=int, default=3, help="runs to a pack (3: a row over β)")
    parser.add_argument("--steps", type=int, help="steps of each run  [default: the small scale's, 600]")
    parser.add_argument("--workers", type=int, help="runs (or packs) at once  [default: the sweep's]")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args()

    spec = study_grid(args.seeds, args.steps, args.device)
    runs = 6 * args.seeds
    steps = spec.fixed["steps"]
    images = runs * steps * spec.fixed["batch_size"]
    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}, {available_cores()} cores, device {device}; the small study's heart "
          f"grid: {runs} runs of {steps} steps ({images:,} training images), "
          f"metrics {', '.join(spec.metrics)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="packed-sweep-") as folder:
        for label, pack in (("run by run", 1), (f"packed, up to {args.pack}", args.pack)):
            seconds, timings = swept(spec, Path(folder) / f"pack{pack}", BackendOptions(workers=args.workers,
                                                                                    pack=pack))
            results.append((label, seconds, timings))
    print(f"{'':<20} {'wall s':>8} {'img/wall-s':>11} {'steps s/run':>12} {'rest of train() s':>18} "
          f"{'metrics s':>10}")
    for label, seconds, timings in results:
        def median(key: str, timings=timings) -> float:
            return statistics.median(t.get(key) or 0.0 for t in timings)

        print(f"{label:<20} {seconds:>8.1f} {images / seconds:>11.0f} {median('steps'):>12.2f} "
              f"{median('outside_steps'):>18.2f} {median('metrics'):>10.2f}")
    ratio = results[0][1] / results[1][1]
    print(f"packed over run by run: {ratio:.2f}× the training images per wall-second "
          f"({'faster' if ratio > 1 else 'not faster'}: packing is the default only where it is faster)")


if __name__ == "__main__":
    main()
