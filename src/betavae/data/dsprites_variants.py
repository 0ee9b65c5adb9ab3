"""dSprites with variation that is not a factor: ``color_dsprites`` and ``noisy_dsprites``.

Two of the dSprites variants Locatello et al. score every model on ("Challenging Common
Assumptions in the Unsupervised Learning of Disentangled Representations", ICML 2019, §5),
as disentanglement_lib builds them (``data/ground_truth/dsprites.py``: ``ColorDSprites``,
``NoisyDSprites``): dSprites' five factors and sprites, in RGB, each image changed by a
random draw that is no factor, a *nuisance* a good representation ignores:

- ``color_dsprites``: the sprite in one colour per image, each of R, G and B drawn
  uniformly in [0.5, 1], on black;
- ``noisy_dsprites``: the white sprite over noise drawn uniformly in [0, 1] for every
  pixel and channel (sprite plus noise, clipped at 1: the sprite stays white).

The sprites are :class:`~betavae.data.dsprites.DSpritesDataset`'s (rendered, or the
original file's with ``path``), painted per batch. The draw comes from the generator
given to :meth:`~DSpritesVariant.render` (a metric passes its own, so its scores are
reproducible for its seed) or, for training batches, from the split
(:class:`~betavae.data.base.FactorSplit`). It differs every time an image is rendered,
so there is no ``in_memory`` option: an array of images would freeze one draw.

Images are ``uint8`` like every other set's: a colour is the nearest of the 256 levels to
the one drawn, and the noise is uniform over the levels 0..255, the 256 values in [0, 1]
an 8-bit image can hold.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from betavae.data.base import FactorDataset, FactorSplit
from betavae.data.dsprites import FACTOR_NAMES, DSpritesDataset, load_dsprites

# The range each channel of a sprite's colour is drawn from (disentanglement_lib's ColorDSprites).
COLOUR_RANGE = (0.5, 1.0)


class DSpritesVariant(FactorDataset):
    """dSprites' factors and sprites, turned into RGB images by :meth:`paint` with a random draw.

    ``sprites`` gives the masks and the split: the held-out images are dSprites' own for
    the same ``test_size`` and ``seed``. ``seed`` also keys the splits' nuisance draws.
    """

    factor_names = FACTOR_NAMES
    has_nuisance = True
    nuisance: str  # what the draw changes, for messages

    def __init__(self, sprites: DSpritesDataset, seed: int) -> None:
        self.sprites = sprites
        self.factor_sizes = sprites.factor_sizes
        self.shape_names = sprites.shape_names
        self.path = sprites.path
        self.image_shape = (3, *sprites.image_shape[1:])
        self.train = FactorSplit(self, sprites.train.indices, seed=seed)
        self.test = FactorSplit(self, sprites.test.indices, seed=seed)

    def factor_values(self, factor: int | str) -> np.ndarray:
        return self.sprites.factor_values(factor)

    def render(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = self._generator(rng)
        return self.paint(self.sprites.render(factors), rng)

    def images_at(self, index: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = self._generator(rng)
        return self.paint(self.sprites.images_at(index), rng)

    @abstractmethod
    def paint(self, masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sprite masks ``(n, 1, H, W)`` (0 off the sprite, 255 on it) → RGB images ``(n, 3, H, W) uint8``."""

    def _generator(self, rng: np.random.Generator | None) -> np.random.Generator:
        if rng is None:
            raise ValueError(f"{self.name} draws {self.nuisance} for every image it renders; "
                             "pass a numpy Generator")
        return rng


class ColorDSpritesDataset(DSpritesVariant):
    """Each sprite in a random colour on black (disentanglement_lib's ``ColorDSprites``)."""

    name = "color_dsprites"
    nuisance = "a colour"

    def paint(self, masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        colours = np.rint(rng.uniform(*COLOUR_RANGE, size=(len(masks), 3)) * 255).astype(np.uint16)
        # mask · colour / 255, rounded: the colour itself where the mask is 255, black where it is 0
        painted = masks.astype(np.uint16) * colours[:, :, None, None]
        painted += 127
        painted //= 255
        return painted.astype(np.uint8)


class NoisyDSpritesDataset(DSpritesVariant):
    """Each white sprite over uniform noise (disentanglement_lib's ``NoisyDSprites``)."""

    name = "noisy_dsprites"
    nuisance = "noise"

    def paint(self, masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = rng.integers(0, 256, size=(len(masks), 3, *masks.shape[2:]), dtype=np.uint8)
        painted = noise.astype(np.uint16)
        painted += masks  # broadcast over the three channels; sprite plus noise, clipped at white
        np.minimum(painted, 255, out=painted)
        return painted.astype(np.uint8)


def load_color_dsprites(
    path: str | None = None, test_size: int = 10_000, seed: int = 0
) -> ColorDSpritesDataset:
    """dSprites in random colours with ``test_size`` images held out by ``seed``; ``path``: the
    original npz (read whole, 3 GB) instead of rendered sprites."""
    return ColorDSpritesDataset(load_dsprites(path, test_size, seed), seed)


def load_noisy_dsprites(
    path: str | None = None, test_size: int = 10_000, seed: int = 0
) -> NoisyDSpritesDataset:
    """dSprites on uniform noise with ``test_size`` images held out by ``seed``; ``path``: the
    original npz (read whole, 3 GB) instead of rendered sprites."""
    return NoisyDSpritesDataset(load_dsprites(path, test_size, seed), seed)
