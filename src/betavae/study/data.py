"""The study's results as data: ``study.json``, which the interactive poster draws (:mod:`betavae.poster`).

The report lays the study out as text and pictures; the poster draws its figures in the page from
numbers, so a reader can open any run behind a heatmap cell. Both must show the same study, so this
file is written by the same call that writes the report (:func:`betavae.study.study_report.
write_study_report`), from the same claims and rows, and ``betavae poster DIR`` reads it back instead
of measuring again.

What it holds: the scale and the command, the verdict rule, every claim (its columns, its parts, and
the sweeps of each part that decide it, which the poster links to), and per part of the study its
grid's settings, every finished run of each of its sweeps (the sweep's result row: setting, seed,
held-out loss, headline scores, whether it trained, its sharpness where measured) and its baselines
table (label, the paper's number, each metric's samples, and which runs a trained row stands for).
Numbers that are not finite are written as null: JSON has no NaN, and a browser's parser refuses one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from betavae.files import atomic_write_text
from betavae.metrics.settings import headline_column
from betavae.study.design import (
    FIGURES_SWEEP,
    LMSE_SWEEP,
    PAPER_BETA,
    PAPER_NET_SWEEP,
    SUCCESSORS_FOLDER,
    Measured,
    Part,
    Scale,
)
from betavae.study.report import ClaimRow

STUDY_FILE = "study.json"
# The layout of study.json; raised when a key changes meaning, so that a reader can refuse an old one.
FORMAT = 1
# The held-out losses a run's row carries, which the poster's Figure 2 offers (the first is the report's).
LOSSES = {"test.loss": "held-out loss", "test.recon": "reconstruction term", "test.kl": "KL (nats)"}
# The baselines table's rows that stand for trained runs: row name → (sweep, β of its runs).
TRAINED_ROWS = {"vae": ("compare", 1.0), "beta_vae": ("compare", PAPER_BETA),
                "vae_fc": (PAPER_NET_SWEEP, 1.0), "beta_vae_fc": (PAPER_NET_SWEEP, PAPER_BETA)}


def study_data(scale: Scale, parts: Sequence[Part], measured: Measured, claims: Sequence[ClaimRow],
               baselines: Mapping[str, list[dict[str, Any]]], command: str, rule: str) -> dict[str, Any]:
    """``study.json``'s content: the claims with the sweeps deciding them, and each part's runs and tables.

    ``baselines``: each part's baselines table in the report's order, a row per representation:
    ``{"name", "label", "paper" (the paper's number or None), "scores" (metric → samples)}``.
    """
    folders = [part.folder for part in parts]
    return _finite({
        "format": FORMAT,
        "scale": scale.name,
        "scale_text": scale.why,
        "command": command,
        "rule": rule,
        "claims": [_claim(row, folders) for row in claims],
        "parts": [_part(part, scale, measured, baselines.get(part.folder, [])) for part in parts],
    })


def write_study_data(out: Path, data: Mapping[str, Any]) -> Path:
    """Write ``out/study.json`` atomically; return its path."""
    path = Path(out) / STUDY_FILE
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def deciding_sweep(number: int | str) -> str:
    """The sweep whose runs decide claim ``number``: the β = 1 / β = 4 comparison for claims 3 (β-VAE
    against VAE) and 7 (transfer), the baselines table for 8, the β_norm × latent-size grid for the rest."""
    return {"3": "compare", "7": "compare", "8": "baselines"}.get(str(number), "grid")


def _claim(row: ClaimRow, folders: Sequence[str]) -> dict[str, Any]:
    # A claim's parts are named after the part folder they measure ("shapes recon/log β_norm"); a claim
    # judged on no part (nothing measured) decides on no run.
    named = {part.name.split(" ", 1)[0] for part in row.parts}
    return {
        "number": str(row.number), "claim": row.claim, "paper": row.paper,
        "reproducibility_report": row.reproducibility_report, "ours": row.ours, "verdict": row.verdict,
        "why": row.why,
        "parts": [{"name": part.name, "expected": part.expected, "ours": part.ours, "verdict": part.verdict,
                   "why": part.why} for part in row.parts],
        "decided_by": [{"part": folder, "sweep": deciding_sweep(row.number)}
                       for folder in folders if folder in named],
    }


def _part(part: Part, scale: Scale, measured: Measured, baselines: list[dict[str, Any]]) -> dict[str, Any]:
    folder = part.folder
    metrics = list(scale.metrics_of(part)) if part.factors else []
    sweeps: dict[str, list[dict[str, Any]]] = {
        "grid": with_sharpness(measured.grid.get(folder, []), measured.blur.get(folder, [])),
        "compare": measured.compare.get(folder, []),
    }
    optional = {FIGURES_SWEEP: measured.figure_runs, LMSE_SWEEP: measured.lmse,
                PAPER_NET_SWEEP: measured.paper_net}
    for sweep, rows in optional.items():
        if folder in rows:
            sweeps[sweep] = rows[folder]
    if folder in measured.lmse_blur:
        sweeps[LMSE_SWEEP] = with_sharpness(sweeps[LMSE_SWEEP], measured.lmse_blur[folder])
    for objective, rows in measured.successors.get(folder, {}).items():
        sweeps[f"{SUCCESSORS_FOLDER}/{objective}"] = rows
    return {
        "folder": folder, "dataset": part.dataset, "arch": part.arch, "factors": part.factors,
        "recon": part.recon, "beta_norms": list(scale.beta_norms), "latent_dims": list(scale.latent_dims),
        "metrics": {metric: headline_column(metric) for metric in metrics},
        "losses": LOSSES, "sweeps": sweeps, "baselines": [_with_runs(row, sweeps) for row in baselines],
    }


def _with_runs(row: Mapping[str, Any], sweeps: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A row of the baselines table with, for a row of trained models, the sweep and runs it stands for
    (which the poster opens when the row is clicked)."""
    sweep, beta = TRAINED_ROWS.get(row["name"], (f"{SUCCESSORS_FOLDER}/{row['name']}", None))
    runs = [run["run"] for run in sweeps.get(sweep, []) if beta is None or run["beta"] == beta]
    return {**row, "sweep": sweep if runs else None, "runs": runs}


def with_sharpness(rows: Sequence[Mapping[str, Any]],
                   blur: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each row with its run's ``sharpness`` (the ``ratio`` of its cell in ``blur``: reconstructions'
    high-frequency share over the inputs'), None where it was not measured."""
    ratio = {cell["run"]: cell.get("ratio") for cell in blur}
    return [{**row, "sharpness": ratio.get(row["run"])} for row in rows]


def _finite(value: Any) -> Any:
    """``value`` with every float that is not finite replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
