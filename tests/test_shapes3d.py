"""3D Shapes: the HDF5 file's layout and its checks, reading per request from threads and processes,
and every command on a tiny file in the real layout (tests/conftest.py ``shapes3d_dir``)."""

from __future__ import annotations

import json
import math
import multiprocessing
import pickle
import re
import threading
import warnings

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from betavae.data import load
from betavae.data.shapes3d import FACTOR_NAMES, FILE_NAME, URL, load_shapes3d, write_synthetic
from betavae.errors import BetaVAEError
from betavae.training.batches import BatchOrder, BatchStream
from commands import run_cli
from conftest import SHAPES3D_TEST_SIZES
from marks import slow_fixture

COUNT = math.prod(SHAPES3D_TEST_SIZES)
# How the file may store its images: h5py's default (contiguous), compressed chunks of one image,
# of several images, and h5py's own guess (chunks that cut images into pieces).
STORAGE = {
    "contiguous": {},
    "gzip, one image a chunk": {"chunks": (1, 64, 64, 3), "compression": "gzip"},
    "gzip, 8 images a chunk": {"chunks": (8, 64, 64, 3), "compression": "gzip"},
    "gzip, h5py's chunks": {"chunks": True, "compression": "gzip"},
}


@pytest.fixture(scope="module")
def shapes3d(shapes3d_dir):
    return load_shapes3d(shapes3d_dir, test_size=16)


def stored_images(path) -> np.ndarray:
    """The file's images as the dataset should hand them out: ``(N, 3, 64, 64)``."""
    with h5py.File(path, "r") as file:
        return file["images"][()].transpose(0, 3, 1, 2)


def rewrite(path, **arrays) -> None:
    """``path`` as a copy of a good tiny file with some datasets replaced (None: left out)."""
    source = path.parent / "good.h5"
    write_synthetic(source, SHAPES3D_TEST_SIZES)
    with h5py.File(source, "r") as good, h5py.File(path, "w") as file:
        for key in ("images", "labels"):
            value = arrays.get(key, good[key][()])
            if value is not None:
                file.create_dataset(key, data=value)


