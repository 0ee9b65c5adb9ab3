"""The factor dataset of one sprite per image, on which dSprites and Shapes are built."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from betavae.data.base import FactorDataset
from betavae.data.render import SPRITE_RADIUS, rasterize

# Rendered sets kept for this process, so that a study loading Shapes once per run, metric and
# baseline renders it once: keyed by class and factor values, read-only, most recent last.
# Only small sets are kept (Shapes and its heart are tens of MB; dSprites in memory is 3 GB), in this
# process and in the user's cache (``rendered/``), which every later process reads instead of
# rendering again (a second per set, paid by each training process, sweep worker and test).
RENDER_CACHE_BYTES = 256 * 2**20
RENDER_CACHE_SETS = 4
_rendered: OrderedDict[tuple, np.ndarray] = OrderedDict()


class SpriteDataset(FactorDataset):
    """A factor dataset of one sprite per image, factors ``(shape, scale, rotation, x, y)`` in that order.

    dSprites and Shapes differ only in their constants, so both are this class with
    different class attributes: ``name``, ``factor_names``, ``shape_names``,
    ``image_size``, ``supersample`` and ``sprite_size`` (the length of one local unit at
    scale value 1, as a fraction of the image side). Factor *values* come in per instance.

    Positions 0..1 map onto the centre range that keeps the largest sprite, in any
    rotation, at least one pixel away from every edge: no sprite is ever clipped, and
    the outermost ring of pixels is always black.

    Images are rendered on demand, or once into a ``uint8`` array when ``in_memory``
    (or when ``images`` are given, e.g. read from a file), after which every request is a
    lookup. No float copy of the whole set is ever made.
    """

    shape_names: tuple[str, ...]
    image_size: int
    supersample: int
    sprite_size: float

    def __init__(
        self,
        values: Sequence[np.ndarray],
        test_size: int,
        seed: int,
        in_memory: bool = False,
        images: np.ndarray | None = None,
    ) -> None:
        self._values = tuple(np.asarray(v, dtype=np.float64) for v in values)
        self.factor_sizes = tuple(len(v) for v in self._values)
        self.image_shape = (1, self.image_size, self.image_size)
        if images is not None and images.shape != (len(self), *self.image_shape):
            raise ValueError(f"expected images of shape {(len(self), *self.image_shape)}, got {images.shape}")
        self._images = images
        if in_memory and images is None:
            self._images = self._rendered_once()
        self.hold_out(test_size, seed)

    @property
    def in_memory(self) -> bool:
        """Whether images are looked up in an array rather than rendered per request."""
        return self._images is not None

    @property
    def margin(self) -> float:
        """How far (fraction of the side) the centre range stays from each edge."""
        largest = float(self._values[1].max()) * self.sprite_size * SPRITE_RADIUS
        return largest + 1.0 / self.image_size

    def factor_values(self, factor: int | str) -> np.ndarray:
        return self._values[self.factor_index(factor)].copy()

    def sprite_parameters(self, factors: np.ndarray) -> tuple[np.ndarray, ...]:
        """Factor-index vectors → the :func:`rasterize` arguments ``(shape_ids, scale, angle, x, y)``."""
        factors = self._checked(factors)
        shape_ids, scale, angle, pos_x, pos_y = (factors[:, k] for k in range(5))
        span = 1.0 - 2.0 * self.margin
        return (
            shape_ids,
            self._values[1][scale] * self.sprite_size,
            self._values[2][angle],
            self.margin + self._values[3][pos_x] * span,
            self.margin + self._values[4][pos_y] * span,
        )

    def render(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Images for factor-index vectors; ``rng`` is ignored: a sprite is all its factors say."""
        if self._images is not None:
            return self._images[self.factors_to_index(self._checked(factors))]
        return rasterize(*self.sprite_parameters(factors), shapes=self.shape_names,
                         size=self.image_size, supersample=self.supersample)

    def images_at(self, index: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if self._images is None:
            return super().images_at(index, rng)
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"index out of range for {self.name} with {len(self)} images")
        return self._images[index]

    def _checked(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(f"expected factor indices of shape (n, {self.num_factors}), got {factors.shape}")
        if ((factors < 0) | (factors >= np.asarray(self.factor_sizes))).any():
            raise IndexError(
                f"factor indices out of range for {self.name} with factor sizes {self.factor_sizes}"
            )
        return factors

    def _rendered_once(self) -> np.ndarray:
        """:meth:`_render_all`, or the read-only array this process rendered or read for the same set
        before, or the one the user's cache holds for it (see :data:`RENDER_CACHE_BYTES`)."""
        key = (type(self), self.image_size, self.supersample, self.sprite_size,
               tuple(values.tobytes() for values in self._values))
        if key in _rendered:
            _rendered.move_to_end(key)
            return _rendered[key]
        if len(self) * int(np.prod(self.image_shape)) > RENDER_CACHE_BYTES:  # uint8: one byte a pixel
            return self._render_all()
        from betavae.files import cached_array

        images = cached_array("rendered", self._render_key(), self._render_all)
        images.setflags(write=False)
        _rendered[key] = images
        while len(_rendered) > RENDER_CACHE_SETS:
            _rendered.popitem(last=False)
        return images

    def _render_key(self) -> dict[str, object]:
        """All that this set's rendered pixels depend on: its constants, its factor values and the source
        of the code that draws them (a change to the rasteriser renders the set again)."""
        import inspect
        import sys

        from betavae.data import render

        sources = {module.__name__: hashlib.sha256(inspect.getsource(module).encode()).hexdigest()
                   for module in (render, sys.modules[__name__], sys.modules[type(self).__module__])}
        return {"set": type(self).__qualname__, "name": self.name, "image_size": self.image_size,
                "supersample": self.supersample, "sprite_size": self.sprite_size,
                "shape_names": list(self.shape_names), "values": [values.tolist() for values in self._values],
                "sources": sources}

    def _render_all(self, chunk: int = 16_384) -> np.ndarray:
        """Every image in index order, rendered chunk by chunk into one ``uint8`` array."""
        images = np.empty((len(self), *self.image_shape), dtype=np.uint8)
        with tqdm(
            total=len(self), desc=f"rendering {self.name}", unit="img", delay=1.0, disable=None
        ) as progress:  # None: no bar when stderr is not a terminal
            for start in range(0, len(self), chunk):
                stop = min(start + chunk, len(self))
                images[start:stop] = self.render(self.index_to_factors(np.arange(start, stop)))
                progress.update(stop - start)
        return images
