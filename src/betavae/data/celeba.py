"""CelebA (Liu, Luo, Wang & Tang, *Deep Learning Face Attributes in the Wild*, ICCV 2015).

202,599 aligned and cropped celebrity faces (``img_align_celeba/``, 178×218 JPEGs), each
with 40 binary attributes (Smiling, Eyeglasses, Male, …). β-VAE papers use it for
latent traversals of a set without known factors; its attributes make transfer tasks
(``betavae transfer --task attr:Smiling``).

**Images.** Every image is centre-cropped to 140×140 and resized to 64×64 RGB with
Pillow's bilinear filter (which, scaling down, averages over the whole footprint), the
same as torchvision's ``CenterCrop(140)`` + ``Resize(64)``: the crop of the Wasserstein
auto-encoder (Tolstikhin et al. 2018) and of the regularised auto-encoders (Ghosh et
al. 2020) that later VAE work compares with. It keeps the face and drops most of the
background; ``crop=148`` gives PyTorch-VAE's slightly looser crop. disentangling-vae
instead squashes the whole 178×218 image to 64×64, which distorts the faces' proportions.

**Splits.** The official partition (``list_eval_partition.txt``): the training split is
partition 0 (162,770 images; ``include_valid=True`` adds partition 1's 19,867), the test
split partition 2 (19,962), as torchvision's ``split="train"`` and ``split="test"``.

**Files.** Under the data folder (``data_dir``, else ``$BETAVAE_DATA_DIR``, else the user
cache; see :func:`betavae.data.mnist.data_root`), in ``celeba/`` or at its top level:
``img_align_celeba/*.jpg``, ``list_attr_celeba.txt`` and ``list_eval_partition.txt``,
as published at https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (for non-commercial
research use only). Nothing is downloaded: the files sit behind Google Drive's
confirmation pages and the licence asks each user to agree to it.

**The resized cache.** Decoding, cropping and resizing a JPEG takes most of a
millisecond of one core, tens of ms per batch of 64. Done per batch, even ahead in the
reader thread, that work takes the cores a CPU training step uses (which then runs at
about half its rate), and a GPU's step (a few ms) would wait for it; a gather from a
cache of the resized images costs a fraction of a millisecond
(benchmarks/celeba_reading.py measures both against images held in memory). So the
first load decodes every image once, on all cores, into ``celeba_64x64_crop140.npy``
(2.5 GB of ``uint8``, ``(N, 3, 64, 64)`` in the order of the partition file) beside the
files, written under a temporary name and renamed when complete; later loads
memory-map it, and training's reader thread gathers batches from it.
``celeba_64x64_crop140.json`` beside it records what it was made from: the settings,
the image count, the names (their SHA-256) and the JPEGs' total size in bytes. A load
that finds these changed (an image added, removed or replaced by one of another size)
says so and rebuilds the cache. The check reads the size of every JPEG: under a second
for the full set when the folder is in the page cache, longer from a cold disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from betavae.data.base import ImageDataset, ImageSplit
from betavae.data.mnist import data_root
from betavae.errors import BetaVAEError
from betavae.files import atomic_write_text, usual_mode

IMAGE_FOLDER = "img_align_celeba"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
SOURCE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
IMAGE_SIZE = 64
DEFAULT_CROP = 140
NUM_ATTRIBUTES = 40
TRAIN, VALID, TEST = 0, 1, 2  # the partition numbers of list_eval_partition.txt
# Bump when the cache's content changes for the same sources (filter, layout), so old caches are rebuilt.
CACHE_FORMAT = 1
# Images decoded per task handed to the pool while building the cache.
_BUILD_CHUNK = 256


class CelebASplit(ImageSplit):
    """Some of CelebA's images, gathered from the memory-mapped cache, with their attributes.

    Read on the host: a batch is a gather from the memory map (from disk, the first time
    an image is read), which the training's reader thread does ahead of the step.
    """

    read_on_host = True
    image_shape = (3, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(
        self,
        pixels: np.ndarray,
        rows: np.ndarray,
        attributes: np.ndarray,
        attribute_names: tuple[str, ...],
        device: torch.device | str = "cpu",
    ) -> None:
        self.pixels = pixels  # (N, 3, 64, 64) uint8 of the whole set, usually a read-only memory map
        self.rows = np.asarray(rows, dtype=np.int64)  # this split's rows of pixels and attributes
        self._attributes = attributes
        self.attribute_names = attribute_names
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.rows)

    def images(self, positions: torch.Tensor) -> torch.Tensor:
        chosen = self.rows[positions.cpu().numpy()]
        return torch.from_numpy(np.take(self.pixels, chosen, axis=0)).to(self.device)

    def attributes(self) -> np.ndarray:
        """Each image's 40 attributes, ``(len, 40)`` ``int64``: 1 where it has the attribute, else 0."""
        return self._attributes[self.rows].astype(np.int64)

    def to(self, device: torch.device) -> CelebASplit:
        return CelebASplit(self.pixels, self.rows, self._attributes, self.attribute_names, device)


