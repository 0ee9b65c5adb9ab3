"""The sweep's figures: loss against β_norm, score heatmaps and reconstructions, from result rows."""

import shutil

import numpy as np
import pytest
from PIL import Image

from betavae.config import TrainConfig
from betavae.errors import BetaVAEError
from betavae.runs import RunDir
from betavae.training.loop import train
from betavae.viz.reconstructions import compare_reconstructions
from betavae.viz.sweep import HEADLINE_METRICS, heatmap_figure, loss_figure, plot_sweep

NUM_PIXELS = 784  # 28×28 shapes
BETA_NORMS = (0.001, 0.01)
LATENT_DIMS = (2, 5)
SEEDS = (0, 1)


def row(beta_norm, latent_dim, seed, status="done", **values):
    """A result row as the sweep reports it, with made-up but distinct scores."""
    result = {"run": f"bn{beta_norm:g}-z{latent_dim}-s{seed}", "status": status, "dataset": "shapes",
              "arch": "conv28", "steps": 2000, "latent_dim": latent_dim, "beta_norm": beta_norm,
              "beta": beta_norm * NUM_PIXELS / latent_dim, "seed": seed, "lr": 0.0005,
              "test.loss": 70.0 + 1000 * beta_norm + latent_dim + 0.5 * seed,
              "mig.mig": 0.05 * latent_dim + 10 * beta_norm + 0.03 * seed,
              "sap.sap": 0.02 + beta_norm + 0.01 * seed, "dci.disentanglement": None}
    result.update(values)
    return result


def grid_rows():
    rows = [row(bn, m, s) for bn in BETA_NORMS for m in LATENT_DIMS for s in SEEDS]
    for r in rows:  # SAP not computed for one cell
        if r["beta_norm"] == 0.01 and r["latent_dim"] == 5:
            r["sap.sap"] = None
    failed = row(0.1, 2, 0, status="failed")
    failed["test.loss"] = failed["mig.mig"] = 1e6  # would show if failed rows were plotted
    return rows + [failed]


def done_rows():
    return [r for r in grid_rows() if r["status"] == "done"]


def cell_values(key, beta_norm, latent_dim):
    return [r[key] for r in done_rows() if r["beta_norm"] == beta_norm and r["latent_dim"] == latent_dim]


@pytest.mark.slow
def test_sweep_writes_loss_figure_and_one_heatmap_per_metric_present(tmp_path):
    paths = plot_sweep(tmp_path, grid_rows(), ["beta_norm", "latent_dim", "seed"], recon=False)
    names = sorted(path.name for path in paths)
    assert names == ["heatmap_mig.png", "heatmap_mig.svg", "heatmap_sap.png", "heatmap_sap.svg",
                     "loss_vs_beta_norm.png", "loss_vs_beta_norm.svg"]
    assert all(path.parent == tmp_path / "figures" and path.stat().st_size > 0 for path in paths)
    assert Image.open(tmp_path / "figures" / "heatmap_mig.png").size[0] > 400
    assert "<text" in (tmp_path / "figures" / "heatmap_mig.svg").read_text()  # text stays text


def test_heatmap_has_one_cell_per_grid_point_annotated_with_mean_and_std():
    figure = heatmap_figure(done_rows(), HEADLINE_METRICS["mig"], "MIG", "shapes · conv28 · 2,000 steps")
    axes = figure.axes[0]
    colours = axes.images[0].get_array()
    assert colours.shape == (len(LATENT_DIMS), len(BETA_NORMS))
    expected_texts = []
    for i, m in enumerate(LATENT_DIMS):
        for j, bn in enumerate(BETA_NORMS):
            values = cell_values("mig.mig", bn, m)
            assert colours[i, j] == pytest.approx(np.mean(values))
            expected_texts.append(f"{np.mean(values):.2f} ± {np.std(values):.2f}")
    assert sorted(text.get_text() for text in axes.texts) == sorted(expected_texts)
    assert [label.get_text() for label in axes.get_xticklabels()] == ["0.001", "0.01"]
    assert [label.get_text() for label in axes.get_yticklabels()] == ["2", "5"]
    assert "MIG" in figure.axes[1].get_ylabel()  # the colour bar
    assert "shapes · conv28 · 2,000 steps" in axes.get_title()


def test_heatmap_cell_without_value_shows_a_dash_and_one_seed_shows_the_mean_alone():
    rows = [r for r in done_rows() if r["seed"] == 0]
    axes = heatmap_figure(rows, HEADLINE_METRICS["sap"], "SAP", "t").axes[0]
    texts = {(round(text.get_position()[1]), round(text.get_position()[0])): text for text in axes.texts}
    assert texts[(1, 1)].get_text() == "–" and texts[(1, 1)].get_color() == "gray"
    assert np.ma.is_masked(axes.images[0].get_array()[1, 1])
    assert texts[(0, 0)].get_text() == f"{cell_values('sap.sap', 0.001, 2)[0]:.2f}"


def test_heatmap_text_is_dark_on_light_cells_and_light_on_dark_cells():
    axes = heatmap_figure(done_rows(), HEADLINE_METRICS["mig"], "MIG", "t").axes[0]
    colours = {text.get_color() for text in axes.texts}
    lowest = min(axes.texts, key=lambda text: float(text.get_text().split()[0]))
    highest = max(axes.texts, key=lambda text: float(text.get_text().split()[0]))
    assert (lowest.get_color(), highest.get_color()) == ("white", "black")  # viridis: dark purple to yellow
    assert colours == {"white", "black"}


