"""A tiny CelebA folder in the real layout, written by the tests (the real set is 1.4 GB and licensed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# The 40 attributes of list_attr_celeba.txt, in the file's order.
ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
# Partitions of the 30 images: 20 train, 4 valid, 6 test, interleaved as in no real file but as a
# reader must not assume they are contiguous.
PARTITIONS = (0,) * 8 + (1, 1) + (0,) * 6 + (2, 2, 2) + (0,) * 6 + (1, 1) + (2, 2, 2)


def source_image(index: int, width: int = 178, height: int = 218) -> Image.Image:
    """A distinct image per index: coarse random blocks (so a shifted crop is seen) over a gradient."""
    rng = np.random.default_rng(index)
    blocks = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    pixels = np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    ramp = np.linspace(0, 60, width, dtype=np.float64)[None, :, None]
    return Image.fromarray(np.clip(pixels * 0.75 + ramp, 0, 255).astype(np.uint8))


def attribute_table(count: int, seed: int = 0) -> np.ndarray:
    """``(count, 40)`` values of 1 or -1; Smiling alternates, so every split has both classes."""
    values = np.where(np.random.default_rng(seed).random((count, len(ATTRIBUTES))) < 0.5, 1, -1)
    values[:, ATTRIBUTES.index("Smiling")] = np.where(np.arange(count) % 2 == 0, 1, -1)
    return values


def write_celeba_folder(folder: Path, partitions: tuple[int, ...] = PARTITIONS) -> Path:
    """``folder`` holding ``img_align_celeba/000001.jpg …`` and the two lists, formatted as the real files."""
    images = folder / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(len(partitions))]
    for i, name in enumerate(names):
        source_image(i).save(images / name, quality=95)
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{name} {partition}\n" for name, partition in zip(names, partitions, strict=True))
    )
    # The real file: the count, the names with a trailing space, then each value right-aligned in
    # two characters after a space ("-1  1"), so fields are separated by one or two spaces.
    rows = [name + "".join(f" {value:>2d}" for value in row) for name, row in
            zip(names, attribute_table(len(names)), strict=True)]
    (folder / "list_attr_celeba.txt").write_text(
        f"{len(names)}\n" + " ".join(ATTRIBUTES) + " \n" + "\n".join(rows) + "\n"
    )
    return folder
