"""Shapes (28×28, anti-aliased) and the shared sprite renderer behind it and dSprites."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from betavae.data import load
from betavae.data.render import SHAPES, SPRITE_RADIUS, rasterize
from betavae.data.shapes import ShapesDataset, load_shapes
from betavae.errors import BetaVAEError
from imagestats import centroid, factor_grid

SQUARE, ELLIPSE, TRIANGLE = 0, 1, 2
LOCAL_AREA = {"square": 4.0, "ellipse": math.pi, "triangle": 1.5 * math.sqrt(3), "heart": 3.662}
SIZES = (3, 5, 12, 12, 12)


@pytest.fixture(scope="module")
def shapes() -> ShapesDataset:
    return load_shapes()


def pose_grid(**fixed: int) -> np.ndarray:
    return factor_grid(("shape", "scale", "rotation", "pos_x", "pos_y"), SIZES, **fixed)


def area(images: np.ndarray) -> np.ndarray:
    """Covered area in pixels: anti-aliased pixels count by their coverage."""
    return images[:, 0].astype(np.float64).sum(axis=(1, 2)) / 255


# --- the set -----------------------------------------------------------------------------------


def test_shapes_set_has_25920_images_over_five_factors(shapes):
    assert shapes.name == "shapes" and shapes.image_shape == (1, 28, 28)
    assert shapes.factor_names == ("shape", "scale", "rotation", "pos_x", "pos_y")
    assert shapes.factor_sizes == SIZES and len(shapes) == 25_920
    np.testing.assert_allclose(shapes.factor_values("scale"), np.linspace(0.5, 1, 5))
    rotation = shapes.factor_values("rotation")
    assert rotation[0] == 0 and rotation[-1] < math.pi / 2
    np.testing.assert_allclose(np.diff(rotation), math.pi / 24)
    np.testing.assert_allclose(shapes.factor_values("pos_y"), np.linspace(0, 1, 12))


def test_images_are_anti_aliased_uint8_of_28x28(shapes):
    images = shapes.images_at(np.random.default_rng(0).integers(0, len(shapes), 200))
    assert images.dtype == np.uint8 and images.shape == (200, 1, 28, 28)
    grey = (images > 0) & (images < 255)
    assert grey.any(axis=(1, 2, 3)).all(), "every sprite has soft edges"
    assert (images == 255).any(axis=(1, 2, 3)).all(), "and a fully covered inside"


def test_in_memory_lookup_matches_rendering_on_the_fly(shapes):
    on_the_fly = load_shapes(in_memory=False)
    assert shapes.in_memory and not on_the_fly.in_memory
    index = np.random.default_rng(1).integers(0, len(shapes), 300)
    np.testing.assert_array_equal(shapes.images_at(index), on_the_fly.images_at(index))
    np.testing.assert_array_equal(shapes.render(shapes.index_to_factors(index)), on_the_fly.images_at(index))


def test_a_process_renders_a_set_once_and_shares_it_read_only(shapes, monkeypatch):
    again = load_shapes(test_size=500, seed=3)  # another split of the same images
    assert again._images is shapes._images  # the array rendered for the module's fixture
    with pytest.raises(ValueError, match="read-only"):
        again._images[0, 0, 0, 0] = 1
    assert (again.images_at(np.arange(3)) == shapes.images_at(np.arange(3))).all()
    assert again.images_at(np.arange(3)).flags.writeable  # lookups are the caller's own copies
    monkeypatch.setattr("betavae.data.sprites._rendered", OrderedDict())
    monkeypatch.setattr("betavae.data.sprites.RENDER_CACHE_BYTES", 0)  # too big to keep: rendered each time
    first, second = load_shapes(), load_shapes()
    assert first._images is not second._images and first._images.flags.writeable
    np.testing.assert_array_equal(first._images, shapes._images)


def test_a_new_process_reads_the_set_it_rendered_before_from_the_users_cache(shapes, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    renders = []
    render_all = ShapesDataset._render_all
    monkeypatch.setattr(ShapesDataset, "_render_all",
                        lambda self: renders.append(self.name) or render_all(self))

    def in_a_new_process(**changes):
        monkeypatch.setattr("betavae.data.sprites._rendered", OrderedDict())  # what this process rendered
        return load(**{"name": "shapes", **changes})

    np.testing.assert_array_equal(in_a_new_process()._images, shapes._images)
    np.testing.assert_array_equal(in_a_new_process(test_size=300, seed=4)._images, shapes._images)
    assert renders == ["shapes"]  # the second read the first's pixels
    in_a_new_process(name="shapes_heart")
    assert renders == ["shapes", "shapes_heart"]  # another set: its own entry
    import inspect

    source = inspect.getsource
    changed = "betavae.data.render"
    monkeypatch.setattr(inspect, "getsource",
                        lambda module: source(module) + ("# changed" if module.__name__ == changed else ""))
    np.testing.assert_array_equal(in_a_new_process()._images, shapes._images)
    assert renders == ["shapes", "shapes_heart", "shapes"]  # the rasteriser changed: rendered again


def test_sprites_never_touch_the_border(shapes):
    images = shapes.images_at(np.arange(len(shapes)))[:, 0]
    assert not images[:, [0, -1], :].any() and not images[:, :, [0, -1]].any()


def test_smallest_sprites_are_several_pixels_wide(shapes):
    images = shapes.render(pose_grid(scale=0, pos_x=6, pos_y=6))[:, 0] >= 128
    for image in images:
        rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
        assert min(np.ptp(rows), np.ptp(cols)) + 1 >= 3


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, TRIANGLE])
def test_area_grows_with_scale_squared(shapes, shape):
    scales = shapes.factor_values("scale")
    areas = np.array(
        [area(shapes.render(pose_grid(shape=shape, scale=k, pos_x=5, pos_y=6))).mean() for k in range(5)]
    )
    np.testing.assert_allclose(areas / areas[0], (scales / scales[0]) ** 2, rtol=0.02)
    name = shapes.shape_names[shape]
    np.testing.assert_allclose(areas, LOCAL_AREA[name] * (scales * shapes.sprite_size * 28) ** 2, rtol=0.02)


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, TRIANGLE])
def test_rotation_keeps_area_and_centroid_and_changes_the_image(shapes, shape):
    images = shapes.render(pose_grid(shape=shape, scale=4, pos_x=6, pos_y=5))
    areas = area(images)
    assert areas.max() / areas.min() < 1.05
    assert np.abs(centroid(images) - centroid(images).mean(axis=0)).max() < 0.1
    # Over [0, π/2) no two rotations of any shape coincide.
    flat = images.reshape(len(images), -1).astype(int)
    distances = np.abs(flat[:, None] - flat[None]).sum(axis=2)
    assert (distances + np.eye(len(flat), dtype=int) * 10**6).min() > 0


def test_rotation_turns_counter_clockwise_on_screen(shapes):
    # The ellipse lies along x; turned by 45° its right end is raised: rows fall as columns grow.
    level, tilted = shapes.render(np.array([[ELLIPSE, 4, 0, 6, 6], [ELLIPSE, 4, 6, 6, 6]])).astype(float)[
        :, 0
    ]
    rows, cols = np.indices(tilted.shape)

    def covariance(image: np.ndarray) -> float:
        weights = image / image.sum()
        return float((weights * (cols - (weights * cols).sum()) * (rows - (weights * rows).sum())).sum())

    assert abs(covariance(level)) < 0.5 < -covariance(tilted)


@pytest.mark.parametrize("axis, name", [(0, "pos_x"), (1, "pos_y")])
def test_centroid_follows_position_linearly(shapes, axis, name):
    for shape in (SQUARE, ELLIPSE, TRIANGLE):
        fixed = {"shape": shape, "scale": 2, "rotation": 5, "pos_x": 3, "pos_y": 8}
        del fixed[name]
        centres = centroid(shapes.render(pose_grid(**fixed)))
        expected = (shapes.margin + shapes.factor_values(name) * (1 - 2 * shapes.margin)) * 28 - 0.5
        assert (np.diff(centres[:, axis]) > 0.5).all()
        np.testing.assert_allclose(centres[:, axis], expected, atol=0.1)
        assert np.ptp(centres[:, 1 - axis]) < 0.1


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 4), st.integers(0, 11), st.integers(0, 11), st.integers(0, 11))
def test_the_three_shapes_differ_at_the_same_pose(shapes, scale, rotation, pos_x, pos_y):
    images = shapes.render(np.array([[s, scale, rotation, pos_x, pos_y] for s in range(3)])).astype(int)
    smallest = area(images.astype(np.uint8)).min()
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert np.abs(images[a] - images[b]).sum() / 255 > 0.1 * smallest


def test_split_is_fixed_by_seed_disjoint_and_complete():
    first, again, other = (load_shapes(test_size=300, seed=s, in_memory=False) for s in (5, 5, 6))
    np.testing.assert_array_equal(first.test.indices, again.test.indices)
    np.testing.assert_array_equal(first.train.indices, again.train.indices)
    assert not np.array_equal(first.test.indices, other.test.indices)
    assert len(first.test) == 300 and len(first.train) == 25_920 - 300
    assert np.intersect1d(first.train.indices, first.test.indices).size == 0
    assert np.union1d(first.train.indices, first.test.indices).size == 25_920


def test_registry_loads_shapes_with_options():
    dataset = load("shapes", test_size=100, seed=2, in_memory=False)
    assert isinstance(dataset, ShapesDataset) and len(dataset.test) == 100


def test_registry_rejects_an_unknown_option():
    with pytest.raises(BetaVAEError, match="dataset 'shapes' has no option size"):
        load("shapes", size=64)


def test_impossible_test_size_is_a_user_error():
    with pytest.raises(BetaVAEError, match="test_size must be between 1 and 25919"):
        load_shapes(test_size=30_000, in_memory=False)


# --- the renderer ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_lies_within_the_sprite_radius_about_its_centroid(name):
    coords = np.linspace(-1.6, 1.6, 801)
    u, v = np.meshgrid(coords, coords)
    inside = SHAPES[name](u, v)
    cell = (coords[1] - coords[0]) ** 2
    assert np.hypot(u[inside], v[inside]).max() <= SPRITE_RADIUS
    assert inside.sum() * cell == pytest.approx(LOCAL_AREA[name], rel=0.01)
    assert abs(u[inside].mean()) < 0.01 and abs(v[inside].mean()) < 0.01


sprite_batches = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        arrays(np.int64, n, elements=st.integers(0, 3)),
        arrays(np.float64, n, elements=st.floats(0.02, 0.25)),
        arrays(np.float64, n, elements=st.floats(-7, 7)),
        arrays(np.float64, n, elements=st.floats(-0.2, 1.2)),
        arrays(np.float64, n, elements=st.floats(-0.2, 1.2)),
    )
)


@settings(max_examples=40, deadline=None)
@given(sprite_batches, st.sampled_from([1, 2, 3]))
def test_an_image_depends_only_on_its_own_parameters(batch, supersample):
    options = dict(shapes=("square", "ellipse", "triangle", "heart"), size=24, supersample=supersample)
    together = rasterize(*batch, **options)
    alone = np.concatenate(
        [rasterize(*(p[i : i + 1] for p in batch), **options) for i in range(len(batch[0]))]
    )
    np.testing.assert_array_equal(together, alone)
    if supersample == 1:
        assert set(np.unique(together)) <= {0, 255}


def test_supersampling_only_softens_edges():
    options = dict(shapes=("heart",), size=32)
    params = (np.zeros(1, dtype=np.int64), np.array([0.2]), np.array([0.3]), np.array([0.5]), np.array([0.5]))
    sharp = rasterize(*params, supersample=1, **options)[0, 0].astype(int)
    smooth = rasterize(*params, supersample=8, **options)[0, 0].astype(int)
    assert set(np.unique(sharp)) == {0, 255} and len(np.unique(smooth)) > 10
    assert abs(sharp.sum() - smooth.sum()) / sharp.sum() < 0.03
    inner = (smooth == 255) | (smooth == 0)
    np.testing.assert_array_equal(sharp[inner], smooth[inner])
