"""A sweep's results as a table: one row per run, from the sweep's state (``betavae results``).

Each row has the grid's keys (β always in both forms, raw and normalised, whichever was
swept; a run's variant and the keys variants set), the seed, the run's status, its held-out
loss terms and every value of every metric, flattened as ``<metric>.<value>`` (``mig.mig``,
``dci.completeness``). Written as ``results.csv`` (for spreadsheets and pandas) and
``results.json`` (with the grid) in the sweep folder, each atomically.

A run the state says is ``running`` while no sweep driver holds the folder is shown as
``cut off`` (its driver was killed: ``kill -9``, a reboot), with how to resume it.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
from pathlib import Path
from typing import Any

from betavae.errors import BetaVAEError
from betavae.files import atomic_write_text
from betavae.metrics import METRICS
from betavae.metrics.settings import headline_column
from betavae.studies.grid import GridSpec, point_names
from betavae.studies.state import STATE_FILE, SweepState, driver_running

CSV_FILE = "results.csv"
JSON_FILE = "results.json"
# The columns every row starts with, before the swept keys' and the results'.
LEADING = ("run", "status", "dataset", "arch", "steps", "latent_dim", "beta", "beta_norm", "seed")
# The status of a run marked running whose sweep driver is gone.
CUT_OFF = "cut off"


def open_state(sweep_dir: str | Path) -> SweepState:
    """The state of an existing sweep folder; a one-line error for a folder that holds no sweep."""
    path = Path(sweep_dir)
    if not (path / STATE_FILE).is_file():
        raise BetaVAEError(f"{path} is not a sweep folder (it has no {STATE_FILE}); "
                           f"make one with betavae sweep --out {path} …")
    return SweepState(path)


def result_rows(sweep_dir: str | Path) -> tuple[list[dict[str, Any]], GridSpec]:
    """Every run of the sweep in ``sweep_dir`` as a flat row, and the grid it was last started with.

    A run marked ``running`` has the status :data:`CUT_OFF` when no driver holds the folder.
    """
    with open_state(sweep_dir) as state:
        spec = state.spec() or GridSpec()
        stored = state.rows()
    cut_off = any(row["status"] == "running" for row in stored) and not driver_running(sweep_dir)
    variant_of = {name: variant["name"] for name, variant, _ in point_names(spec)} if spec.variants else {}
    rows = [_flatten(row, spec, cut_off, variant_of.get(row["name"])) for row in stored]
    return rows, spec


def cut_off_note(rows: list[dict[str, Any]], sweep_dir: str | Path) -> str | None:
    """The line saying how many of ``rows`` were cut off and how to resume them; None when none was."""
    count = sum(row["status"] == CUT_OFF for row in rows)
    if not count:
        return None
    runs, them = ("runs", "them") if count > 1 else ("run", "it")
    return (f"{count} {runs} cut off (the sweep running {them} was stopped); resume with betavae sweep "
            f"--out {shlex.quote(str(sweep_dir))}")


def _flatten(row: dict[str, Any], spec: GridSpec, cut_off: bool = False, variant: str | None = None
             ) -> dict[str, Any]:
    config, result = row["config"], row["result"] or {}
    derived = result.get("derived", {})
    status = CUT_OFF if cut_off and row["status"] == "running" else row["status"]
    flat: dict[str, Any] = {
        "run": row["name"], "status": status, "dataset": config["dataset"],
        "arch": derived.get("arch") or config.get("arch"), "steps": config["steps"],
        "latent_dim": config["latent_dim"], "beta": derived.get("beta", config.get("beta")),
        "beta_norm": derived.get("beta_norm", config.get("beta_norm")), "seed": config["seed"],
    }
    if spec.variants:
        flat["variant"] = variant
    for key in [*spec.swept, *spec.variant_keys()]:
        flat.setdefault(key, config.get(key))
    for key, value in result.get("test", {}).items():
        flat[f"test.{key}"] = value
    for metric, values in result.get("metrics", {}).items():
        for key, value in values.items():
            flat[f"{metric}.{key}"] = value
    flat["images_per_s"] = result.get("images_per_s")
    flat["attempts"] = row["attempts"]
    flat["error"] = row["error"]
    return flat


def write_results(sweep_dir: str | Path, rows: list[dict[str, Any]], spec: GridSpec) -> tuple[Path, Path]:
    """``results.csv`` and ``results.json`` of the sweep in ``sweep_dir`` (its :func:`result_rows`);
    their paths."""
    out = Path(sweep_dir)
    columns = list(dict.fromkeys([*LEADING, *spec.swept, *(key for row in rows for key in row)]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row.get(key) for key in columns})
    atomic_write_text(out / CSV_FILE, buffer.getvalue())
    atomic_write_text(
        out / JSON_FILE, json.dumps({"grid": spec.to_dict(), "runs": rows}, indent=2, allow_nan=False) + "\n"
    )
    return out / CSV_FILE, out / JSON_FILE


def format_table(rows: list[dict[str, Any]], spec: GridSpec) -> str:
    """The table ``betavae results`` prints: grid keys, seed, status, held-out loss terms, each
    metric's score."""
    keys = [key for key in spec.varied() if key != "seed"] or ["beta_norm"]
    if "beta" in keys and "beta_norm" not in keys:
        keys.append("beta_norm")  # β raw swept: show its normalised value too
    metrics = [
        metric for metric in METRICS if any(row.get(headline_column(metric)) is not None for row in rows)
    ]
    columns = [*keys, "seed", "status", "test.loss", "test.recon", "test.kl", *map(headline_column, metrics)]
    headers = [
        column.removesuffix(".eval_accuracy").removesuffix(".mig").removesuffix(".sap").replace("test.", "")
        for column in columns
    ]
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max(len(header), *(len(line[index]) for line in cells)) if cells else len(header)
        for index, header in enumerate(headers)
    ]
    lines = ["  ".join(header.rjust(width) for header, width in zip(headers, widths, strict=True))]
    lines += [
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) for line in cells
    ]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
