"""The blur statistic of the reproduction report: known answers on made-up and rendered images."""

from __future__ import annotations

import numpy as np
import pytest

from betavae.data import load
from betavae.study.sharpness import high_frequency_share


def blur(images: np.ndarray, passes: int) -> np.ndarray:
    """A 3×3 box blur (wrapping at the edges), ``passes`` times."""
    for _ in range(passes):
        images = sum(np.roll(np.roll(images, dy, axis=2), dx, axis=3)
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
    return images


def test_blurring_rendered_sprites_lowers_the_share_step_by_step():
    shapes = load("shapes", in_memory=False)
    images = shapes.images_at(np.arange(0, len(shapes), 997)).astype(np.float64) / 255
    shares = [high_frequency_share(blur(images, passes)).mean() for passes in range(4)]
    assert shares == sorted(shares, reverse=True) and shares[-1] < 0.5 * shares[0]


def test_extremes_constant_and_checkerboard():
    constant = np.full((2, 1, 8, 8), 0.7)
    checkerboard = (np.indices((8, 8)).sum(axis=0) % 2).astype(float)[None, None]
    assert high_frequency_share(constant).tolist() == [0.0, 0.0]
    assert high_frequency_share(checkerboard) == pytest.approx([1.0])  # all power at Nyquist
    smooth = np.sin(2 * np.pi * np.arange(16) / 16)[None, None, None, :].repeat(16, axis=2)
    assert high_frequency_share(smooth) == pytest.approx([0.0], abs=1e-12)  # one cycle per 16 pixels


def test_colour_channels_add_their_power_and_the_shape_is_checked():
    rng = np.random.default_rng(0)
    grey = rng.random((3, 1, 16, 16))
    assert high_frequency_share(np.repeat(grey, 3, axis=1)) == pytest.approx(high_frequency_share(grey))
    with pytest.raises(ValueError, match="shape"):
        high_frequency_share(grey[:, 0])
