"""The figures of a sweep: held-out loss against β_norm, score heatmaps, reconstructions per latent size.

A sweep trains a grid of β-VAE runs (β_norm × latent size × seeds, maybe other keys);
its result rows (one dict per run, ``None`` where a value is missing) become the figures
of the reproducibility report on Higgins et al. (β-VAE, ICLR 2017):

- ``loss_vs_beta_norm``: held-out loss against β_norm on a log axis, one line per latent
  size M, mean ± std over seeds, the plain VAE (β = 1, i.e. β_norm = M/N for N pixels)
  marked on each line (the report's Figure 2);
- ``heatmap_<metric>``: each disentanglement metric's headline score over β_norm × M,
  mean ± std over seeds in each cell (the report's Figure 4);
- ``recon_z<M>.png``: the same test images reconstructed by the runs of one latent size
  across β_norm (first seed), through :func:`~betavae.viz.reconstructions.compare_reconstructions`.

Standard deviations are over seeds with ``ddof=0``, as in :mod:`betavae.transfer`.
Figures are built as :class:`matplotlib.figure.Figure` objects (no pyplot state) so tests
can read them, and written atomically; the SVGs are byte-for-byte reproducible.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from betavae.errors import BetaVAEError
from betavae.files import claim_folder, make_folder
from betavae.metrics import METRICS
from betavae.metrics.settings import headline_column
from betavae.runs import RunDir
from betavae.studies.results import cut_off_note
from betavae.viz import save_figure

# The row key of each metric's headline score (metrics.settings.headline_column): what its heatmap shows.
HEADLINE_METRICS = {metric: headline_column(metric) for metric in METRICS}
LOSS_KEY = "test.loss"
FOLDER = "figures"
# The kind in the mark of a figures folder given as plot --out.
KIND = "betavae plot"
# The keys that place a run inside one set of figures; any other swept key gets a set of its own.
GRID_KEYS = ("beta", "beta_norm", "latent_dim", "seed")
RECON_IMAGES = 8



def plot_sweep(sweep_dir: str | Path, rows: Sequence[dict[str, Any]], swept: Sequence[str],
               out: str | Path | None = None, recon: bool = True) -> list[Path]:
    """Write the sweep's figures (PNG and SVG) into ``out`` (default ``SWEEP_DIR/figures``); return
    their paths.

    Only rows with status ``done`` are plotted. Swept keys other than β, β_norm, latent
    size and seed (a learning rate, say) get one set of figures per combination of their
    values, the combination in the file names (``heatmap_mig-lr0.001.png``) and titles.
    """
    sweep_dir = Path(sweep_dir)
    done = [row for row in rows if row.get("status") == "done"]
    if not done:
        counts = ", ".join(
            f"{n} {status}" for status, n in sorted(Counter(str(r.get("status")) for r in rows).items())
        )
        how = cut_off_note(rows, sweep_dir) or "run the sweep to the end, then plot again"
        raise BetaVAEError(
            f"nothing to plot in {sweep_dir}: no run has finished ({counts or 'no runs'}); {how}"
        )
    for row in done:
        for key in ("beta_norm", "latent_dim"):
            if row.get(key) is None:
                raise BetaVAEError(
                    f"run {row.get('run')} in {sweep_dir} has no {key}, which places it in the "
                    f"sweep's figures; check its config.toml, or train it again"
                )
    # The default folder lies in the sweep's own folder; another is the figures' alone (betavae.files).
    folder = (make_folder(sweep_dir / FOLDER, "figures folder") if out is None
              else claim_folder(out, KIND, what="figures folder"))
    other_keys = [key for key in swept if key not in GRID_KEYS]
    # β given raw is the same in every column of a latent size; β_norm is then a different value per size.
    column_key = "beta" if "beta" in swept and "beta_norm" not in swept else "beta_norm"
    written: list[Path] = []
    for combination, group in _combinations(done, other_keys).items():
        suffix = "".join(
            f"-{_file_part(key, value)}" for key, value in zip(other_keys, combination, strict=True)
        )
        title = _title(group, other_keys, combination)
        if any(row.get(LOSS_KEY) is not None for row in group):
            written += _save(loss_figure(group, title), folder / f"loss_vs_beta_norm{suffix}")
        for metric, score_key in HEADLINE_METRICS.items():
            if any(row.get(score_key) is not None for row in group):
                figure = heatmap_figure(group, score_key, METRICS[metric].label, title, column_key)
                written += _save(figure, folder / f"heatmap_{metric}{suffix}")
        if recon:
            written += _reconstructions(sweep_dir, group, column_key, folder, suffix)
    return written


def loss_figure(rows: Sequence[dict[str, Any]], title: str) -> Figure:
    """Held-out loss against β_norm (log axis), one line per latent size, β = 1 marked on each line.

    Points are means over seeds, with ± std error bars when a point has several seeds.
    β = 1 lies at β_norm = M/N (N pixels, recovered as β·M/β_norm from the line's rows)
    and is drawn on the line, interpolated in log β_norm, where it falls inside the
    line's range. A β_norm of 0 has no place on a log axis and is left out.
    """
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    axes = figure.subplots()
    cells = _cells(rows, "beta_norm", LOSS_KEY)
    colours = _colours(len({dim for dim, _ in cells}))
    beta_one_x, beta_one_y = [], []
    for colour, latent_dim in zip(colours, sorted({dim for dim, _ in cells}), strict=False):
        points = sorted(
            (x, values) for (dim, x), values in cells.items() if dim == latent_dim and x > 0 and values
        )
        if not points:
            continue
        x = np.array([point[0] for point in points])
        mean = np.array([np.mean(point[1]) for point in points])
        axes.plot(x, mean, color=colour, marker="o", markersize=5, linewidth=1.6, label=f"M = {latent_dim}")
        if max(len(point[1]) for point in points) > 1:
            std = np.array([np.std(point[1]) for point in points])
            axes.errorbar(x, mean, yerr=std, fmt="none", ecolor=colour, elinewidth=1.0, capsize=3)
        num_pixels = _num_pixels([row for row in rows if row["latent_dim"] == latent_dim])
        if num_pixels is not None and x[0] <= latent_dim / num_pixels <= x[-1]:
            beta_one_x.append(latent_dim / num_pixels)
            beta_one_y.append(float(np.interp(np.log(beta_one_x[-1]), np.log(x), mean)))
    if beta_one_x:
        axes.plot(
            beta_one_x,
            beta_one_y,
            linestyle="none",
            marker="*",
            markersize=15,
            color="black",
            markeredgecolor="white",
            markeredgewidth=0.8,
            zorder=3,
            label="β = 1",
        )
    axes.set_xscale("log")
    axes.set_xlabel("β_norm = β·M/N", fontsize=11)
    axes.set_ylabel("held-out loss: recon + β·KL per image", fontsize=11)
    axes.tick_params(labelsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=10, frameon=False)
    axes.set_title(f"held-out loss against β_norm\n{title}", fontsize=12)
    return figure


def heatmap_figure(
    rows: Sequence[dict[str, Any]], score_key: str, label: str, title: str, column_key: str = "beta_norm"
) -> Figure:
    """``score_key`` over ``column_key`` (columns, ascending) × latent size (rows, ascending, top to bottom).

    The colour is the mean over seeds; each cell reads "mean ± std" (the mean alone for
    one seed), in black or white, whichever stands out on the cell. A cell without a
    value is grey with "–".
    """
    cells = _cells(rows, column_key, score_key)
    columns = sorted({x for _, x in cells})
    latent_dims = sorted({dim for dim, _ in cells})
    mean = np.full((len(latent_dims), len(columns)), np.nan)
    for (dim, x), values in cells.items():
        if values:
            mean[latent_dims.index(dim), columns.index(x)] = np.mean(values)
    figure = Figure(figsize=(1.25 * len(columns) + 2.6, 0.7 * len(latent_dims) + 1.9), layout="constrained")
    axes = figure.subplots()
    colour_map = _colour_map()
    norm = Normalize(np.nanmin(mean), np.nanmax(mean))  # some cell has a value: plot_sweep asks for one
    image = axes.imshow(np.ma.masked_invalid(mean), cmap=colour_map, norm=norm, aspect="auto")
    for (dim, x), values in sorted(cells.items()):
        i, j = latent_dims.index(dim), columns.index(x)
        if values:
            text = (
                f"{np.mean(values):.2f}"
                if len(values) == 1
                else f"{np.mean(values):.2f} ± {np.std(values):.2f}"
            )
            red, green, blue, _ = colour_map(norm(mean[i, j]))
            colour = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
        else:
            text, colour = "–", "gray"
        axes.text(j, i, text, ha="center", va="center", color=colour, fontsize=9)
    axes.set_xticks(range(len(columns)), [f"{x:g}" for x in columns])
    axes.set_yticks(range(len(latent_dims)), [str(dim) for dim in latent_dims])
    axes.tick_params(labelsize=10)
    axes.set_xlabel("β_norm" if column_key == "beta_norm" else "β", fontsize=11)
    axes.set_ylabel("latent size M", fontsize=11)
    colour_bar = figure.colorbar(image, ax=axes)
    colour_bar.set_label(f"{label} (mean over seeds)", fontsize=10)
    axes.set_title(f"{label}\n{title}", fontsize=12)
    return figure


def _cells(
    rows: Sequence[dict[str, Any]], column_key: str, value_key: str
) -> dict[tuple[int, float], list[float]]:
    """Per (latent size, column value): the non-missing values of ``value_key`` over seeds."""
    cells: dict[tuple[int, float], list[float]] = {}
    for row in rows:
        values = cells.setdefault((row["latent_dim"], row[column_key]), [])
        if row.get(value_key) is not None:
            values.append(float(row[value_key]))
    return cells


def _num_pixels(rows: Sequence[dict[str, Any]]) -> float | None:
    """N from β_norm = β·M/N, read off any row with both β and β_norm positive."""
    for row in rows:
        if row.get("beta") and row["beta_norm"]:
            return row["beta"] * row["latent_dim"] / row["beta_norm"]
    return None


def _combinations(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[tuple, list[dict[str, Any]]]:
    """The rows grouped by their values of ``keys`` (one group of all rows when there are none), sorted."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(key) for key in keys), []).append(row)
    return dict(
        sorted(
            groups.items(), key=lambda item: [(value is None, str(type(value)), value) for value in item[0]]
        )
    )


def _title(rows: Sequence[dict[str, Any]], keys: Sequence[str], combination: tuple) -> str:
    """ "shapes · conv28 · 2,000 steps", then the combination's values ("lr = 0.001")."""
    parts = []
    for key in ("dataset", "arch", "steps"):
        values = sorted({row.get(key) for row in rows if row.get(key) is not None}, key=str)
        if values:
            text = " / ".join(f"{v:,}" if key == "steps" else str(v) for v in values)
            parts.append(f"{text} steps" if key == "steps" else text)
    parts += [f"{key} = {_compact(value)}" for key, value in zip(keys, combination, strict=True)]
    return " · ".join(parts)


def _compact(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _file_part(key: str, value: Any) -> str:
    """``lr0.001`` for a number, ``recon_gaussian`` for a name: safe in a file name."""
    text = _compact(value) if isinstance(value, (int, float)) else f"_{value}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{key}{text}")


def _colours(count: int) -> list:
    from matplotlib import colormaps

    return list(colormaps["viridis"](np.linspace(0.0, 0.85, max(count, 1))))


def _colour_map():
    from matplotlib import colormaps

    return colormaps["viridis"].with_extremes(bad="#e8e8e8")


def _save(figure: Figure, stem: Path) -> list[Path]:
    """``stem``.png and ``stem``.svg, each written atomically; the SVG's text stays text."""
    return [save_figure(figure, stem.with_name(stem.name + suffix), dpi=150) for suffix in (".png", ".svg")]


def _reconstructions(
    sweep_dir: Path, rows: Sequence[dict[str, Any]], column_key: str, folder: Path, suffix: str
) -> list[Path]:
    """Per latent size: the first seed's runs across ``column_key``, those with a checkpoint, side by side."""
    from betavae.viz.reconstructions import compare_reconstructions

    written = []
    for latent_dim, same_size in itertools.groupby(
        sorted(rows, key=lambda row: row["latent_dim"]), key=lambda row: row["latent_dim"]
    ):
        same_size = list(same_size)
        first_seed = min((row.get("seed") for row in same_size), key=lambda seed: (seed is None, seed or 0))
        runs = sorted(
            (row for row in same_size if row.get("seed") == first_seed), key=lambda row: row[column_key]
        )
        run_dirs = [sweep_dir / row["run"] for row in runs if RunDir(sweep_dir / row["run"]).has_checkpoint()]
        if run_dirs:
            written.append(
                compare_reconstructions(
                    run_dirs, n=RECON_IMAGES, out=folder / f"recon_z{latent_dim}{suffix}.png"
                )
            )
    return written
