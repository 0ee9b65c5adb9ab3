"""Image grids with labelled columns, upscaled without blur.

Small images (a 28×28 digit) are enlarged by an integer factor with nearest-neighbour
sampling so that pixels stay crisp and a reader sees what the model really produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from betavae.files import atomic_write_bytes


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """Float images in [0, 1] or uint8 (B, C, H, W) → uint8 (B, H, W, C) arrays."""
    if images.dtype != torch.uint8:
        images = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return images.cpu().permute(0, 2, 3, 1).numpy()


def label_font(size: int = 11) -> ImageFont.ImageFont:
    """DejaVu Sans from matplotlib's own files: it has the Greek letters (β) PIL's default font lacks."""
    from matplotlib import font_manager

    try:
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except OSError:  # pragma: no cover - matplotlib always ships DejaVu Sans
        return ImageFont.load_default()


def column_grid(
    columns: Sequence[torch.Tensor], titles: Sequence[str], scale: int = 4, gap: int = 2
) -> Image.Image:
    """A grid whose column ``j`` shows the images ``columns[j]`` top to bottom under ``titles[j]``."""
    if len(columns) != len(titles):
        raise ValueError("one title per column")
    arrays = [to_uint8_images(column) for column in columns]
    rows, height, width, channels = arrays[0].shape
    cell_h, cell_w = height * scale, width * scale
    font = label_font()
    title_lines = max(title.count("\n") + 1 for title in titles)
    header = 4 + 14 * title_lines if any(titles) else 0
    canvas_w = len(arrays) * (cell_w + gap) + gap
    canvas = Image.new("RGB", (canvas_w, header + rows * (cell_h + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for j, (array, title) in enumerate(zip(arrays, titles, strict=True)):
        left = gap + j * (cell_w + gap)
        draw.multiline_text((left + 2, 2), title, fill="black", font=font, spacing=2)
        for i in range(array.shape[0]):
            pixels = array[i][..., 0] if channels == 1 else array[i]
            cell = Image.fromarray(pixels).resize((cell_w, cell_h), Image.NEAREST).convert("RGB")
            canvas.paste(cell, (left, header + gap + i * (cell_h + gap)))
    return canvas


def save_png(image: Image.Image, path: Path, software: str | None = None) -> Path:
    """Write a PNG atomically and return its path; ``software`` goes into its ``Software`` text chunk,
    so that a later command can tell a file it wrote from a user's (:func:`written_by`)."""
    import io

    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    if software:
        info.add_text("Software", software)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def written_by(path: Path, software: str) -> bool:
    """Whether ``path`` is a PNG whose ``Software`` text is ``software`` (one :func:`save_png` wrote)."""
    try:
        with Image.open(path) as image:
            return image.format == "PNG" and getattr(image, "text", {}).get("Software") == software
    except (OSError, ValueError, SyntaxError):
        return False
