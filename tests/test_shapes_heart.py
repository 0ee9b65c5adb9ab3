"""``shapes_heart``: the reproducibility report's Shapes, one heart over four factors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from tests.commands import run_cli

from betavae import data
from betavae.data.render import rasterize
from betavae.data.shapes import ShapesHeartDataset, load_shapes, load_shapes_heart
from betavae.runs import RunDir
from imagestats import centroid
from marks import slow_fixture


@pytest.fixture(scope="module")
def hearts() -> ShapesHeartDataset:
    return load_shapes_heart()


def test_the_set_is_one_heart_over_scale_rotation_and_position(hearts):
    assert hearts.factor_names == ("scale", "rotation", "pos_x", "pos_y")
    assert hearts.factor_sizes == (6, 40, 14, 14) and len(hearts) == 47_040
    assert hearts.image_shape == (1, 28, 28) == data.entry("shapes_heart").image_shape
    assert data.has_factors("shapes_heart")
    np.testing.assert_allclose(np.diff(hearts.factor_values("rotation")), 2 * math.pi / 40)


def test_every_image_is_the_dsprites_heart_at_its_pose(hearts):
    """The pixels are rasterize()'s heart (the curve dSprites draws) at the pose the factors give."""
    factors = hearts.sample_factors(64, np.random.default_rng(0))
    shape_ids, scale, angle, x, y = hearts.sprite_parameters(factors)
    assert (shape_ids == 0).all()
    expected = rasterize(shape_ids, scale, angle, x, y, shapes=("heart",), size=28, supersample=4)
    np.testing.assert_array_equal(hearts.images_at(hearts.factors_to_index(factors)), expected)
    np.testing.assert_allclose(scale, hearts.factor_values("scale")[factors[:, 0]] * hearts.sprite_size)


def test_hearts_never_touch_the_border_and_no_two_poses_draw_the_same_image(hearts):
    images = hearts.images_at(np.arange(len(hearts)))[:, 0]
    assert not images[:, [0, -1], :].any() and not images[:, :, [0, -1]].any()
    assert len({image.tobytes() for image in images}) == len(hearts)


def test_a_half_turn_turns_the_heart_upside_down(hearts):
    """No rotational symmetry: the full turn of the rotation factor is all distinct images."""
    upright, turned = hearts.images_at(hearts.factors_to_index(np.array([[5, 0, 7, 7], [5, 20, 7, 7]])))
    np.testing.assert_allclose(centroid(upright[None])[0], centroid(turned[None])[0], atol=0.3)

    def reach_below_minus_above(image: np.ndarray) -> float:
        """How much further the lit rows reach below the centroid than above it: the point's side."""
        centre = centroid(image[None])[0, 1]
        lit = np.flatnonzero(image[0].max(axis=1) >= 128)
        return (lit.max() - centre) - (centre - lit.min())

    assert reach_below_minus_above(upright) > 0.5  # lobes up, point down
    assert reach_below_minus_above(turned) < -0.5


def test_the_heart_set_differs_from_shapes_only_by_the_shape_factor():
    hearts, shapes = load_shapes_heart(in_memory=False), load_shapes(in_memory=False)
    assert shapes.factor_names[1:] == hearts.factor_names and "shape" not in hearts.factor_names
    assert (hearts.image_size, hearts.supersample, hearts.sprite_size) == (
        shapes.image_size, shapes.supersample, shapes.sprite_size)


def test_split_and_options_through_the_registry():
    dataset = data.load("shapes_heart", test_size=1000, seed=3, in_memory=False)
    assert len(dataset.test) == 1000 and len(dataset.train) == len(dataset) - 1000
    assert not np.intersect1d(dataset.train.indices, dataset.test.indices).size


@pytest.fixture(scope="module")
@slow_fixture
def heart_run(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hearts") / "run"


def test_train_and_evaluate_mig_on_the_heart_set(heart_run, capsys):
    code, _, err = run_cli(["train", "--dataset", "shapes_heart", "--latent", "4", "--steps", "5",
                            "--batch-size", "16", "--test-size", "200", "--out", heart_run, "--no-progress"],
                           capsys)
    assert code == 0, err
    code, _, err = run_cli(["evaluate", heart_run, "--metrics", "mig", "--n-train", "500", "--n-eval", "100"],
                           capsys)
    assert code == 0, err
    result = RunDir(heart_run).read_metrics()["disentanglement"]["mig"]
    assert 0 <= result["mig"] <= 1
    assert {key for key in result if key.startswith("mig_")} == {f"mig_{name}" for name in load_shapes_heart(
        in_memory=False).factor_names}  # one gap per factor of the heart set, no shape
    assert result["mig"] == pytest.approx(np.mean([result[f"mig_{name}"] for name in ("scale", "rotation",
                                                                                     "pos_x", "pos_y")]))
