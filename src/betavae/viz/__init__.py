"""Figures made from run folders."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from betavae.files import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SVG_SETTINGS = {"svg.fonttype": "none", "svg.hashsalt": "betavae"}
"""matplotlib settings for every SVG betavae writes: text stays text (searchable and
selectable), and the ids of clip paths and markers, random otherwise, come from a fixed
salt, so that the same figure is written as the same bytes."""

FIGURE_FORMATS = ("png", "svg")


def save_figure(figure: Figure, path: str | Path, dpi: float | None = None) -> Path:
    """Write ``figure`` atomically to ``path``, as PNG or SVG by its suffix; return the path.

    The one way betavae saves a matplotlib figure: SVGs get :data:`SVG_SETTINGS` and no
    date, so the same figure is the same bytes. The figure is drawn by its own canvas
    (build it as ``matplotlib.figure.Figure``, not with pyplot), so no backend is chosen
    and no global state changes.
    """
    from matplotlib import rc_context

    path = Path(path)
    format = path.suffix.lstrip(".").lower()
    if format not in FIGURE_FORMATS:
        raise ValueError(f"figures are written as .{' or .'.join(FIGURE_FORMATS)}, not {path.name}")
    buffer = io.BytesIO()
    with rc_context(SVG_SETTINGS):
        figure.savefig(buffer, format=format, dpi=dpi, metadata={"Date": None} if format == "svg" else None)
    atomic_write_bytes(path, buffer.getvalue())
    return path
