"""dSprites: 737,280 binary 64×64 sprites from five known factors (Matthey et al., 2017).

The layout follows https://github.com/deepmind/dsprites-dataset: shape (square,
ellipse, heart) × scale (6 values in 0.5..1) × orientation (40 angles over a full turn)
× x and y position (32 values each in 0..1), enumerated row-major with the last factor
fastest. Images are rendered procedurally by :func:`betavae.data.render.rasterize`, so
the set needs no download and, rendered on the fly, no memory; users who have the
original ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` can pass its ``path`` to use
its exact pixels and factor values instead.

The procedural sprites match the original's layout, not its pixels. The sprite size is
a compromise between two things the original shows: about 4% of its pixels are lit,
and its sprites stay inside the frame. At ``sprite_size = 0.12`` the square of scale 1
is about 16 px wide, 3% of the pixels are lit on average, and the centre moves over the
central 63% of the image, the widest range that keeps the largest sprite, in any
rotation, a pixel away from the edges.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from betavae.data.sprites import SpriteDataset
from betavae.errors import BetaVAEError

FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
NPZ_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
NPZ_KEYS = ("imgs", "latents_classes", "latents_values")


def procedural_values() -> tuple[np.ndarray, ...]:
    """The factor values of the procedural set.

    Shapes are 1, 2, 3 as in the original file. Orientations are 40 steps of 2π/40 over
    [0, 2π): the original labels its 40 orientations ``linspace(0, 2π, 40)``, whose last
    draws the same sprite as the first, and a rendered set has no reason to repeat one.
    """
    return (
        np.array([1.0, 2.0, 3.0]),
        np.linspace(0.5, 1.0, 6),
        np.arange(40) * (2 * math.pi / 40),
        np.linspace(0.0, 1.0, 32),
        np.linspace(0.0, 1.0, 32),
    )


class DSpritesDataset(SpriteDataset):
    """dSprites, rendered procedurally or read from the original file (``path``)."""

    name = "dsprites"
    factor_names = FACTOR_NAMES
    shape_names = ("square", "ellipse", "heart")
    image_size = 64
    supersample = 1
    sprite_size = 0.12

    def __init__(
        self,
        values: tuple[np.ndarray, ...],
        test_size: int,
        seed: int,
        in_memory: bool = False,
        images: np.ndarray | None = None,
        path: str | None = None,
    ) -> None:
        self.path = path
        super().__init__(values, test_size, seed, in_memory, images)


def load_dsprites(
    path: str | None = None, test_size: int = 10_000, seed: int = 0, in_memory: bool = False
) -> DSpritesDataset:
    """dSprites with ``test_size`` images held out by ``seed``.

    Without ``path`` images are rendered per batch (``in_memory=True`` renders all 737,280
    once into 3 GB of ``uint8`` and then looks them up). With ``path``, the original npz
    is read whole (3 GB) and its images are used; ``in_memory`` then changes nothing.
    """
    if path is None:
        return DSpritesDataset(procedural_values(), test_size, seed, in_memory)
    images, values = read_npz(path)
    return DSpritesDataset(values, test_size, seed, images=images, path=str(path))


def read_npz(
    path: str | os.PathLike[str], factor_sizes: tuple[int, ...] = FACTOR_SIZES
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Read the original dSprites npz: ``(images (n, 1, 64, 64) uint8 0/255, factor values)``.

    The file holds ``imgs`` (n, 64, 64) as 0/1, ``latents_classes`` and ``latents_values``
    (n, 6) whose first column is the constant colour; the other five are the factors.
    Everything is checked against the row-major layout of ``factor_sizes``, so a wrong
    or damaged file fails here with one line naming it rather than deep inside a
    metric. The images are scaled to 0/255 in place, without a second 3 GB copy.
    """
    path = Path(path)
    if not path.is_file():
        raise BetaVAEError(
            f"dSprites file {path} does not exist; download {NPZ_NAME} from "
            "https://github.com/deepmind/dsprites-dataset or leave path unset to render dSprites"
        )
    if not zipfile.is_zipfile(path):
        raise BetaVAEError(f"dSprites file {path} is not an npz archive; is it {NPZ_NAME}?")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in NPZ_KEYS if key not in data.files]
            if missing:
                raise BetaVAEError(f"dSprites file {path} lacks {', '.join(missing)}; is it {NPZ_NAME}?")
            images, classes, values = (data[key] for key in NPZ_KEYS)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        reason = " ".join(str(error).split())  # one line, whatever the library wrote
        raise BetaVAEError(f"cannot read dSprites file {path}: {reason}") from None
    _check_layout(path, (images, classes, values), factor_sizes)
    strides = np.cumprod((1, *factor_sizes[:0:-1]))[::-1]  # flat-index step of each factor
    factor_values = tuple(
        values[np.arange(size) * stride, k + 1]
        for k, (size, stride) in enumerate(zip(factor_sizes, strides, strict=True))
    )
    for k, column in enumerate(factor_values):
        if not np.array_equal(values[:, k + 1], column[classes[:, k + 1]]):
            raise BetaVAEError(
                f"dSprites file {path} gives factor {FACTOR_NAMES[k]} several values for one class"
            )
    np.multiply(images, 255, out=images)
    return images[:, None], factor_values


def _check_layout(path: Path, arrays: tuple[np.ndarray, ...], factor_sizes: tuple[int, ...]) -> None:
    """Raise a :class:`BetaVAEError` naming ``path`` unless the arrays have the dSprites layout."""
    count = math.prod(factor_sizes)
    columns = len(factor_sizes) + 1
    expected = {
        "imgs": (count, 64, 64),
        "latents_classes": (count, columns),
        "latents_values": (count, columns),
    }
    images, classes, _ = arrays
    for key, array in zip(NPZ_KEYS, arrays, strict=True):
        if array.shape != expected[key]:
            raise BetaVAEError(
                f"dSprites file {path} has {key} of shape {array.shape}, "
                f"expected {expected[key]}; is it {NPZ_NAME}?"
            )
    if images.dtype != np.uint8 or images.max(initial=0) > 1:
        raise BetaVAEError(f"dSprites file {path} has imgs that are not 0/1 uint8; is it {NPZ_NAME}?")
    enumeration = np.stack(np.unravel_index(np.arange(count), factor_sizes), axis=1)
    if not np.array_equal(classes[:, 1:], enumeration):
        raise BetaVAEError(
            f"dSprites file {path} does not list its images in the row-major factor order of {NPZ_NAME}"
        )
