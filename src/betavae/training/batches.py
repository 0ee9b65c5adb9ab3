"""Training batches: which images each step sees, and getting them to the model in time.

:class:`BatchOrder` fixes the order: the batch at step ``s`` follows from ``(seed, s)``
alone, so a resumed run sees exactly the batches an uninterrupted one would.

:class:`BatchStream` delivers them as float images in [0, 1] on the device, in the
models' memory layout. A split held in memory is gathered on the device itself (no
host round trip, no sync on CUDA). A split that is rendered or looked up on the host
(dSprites, Shapes) is read a few steps ahead in a background thread, so the model never
waits for the renderer: rendering is CPU time that a GPU step would otherwise wait for
every time (how much: docs/notes/performance.md).
"""

from __future__ import annotations

import queue
import threading

import numpy as np
import torch

from betavae.data.base import ImageSplit
from betavae.errors import BetaVAEError
from betavae.training.performance import fast_layout

# Batches read ahead of the step that uses them: enough to absorb a slow render, few
# enough that the memory held is negligible (a dSprites batch of 64 is 256 KB).
READ_AHEAD = 4
# The reader renders at least this many images per call, several steps' batches at once:
# the renderer's Python overhead holds the interpreter lock, which the training thread
# needs to launch GPU kernels, and per image it shrinks with the call's size.
IMAGES_PER_READ = 1024


class BatchOrder:
    """Epoch-wise shuffling where the batch at any step follows from ``(seed, step)`` alone.

    Each epoch is a fresh permutation drawn from ``(seed, epoch)``; the incomplete last
    batch of an epoch is dropped so every batch has the same size. ``device`` is where
    the positions are handed out (the device of an in-memory split, so gathering a batch
    needs no host-to-device copy).
    """

    def __init__(self, size: int, batch_size: int, seed: int, device: torch.device | str = "cpu") -> None:
        if batch_size > size:
            raise BetaVAEError(f"batch size {batch_size} is larger than the training set ({size} images)")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.device = torch.device(device)
        self.batches_per_epoch = size // batch_size
        self._epoch = -1
        self._permutation = torch.empty(0, dtype=torch.int64)

    def positions(self, step: int) -> torch.Tensor:
        epoch, batch = divmod(step, self.batches_per_epoch)
        if epoch != self._epoch:
            generator = np.random.default_rng((self.seed, epoch))
            self._permutation = torch.from_numpy(generator.permutation(self.size)).to(self.device)
            self._epoch = epoch
        return self._permutation[batch * self.batch_size:(batch + 1) * self.batch_size]


class BatchStream:
    """The float batches of steps ``start, start + 1, …`` on ``device``; use as a context manager.

    ``next()`` returns the next step's batch. With ``read_ahead`` (the default for splits
    read on the host) a daemon thread reads batches ahead, :data:`IMAGES_PER_READ` images
    a call; an error in it is raised by the ``next()`` that would have received the batch.
    Its calls read the same blocks of steps, counted from step 0, whatever the step the
    stream starts at: a dataset whose images vary in more than their factors (a random
    colour, noise) draws that per call (:class:`~betavae.data.base.FactorSplit`), so the
    batches of a resumed run are those of an uninterrupted one on such a set too (read inline,
    one step a call, it draws others).
    """

    def __init__(self, split: ImageSplit, batch_size: int, seed: int, start: int, device: torch.device,
                 read_ahead: bool | None = None) -> None:
        self.device = device
        self.read_ahead = split.read_on_host if read_ahead is None else read_ahead
        self.split = split.to(torch.device("cpu") if self.read_ahead else device)
        order_device = "cpu" if self.read_ahead else getattr(self.split, "device", "cpu")
        self.order = BatchOrder(len(split), batch_size, seed, order_device)
        self.step = start
        self._pin = self.read_ahead and device.type == "cuda"
        self._steps_per_read = max(1, IMAGES_PER_READ // batch_size)
        self._queue: queue.Queue = queue.Queue(maxsize=max(READ_AHEAD, 2 * self._steps_per_read))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BatchStream:
        if self.read_ahead:
            self._thread = threading.Thread(
                target=self._read, args=(self.step,), name="betavae-batches", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():  # unblock a reader waiting on a full queue
                try:
                    self._queue.get(timeout=0.05)
                except queue.Empty:
                    pass
            self._thread = None

    def next(self) -> torch.Tensor:
        if self.read_ahead:
            images = self._queue.get()
            if isinstance(images, BaseException):
                raise images
        else:
            images = self.split.images(self.order.positions(self.step))
        self.step += 1
        x = images.to(self.device, non_blocking=True).float().div_(255)
        return fast_layout(x)

    def _read(self, step: int) -> None:
        skip = step % self._steps_per_read  # the block's batches before the first step wanted
        step -= skip
        while not self._stop.is_set():
            steps = range(step, step + self._steps_per_read)
            try:
                images = self.split.images(torch.cat([self.order.positions(s) for s in steps]))
                if self._pin:
                    images = pinned_copy(images)
            except BaseException as error:  # handed to the training thread, which raises it
                self._queue.put(error)
                return
            batches, skip = images.split(self.order.batch_size)[skip:], 0
            for batch in batches:
                while not self._stop.is_set():
                    try:
                        self._queue.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
            step += self._steps_per_read


def pinned_copy(images: torch.Tensor) -> torch.Tensor:
    """A copy of host ``images`` in page-locked memory, for an asynchronous upload.

    Copied by numpy rather than ``Tensor.pin_memory()``, whose copy runs on torch's thread
    pool: from the reader thread, that pool's threads compete with the training thread
    for the cores (on the CPU, such a copy in the reader costs training about a fifth of
    its rate; the same copy by numpy costs nothing).
    """
    pinned = torch.empty(images.shape, dtype=images.dtype, pin_memory=True)
    np.copyto(pinned.numpy(), images.numpy())
    return pinned