class CelebADataset(ImageDataset):
    """CelebA's official train and test partitions at 64×64, and the names of its 40 attributes."""

    name = "celeba"
    image_shape = (3, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self, train: CelebASplit, test: CelebASplit, folder: Path, crop: int) -> None:
        self.train = train
        self.test = test
        self.folder = folder
        self.crop = crop
        self.attribute_names = train.attribute_names


def load_celeba(
    data_dir: str | os.PathLike[str] | None = None, crop: int = DEFAULT_CROP, include_valid: bool = False
) -> CelebADataset:
    """CelebA from its files under ``data_dir`` (see the module docstring), cropped to ``crop``² and resized.

    ``include_valid`` trains on the official validation partition too. The first load
    (and one after the images changed) builds the resized cache, which takes a few
    minutes for the full set; a progress bar shows it on a terminal.
    """
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 1:
        raise BetaVAEError(f"crop must be a positive whole number of pixels (140 or 148, say), got {crop!r}")
    root = data_root(data_dir)
    folder = find_folder(root)
    names, partitions = read_partitions(folder / PARTITION_FILE)
    attribute_names, attributes = read_attributes(folder / ATTRIBUTE_FILE, names)
    pixels = cached_images(folder, names, crop)
    train_parts = (TRAIN, VALID) if include_valid else (TRAIN,)
    train = CelebASplit(pixels, np.flatnonzero(np.isin(partitions, train_parts)), attributes, attribute_names)
    test = CelebASplit(pixels, np.flatnonzero(partitions == TEST), attributes, attribute_names)
    for split, which in ((train, "training"), (test, "test")):
        if len(split) == 0:
            raise BetaVAEError(
                f"{folder / PARTITION_FILE} puts no image in the {which} partition; "
                f"use the official list_eval_partition.txt from {SOURCE}"
            )
    return CelebADataset(train, test, folder, crop)


def find_folder(root: Path) -> Path:
    """The folder holding CelebA's files: ``<root>/celeba`` or ``root``; missing files are one error."""
    searched = [root / "celeba", root]
    wanted = (IMAGE_FOLDER + "/", ATTRIBUTE_FILE, PARTITION_FILE)
    for folder in searched:
        if all((folder / name).exists() for name in wanted):
            return folder
    # Name what is missing in the folder that holds the most of them (else the first searched).
    folder = max(searched, key=lambda f: sum((f / name).exists() for name in wanted))
    missing = [name for name in wanted if not (folder / name).exists()]
    # Kaggle's copy has the lists as .csv files, which are laid out differently.
    kaggle = any((folder / name).with_suffix(".csv").exists() for name in (ATTRIBUTE_FILE, PARTITION_FILE))
    raise BetaVAEError(
        f"CelebA files missing: {', '.join(missing)} (searched {' and '.join(map(str, searched))}"
        f"{'; the .csv lists of a Kaggle copy are not read' if kaggle else ''}); "
        f"download img_align_celeba.zip (unpacked), {ATTRIBUTE_FILE} and {PARTITION_FILE} from {SOURCE} "
        f"(non-commercial research use only) into {root / 'celeba'}, or point --data-dir or "
        f"BETAVAE_DATA_DIR at the folder that holds them"
    )


