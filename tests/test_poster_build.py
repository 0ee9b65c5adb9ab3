"""``betavae poster``: the folder it builds from a study's ``study.json`` and run folders, without a browser.

The study here is made by hand around real trained runs (two copies of one small Shapes run), so these
tests run beside the others; the poster of the real test-scale study, in Chromium, is tests/test_poster.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.commands import run_cli
from tests.runfolders import ACTIVE_SHAPES

from betavae import files
from betavae.demo import vendor
from betavae.demo.export import held_out_images
from betavae.errors import BetaVAEError
from betavae.poster import build
from betavae.poster.export import MANIFEST_FILE, RECONSTRUCTIONS_FILE, TEST_IMAGES_FILE, traversal_values
from betavae.runs import RunDir, load_model
from betavae.study.data import FORMAT as STUDY_FORMAT
from betavae.study.data import STUDY_FILE
from betavae.viz.traversals import ACTIVE_KL, held_out_kl, traversal_codes
from marks import slow_fixture

RUNS = ("bn0.1-z4-s0", "bn0.1-z4-s1")


@pytest.fixture(scope="module")
@slow_fixture
def trained_study(tmp_path_factory, trained_runs) -> Path:
    """A study folder holding one grid sweep of two runs and the study.json that names them."""
    study = tmp_path_factory.mktemp("poster") / "study"
    for name in RUNS:
        trained_runs.copy(ACTIVE_SHAPES, study / "shapes" / "grid" / name)
    rows = [{"run": name, "seed": seed, "beta": 1.0, "beta_norm": 0.1, "latent_dim": 4, "trained": True,
             "test.loss": 30.0 + seed} for seed, name in enumerate(RUNS)]
    data = {"format": STUDY_FORMAT, "scale": "test", "scale_text": "by hand", "command": "betavae reproduce",
            "rule": "none", "claims": [],
            "parts": [{"folder": "shapes", "dataset": "shapes", "arch": "conv28", "factors": True,
                       "recon": "bernoulli", "beta_norms": [0.1], "latent_dims": [4], "metrics": {},
                       "losses": {"test.loss": "held-out loss"}, "sweeps": {"grid": rows}, "baselines": []}]}
    (study / STUDY_FILE).write_text(json.dumps(data))
    return study


@pytest.fixture(scope="module")
def poster(trained_study) -> Path:
    lines: list[str] = []
    out = build.build_poster(trained_study, report=lines.append)
    assert lines[-1] == "poster: shapes/grid: 2 runs (2 exported, 0 kept)"
    return out


def test_the_poster_holds_the_page_ort_web_the_study_and_each_runs_files(poster, trained_study):
    assert poster == trained_study / "poster"
    for name in (*build.PAGE_FILES, *(path.name for path in build.SHARED_FILES), build.MANIFEST):
        assert (poster / name).is_file(), name
    assert sorted(os.listdir(poster / build.ORT_DIR)) == sorted(vendor.ORT_WEB_FILES)
    manifest = json.loads((poster / build.MANIFEST).read_text())
    assert manifest["format"] == build.FORMAT and manifest["ort"] == "ort/"
    assert manifest["active_kl"] == ACTIVE_KL
    rows = manifest["parts"][0]["sweeps"]["grid"]
    assert [row["model"] for row in rows] == [f"runs/shapes/grid/{name}/" for name in RUNS]
    for row in rows:
        folder = poster / row["model"]
        assert sorted(os.listdir(folder)) == sorted(["decoder.onnx", MANIFEST_FILE, TEST_IMAGES_FILE,
                                                     RECONSTRUCTIONS_FILE])
    # the mark proves every file betavae's, so that a rebuild may replace the folder
    assert set(files.read_mark(poster).files) == set(files.files_of(poster))


def test_each_run_ships_its_decoder_as_pytorch_decodes_and_the_codes_of_its_held_out_images(poster,
                                                                                         trained_study):
    import onnxruntime

    run_dir = trained_study / "shapes" / "grid" / RUNS[0]
    model_json = json.loads((poster / "runs/shapes/grid" / RUNS[0] / MANIFEST_FILE).read_text())
    model = load_model(RunDir(run_dir), "cpu").eval()
    kl = held_out_kl(RunDir(run_dir), 4)
    assert model_json["kl_per_dim"] == kl
    assert model_json["order"] == sorted(range(4), key=lambda dim: -kl[dim])
    assert model_json["collapsed"] == [dim for dim in model_json["order"] if kl[dim] <= ACTIVE_KL]
    assert model_json["step"] == RunDir(run_dir).checkpoint_step() and model_json["seed"] == 0
    split = RunDir(run_dir).read_config().load_dataset().test
    images = held_out_images(split, model_json["test_image_count"])
    with torch.no_grad():
        mu = model.encode(images.float().div(255))[0]
        codes = traversal_codes(model, mu[0], model_json["order"], traversal_values())
        expected = model.decode(codes).numpy()
    np.testing.assert_allclose(np.array(model_json["codes"], dtype=np.float32), mu.numpy(), atol=1e-6)
    session = onnxruntime.InferenceSession(str(poster / "runs/shapes/grid" / RUNS[0] / "decoder.onnx"),
                                           providers=["CPUExecutionProvider"])
    (got,) = session.run(["image"], {"z": codes.numpy()})
    assert np.abs(got - expected).max() <= 1e-4
    # the strips: one held-out image and its reconstruction per code, side by side
    from PIL import Image

    for name in (TEST_IMAGES_FILE, RECONSTRUCTIONS_FILE):
        with Image.open(poster / "runs/shapes/grid" / RUNS[0] / name) as strip:
            assert strip.size == (28 * len(model_json["codes"]), 28)


def test_every_file_and_folder_is_readable_by_a_web_server_running_as_another_user(poster):
    for path in [poster, *poster.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = files.usual_mode(folder=path.is_dir())
        assert mode == wanted, f"{path}: {oct(mode)}"
        assert mode & (0o005 if path.is_dir() else 0o004), path


def test_a_rebuild_keeps_each_export_whose_checkpoint_is_unchanged_and_exports_the_others(poster,
                                                                                         trained_study):
    kept = poster / "runs/shapes/grid" / RUNS[0] / "decoder.onnx"
    stale = poster / "runs/shapes/grid" / RUNS[1] / MANIFEST_FILE
    inode = kept.stat().st_ino
    changed = json.loads(stale.read_text())
    changed["step"] -= 1  # as if the run had trained further since
    stale.write_text(json.dumps(changed))
    lines: list[str] = []
    build.build_poster(trained_study, report=lines.append)
    assert lines == ["poster: shapes/grid: 2 runs (1 exported, 1 kept)"]
    assert kept.stat().st_ino == inode  # the same bytes, linked into the new poster
    assert json.loads(stale.read_text())["step"] == changed["step"] + 1
    assert not [path for path in trained_study.iterdir() if path.name.endswith(".building")]


def test_a_folder_of_the_users_where_the_poster_goes_is_refused_and_kept(trained_study, tmp_path):
    theirs = tmp_path / "mine"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    with pytest.raises(BetaVAEError, match="holds other files and no mark") as error:
        build.build_poster(trained_study, theirs)
    assert "\n" not in str(error.value)
    assert (theirs / "notes.txt").read_text() == "keep me"


def test_a_run_that_cannot_be_exported_is_named_and_the_earlier_poster_stays(trained_study, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(trained_study, study, copy_function=os.link)
    before = sorted(files.files_of(study / "poster"))
    (study / "shapes/grid" / RUNS[1] / "metrics.json").unlink()
    (study / "poster/runs/shapes/grid" / RUNS[1] / MANIFEST_FILE).unlink()  # its export must be made again
    with pytest.raises(BetaVAEError, match=f"poster: .*{RUNS[1]}.*no held-out KL") as error:
        build.build_poster(study)
    assert "\n" not in str(error.value)
    removed = f"runs/shapes/grid/{RUNS[1]}/{MANIFEST_FILE}"
    assert sorted(files.files_of(study / "poster")) == [name for name in before if name != removed]
    assert not [path for path in study.iterdir() if path.name.endswith(".building")]


def test_a_folder_without_study_json_is_refused_with_the_command_that_writes_it(tmp_path, capsys):
    code, _, err = run_cli(["poster", tmp_path], capsys)
    assert code != 0
    assert f"holds no {STUDY_FILE}" in err and "betavae reproduce --out" in err and err.count("\n") == 1
    assert not (tmp_path / "poster").exists()


def test_serve_on_a_taken_port_is_refused_before_any_export(trained_study, tmp_path, capsys):
    study = tmp_path / "study"
    study.mkdir()
    (study / STUDY_FILE).write_bytes((trained_study / STUDY_FILE).read_bytes())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(["poster", study, "--serve", "--port", port], capsys)
    assert code != 0 and f"port {port}" in err and "already in use" in err
    assert not (study / "poster").exists()  # refused before the runs were looked at
