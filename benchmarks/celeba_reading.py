"""CelebA reading against the training step: does the reader keep training at its in-memory rate?

Trains conv64 (3 channels, batch 64 by default) on the training images of a generated
CelebA folder of real-size JPEGs (178×218, about 11 KB each, a little more than the real
files' 7 KB, so decoding is if anything slower than on the real set), fed three ways:

- ``in memory``: the same 64×64 images held as one tensor (:class:`TensorSplit`),
  gathered in the training loop: the rate to keep;
- ``memory, read ahead``: the same tensor, gathered in the reader thread: what the
  thread itself costs, which tells its cost from the reading's;
- ``cache, read ahead``: betavae's way, batches gathered from the memory-mapped resized
  cache in the reader thread (:class:`betavae.data.celeba.CelebASplit`);
- ``decoded, read ahead``: every batch decoded, cropped and resized from the JPEGs in the
  reader thread (:class:`DecodedSplit`), the alternative the cache was chosen over.

Each round times every feed between two in-memory timings and divides by the better
of those, so the ratios hold on a noisy shared machine; the goal is ≥ 0.95 for the
cache. Also prints the one-time cost of building the cache and of checking it at load.

    python benchmarks/celeba_reading.py [--images 3000] [--rounds 3] [--seconds 3] [--folder DIR]

:func:`compare_feeds` takes any ``rate(split, read_ahead) -> images/s``, to plug into
another benchmark's training loop.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from betavae import data
from betavae.config import TrainConfig
from betavae.data.base import ImageSplit, TensorSplit
from betavae.data.celeba import ATTRIBUTE_FILE, IMAGE_FOLDER, PARTITION_FILE, CelebASplit, center_crop_resize
from betavae.device import resolve_device
from betavae.training import performance
from betavae.training.batches import BatchStream
from betavae.training.setup import assemble
from train_throughput import HeldImages


def face_like(index: int) -> Image.Image:
    """A 178×218 photo stand-in: smooth colour fields, a few soft shapes and sensor-like noise."""
    rng = np.random.default_rng(index)
    image = Image.fromarray(rng.integers(0, 256, (7, 6, 3), dtype=np.uint8)).resize((178, 218), Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.integers(0, 178), rng.integers(0, 218)
        w, h = rng.integers(10, 90, 2)
        draw.ellipse((x, y, x + w, y + h), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1.2))).astype(np.int16)
    pixels += rng.normal(0, 6, pixels.shape).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_folder(folder: Path, count: int) -> Path:
    """A CelebA folder of ``count`` JPEGs in the real layout: 80% train, 10% valid, 10% test."""
    images = folder / IMAGE_FOLDER
    images.mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(count)]
    with ThreadPoolExecutor() as pool:
        list(pool.map(lambda i: face_like(i).save(images / names[i], quality=90), range(count)))
    partitions = np.searchsorted([int(0.8 * count), int(0.9 * count)], np.arange(count), side="right")
    lines = [f"{name} {partition}\n" for name, partition in zip(names, partitions, strict=True)]
    (folder / PARTITION_FILE).write_text("".join(lines))
    values = np.where(np.random.default_rng(0).random((count, 40)) < 0.5, 1, -1)
    header = " ".join(f"attribute_{k}" for k in range(40))
    rows = [name + "".join(f" {v:>2d}" for v in row) for name, row in zip(names, values, strict=True)]
    (folder / ATTRIBUTE_FILE).write_text(f"{count}\n{header} \n" + "\n".join(rows) + "\n")
    return folder


class DecodedSplit(ImageSplit):
    """Images decoded from the JPEGs per batch (the alternative to the cache), read on the host."""

    read_on_host = True
    image_shape = (3, 64, 64)

    def __init__(self, paths: list[Path], crop: int) -> None:
        self.paths, self.crop = paths, crop

    def __len__(self) -> int:
        return len(self.paths)

    def images(self, positions: torch.Tensor) -> torch.Tensor:
        decoded = []
        for position in positions.tolist():
            with Image.open(self.paths[position]) as image:
                decoded.append(center_crop_resize(image, self.crop))
        return torch.from_numpy(np.stack(decoded))


def training_rate(
    split: ImageSplit, read_ahead: bool | None, batch_size: int, seconds: float, device: torch.device,
) -> float:
    """Images/s of betavae's training step (as in ``betavae train``, conv64) fed from ``split``."""
    return timed_training(split, read_ahead, batch_size, seconds, device)[0]


def timed_training(
    split: ImageSplit, read_ahead: bool | None, batch_size: int, seconds: float, device: torch.device,
    arch: str = "conv64",
) -> tuple[float, float]:
    """(images/s, CPU seconds per step, all threads) over ``seconds``, after 3 warm-up steps.

    The step is the one ``betavae train`` takes (:func:`betavae.training.setup.assemble`).
    """
    config = TrainConfig(arch=arch, latent_dim=10, batch_size=batch_size, device=str(device))
    take_step = assemble(config, HeldImages(split)).take_step
    with BatchStream(split, batch_size, seed=0, start=0, device=device, read_ahead=read_ahead) as stream:
        for _ in range(3):
            take_step(stream.next())
        synchronize(device)
        count, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            take_step(stream.next())
            count += 1
        synchronize(device)
        return batch_size * count / (time.perf_counter() - start), (time.process_time() - cpu) / count


