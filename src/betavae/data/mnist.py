"""MNIST (LeCun, Bottou, Bengio & Haffner, 1998): 70,000 handwritten digits, 28×28.

β-VAE papers use MNIST as a sanity check with no ground-truth factors; we keep the
official 60,000/10,000 train/test split so numbers compare across papers. A ``test_size``
below 10,000 holds out that many of the official test images (the same ones for every run, drawn
by a fixed seed across the whole set, whose two halves come from different writers): a quick
run's held-out loss in a fraction of the time, on images no run trained on.

The four IDX files are looked for under one root folder: the ``data_dir`` argument,
else ``$BETAVAE_DATA_DIR``, else the user cache (``$XDG_CACHE_HOME/betavae`` or
``~/.cache/betavae``); in it, either in ``mnist/`` or at the top level, each gzipped
or not. Missing files are downloaded into ``<root>/mnist/``. Every file's
*decompressed* content is checked against the SHA-256 of the official release, so a
damaged file, or one gzipped differently, is caught (or accepted) by what it holds.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from http.client import HTTPException
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from betavae import __version__
from betavae.data.base import ImageDataset, TensorSplit, split_indices
from betavae.data.idx import parse_idx, read_decompressed
from betavae.errors import BetaVAEError
from betavae.files import user_cache, usual_mode

# file stem -> SHA-256 of its decompressed content (the files of the original release).
FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Tried in order; yann.lecun.com comes last because it often refuses or rate-limits.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

DOWNLOAD_TIMEOUT_S = 30.0
_CHUNK_BYTES = 1 << 20


class MNISTDataset(ImageDataset):
    """The official MNIST splits, held in memory as ``uint8`` tensors (55 MB in all)."""

    name = "mnist"
    image_shape = (1, 28, 28)

    def __init__(self, train: TensorSplit, test: TensorSplit) -> None:
        self.train = train
        self.test = test


# The seed that draws a held-out subset of the official test set (test_size): fixed, so that every
# run of a study is tested on the same images.
TEST_SUBSET_SEED = 0


def load_mnist(data_dir: str | os.PathLike[str] | None = None, download: bool = True,
               test_size: int | None = None) -> MNISTDataset:
    """Load MNIST from ``data_dir`` (see the module docstring for where it looks).

    ``download=False`` never touches the network: missing files are then an error
    that says where to put them. ``test_size``: that many images of the official test set
    (all 10,000 when None), a one-line error outside 1 … 10,000.
    """
    root = data_root(data_dir)
    searched = [root / "mnist", root]
    paths = {stem: _find(stem, searched) for stem in FILES}
    missing = [stem for stem, path in paths.items() if path is None]
    if missing and not download:
        raise _missing_error(missing, root, searched, "download=False")
    for stem in missing:
        try:
            paths[stem] = _download(stem, root / "mnist")
        except BetaVAEError as error:
            # The mirrors that failed for this file would fail for the next ones too.
            unfetched = [name for name in missing if paths[name] is None]
            raise _missing_error(unfetched, root, searched, str(error)) from None
    arrays = {stem: _read_verified(stem, path) for stem, path in paths.items()}  # type: ignore[arg-type]
    test_images, test_labels = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    if test_size is not None and test_size != len(test_labels):
        whole = isinstance(test_size, int) and not isinstance(test_size, bool)
        if not whole or not 0 < test_size < len(test_labels):
            raise BetaVAEError(f"test_size must be between 1 and {len(test_labels)} for MNIST (images of its "
                               f"official test set), got {test_size}")
        _, kept = split_indices(len(test_labels), test_size, TEST_SUBSET_SEED)
        test_images, test_labels = test_images[kept], test_labels[kept]
    return MNISTDataset(
        train=_split(arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]),
        test=_split(test_images, test_labels),
    )


DATA_DIR_VARIABLE = "BETAVAE_DATA_DIR"  # the environment's data folder, when no data_dir is given


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder datasets live under: ``data_dir``, else ``$BETAVAE_DATA_DIR``, else the user cache."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_DIR_VARIABLE):
        return Path(os.environ[DATA_DIR_VARIABLE]).expanduser()
    return user_cache()


def _missing_error(missing: list[str], root: Path, searched: list[Path], reason: str) -> BetaVAEError:
    where = " and ".join(str(folder) for folder in searched)
    return BetaVAEError(
        f"MNIST files missing: {', '.join(missing)} (searched {where}; {reason}); "
        f"put the four MNIST IDX files (.gz is fine) into {root / 'mnist'} or point data_dir or "
        f"BETAVAE_DATA_DIR at a folder that holds them"
    )


def _find(stem: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _read_verified(stem: str, path: Path) -> np.ndarray:
    raw = read_decompressed(path)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != FILES[stem]:
        raise BetaVAEError(
            f"{path} is corrupt: the SHA-256 of its content is {digest}, not that of the official {stem} "
            f"({FILES[stem]}); delete it and load again to re-download it, or replace it with a good copy"
        )
    return parse_idx(raw, source=str(path))


def _split(images: np.ndarray, labels: np.ndarray) -> TensorSplit:
    pixels = torch.from_numpy(images).reshape(-1, 1, 28, 28)
    return TensorSplit(pixels, labels.astype(np.int64))


def _download(stem: str, folder: Path) -> Path:
    """Fetch ``<stem>.gz`` from the first mirror that serves it intact; the path it now has.

    The body goes to a hidden temporary file in ``folder`` that is renamed into place
    only after its checksum matches, so an interrupted or wrong download never leaves
    a file that a later run would take for the real one.
    """
    failures = []
    for mirror in MIRRORS:
        url = mirror + stem + ".gz"
        try:
            return _fetch_verified(url, stem, folder)
        except (OSError, HTTPException, BetaVAEError) as error:
            failures.append(f"{url}: {error}")
    raise BetaVAEError(f"could not download {stem}.gz: " + "; ".join(" ".join(f.split()) for f in failures))


def _fetch_verified(url: str, stem: str, folder: Path) -> Path:
    request = urllib.request.Request(url, headers={"User-Agent": f"betavae/{__version__}"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
        size = int(response.headers.get("Content-Length") or 0)
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=folder)
        try:
            received = 0
            with (
                os.fdopen(handle, "wb") as file,
                tqdm(
                    total=size or None,
                    unit="B",
                    unit_scale=True,
                    desc=f"{stem}.gz",
                    disable=None,
                    leave=False,
                ) as progress,
            ):
                while chunk := response.read(_CHUNK_BYTES):
                    file.write(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
            # http.client returns a short body without complaint when the server hangs up.
            if size and received != size:
                raise BetaVAEError(f"the connection closed after {received} of {size} bytes")
            try:
                content = read_decompressed(temporary)
            except BetaVAEError:
                raise BetaVAEError("the server sent a damaged gzip file") from None
            digest = hashlib.sha256(content).hexdigest()
            if digest != FILES[stem]:
                raise BetaVAEError(f"the file it sent is not the official one (SHA-256 {digest})")
            target = folder / f"{stem}.gz"
            os.chmod(temporary, usual_mode())  # mkstemp's 0600 would keep others from a shared cache
            os.replace(temporary, target)
            return target
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
