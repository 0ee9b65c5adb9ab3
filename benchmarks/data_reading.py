"""Training fed by each dataset's own reader against the same images held in memory.

For each dataset (default: every registry dataset of 64×64 RGB images that loads here),
a conv64 training step at ``--batch`` is timed fed three ways, in interleaved rounds:

- ``in memory``: the images gathered from a tensor in the training loop (the reference);
- ``host memory, read ahead``: the same tensor through the background reader thread, the
  reader's mechanics without the dataset's work;
- ``own reader, read ahead``: the dataset's own split (rendered, read from a file, looked
  up in a cache) through the reader thread, as ``betavae train`` feeds it.

Each round times the feeds between two in-memory timings and divides by the better of
those. The goal is ``own reader`` at ≥ 0.95 of in memory. Also printed: the reader alone,
images/s of 1,024-image reads on one thread with nothing else running.

``shapes3d`` reads ``3dshapes.h5`` from the data folder (``--data-dir``, else
``$BETAVAE_DATA_DIR``, else the user cache) when it is there; otherwise it reads a
synthetic file in the real layout (drawn scenes, 64×64×3 ``uint8`` per image, so the same
bytes per image as the real one), written once into a temporary folder, stored as
``--shapes3d-storage`` says. Just written, that file is in the operating system's page
cache, as a file read every epoch would be.

    python benchmarks/data_reading.py [--datasets shapes3d,color_dsprites] [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from betavae import data
from betavae.config import TrainConfig
from betavae.data.base import ImageSplit, TensorSplit
from betavae.data.mnist import data_root
from betavae.device import resolve_device
from betavae.errors import BetaVAEError
from betavae.training import performance
from betavae.training.batches import BatchStream
from betavae.training.setup import assemble
from train_throughput import HeldImages, calls_per_second

GOAL = 0.95
FEEDS = ("host memory, read ahead", "own reader, read ahead")
# How the synthetic 3dshapes.h5 stores its images (h5py create_dataset options). The real file's
# storage is not documented; its 255 MiB download for 5.9 GB of pixels says it is compressed.
SHAPES3D_STORAGE = {
    "contiguous": {},  # h5py's default
    "gzip-image": {"chunks": (1, 64, 64, 3), "compression": "gzip"},
    "gzip-h5py": {"chunks": True, "compression": "gzip"},  # h5py's own chunk shape, cutting images
}
SHAPES3D_SIZES = (10, 10, 10, 2, 2, 5)  # 20,000 images of the real file's factors


class FirstImages(ImageSplit):
    """The first ``count`` images of ``split``, read by the split's own reader."""

    def __init__(self, split: ImageSplit, count: int) -> None:
        self.split, self.count = split, count
        self.image_shape = split.image_shape
        self.read_on_host = split.read_on_host

    def __len__(self) -> int:
        return self.count

    def images(self, positions: torch.Tensor) -> torch.Tensor:
        return self.split.images(positions)


def rgb_datasets() -> list[str]:
    return [name for name, entry in data.DATASETS.items() if entry.image_shape == (3, 64, 64)]


def load_dataset(name: str, args, folder: Path):
    """Dataset ``name`` as small as its options make it, and a line saying what was loaded."""
    options = {"test_size": 1000} if "test_size" in data.options_of(name) else {}
    if "data_dir" in data.options_of(name):
        options["data_dir"] = args.data_dir
    try:
        dataset = data.load(name, **options)
        return dataset, f"stored {dataset.storage}" if name == "shapes3d" else "as registered"
    except BetaVAEError as error:
        if name == "celeba":
            return _synthetic_celeba(error, options, folder)
        if name != "shapes3d":
            raise
        from betavae.data.shapes3d import FILE_NAME, write_synthetic

        storage = SHAPES3D_STORAGE[args.shapes3d_storage]
        started = time.perf_counter()
        write_synthetic(folder / FILE_NAME, SHAPES3D_SIZES, **storage)
        options["data_dir"] = str(folder)
        dataset = data.load(name, **options)
        return dataset, (
            f"{FILE_NAME} not found ({str(error).split(';')[0]}): a synthetic file of {len(dataset):,} drawn "
            f"scenes, stored {dataset.storage}, {(folder / FILE_NAME).stat().st_size / 1e6:.0f} MB, "
            f"written in {time.perf_counter() - started:.0f} s"
        )


