"""CelebA: reading the real layout, the resized cache, attribute tasks, and training on it.

Every test reads a tiny folder in the layout of the real release that the tests write
(celeba_files.py); the real set is 1.4 GB and may not be redistributed.
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from betavae import data
from betavae.data import celeba
from betavae.errors import BetaVAEError
from betavae.transfer import task_labels
from celeba_files import ATTRIBUTES, PARTITIONS, attribute_table, source_image, write_celeba_folder
from commands import run_cli
from marks import slow_fixture

TRAIN_ROWS = [i for i, partition in enumerate(PARTITIONS) if partition == 0]
VALID_ROWS = [i for i, partition in enumerate(PARTITIONS) if partition == 1]
TEST_ROWS = [i for i, partition in enumerate(PARTITIONS) if partition == 2]


@pytest.fixture(autouse=True)
def no_data_folder_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BETAVAE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A fresh tiny CelebA folder this test may change."""
    return write_celeba_folder(tmp_path / "celeba")


def expected_image(path: Path, box: tuple[int, int, int, int]) -> np.ndarray:
    """Pillow applied directly: the crop box, then a bilinear resize to 64×64, as (3, 64, 64)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").crop(box).resize((64, 64), Image.BILINEAR)).transpose(2, 0, 1)


def test_the_official_partition_gives_the_splits_and_the_attribute_file_their_labels(celeba_dir):
    dataset = data.load("celeba", data_dir=celeba_dir)
    assert (dataset.name, dataset.image_shape, dataset.num_pixels) == ("celeba", (3, 64, 64), 3 * 64 * 64)
    assert (len(dataset.train), len(dataset.test)) == (len(TRAIN_ROWS), len(TEST_ROWS))
    assert dataset.attribute_names == tuple(ATTRIBUTES)
    table = attribute_table(len(PARTITIONS)) == 1
    np.testing.assert_array_equal(dataset.train.attributes(), table[TRAIN_ROWS])
    np.testing.assert_array_equal(dataset.test.attributes(), table[TEST_ROWS])
    assert dataset.train.labels() is None and dataset.train.read_on_host

    with_valid = data.load("celeba", data_dir=celeba_dir, include_valid=True)
    np.testing.assert_array_equal(with_valid.train.attributes(), table[sorted(TRAIN_ROWS + VALID_ROWS)])
    assert len(with_valid.test) == len(TEST_ROWS)


@pytest.mark.parametrize("crop, box", [(140, (19, 39, 159, 179)), (148, (15, 35, 163, 183))])
def test_images_are_the_centre_crop_of_the_jpegs_resized_bilinearly_to_64(celeba_dir, crop, box):
    dataset = data.load("celeba", data_dir=celeba_dir, crop=crop)
    images = dataset.test.images(torch.arange(len(dataset.test)))
    assert images.dtype == torch.uint8 and images.shape == (len(TEST_ROWS), 3, 64, 64)
    for position, row in enumerate(TEST_ROWS):
        path = celeba_dir / "img_align_celeba" / f"{row + 1:06d}.jpg"
        np.testing.assert_array_equal(images[position].numpy(), expected_image(path, box))
    assert (celeba_dir / f"celeba_64x64_crop{crop}.npy").is_file()


def test_the_folder_is_found_under_data_dir_or_betavae_data_dir(folder, monkeypatch):
    assert len(data.load("celeba", data_dir=folder).train) == len(TRAIN_ROWS)
    assert len(data.load("celeba", data_dir=folder.parent).train) == len(TRAIN_ROWS)  # <root>/celeba
    monkeypatch.setenv("BETAVAE_DATA_DIR", str(folder.parent))
    assert len(data.load("celeba").train) == len(TRAIN_ROWS)


def test_the_cache_is_built_once_and_then_read_without_decoding(folder, monkeypatch):
    data.load("celeba", data_dir=folder)
    cache = folder / "celeba_64x64_crop140.npy"
    before = cache.stat()

    def refuse(*args, **kwargs):
        raise AssertionError("the cache was rebuilt although no source changed")

    monkeypatch.setattr(celeba, "build_cache", refuse)
    monkeypatch.setattr(celeba, "center_crop_resize", refuse)
    dataset = data.load("celeba", data_dir=folder)
    assert (cache.stat().st_ino, cache.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert isinstance(dataset.train.pixels, np.memmap)
    assert dataset.train.images(torch.arange(2)).shape == (2, 3, 64, 64)


def test_a_source_image_of_another_size_rebuilds_the_cache_and_says_so(folder, capsys):
    data.load("celeba", data_dir=folder)
    capsys.readouterr()
    path = folder / "img_align_celeba" / f"{TEST_ROWS[0] + 1:06d}.jpg"
    old_size = path.stat().st_size
    source_image(1000).save(path, quality=60)
    assert path.stat().st_size != old_size
    dataset = data.load("celeba", data_dir=folder)
    message = capsys.readouterr().err
    assert "differ from those celeba_64x64_crop140.npy was made from" in message and "rebuilding" in message
    np.testing.assert_array_equal(
        dataset.test.images(torch.tensor([0]))[0].numpy(), expected_image(path, (19, 39, 159, 179))
    )
    data.load("celeba", data_dir=folder)
    assert capsys.readouterr().err == ""  # rebuilt once, then trusted


def test_a_damaged_cache_is_rebuilt_and_says_so(folder, capsys):
    data.load("celeba", data_dir=folder)
    cache = folder / "celeba_64x64_crop140.npy"
    cache.write_bytes(cache.read_bytes()[:5000])
    capsys.readouterr()
    dataset = data.load("celeba", data_dir=folder)
    assert "celeba_64x64_crop140.npy is damaged; rebuilding it" in capsys.readouterr().err
    path = folder / "img_align_celeba" / f"{TEST_ROWS[0] + 1:06d}.jpg"
    np.testing.assert_array_equal(
        dataset.test.images(torch.tensor([0]))[0].numpy(), expected_image(path, (19, 39, 159, 179))
    )


def test_an_interrupted_build_leaves_no_cache_and_no_temporary(folder, monkeypatch):
    calls = []

    def interrupted(image, crop):
        calls.append(crop)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return np.zeros((3, 64, 64), np.uint8)

    monkeypatch.setattr(celeba, "center_crop_resize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.load("celeba", data_dir=folder)
    left = sorted(path.name for path in folder.iterdir() if path.name != ".celeba_64x64_crop140.lock")
    assert left == ["img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt"]


def test_loads_started_together_build_the_cache_once(folder, monkeypatch):
    builds = []
    build, record = celeba.build_cache, celeba.source_record
    together = threading.Barrier(2)

    def counted(*args):
        builds.append(args)
        build(*args)

    def in_step(*args):  # both loads look for the cache before either has built it
        sources = record(*args)
        together.wait(timeout=10)
        return sources

    monkeypatch.setattr(celeba, "build_cache", counted)
    monkeypatch.setattr(celeba, "source_record", in_step)
    with ThreadPoolExecutor(2) as pool:
        datasets = list(pool.map(lambda _: data.load("celeba", data_dir=folder), range(2)))
    assert len(builds) == 1
    for dataset in datasets:
        assert dataset.test.images(torch.arange(2)).shape == (2, 3, 64, 64)


def replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def break_folder(folder: Path, how: str) -> None:
    attributes, partitions = folder / "list_attr_celeba.txt", folder / "list_eval_partition.txt"
    if how == "no images":
        shutil.rmtree(folder / "img_align_celeba")
    elif how == "no attributes":
        attributes.unlink()
    elif how == "a short attribute line":
        replace_line(attributes, 5, "000003.jpg " + " ".join(["1"] * 39))
    elif how == "an attribute of 0":
        replace_line(attributes, 4, "000002.jpg  0" + " -1" * 39)
    elif how == "a wrong image count":
        replace_line(attributes, 1, "31")
    elif how == "39 attribute names":
        replace_line(attributes, 2, " ".join(ATTRIBUTES[:39]))
    elif how == "a partition of 3":
        replace_line(partitions, 2, "000002.jpg 3")
    elif how == "a missing image":
        (folder / "img_align_celeba" / "000007.jpg").unlink()
    elif how == "a damaged image":
        (folder / "img_align_celeba" / "000007.jpg").write_bytes(b"not a jpeg")


@pytest.mark.parametrize(
    "how, message",
    [
        ("no images", "CelebA files missing: img_align_celeba/ .*mmlab.ie.cuhk.edu.hk/projects/CelebA.html "
                      r"\(non-commercial research use only\).*--data-dir or BETAVAE_DATA_DIR"),
        ("no attributes", "CelebA files missing: list_attr_celeba.txt "),
        ("a short attribute line", r"list_attr_celeba.txt, line 5: expected an image name and 40 values of 1 "
                                   r"or -1, got '000003.jpg 1 1 1 .*'; use the official file from https://"),
        ("an attribute of 0", "list_attr_celeba.txt, line 4: expected an image name and 40 values"),
        ("a wrong image count", "list_attr_celeba.txt says it lists 31 images but lists 30"),
        ("39 attribute names", "list_attr_celeba.txt, line 2: expected the 40 attribute names"),
        ("a partition of 3", "list_eval_partition.txt, line 2: expected an image name and its partition "
                             "0, 1 or 2, got '000002.jpg 3'"),
        ("a missing image", "1 image.s. listed in list_eval_partition.txt missing from .*img_align_celeba "
                            r"\(000007.jpg\); unpack the whole img_align_celeba.zip"),
        ("a damaged image", "000007.jpg is not a readable JPEG"),
    ],
)
def test_missing_or_malformed_files_are_one_line_errors_that_say_what_to_do(folder, how, message):
    break_folder(folder, how)
    with pytest.raises(BetaVAEError, match=message) as error:
        data.load("celeba", data_dir=folder)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "crop, message",
    [(0, "crop must be a positive whole number of pixels"),
     (200, r"000001.jpg: a 178×218 image is smaller than the 200×200 crop; .* use a crop of at most 178")],
)
def test_a_crop_the_images_cannot_give_is_a_one_line_error(folder, crop, message):
    with pytest.raises(BetaVAEError, match=message):
        data.load("celeba", data_dir=folder, crop=crop)


def test_a_folder_the_cache_cannot_be_written_into_is_a_one_line_error(folder, monkeypatch):
    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(celeba.tempfile, "mkstemp", read_only)
    with pytest.raises(BetaVAEError, match="cannot write the resized CelebA cache into .*Permission denied"):
        data.load("celeba", data_dir=folder)


def test_attributes_are_binary_transfer_tasks_and_other_tasks_say_what_to_use(celeba_dir):
    dataset = data.load("celeba", data_dir=celeba_dir)
    task, train_labels, test_labels = task_labels(dataset, "attr:Smiling")
    smiling = ATTRIBUTES.index("Smiling")
    assert task == "attr:Smiling"
    np.testing.assert_array_equal(train_labels, dataset.train.attributes()[:, smiling])
    assert set(np.unique(train_labels)) == {0, 1} and set(np.unique(test_labels)) == {0, 1}
    with pytest.raises(BetaVAEError, match="^unknown attribute of celeba 'Smiley'; choose one of: 5_o_"):
        task_labels(dataset, "attr:Smiley")
    with pytest.raises(BetaVAEError, match="no digit labels; pass --task attr:NAME with NAME one of: 5_o"):
        task_labels(dataset, None)
    with pytest.raises(BetaVAEError, match="task 'digit' needs class labels.*use --task attr:NAME"):
        task_labels(dataset, "digit")
    with pytest.raises(BetaVAEError, match="needs known generative factors.*use --task attr:NAME"):
        task_labels(dataset, "factor:shape")


def test_an_attribute_task_on_a_dataset_without_attributes_names_those_with_them():
    shapes = data.load("shapes", test_size=100, in_memory=False)
    with pytest.raises(BetaVAEError, match="^task 'attr:Smiling' needs named binary attributes, which "
                                           "dataset 'shapes' has not; attributes are tasks on celeba$"):
        task_labels(shapes, "attr:Smiling")


@pytest.fixture(scope="module")
@slow_fixture
def celeba_run(celeba_dir, tmp_path_factory):
    """``betavae train`` for a few steps on the tiny folder: conv64, batch 8."""
    from betavae.cli import main

    out = tmp_path_factory.mktemp("celeba_runs") / "b4"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--dataset", "celeba", "--data-dir", str(celeba_dir), "--arch", "conv64",
              "--batch-size", "8", "--steps", "6", "--latent", "4", "--log-every", "2", "--out", str(out),
              "--device", "cpu"])
    assert exit_info.value.code == 0
    return out


def test_training_on_celeba_writes_a_run_folder_with_colour_reconstructions(celeba_run):
    assert (celeba_run / "checkpoint.pt").is_file()
    assert 'dataset = "celeba"' in (celeba_run / "config.toml").read_text()
    with Image.open(celeba_run / "reconstructions.png") as figure:
        assert figure.mode == "RGB"


def test_transfer_to_smiling_runs_and_an_unknown_attribute_is_one_line(celeba_run, tmp_path, capsys):
    code, out, err = run_cli(["transfer", celeba_run, "--task", "attr:Smiling", "--labels", "4,10",
                              "--repeats", "2", "--out", tmp_path], capsys)
    assert code == 0, err
    assert "transfer on celeba, task attr:Smiling, 2 repeats" in out
    assert (tmp_path / "transfer.csv").is_file() and (tmp_path / "transfer.svg").is_file()

    code, out, err = run_cli(["transfer", celeba_run, "--task", "attr:Smiley", "--labels", "4",
                              "--out", tmp_path], capsys)
    assert code != 0
    assert err.startswith("betavae: error: unknown attribute of celeba 'Smiley'; choose one of: 5_o_Clock")
    assert err.count("\n") == 1


def test_show_recon_draws_held_out_faces_in_colour(celeba_run, tmp_path, capsys):
    code, _, err = run_cli(["show", "recon", celeba_run, "--n", "4", "--out", tmp_path / "recon.png"], capsys)
    assert code == 0, err
    with Image.open(tmp_path / "recon.png") as figure:
        pixels = np.asarray(figure)
    assert figure.mode == "RGB"
    assert (pixels[..., 0] != pixels[..., 1]).any()  # colour, not grey drawn as RGB
