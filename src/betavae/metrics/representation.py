"""Representations the metrics score, and how the metrics query them.

A *representation* is a function from a batch of images to codes:
``represent(images: uint8 array (n, C, H, W)) -> array (n, D)``. For a trained model it
is the posterior mean μ (:func:`model_representation`). Metrics never call it directly
but through :func:`encode_factors`, which renders factor vectors in chunks and encodes
each chunk, so no metric has a per-sample Python loop and memory stays bounded. A metric
hands it its own generator, from which a dataset with nuisance variation (a random
colour, noise) draws it, so the metric's numbers on such a set are reproducible for its
seed; other datasets draw nothing from it.

One representation is not a function of images: the ground-truth factors themselves,
the ceiling every metric is checked against. A representation with the attribute
``uses_factors = True`` is handed the factor-index vectors instead of images (and no
rendering happens), which also makes tests on known answers fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from betavae.data.base import FactorDataset
from betavae.errors import BetaVAEError

Representation = Callable[[np.ndarray], np.ndarray]

# Images rendered and encoded per call: large enough to keep matrix products efficient,
# small enough that a 64×64 chunk and its activations stay well under a gigabyte.
ENCODE_CHUNK = 2048
# Images per block of points a metric encodes in one call: bounds float64 codes even for
# a 4,096-dimensional pixel code (about 270 MB a block).
IMAGES_PER_BLOCK = 4 * ENCODE_CHUNK


def encode_factors(dataset: FactorDataset, represent: Representation, factors: np.ndarray,
                   rng: np.random.Generator | None = None, chunk: int = ENCODE_CHUNK) -> np.ndarray:
    """Codes ``(n, D)`` (float64) of the images with factor-index vectors ``factors`` ``(n, K)``.

    ``rng`` draws the images' nuisance variation (see :meth:`FactorDataset.render`): needed
    for a dataset that has some, unless the representation reads the factors themselves.
    """
    factors = np.asarray(factors, dtype=np.int64)
    if getattr(represent, "uses_factors", False):
        codes = np.asarray(represent(factors), dtype=np.float64)
    else:
        parts = [np.asarray(represent(dataset.render(factors[start:start + chunk], rng)), dtype=np.float64)
                 for start in range(0, len(factors), chunk)]
        if not parts:
            raise ValueError("no factors to encode")
        codes = np.concatenate(parts)
    if codes.ndim != 2 or len(codes) != len(factors):
        raise ValueError(f"a representation must return one code vector per image, got shape {codes.shape}")
    if not np.isfinite(codes).all():
        raise BetaVAEError("the representation gave NaN or infinite codes; a model whose training diverged "
                           "cannot be scored")
    return codes


def point_blocks(num_points: int, images_per_point: int) -> Iterator[int]:
    """Points per block, whole points only, so that a block encodes at most ~IMAGES_PER_BLOCK images.

    Metrics whose points are each made of many images (β-VAE and FactorVAE scores) encode
    block by block: one :func:`encode_factors` call per block, never one per point.
    """
    per_block = max(1, IMAGES_PER_BLOCK // images_per_point)
    for start in range(0, num_points, per_block):
        yield min(per_block, num_points - start)


def sample_codes(dataset: FactorDataset, represent: Representation, n: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` i.i.d. points: (codes ``(n, D)``, factor indices ``(n, K)``); ``rng`` draws the factors,
    then the images' nuisance variation if the dataset has some."""
    factors = dataset.sample_factors(n, rng)
    return encode_factors(dataset, represent, factors, rng), factors


# Images per forward pass when encoding: on a CPU, 512 keeps a batch's activations in cache (larger
# batches measured slower: docs/notes/sweep-throughput.md); a GPU takes a whole chunk at once.
CPU_ENCODE_BATCH = 512


def model_representation(model: torch.nn.Module, batch_size: int | None = None) -> Representation:
    """μ of a trained :class:`~betavae.models.BetaVAE`: the deterministic code of an image.

    Encodes a copy of the model in channels-last layout, in batches of ``batch_size`` (None:
    :data:`CPU_ENCODE_BATCH` on a CPU, a whole :data:`ENCODE_CHUNK` on a GPU), each layer
    fused with its ReLU (:class:`~betavae.models.inference.FusedEncoder`), with freed
    memory kept for reuse (:mod:`betavae.training.performance`): on a 2-core CPU that reaches
    0.85–0.98 of the fp32 matrix-product peak, against about a third in the default
    layout (``benchmarks/train_throughput.py --sections encode``), and the metrics
    encode millions of images.
    """
    import copy

    from betavae.models.inference import FusedEncoder
    from betavae.training.performance import MEMORY_FORMAT, fast_layout, keep_freed_memory

    keep_freed_memory()
    device = next(model.parameters()).device
    if batch_size is None:
        batch_size = CPU_ENCODE_BATCH if device.type == "cpu" else ENCODE_CHUNK
    snapshot = copy.deepcopy(model).eval().to(memory_format=MEMORY_FORMAT)
    encode = FusedEncoder(snapshot.encoder, snapshot.image_shape)

    @torch.inference_mode()
    def represent(images: np.ndarray) -> np.ndarray:
        codes = []
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start:start + batch_size]).to(device).float().div_(255)
            snapshot.check_images(x)
            mu = encode(fast_layout(x)).chunk(2, dim=1)[0]
            codes.append(mu.float().cpu())
        return torch.cat(codes).numpy()

    return represent


class CodeTable:
    """Every image's code, computed once: a representation that is a lookup.

    The β-VAE and FactorVAE scores encode 1.9 and 1.0 million images at their default
    sizes, while dSprites has 737,280 distinct images: encoding each once and looking the
    codes up gives the same codes (μ is deterministic) for a fraction of the work. Not so
    for a dataset with nuisance variation, whose image at an index differs at every draw:
    it has no table.
    """

    uses_factors = True

    def __init__(self, dataset: FactorDataset, represent: Representation, chunk: int = 8 * ENCODE_CHUNK,
                 progress: bool | None = None) -> None:
        from tqdm.auto import tqdm

        if dataset.has_nuisance:
            raise ValueError(f"{dataset.name} draws every image afresh; a table of one code per index "
                             "would freeze one draw")
        self._dataset = dataset
        parts = []
        with tqdm(total=len(dataset), desc="encoding every image", unit="img",
                  disable=None if progress is None else not progress, delay=2.0) as bar:
            for start in range(0, len(dataset), chunk):
                index = np.arange(start, min(start + chunk, len(dataset)))
                parts.append(
                    encode_factors(dataset, represent, dataset.index_to_factors(index)).astype(np.float32)
                )
                bar.update(len(index))
        self.codes = np.concatenate(parts)

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        return self.codes[self._dataset.factors_to_index(factors)]


class FactorRepresentation:
    """The ground-truth factor values as the code: the ceiling of every metric."""

    uses_factors = True

    def __init__(self, dataset: FactorDataset) -> None:
        self._values = [dataset.factor_values(k) for k in range(dataset.num_factors)]

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        return np.stack([values[factors[:, k]] for k, values in enumerate(self._values)], axis=1)
