"""Training batches: a fixed order, and reading ahead that changes nothing but the timing."""

import queue
import threading

import pytest
import torch

from betavae import data
from betavae.data.base import FactorSplit, TensorSplit
from betavae.errors import BetaVAEError
from betavae.training.batches import IMAGES_PER_READ, BatchOrder, BatchStream

CPU = torch.device("cpu")


def test_batch_order_depends_only_on_seed_and_step():
    order = BatchOrder(100, 16, seed=3)
    seen = torch.cat([order.positions(step) for step in range(6)])
    assert sorted(seen.tolist()) == sorted(set(seen.tolist()))  # one epoch: no repeats
    fresh = BatchOrder(100, 16, seed=3)
    assert torch.equal(fresh.positions(13), order.positions(13))
    assert not torch.equal(BatchOrder(100, 16, seed=4).positions(0), order.positions(0))
    with pytest.raises(BetaVAEError, match="larger than the training set"):
        BatchOrder(10, 16, seed=0)


@pytest.fixture(scope="module")
def shapes():
    return data.load("shapes", in_memory=False, test_size=100)


def read(stream: BatchStream, steps: int) -> list[torch.Tensor]:
    with stream:
        return [stream.next() for _ in range(steps)]


def test_rendered_batches_read_ahead_equal_those_read_in_the_loop_from_any_step(shapes):
    assert shapes.train.read_on_host
    ahead = read(BatchStream(shapes.train, 16, seed=5, start=37, device=CPU), 12)
    inline = read(BatchStream(shapes.train, 16, seed=5, start=37, device=CPU, read_ahead=False), 12)
    order = BatchOrder(len(shapes.train), 16, seed=5)
    for step, (a, b) in enumerate(zip(ahead, inline, strict=True), start=37):
        assert torch.equal(a, b)
        expected = shapes.train.images(order.positions(step)).float() / 255
        assert torch.equal(a, expected)
    assert ahead[0].dtype == torch.float32 and 0 <= ahead[0].min() and ahead[0].max() == 1


def test_in_memory_batches_are_gathered_without_a_reader_thread(shapes):
    held = TensorSplit(torch.from_numpy(shapes.images_at(shapes.train.indices[:500])))
    stream = BatchStream(held, 32, seed=0, start=3, device=CPU)
    assert not stream.read_ahead
    before = threading.active_count()
    with stream:
        assert threading.active_count() == before
        batch = stream.next()
    assert batch.shape == (32, 1, 28, 28)
    assert torch.equal(batch, held.images(BatchOrder(500, 32, seed=0).positions(3)).float() / 255)


def test_a_held_split_on_the_host_gathers_what_torch_indexing_gives():
    """The host gather is numpy's (so a reader thread does not wake torch's thread pool); same
    images, same errors."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50, 3, 5, 4), dtype=torch.uint8, generator=generator)
    positions = torch.tensor([7, 0, 49, 7, 12, -1])
    for held in (images, images.contiguous(memory_format=torch.channels_last), images[:, 1:2]):
        gathered = TensorSplit(held).images(positions)
        assert gathered.dtype == torch.uint8 and torch.equal(gathered, held[positions])
    with pytest.raises(IndexError):
        TensorSplit(images).images(torch.tensor([50]))


class FailingSplit(FactorSplit):
    """Renders normally until one call, then fails as a corrupt file would; counts what it read."""

    def __init__(self, dataset, indices, fail_at_call: int) -> None:
        super().__init__(dataset, indices)
        self.calls, self.images_read, self.fail_at_call = 0, 0, fail_at_call

    def images(self, positions):
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise OSError("disk read failed")
        self.images_read += len(positions)
        return super().images(positions)

    def to(self, device):
        return self


def test_an_error_in_the_reader_reaches_the_step_that_needed_the_batch(shapes):
    split = FailingSplit(shapes, shapes.train.indices, fail_at_call=2)
    with BatchStream(split, 8, seed=0, start=0, device=CPU) as stream:
        for _ in range(IMAGES_PER_READ // 8):  # the batches of the first, good read
            stream.next()
        with pytest.raises(OSError, match="disk read failed"):
            stream.next()


class WatchedQueue(queue.Queue):
    """The stream's queue, with an event set once the reader has found it full and waited on it."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.blocked = threading.Event()

    def put(self, item, block=True, timeout=None):
        try:
            super().put(item, block, timeout)
        except queue.Full:
            self.blocked.set()
            raise


def watched(stream: BatchStream) -> BatchStream:
    """``stream`` with a :class:`WatchedQueue` of the same size, before its reader starts."""
    stream._queue = WatchedQueue(stream._queue.maxsize)
    return stream


def test_leaving_the_stream_stops_its_reader_even_with_a_full_queue(shapes):
    stream = watched(BatchStream(shapes.train, 8, seed=0, start=0, device=CPU))
    with stream:
        stream.next()
        thread = stream._thread
        assert stream._queue.blocked.wait(timeout=60), "the reader never waited on a full queue"
    assert not thread.is_alive()


def test_reading_ahead_is_bounded(shapes):
    """The reader renders at most a full queue and one read beyond what the steps took."""
    split = FailingSplit(shapes, shapes.train.indices, fail_at_call=-1)
    with watched(BatchStream(split, 8, seed=0, start=0, device=CPU)) as stream:
        for _ in range(3):
            stream.next()
        # Blocked on the full queue, the reader has read all it will read until a step takes a batch.
        assert stream._queue.blocked.wait(timeout=60), "the reader never waited on a full queue"
        assert (
            3 * 8 + 8 * stream._queue.maxsize
            <= split.images_read
            <= 3 * 8 + 8 * stream._queue.maxsize + IMAGES_PER_READ
        )
