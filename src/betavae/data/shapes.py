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
"""

from __future__ import annotations

import math

import numpy as np

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
