"""dSprites: the factor layout, the procedural renderer, the held-out split and the npz reader."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from betavae.data import FactorSplit, load
from betavae.data.dsprites import DSpritesDataset, load_dsprites, procedural_values, read_npz
from betavae.errors import BetaVAEError
from imagestats import centroid, factor_grid

COUNT = 3 * 6 * 40 * 32 * 32
SQUARE, ELLIPSE, HEART = 0, 1, 2
# Shape areas in local units (render.py): square 2×2, ellipse π·√2·√2/2, heart by integration.
LOCAL_AREA = {SQUARE: 4.0, ELLIPSE: math.pi, HEART: 3.662}


@pytest.fixture(scope="module")
def dsprites() -> DSpritesDataset:
    return load_dsprites(test_size=1_000)


def pose_grid(**fixed: int) -> np.ndarray:
    return factor_grid(("shape", "scale", "orientation", "pos_x", "pos_y"), (3, 6, 40, 32, 32), **fixed)


def area(images: np.ndarray) -> np.ndarray:
    return (images[:, 0] > 0).sum(axis=(1, 2))


# --- the layout -------------------------------------------------------------------------


def test_enumerates_737280_images_over_five_factors(dsprites):
    assert len(dsprites) == COUNT
    assert dsprites.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert dsprites.factor_sizes == (3, 6, 40, 32, 32)
    assert dsprites.image_shape == (1, 64, 64)
    assert dsprites.name == "dsprites"


def test_factor_values_follow_the_dsprites_layout(dsprites):
    np.testing.assert_array_equal(dsprites.factor_values("shape"), [1, 2, 3])
    np.testing.assert_allclose(dsprites.factor_values("scale"), [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    orientation = dsprites.factor_values("orientation")
    assert orientation[0] == 0 and orientation[-1] < 2 * math.pi
    np.testing.assert_allclose(np.diff(orientation), 2 * math.pi / 40)
    for name in ("pos_x", "pos_y"):
        np.testing.assert_allclose(dsprites.factor_values(name), np.linspace(0, 1, 32))
    np.testing.assert_array_equal(dsprites.factor_values(2), orientation)


def test_unknown_factor_name_is_a_user_error(dsprites):
    with pytest.raises(BetaVAEError, match="unknown factor 'colour'"):
        dsprites.factor_values("colour")


def test_flat_index_is_row_major_with_the_last_factor_fastest(dsprites):
    index = [0, 1, 32, 32 * 32, 40 * 32 * 32, 6 * 40 * 32 * 32, COUNT - 1]
    expected = [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0],
                [0, 1, 0, 0, 0], [1, 0, 0, 0, 0], [2, 5, 39, 31, 31]]
    np.testing.assert_array_equal(dsprites.index_to_factors(index), expected)
    np.testing.assert_array_equal(dsprites.factors_to_index(np.array(expected)), index)
    with pytest.raises(IndexError):
        dsprites.index_to_factors([COUNT])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, COUNT - 1), min_size=1, max_size=50))
def test_index_and_factors_are_a_bijection(dsprites, index):
    factors = dsprites.index_to_factors(index)
    assert ((factors >= 0) & (factors < np.array(dsprites.factor_sizes))).all()
    np.testing.assert_array_equal(dsprites.factors_to_index(factors), index)


# --- the rendered images ---------------------------------------------------------------------


def test_images_are_binary_uint8_of_64x64(dsprites):
    images = dsprites.images_at(np.random.default_rng(0).integers(0, COUNT, 256))
    assert images.dtype == np.uint8 and images.shape == (256, 1, 64, 64)
    assert set(np.unique(images)) == {0, 255}
    assert (area(images) > 0).all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, COUNT - 1), min_size=1, max_size=20))
def test_sprites_never_touch_the_border(dsprites, index):
    images = dsprites.images_at(np.array(index))[:, 0]
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    assert (border == 0).all() and (area(images[:, None]) > 0).all()


def test_largest_sprites_at_the_extreme_positions_stay_inside_yet_near_the_edge(dsprites):
    corners = np.concatenate([pose_grid(shape=s, scale=5, pos_x=x, pos_y=y)
                              for s in range(3) for x in (0, 31) for y in (0, 31)])
    images = dsprites.render(corners)[:, 0]
    assert not images[:, [0, -1], :].any() and not images[:, :, [0, -1]].any()
    # The square turned 45° fills the range: it reaches the second ring of pixels.
    diamond = dsprites.render(np.array([[SQUARE, 5, 5, 0, 0]]))[0, 0]
    assert diamond[1].any() and diamond[:, 1].any()


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_area_grows_with_scale_squared(dsprites, shape):
    poses = dsprites.sample_factors(300, np.random.default_rng(shape))
    poses[:, 0] = shape
    scales = dsprites.factor_values("scale")
    mean_area = []
    for k in range(6):
        poses[:, 1] = k
        mean_area.append(area(dsprites.render(poses)).mean())
    ratios = np.array(mean_area) / mean_area[0]
    np.testing.assert_allclose(ratios, (scales / scales[0]) ** 2, rtol=0.02)
    pixels_per_unit = dsprites.sprite_size * 64
    np.testing.assert_allclose(mean_area, LOCAL_AREA[shape] * (scales * pixels_per_unit) ** 2, rtol=0.02)


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_rotation_keeps_area_and_centroid(dsprites, shape):
    images = dsprites.render(pose_grid(shape=shape, scale=5, pos_x=16, pos_y=16))
    areas = area(images)
    assert areas.max() / areas.min() < 1.08
    assert np.abs(centroid(images) - centroid(images).mean(axis=0)).max() < 0.5


@pytest.mark.parametrize("axis, name", [(0, "pos_x"), (1, "pos_y")])
def test_centroid_follows_position_linearly_over_the_centre_range(dsprites, axis, name):
    for shape in (SQUARE, ELLIPSE, HEART):
        fixed = {"shape": shape, "scale": 3, "orientation": 7, "pos_x": 10, "pos_y": 20}
        del fixed[name]
        images = dsprites.render(pose_grid(**fixed))
        centres = centroid(images)
        expected = (dsprites.margin + dsprites.factor_values(name) * (1 - 2 * dsprites.margin)) * 64 - 0.5
        assert (np.diff(centres[:, axis]) > 0).all()
        np.testing.assert_allclose(centres[:, axis], expected, atol=0.4)
        assert np.ptp(centres[:, 1 - axis]) < 0.5
    # The centre sweeps roughly the central 2/3 to 3/4 of the image.
    assert 0.6 < 1 - 2 * dsprites.margin < 0.8


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 5), st.integers(0, 39), st.integers(0, 31), st.integers(0, 31))
def test_the_three_shapes_differ_at_the_same_pose(dsprites, scale, orientation, pos_x, pos_y):
    images = dsprites.render(np.array([[s, scale, orientation, pos_x, pos_y] for s in range(3)]))
    smallest = area(images).min()
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert (images[a] != images[b]).sum() > 0.1 * smallest


def test_heart_is_upright_with_two_lobes_above_its_point(dsprites):
    heart = dsprites.render(np.array([[HEART, 5, 0, 16, 16]]))[0, 0] > 0
    rows = np.flatnonzero(heart.any(axis=1))
    top, bottom = heart[rows[0]], heart[rows[-1]]
    runs = np.flatnonzero(np.diff(top.astype(int)) == 1)
    assert len(runs) == 2, "two separate lobes on the top rows"
    assert bottom.sum() <= 2, "a point at the bottom"


def test_in_memory_lookup_matches_rendering_on_the_fly():
    small = tuple(v[::step] for v, step in zip(procedural_values(), (1, 3, 10, 8, 8), strict=True))
    on_the_fly = DSpritesDataset(small, test_size=10, seed=0)
    cached = DSpritesDataset(small, test_size=10, seed=0, in_memory=True)
    assert cached.in_memory and not on_the_fly.in_memory
    index = np.arange(len(cached))
    np.testing.assert_array_equal(cached.images_at(index), on_the_fly.images_at(index))
    factors = cached.index_to_factors(index[::7])
    np.testing.assert_array_equal(cached.render(factors), on_the_fly.render(factors))


# --- the held-out split and the registry -----------------------------------------------------


def test_split_is_fixed_by_seed_disjoint_and_complete():
    first, again, other = (load_dsprites(test_size=500, seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(first.test.indices, again.test.indices)
    assert not np.array_equal(first.test.indices, other.test.indices)
    assert len(first.test) == 500 and len(first.train) == COUNT - 500
    assert np.intersect1d(first.train.indices, first.test.indices).size == 0
    assert np.union1d(first.train.indices, first.test.indices).size == COUNT
    assert isinstance(first.train, FactorSplit)


def test_split_delivers_uint8_tensor_batches_of_its_own_images(dsprites):
    positions = torch.tensor([0, 5, 999])
    batch = dsprites.test.images(positions)
    assert batch.dtype == torch.uint8 and batch.shape == (3, 1, 64, 64)
    np.testing.assert_array_equal(batch.numpy(), dsprites.images_at(dsprites.test.indices[[0, 5, 999]]))


def test_registry_loads_dsprites_with_options():
    dataset = load("dsprites", test_size=123, seed=1)
    assert isinstance(dataset, DSpritesDataset) and len(dataset.test) == 123


def test_registry_rejects_an_unknown_option():
    with pytest.raises(BetaVAEError, match="no option colour"):
        load("dsprites", colour="red")


@pytest.mark.parametrize("test_size", [0, COUNT])
def test_impossible_test_size_is_a_user_error(test_size):
    with pytest.raises(BetaVAEError, match="test_size"):
        load_dsprites(test_size=test_size)


# --- the original npz file --------------------------------------------------------------------


def fake_npz(path: Path, factor_sizes: tuple[int, ...], rng: np.random.Generator, **overrides) -> dict:
    """An npz laid out like the original file (colour column first), for a small factor grid."""
    count = math.prod(factor_sizes)
    classes = np.zeros((count, 6), dtype=np.int64)
    classes[:, 1:] = np.stack(np.unravel_index(np.arange(count), factor_sizes), axis=1)
    table = [np.array([1.0]), np.arange(1.0, 4.0), np.linspace(0.5, 1, factor_sizes[1]),
             np.linspace(0, 2 * math.pi, factor_sizes[2]), np.linspace(0, 1, factor_sizes[3]),
             np.linspace(0, 1, factor_sizes[4])]
    values = np.stack([table[k][classes[:, k]] for k in range(6)], axis=1)
    arrays = {"imgs": rng.integers(0, 2, (count, 64, 64), dtype=np.uint8),
              "latents_classes": classes, "latents_values": values, **overrides}
    np.savez_compressed(path, **arrays)
    return arrays


def test_reads_the_original_file_format(tmp_path):
    path = tmp_path / "small.npz"
    sizes = (3, 2, 4, 2, 2)
    arrays = fake_npz(path, sizes, np.random.default_rng(0))
    images, values = read_npz(path, factor_sizes=sizes)
    np.testing.assert_array_equal(images[:, 0], arrays["imgs"] * 255)
    dataset = DSpritesDataset(values, test_size=5, seed=0, images=images, path=str(path))
    assert dataset.factor_sizes == sizes and dataset.path == str(path)
    # Values are the file's, including its orientation that ends at 2π.
    np.testing.assert_array_equal(dataset.factor_values("orientation"), np.linspace(0, 2 * math.pi, 4))
    np.testing.assert_array_equal(dataset.factor_values("shape"), [1, 2, 3])
    index = np.array([0, 17, 95])
    np.testing.assert_array_equal(dataset.images_at(index)[:, 0], arrays["imgs"][index] * 255)
    np.testing.assert_array_equal(dataset.render(dataset.index_to_factors(index)), dataset.images_at(index))


def test_a_file_without_the_full_dsprites_layout_is_a_clear_error(tmp_path):
    path = tmp_path / "small.npz"
    fake_npz(path, (3, 2, 4, 2, 2), np.random.default_rng(0))
    with pytest.raises(
        BetaVAEError, match=r"small\.npz has imgs of shape \(96, 64, 64\), expected \(737280, 64, 64\)"
    ):
        load_dsprites(path=str(path))


def test_a_file_in_another_order_is_a_clear_error(tmp_path):
    path = tmp_path / "shuffled.npz"
    sizes = (3, 2, 4, 2, 2)
    arrays = fake_npz(path, sizes, np.random.default_rng(0))
    fake_npz(path, sizes, np.random.default_rng(0), latents_classes=arrays["latents_classes"][::-1])
    with pytest.raises(BetaVAEError, match="shuffled.npz does not list its images in the row-major"):
        read_npz(path, factor_sizes=sizes)


def test_a_file_with_non_binary_images_is_a_clear_error(tmp_path):
    path = tmp_path / "grey.npz"
    sizes = (3, 2, 4, 2, 2)
    fake_npz(path, sizes, np.random.default_rng(0), imgs=np.full((96, 64, 64), 255, dtype=np.uint8))
    with pytest.raises(BetaVAEError, match="grey.npz has imgs that are not 0/1 uint8"):
        read_npz(path, factor_sizes=sizes)


def test_a_file_without_the_expected_keys_is_a_clear_error(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, images=np.zeros((2, 64, 64), dtype=np.uint8))
    with pytest.raises(BetaVAEError, match="other.npz lacks imgs, latents_classes, latents_values"):
        load_dsprites(path=str(path))


def test_a_missing_file_is_a_one_line_error_naming_it(tmp_path):
    path = tmp_path / "nowhere.npz"
    with pytest.raises(BetaVAEError, match="nowhere.npz does not exist") as caught:
        load_dsprites(path=str(path))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_file_is_a_one_line_error_naming_it(tmp_path, damage):
    path = tmp_path / "broken.npz"
    if damage == "garbage":
        path.write_bytes(b"not a zip archive at all" * 100)
    else:
        fake_npz(path, (3, 2, 4, 2, 2), np.random.default_rng(0))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BetaVAEError, match="broken.npz") as caught:
        load_dsprites(path=str(path))
    assert "\n" not in str(caught.value)