def read_partitions(path: Path) -> tuple[list[str], np.ndarray]:
    """The image names of ``list_eval_partition.txt`` in file order, and each one's partition (0, 1 or 2)."""
    names, partitions = [], []
    for number, line in enumerate(path.read_text(encoding="ascii", errors="replace").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise _malformed(path, number, line, "an image name and its partition 0, 1 or 2")
        names.append(fields[0])
        partitions.append(int(fields[1]))
    if not names:
        raise _malformed(path, 1, "", "an image name and its partition 0, 1 or 2")
    if len(set(names)) != len(names):
        duplicate = next(name for name, count in Counter(names).items() if count > 1)
        raise BetaVAEError(
            f"{path} lists {duplicate} twice; use the official {PARTITION_FILE} from {SOURCE}"
        )
    return names, np.asarray(partitions, dtype=np.int64)


def read_attributes(path: Path, names: list[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """The 40 attribute names of ``list_attr_celeba.txt`` and a ``(len(names), 40)`` 0/1 ``uint8`` table.

    The file: the number of images, a line of the 40 names, then per image its name and
    40 values of 1 (has it) or -1, separated by one or more spaces. Rows follow ``names``
    (the partition file's order); an image of ``names`` the file omits is an error.
    """
    lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    if not lines or not lines[0].strip().isdigit():
        raise _malformed(path, 1, lines[0] if lines else "", "the number of images")
    header = tuple(lines[1].split()) if len(lines) > 1 else ()
    if len(header) != NUM_ATTRIBUTES:
        raise _malformed(path, 2, lines[1] if len(lines) > 1 else "", f"the {NUM_ATTRIBUTES} attribute names")
    listed, values = _attribute_rows(path, lines)
    if len(listed) != int(lines[0]):
        raise BetaVAEError(
            f"{path} says it lists {int(lines[0])} images but lists {len(listed)}; "
            f"use the official {ATTRIBUTE_FILE} from {SOURCE}"
        )
    if listed == names:  # the official files list the same images in the same order
        return header, (values == 1).astype(np.uint8)
    rows = {name: row for row, name in enumerate(listed)}
    absent = [name for name in names if name not in rows]
    if absent:
        raise BetaVAEError(
            f"{path} has no attributes for {len(absent)} image(s) of {PARTITION_FILE} "
            f"({', '.join(absent[:3])}{', …' if len(absent) > 3 else ''}); "
            f"use the two files of one release, from {SOURCE}"
        )
    return header, (values[[rows[name] for name in names]] == 1).astype(np.uint8)


def _attribute_rows(path: Path, lines: list[str]) -> tuple[list[str], np.ndarray]:
    """The image names and ``(n, 40)`` values of the lines after the header.

    Parsed in one pass of numpy's text reader (under a second for the full file, against
    about five line by line); only when that finds something wrong are the lines checked
    one by one, to say which is malformed.
    """
    names, rests = [], []
    for line in lines[2:]:
        fields = line.split(None, 1)
        if fields:
            names.append(fields[0])
            rests.append(fields[1] if len(fields) > 1 else "")
    with warnings.catch_warnings():
        # Text that stops the parse early warns (a future numpy raises); the size check catches it.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            values = np.fromstring(" ".join(rests), dtype=np.int64, sep=" ")
        except ValueError:
            values = np.empty(0, dtype=np.int64)
    # Each value, 1 or -1, holds exactly one "1": a row with a missing or extra value is caught here.
    if (
        values.size == NUM_ATTRIBUTES * len(names)
        and np.isin(values, (-1, 1)).all()
        and all(rest.count("1") == NUM_ATTRIBUTES for rest in rests)
    ):
        return names, values.reshape(len(names), NUM_ATTRIBUTES)
    expected = f"an image name and {NUM_ATTRIBUTES} values of 1 or -1"
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if fields and (len(fields) != NUM_ATTRIBUTES + 1 or not set(fields[1:]) <= {"1", "-1"}):
            raise _malformed(path, number, line, expected)
    raise _malformed(path, 3, lines[2] if len(lines) > 2 else "", expected)


def _malformed(path: Path, number: int, line: str, expected: str) -> BetaVAEError:
    shown = " ".join(line.split())
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return BetaVAEError(
        f"{path}, line {number}: expected {expected}, got {shown!r}; "
        f"use the official file from {SOURCE}"
    )


def center_crop_resize(image: Image.Image, crop: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """The centre ``crop``² square of ``image`` resized to ``size``² RGB: ``(3, size, size) uint8``.

    The square's corner is rounded as torchvision's ``CenterCrop`` rounds it (178×218 and
    140 have even margins, so there is nothing to round).
    """
    width, height = image.size
    if crop > width or crop > height:
        raise BetaVAEError(
            f"a {width}×{height} image is smaller than the {crop}×{crop} crop; "
            f"CelebA's aligned images are 178×218, so use a crop of at most 178"
        )
    left, top = int(round((width - crop) / 2)), int(round((height - crop) / 2))
    square = image.convert("RGB").crop((left, top, left + crop, top + crop))
    return np.asarray(square.resize((size, size), Image.BILINEAR)).transpose(2, 0, 1)


def cached_images(folder: Path, names: list[str], crop: int) -> np.ndarray:
    """Every image of ``names`` at 64×64: the memory-mapped cache, built first if absent or stale.

    One process builds while others wanting the same cache (a sweep's runs starting
    together) wait for it, then use it.
    """
    stem = f"celeba_{IMAGE_SIZE}x{IMAGE_SIZE}_crop{crop}"
    cache, record = folder / f"{stem}.npy", folder / f"{stem}.json"
    sources = source_record(folder / IMAGE_FOLDER, names, crop)
    pixels, _ = _trusted(cache, record, sources)
    if pixels is not None:
        return pixels
    with _exclusive(folder / f".{stem}.lock"):
        pixels, stale = _trusted(cache, record, sources)
        if pixels is not None:  # built by the process this one waited for
            return pixels
        if stale:
            print(f"celeba: {stale}; rebuilding it", file=sys.stderr)
        build_cache(folder / IMAGE_FOLDER, names, crop, cache)
        atomic_write_text(record, json.dumps(sources, indent=1) + "\n")
    pixels, stale = _trusted(cache, record, sources)
    assert pixels is not None, f"the cache just built is unusable: {stale}"
    return pixels


def _trusted(cache: Path, record: Path, sources: dict) -> tuple[np.ndarray | None, str | None]:
    """(the cache, memory-mapped read-only, None) if its record matches ``sources``, else (None, why not).

    Why not is None when there is no cache yet.
    """
    if not (cache.is_file() and record.is_file()):
        return None, None
    try:
        recorded = json.loads(record.read_text())
    except (OSError, ValueError):
        recorded = None
    if recorded != sources:
        return None, (
            f"the images in {cache.parent / IMAGE_FOLDER} differ from those {cache.name} was made from "
            f"({_described(recorded)} then, {_described(sources)} now)"
        )
    pixels = _mapped(cache, sources["images"])
    return (pixels, None) if pixels is not None else (None, f"{cache} is damaged")


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``, which the kernel drops however the process ends."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise _unwritable(path.parent, error) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"celeba: waiting for another process to finish building the cache in {path.parent}",
                  file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _unwritable(folder: Path, error: OSError) -> BetaVAEError:
    return BetaVAEError(
        f"cannot write the resized CelebA cache into {folder} ({error.strerror or error}); make the folder "
        f"writable, or copy the CelebA files to a writable folder and point --data-dir at it"
    )


def _mapped(cache: Path, count: int) -> np.ndarray | None:
    """The cache memory-mapped read-only, or None when it is not ``count`` images of 3×64×64 ``uint8``."""
    try:
        pixels = np.load(cache, mmap_mode="r")
    except (OSError, ValueError):  # truncated, or not an .npy file
        return None
    if pixels.shape != (count, 3, IMAGE_SIZE, IMAGE_SIZE) or pixels.dtype != np.uint8:
        return None
    return pixels


def source_record(image_folder: Path, names: list[str], crop: int) -> dict:
    """What a cache is made from: its settings, the image names and the JPEGs' count and total size.

    A listed image that is missing is an error here, before any decoding.
    """
    total_bytes, missing = 0, []
    # Relative to an open folder, the system resolves each name without walking the whole path.
    folder = os.open(image_folder, os.O_RDONLY) if os.stat in os.supports_dir_fd else None
    try:
        for name in names:
            try:
                if folder is None:
                    total_bytes += os.stat(image_folder / name).st_size
                else:
                    total_bytes += os.stat(name, dir_fd=folder).st_size
            except FileNotFoundError:
                missing.append(name)
    finally:
        if folder is not None:
            os.close(folder)
    if missing:
        raise BetaVAEError(
            f"{len(missing)} image(s) listed in {PARTITION_FILE} missing from {image_folder} "
            f"({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}); unpack the whole "
            f"img_align_celeba.zip from {SOURCE} there"
        )
    return {
        "format": CACHE_FORMAT,
        "crop": crop,
        "size": IMAGE_SIZE,
        "images": len(names),
        "names_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
        "total_bytes": total_bytes,
    }


def _described(record: dict | None) -> str:
    if not isinstance(record, dict):
        return "no readable record"
    return f"{record.get('images')} images, {record.get('total_bytes')} bytes, crop {record.get('crop')}"


def build_cache(image_folder: Path, names: list[str], crop: int, cache: Path) -> None:
    """Decode, crop and resize every image into ``cache`` (``.npy``), on every core, atomically.

    Pillow releases the interpreter lock while it decodes and resizes, so threads use
    all cores. The array is written under a temporary name beside ``cache`` and renamed
    when complete: an interrupted build leaves no cache a later load would trust.
    """
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{cache.stem}.", suffix=".npy.part", dir=cache.parent)
    except OSError as error:
        raise _unwritable(cache.parent, error) from None
    os.close(handle)
    try:
        pixels = np.lib.format.open_memmap(
            temporary, mode="w+", dtype=np.uint8, shape=(len(names), 3, IMAGE_SIZE, IMAGE_SIZE)
        )
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

        def decode(name: str) -> np.ndarray:
            path = image_folder / name
            try:
                with Image.open(path) as image:
                    return center_crop_resize(image, crop)
            except (OSError, UnidentifiedImageError, SyntaxError) as error:
                raise BetaVAEError(
                    f"{path} is not a readable JPEG ({error}); replace it with the file from {SOURCE}"
                ) from None
            except BetaVAEError as error:
                raise BetaVAEError(f"{path}: {error}") from None

        with (
            ThreadPoolExecutor(workers) as pool,
            tqdm(
                total=len(names), desc=f"resizing CelebA to {cache.name}", unit="img", delay=1.0, disable=None
            ) as progress,
        ):
            for start in range(0, len(names), _BUILD_CHUNK * workers):
                chunk = names[start : start + _BUILD_CHUNK * workers]
                pixels[start : start + len(chunk)] = np.stack(list(pool.map(decode, chunk)))
                progress.update(len(chunk))
        pixels.flush()
        del pixels
        os.chmod(temporary, usual_mode())  # mkstemp's 0600 would keep others from a shared cache
        os.replace(temporary, cache)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)

