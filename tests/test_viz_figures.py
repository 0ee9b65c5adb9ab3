"""``betavae show recon | samples | kl``: files, sizes and contents of the figures."""

import re
import shutil
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from PIL import Image

from betavae.config import TrainConfig
from betavae.runs import RunDir
from betavae.training.loop import train
from commands import run_cli
from marks import slow_fixture
from processes import locked_by_another_process

CELL = 28 * 4 + 2  # a 28×28 image upscaled 4× and its gap
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
@slow_fixture
def two_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    for name, beta in (("b1", 1.0), ("b8", 8.0)):
        train(TrainConfig(dataset="shapes", arch="conv28", latent_dim=4, beta=beta, steps=40, batch_size=32,
                          test_size=100, lr=1e-3, out=str(folder / name), device="cpu"), progress=False)
    return folder


def show(args, capsys):
    code, out, err = run_cli(["show", *args], capsys)
    return code, out.strip(), err.strip()


def test_recon_of_several_runs_has_an_input_column_and_one_column_per_run(two_runs, capsys):
    code, out, err = show(["recon", str(two_runs / "b1"), str(two_runs / "b8"), "--n", "5"], capsys)
    assert code == 0, err
    assert out == str((two_runs / "show-recon.png").resolve())
    image = np.asarray(Image.open(out).convert("L"))
    header = image.shape[0] - (5 * CELL + 2)
    assert image.shape[1] == 3 * CELL + 2 and 20 <= header <= 40  # two lines of labels
    body = image[header:]
    inputs, first, second = (body[:, 2 + j * CELL: (j + 1) * CELL] for j in range(3))
    assert inputs.max() > 200  # white shapes on black
    assert not np.array_equal(first, second)  # β = 1 and β = 8 reconstruct differently


def test_recon_refuses_runs_trained_on_different_data(two_runs, tmp_path, capsys):
    other = tmp_path / "other"
    train(TrainConfig(dataset="shapes", latent_dim=2, steps=2, batch_size=8, test_size=50, out=str(other),
                      device="cpu"), progress=False)
    code, _, err = show(["recon", str(two_runs / "b1"), str(other)], capsys)
    assert (
        code == 1
        and "runs trained on different datasets or splits" in err
        and "a reconstruction figure" in err
    )


def test_samples_are_a_grid_of_distinct_images(two_runs, capsys):
    code, out, _ = show(["samples", str(two_runs / "b1")], capsys)
    assert code == 0 and out.endswith("samples.png")
    image = np.asarray(Image.open(out).convert("L"))
    assert image.shape == (8 * CELL + 2, 8 * CELL + 2)  # no title band
    cells = [
        image[2 + i * CELL : (i + 1) * CELL, 2 + j * CELL : (j + 1) * CELL]
        for i in range(8)
        for j in range(8)
    ]
    assert len({cell.tobytes() for cell in cells}) == 64


def test_kl_chart_has_one_bar_per_dimension_as_tall_as_its_kl_and_counts_the_active_ones(two_runs, capsys):
    from betavae.runs import RunDir
    from betavae.viz.traversals import ACTIVE_KL

    code, out, _ = show(["kl", str(two_runs / "b1")], capsys)
    assert code == 0 and out.endswith("kl.svg")
    tree = ElementTree.parse(out)
    text = ElementTree.tostring(tree.getroot(), encoding="unicode")
    kl = RunDir(two_runs / "b1").read_metrics()["test"]["kl_per_dim"]
    active = sum(value > ACTIVE_KL for value in kl)
    assert f"{active} of 4 dimensions active" in text
    bars = svg_bars(tree)
    assert len(bars) == 4  # one per dimension: the figure's and the axes' background are no bars
    colours = [fill for _, _, fill in sorted(bars)]  # left to right: z0, z1, …
    assert colours == ["#1f77b4" if value > ACTIVE_KL else "#7f7f7f" for value in kl]
    heights = np.array([height for _, height, _ in sorted(bars)])
    tallest = int(np.argmax(kl))
    np.testing.assert_allclose(heights / heights[tallest], np.array(kl) / kl[tallest], atol=1e-4)


def svg_bars(tree: ElementTree.ElementTree) -> list[tuple[float, float, str]]:
    """(left edge, height, fill colour) of each bar in a matplotlib SVG: filled shapes clipped to axes."""
    bars = []
    for group in tree.iter(f"{SVG}g"):
        path = group.find(f"{SVG}path")
        if not group.get("id", "").startswith("patch_") or path is None or path.get("clip-path") is None:
            continue
        fill = re.search(r"fill: (#[0-9a-f]{6})", path.get("style", ""))
        if fill is not None:
            numbers = [float(number) for number in re.findall(r"-?[0-9.]+", path.get("d"))]
            xs, ys = numbers[0::2], numbers[1::2]
            bars.append((min(xs), max(ys) - min(ys), fill.group(1)))
    return bars


def test_the_kl_chart_is_the_same_bytes_each_time(two_runs, capsys):
    # matplotlib names SVG clip paths with random ids unless given a salt (viz.SVG_SETTINGS).
    _, path, _ = show(["kl", str(two_runs / "b8")], capsys)
    first = open(path, "rb").read()
    show(["kl", str(two_runs / "b8")], capsys)
    assert open(path, "rb").read() == first