def _synthetic_celeba(error: BetaVAEError, options: dict, folder: Path, count: int = 3_000):
    """CelebA in its real layout, ``count`` generated 178×218 JPEGs, when the real folder is absent."""
    from celeba_reading import write_folder

    started = time.perf_counter()
    write_folder(folder / "celeba", count)
    options["data_dir"] = str(folder)
    dataset = data.load("celeba", **options)  # builds the one-time 64×64 cache, as a first load does
    return dataset, (f"CelebA not found ({str(error).split(';')[0]}): {count:,} generated JPEGs in its "
                     f"layout, cached in {time.perf_counter() - started:.0f} s")


def training_rate(split: ImageSplit, read_ahead: bool | None, args, device: torch.device) -> float:
    """Images/s of conv64 training steps fed from ``split``, as ``betavae train`` runs them."""
    config = TrainConfig(arch="conv64", latent_dim=10, batch_size=args.batch, device=str(device))
    take_step = assemble(config, HeldImages(split)).take_step
    with BatchStream(split, args.batch, seed=0, start=0, device=device, read_ahead=read_ahead) as stream:
        return args.batch * calls_per_second(lambda: take_step(stream.next()), args.seconds, device)


def reader_rate(split: ImageSplit, seconds: float, batch: int = 1024) -> float:
    """Images/s of the split's reader alone: random 1,024-image reads on this thread."""
    rng = np.random.default_rng(0)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        split.images(torch.from_numpy(rng.choice(len(split), min(batch, len(split)), replace=False)))
        count += min(batch, len(split))
    return count / (time.perf_counter() - start)


def compare(name: str, args, device: torch.device, folder: Path) -> None:
    try:
        dataset, origin = load_dataset(name, args, folder)
    except BetaVAEError as error:
        print(f"\n## {name}: not measured, it does not load here ({error})")
        return
    count = min(args.images, len(dataset.train))
    own = FirstImages(dataset.train, count)
    held = TensorSplit(own.images(torch.arange(count)))
    print(f"\n## {name}: {origin}; {count:,} training images, conv64, batch {args.batch}")
    print(f"reader alone: {reader_rate(own, args.seconds):,.0f} images/s (1,024-image reads, one thread)")
    in_memory: list[float] = []
    ratios: dict[str, list[float]] = {feed: [] for feed in FEEDS}
    for _ in range(args.rounds):
        first = training_rate(held, None, args, device)
        rates = (training_rate(held, True, args, device), training_rate(own, True, args, device))
        in_memory.append(max(first, training_rate(held, None, args, device)))
        for feed, rate in zip(FEEDS, rates, strict=True):
            ratios[feed].append(rate / in_memory[-1])
    baseline = float(np.median(in_memory))
    print(f"{'feed':<24} {'images/s':>9}  of in memory (median over {args.rounds} rounds, range)")
    print(f"{'in memory':<24} {baseline:>9.0f}  1.00  ({min(in_memory):.0f}–{max(in_memory):.0f} images/s)")
    for feed, values in ratios.items():
        median = float(np.median(values))
        print(f"{feed:<24} {median * baseline:>9.0f}  {median:.2f}  ({min(values):.2f}–{max(values):.2f})")
    verdict = "meets" if np.median(ratios[FEEDS[1]]) >= GOAL else "misses"
    print(f"goal: own reader ≥ {GOAL:.2f} of in memory: {verdict} it")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default=",".join(rgb_datasets()), help="comma-separated registry names")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--images", type=int, default=20_000, help="training images each feed cycles over")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per feed and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", help="where dataset files are; also $BETAVAE_DATA_DIR")
    parser.add_argument("--shapes3d-storage", choices=list(SHAPES3D_STORAGE), default="contiguous",
                        help="how a synthetic 3dshapes.h5 stores its images  [default: contiguous, h5py's]")
    args = parser.parse_args()
    device = resolve_device(args.device)
    threads = f"{torch.get_num_threads()} CPU threads"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else threads
    print(f"torch {torch.__version__}, {name}; data folder {data_root(args.data_dir)}")
    performance.keep_freed_memory()
    with tempfile.TemporaryDirectory(prefix="betavae-data-reading-") as folder:
        for dataset in args.datasets.split(","):
            compare(dataset, args, device, Path(folder))


if __name__ == "__main__":
    main()
