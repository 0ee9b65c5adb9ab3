"""Latent traversals: decode a code while one dimension sweeps a range, the others held fixed.

The figure of Higgins et al. (β-VAE, ICLR 2017, Fig. 1–2): each row changes one latent
dimension from ``-2.5`` to ``2.5`` (about ±2.5 prior standard deviations) around a base
code, so a disentangled dimension shows one factor (position, scale, …) changing along
its row while everything else stays put. Rows are sorted by the dimension's average KL
on the held-out set (``metrics.json``, section ``test``): the most informative first, the
collapsed ones (KL ≈ 0, decoded images that do not change) last.

Images are upscaled by an integer factor with nearest-neighbour sampling, never blurred.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from betavae.checks import comma_separated
from betavae.errors import BetaVAEError
from betavae.files import atomic_write_bytes
from betavae.models import BetaVAE
from betavae.runs import RunDir, load_model
from betavae.viz.grid import column_grid, label_font, save_png

PNG_FILE = "traversal.png"
GIF_FILE = "traversal.gif"

# A dimension is *active* when its average KL on the held-out set exceeds this many nats.
# Collapsed dimensions sit at 0.001 or below (the posterior equals the prior), while the
# dimensions a trained model uses carry 0.5 nats or more; 0.05 separates the two with room
# on both sides (``runs/quickstart-shapes``: three dims at 1.2–2.1, seven below 0.0015).
ACTIVE_KL = 0.05

# Width of the label column left of the rows: fits "z99  KL 999.99" at 11 px.
LABEL_WIDTH = 96
# Pixels between cells, as in column_grid.
GAP = 2
# Milliseconds each GIF frame is shown: a sweep of 11 values there and back in 2 s.
GIF_FRAME_MS = 100
AROUND_FORMS = "mean, zero or sample:K (K a test-image number)"


def active_dims(kl_per_dim: Sequence[float], threshold: float = ACTIVE_KL) -> list[int]:
    """The dimensions whose average KL exceeds ``threshold`` nats, most informative first.

    Falls back to every dimension (still by KL) when none is active, so a figure of a
    collapsed model still shows something instead of nothing.
    """
    chosen = [d for d, kl in enumerate(kl_per_dim) if kl > threshold]
    return order_by_kl(chosen or range(len(kl_per_dim)), kl_per_dim)


def order_by_kl(dims: Sequence[int], kl_per_dim: Sequence[float]) -> list[int]:
    """``dims`` sorted by decreasing average KL (ties keep the dimension order)."""
    return sorted(dims, key=lambda d: -kl_per_dim[d])


def parse_dims(dims: str | Sequence[int], kl_per_dim: Sequence[float]) -> list[int]:
    """``"all"``, ``"active"``, ``"0,3"`` or a list of ints → dimensions, most informative first."""
    latent_dim = len(kl_per_dim)
    if isinstance(dims, str):
        text = dims.strip()
        if text == "all":
            return order_by_kl(range(latent_dim), kl_per_dim)
        if text == "active":
            return active_dims(kl_per_dim)
        # Read like every list option (an empty item is refused); nothing at all: no dimension given.
        items: Sequence[object] = comma_separated(text, "--dims") if text.replace(",", "").strip() else []
    else:
        items = list(dims)
    chosen: list[int] = []
    for item in items:
        try:
            if isinstance(item, (float, bool)):
                raise ValueError
            dim = int(item)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise BetaVAEError(f"latent dimension {item!r} is not an integer; give 'all', 'active' "
                               f"or numbers from 0 to {latent_dim - 1} like '0,3'") from None
        if not 0 <= dim < latent_dim:
            raise BetaVAEError(f"latent dimension {dim} does not exist; this model has dimensions "
                               f"0 to {latent_dim - 1}")
        if dim not in chosen:
            chosen.append(dim)
    if not chosen:
        raise BetaVAEError(f"no latent dimension given; give 'all', 'active' or numbers from 0 to "
                           f"{latent_dim - 1} like '0,3'")
    return order_by_kl(chosen, kl_per_dim)


def parse_around(around: str) -> int | None:
    """``"zero"`` → None (the origin); ``"mean"`` → 0 and ``"sample:K"`` → K: which seeded test image's μ."""
    text = around.strip()
    if text == "zero":
        return None
    if text == "mean":
        return 0
    if text.startswith("sample:"):
        number = text.removeprefix("sample:").strip()
        if number.isdigit():
            return int(number)
    raise BetaVAEError(f"cannot traverse around {around!r}; give one of: {AROUND_FORMS}")