def reader_cpu(split: ImageSplit, batch_size: int, batches: int = 16) -> float:
    """CPU seconds the calling thread spends reading one batch: the reader thread's cost per step."""
    positions = torch.from_numpy(np.random.default_rng(0).permutation(len(split))[: batch_size * batches])
    split.images(positions[:batch_size])  # warm the page cache and the decoder
    start = time.thread_time()
    for chunk in positions.split(batch_size):
        split.images(chunk)
    return (time.thread_time() - start) / batches


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare_feeds(
    rate: Callable[[ImageSplit, bool | None], float],
    held: TensorSplit,
    feeds: dict[str, tuple[ImageSplit, bool | None]],
    rounds: int,
) -> tuple[list[float], dict[str, list[float]]]:
    """In-memory images/s per round, and each feed's ratio to it per round.

    ``feeds``: name → (split, read_ahead), ``read_ahead`` as :class:`BatchStream` takes it.
    Each round times every feed between two in-memory timings and divides by the better
    of those: on a shared machine, timings minutes apart differ more than the feeds do.
    """
    in_memory: list[float] = []
    ratios: dict[str, list[float]] = {name: [] for name in feeds}
    for _ in range(rounds):
        first = rate(held, None)
        rates = {name: rate(split, read_ahead) for name, (split, read_ahead) in feeds.items()}
        in_memory.append(max(first, rate(held, None)))
        for name in feeds:
            ratios[name].append(rates[name] / in_memory[-1])
    return in_memory, ratios


def print_feeds(title: str, in_memory: list[float], ratios: dict[str, list[float]]) -> None:
    baseline = float(np.median(in_memory))
    print(f"\n## {title}")
    print(f"{'feed':<22} {'images/s':>9}  of in memory (median over rounds, range)")
    print(f"{'in memory':<22} {baseline:>9.0f}  1.00  ({min(in_memory):.0f}–{max(in_memory):.0f} images/s)")
    for name, values in ratios.items():
        median = float(np.median(values))
        print(f"{name:<22} {median * baseline:>9.0f}  {median:>4.2f}  ({min(values):.2f}–{max(values):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=3000, help="JPEGs in the generated folder")
    parser.add_argument("--folder", help="generate into (or reuse) this folder  [default: a temporary one]")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per feed and round")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    performance.keep_freed_memory()
    with tempfile.TemporaryDirectory(prefix="celeba-reading-") as temporary:
        folder = Path(args.folder or temporary)
        if not (folder / PARTITION_FILE).is_file():
            start = time.perf_counter()
            write_folder(folder, args.images)
            print(f"wrote {args.images} JPEGs of 178×218 in {time.perf_counter() - start:.1f} s")
        jpeg_bytes = [path.stat().st_size for path in (folder / IMAGE_FOLDER).iterdir()]
        print(f"{len(jpeg_bytes)} JPEGs, {np.mean(jpeg_bytes) / 1024:.1f} KB each on average")
        for cache in folder.glob("celeba_64x64_*"):
            cache.unlink()
        start = time.perf_counter()
        dataset = data.load("celeba", data_dir=folder)
        built = time.perf_counter() - start
        start = time.perf_counter()
        dataset = data.load("celeba", data_dir=folder)
        checked = time.perf_counter() - start
        count = len(jpeg_bytes)
        print(f"cache built in {built:.2f} s ({count / built:.0f} images/s on {os.cpu_count()} cores); "
              f"a later load checks and maps it in {checked * 1e3:.0f} ms "
              f"(about {checked / count * 202_599:.1f} s for the full 202,599)")
        train = dataset.train
        assert isinstance(train, CelebASplit)
        held = TensorSplit(torch.from_numpy(np.take(train.pixels, train.rows, axis=0)))
        names = sorted(path.name for path in (folder / IMAGE_FOLDER).iterdir())
        decoded = DecodedSplit([folder / IMAGE_FOLDER / names[row] for row in train.rows], dataset.crop)
        batch = args.batch_size
        print(f"CPU time per batch of {batch} (thread time, so it holds on a busy machine): "
              f"reading from the cache {reader_cpu(train, batch) * 1e3:.2f} ms, decoding "
              f"{reader_cpu(decoded, batch) * 1e3:.1f} ms; the training step fed from memory "
              f"{timed_training(held, None, batch, args.seconds, device)[1] * 1e3:.0f} ms (all its threads)")

        def rate(split: ImageSplit, read_ahead: bool | None) -> float:
            return training_rate(split, read_ahead, args.batch_size, args.seconds, device)

        feeds = {"memory, read ahead": (held, True), "cache, read ahead": (train, None),
                 "decoded, read ahead": (decoded, None)}
        in_memory, ratios = compare_feeds(rate, held, feeds, args.rounds)
        threads = f"{torch.get_num_threads()} CPU threads"
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else threads
        print_feeds(
            f"CelebA training, conv64, batch {args.batch_size}, {len(train)} images, {where}: "
            f"read from the cache or decoded per batch, against held in memory",
            in_memory, ratios,
        )
        print("goal: the cache, read ahead, at ≥ 0.95 of in memory")


if __name__ == "__main__":
    main()
