"""The demo's server hands out the demo folder's files and nothing else, with the types browsers
need; ONNX Runtime Web is installed into the user's cache on first use, only from a tarball whose
integrity matches, atomically.

Real HTTP on port 0; requests that a client library would normalise (``/../``, NUL bytes) are
written on a raw socket. The vendor tests build a small npm-shaped tarball and never download: the
registry they fetch from is a stand-in answering with it.
"""

import base64
import hashlib
import http.client
import io
import json
import os
import re
import socket
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from betavae import files
from betavae.demo import vendor
from betavae.demo.server import DemoServer, content_type, serve
from betavae.errors import BetaVAEError

SECRET = b"the-secret-outside-the-served-folder"
PAGE = b"<!doctype html><title>demo</title>"
WASM = b"\x00asm\x01\x00\x00\x00" + bytes(range(256))
ONNX = bytes(range(255, -1, -1)) * 4


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Any download attempt fails the test instead of reaching the network."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def site(tmp_path) -> Path:
    """A demo folder, with a secret file beside it (outside) and a link in it leading to the secret."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "site"
    (root / "models").mkdir(parents=True)
    (root / "vendor").mkdir()
    (root / "index.html").write_bytes(PAGE)
    (root / "app.js").write_bytes(b"console.log('app');")
    (root / "vendor" / "ort-wasm-simd-threaded.mjs").write_bytes(b"export default 1;")
    (root / "vendor" / "ort-wasm-simd-threaded.wasm").write_bytes(WASM)
    (root / "vendor" / "LICENSE").write_bytes(b"MIT License")
    (root / "models" / "decoder.onnx").write_bytes(ONNX)
    (root / "models" / "meta.json").write_bytes(b"{}")
    (root / ".hidden").write_bytes(SECRET)
    (root / "link.txt").symlink_to(outside / "secret.txt")
    return root


@pytest.fixture
def server(site):
    with DemoServer(site) as running:
        yield running


def get(server, path, method="GET"):
    """(status, headers, body) of one request, the path sent as given."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def raw_get(server, target: bytes) -> tuple[int, bytes]:
    """(status, the whole response) for a request line written byte for byte."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        connection.sendall(b"GET " + target + b" HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        response = b""
        while chunk := connection.recv(65536):
            response += chunk
    return int(response.split(b" ", 2)[1]), response


@pytest.mark.parametrize("path, body, kind", [
    ("/index.html", PAGE, "text/html; charset=utf-8"),
    ("/app.js", b"console.log('app');", "text/javascript"),
    ("/vendor/ort-wasm-simd-threaded.mjs", b"export default 1;", "text/javascript"),
    ("/vendor/ort-wasm-simd-threaded.wasm", WASM, "application/wasm"),
    ("/vendor/LICENSE", b"MIT License", "text/plain; charset=utf-8"),
    ("/models/decoder.onnx", ONNX, "application/octet-stream"),
    ("/models/meta.json", b"{}", "application/json"),
])
def test_files_are_served_with_their_bytes_and_mime_type(server, path, body, kind):
    status, headers, got = get(server, path)
    assert (status, got, headers["Content-Type"]) == (200, body, kind)
    assert headers["Content-Length"] == str(len(body))
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-cache"


def test_mime_types_do_not_depend_on_the_operating_system():
    names = ("a.wasm", "a.onnx", "a.mjs", "a.css", "a.png", "a.svg", "a.txt")
    assert [content_type(name) for name in names] == [
        "application/wasm", "application/octet-stream", "text/javascript", "text/css", "image/png",
        "image/svg+xml", "text/plain; charset=utf-8",
    ]


def test_root_is_index_html_and_query_strings_are_ignored(server):
    assert get(server, "/")[::2] == (200, PAGE)
    assert get(server, "/?run=dsprites-b")[::2] == (200, PAGE)
    assert get(server, "/app.js?v=2#top")[0] == 200


def test_head_sends_the_headers_without_the_body(server):
    status, headers, body = get(server, "/vendor/ort-wasm-simd-threaded.wasm", method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(WASM)))
    assert headers["Content-Type"] == "application/wasm"


@pytest.mark.parametrize("path", ["/missing.js", "/models/encoder.onnx", "/INDEX.HTML", "/index.html/"])
def test_missing_files_get_404(server, path):
    assert get(server, path)[0] == 404


@pytest.mark.parametrize("path", ["/models", "/models/", "/vendor/", "/vendor/."])
def test_folders_get_404_and_are_never_listed(server, path):
    status, _, body = get(server, path)
    assert status == 404
    assert b"decoder.onnx" not in body and b"LICENSE" not in body


def test_without_index_html_the_root_is_404(site):
    (site / "index.html").unlink()
    with serve(site) as running:
        assert get(running, "/")[0] == 404


def test_files_added_after_start_are_not_served(server, site):
    (site / "later.js").write_bytes(b"1")
    assert get(server, "/later.js")[0] == 404


TRAVERSALS = [
    b"/../outside/secret.txt",
    b"/models/../../outside/secret.txt",
    b"/./../outside/secret.txt",
    b"/%2e%2e/outside/secret.txt",
    b"/%2E%2E/outside/secret.txt",
    b"/.%2e/outside/secret.txt",
    b"/..%2foutside%2fsecret.txt",
    b"/%2e%2e%2foutside%2fsecret.txt",
    b"/%252e%252e/outside/secret.txt",
    b"/%252e%252e%252foutside%252fsecret.txt",
    b"/%c0%ae%c0%ae/outside/secret.txt",
    b"/..\\outside\\secret.txt",
    b"/%5c..%5coutside%5csecret.txt",
    b"/models\\..\\..\\outside\\secret.txt",
    b"//etc/passwd",
    b"/etc/passwd",
    b"/link.txt",
    b"/.hidden",
    b"/index.html\x00.txt",
    b"/index.html%00",
    b"/%00",
    b"http://127.0.0.1/../outside/secret.txt",
    b"file:///etc/passwd",
    b"*",
    # encoded forms do not match even a file that is in the folder
    b"/models%2fdecoder.onnx",
    b"/index%2ehtml",
]


@pytest.mark.parametrize("target", TRAVERSALS, ids=[t.decode("latin-1") for t in TRAVERSALS])
def test_traversal_attempts_get_404_and_never_the_secret(server, site, target):
    status, response = raw_get(server, target)
    assert status == 404, response
    assert SECRET not in response
    assert b"root:" not in response


def test_absolute_paths_to_the_secret_get_404(server, site):
    secret = str(site.parent / "outside" / "secret.txt").encode()
    for target in (secret, b"/" + secret, b"/" + secret.replace(b"/", b"%2f")):
        status, response = raw_get(server, target)
        assert status == 404 and SECRET not in response


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_methods_other_than_get_and_head_get_405(server, method):
    status, headers, _ = get(server, "/index.html", method=method)
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_binds_127_0_0_1_by_default_on_a_free_port(server):
    assert server.host == "127.0.0.1"
    assert server._http.server_address[0] == "127.0.0.1"
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/"
    assert server.warning is None


def test_another_host_only_when_asked_and_with_a_warning(site):
    exposed = DemoServer(site, host="0.0.0.0")
    try:
        assert exposed.url == f"http://127.0.0.1:{exposed.port}/"
        assert "0.0.0.0" in exposed.warning and "\n" not in exposed.warning
    finally:
        exposed.close()


def test_a_port_in_use_is_a_one_line_error_naming_it(site):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BetaVAEError) as caught:
            DemoServer(site, port=port)
    message = str(caught.value)
    assert str(port) in message and "--port" in message and "\n" not in message


def test_requests_are_not_logged_unless_asked(server, capfd):
    get(server, "/")
    get(server, "/missing")
    out, err = capfd.readouterr()
    assert out == err == ""


def test_close_frees_the_port(site):
    with serve(site) as running:
        port = running.port
        assert get(running, "/")[0] == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_root_that_is_not_a_folder_is_an_error(tmp_path):
    with pytest.raises(BetaVAEError, match="not a folder"):
        DemoServer(tmp_path / "absent")


# ONNX Runtime Web: the vendor folder

PACKAGE_JSON = json.dumps({"name": "onnxruntime-web", "version": vendor.ORT_WEB_VERSION, "license": "MIT"})
FAKE_MEMBERS = {
    "package/dist/ort.wasm.min.js": b"var ort = {};",
    "package/dist/ort-wasm-simd-threaded.mjs": b"export default function () {}",
    "package/dist/ort-wasm-simd-threaded.wasm": WASM,
    "package/package.json": PACKAGE_JSON.encode(),
    "package/dist/ort.all.min.js": b"not needed",
    "package/README.md": b"not needed",
}


def npm_tarball(path: Path, members=FAKE_MEMBERS) -> str:
    """Write a small tarball in npm's layout; returns its npm integrity, computed here independently."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return "sha512-" + base64.b64encode(hashlib.sha512(buffer.getvalue()).digest()).decode()


