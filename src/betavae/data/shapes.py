"""Shapes: a white square, ellipse or triangle on black at 28×28, from five known factors.

The small synthetic set of the β-VAE reproducibility report: big enough to show
disentanglement, small enough (25,920 images, 20 MB) to render at load in about a
second and to train on a CPU. Unlike dSprites the images are grey-level, anti-aliased
by 4 × 4 supersampling, so that sub-pixel moves and small rotations still change
the image at this low resolution.

Sizes and ranges, and why:

- shape: square, ellipse (2:1), equilateral triangle (values 0, 1, 2).
- scale: 5 values in 0.5..1; the square is 10.1 px wide at 1 and 5 px at 0.5, where
  the ellipse is 7 × 3.5 px and the triangle 6 px a side, still clearly visible.
- rotation: 12 angles in [0, π/2), 7.5° apart. A quarter turn is the square's symmetry,
  so over this range no two rotations of any of the three shapes give the same image;
  a full turn would make most rotation values duplicates (for the square, 3 of 4).
- pos_x, pos_y: 12 values each in 0..1, mapped to the centre range that keeps the
  largest sprite, in any rotation, a pixel away from the edges (pixels 8.1 to 19.9,
  about 1.1 px a step).

``shapes_heart`` is the reproducibility report's own set, which had one shape, a heart,
and four factors (scale, rotation, x, y): the heart of dSprites (the same curve,
:func:`betavae.data.render.rasterize`'s ``heart``) drawn at 28×28 with this set's
anti-aliasing and sprite size. A heart has no rotational symmetry, so its rotation spans a
full turn, in dSprites' 40 steps; scale takes dSprites' 6 values in 0.5..1 and x and y 14
values each (47,040 images). The report gives its set's factors but not their sizes: these
are ours. Use it to reproduce the report with exactly its kind of data; ``shapes`` adds a
shape factor (square, ellipse, triangle), which the metrics then also have to find.
"""

from __future__ import annotations

import math

import numpy as np

from betavae.data.render import SPRITE_RADIUS
from betavae.data.sprites import SpriteDataset


def shapes_values() -> tuple[np.ndarray, ...]:
    """The factor values of every Shapes factor, in factor order."""
    return (
        np.arange(3, dtype=np.float64),
        np.linspace(0.5, 1.0, 5),
        np.arange(12) * (math.pi / 2 / 12),
        np.linspace(0.0, 1.0, 12),
        np.linspace(0.0, 1.0, 12),
    )


class ShapesDataset(SpriteDataset):
    """The 28×28 Shapes set; see the module docstring for its factors."""

    name = "shapes"
    factor_names = ("shape", "scale", "rotation", "pos_x", "pos_y")
    shape_names = ("square", "ellipse", "triangle")
    image_size = 28
    supersample = 4
    sprite_size = 0.18


def load_shapes(test_size: int = 2_000, seed: int = 0, in_memory: bool = True) -> ShapesDataset:
    """Shapes with ``test_size`` images held out by ``seed``; rendered once at load when ``in_memory``."""
    return ShapesDataset(shapes_values(), test_size, seed, in_memory)


def heart_values() -> tuple[np.ndarray, ...]:
    """The factor values of ``shapes_heart``: scale, rotation (a full turn), pos_x, pos_y."""
    return (
        np.linspace(0.5, 1.0, 6),
        np.arange(40) * (2 * math.pi / 40),
        np.linspace(0.0, 1.0, 14),
        np.linspace(0.0, 1.0, 14),
    )


class ShapesHeartDataset(ShapesDataset):
    """The report's Shapes: one heart, four factors (no shape factor); see the module docstring."""

    name = "shapes_heart"
    factor_names = ("scale", "rotation", "pos_x", "pos_y")
    shape_names = ("heart",)

    @property
    def margin(self) -> float:
        largest = float(self._values[0].max()) * self.sprite_size * SPRITE_RADIUS  # scale is factor 0 here
        return largest + 1.0 / self.image_size

    def sprite_parameters(self, factors: np.ndarray) -> tuple[np.ndarray, ...]:
        """As for the five-factor sets, with the one shape (id 0, the heart) put in front."""
        factors = self._checked(factors)
        scale, angle, pos_x, pos_y = (factors[:, k] for k in range(4))
        span = 1.0 - 2.0 * self.margin
        return (
            np.zeros(len(factors), dtype=np.int64),
            self._values[0][scale] * self.sprite_size,
            self._values[1][angle],
            self.margin + self._values[2][pos_x] * span,
            self.margin + self._values[3][pos_y] * span,
        )


def load_shapes_heart(test_size: int = 4_000, seed: int = 0, in_memory: bool = True) -> ShapesHeartDataset:
    """The report's heart set with ``test_size`` images held out by ``seed``; rendered once at load when
    ``in_memory``."""
    return ShapesHeartDataset(heart_values(), test_size, seed, in_memory)