def traversal_codes(
    model: BetaVAE, base_code: torch.Tensor, dims: Sequence[int], values: np.ndarray
) -> torch.Tensor:
    """Codes ``(len(dims) * len(values), M)``: row ``i * len(values) + j`` is ``base_code`` with
    dimension ``dims[i]`` set to ``values[j]``, on the model's device."""
    device = next(model.parameters()).device
    base = torch.as_tensor(base_code, dtype=torch.float32, device=device).reshape(-1)
    if base.numel() != model.latent_dim:
        raise ValueError(
            f"base code has {base.numel()} values, the model's latent size is {model.latent_dim}"
        )
    sweep = torch.as_tensor(np.asarray(values), dtype=torch.float32, device=device)
    codes = base.repeat(len(dims), len(sweep), 1)
    for i, dim in enumerate(dims):
        codes[i, :, dim] = sweep
    return codes.reshape(-1, model.latent_dim)


def cell_scale(height: int) -> int:
    """The integer upscaling that shows an image about 112 px tall (28 px → 4, 64 px → 2)."""
    return max(1, round(112 / height))


def row_label(dim: int, kl: float) -> str:
    return f"z{dim}  KL {kl:.2f}"


def held_out_kl(run: RunDir, latent_dim: int) -> list[float]:
    """The average KL of each latent dimension on the held-out set, from ``metrics.json``.

    Only a KL of the weights in the checkpoint is used: one computed at an earlier step
    (training went on) is refused as stale, since rows sorted by it would describe
    another model. The advice depends on what the folder holds: ``--resume`` needs a
    checkpoint, so a folder without one is to be trained first, and a run still training
    is waited for (``--resume`` is refused while it runs).
    """
    if not run.has_checkpoint():
        if (in_use := run.in_use_message()) is not None:
            raise BetaVAEError(f"{run.path} has no checkpoint yet: {in_use}")
        raise BetaVAEError(
            f"{run.path} has no checkpoint, so no held-out KL per dimension; train it first: "
            f"betavae train --config {run.config_path} --out {run.path}"
        )
    kl = (run.current_result("test") or {}).get("kl_per_dim")
    if (kl is None or len(kl) != latent_dim) and (in_use := run.in_use_message()) is not None:
        raise BetaVAEError(f"{run.path} has no held-out KL per dimension yet: {in_use}")
    if kl is None or len(kl) != latent_dim:
        raise BetaVAEError(
            f"{run.path} has no held-out KL per dimension in metrics.json (written when "
            f"training finishes); finish it with: betavae train --out {run.path} --resume"
        )
    return [float(value) for value in kl]


def base_code(run: RunDir, model: BetaVAE, test_image: int | None, seed: int) -> torch.Tensor:
    """The origin (``test_image`` None), or μ of image ``test_image`` of a seeded shuffle of the
    test split."""
    device = next(model.parameters()).device
    if test_image is None:
        return torch.zeros(model.latent_dim, device=device)
    config = run.read_config()
    split = config.load_dataset().test
    if test_image >= len(split):
        raise BetaVAEError(
            f"sample:{test_image} is past the {len(split)} test images; give K from 0 to {len(split) - 1}"
        )
    positions = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[
        test_image : test_image + 1
    ]
    with torch.no_grad():
        mu, _ = model.encode(split.images(positions).to(device).float().div(255))
    return mu[0]