def one_line_error(call) -> str:
    with pytest.raises(BetaVAEError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- the layout -------------------------------------------------------------------------


def test_loads_the_files_factors_names_sizes_and_values(shapes3d_dir):
    dataset = load("shapes3d", data_dir=str(shapes3d_dir), test_size=16)
    assert dataset.name == "shapes3d" and dataset.factor_names == FACTOR_NAMES
    assert dataset.factor_sizes == SHAPES3D_TEST_SIZES and len(dataset) == COUNT
    assert dataset.image_shape == (3, 64, 64)
    np.testing.assert_allclose(dataset.factor_values("floor_hue"), [0, 0.9])
    np.testing.assert_allclose(dataset.factor_values("scale"), [0.75, 1.25])
    np.testing.assert_allclose(dataset.factor_values("orientation"), [-30, 0, 30])
    assert len(dataset.train) == COUNT - 16 and len(dataset.test) == 16
    assert not dataset.in_memory


def test_the_file_is_found_in_a_shapes3d_subfolder_and_through_the_environment(tmp_path, monkeypatch):
    (tmp_path / "shapes3d").mkdir()
    write_synthetic(tmp_path / "shapes3d" / FILE_NAME, SHAPES3D_TEST_SIZES)
    monkeypatch.setenv("BETAVAE_DATA_DIR", str(tmp_path))
    assert load_shapes3d(test_size=16).path == tmp_path / "shapes3d" / FILE_NAME


def test_the_real_sizes_and_values_are_the_published_ones(tmp_path):
    """The labels of a full-size file (not its images: their shape is what the check reads)."""
    with h5py.File(tmp_path / FILE_NAME, "w") as file:
        file.create_dataset("images", shape=(480_000, 64, 64, 3), dtype=np.uint8)  # never written: no space
        sizes = (10, 10, 10, 8, 4, 15)
        values = [np.linspace(0, 0.9, 10)] * 3 + [np.linspace(0.75, 1.25, 8), np.arange(4.0),
                                                 np.linspace(-30, 30, 15)]
        factors = np.stack(np.unravel_index(np.arange(480_000), sizes), axis=1)
        file.create_dataset("labels", data=np.stack([values[k][factors[:, k]] for k in range(6)], axis=1))
    dataset = load_shapes3d(tmp_path)
    assert dataset.factor_sizes == sizes and len(dataset) == 480_000 and len(dataset.test) == 10_000
    np.testing.assert_allclose(dataset.factor_values("object_hue"), np.arange(10) / 10)
    np.testing.assert_array_equal(dataset.factor_values("shape"), [0, 1, 2, 3])


# --- reading ----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*compressed chunks that span")
@pytest.mark.parametrize("storage", list(STORAGE))
def test_images_come_back_as_the_file_holds_them_in_the_order_asked(tmp_path, storage):
    write_synthetic(tmp_path / FILE_NAME, SHAPES3D_TEST_SIZES, **STORAGE[storage])
    dataset = load_shapes3d(tmp_path, test_size=16)
    stored = stored_images(tmp_path / FILE_NAME)
    index = np.array([191, 3, 17, 3, 0, 18, 19, 20, 64, 1, 191])  # unsorted, repeats, runs, across chunks
    np.testing.assert_array_equal(dataset.images_at(index), stored[index])
    np.testing.assert_array_equal(dataset.images_at(np.arange(COUNT)), stored)
    assert dataset.images_at(np.array([], dtype=np.int64)).shape == (0, 3, 64, 64)
    factors = dataset.index_to_factors(index)
    np.testing.assert_array_equal(dataset.render(factors), stored[index])
    np.testing.assert_array_equal(dataset.render(factors, np.random.default_rng(0)), stored[index])
    positions = torch.tensor([4, 0, 4])
    expected = stored[dataset.test.indices[[4, 0, 4]]]
    np.testing.assert_array_equal(dataset.test.images(positions).numpy(), expected)
    with pytest.raises(IndexError):
        dataset.images_at([COUNT])


def test_every_factor_changes_the_pixels(shapes3d):
    for k, name in enumerate(FACTOR_NAMES):
        factors = np.zeros((2, 6), dtype=np.int64)
        factors[1, k] = 1
        first, second = shapes3d.render(factors).astype(int)
        assert np.abs(first - second).sum() > 0, name


def test_in_memory_holds_the_same_images(shapes3d_dir, shapes3d):
    held = load_shapes3d(shapes3d_dir, test_size=16, in_memory=True)
    assert held.in_memory
    index = np.array([7, 2, 2, 90])
    np.testing.assert_array_equal(held.images_at(index), shapes3d.images_at(index))
    np.testing.assert_array_equal(held.images_at(np.arange(COUNT)), stored_images(held.path))


def test_chunks_spanning_many_images_warn_that_reading_per_request_is_slow(tmp_path):
    write_synthetic(tmp_path / FILE_NAME, SHAPES3D_TEST_SIZES, chunks=(32, 64, 64, 3), compression="gzip")
    with pytest.warns(UserWarning, match=r"chunks that span 32 images.*in_memory=True"):
        load_shapes3d(tmp_path, test_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_shapes3d(tmp_path, test_size=16, in_memory=True).in_memory


def test_training_batches_read_ahead_in_a_thread_are_the_files_images(shapes3d):
    stored = stored_images(shapes3d.path)
    order = BatchOrder(len(shapes3d.train), 8, seed=3)  # the stream's own is its reader thread's
    cpu = torch.device("cpu")
    with BatchStream(shapes3d.train, 8, seed=3, start=0, device=cpu, read_ahead=True) as stream:
        for step in range(25):  # more than an epoch of 176 images
            expected = stored[shapes3d.train.indices[order.positions(step).numpy()]]
            batch = stream.next()
            np.testing.assert_allclose(batch.numpy(), expected / 255, atol=1e-6)


def test_two_threads_reading_at_once_each_get_their_own_images(shapes3d):
    stored = stored_images(shapes3d.path)
    rng = np.random.default_rng(0)
    requests = [[rng.integers(0, COUNT, 20) for _ in range(30)] for _ in range(2)]
    failures: list[str] = []

    def read(mine) -> None:
        for index in mine:
            if not np.array_equal(shapes3d.images_at(index), stored[index]):
                failures.append(f"wrong images for {index}")

    threads = [threading.Thread(target=read, args=(mine,)) for mine in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_a_pickled_dataset_opens_the_file_afresh(shapes3d):
    shapes3d.images_at([0])  # this process holds a handle now
    copy = pickle.loads(pickle.dumps(shapes3d))
    np.testing.assert_array_equal(copy.images_at([5, 1]), shapes3d.images_at([5, 1]))


def _read_in_child(dataset, index, results) -> None:
    results.send(dataset.images_at(index))


@pytest.mark.slow
def test_a_forked_process_reads_through_a_handle_of_its_own(shapes3d):
    shapes3d.images_at([0])  # the parent's handle is open when it forks
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_read_in_child, args=(shapes3d, [40, 2], send))
    child.start()
    images = receive.recv()
    child.join(timeout=60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(images, shapes3d.images_at([40, 2]))
    # and the parent still reads through its own
    np.testing.assert_array_equal(shapes3d.images_at([3]), stored_images(shapes3d.path)[[3]])


# --- what is refused ----------------------------------------------------------------------


def test_a_missing_file_says_where_to_put_it_and_where_it_is_published(tmp_path):
    message = one_line_error(lambda: load("shapes3d", data_dir=str(tmp_path)))
    for part in (FILE_NAME, str(tmp_path / "shapes3d"), "--data-dir", "$BETAVAE_DATA_DIR", URL):
        assert part in message


@pytest.mark.parametrize("damage", ["not HDF5", "truncated"])
def test_a_corrupt_file_is_one_line_naming_it(tmp_path, damage):
    path = tmp_path / FILE_NAME
    if damage == "not HDF5":
        path.write_bytes(b"<html>404 Not Found</html>" * 100)
    else:
        write_synthetic(path, SHAPES3D_TEST_SIZES)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = one_line_error(lambda: load_shapes3d(tmp_path))
    assert f"cannot read shapes3d file {path}" in message and URL in message


def shuffled_labels(labels: np.ndarray) -> np.ndarray:
    return labels[np.random.default_rng(0).permutation(len(labels))]


def repeated_combination(labels: np.ndarray) -> np.ndarray:
    labels = labels.copy()
    labels[1] = labels[0]
    return labels


def value_off_the_grid(labels: np.ndarray) -> np.ndarray:
    labels = labels.copy()
    labels[0, 5] = 15.0  # a fourth orientation: 2·2·2·2·4·4 combinations for 192 images
    return labels


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda images, labels: {"images": images[:, :32, :32]},
         r"has images of shape \(192, 32, 32, 3\) and type uint8, not \(N, 64, 64, 3\) uint8"),
        (lambda images, labels: {"images": images.transpose(0, 3, 1, 2)},
         r"has images of shape \(192, 3, 64, 64\)"),
        (lambda images, labels: {"images": images.astype(np.float32)}, "type float32"),
        (lambda images, labels: {"labels": labels[:, :5]}, r"has labels of shape \(192, 5\)"),
        (lambda images, labels: {"labels": None}, "has no dataset labels"),
        (lambda images, labels: {"images": None, "labels": None}, "has no dataset images or labels"),
        (lambda images, labels: {"labels": shuffled_labels(labels)},
         "does not list its images in the row-major"),
        (lambda images, labels: {"labels": repeated_combination(labels)},
         "does not list its images in the row-major"),
        (lambda images, labels: {"labels": value_off_the_grid(labels)},
         r"has 192 images but its labels take .*orientation 4 distinct values \(256 combinations\); each "
         r"combination must appear exactly once"),
    ],
    ids=["small images", "channels first", "float images", "five factors", "no labels", "empty", "shuffled",
         "a combination twice", "a value off the grid"],
)
def test_a_file_not_in_the_3dshapes_layout_is_one_line_naming_it(tmp_path, change, message):
    write_synthetic(tmp_path / "source.h5", SHAPES3D_TEST_SIZES)
    with h5py.File(tmp_path / "source.h5", "r") as file:
        arrays = change(file["images"][()], file["labels"][()])
    rewrite(tmp_path / FILE_NAME, **arrays)
    error = one_line_error(lambda: load_shapes3d(tmp_path))
    assert f"shapes3d file {tmp_path / FILE_NAME}" in error
    assert re.search(message, error), error


