"""Latent traversals: the grid's layout, its row order by KL, the GIF, and the errors users can cause."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from betavae.errors import BetaVAEError
from betavae.runs import RunDir, load_model
from betavae.viz.grid import to_uint8_images
from betavae.viz.traversals import (
    GAP,
    LABEL_WIDTH,
    active_dims,
    parse_around,
    parse_dims,
    traversal_codes,
    traversal_figure,
)
from marks import slow_fixture
from runfolders import ACTIVE_SHAPES

LATENT = 4
SCALE = 4  # 28-pixel images are shown 4× (cell_scale)
CELL = 28 * SCALE
HEADER = 4 + 14  # column_grid's band for one line of column titles


@pytest.fixture(scope="module")
@slow_fixture
def run_dir(tmp_path_factory, trained_runs) -> Path:
    return trained_runs.copy(ACTIVE_SHAPES, tmp_path_factory.mktemp("traversals") / "run")


def copy_with_kl(run_dir: Path, destination: Path, kl_per_dim: list[float]) -> Path:
    """A copy of the run whose metrics.json claims ``kl_per_dim``: the figure must follow it."""
    shutil.copytree(run_dir, destination)
    run = RunDir(destination)
    test = run.read_metrics()["test"]
    run.update_metrics("test", {**test, "kl_per_dim": kl_per_dim}, step=test["step"])
    return destination


def grid_size(rows: int, steps: int) -> tuple[int, int]:
    return LABEL_WIDTH + steps * (CELL + GAP) + GAP, HEADER + rows * (CELL + GAP) + GAP


def cell(png: np.ndarray, row: int, column: int) -> np.ndarray:
    """The 28×28 image drawn at (row, column), read back from its nearest-neighbour upscaling."""
    top = HEADER + GAP + row * (CELL + GAP)
    left = LABEL_WIDTH + GAP + column * (CELL + GAP)
    return png[top + SCALE // 2:top + CELL:SCALE, left + SCALE // 2:left + CELL:SCALE, 0].astype(int)


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_png_has_one_row_per_dimension_and_one_column_per_step(run_dir):
    paths = traversal_figure(run_dir, steps=7)
    assert paths == [run_dir / "traversal.png"]
    assert Image.open(paths[0]).size == grid_size(LATENT, 7)


def test_rows_follow_the_kl_order_of_metrics_json(run_dir, tmp_path):
    kl = [0.3, 2.0, 0.0, 1.0]
    run = copy_with_kl(run_dir, tmp_path / "run", kl)
    steps = 5
    (path,) = traversal_figure(run, around="zero", steps=steps)
    png = read_png(path)
    assert png.shape[:2] == grid_size(4, steps)[::-1]
    model = load_model(run)
    values = np.linspace(-2.5, 2.5, steps)
    for row, dim in enumerate([1, 3, 0, 2]):
        with torch.no_grad():
            expected = to_uint8_images(
                model.decode(traversal_codes(model, torch.zeros(LATENT), [dim], values))
            )
        for column in range(steps):
            assert np.abs(cell(png, row, column) - expected[column, ..., 0].astype(int)).max() <= 2


def test_active_keeps_the_dimensions_above_the_threshold(run_dir, tmp_path):
    run = copy_with_kl(run_dir, tmp_path / "run", [0.3, 2.0, 0.001, 1.0])
    (path,) = traversal_figure(run, dims="active", around="zero", steps=3)
    assert Image.open(path).size == grid_size(3, 3)


def test_an_active_dimension_changes_the_image_along_its_row(run_dir):
    steps = 5
    (path,) = traversal_figure(run_dir, steps=steps)
    png = read_png(path)
    first_row = [cell(png, 0, column) for column in range(steps)]
    assert np.abs(first_row[0] - first_row[-1]).mean() > 5
    assert all(np.abs(a - b).sum() > 0 for a, b in zip(first_row, first_row[1:], strict=False))


def test_dims_subset_gives_one_row_each(run_dir):
    (path,) = traversal_figure(run_dir, dims="0,3", steps=4, around="sample:2")
    assert Image.open(path).size == grid_size(2, 4)


def test_gif_sweeps_forward_and_back(run_dir):
    steps = 6
    paths = traversal_figure(run_dir, steps=steps, gif=True)
    assert paths == [run_dir / "traversal.png", run_dir / "traversal.gif"]
    gif = Image.open(paths[1])
    assert gif.n_frames == 2 * steps - 2
    assert gif.info["loop"] == 0
    assert gif.size == grid_size(LATENT, 1)


def test_traversal_codes_change_only_the_traversed_dimension():
    model = torch.nn.Linear(1, 1)  # only its device is used
    model.latent_dim = 3
    base = torch.tensor([0.5, -1.0, 2.0])
    values = np.array([-1.0, 0.0, 1.0])
    codes = traversal_codes(model, base, [2, 0], values)
    expected = torch.tensor(
        [
            [0.5, -1.0, -1.0], [0.5, -1.0, 0.0], [0.5, -1.0, 1.0], [-1.0, -1.0, 2.0], [0.0, -1.0, 2.0],
            [1.0, -1.0, 2.0],
        ]
    )
    assert torch.equal(codes, expected)


def test_active_dims_sorts_by_kl_and_falls_back_to_all():
    assert active_dims([0.3, 2.0, 0.001, 1.0]) == [1, 3, 0]
    assert active_dims([0.01, 0.02, 0.001]) == [1, 0, 2]
    assert active_dims([0.3, 2.0, 0.001], threshold=0.5) == [1]


def test_dims_parse_to_kl_order():
    kl = [0.3, 2.0, 0.0, 1.0]
    assert parse_dims("all", kl) == [1, 3, 0, 2]
    assert parse_dims("0, 3", kl) == [3, 0]
    assert parse_dims([2, 1, 2], kl) == [1, 2]


@pytest.mark.parametrize("dims", ["0,x", "4", "-1", "", " , ", "1.5", [0.5], ["a"]])
def test_unknown_dims_are_refused(dims):
    with pytest.raises(BetaVAEError, match="dimension"):
        parse_dims(dims, [1.0, 1.0, 1.0, 1.0])


def test_dims_read_as_every_list_option_an_empty_item_is_refused():
    with pytest.raises(BetaVAEError, match="--dims takes values separated by single commas"):
        parse_dims("0,,3", [1.0, 1.0, 1.0, 1.0])


def test_around_forms():
    assert parse_around("zero") is None
    assert parse_around("mean") == 0
    assert parse_around("sample:7") == 7


@pytest.mark.parametrize("around", ["middle", "sample:", "sample:-1", "sample:x", "Zero"])
def test_bad_around_is_refused_with_the_forms(around):
    with pytest.raises(BetaVAEError, match="mean, zero or sample:K"):
        parse_around(around)


def test_figure_refuses_bad_arguments_with_betavae_errors(run_dir):
    with pytest.raises(BetaVAEError, match="does not exist"):
        traversal_figure(run_dir, dims="0,9")
    with pytest.raises(BetaVAEError, match="mean, zero or sample:K"):
        traversal_figure(run_dir, around="median")
    with pytest.raises(BetaVAEError, match="past the 100 test images"):
        traversal_figure(run_dir, around="sample:100")
    with pytest.raises(BetaVAEError, match="at least 2 steps"):
        traversal_figure(run_dir, steps=1)
    with pytest.raises(BetaVAEError, match="lower to a higher"):
        traversal_figure(run_dir, value_range=(2.0, -2.0))


def test_run_without_held_out_kl_is_refused(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "metrics.json").write_text(json.dumps({"train": {}}))
    with pytest.raises(BetaVAEError, match="no held-out KL"):
        traversal_figure(run)
