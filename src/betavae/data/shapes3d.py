"""3D Shapes (Burgess & Kim, 2018): 480,000 64×64 RGB scenes from six known factors.

A room with a floor, a wall and one object, enumerated over floor hue (10 values),
wall hue (10), object hue (10), scale (8), shape (4: cube, cylinder, sphere, capsule)
and orientation (15 angles in -30..30°), row-major with the last factor fastest: the
layout of https://github.com/deepmind/3d-shapes, first used in Kim & Mnih, *Disentangling
by Factorising* (ICML 2018). Its one file, ``3dshapes.h5`` (published at :data:`URL`),
holds ``images`` (480000, 64, 64, 3) ``uint8``, channels last, and ``labels`` (480000, 6)
``float64``, the factor *values* of each image (hues 0..0.9, scale 0.75..1.25, shape 0..3,
orientation -30..30, as the file's users report; the project's README says hues and scale
span 0..1). Factor sizes and values are taken from the file, not from either.

**Where.** ``3dshapes.h5`` is looked for under the data folder (``data_dir``, else
``$BETAVAE_DATA_DIR``, else the user cache; :func:`betavae.data.mnist.data_root`), in
``shapes3d/`` or at its top level. Nothing is downloaded.

**Checked on load.** The datasets' names, shapes and types, and the labels: the whole
``labels`` array is read (23 MB, under a second) and must enumerate every combination
of its factor values once, row-major. The factor sizes and values are the file's, so a
file of the same layout with fewer values per factor (the tests write one) loads as
well. The images are not read: checking 5.9 GB would take minutes.

**Reading.** By default images are read from the file per request (a training batch,
a metric's sample) and never held: 480,000 images are 5.9 GB of ``uint8``.
``in_memory=True`` reads them all once instead (5.9 GB of memory, a minute or more)
and then looks them up. Per request, the cost depends on how the file stores ``images``
(:class:`ImageFile`): contiguous (h5py's default), through a memory map, several times
cheaper than through h5py; in compressed chunks of one image, through h5py; in compressed
chunks spanning many images, each image read decompresses all of them, far slower than
training, and :func:`load_shapes3d` warns. The published file's storage is
not documented: its 255 MiB download for 5.9 GB of pixels says it is compressed, and
being 6.6× smaller than the same images as PNGs (1.68 GiB; both sizes from TensorFlow
Datasets' catalogue), probably in chunks spanning many images. ``h5repack -l
images:CONTI 3dshapes.h5 contiguous.h5`` rewrites it contiguous (5.9 GB on disk), the
fastest to read per request.

**Threads and processes.** An h5py file handle must not cross a ``fork``, and h5py
serialises all calls within a process behind one lock (threads gain nothing from
handles of their own). So each process opens the file once, on its first read, and
its threads share that handle and its memory map: the training's reader thread, the
metrics on the main thread, a figure. A forked child forgets the parent's handle
(``os.register_at_fork``) and opens its own; a pickled dataset (a spawned process, a
sweep's worker) travels without one.
"""

from __future__ import annotations

import colorsys
import math
import os
import threading
import warnings
import weakref
from pathlib import Path

import numpy as np

from betavae.data.base import FactorDataset
from betavae.data.mnist import data_root
from betavae.errors import BetaVAEError

FILE_NAME = "3dshapes.h5"
URL = "https://storage.googleapis.com/3d-shapes/3dshapes.h5"
HOMEPAGE = "https://github.com/deepmind/3d-shapes"
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
IMAGE_SIZE = 64
# Labels that differ by less than this are one factor value: a value stored with rounding noise
# (computed afresh per image, or converted by a rewrite) is still one value.
VALUE_TOLERANCE = 1e-6
# Warn when reading one image decompresses at least this many images' worth of chunks.
SLOW_CHUNK_IMAGES = 16