def traversal_figure(
    run_dir: str | Path,
    dims: str | Sequence[int] = "all",
    value_range: tuple[float, float] = (-2.5, 2.5),
    steps: int = 11,
    around: str = "mean",
    gif: bool = False,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[Path]:
    """Write ``traversal.png`` (and with ``gif``, ``traversal.gif``) into a run folder, holding its lock.

    Args:
        run_dir: a trained run folder.
        dims: ``"all"``, ``"active"`` (average KL above :data:`ACTIVE_KL`) or
            dimension numbers like ``"0,3"``; rows are sorted by KL whatever the order given.
        value_range: the first and last value each dimension takes.
        steps: values per row (columns of the PNG), evenly spaced over ``value_range``.
        around: the code the other dimensions keep: ``"mean"`` (μ of a held-out image,
            the first of a random choice by ``seed``), ``"zero"`` (the prior's mean) or
            ``"sample:K"`` (μ of the K-th image of that choice).
        gif: also write an animation whose frame ``t`` shows every selected dimension at
            value ``t``, sweeping forward and back (``2·steps − 2`` frames, looping).
    Returns:
        The paths written, the PNG first.
    """
    run = RunDir(run_dir)
    test_image = parse_around(around)
    low, high = (float(v) for v in value_range)
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise BetaVAEError(
            f"the traversal range must go from a lower to a higher number, got {low} to {high}"
        )
    if steps < 2:
        raise BetaVAEError(f"a traversal needs at least 2 steps, got {steps}")
    with run.lock("betavae show"):
        config = run.read_config()
        kl = held_out_kl(run, config.latent_dim)
        rows = parse_dims(dims, kl)
        model = load_model(run, device)
        values = np.linspace(low, high, steps)
        with torch.no_grad():
            codes = traversal_codes(model, base_code(run, model, test_image, seed), rows, values)
            images = model.decode(codes).cpu().reshape(len(rows), steps, *model.image_shape)
        labels = [row_label(dim, kl[dim]) for dim in rows]
        titles = [f"{value:+.2f}" for value in values]
        scale = cell_scale(model.image_shape[1])
        written = [save_png(traversal_grid(images, labels, titles, scale), run.path / PNG_FILE)]
        if gif:
            written.append(save_gif(traversal_frames(images, labels, titles, scale), run.path / GIF_FILE))
    return written


def traversal_grid(
    images: torch.Tensor, labels: Sequence[str], titles: Sequence[str], scale: int
) -> Image.Image:
    """``images`` ``(rows, steps, C, H, W)`` as a grid: row ``i`` labelled ``labels[i]`` at its left,
    column ``j`` titled ``titles[j]``; :func:`~betavae.viz.grid.column_grid` plus a label column."""
    grid = column_grid([images[:, j] for j in range(images.shape[1])], titles, scale=scale, gap=GAP)
    cell_h = images.shape[-2] * scale
    header = grid.height - len(labels) * (cell_h + GAP) - GAP  # column_grid's title band
    canvas = Image.new("RGB", (LABEL_WIDTH + grid.width, grid.height), "white")
    canvas.paste(grid, (LABEL_WIDTH, 0))
    draw = ImageDraw.Draw(canvas)
    font = label_font()
    for i, label in enumerate(labels):
        middle = header + GAP + i * (cell_h + GAP) + cell_h // 2
        draw.text((4, middle), label, fill="black", font=font, anchor="lm")
    return canvas


def traversal_frames(
    images: torch.Tensor, labels: Sequence[str], titles: Sequence[str], scale: int
) -> list[Image.Image]:
    """One frame per value, forward then back without repeating the ends: ``2·steps − 2`` frames.

    Frame ``t`` is a column holding every row's image at that value, labelled like the PNG,
    under the value itself.
    """
    steps = images.shape[1]
    sweep = list(range(steps)) + list(range(steps - 2, 0, -1))
    return [traversal_grid(images[:, j : j + 1], labels, [f"z = {titles[j]}"], scale) for j in sweep]


def save_gif(frames: Sequence[Image.Image], path: Path, frame_ms: int = GIF_FRAME_MS) -> Path:
    """Write a looping animated GIF atomically and return its path."""
    buffer = io.BytesIO()
    frames[0].save(
        buffer, format="GIF", save_all=True, append_images=list(frames[1:]), duration=frame_ms, loop=0
    )
    atomic_write_bytes(path, buffer.getvalue())
    return path


__all__ = [
    "ACTIVE_KL", "active_dims", "held_out_kl", "order_by_kl", "parse_around", "parse_dims", "traversal_codes",
    "traversal_figure",
]
