"""``betavae transfer``: few-label softmax regression on frozen codes, its table, plot and summary."""

import csv
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from betavae.config import TrainConfig
from betavae.errors import BetaVAEError
from betavae.training.loop import train
from betavae.transfer import (
    COLUMNS,
    REFERENCE_RULE,
    balanced_sample,
    reference_run,
    run_transfer,
    summarise,
    transfer_curves,
)
from commands import run_cli
from marks import slow_fixture
from processes import locked_by_another_process
from runfolders import untrained_run

LABELS = (10, 100, 500)  # a curve of three points; 1,000 pixel labels doubled the module's time
REPEATS = 2
# The trained MNIST runs hold out the 2,000 images mnist_result scores on: their held-out loss over the
# official 10,000 took half of the module's set-up.
MNIST_TEST_SIZE = 2000


@pytest.fixture(scope="module")
@slow_fixture
def mnist_runs(tmp_path_factory, mnist_dir):
    folder = tmp_path_factory.mktemp("mnist_runs")
    for name, beta, latent_dim in (("b1_m2", 1.0, 2), ("b4_m10", 4.0, 10)):
        train(
            TrainConfig(
                dataset="mnist",
                data_dir=str(mnist_dir),
                latent_dim=latent_dim,
                beta=beta,
                steps=50,
                batch_size=64,
                lr=3e-3,
                test_size=MNIST_TEST_SIZE,
                out=str(folder / name),
                device="cpu",
            ),
            progress=False,
        )
    return [folder / "b1_m2", folder / "b4_m10"]