class Shapes3DDataset(FactorDataset):
    """3D Shapes read from its HDF5 file; see the module docstring."""

    name = "shapes3d"
    factor_names = FACTOR_NAMES
    image_shape = (3, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(
        self, path: str | os.PathLike[str], test_size: int = 10_000, seed: int = 0, in_memory: bool = False
    ) -> None:
        self.path = Path(path)
        self._values = read_layout(self.path)
        self.factor_sizes = tuple(len(values) for values in self._values)
        self._file = ImageFile(self.path)
        self._images = self._file.read_all() if in_memory else None
        self.hold_out(test_size, seed)

    @property
    def in_memory(self) -> bool:
        """Whether images are looked up in memory rather than read from the file per request."""
        return self._images is not None

    @property
    def storage(self) -> str:
        """How the file stores its images: ``contiguous``, or the chunk shape and compression."""
        return self._file.storage()

    def factor_values(self, factor: int | str) -> np.ndarray:
        return self._values[self.factor_index(factor)].copy()

    def render(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The file's images of these factors; ``rng`` is ignored (no nuisance variation)."""
        factors = np.asarray(factors, dtype=np.int64)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(f"expected factor indices of shape (n, {self.num_factors}), got {factors.shape}")
        if ((factors < 0) | (factors >= np.asarray(self.factor_sizes))).any():
            raise IndexError(
                f"factor indices out of range for {self.name} with factor sizes {self.factor_sizes}"
            )
        return self.images_at(self.factors_to_index(factors))

    def images_at(self, index: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(n, 3, 64, 64) uint8`` in the order asked, repeats included; ``rng`` is ignored."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"index out of range for {self.name} with {len(self)} images")
        if self._images is not None:
            return self._images[index]
        return np.ascontiguousarray(self._file.read(index).transpose(0, 3, 1, 2))


def load_shapes3d(
    data_dir: str | os.PathLike[str] | None = None, test_size: int = 10_000, seed: int = 0,
    in_memory: bool = False,
) -> Shapes3DDataset:
    """3D Shapes from ``3dshapes.h5`` under ``data_dir``, ``test_size`` images held out by ``seed``.

    ``in_memory`` reads all images once (5.9 GB for the full set) instead of per request.
    """
    dataset = Shapes3DDataset(find_file(data_root(data_dir)), test_size, seed, in_memory)
    amplification = dataset._file.images_per_image_read()
    if not in_memory and amplification >= SLOW_CHUNK_IMAGES:
        warnings.warn(
            f"{dataset.path} stores its images in compressed chunks that span {amplification} images, so "
            f"reading one image decompresses {amplification} images' worth and training will wait for its "
            f"data; load it with in_memory=True (dataset_options = {{in_memory = true}} in the run's config; "
            f"{len(dataset) * 3 * IMAGE_SIZE**2 / 1e9:.2g} GB of memory), or rewrite it contiguous "
            f"(h5repack -l images:CONTI {dataset.path.name} contiguous.h5; as large on disk)",
            stacklevel=2,
        )
    return dataset


def find_file(root: Path) -> Path:
    """``<root>/shapes3d/3dshapes.h5`` or ``<root>/3dshapes.h5``; missing is a one-line error."""
    searched = [root / "shapes3d", root]
    for folder in searched:
        if (folder / FILE_NAME).is_file():
            return folder / FILE_NAME
    raise BetaVAEError(
        f"shapes3d file {FILE_NAME} not found in {searched[0]} or {searched[1]}; download it from {URL} "
        f"(see {HOMEPAGE}) into {searched[0]}, or point --data-dir (data_dir) or $BETAVAE_DATA_DIR at "
        f"the folder that holds it"
    )


def _h5py():
    import h5py  # on first use: the CLI starts without it

    return h5py


def _open(path: Path):
    """``path`` opened read-only by h5py; an unreadable or non-HDF5 file is a one-line error."""
    try:
        return _h5py().File(path, "r")
    except OSError as error:
        reason = " ".join(str(error).split())
        raise BetaVAEError(
            f"cannot read shapes3d file {path} ({reason}); is it {FILE_NAME}? download it again from {URL}"
        ) from None


def read_layout(path: Path) -> tuple[np.ndarray, ...]:
    """Check ``path`` has 3dshapes.h5's layout and return each factor's values, in index order.

    Every problem is a :class:`BetaVAEError` of one line naming the file.
    """
    h5py = _h5py()
    expected = f"expected the layout of {FILE_NAME} ({HOMEPAGE})"
    with _open(path) as file:
        missing = [key for key in ("images", "labels") if not isinstance(file.get(key), h5py.Dataset)]
        if missing:
            raise BetaVAEError(f"shapes3d file {path} has no dataset {' or '.join(missing)}; {expected}")
        images, labels = file["images"], file["labels"]
        if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or images.dtype != np.uint8:
            raise BetaVAEError(
                f"shapes3d file {path} has images of shape {images.shape} and type {images.dtype}, "
                f"not (N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3) uint8; {expected}"
            )
        if labels.shape != (images.shape[0], len(FACTOR_NAMES)) or labels.dtype.kind != "f":
            raise BetaVAEError(
                f"shapes3d file {path} has labels of shape {labels.shape} and type {labels.dtype}, "
                f"not ({images.shape[0]}, {len(FACTOR_NAMES)}) floats; {expected}"
            )
        try:
            table = np.asarray(labels[()], dtype=np.float64)
        except OSError as error:
            reason = " ".join(str(error).split())
            raise BetaVAEError(f"cannot read the labels of shapes3d file {path} ({reason})") from None
    return factor_values_of(path, table)


def factor_values_of(path: Path, table: np.ndarray) -> tuple[np.ndarray, ...]:
    """The values of each factor, if ``table`` lists every combination once in row-major order."""
    sizes = tuple(
        len(np.unique(np.round(table[:, k] / VALUE_TOLERANCE))) for k in range(len(FACTOR_NAMES))
    )
    if math.prod(sizes) != len(table):
        counts = ", ".join(f"{name} {size}" for name, size in zip(FACTOR_NAMES, sizes, strict=True))
        raise BetaVAEError(
            f"shapes3d file {path} has {len(table)} images but its labels take {counts} distinct "
            f"values ({math.prod(sizes)} combinations); each combination must appear exactly once"
        )
    strides = np.cumprod((1, *sizes[:0:-1]))[::-1]  # flat-index step of each factor
    enumeration = np.unravel_index(np.arange(len(table)), sizes)
    values = []
    for k, (size, stride) in enumerate(zip(sizes, strides, strict=True)):
        column = table[np.arange(size) * stride, k]  # value of each index, where it first appears
        if not np.allclose(table[:, k], column[enumeration[k]], rtol=0, atol=VALUE_TOLERANCE):
            raise BetaVAEError(
                f"shapes3d file {path} does not list its images in the row-major factor order of "
                f"{FILE_NAME} (factor {FACTOR_NAMES[k]} changes out of turn); use the published file"
            )
        values.append(column)
    return tuple(values)


class ImageFile:
    """The ``images`` of one HDF5 file, opened once per process on first read (module docstring).

    Contiguous storage (h5py's default, no compression) is read through a read-only
    memory map of its bytes, whose offset h5py gives: a gather by numpy, without h5py's
    per-call work and its lock, so threads read at once and a GPU's training thread is
    not kept waiting. Any other storage is read through h5py, serialised by its lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._forget()
        _READERS.add(self)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._handle = None  # the h5py File, once this process has read
        self._mapped: np.ndarray | None = None  # the images' bytes, when stored contiguous

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def _images(self):
        """The h5py dataset, opened in this process on first use; call with the lock held."""
        if self._handle is None:
            self._handle = _open(self.path)
            images = self._handle["images"]
            offset = images.id.get_offset()  # None unless contiguous and written
            in_place = images.chunks is None and images.id.get_create_plist().get_external_count() == 0
            if in_place and offset is not None:
                try:
                    self._mapped = np.memmap(self.path, np.uint8, "r", offset=offset, shape=images.shape)
                except ValueError as error:  # the file ends before its images do
                    raise BetaVAEError(
                        f"shapes3d file {self.path} is cut short ({error}); download it again from {URL}"
                    ) from None
        return self._handle["images"]

    def storage(self) -> str:
        with self._lock:
            images = self._images()
            if images.chunks is None:
                return "contiguous"
            return f"in chunks of {images.chunks}, {images.compression or 'uncompressed'}"

    def images_per_image_read(self) -> int:
        """How many images' worth of data reading one image decompresses (1 unless chunks are filtered)."""
        with self._lock:
            return _filtered_chunk_images(self._images())

    def read(self, index: np.ndarray) -> np.ndarray:
        """Images at ``index`` (any order, repeats): ``(n, 64, 64, 3) uint8``, channels last as stored."""
        with self._lock:
            images = self._images()
        if self._mapped is not None:
            return np.take(self._mapped, index, axis=0)
        rows, where = np.unique(index, return_inverse=True)
        with self._lock:
            return self._read_rows(images, rows)[where]

    def _read_rows(self, images, rows: np.ndarray) -> np.ndarray:
        """Sorted, unique ``rows`` through h5py, one call per block of rows cheaper read together.

        A block is a run of consecutive rows (one slice), or the rows within one compressed
        chunk's span of images (a chunk costs the same to decompress for one of its images
        as for all). One call with all the rows would be slower: h5py's selection of many
        rows costs more than linearly in their count, many times more in chunked storage.
        """
        out = np.empty((len(rows), *images.shape[1:]), dtype=np.uint8)
        if len(rows) == 0:
            return out
        span = rows // _filtered_chunk_images(images)  # the rows of one compressed chunk share a span
        starts = np.flatnonzero((np.diff(rows, prepend=-2) != 1) & (np.diff(span, prepend=-1) != 0))
        try:
            for start, stop in zip(starts, [*starts[1:], len(rows)], strict=True):
                first, last = rows[start], rows[stop - 1]
                consecutive = last - first + 1 == stop - start
                out[start:stop] = images[first:last + 1] if consecutive else images[rows[start:stop]]
        except OSError as error:
            reason = " ".join(str(error).split())
            raise BetaVAEError(f"cannot read images from shapes3d file {self.path} ({reason})") from None
        return out

    def read_all(self, block_images: int = 16_384) -> np.ndarray:
        """Every image, ``(N, 3, 64, 64) uint8`` in file order, read in blocks of whole chunks."""
        with self._lock:
            images = self._images()
            chunk = images.chunks[0] if images.chunks is not None else 1
            block_images = -(-block_images // chunk) * chunk
            out = np.empty((images.shape[0], 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
            for start in range(0, images.shape[0], block_images):
                stop = min(start + block_images, images.shape[0])
                source = self._mapped if self._mapped is not None else images
                out[start:stop] = source[start:stop].transpose(0, 3, 1, 2)
            return out


def _filtered_chunk_images(images) -> int:
    """Images per chunk of a dataset stored in compressed (filtered) chunks; 1 for any other storage.

    A compressed chunk is decompressed whole to read any part of it; other storage is read
    in just the bytes asked for.
    """
    if images.chunks is None or images.id.get_create_plist().get_nfilters() == 0:
        return 1
    return int(images.chunks[0])


_READERS: weakref.WeakSet[ImageFile] = weakref.WeakSet()


def _forget_handles_after_fork() -> None:
    for reader in list(_READERS):
        reader._forget()


os.register_at_fork(after_in_child=_forget_handles_after_fork)


def write_synthetic(
    path: str | os.PathLike[str],
    factor_sizes: tuple[int, ...] = FACTOR_SIZES,
    chunks: tuple[int, ...] | bool | None = None,
    compression: str | None = None,
    block_images: int = 4096,
) -> None:
    """Write a file in 3dshapes.h5's layout with drawn stand-in scenes, for tests and benchmarks.

    Not the real images: a floor and a wall in their hues with a vertical shading, and a
    square, rectangle, disc or ellipse (``shape`` 0..3) in the object's hue, sized by
    ``scale`` and shifted sideways by ``orientation``. Enough for every factor to change
    the pixels, and for the per-image cost of reading to be that of real 64×64 RGB images.
    Factor values are the real file's when a factor has its real size, else spread over the
    same range. ``chunks`` and ``compression`` go to h5py's ``create_dataset`` for ``images``.
    """
    h5py = _h5py()
    values = synthetic_values(factor_sizes)
    count = math.prod(factor_sizes)
    with h5py.File(path, "w") as file:
        images = file.create_dataset(
            "images", (count, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8, chunks=chunks,
            compression=compression,
        )
        labels = np.empty((count, len(factor_sizes)), dtype=np.float64)
        for start in range(0, count, block_images):
            index = np.arange(start, min(start + block_images, count))
            factors = np.stack(np.unravel_index(index, factor_sizes), axis=1)
            table = np.stack([values[k][factors[:, k]] for k in range(len(factor_sizes))], axis=1)
            labels[index] = table
            images[index[0]:index[-1] + 1] = draw_scenes(table)
        file.create_dataset("labels", data=labels)


def synthetic_values(factor_sizes: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Factor values of :func:`write_synthetic`: the real file's (hues 0..0.9 in steps of 0.1, …)."""
    ranges = ((0.0, 0.9), (0.0, 0.9), (0.0, 0.9), (0.75, 1.25), (0.0, 3.0), (-30.0, 30.0))
    return tuple(
        np.arange(size, dtype=np.float64) if k == 4 else np.linspace(*ranges[k], size)
        for k, size in enumerate(factor_sizes)
    )


def draw_scenes(labels: np.ndarray) -> np.ndarray:
    """Stand-in scenes of factor *values* ``(n, 6)``: ``(n, 64, 64, 3) uint8`` (:func:`write_synthetic`)."""
    n = len(labels)
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] / (IMAGE_SIZE - 1)  # 0..1, top-left origin

    def rgb(hues: np.ndarray) -> np.ndarray:
        return np.array([colorsys.hsv_to_rgb(h, 0.8, 1.0) for h in hues]).reshape(n, 1, 1, 3)

    shading = (0.55 + 0.45 * y)[None, :, :, None]
    floor = (y > 0.6)[None, :, :, None]
    scene = np.where(floor, rgb(labels[:, 0]), rgb(labels[:, 1])) * shading
    radius = (0.12 * labels[:, 3])[:, None, None]
    dx = x[None] - (0.5 + labels[:, 5] / 150)[:, None, None]
    dy = y[None] - (0.62 - radius)
    shape = labels[:, 4].round().astype(int)[:, None, None]
    inside = np.select(
        [shape == 0, shape == 1, shape == 2],
        [np.maximum(abs(dx), abs(dy)) <= radius,
         (abs(dx) <= 0.7 * radius) & (abs(dy) <= radius),
         dx**2 + dy**2 <= radius**2],
        (dx / (0.6 * radius)) ** 2 + (dy / radius) ** 2 <= 1,
    )
    scene = np.where(inside[..., None], rgb(labels[:, 2]) * (0.7 + 0.3 * (1 - y))[None, :, :, None], scene)
    return np.round(scene * 255).astype(np.uint8)
