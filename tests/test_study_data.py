"""``study.json`` (betavae.study.data) from made-up claims and rows: what the poster reads, no study run."""

from __future__ import annotations

import json
import math

from betavae.study.claims import HELD, INCONCLUSIVE, ClaimPart
from betavae.study.data import STUDY_FILE, deciding_sweep, study_data, write_study_data
from betavae.study.design import PARTS, Measured, scale_of
from betavae.study.report import ClaimRow


def claim(number: str, *part_names: str) -> ClaimRow:
    parts = tuple(ClaimPart(name, "> 0", "+1.0", HELD) for name in part_names)
    verdict = HELD if parts else INCONCLUSIVE
    return ClaimRow(number, "a claim", "paper", "report", "ours", verdict, "why", parts)


def test_study_json_names_for_each_claim_the_sweep_of_each_part_it_measured_and_writes_no_nan(tmp_path):
    scale = scale_of("smoke")
    parts = [PARTS["shapes"], PARTS["mnist"]]
    measured = Measured()
    for folder in ("shapes", "mnist"):
        measured.grid[folder] = [{"run": "bn1-z4-s0", "beta": 2.0, "beta_norm": 1.0, "latent_dim": 4,
                                  "seed": 0, "test.loss": math.nan, "mig.mig": 0.25}]
        measured.compare[folder] = [{"run": "b1-s0", "beta": 1.0, "seed": 0}, {"run": "b4-s0", "beta": 4.0}]
    measured.blur["shapes"] = [{"run": "bn1-z4-s0", "ratio": 0.8}]
    claims = [claim("1", "shapes recon/log β_norm", "mnist recon/log β_norm"), claim("3", "shapes VAE"),
              claim("8", "shapes ICA − pixels"), claim("6b")]
    baselines = {"shapes": [{"name": "vae", "label": "VAE (β = 1)", "paper": None, "scores": {"mig": [0.1]}},
                            {"name": "pca", "label": "PCA", "paper": None,
                             "scores": {"mig": [0.2, math.inf]}}]}
    data = study_data(scale, parts, measured, claims, baselines, "betavae reproduce", "the rule")
    path = write_study_data(tmp_path, data)
    assert path == tmp_path / STUDY_FILE
    read = json.loads(path.read_text(), parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    decided = {row["number"]: row["decided_by"] for row in read["claims"]}
    assert decided == {"1": [{"part": "shapes", "sweep": "grid"}, {"part": "mnist", "sweep": "grid"}],
                       "3": [{"part": "shapes", "sweep": "compare"}],
                       "8": [{"part": "shapes", "sweep": "baselines"}], "6b": []}
    shapes, mnist = read["parts"]
    grid = shapes["sweeps"]["grid"][0]
    assert grid["test.loss"] is None and grid["sharpness"] == 0.8
    assert mnist["sweeps"]["grid"][0]["sharpness"] is None  # no blur measured for it
    assert shapes["metrics"] == {"beta_vae": "beta_vae.eval_accuracy", "mig": "mig.mig"}
    assert mnist["metrics"] == {}
    vae, pca = shapes["baselines"]
    assert (vae["sweep"], vae["runs"]) == ("compare", ["b1-s0"])  # a trained row opens its runs
    assert (pca["sweep"], pca["runs"], pca["scores"]["mig"]) == (None, [], [0.2, None])
    assert mnist["baselines"] == []


def test_each_claim_is_decided_by_the_grid_but_the_comparisons_and_the_baselines_order():
    assert [deciding_sweep(number) for number in ("1", 2, "3", "4", "5", "6", "6b", "7", 8)] == \
        ["grid", "grid", "compare", "grid", "grid", "grid", "grid", "compare", "baselines"]