@pytest.fixture(scope="module")
@slow_fixture
def shapes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes_runs") / "b1"
    train(
        TrainConfig(
            dataset="shapes",
            latent_dim=4,
            steps=50,
            batch_size=64,
            lr=3e-3,
            test_size=1000,
            out=str(out),
            device="cpu",
        ),
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
@slow_fixture
def mnist_result(mnist_runs, tmp_path_factory):
    return run_transfer(
        mnist_runs, labels=LABELS, repeats=REPEATS, out=tmp_path_factory.mktemp("transfer")
    )


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def mean_accuracy(rows, run, latent_dim, n):
    return np.mean(
        [
            float(r["accuracy"])
            for r in rows
            if r["run"] == run and int(r["latent_dim"]) == latent_dim and int(r["n"]) == n
        ]
    )


def test_csv_has_one_row_per_representation_n_and_repeat(mnist_result):
    rows = read_rows(mnist_result.csv_path)
    assert tuple(rows[0]) == COLUMNS
    # two runs, pixels, one PCA per latent size (2 and 10), one untrained encoder
    assert len(rows) == (2 + 1 + 2 + 1) * len(LABELS) * REPEATS
    assert {r["run"] for r in rows} == {
        "b1_m2",
        "b4_m10",
        "baseline:pixels",
        "baseline:pca",
        "baseline:untrained",
    }
    baseline = next(r for r in rows if r["run"] == "baseline:pixels")
    assert baseline["beta"] == "" and baseline["beta_norm"] == "" and baseline["latent_dim"] == "784"
    run = next(r for r in rows if r["run"] == "b4_m10")
    assert float(run["beta"]) == 4.0 and float(run["beta_norm"]) == pytest.approx(4.0 * 10 / 784)  # β·M/N
    assert all(0 <= float(r["accuracy"]) <= 1 and float(r["loss"]) > 0 for r in rows)


def test_more_labels_never_give_a_much_worse_accuracy(mnist_result):
    rows = read_rows(mnist_result.csv_path)
    for run, latent_dim in {(r["run"], int(r["latent_dim"])) for r in rows}:
        curve = [mean_accuracy(rows, run, latent_dim, n) for n in LABELS]
        assert curve[-1] >= curve[0] - 0.02, (run, curve)
        assert all(
            later >= earlier - 0.05 for earlier, later in zip(curve, curve[1:], strict=False)
        ), (run, curve)


def test_the_same_seed_gives_the_same_rows(mnist_runs, tmp_path):
    # Two transfers of the same settings, smaller than the module's: the same rows and summary. The
    # seeded parts: the label draws, the run's classifier, PCA's fit and the untrained encoder.
    first, again = (
        run_transfer(mnist_runs[:1], labels=(10, 100), repeats=REPEATS, max_test=500,
                     baselines=("pca", "untrained"), out=tmp_path / name)
        for name in ("first", "again")
    )
    assert again.csv_path.read_text() == first.csv_path.read_text()
    assert again.summary == first.summary


def test_plot_parses_and_summary_tables_every_run_and_names_the_best_beta_per_n(mnist_result):
    root = ElementTree.parse(mnist_result.plot_path).getroot()
    assert root.tag.endswith("svg")
    text = mnist_result.plot_path.read_text()
    assert "β=4" in text and "pixels" in text and "labelled training samples" in text
    summary = mnist_result.summary
    assert summary == mnist_result.summary_path.read_text()
    assert all(f"n={n}: best" in summary for n in LABELS)
    assert "M = 2" in summary and "M = 10" in summary and "baselines:" in summary
    for curve in transfer_curves(mnist_result.rows):
        if not curve.is_baseline:
            for n in LABELS:
                assert table_line(summary, n, curve), (curve.label, n)


def test_a_trained_codes_digit_accuracy_is_well_above_chance_on_mnist(mnist_result):
    # Ten digits: chance is 0.1. The β = 1, M = 2 run trained 50 steps reached about 0.32 from
    # 1,000 labels (repeats within 0.01), well above 0.2 from the 500 labels now largest here;
    # its 2-d code already separates some digits.
    rows = read_rows(mnist_result.csv_path)
    assert mean_accuracy(rows, "b1_m2", 2, LABELS[-1]) > 0.1 + 0.1


def test_a_linear_classifier_on_mnist_pixels_with_2000_labels_reaches_about_88_percent(mnist_dir, tmp_path):
    # Logistic regression on raw pixels, scored on the full 10,000-image test set: about 86.5 % from
    # 1,000 labels, 88 % from 2,000, 89 % from 3,000; 2,000 pins the classifier at a fifth of the
    # cost of 10,000. The run (needed for its dataset) is untrained: only the pixels' row is checked.
    run = untrained_run(TrainConfig(dataset="mnist", data_dir=str(mnist_dir), latent_dim=2, device="cpu"),
                        tmp_path / "run")
    result = run_transfer([run], labels=(2_000,), repeats=1, baselines=("pixels",), out=tmp_path)
    pixels = [r for r in result.rows if r["run"] == "baseline:pixels"]
    assert len(pixels) == 1 and pixels[0]["accuracy"] >= 0.87


def test_the_default_output_folder_is_the_runs_common_parent(mnist_runs):
    result = run_transfer(mnist_runs[:1], labels=(10,), repeats=1, baselines=(), max_test=200)
    assert result.csv_path.parent == mnist_runs[0].parent.resolve()
    assert len(result.rows) == 1


def test_a_shapes_runs_code_decodes_position_well_above_chance(shapes_run, tmp_path):
    position = run_transfer(
        [shapes_run], labels=(30, 300), repeats=2, task="factor:pos_x", baselines=("pixels",), out=tmp_path
    )
    rows = read_rows(position.csv_path)
    # Twelve positions: chance is 1/12. The run's own 4-d code, trained 50 steps, reaches about 0.4
    # from 300 labels (0.38–0.43 over seeds 0–2); pixels about 0.6.
    assert mean_accuracy(rows, "b1", 4, 300) > 3 / 12
    assert mean_accuracy(rows, "baseline:pixels", 784, 300) > 3 / 12


def test_every_factor_of_shapes_is_a_task(shapes_run, tmp_path):
    # Which of three shapes is barely linear in 28x28 pixels or in a briefly trained code (about 0.37
    # accuracy, chance 1/3, even from pixels): this pins that the task runs, not how well.
    shape = run_transfer(
        [shapes_run], labels=(30,), repeats=1, task="factor:shape", baselines=(), out=tmp_path
    )
    assert [(row["run"], row["n"]) for row in shape.rows] == [("b1", 30)]


@pytest.mark.parametrize(
    "task, message",
    [
        ("digit", "task 'digit' needs class labels, which dataset 'shapes' has not"),
        (
            "factor:colour",
            "unknown factor of shapes 'colour'; choose one of: pos_x, pos_y, rotation, scale, shape",
        ),
        ("shape", "unknown task 'shape'; use 'digit' or 'factor:NAME'"),
        (None, "dataset 'shapes' has no digit labels; pass --task factor:NAME"),
    ],
)
def test_a_task_the_shapes_dataset_cannot_serve_is_a_clear_error(shapes_run, tmp_path, task, message):
    with pytest.raises(BetaVAEError, match="^" + message.replace("(", r"\(")):
        run_transfer([shapes_run], labels=(30,), repeats=1, task=task, out=tmp_path)


def test_factor_tasks_on_mnist_and_mixed_datasets_are_clear_errors(mnist_runs, shapes_run, tmp_path):
    with pytest.raises(BetaVAEError, match="task 'factor:shape' needs known generative factors"):
        run_transfer(mnist_runs, labels=(30,), repeats=1, task="factor:shape", out=tmp_path)
    with pytest.raises(BetaVAEError, match="runs trained on different datasets"):
        run_transfer([mnist_runs[0], shapes_run], labels=(30,), repeats=1, out=tmp_path)


def test_label_counts_outside_the_training_set_or_below_the_classes_are_clear_errors(mnist_runs, tmp_path):
    with pytest.raises(BetaVAEError, match="--labels 5 is fewer than the 10 classes"):
        run_transfer(mnist_runs, labels=(5, 100), repeats=1, out=tmp_path)
    with pytest.raises(BetaVAEError, match="--labels 70000 is more than the 60000 training images"):
        run_transfer(mnist_runs, labels=(70_000,), repeats=1, out=tmp_path)


def synthetic_rows(runs, labels=(10, 100), repeats=2):
    """Rows as ``transfer.csv`` holds them for runs ``(name, β, M)``: distinct losses and accuracies
    per run and n."""
    rows = []
    for index, (name, beta, latent_dim) in enumerate(runs):
        for n in labels:
            for repeat in range(repeats):
                rows.append(
                    {
                        "run": name,
                        "beta": beta,
                        "beta_norm": beta * latent_dim / 784,
                        "latent_dim": latent_dim,
                        "n": n,
                        "repeat": repeat,
                        "loss": 2.0 - 0.1 * index - 0.0001 * n + 0.01 * repeat,
                        "accuracy": 0.2 + 0.05 * index + 0.0002 * n + 0.01 * repeat,
                    }
                )
    return rows


def table_line(summary, n, curve):
    """The line of the summary's table for run ``curve`` at ``n``, or None."""
    score = curve.scores[n]
    cells = (
        curve.label,
        f"{score.loss:.3f} ± {score.loss_std:.3f}",
        f"{score.accuracy:.3f} ± {score.accuracy_std:.3f}",
    )
    return next(
        (
            line
            for line in summary.splitlines()
            if line.split()[:1] == [str(n)] and all(cell in line for cell in cells)
        ),
        None,
    )


@pytest.mark.parametrize(
    "betas, reference",
    [
        ((0.16, 1.57), 1.57),  # 1.57 is nearer 1 both on a log scale and in absolute difference
        ((0.9, 1.0, 1.2), 1.0),
        ((0.5, 2.0), 0.5),  # as far on a log scale: the smaller β
        ((0.25, 3.0), 3.0),  # nearer in ratio (3 against 4), not in difference
        ((4.0, 16.0), 4.0),
    ],
)
def test_the_reference_is_the_run_whose_beta_is_closest_to_1_on_a_log_scale(betas, reference):
    runs = [(f"b{beta:g}", beta, 10) for beta in betas]
    curves = transfer_curves(synthetic_rows(runs))
    assert reference_run(curves).beta == reference
    summary = summarise(curves, "synthetic")
    label = next(curve.label for curve in curves if curve.beta == reference)
    assert f"M = 10 (reference: {label}):" in summary
    assert f"reference: {REFERENCE_RULE}" in summary and "closest to 1 on a log scale" in summary


def test_the_summary_tables_every_runs_loss_and_accuracy_at_every_n_and_keeps_the_verdict():
    runs = [("low", 0.16, 10), ("high", 1.57, 10), ("mid", 0.5, 10), ("small", 4.0, 2)]
    curves = transfer_curves(synthetic_rows(runs, labels=(10, 100, 1000)))
    summary = summarise(curves, "synthetic")
    for curve in curves:
        for n in (10, 100, 1000):
            line = table_line(summary, n, curve)
            assert line is not None, (curve.label, n)
            assert line.endswith("reference") == (curve.run in ("high", "small"))  # one reference per M
    # The run with the lowest loss ("small" aside, which is alone at M = 2) is "mid": compared with "high".
    assert "n=100: best β=0.5, β_norm=0.00638, M=10, loss" in summary
    assert "vs reference Δ = -0.100" in summary and "larger than the spread" in summary
    assert "n=10: best β=4, β_norm=0.0102, M=2, loss 1.704 ± 0.005, acc 0.357 (the reference)" in summary


def test_seeds_of_one_setting_are_told_apart_by_their_run_folder_in_figure_and_summary():
    runs = [("b1-s0", 1.0, 10), ("b1-s1", 1.0, 10), ("b4-s0", 4.0, 10)]
    curves = transfer_curves(synthetic_rows(runs))
    labels = [curve.label for curve in curves]
    assert labels == ["β=1, β_norm=0.0128, M=10 (b1-s0)", "β=1, β_norm=0.0128, M=10 (b1-s1)",
                      "β=4, β_norm=0.051, M=10"]  # a setting with one run keeps the plain label
    summary = summarise(curves, "synthetic")
    assert all(table_line(summary, n, curve) is not None for curve in curves for n in (10, 100))


def test_balanced_sample_spreads_the_remainder_and_draws_each_image_once():
    labels = np.repeat(np.arange(3), 50)
    sample = balanced_sample(labels, 14, np.random.default_rng(0))
    counts = np.bincount(labels[sample], minlength=3)
    assert len(np.unique(sample)) == 14 and sorted(counts) == [4, 5, 5]


def test_transfer_command_prints_the_summary_and_where_the_files_are(shapes_run, tmp_path, capsys):
    from betavae.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "transfer", str(shapes_run), "--task", "factor:pos_x", "--labels", "24,120", "--repeats", "2",
                "--baselines", "pixels", "--out", str(tmp_path), "--device", "cpu",
            ]
        )
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err
    for name in ("transfer.csv", "transfer.svg", "transfer.txt"):
        assert f"written: {tmp_path / name}" in out
    assert (tmp_path / "transfer.txt").read_text().strip() in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--labels", "10,many"], "--labels takes whole numbers"),
        (["--labels", "24", "--baselines", "sift"], "unknown transfer baseline 'sift'"),
    ],
)
def test_bad_transfer_options_are_one_line_errors(shapes_run, tmp_path, capsys, args, message):
    from betavae.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["transfer", str(shapes_run), "--task", "factor:pos_x", "--out", str(tmp_path), *args])
    _, err = capsys.readouterr()
    assert exit_info.value.code == 1 and len(err.strip().splitlines()) == 1 and message in err


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_an_output_path_that_cannot_be_a_folder_is_refused_before_any_work(
    shapes_run, tmp_path, where, capsys, monkeypatch
):
    import betavae.transfer

    def no_work(*args, **kwargs):
        raise AssertionError("the output folder must be checked before the runs are read")

    monkeypatch.setattr(betavae.transfer, "shared_dataset", no_work)
    (tmp_path / "file").write_text("a file")
    code, _, err = run_cli(
        [
            "transfer", str(shapes_run), "--task", "factor:pos_x", "--labels", "24", "--out",
            str(tmp_path / where),
        ],
        capsys,
    )
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"{tmp_path / 'file'} is a file, not a folder; choose another path" in err
    assert (tmp_path / "file").read_text() == "a file"


def test_transfer_into_a_run_folder_being_trained_names_the_holders_pid(shapes_run, capsys):
    before = {
        path.name: path.read_bytes()
        for path in shapes_run.iterdir()
        if path.is_file() and path.name != ".lock"
    }
    with locked_by_another_process(shapes_run) as pid:
        code, out, err = run_cli(
            [
                "transfer", str(shapes_run), "--task", "factor:pos_x", "--labels", "24", "--repeats", "1",
                "--baselines", "none", "--out", str(shapes_run),
            ],
            capsys,
        )
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
    assert f"in use by process {pid} (betavae train)" in err
    after = {
        path.name: path.read_bytes()
        for path in shapes_run.iterdir()
        if path.is_file() and path.name != ".lock"
    }
    assert after == before and "transfer.csv" not in after
