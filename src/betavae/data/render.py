"""Vectorised rasterisation of one sprite per image, shared by dSprites and Shapes.

Each shape is an implicit inside-test in its own *local frame*: the frame in which
the shape is centred on its centroid, upright, and of unit size. A sprite is placed
by a scale (how long one local unit is, as a fraction of the image side), a rotation
angle (radians, counter-clockwise as seen on screen) and a centre (x to the right,
y downwards, both as fractions of the image side, like image rows and columns).

Rendering maps every sample point of the image back into the local frame and asks
the inside-test. Because that map is affine, the local coordinates of a whole image
are an outer sum of one row term and one column term, so an image costs a handful
of element-wise array operations and no Python loop. Anti-aliasing is plain
supersampling: ``k × k`` samples per pixel, averaged; ``k = 1`` gives binary images
like the original dSprites (Matthey et al., 2017, https://github.com/deepmind/dsprites-dataset).

Every shape lies within :data:`SPRITE_RADIUS` of its centroid, so a sprite of scale
``s`` stays within ``s * SPRITE_RADIUS`` of its centre whatever its rotation; the
datasets use that to keep sprites inside the frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

SPRITE_RADIUS = math.sqrt(2.0)
"""Radius, in local units, of the circle about the centroid that holds every shape."""

_ROOT2 = math.sqrt(2.0)
_ROOT3 = math.sqrt(3.0)

# The heart curve (x² + y² − 1)³ − x²y³ = 0 has its area centroid at y ≈ 0.2935
# (numerical integration) and reaches at most 1.294 from it, inside SPRITE_RADIUS.
_HEART_CENTROID_Y = 0.2935

InsideTest = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Side 2, area 4; its corners set SPRITE_RADIUS."""
    return np.maximum(np.abs(u), np.abs(v)) <= 1.0


def _ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Semi-axes √2 (along x) and √2/2: a 2:1 oval of area π, as long as the square's diagonal."""
    return u * u * 0.5 + v * v * 2.0 <= 1.0


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Equilateral, pointing up, circumradius √2 (area 2.6): base v ≥ −√2/2, slanted sides √3|u| + v ≤ √2."""
    return (v >= -_ROOT2 / 2) & (np.abs(u) * _ROOT3 + v <= _ROOT2)


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The curve (x² + y² − 1)³ ≤ x²y³, lobes up, moved so that its centroid is the origin (area 3.66)."""
    y = v + np.float32(_HEART_CENTROID_Y)
    uu, yy = u * u, y * y
    w = uu + yy - 1.0
    return w * w * w <= uu * yy * y


SHAPES: dict[str, InsideTest] = {
    "square": _square,
    "ellipse": _ellipse,
    "triangle": _triangle,
    "heart": _heart,
}
"""Inside-tests in the local frame (x right, y *up*), by name: arrays of u, v → boolean array."""


