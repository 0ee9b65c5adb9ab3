"""``betavae reproduce --scale smoke`` end to end: the report, its claims and figures, and resuming."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.commands import run_cli

from betavae.studies.claims import VERDICTS
from betavae.studies.reproduce import MEASUREMENTS_FILE, reproduce


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """The smoke study, with no MNIST anywhere (its parts are skipped, and the report says why)."""
    out = tmp_path_factory.mktemp("study") / "reproduce"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BETAVAE_DATA_DIR", str(tmp_path_factory.mktemp("no_data")))
        lines: list[str] = []
        report = reproduce("smoke", out, progress=False, echo=lines.append)
    assert report == out / "report.html"
    assert any(line.startswith("skipping the MNIST parts") for line in lines)
    return out


def claim_rows(markdown: str) -> list[list[str]]:
    table = markdown.split("| # | Claim |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in table]


def test_the_report_judges_every_claim_by_its_stated_rule(study):
    markdown = (study / "report.md").read_text()
    html = (study / "report.html").read_text()
    rows = claim_rows(markdown)
    assert sorted({int(row[0]) for row in rows}) == list(range(1, 9))
    for row in rows:
        assert row[5].strip("*") in VERDICTS, row
    assert "standard errors" in markdown and "standard errors" in html  # the rule is stated
    assert "betavae reproduce --scale smoke" in markdown
    assert "MNIST" in markdown.split("## Skipped", 1)[1]  # what was not run, and why


def test_every_figure_the_report_names_is_there_and_not_empty(study):
    markdown = (study / "report.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(figures) >= 6  # per dataset: loss, heatmaps, reconstructions, a traversal
    for figure in figures:
        path = study / figure
        assert path.is_file() and path.stat().st_size > 0, figure
    assert (study / "report.html").read_text().count("data:image/") == len(figures)


def test_a_second_invocation_reuses_every_run_and_measurement(study):
    logs = {path: path.read_bytes() for path in study.glob("*/*/*/log.jsonl")}
    assert len(logs) == 12  # Shapes and dSprites: a 2 × 2 grid and β = 1 / β = 4, one seed
    measurements = (study / MEASUREMENTS_FILE).read_bytes()
    report_before = (study / "report.md").stat().st_mtime_ns
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BETAVAE_DATA_DIR", str(study.parent))
        reproduce("smoke", study, progress=False, echo=lambda line: None)
    assert {path: path.read_bytes() for path in study.glob("*/*/*/log.jsonl")} == logs  # no training step
    assert (study / MEASUREMENTS_FILE).read_bytes() == measurements  # nothing measured again
    assert (study / "report.md").stat().st_mtime_ns > report_before


def test_an_unknown_scale_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_cli(["reproduce", "--scale", "huge", "--out", tmp_path / "study"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "smoke" in err
