"""MIG and FactorVAE score of each objective on dSprites, over seeds, at one training budget.

The runs are one sweep (:func:`betavae.studies.sweep.run_sweep`) of named variants × seeds,
since the objectives' settings are not a product of lists: ``beta`` at β = 1 (the plain VAE) and
β = 4, ``capacity`` (Burgess et al.'s γ = 1000, C_max = 25 nats, C rising over the whole
run), ``beta_tc`` (Chen et al.'s β = 6 on dSprites) and ``factor`` (Kim & Mnih's γ = 35),
conv64 with 10 latents, each measured at the end with MIG and the FactorVAE score on one
sample drawn with ``--metric-seed``. Stopped and started again, it continues: finished runs
are kept, cut-off ones resume from their checkpoints.

Prints a table (mean ± standard deviation over seeds) and writes it, with every run's
numbers, to ``OUT/objectives_dsprites.md`` and ``.json``.

    python benchmarks/objectives_dsprites.py --steps 3000 --seeds 0,1 --out runs/objectives-dsprites
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch

from betavae.errors import BetaVAEError
from betavae.metrics.settings import headline_value
from betavae.studies.grid import GridSpec, build_spec, expand_grid, parse_flag_values
from betavae.studies.state import SweepState
from betavae.studies.sweep import BackendOptions, SweepInterrupted, run_sweep

# The objectives compared and their settings: each paper's own for dSprites where it gave one.
VARIANTS: dict[str, dict[str, Any]] = {
    "vae": {"objective": "beta", "beta": 1.0},
    "beta4": {"objective": "beta", "beta": 4.0},
    "capacity": {"objective": "capacity", "capacity_gamma": 1000.0, "capacity_max": 25.0},
    "beta_tc": {"objective": "beta_tc", "beta": 6.0},
    "factor": {"objective": "factor", "factor_gamma": 35.0},
}
METRICS = ("mig", "factor_vae")


def grid(args: argparse.Namespace) -> GridSpec:
    """Each objective of :data:`VARIANTS` × ``--seeds``: conv64, 10 latents, dSprites, scored at the end."""
    training = {"dataset": "dsprites", "arch": "conv64", "latent_dim": 10, "steps": args.steps,
                "batch_size": 64, "checkpoint_every": max(args.steps // 4, 1), "log_every": 100,
                "variants": [{"name": name, **settings} for name, settings in VARIANTS.items()]}
    options = {"seeds": parse_flag_values(args.seeds, "--seeds"), "metrics": list(METRICS),
               "metric_seed": args.metric_seed, "n_train": args.n_train, "n_eval": args.n_eval}
    return build_spec(training, options, source="objectives_dsprites")


def spread(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"  # sample std over seeds


def table(results: list[dict[str, Any]]) -> str:
    # Reconstruction, not the loss: each objective's loss holds other terms (and β-TCVAE's MWS estimate
    # a constant), so only the reconstruction term compares across objectives.
    lines = ["| objective | settings | MIG | FactorVAE score | held-out reconstruction | runs |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for name, settings in VARIANTS.items():
        runs = [r for r in results if r["variant"] == name and r["status"] == "done"]
        shown = ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
                          for key, value in settings.items())
        cells = [spread([r[metric] for r in runs if r[metric] is not None]) for metric in METRICS]
        recon = spread([r["recon"] for r in runs])
        lines.append(f"| {name} | {shown} | {cells[0]} | {cells[1]} | {recon} | {len(runs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    parser.add_argument("--workers", type=int, default=None, help="runs at once  [default: one per core]")
    parser.add_argument("--n-train", type=int, default=2000, help="training points of both metrics")
    parser.add_argument("--n-eval", type=int, default=1000, help="evaluation points of both metrics")
    parser.add_argument("--metric-seed", type=int, default=0)
    parser.add_argument("--out", default="runs/objectives-dsprites")
    args = parser.parse_args()
    out = Path(args.out)
    try:
        spec = grid(args)
    except BetaVAEError as error:
        parser.error(str(error))
    workers = args.workers or "default"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {workers} workers; conv64 on "
          f"dSprites, {args.steps:,} steps, seeds {args.seeds}; metrics on {args.n_train:,} + "
          f"{args.n_eval:,} points", flush=True)
    try:
        run_sweep(spec, out, BackendOptions(workers=args.workers))
    except SweepInterrupted as stop:
        parser.exit(130, f"{stop}\n")
    with SweepState(out) as state:
        rows = {row["name"]: row for row in state.rows()}
    results = []
    for point in expand_grid(spec, out):
        row = rows[point.name]
        result = row["result"] or {}
        metrics = result.get("metrics", {})
        results.append({**point.values, "status": row["status"],
                        "loss": (result.get("test") or {}).get("loss"),
                        "recon": (result.get("test") or {}).get("recon"),
                        **{metric: headline_value(metric, metrics.get(metric) or {}) for metric in METRICS},
                        "images_per_s": result.get("images_per_s")})
    text = table(results)
    print(text)
    command = (f"python benchmarks/objectives_dsprites.py --steps {args.steps} --seeds {args.seeds} "
               f"--n-train {args.n_train} --n-eval {args.n_eval} --metric-seed {args.metric_seed}")
    (out / "objectives_dsprites.md").write_text(f"{command}\n\n{text}\n")
    (out / "objectives_dsprites.json").write_text(json.dumps({"command": command, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