def rasterize(
    shape_ids: np.ndarray,
    scale: np.ndarray,
    angle: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    shapes: Sequence[str],
    size: int,
    supersample: int = 1,
    max_samples: int = 1 << 17,
) -> np.ndarray:
    """Render one sprite per image: ``(n,)`` parameters → ``(n, 1, size, size)`` ``uint8``.

    Args:
        shape_ids: position of each image's shape in ``shapes``.
        scale: length of one local unit, as a fraction of the image side (> 0).
        angle: rotation in radians, counter-clockwise on screen.
        x, y: the centroid, as fractions of the image side from the left / top edge.
        shapes: names of :data:`SHAPES` that ``shape_ids`` index.
        size: the image side in pixels.
        supersample: ``k``; each pixel averages ``k × k`` samples at the centres of its
            sub-pixels. With ``k = 1`` images are binary (0 or 255).
        max_samples: how many sample points one chunk may hold (a few tens of bytes
            each), which bounds memory independently of ``n``. Chunks that stay in the
            CPU cache render several times faster per sample than large ones.

    Only a square window around each sprite, just large enough for the largest sprite
    in the call, is sampled; the rest of the image is black by construction (every shape
    lies within :data:`SPRITE_RADIUS`), which saves most of the work on small sprites.
    Sample positions are computed from global pixel indices, so an image depends only
    on its own parameters, never on the window or the rest of the batch.

    This is single-threaded numpy on purpose: it is as fast as multi-threaded torch on
    an idle small CPU, and many times faster when training shares the cores, where
    torch's thread pool stalls on preempted threads.
    """
    shape_ids = np.asarray(shape_ids, dtype=np.int64)
    n = shape_ids.shape[0]
    if supersample < 1:
        raise ValueError(f"supersample must be at least 1, got {supersample}")
    params = [np.broadcast_to(np.asarray(p, dtype=np.float64), (n,)) for p in (scale, angle, x, y)]
    if np.any(params[0] <= 0):
        raise ValueError("scale must be positive")
    if n and (shape_ids.min() < 0 or shape_ids.max() >= len(shapes)):
        raise ValueError(f"shape ids must index {len(shapes)} shapes")
    tests = [SHAPES[name] for name in shapes]
    out = np.zeros((n, 1, size, size), dtype=np.uint8)
    if n == 0:
        return out
    k = int(supersample)
    # Half the window must exceed the sprite radius in pixels by at least one pixel.
    window = min(size, math.ceil(2 * SPRITE_RADIUS * float(params[0].max()) * size) + 2)
    offsets = np.arange(window)
    chunk = max(1, max_samples // (window * k) ** 2)
    for shape_id, inside in enumerate(tests):
        members = np.flatnonzero(shape_ids == shape_id)
        for begin in range(0, members.size, chunk):
            rows = members[begin : begin + chunk]
            s, a, cx, cy = (p[rows] for p in params)
            left, top = _window_start(cx, window, size), _window_start(cy, window, size)
            pixels = _coverage(inside(*_local_coordinates(left, top, window, size, k, s, a, cx, cy)), k)
            pixel_rows = (top[:, None] + offsets)[:, :, None]
            pixel_cols = (left[:, None] + offsets)[:, None, :]
            out[rows[:, None, None], 0, pixel_rows, pixel_cols] = pixels
    return out


def _window_start(centre: np.ndarray, window: int, size: int) -> np.ndarray:
    """The first pixel of a ``window``-pixel span centred on ``centre`` (a fraction of the side),
    inside the image."""
    return np.clip(np.floor(centre * size - window / 2), 0, size - window).astype(np.int64)


def _local_coordinates(
    left: np.ndarray,
    top: np.ndarray,
    window: int,
    size: int,
    k: int,
    scale: np.ndarray,
    angle: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Local (u, v) of every sample of each window, ``(m, window·k, window·k)`` float32 each.

    Sample ``j`` along an axis sits at ``(j + 0.5) / (size·k)`` of the side, counted from
    the image edge (not the window's), so its position never depends on the window. A
    sample ``dx = gx − cx`` right of the centre and ``dy = cy − gy`` above it has, undoing
    rotation and scale, ``u = (cos·dx + sin·dy) / s`` and ``v = (−sin·dx + cos·dy) / s``:
    an outer sum of a row term and a column term, so each full-size array costs one
    addition. The small per-axis terms are float64, the big sums float32.
    """
    samples = np.arange(window * k) + 0.5
    gx = ((left * k)[:, None] + samples) / (size * k)
    gy = ((top * k)[:, None] + samples) / (size * k)
    cos = (np.cos(angle) / scale)[:, None]
    sin = (np.sin(angle) / scale)[:, None]
    dx = gx - cx[:, None]
    dy = cy[:, None] - gy
    u = (cos * dx).astype(np.float32)[:, None, :] + (sin * dy).astype(np.float32)[:, :, None]
    v = (-sin * dx).astype(np.float32)[:, None, :] + (cos * dy).astype(np.float32)[:, :, None]
    return u, v


def _coverage(hits: np.ndarray, k: int) -> np.ndarray:
    """Boolean samples ``(m, w·k, w·k)`` → ``uint8`` pixels ``(m, w, w)``: the covered fraction times 255."""
    m, side, _ = hits.shape
    if k == 1:
        return hits.view(np.uint8) * np.uint8(255)
    pixels = side // k
    rows = hits.view(np.uint8).reshape(m * pixels, k, side).sum(axis=1, dtype=np.uint32)
    counts = rows.reshape(m, pixels, pixels, k).sum(axis=3, dtype=np.uint32)
    return ((counts * 255 + (k * k) // 2) // (k * k)).astype(np.uint8)
