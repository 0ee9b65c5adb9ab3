"""``betavae reproduce`` end to end at its ``test`` scale (the smoke study's shape on fewer steps and
points): the report, its claims and figures, and resuming."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tests.commands import run_cli

from betavae.demo import vendor
from betavae.errors import BetaVAEError
from betavae.runs import RunDir
from betavae.study.claims import VERDICTS
from betavae.study.design import (
    FIGURES_SWEEP,
    LMSE_SWEEP,
    MEASUREMENTS_FILE,
    PAPER_NET_SWEEP,
    PARTS,
    REPORT_SAYS,
    SUCCESSORS,
    SUCCESSORS_FOLDER,
    checked_successors,
    scale_of,
)
from betavae.study.runner import _training, reproduce
from betavae.study.stats import MIN_SEEDS

SCALE = "test"  # smoke's design on fewer steps and points: the report's every section, quickly


@pytest.fixture()
def study(test_study) -> Path:
    """The study at its test scale (tests/conftest.py: one per test run, which the poster's tests share)."""
    return test_study


def claim_rows(markdown: str) -> list[list[str]]:
    table = markdown.split("| # | Claim |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in table]


def test_the_report_judges_every_claim_by_its_stated_rule(study):
    markdown = (study / "report.md").read_text()
    html = (study / "report.html").read_text()
    rows = claim_rows(markdown)
    assert sorted({row[0] for row in rows}, key=lambda n: (int(n.rstrip("b")), n)) \
        == ["1", "2", "3", "4", "5", "6", "6b", "7", "8"]
    for row in rows:
        assert row[5].strip("*") in VERDICTS, row
        # one seed: no part is decided, and each says why
        assert row[5].strip("*") == "inconclusive", row
        assert "too few seeds" in row[4] or "not trained" in row[4], row
    for rule in ("Student", "Holm", "sign-flip", "two one-sided tests"):  # the rule is stated
        assert rule in markdown and rule in html
    # the reproducibility report's column, from its findings, for claims 1 to 7
    for row in rows:
        if row[0] != "8":
            assert row[3] not in ("", "—"), row
    assert "not shown" in next(row[3] for row in rows if row[0] == "3")
    assert f"betavae reproduce --scale {SCALE}" in markdown
    # every metric named with its variant and settings
    metrics_section = markdown.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    for name in scale_of(SCALE).metrics:
        assert f"| {name}: ".replace("_", "\\_") in metrics_section  # Markdown escapes the underscore
    sizes = rf"n\_train = {scale_of(SCALE).n_train}, n\_eval = {scale_of(SCALE).n_eval}"
    assert "Higgins et al. 2017" in metrics_section and sizes in metrics_section
    if (study / "mnist").exists():  # the held-out loss claim and transfer include MNIST
        assert "mnist: runs, grid and figures" in markdown
        claim_text = {number: " ".join(" ".join(row) for row in rows if row[0] == str(number))
                      for number in (1, 7)}
        assert "mnist" in claim_text[1] and "MNIST" in claim_text[7], claim_text


def test_every_figure_the_report_names_is_there_and_not_empty(study):
    markdown = (study / "report.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(figures) >= 6  # per dataset: loss, heatmaps, reconstructions, a traversal
    assert "| run | β\\_norm | β | M | seed |" in markdown  # every run with its trained mark
    assert markdown.count("✗ ") >= 4 and "not trained" in markdown  # smoke's runs are far too short
    for figure in figures:
        path = study / figure
        assert path.is_file() and path.stat().st_size > 0, figure
    assert (study / "report.html").read_text().count("data:image/") == len(figures)
    transfers = {part.folder for part in PARTS.values()
                 if part.transfer_task and (study / part.folder).exists()}
    assert {f"transfer/{folder}/transfer.svg" for folder in transfers} <= set(figures)
    captions = re.findall(r"\*Figure \d+\.\* (.+)", markdown)
    assert len(captions) == len(figures) and all(len(caption) > 40 for caption in captions), captions
    assert sum("Few-label transfer" in caption for caption in captions) == len(transfers)


def test_study_json_holds_the_reports_claims_every_finished_run_and_the_baselines_rows(study):
    from betavae.studies.results import result_rows
    from betavae.study.data import STUDY_FILE

    data = json.loads((study / STUDY_FILE).read_text())
    markdown = (study / "report.md").read_text()
    rows = claim_rows(markdown)
    assert [claim["number"] for claim in data["claims"]] == [row[0] for row in rows]
    assert [claim["verdict"] for claim in data["claims"]] == [row[5].strip("*") for row in rows]
    parts = {part["folder"]: part for part in data["parts"]}
    assert set(parts) == {part.folder for part in PARTS.values() if (study / part.folder).exists()}
    for folder, part in parts.items():
        for sweep in scale_of(SCALE).sweeps_of(PARTS[folder]):
            done = [row["run"] for row in result_rows(study / folder / sweep)[0] if row["status"] == "done"]
            assert [row["run"] for row in part["sweeps"][sweep]] == done, (folder, sweep)
    for claim in data["claims"]:  # each claim decides on the sweeps of the parts its parts name
        named = {piece["name"].split(" ", 1)[0] for piece in claim["parts"]}
        assert {target["part"] for target in claim["decided_by"]} == named & set(parts), claim["number"]
        for target in claim["decided_by"]:
            assert target["sweep"] == "baselines" or target["sweep"] in parts[target["part"]]["sweeps"]
    shapes_table = markdown.split("*Table 2.* shapes", 1)[1].split("*Table 3.*")[0]
    table = [line for line in shapes_table.splitlines() if line.startswith("|")][2:]  # header, rule
    labels = [line.split("|")[1].strip() for line in table]
    assert [row["label"] for row in parts["shapes"]["baselines"]] == labels
    trained = {row["name"]: row["runs"] for row in parts["shapes"]["baselines"] if row["runs"]}
    assert trained == {"vae": ["b1-s0"], "beta_vae": ["b4-s0"], "beta_tc": ["s0"], "factor": ["s0"]}
    # the report links the poster, which the study wrote beside it
    html = (study / "report.html").read_text()
    assert '<a href="poster/index.html">' in html and "(poster/index.html)" in markdown
    assert (study / "poster" / "index.html").is_file()


def test_the_successors_are_trained_beside_the_beta_vae_and_scored_in_the_baselines_table(study):
    smoke = scale_of(SCALE)
    shapes_table = (study / "report.md").read_text().split("*Table 2.* shapes", 1)[1].split("*Table 3.*")[0]
    for objective, label in (("beta_tc", "β-TCVAE"), ("factor", "FactorVAE")):
        assert objective in smoke.successors
        runs = sorted((study / "shapes" / SUCCESSORS_FOLDER / objective).glob("*/config.toml"))
        assert len(runs) == smoke.successor_seeds
        config = RunDir(runs[0].parent).read_config()
        assert config.objective == objective and config.latent_dim == smoke.compare_latent
        assert all(getattr(config, key) == value for key, value in SUCCESSORS[objective].items())
        row = next(line for line in shapes_table.splitlines() if line.startswith(f"| {label}"))
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]
        assert len(cells) == 1 + len(smoke.metrics)  # the paper's column stands beside dSprites only
        assert all(re.fullmatch(r"-?\d+\.\d{3} \(1 seed\)", cell) for cell in cells[1:]), row
    markdown = (study / "report.md").read_text()
    dsprites_table = markdown.split("*Table 3.* dsprites", 1)[1].split("*Table 4.*")[0]
    assert "paper (its score, Fig. 6)" in dsprites_table and "99.23" in dsprites_table
    # The paper's own network beside the study's, and the score as the paper ran it beside the reference's.
    header = next(line for line in dsprites_table.splitlines() if line.startswith("| model"))
    assert "beta\\_vae\\_paper" in header
    fc_rows = {"VAE untrained, the paper's network": "44.14", "VAE (β = 1), the paper's network": "61.58",
               "β-VAE (β = 4), the paper's network": "99.23"}
    for label, paper in fc_rows.items():
        row = next(line for line in dsprites_table.splitlines() if line.startswith(f"| {label}"))
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]
        measured = r"-?\d+\.\d{3}( ± \d+\.\d{3})? \(\d seeds?\)"
        assert paper in cells[1] and re.fullmatch(measured, cells[-1]), row
    for run in (study / "dsprites" / PAPER_NET_SWEEP).glob("*/config.toml"):
        assert RunDir(run.parent).read_config().arch == "fc"
    assert not (study / "dsprites" / SUCCESSORS_FOLDER).exists()  # smoke trains them on the heart set only


def test_a_second_invocation_reuses_every_run_and_measurement_and_says_what_it_skipped(study):
    logs = {path: path.read_bytes() for path in study.rglob("log.jsonl")}
    parts = 3 if (study / "mnist").exists() else 2
    successors = len(scale_of(SCALE).successors)  # one seed each, on the heart set
    figure_runs = len(scale_of(SCALE).figure_betas) * len(scale_of(SCALE).figure_latents)  # heart set
    lmse_runs = 4 * (parts - 1)  # the heart set's and MNIST's 2 × 2 grids again under log-MSE
    lmse_runs += 2  # and dSprites' β = 1 / β = 4 with the paper's network
    # per set: a 2 × 2 grid, β = 1 / β = 4, one seed
    assert len(logs) == 6 * parts + successors + figure_runs + lmse_runs
    measurements = (study / MEASUREMENTS_FILE).read_bytes()
    report_before = (study / "report.md").stat().st_mtime_ns
    transfer_figure = study / "transfer" / "dsprites" / "transfer.svg"
    transfer_figure.unlink()  # the study keeps the rows; the picture is drawn again from them
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BETAVAE_DATA_DIR", str(study.parent))  # no MNIST here
        # and offline without ONNX Runtime Web: the poster is not built, the study finishes all the same
        patch.setattr(vendor, "require", lambda report=None: (_ for _ in ()).throw(BetaVAEError("offline")))
        lines: list[str] = []
        reproduce(SCALE, study, progress=False, echo=lines.append, download=False)
    assert lines[-1] == f"the poster was not built: offline; build it later with: betavae poster {study}"
    assert "poster/index.html" not in (study / "report.md").read_text()  # no link to a poster not built
    assert {path: path.read_bytes() for path in study.rglob("log.jsonl")} == logs  # no training step
    assert (study / MEASUREMENTS_FILE).read_bytes() == measurements  # nothing measured again
    assert (study / "report.md").stat().st_mtime_ns > report_before
    assert any(line.startswith("skipping the MNIST parts") for line in lines)
    markdown = (study / "report.md").read_text()
    assert "MNIST" in markdown.split("## Skipped", 1)[1]  # what was not run, and why
    assert transfer_figure.stat().st_size > 0 and "transfer/dsprites/transfer.svg" in markdown
    assert "mnist: runs, grid and figures" not in markdown


def test_mnist_given_by_data_dir_serves_runs_that_found_it_elsewhere(study, request):
    """The runs above read MNIST through $BETAVAE_DATA_DIR and recorded no folder; an invocation
    given ``data_dir`` instead (a Path, as library callers pass it) measures and draws them from it."""
    if not (study / "mnist").exists():
        pytest.skip("the study ran without MNIST: nothing of it to serve")
    mnist_dir = request.getfixturevalue("mnist_dir")
    logs = {path: path.read_bytes() for path in study.rglob("log.jsonl")}
    measurements = (study / MEASUREMENTS_FILE).read_bytes()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BETAVAE_DATA_DIR", str(study.parent))  # no MNIST here
        lines: list[str] = []
        reproduce(SCALE, study, data_dir=Path(mnist_dir), progress=False, echo=lines.append, download=False)
        assert os.environ["BETAVAE_DATA_DIR"] == str(study.parent)  # the caller's environment, as it was
    assert not any(line.startswith("skipping the MNIST parts") for line in lines)
    assert {path: path.read_bytes() for path in study.rglob("log.jsonl")} == logs  # no training step
    assert (study / MEASUREMENTS_FILE).read_bytes() == measurements
    markdown = (study / "report.md").read_text()
    assert "mnist: runs, grid and figures" in markdown and "--data-dir" in markdown
    assert "(poster/index.html)" in markdown and "| poster |" in markdown  # built again, and its time


def test_the_paper_scale_uses_the_reference_predictors_and_deterministic_kernels():
    paper, small = scale_of("paper"), scale_of("small")
    assert "dci_gbt" in paper.metrics and "dci" not in paper.metrics
    assert all(_training(part, paper, None, part.recon)["deterministic"] for part in paper.parts_of())
    assert all("deterministic" not in _training(part, small, None, part.recon) for part in small.parts_of())
    shapes, dsprites, mnist = PARTS["shapes"], PARTS["dsprites"], PARTS["mnist"]
    every_successor = [f"{SUCCESSORS_FOLDER}/{objective}" for objective in SUCCESSORS]
    assert paper.sweeps_of(shapes) == ["grid", "compare", FIGURES_SWEEP, *every_successor, LMSE_SWEEP]
    # Bernoulli: no MSE to replace; the paper's table with the paper's network
    assert paper.sweeps_of(dsprites) == ["grid", "compare", *every_successor, PAPER_NET_SWEEP]
    assert paper.sweeps_of(mnist) == ["grid", "compare", FIGURES_SWEEP, LMSE_SWEEP]  # no factors to score
    assert small.sweeps_of(shapes) == ["grid", "compare"]  # they do not fit its half hour unless asked
    asked = replace(small, successors=checked_successors(["factor", "beta_tc"]))
    assert asked.sweeps_of(shapes)[2:] == [f"{SUCCESSORS_FOLDER}/beta_tc", f"{SUCCESSORS_FOLDER}/factor"]


def test_small_is_the_reports_scope_sized_to_decide_and_dsprites_moves_to_medium():
    small, medium, paper = scale_of("small"), scale_of("medium"), scale_of("paper")
    assert small.parts == ("shapes", "mnist")  # the report's sets at 28 × 28
    assert "dsprites" in medium.parts and "dsprites" in paper.parts
    for scale in (small, medium, paper):  # at least 3 seeds for every compared setting
        assert min(scale.seeds, scale.seeds_of_grid, *map(scale.grid_seeds_of, scale.parts_of())) >= MIN_SEEDS
    assert min(medium.seeds, medium.seeds_of_grid) >= 5  # the exact tests of coarse effects need 5 …
    assert small.grid_seeds_of(PARTS["shapes"]) >= 5  # … as small's grid on the heart set has them
    assert PARTS["shapes"].recon == PARTS["mnist"].recon == "gaussian"  # the report's squared error …
    assert PARTS["shapes"].compare_recon == "bernoulli"  # … beside the paper's loss where β = 4 means its β
    assert len(small.beta_norms) >= 3 and len(small.latent_dims) >= 2  # a peak inside: three β_norm
    ratio = max(small.latent_dims) / min(small.latent_dims)  # pairs of runs share a raw β: M at fixed β
    assert any(abs(b2 / b1 - ratio) < 1e-9 for b1 in small.beta_norms for b2 in small.beta_norms)
    decades = np.log10(max(paper.beta_norms) / min(paper.beta_norms))
    assert min(paper.beta_norms) == 2e-5 and max(paper.beta_norms) == 20
    assert len(paper.beta_norms) >= 3 * decades
    assert paper.figure_betas == (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0) and 2 in paper.figure_latents
    assert set(REPORT_SAYS) >= {1, 2, 3, 4, 5, 6, "6b", 7}


def test_an_unknown_scale_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_cli(["reproduce", "--scale", "huge", "--out", tmp_path / "study"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "smoke" in err


@pytest.mark.parametrize("given, message", [("beta_tc,betavae", "unknown successor 'betavae'"),
                                            ("beta_tc,,factor", "single commas")])
def test_an_unknown_successor_is_a_one_line_error_before_any_work(tmp_path, capsys, given, message):
    args = ["reproduce", "--scale", "smoke", "--successors", given, "--out", tmp_path / "study"]
    code, _, err = run_cli(args, capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and message in err
    assert "beta_tc, capacity, dip, factor" in err or "single commas" in err  # the names to choose from
    assert not (tmp_path / "study" / "shapes").exists()


def test_successors_named_all_or_none_or_in_any_order_keep_the_registry_order():
    assert checked_successors(["dip", "beta_tc"]) == ("beta_tc", "dip")
    assert checked_successors(list(SUCCESSORS)) == tuple(SUCCESSORS) and checked_successors([]) == ()


def test_a_study_made_at_one_scale_is_refused_at_another_before_any_work(study):
    """``--scale small`` onto a smaller study's folder queued 12 more points into its grids; now it is
    one line naming both scales, and no state of the study changes (issue 32, item 10)."""
    states = {path: path.read_bytes() for path in study.rglob("sweep.db")}
    assert states
    refusal = rf"with scale {SCALE}, not small; .* the same scale to continue it"
    with pytest.raises(BetaVAEError, match=refusal):
        reproduce("small", study, progress=False, echo=print, download=False)
    assert {path: path.read_bytes() for path in study.rglob("sweep.db")} == states


def test_a_baseline_is_computed_once_per_dataset_and_settings_across_studies(monkeypatch, tmp_path):
    """Baselines depend on the dataset and the metrics' settings, not on the runs: the user's cache
    serves a second study (a new folder) with the same settings, and other settings compute again."""
    import betavae.evaluation
    from betavae.study import runner
    from betavae.study.design import PARTS

    calls = []

    def evaluate_baseline(name, dataset, metrics, seed, sizes, latent_dim, device, num_fit, arch):
        calls.append((name, seed, sizes["n_train"]) + ((arch,) if arch else ()))
        return {metric: {"eval_accuracy": 0.5, "mig": 0.1, "dci": 0.2, "sap": 0.3} for metric in metrics}

    monkeypatch.setattr(betavae.evaluation, "evaluate_baseline", evaluate_baseline)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # a cache of this test's alone
    smoke = scale_of("smoke")
    first = runner.baseline_scores(PARTS["shapes"], "pca", 0, smoke)
    assert runner.baseline_scores(PARTS["shapes"], "pca", 0, smoke) == first and len(calls) == 1
    runner.baseline_scores(PARTS["shapes"], "pca", 1, smoke)
    runner.baseline_scores(PARTS["shapes"], "pca", 0, dataclasses.replace(smoke, n_train=41))
    assert calls == [("pca", 0, 40), ("pca", 1, 40), ("pca", 0, 41)]
    # The paper's untrained network: the untrained baseline of its architecture, scored by its protocol too.
    scores = runner.baseline_scores(PARTS["dsprites"], "untrained_fc", 0, smoke)
    assert calls[-1] == ("untrained", 0, 40, "fc") and "beta_vae_paper" in scores


def test_the_grids_trained_again_under_log_mse_are_reported_as_a_finding_beside_mse(study):
    """Issue 35: the squared-error grids of the heart set and MNIST again under log-MSE, paired with the
    MSE runs by name, in a section of their own with a table per set and the figure of both."""
    markdown = (study / "report.md").read_text()
    section = markdown.split("## Finding: log-MSE in place of MSE", 1)[1].split("\n## ", 1)[0]
    section = section.replace("\\_", "_")  # Markdown's escaped underscores
    assert "not a claim of either paper" in section and "Bonferroni" in section
    for part in PARTS.values():
        lmse_dir = study / part.folder / LMSE_SWEEP
        if not scale_of(SCALE).lmse_of(part) or not (study / part.folder).exists():
            assert not lmse_dir.exists()
            continue
        runs = sorted(path.parent.name for path in lmse_dir.glob("*/config.toml"))
        grid = study / part.folder / "grid"
        assert runs == sorted(path.parent.name for path in grid.glob("*/config.toml"))  # paired by name
        for run in lmse_dir.glob("*/config.toml"):
            config = RunDir(run.parent).read_config()
            assert config.recon == "lmse" and config.steps == scale_of(SCALE).steps[part.folder]
            test = RunDir(run.parent).read_metrics()["test"]
            assert test["squared_error"] > 0  # on the scale every run shares, whatever loss trained it
        assert runs and "*Table" in section and f"{part.dataset}: the grid's" in section
        assert f"{part.folder}/{LMSE_SWEEP}/mse-against-lmse.png" in section
        assert (lmse_dir / "mse-against-lmse.png").stat().st_size > 0
