"""``betavae demo``: the folder it writes (``--static``) and the server it starts, without a browser."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tests.commands import run_cli
from tests.runfolders import ACTIVE_SHAPES

from betavae import files
from betavae.demo import site, vendor
from betavae.demo.export import DECODER_FILE, ENCODER_FILE, MANIFEST_FILE, TEST_IMAGES_FILE
from marks import slow_fixture


@pytest.fixture(scope="module")
@slow_fixture
def demo_run(tmp_path_factory, trained_runs) -> Path:
    return trained_runs.copy(ACTIVE_SHAPES, tmp_path_factory.mktemp("demo") / "b1 run")


def test_static_folder_holds_the_page_ort_web_and_each_run_in_order(demo_run, tmp_path, capsys):
    out = tmp_path / "site"
    code, printed, err = run_cli(["demo", demo_run, demo_run, "--static", out, "--images", "5"], capsys)
    assert code == 0, err
    assert printed.count("largest |ONNX − PyTorch|") == 4  # encoder and decoder of each run
    assert str(out) in printed.splitlines()[-1]
    manifest = json.loads((out / "demo.json").read_text())
    assert manifest["format"] == 1 and manifest["ort"] == "ort/"
    assert [run["path"] for run in manifest["runs"]] == ["runs/0-b1_run/", "runs/1-b1_run/"]
    for run in manifest["runs"]:
        folder = out / run["path"]
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [ENCODER_FILE, DECODER_FILE, MANIFEST_FILE, TEST_IMAGES_FILE, files.MARKER])
        assert run == {**json.loads((folder / MANIFEST_FILE).read_text()), "path": run["path"]}
        assert run["test_image_count"] == 5 and run["latent_dim"] == 4
    for name in site.PAGE_FILES:
        assert (out / name).read_bytes() == (site.PAGE_DIR / name).read_bytes()
    for name in vendor.ORT_WEB_FILES:
        assert (out / "ort" / name).read_bytes() == (vendor.vendor_dir() / name).read_bytes()
    # Readable by a web server running as another user: what the umask gives any file, never 0600/0700.
    for path in [out, *out.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode == files.usual_mode(folder=path.is_dir()), (path, oct(mode))


def test_static_replaces_an_earlier_demo_but_never_writes_into_a_folder_of_other_files(demo_run, tmp_path,
                                                                                      capsys):
    out = tmp_path / "site"
    assert run_cli(["demo", demo_run, demo_run, "--static", out, "--images", "2"], capsys)[0] == 0
    assert run_cli(["demo", demo_run, "--static", out, "--images", "2"], capsys)[0] == 0
    assert [p.name for p in (out / "runs").iterdir()] == ["0-b1_run"]  # the second run is gone

    other = tmp_path / "papers"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = run_cli(["demo", demo_run, "--static", other], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "holds other files" in err
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_static_never_deletes_a_users_folder_that_holds_a_demo_json_or_a_file_added_to_a_demo(
        demo_run, tmp_path, capsys):
    """A user's project with its own demo.json, and a file the user put into an earlier demo folder,
    are refused in one line naming what is in the way; not one byte is lost (issue 32, item 1)."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    for name, text in (("demo.json", "{}"), ("thesis.tex", "chapter 1"), ("src/model.py", "print()")):
        (project / name).write_text(text)
    before = {path: path.read_bytes() for path in project.rglob("*") if path.is_file()}
    code, _, err = run_cli(["demo", demo_run, "--static", project, "--images", "2"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "no mark of betavae demo" in err
    assert {path: path.read_bytes() for path in project.rglob("*") if path.is_file()} == before

    site_dir = tmp_path / "site"
    assert run_cli(["demo", demo_run, "--static", site_dir, "--images", "2"], capsys)[0] == 0
    (site_dir / "notes.txt").write_text("my notes on the demo")
    code, _, err = run_cli(["demo", demo_run, "--static", site_dir, "--images", "2"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "notes.txt" in err
    assert (site_dir / "notes.txt").read_text() == "my notes on the demo"
    assert (site_dir / site.MANIFEST).is_file()  # the earlier demo stands, whole


def test_a_run_that_cannot_be_exported_is_a_one_line_error_and_leaves_the_earlier_demo(demo_run, tmp_path,
                                                                                       capsys):
    out = tmp_path / "site"
    assert run_cli(["demo", demo_run, "--static", out, "--images", "2"], capsys)[0] == 0
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["demo", demo_run, tmp_path / "empty", "--static", out], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "not a run folder" in err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "site"]  # no half-built folder left


def test_without_ort_web_and_offline_the_demo_says_how_to_install_it(demo_run, tmp_path, capsys, monkeypatch):
    """The first demo fetches ONNX Runtime Web (saying so); offline, it fails in one line naming --tarball."""
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(vendor, "vendor_dir", lambda: tmp_path / "cache" / "onnxruntime-web" / "1.30.0")
    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    code, printed, err = run_cli(["demo", demo_run, "--static", tmp_path / "site"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "cannot download ONNX Runtime Web" in err and "python -m betavae.demo.vendor --tarball FILE" in err
    assert "fetching ONNX Runtime Web" in printed
    assert not (tmp_path / "site").exists() and os.listdir(tmp_path / "cache" / "onnxruntime-web") == []


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, b"", ""


def test_demo_serves_on_loopback_prints_the_address_and_stops_cleanly_on_ctrl_c(demo_run):
    command = [str(Path(sys.executable).parent / "betavae"), "demo", str(demo_run), "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = ""
        while "serving the demo" not in line:
            line = server.stdout.readline()
            assert line, server.stderr.read()
        url = line.split(" at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        status, body, kind = _get(url)
        assert status == 200 and kind.startswith("text/html") and b"demo.js" in body
        status, body, _ = _get(url + "demo.json")
        manifest = json.loads(body)
        status, wasm, kind = _get(url + "ort/ort-wasm-simd-threaded.wasm")
        assert status == 200 and kind == "application/wasm" and wasm[:4] == b"\0asm"
        status, onnx, kind = _get(url + manifest["runs"][0]["path"] + "decoder.onnx")
        assert status == 200 and kind == "application/octet-stream" and len(onnx) > 1000
        assert _get(url + "runs/")[0] == 404  # no listing
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(b"GET /../../etc/passwd HTTP/1.0\r\n\r\n")
            assert raw.recv(100).split()[1] == b"404"
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
        tail = server.stderr.read()
        assert "Traceback" not in tail
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_taken_port_is_said_in_one_line_before_any_model_is_exported(demo_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, printed, err = run_cli(["demo", demo_run, "--port", port], capsys)
    assert code == 1 and err.strip().endswith(f"port {port} on 127.0.0.1 is already in use; choose another "
                                              "with --port (0: any free port)")
    assert "largest |ONNX − PyTorch|" not in printed  # refused before exporting


def test_sigterm_stops_the_demo_and_leaves_no_temporary_folder(demo_run, tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    command = [str(Path(sys.executable).parent / "betavae"), "demo", str(demo_run), "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(temporary)})
    try:
        line = ""
        while "serving the demo" not in line:
            line = server.stdout.readline()
            assert line, server.stderr.read()
        assert len(list(temporary.glob("betavae-demo-*"))) == 1
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert "Traceback" not in server.stderr.read()
        assert list(temporary.glob("betavae-demo-*")) == []  # its models and ONNX Runtime Web (~30 MB)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
