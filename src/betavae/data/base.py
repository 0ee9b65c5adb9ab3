"""What every dataset offers: image splits, and for synthetic sets, known factors.

Images travel as ``uint8`` tensors of shape ``(B, C, H, W)`` holding 0..255 and are
turned into floats in [0, 1] only on the device, one batch at a time: a float32 copy
of dSprites would take 12 GB, its uint8 form 3 GB, and rendering on the fly nothing.

Datasets with known generative factors share :class:`FactorDataset`, the interface
the disentanglement metrics are written against: every image is addressed by an
integer index in ``range(len(dataset))`` that is a bijection with a vector of factor
indices (one per factor, ``0 <= f_k < factor_sizes[k]``). Some such sets also vary in
what is not a factor (a colour, noise: *nuisance* variation, drawn afresh for every image
rendered); their images come from the factors and a ``numpy.random.Generator``.
"""

from __future__ import annotations

import functools
import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch


class ImageSplit(ABC):
    """A fixed set of images addressed by position ``0 .. len(split) - 1``."""

    image_shape: tuple[int, int, int]
    # Whether a batch is made on the host (rendered, looked up, decoded) rather than
    # gathered from a tensor; training reads such splits ahead in a background thread.
    read_on_host: bool = False

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def images(self, positions: torch.Tensor) -> torch.Tensor:
        """The ``uint8`` images at ``positions`` (a 1-D ``int64`` tensor), on this split's device."""

    def labels(self) -> np.ndarray | None:
        """Class labels (MNIST digits), or None for sets without them."""
        return None

    def attributes(self) -> np.ndarray | None:
        """Binary attributes, ``(len, A)`` 0/1 in the order of the dataset's ``attribute_names``
        (CelebA's Smiling, …), or None for sets without them."""
        return None

    def to(self, device: torch.device) -> ImageSplit:
        """The same split, delivering its batches on ``device``."""
        return self


class TensorSplit(ImageSplit):
    """Images held in memory as one ``uint8`` tensor, gathered by index per batch."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"expected a uint8 (N, C, H, W) tensor, got {images.dtype} {tuple(images.shape)}"
            )
        self.data = images
        self.image_shape = tuple(images.shape[1:])  # type: ignore[assignment]
        self._labels = labels

    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def device(self) -> torch.device:
        return self.data.device

    def images(self, positions: torch.Tensor) -> torch.Tensor:
        if self.data.device.type == "cpu":
            # numpy's gather runs on the calling thread alone (and without the interpreter
            # lock); torch's would wake its thread pool, which, called from a reader thread,
            # competes with the training step's pool for the cores (training at 0.8 of its rate).
            return torch.from_numpy(np.take(self.data.numpy(), positions.cpu().numpy(), axis=0))
        return self.data[positions.to(self.data.device)]

    def labels(self) -> np.ndarray | None:
        return self._labels

    def to(self, device: torch.device) -> TensorSplit:
        if self.data.device == torch.device(device):
            return self
        return TensorSplit(self.data.to(device), self._labels)


class ImageDataset(ABC):
    """A named dataset with a training and a held-out test split."""

    name: str
    image_shape: tuple[int, int, int]
    train: ImageSplit
    test: ImageSplit
    attribute_names: tuple[str, ...] = ()  # the columns of the splits' attributes(), if they have any

    @property
    def num_pixels(self) -> int:
        """N in β_norm = β·M/N: the number of values the decoder predicts per image."""
        return math.prod(self.image_shape)


class FactorDataset(ImageDataset):
    """A dataset rendered from known, discrete generative factors.

    Subclasses define ``factor_names``, ``factor_sizes``, :meth:`factor_values` and
    :meth:`render`; enumeration, sampling and the index ↔ factors bijection follow.
    """

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    # Whether images also vary in what is not a factor (colour, noise), drawn from the generator
    # given to render: an image is then not a function of its index, and render needs a generator.
    has_nuisance: bool = False

    @abstractmethod
    def factor_values(self, factor: int | str) -> np.ndarray:
        """The real value behind each index of one factor (e.g. scale 0.5 … 1.0)."""

    @abstractmethod
    def render(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Images for factor-index vectors: ``(n, K) int`` → ``(n, C, H, W) uint8`` in 0..255.

        ``rng`` draws the nuisance variation of a set that has some (:attr:`has_nuisance`;
        such a set refuses None); the others ignore it and draw nothing from it.
        """

    def __len__(self) -> int:
        return math.prod(self.factor_sizes)

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def factor_index(self, factor: int | str) -> int:
        """The position of a factor given by name or position."""
        if isinstance(factor, str):
            if factor not in self.factor_names:
                from betavae.errors import unknown_choice

                raise unknown_choice("factor", factor, self.factor_names)
            return self.factor_names.index(factor)
        return int(factor)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor-index vectors drawn uniformly and independently: ``(n, K) int64``."""
        columns = [rng.integers(0, size, size=n) for size in self.factor_sizes]
        return np.stack(columns, axis=1).astype(np.int64)

    def index_to_factors(self, index: np.ndarray | Sequence[int]) -> np.ndarray:
        """Flat indices → factor-index vectors, row-major (the last factor varies fastest)."""
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"index out of range for {self.name} with {len(self)} images")
        return np.stack(np.unravel_index(index, self.factor_sizes), axis=-1).astype(np.int64)

    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        """Factor-index vectors → flat indices, the inverse of :meth:`index_to_factors`."""
        factors = np.asarray(factors, dtype=np.int64)
        return np.ravel_multi_index(tuple(factors.T), self.factor_sizes).astype(np.int64)

    def hold_out(self, test_size: int, seed: int) -> None:
        """Set ``train`` and ``test``: ``test_size`` images held out by ``seed`` (:func:`split_indices`);
        an impossible ``test_size`` is a one-line error naming the set and its size."""
        from betavae.errors import BetaVAEError

        try:
            train, test = split_indices(len(self), test_size, seed)
        except ValueError as error:
            raise BetaVAEError(f"{self.name}: {error} (the set has {len(self)} images)") from None
        self.train = FactorSplit(self, train)
        self.test = FactorSplit(self, test)

    def images_at(self, index: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The images at flat indices (``rng`` as for :meth:`render`); in-memory variants override
        this with a lookup."""
        return self.render(self.index_to_factors(index), rng)


