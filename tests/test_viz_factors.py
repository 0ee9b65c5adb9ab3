"""The factor-tracking figure: one panel per (active dimension, factor), refused for sets without factors."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from betavae import data
from betavae.errors import BetaVAEError
from betavae.runs import RunDir
from betavae.viz.factors import factor_tracking_figure, mean_code_by_factor
from marks import slow_fixture
from runfolders import ACTIVE_SHAPES

NUM_FACTORS = 5  # shape, scale, rotation, pos_x, pos_y


@pytest.fixture(scope="module")
@slow_fixture
def run_dir(tmp_path_factory, trained_runs) -> Path:
    return trained_runs.copy(ACTIVE_SHAPES, tmp_path_factory.mktemp("factors") / "run")


def axes_count(svg_path: Path) -> int:
    """The ``<g id="axes_N">`` groups matplotlib writes, one per panel, in a well-formed SVG."""
    root = ET.parse(svg_path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return sum(
        1 for g in root.iter("{http://www.w3.org/2000/svg}g") if re.fullmatch(r"axes_\d+", g.get("id", ""))
    )


def test_one_panel_per_active_dimension_and_factor(run_dir):
    path = factor_tracking_figure(run_dir, num_points=1000)
    assert path == run_dir / "factors.svg"
    assert axes_count(path) == 4 * NUM_FACTORS


def test_inactive_dimensions_get_no_row(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    metrics = RunDir(run).read_metrics()["test"]
    RunDir(run).update_metrics(
        "test", {**metrics, "kl_per_dim": [0.3, 2.0, 0.001, 1.0]}, step=metrics["step"]
    )
    assert axes_count(factor_tracking_figure(run, num_points=500)) == 3 * NUM_FACTORS


def test_run_without_factors_is_refused_before_loading_anything(run_dir, tmp_path):
    run = tmp_path / "mnist-run"
    shutil.copytree(run_dir, run)
    config = (run / "config.toml").read_text()
    (run / "config.toml").write_text(config.replace('dataset = "shapes"', 'dataset = "mnist"'))
    (run / "checkpoint.pt").unlink()  # loading the model (or MNIST) would fail with another message
    with pytest.raises(
        BetaVAEError,
        match="mnist, which has no known generative factors; factor plots need one of: "
        + ", ".join(data.with_factors()),
    ):
        factor_tracking_figure(run)


def test_mean_code_follows_the_factor_a_dimension_tracks():
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, 3, 6000), rng.integers(0, 4, 6000)], axis=1)
    codes = np.stack([factors[:, 1] * 2.0, rng.normal(size=6000)], axis=1)  # dim 0 tracks factor 1 only
    by_first, by_second = mean_code_by_factor(codes, factors, (3, 4))
    assert by_first.shape == (3, 2) and by_second.shape == (4, 2)
    np.testing.assert_allclose(by_second[:, 0], [0.0, 2.0, 4.0, 6.0])
    assert np.ptp(by_first[:, 0]) < 0.3  # averaged over factor 1: flat
    assert np.abs(by_second[:, 1]).max() < 0.15


def test_a_value_no_point_has_is_a_gap():
    means = mean_code_by_factor(np.array([[1.0], [3.0]]), np.array([[0], [0]]), (2,))[0]
    assert means[0, 0] == 2.0 and np.isnan(means[1, 0])