# --- the commands, on the tiny file ----------------------------------------------------------


@pytest.fixture(scope="module")
@slow_fixture
def shapes3d_run(shapes3d_dir, tmp_path_factory):
    """``betavae train`` for a few steps on the tiny file: conv64, batch 8."""
    from betavae.cli import main

    out = tmp_path_factory.mktemp("shapes3d_runs") / "b4"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--dataset", "shapes3d", "--data-dir", str(shapes3d_dir), "--arch", "conv64",
              "--batch-size", "8", "--steps", "6", "--latent", "4", "--log-every", "2", "--test-size", "16",
              "--out", str(out), "--device", "cpu"])
    assert exit_info.value.code == 0
    return out


def test_training_writes_a_run_folder_with_colour_reconstructions(shapes3d_run):
    assert (shapes3d_run / "checkpoint.pt").is_file()
    assert 'dataset = "shapes3d"' in (shapes3d_run / "config.toml").read_text()
    with Image.open(shapes3d_run / "reconstructions.png") as figure:
        assert figure.mode == "RGB"


def test_evaluate_scores_mig_on_the_files_factors(shapes3d_run, capsys):
    code, out, err = run_cli(["evaluate", shapes3d_run, "--metrics", "mig", "--n-train", "60"], capsys)
    assert code == 0, err
    scores = json.loads((shapes3d_run / "metrics.json").read_text())["disentanglement"]["mig"]
    assert 0 <= scores["mig"] <= 1 and "mig.mig" in out


def test_transfer_to_the_shape_factor_runs(shapes3d_run, tmp_path, capsys):
    code, out, err = run_cli(["transfer", shapes3d_run, "--task", "factor:shape", "--labels", "4,8",
                              "--repeats", "2", "--baselines", "none", "--out", tmp_path, "--device", "cpu"],
                             capsys)
    assert code == 0, err
    assert "transfer on shapes3d, task factor:shape" in (tmp_path / "transfer.txt").read_text()


def test_show_recon_draws_held_out_scenes_in_colour(shapes3d_run, tmp_path, capsys):
    figure_path = tmp_path / "recon.png"
    code, out, err = run_cli(["show", "recon", shapes3d_run, "--n", "4", "--out", figure_path], capsys)
    assert code == 0, err
    with Image.open(figure_path) as figure:
        assert figure.mode == "RGB"