def altered(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy = path.with_name("altered.tgz")
    copy.write_bytes(bytes(data))
    return copy


def test_integrity_check_accepts_the_right_tarball(tmp_path):
    tarball = tmp_path / "ort.tgz"
    integrity = npm_tarball(tarball)
    assert vendor.integrity_of(tarball) == integrity
    vendor.check_integrity(tarball, integrity)


def test_integrity_check_refuses_an_altered_tarball(tmp_path):
    tarball = tmp_path / "ort.tgz"
    integrity = npm_tarball(tarball)
    bad = altered(tarball)
    with pytest.raises(BetaVAEError) as caught:
        vendor.check_integrity(bad, integrity)
    message = str(caught.value)
    assert integrity in message and vendor.integrity_of(bad) in message and "\n" not in message


def test_fetch_from_a_tarball_extracts_exactly_the_needed_files(tmp_path):
    tarball = tmp_path / "ort.tgz"
    integrity = npm_tarball(tarball)
    dest = tmp_path / "vendor" / "onnxruntime-web"
    assert vendor.fetch(dest, tarball, integrity=integrity) == dest
    assert sorted(os.listdir(dest)) == sorted(vendor.ORT_WEB_FILES)
    assert os.listdir(dest.parent) == ["onnxruntime-web"]  # no staging folder left behind
    for member, data in FAKE_MEMBERS.items():
        if member in vendor._MEMBERS:
            assert (dest / vendor._MEMBERS[member]).read_bytes() == data
    licence = (dest / "LICENSE").read_text()
    assert "MIT License" in licence and "Copyright (c) Microsoft Corporation" in licence
    provenance = (dest / "VERSION").read_text()
    assert vendor.ORT_WEB_VERSION in provenance and vendor.ORT_WEB_TARBALL_URL in provenance
    assert integrity in provenance
    assert vendor.installed(dest)


def test_fetch_refuses_an_altered_tarball_and_writes_nothing(tmp_path):
    tarball = tmp_path / "ort.tgz"
    integrity = npm_tarball(tarball)
    dest = tmp_path / "vendor" / "onnxruntime-web"
    with pytest.raises(BetaVAEError, match="expected integrity"):
        vendor.fetch(dest, altered(tarball), integrity=integrity)
    assert os.listdir(dest.parent) == []


def test_the_pinned_integrity_refuses_any_other_tarball(tmp_path):
    tarball = tmp_path / "ort.tgz"
    npm_tarball(tarball)
    with pytest.raises(BetaVAEError, match=re.escape(vendor.ORT_WEB_INTEGRITY)):
        vendor.fetch(tmp_path / "vendor" / "onnxruntime-web", tarball)


def test_an_interrupted_fetch_leaves_no_folder_that_looks_installed(tmp_path, monkeypatch):
    tarball = tmp_path / "ort.tgz"
    integrity = npm_tarball(tarball)
    dest = tmp_path / "vendor" / "onnxruntime-web"
    real_extract = vendor._extract

    def extract_then_killed(source, folder):
        real_extract(source, folder)
        raise KeyboardInterrupt

    monkeypatch.setattr(vendor, "_extract", extract_then_killed)
    with pytest.raises(KeyboardInterrupt):
        vendor.fetch(dest, tarball, integrity=integrity)
    assert not dest.exists() and not vendor.installed(dest)
    assert os.listdir(dest.parent) == []


def test_a_tarball_without_a_needed_file_is_refused(tmp_path):
    tarball = tmp_path / "ort.tgz"
    members = {name: data for name, data in FAKE_MEMBERS.items() if not name.endswith(".wasm")}
    integrity = npm_tarball(tarball, members)
    dest = tmp_path / "vendor" / "onnxruntime-web"
    with pytest.raises(BetaVAEError, match="ort-wasm-simd-threaded.wasm"):
        vendor.fetch(dest, tarball, integrity=integrity)
    assert not dest.exists()


def test_fetch_does_nothing_when_the_pinned_version_is_installed(tmp_path):
    tarball = tmp_path / "ort.tgz"
    integrity = npm_tarball(tarball)
    dest = tmp_path / "vendor" / "onnxruntime-web"
    vendor.fetch(dest, tarball, integrity=integrity)
    before = {name: (dest / name).stat().st_mtime_ns for name in vendor.ORT_WEB_FILES}
    assert vendor.fetch(dest, tmp_path / "absent.tgz") == dest  # neither reads the tarball nor downloads
    assert {name: (dest / name).stat().st_mtime_ns for name in vendor.ORT_WEB_FILES} == before


def test_fetch_replaces_another_version(tmp_path):
    dest = tmp_path / "vendor" / "onnxruntime-web"
    dest.mkdir(parents=True)
    for name in vendor.ORT_WEB_FILES:
        (dest / name).write_text("old")
    (dest / "package.json").write_text('{"version": "1.17.0"}')
    (dest / "ort.old.js").write_text("old")
    assert not vendor.installed(dest)
    tarball = tmp_path / "ort.tgz"
    vendor.fetch(dest, tarball, integrity=npm_tarball(tarball))
    assert vendor.installed(dest)
    assert sorted(os.listdir(dest)) == sorted(vendor.ORT_WEB_FILES)
    assert os.listdir(dest.parent) == ["onnxruntime-web"]


def test_a_fetch_finishing_second_keeps_the_folder_another_process_installed(tmp_path, monkeypatch):
    """Two first demos at once: the one that finishes last must not pull the files from under the
    other (which may be copying them into its site)."""
    tarball = tmp_path / "ort.tgz"
    integrity = npm_tarball(tarball)
    dest = tmp_path / "cache" / "onnxruntime-web" / vendor.ORT_WEB_VERSION
    real_extract = vendor._extract

    def extract_while_another_installs(source, folder):
        real_extract(source, folder)
        monkeypatch.setattr(vendor, "_extract", real_extract)
        vendor.fetch(dest, tarball, integrity=integrity)  # the other process, finishing first
        theirs.update({name: (dest / name).stat().st_ino for name in vendor.ORT_WEB_FILES})

    theirs: dict[str, int] = {}
    monkeypatch.setattr(vendor, "_extract", extract_while_another_installs)
    assert vendor.fetch(dest, tarball, integrity=integrity) == dest
    assert theirs and {name: (dest / name).stat().st_ino for name in vendor.ORT_WEB_FILES} == theirs
    assert vendor.installed(dest) and os.listdir(dest.parent) == [vendor.ORT_WEB_VERSION]


def test_an_unreachable_registry_is_a_one_line_error_naming_the_url_and_tarball(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    dest = tmp_path / "vendor" / "onnxruntime-web"
    with pytest.raises(BetaVAEError) as caught:
        vendor.fetch(dest)
    message = str(caught.value)
    assert vendor.ORT_WEB_TARBALL_URL in message and "--tarball" in message and "\n" not in message
    assert os.listdir(dest.parent) == []


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """A user cache of this test's own, empty; returns the folder ONNX Runtime Web is installed in."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return vendor.vendor_dir()


@pytest.fixture
def registry(tmp_path, monkeypatch) -> list[str]:
    """The npm registry, answering with a small tarball (the pinned integrity is made its own);
    returns the URLs downloaded, one per download."""
    tarball = tmp_path / "registry.tgz"
    monkeypatch.setattr(vendor, "ORT_WEB_INTEGRITY", npm_tarball(tarball))
    downloads: list[str] = []

    def answer(url, timeout):
        downloads.append(url)
        return io.BytesIO(tarball.read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", answer)
    return downloads


def test_ort_web_lives_in_the_user_cache_one_folder_per_version(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert vendor.vendor_dir() == tmp_path / "betavae" / "onnxruntime-web" / vendor.ORT_WEB_VERSION


def test_require_on_an_empty_cache_fetches_once_then_reuses_the_folder(empty_cache, registry):
    lines: list[str] = []
    assert vendor.require(lines.append) == empty_cache
    assert registry == [vendor.ORT_WEB_TARBALL_URL]
    assert lines == [f"fetching ONNX Runtime Web {vendor.ORT_WEB_VERSION} ({vendor.ORT_WEB_TARBALL_SIZE}) "
                     f"from the npm registry into {empty_cache}"]
    assert vendor.installed(empty_cache) and sorted(os.listdir(empty_cache)) == sorted(vendor.ORT_WEB_FILES)
    assert os.listdir(empty_cache.parent) == [vendor.ORT_WEB_VERSION]  # no staging folder left behind

    assert vendor.require(lines.append) == empty_cache
    assert registry == [vendor.ORT_WEB_TARBALL_URL] and len(lines) == 1  # neither downloaded nor said again


def test_require_offline_is_one_line_naming_tarball_and_leaves_nothing_installed(empty_cache, monkeypatch,
                                                                                 capsys):
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.raises(BetaVAEError) as caught:
        vendor.require()
    message = str(caught.value)
    assert f"cannot download ONNX Runtime Web {vendor.ORT_WEB_VERSION}" in message and "\n" not in message
    assert "python -m betavae.demo.vendor --tarball FILE" in message and "name resolution" in message
    assert not vendor.installed() and os.listdir(empty_cache.parent) == []  # no partial folder
    assert vendor.main(["--check"]) == 1
    assert "not installed" in capsys.readouterr().err


def test_require_with_a_cache_that_cannot_be_made_is_one_line(tmp_path, monkeypatch, registry):
    (tmp_path / "not-a-folder").write_text("a file where the cache should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    with pytest.raises(BetaVAEError) as caught:
        vendor.require()
    message = str(caught.value)
    assert message.startswith(f"cannot install ONNX Runtime Web {vendor.ORT_WEB_VERSION} into ")
    assert "\n" not in message and registry == []


def test_installed_files_are_readable_by_others_and_so_are_their_copies(empty_cache, registry, tmp_path):
    """A web server serving a demo site runs as another user: the cache's files, and the copies a
    site gets of them, have the modes any new file gets, never tempfile's private 0600/0700."""
    before = os.umask(0o022)
    try:
        vendor.require()
        for path in [empty_cache.parent, empty_cache, *empty_cache.iterdir()]:
            assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path

        # Copies get the usual modes even from a cache made private (a umask of 077, a copied folder).
        for path in [*empty_cache.iterdir(), empty_cache]:
            path.chmod(0o700 if path.is_dir() else 0o600)
        vendor.copy_installed(empty_cache, tmp_path / "ort")
        assert sorted(os.listdir(tmp_path / "ort")) == sorted(vendor.ORT_WEB_FILES)
        for path in [tmp_path / "ort", *(tmp_path / "ort").iterdir()]:
            assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path
            assert path.stat().st_mode & 0o777 == files.usual_mode(folder=path.is_dir()), path
    finally:
        os.umask(before)


def test_the_command_installs_from_a_tarball_into_the_user_cache_then_checks(empty_cache, tmp_path,
                                                                             monkeypatch, capsys):
    tarball = tmp_path / "ort.tgz"
    monkeypatch.setattr(vendor, "ORT_WEB_INTEGRITY", npm_tarball(tarball))
    assert vendor.main(["--check"]) == 1
    assert vendor.main(["--tarball", str(tarball)]) == 0
    assert str(empty_cache) in capsys.readouterr().out and vendor.installed(empty_cache)
    assert vendor.main(["--check"]) == 0
    assert vendor.main([]) == 0  # installed: says so, neither downloads nor rewrites
    assert "already installed" in capsys.readouterr().out


@pytest.mark.skipif(not vendor.installed(), reason="no ONNX Runtime Web (python -m betavae.demo.vendor)")
def test_the_installed_script_loads_only_files_of_the_vendor_folder():
    """ort.wasm.min.js names the WebAssembly loader it imports; a new version naming others fails here."""
    script = (vendor.vendor_dir() / vendor.ORT_WEB_SCRIPT).read_text(encoding="utf-8")
    loaded = set(re.findall(r"ort-wasm[\w.-]*\.(?:mjs|wasm)", script))
    loader = (vendor.vendor_dir() / "ort-wasm-simd-threaded.mjs").read_text(encoding="utf-8")
    loaded |= set(re.findall(r"ort-wasm[\w.-]*\.(?:mjs|wasm)", loader))
    assert loaded and loaded <= set(vendor.ORT_WEB_FILES)


def test_a_client_that_hangs_up_mid_answer_prints_nothing_but_a_fault_keeps_its_trace_back(tmp_path, capfd):
    """A browser closing a tab while a file streams is normal; what socketserver reports of it is
    silenced, any other error in a request is printed as before."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html>")
    with DemoServer(root, port=0) as server:
        for hang_up in (ConnectionResetError(104, "reset by peer"), BrokenPipeError(32, "broken pipe")):
            try:
                raise hang_up
            except OSError:
                server._http.handle_error(None, ("127.0.0.1", 50000))
        assert capfd.readouterr().err == ""
        try:
            raise RuntimeError("a bug")
        except RuntimeError:
            server._http.handle_error(None, ("127.0.0.1", 50000))
        assert "RuntimeError: a bug" in capfd.readouterr().err
        assert get(server, "/")[0] == 200  # and the server still answers


def test_serving_from_this_thread_and_a_background_thread_at_once_is_refused(tmp_path):
    """Two loops on one socket race when stopped (the CLI hung on Ctrl-C that way once)."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html>")
    with DemoServer(root, port=0) as server, pytest.raises(RuntimeError, match="background thread"):
        server.serve_forever()