class FactorSplit(ImageSplit):
    """A subset of a :class:`FactorDataset`, addressed through its flat indices.

    The nuisance variation of a set that has some (:attr:`FactorDataset.has_nuisance`) is
    drawn, for each call of :meth:`images`, from a generator of ``seed`` and the indices
    the call renders (:func:`nuisance_generator`), not from a generator advanced call by
    call. So the images of a call depend on what it asks for and nothing else: not on the
    other calls before it, on which thread makes them, or on which other splits of the
    dataset were read. Training reads its batches in blocks of steps aligned to step 0
    (:class:`~betavae.training.batches.BatchStream`), so the colours or noise of the batch at step
    ``s`` follow from the seeds and ``s`` alone and a resumed run sees the images an
    uninterrupted one would; the held-out loss and the figures read the same positions in
    the same calls every time, so they see the same images every time. Positions read again
    in another grouping draw other nuisance, as a fresh draw should.
    """

    read_on_host = True

    def __init__(
        self, dataset: FactorDataset, indices: np.ndarray, device: torch.device | str = "cpu", seed: int = 0
    ) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.image_shape = dataset.image_shape
        self.device = torch.device(device)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.indices)

    def factors(self) -> np.ndarray:
        """The factor-index vectors of this split's images, ``(len, K)``."""
        return self.dataset.index_to_factors(self.indices)

    def images(self, positions: torch.Tensor) -> torch.Tensor:
        chosen = self.indices[positions.cpu().numpy()]
        rng = nuisance_generator(self.seed, chosen) if self.dataset.has_nuisance else None
        return torch.from_numpy(self.dataset.images_at(chosen, rng)).to(self.device)

    def to(self, device: torch.device) -> FactorSplit:
        return FactorSplit(self.dataset, self.indices, device, self.seed)


def nuisance_generator(seed: int, index: np.ndarray) -> np.random.Generator:
    """The generator of the nuisance variation of the images at flat indices ``index``, read together.

    Keyed by ``seed`` and a 128-bit digest of the indices in their order, so that two reads
    of different images (or of the same images in another order) draw independently.
    """
    digest = hashlib.blake2b(np.ascontiguousarray(index, dtype=np.int64).tobytes(), digest_size=16).digest()
    return np.random.default_rng([seed, int.from_bytes(digest, "little")])


@functools.lru_cache(maxsize=8)
def split_indices(total: int, test_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A held-out split fixed by ``seed``: (sorted train indices, sorted test indices), read-only.

    Kept for the process: dSprites' split permutes and sorts 737,280 indices (a tenth of a second),
    and a study loads the set again for every run, metric and baseline.
    """
    if not 0 < test_size < total:
        raise ValueError(f"test_size must be between 1 and {total - 1}, got {test_size}")
    order = np.random.default_rng(seed).permutation(total)
    train, test = np.sort(order[test_size:]), np.sort(order[:test_size])
    train.setflags(write=False)
    test.setflags(write=False)
    return train, test
