"""The paper's dSprites table (Higgins et al. 2017, Fig. 6) with the paper's network, at a study scale.

What the study's baselines table holds for dSprites at that scale, on its own and printed as the
Markdown table of docs/notes/paper-baselines-protocol.md: the paper's network (``fc``) trained at
β = 1 and β = 4 over seeds (the study's ``dsprites/compare-fc`` sweep), the baselines over metric
seeds (the ground-truth factors added: the paper's ceiling), each scored by the reference's protocol
(``beta_vae``) and by the paper's (``beta_vae_paper``), beside the paper's numbers. It resumes like any
sweep; the baselines are kept in the user's cache as the study keeps them.

    python tools/paper_table.py --scale medium --seeds 3 --out runs/paper-table
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from betavae.studies.sweep import BackendOptions, run_sweep
from betavae.study import stats
from betavae.study.design import (
    PAPER_BETA,
    PAPER_METRIC,
    PAPER_NET_BASELINE,
    PAPER_NET_SWEEP,
    PAPER_SCORES,
    PARTS,
    SCORE_METRIC,
    scale_of,
)
from betavae.study.runner import baseline_scores, rows_of, sweep_spec

# The table's rows, in the paper's order: (label, the paper's number, where ours comes from).
ROWS = (
    ("ground truth", "100 %", ("baseline", "factors")),
    (f"β-VAE (β = {PAPER_BETA:g}), fc", PAPER_SCORES["beta_vae"], ("run", PAPER_BETA)),
    ("PCA", PAPER_SCORES["pca"], ("baseline", "pca")),
    ("VAE (β = 1), fc", PAPER_SCORES["vae"], ("run", 1.0)),
    ("raw pixels", PAPER_SCORES["pixels"], ("baseline", "pixels")),
    ("ICA", PAPER_SCORES["ica"], ("baseline", "ica")),
    ("VAE untrained, fc", PAPER_SCORES["untrained"], ("baseline", PAPER_NET_BASELINE)),
)


def spread(values: list[float]) -> str:
    """``0.953 ± 0.031 (3)``: the mean and the half-width of its 90 % Student t interval, the count."""
    if not values:
        return "—"
    if len(values) < 2 or max(values) == min(values):
        return f"{np.mean(values):.3f} ({len(values)})"
    return f"{np.mean(values):.3f} ± {stats.half_width(values):.3f} ({len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--seeds", type=int, default=None, help="training seeds (default: the scale's)")
    parser.add_argument("--out", default="runs/paper-table")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    scale = scale_of(args.scale)
    if args.seeds is not None:
        scale = dataclasses.replace(scale, seeds=args.seeds)
    part, out = PARTS["dsprites"], Path(args.out)
    started = time.perf_counter()
    run_sweep(sweep_spec(part, PAPER_NET_SWEEP, scale), out / PAPER_NET_SWEEP,
              BackendOptions(workers=args.workers), progress=True)
    trained = time.perf_counter() - started
    runs = rows_of(out / PAPER_NET_SWEEP, part.compare_recon)
    baselines = {name: [baseline_scores(part, name, seed, scale) for seed in range(scale.baseline_seeds)]
                 for _, _, (kind, name) in ROWS if kind == "baseline"}
    untrained = [row["run"] for row in runs if not row["trained"]] or "none"
    print(f"\n{args.scale} settings, {scale.seeds} training seeds, {scale.baseline_seeds} metric seeds for "
          f"the baselines; trained in {trained / 60:.0f} min, {time.perf_counter() - started:.0f} s in all; "
          f"runs not trained: {untrained}\n")
    print(f"| representation | paper | ours, reference ({SCORE_METRIC}) "
          f"| ours, paper's protocol ({PAPER_METRIC}) |")
    print("| --- | --- | --- | --- |")
    for label, paper, (kind, which) in ROWS:
        cells = []
        for metric in (SCORE_METRIC, PAPER_METRIC):
            if kind == "baseline":
                values = [scores[metric] for scores in baselines[which] if scores.get(metric) is not None]
            else:
                column = f"{metric}.eval_accuracy"
                values = [row[column] for row in runs if row["beta"] == which and row.get(column) is not None]
            cells.append(spread(values))
        print(f"| {label} | {paper} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