@pytest.mark.slow
def test_kl_of_an_unfinished_run_says_how_to_finish_it(tmp_path, capsys):
    from betavae.runs import RunDir

    run = tmp_path / "run"
    train(
        TrainConfig(
            dataset="shapes", latent_dim=2, steps=2, batch_size=8, test_size=50, out=str(run), device="cpu"
        ),
        progress=False,
    )
    RunDir(run).metrics_path.unlink()
    code, _, err = show(["kl", str(run)], capsys)
    assert code == 1 and "--resume" in err


def test_kl_of_a_folder_without_checkpoint_says_to_train_it_not_to_resume(two_runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(two_runs / "b1", run)
    (run / "checkpoint.pt").unlink()
    code, _, err = show(["kl", str(run)], capsys)
    assert code == 1 and len(err.splitlines()) == 1
    assert "has no checkpoint" in err and "train it first" in err and "--resume" not in err


@pytest.mark.parametrize("command", [["kl"], ["traverse"], ["factors", "--points", "100"]])
def test_a_held_out_kl_of_earlier_weights_is_refused_as_stale(two_runs, tmp_path, command, capsys):
    run = RunDir(tmp_path / "run")
    shutil.copytree(two_runs / "b1", run.path)
    step = run.checkpoint_step()
    run.update_metrics("test", run.read_metrics()["test"], step=step - 2)
    code, _, err = show([*command, str(run.path)], capsys)
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "stale" in err and f"computed at step {step - 2}" in err and f"checkpoint holds step {step}" in err


def test_show_recon_of_one_run_keeps_the_reconstructions_training_wrote(two_runs, capsys):
    run = two_runs / "b1"
    trained = (run / "reconstructions.png").read_bytes()
    code, out, err = show(["recon", str(run), "--n", "3"], capsys)
    assert code == 0, err
    assert out == str(run / "show-recon.png")
    assert Image.open(out).width == 2 * CELL + 2  # the inputs and the one run
    assert (run / "reconstructions.png").read_bytes() == trained


@pytest.mark.parametrize("count", ["0", "-2"])
def test_show_recon_of_no_image_is_refused_and_writes_nothing(two_runs, count, capsys):
    run = two_runs / "b1"
    before = sorted(path.name for path in run.iterdir())
    trained = (run / "reconstructions.png").read_bytes()
    code, _, err = show(["recon", str(run), "--n", count], capsys)
    assert code == 1 and err == f"betavae: error: --n {count} draws no image; give --n 1 or more"
    assert sorted(path.name for path in run.iterdir()) == before
    assert (run / "reconstructions.png").read_bytes() == trained


def test_show_commands_writing_into_a_folder_being_trained_name_the_holders_pid(two_runs, capsys):
    run = two_runs / "b1"
    with locked_by_another_process(run) as pid:
        before = {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()}
        for command in (["recon"], ["traverse"], ["samples"], ["kl"], ["factors", "--points", "100"]):
            code, out, err = show([*command, str(run)], capsys)
            assert code == 1 and out == "" and len(err.splitlines()) == 1, (command, err)
            assert f"in use by process {pid} (betavae train)" in err, (command, err)
        after = {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()}
    assert after == before


def test_recon_out_never_replaces_a_runs_files_or_a_users_but_replaces_its_own_figure(two_runs, tmp_path,
                                                                                         capsys):
    """issue 32, item 2: --out onto checkpoint.pt, config.toml, a user's PNG or notes refuses in one line and
    leaves every byte; a figure show recon wrote before is replaced."""
    run = tmp_path / "run"
    shutil.copytree(two_runs / "b1", run)
    (tmp_path / "mine.png").write_bytes(b"\x89PNG my own picture")
    (run / "notes.txt").write_text("my notes")
    before = {path: path.read_bytes() for path in [*run.rglob("*"), tmp_path / "mine.png"] if path.is_file()}
    for target in (run / "checkpoint.pt", run / "config.toml", run / "notes.txt", run / "reconstructions.png",
                   tmp_path / "mine.png"):
        code, _, err = show(["recon", str(run), "--n", "2", "--out", str(target)], capsys)
        assert code == 1 and len(err.splitlines()) == 1 and str(target) in err, (target, err)
    after = {path: path.read_bytes() for path in [*run.rglob("*"), tmp_path / "mine.png"] if path.is_file()}
    assert after == before

    figure = tmp_path / "figures" / "recon.png"
    for _ in range(2):  # a new name, then the same name again: its own figure is replaced
        code, out, err = show(["recon", str(run), "--n", "2", "--out", str(figure)], capsys)
        assert code == 0 and out == str(figure), err


def test_library_callers_redraw_their_own_figures_whoever_wrote_the_file_before(two_runs, tmp_path):
    """A sweep's recon_z<M>.png (drawn by the library under its own name, maybe by an older version
    without show recon's mark) is redrawn: only the user's --out is guarded, not the library call."""
    from betavae.viz.reconstructions import compare_reconstructions

    figure = tmp_path / "figures" / "recon_z4.png"
    figure.parent.mkdir()
    Image.new("L", (4, 4)).save(figure)  # no mark of show recon's
    assert compare_reconstructions([two_runs / "b1"], n=2, out=figure) == figure
    assert Image.open(figure).size != (4, 4)