def test_loss_figure_has_one_line_of_seed_means_per_latent_size_and_marks_beta_one():
    axes = loss_figure(done_rows(), "t").axes[0]
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert sorted(label for label in lines if label.startswith("M = ")) == ["M = 2", "M = 5"]
    for m in LATENT_DIMS:
        line = lines[f"M = {m}"]
        assert list(line.get_xdata()) == list(BETA_NORMS)
        assert list(line.get_ydata()) == pytest.approx(
            [np.mean(cell_values("test.loss", bn, m)) for bn in BETA_NORMS]
        )
    assert len(axes.collections) == len(LATENT_DIMS)  # error bars: two seeds per point
    assert axes.get_xscale() == "log"
    beta_one = lines["β = 1"]
    assert list(beta_one.get_xdata()) == pytest.approx([m / NUM_PIXELS for m in LATENT_DIMS])
    for m, y in zip(LATENT_DIMS, beta_one.get_ydata(), strict=True):
        means = [np.mean(cell_values("test.loss", bn, m)) for bn in BETA_NORMS]
        assert y == pytest.approx(np.interp(np.log(m / NUM_PIXELS), np.log(BETA_NORMS), means))
    assert "β = 1" in [text.get_text() for text in axes.get_legend().get_texts()]


def test_beta_one_outside_the_swept_range_is_not_marked():
    rows = [r for r in done_rows() if r["latent_dim"] == 2] + [row(0.2, 100, 0), row(0.4, 100, 0)]
    lines = {line.get_label(): line for line in loss_figure(rows, "t").axes[0].get_lines()}
    assert list(lines["β = 1"].get_xdata()) == pytest.approx([2 / NUM_PIXELS])  # 100/784 < 0.2


@pytest.mark.slow
def test_svg_is_the_same_bytes_when_written_twice(tmp_path):
    rows = [dict(r, **{"sap.sap": None}) for r in done_rows()]  # a loss figure and a heatmap are enough
    first = plot_sweep(tmp_path, rows, ["beta_norm", "latent_dim", "seed"], out=tmp_path / "a", recon=False)
    second = plot_sweep(tmp_path, rows, ["beta_norm", "latent_dim", "seed"], out=tmp_path / "b", recon=False)
    assert len(first) == 4
    for a, b in zip(first, second, strict=True):
        if a.suffix == ".svg":
            assert a.read_bytes() == b.read_bytes(), a.name


@pytest.mark.slow
def test_other_swept_keys_get_one_set_of_figures_per_combination(tmp_path):
    rows = [
        dict(r, lr=lr, run=f"{r['run']}-lr{lr:g}", **{"sap.sap": None})
        for r in done_rows()
        for lr in (0.001, 0.0005)
    ]
    paths = plot_sweep(tmp_path, rows, ["beta_norm", "latent_dim", "seed", "lr"], recon=False)
    names = {path.name for path in paths}
    assert {"heatmap_mig-lr0.001.png", "heatmap_mig-lr0.0005.svg", "loss_vs_beta_norm-lr0.001.svg"} <= names
    assert len(names) == 2 * 4
    svg = (tmp_path / "figures" / "heatmap_mig-lr0.001.svg").read_text()
    assert "lr = 0.001" in svg and "2,000 steps" in svg


def test_no_finished_run_is_a_one_line_error(tmp_path):
    rows = [row(0.001, 2, 0, status="failed"), row(0.01, 2, 0, status="queued")]
    with pytest.raises(
        BetaVAEError, match=r"nothing to plot in .*: no run has finished \(1 failed, 1 queued\)"
    ):
        plot_sweep(tmp_path, rows, ["beta_norm"])
    assert not (tmp_path / "figures").exists()


@pytest.mark.parametrize("key", ["beta_norm", "latent_dim"])
def test_row_without_beta_norm_or_latent_size_is_a_one_line_error(tmp_path, key):
    rows = done_rows()
    rows[3][key] = None
    with pytest.raises(BetaVAEError, match=f"run {rows[3]['run']} in .* has no {key}") as error:
        plot_sweep(tmp_path, rows, ["beta_norm", "latent_dim", "seed"])
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_reconstructions_per_latent_size_show_the_first_seed_runs_with_a_checkpoint(tmp_path):
    sweep = tmp_path / "sw"
    rows = []
    for beta_norm in (0.1, 1.0):
        name = f"bn{beta_norm:g}-z2-s0"
        train(
            TrainConfig(
                dataset="shapes",
                steps=5,
                batch_size=8,
                test_size=64,
                checkpoint_every=5,
                log_every=5,
                out=str(sweep / name),
                latent_dim=2,
                beta_norm=beta_norm,
                device="cpu",
            ),
            progress=False,
        )
        loss = RunDir(sweep / name).read_metrics()["test"]["loss"]
        rows.append(row(beta_norm, 2, 0, run=name, **{"test.loss": loss}))
    shutil.copytree(sweep / "bn0.1-z2-s0", sweep / "bn0.1-z2-s1")  # a second seed: not in the figure
    rows.append(row(0.1, 2, 1, run="bn0.1-z2-s1"))
    rows.append(row(0.5, 2, 0, run="bn0.5-z2-s0"))  # done, but its folder is gone: left out
    rows.append(row(2.0, 2, 0, status="failed", run="bn2-z2-s0"))
    paths = plot_sweep(sweep, rows, ["beta_norm", "latent_dim", "seed"])
    recon = sweep / "figures" / "recon_z2.png"
    assert recon in paths
    reference = compare_reconstructions(
        [sweep / "bn0.1-z2-s0", sweep / "bn1-z2-s0"], n=8, out=tmp_path / "ref.png"
    )
    assert Image.open(recon).size == Image.open(reference).size  # an input column and two runs
    assert np.array_equal(np.asarray(Image.open(recon)), np.asarray(Image.open(reference)))
