"""MNIST and the IDX format: parsing, finding, verifying and downloading the real files.

No test reaches the internet: every test sees a mirror list that points at a closed
local port unless it serves the real files itself from a server on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from betavae.data import load, mnist
from betavae.data.idx import IDX_DTYPES, parse_idx, read_decompressed, read_idx
from betavae.errors import BetaVAEError

# Per-digit counts of the official splits (LeCun et al.; also torchvision's docs).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
LABELS = "t10k-labels-idx1-ubyte"


def write_idx(code: int, array: np.ndarray) -> bytes:
    """The IDX encoding of ``array`` with type ``code``, written independently of the parser."""
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(IDX_DTYPES[code]).tobytes()


@st.composite
def idx_arrays(draw: st.DrawFn) -> tuple[int, np.ndarray]:
    code = draw(st.sampled_from(sorted(IDX_DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    return code, draw(hnp.arrays(IDX_DTYPES[code].newbyteorder("="), shape))


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens, so connecting fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def place(
    source: Path, folder: Path, decompress: bool = False, stems: tuple[str, ...] = tuple(mnist.FILES)
) -> Path:
    """Copy real MNIST files into ``folder``, gzipped as shipped or decompressed."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        if decompress:
            (folder / stem).write_bytes(gzip.decompress((source / f"{stem}.gz").read_bytes()))
        else:
            shutil.copyfile(source / f"{stem}.gz", folder / f"{stem}.gz")
    return folder


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, no user cache, no data folder from the environment."""
    monkeypatch.setattr(mnist, "MIRRORS", (closed_port_url(),))
    monkeypatch.setattr(mnist, "DOWNLOAD_TIMEOUT_S", 5.0)
    monkeypatch.delenv("BETAVAE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(scope="module")
def real_mnist(mnist_dir: Path) -> mnist.MNISTDataset:
    return mnist.load_mnist(data_dir=mnist_dir, download=False)


@pytest.fixture(scope="module")
def local_mirror(mnist_dir: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1; ``/good/`` serves the real files, the other folders fail in
    one way each."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            _, mode, name = self.path.split("/", 2)
            source = mnist_dir / name
            if mode == "missing" or not source.is_file():
                self.send_error(404)
                return
            body = source.read_bytes()
            if mode == "garbage":
                body = b"<html>the file moved</html>"
            elif mode == "damaged":
                body = _flip_checksum(body)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # "truncated" promises the whole file, sends half, and hangs up.
            self.wfile.write(body[: len(body) // 2] if mode == "truncated" else body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- the IDX parser -------------------------------------------------------------------


def test_parse_idx_reads_big_endian_values() -> None:
    raw = b"\x00\x00\x0b\x02" + b"\x00\x00\x00\x01\x00\x00\x00\x02" + b"\x01\x02\xff\xfe"
    parsed = parse_idx(raw)
    assert parsed.dtype == np.int16 and parsed.shape == (1, 2)
    assert parsed.tolist() == [[258, -2]]


@given(idx_arrays())
def test_parse_idx_round_trips_every_type_and_shape(case: tuple[int, np.ndarray]) -> None:
    code, array = case
    parsed = parse_idx(write_idx(code, array))
    assert parsed.dtype == array.dtype and parsed.shape == array.shape
    assert parsed.tobytes() == array.tobytes()  # bit-exact, NaN payloads included
    assert parsed.flags.writeable


@given(idx_arrays(), st.data())
def test_parse_idx_rejects_every_truncation(case: tuple[int, np.ndarray], data: st.DataObject) -> None:
    raw = write_idx(*case)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(BetaVAEError, match="truncated"):
        parse_idx(raw[:cut])


@given(idx_arrays(), st.binary(min_size=1, max_size=16))
def test_parse_idx_rejects_trailing_bytes(case: tuple[int, np.ndarray], garbage: bytes) -> None:
    with pytest.raises(BetaVAEError, match="unexpected bytes"):
        parse_idx(write_idx(*case) + garbage)


@given(idx_arrays(), st.binary(min_size=2, max_size=2).filter(lambda magic: magic != b"\x00\x00"))
def test_parse_idx_rejects_wrong_magic(case: tuple[int, np.ndarray], magic: bytes) -> None:
    with pytest.raises(BetaVAEError, match="magic number"):
        parse_idx(magic + write_idx(*case)[2:])


def test_parse_idx_rejects_unknown_type_code() -> None:
    with pytest.raises(BetaVAEError, match="unknown type code 0x0A"):
        parse_idx(b"\x00\x00\x0a\x01\x00\x00\x00\x01\x00")


@given(st.binary(max_size=64))
def test_parse_idx_on_arbitrary_bytes_returns_an_array_or_raises_betavaeerror(raw: bytes) -> None:
    try:
        assert isinstance(parse_idx(raw), np.ndarray)
    except BetaVAEError:
        pass


def test_read_idx_detects_gzip_by_content_not_by_name(mnist_dir: Path, tmp_path: Path) -> None:
    packed = (mnist_dir / f"{LABELS}.gz").read_bytes()
    (tmp_path / "labels.idx").write_bytes(packed)
    (tmp_path / "labels.gz").write_bytes(gzip.decompress(packed))
    first, second = read_idx(tmp_path / "labels.idx"), read_idx(tmp_path / "labels.gz")
    assert first.shape == (10_000,) and np.array_equal(first, second)


def test_read_idx_names_the_file_of_damaged_idx_data(mnist_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / LABELS
    path.write_bytes(gzip.decompress((mnist_dir / f"{LABELS}.gz").read_bytes())[:-100])
    with pytest.raises(BetaVAEError, match="truncated") as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def _cut_in_half(packed: bytes) -> bytes:
    return packed[: len(packed) // 2]


def _flip_in_stream(packed: bytes) -> bytes:
    return packed[:2000] + bytes([packed[2000] ^ 0xFF]) + packed[2001:]


def _flip_checksum(packed: bytes) -> bytes:
    return packed[:-8] + bytes([packed[-8] ^ 0xFF]) + packed[-7:]


@pytest.mark.parametrize("damage", [_cut_in_half, _flip_in_stream, _flip_checksum])
def test_corrupt_gzip_is_an_error_naming_the_file(mnist_dir: Path, tmp_path: Path, damage) -> None:
    path = tmp_path / f"{LABELS}.gz"
    path.write_bytes(damage((mnist_dir / f"{LABELS}.gz").read_bytes()))
    with pytest.raises(BetaVAEError, match="corrupt gzip") as caught:
        read_decompressed(path)
    assert str(path) in str(caught.value)


# --- loading the real files -----------------------------------------------------------


def test_real_mnist_has_the_official_shapes_and_types(real_mnist: mnist.MNISTDataset) -> None:
    assert (
        real_mnist.name == "mnist" and real_mnist.image_shape == (1, 28, 28) and real_mnist.num_pixels == 784
    )
    assert real_mnist.train.data.shape == (60_000, 1, 28, 28) and real_mnist.train.data.dtype == torch.uint8
    assert real_mnist.test.data.shape == (10_000, 1, 28, 28) and real_mnist.test.data.dtype == torch.uint8
    batch = real_mnist.train.images(torch.tensor([0, 59_999]))
    assert batch.shape == (2, 1, 28, 28)


def test_real_mnist_labels_match_the_published_counts(real_mnist: mnist.MNISTDataset) -> None:
    train, test = real_mnist.train.labels(), real_mnist.test.labels()
    assert train[0] == 5 and test[0] == 7
    assert train.min() == 0 and train.max() == 9 and test.min() == 0 and test.max() == 9
    assert np.bincount(train).tolist() == TRAIN_COUNTS and sum(TRAIN_COUNTS) == 60_000
    assert np.bincount(test).tolist() == TEST_COUNTS and sum(TEST_COUNTS) == 10_000


def test_a_test_size_holds_out_the_same_images_of_the_official_test_set(
    mnist_dir: Path, real_mnist: mnist.MNISTDataset
) -> None:
    subset = load("mnist", data_dir=mnist_dir, test_size=1_000)
    again = mnist.load_mnist(mnist_dir, download=False, test_size=1_000)
    assert len(subset.test) == 1_000 and len(subset.train) == 60_000  # training is untouched
    assert torch.equal(subset.test.data, again.test.data)  # every run is tested on the same images
    # Images of the official test set, drawn across it (its two halves come from different writers).
    official = {bytes(image) for image in real_mnist.test.data.flatten(1).numpy()}
    assert all(bytes(image) in official for image in subset.test.data.flatten(1).numpy())
    counts = np.bincount(subset.test.labels(), minlength=10)
    assert counts.min() >= 60  # every digit, near its share of a tenth
    for size in (0, 10_001, -5):
        with pytest.raises(BetaVAEError, match="test_size must be between 1 and 10000 for MNIST"):
            mnist.load_mnist(mnist_dir, download=False, test_size=size)
    assert len(mnist.load_mnist(mnist_dir, download=False, test_size=10_000).test) == 10_000


def test_real_mnist_pixels_span_0_to_255_with_the_known_mean(real_mnist: mnist.MNISTDataset) -> None:
    pixels = real_mnist.train.data
    assert int(pixels.min()) == 0 and int(pixels.max()) == 255
    mean = pixels.sum(dtype=torch.int64).item() / pixels.numel() / 255
    assert abs(mean - 0.1307) < 1e-4  # the normalisation constant every MNIST example uses


@pytest.mark.parametrize("subfolder", ["mnist", ""], ids=["mnist-subfolder", "flat"])
@pytest.mark.parametrize("decompress", [False, True], ids=["gz", "decompressed"])
def test_load_finds_the_files_in_either_layout_gzipped_or_not(
    mnist_dir: Path, tmp_path: Path, real_mnist: mnist.MNISTDataset, subfolder: str, decompress: bool
) -> None:
    place(mnist_dir, tmp_path / "data" / subfolder, decompress=decompress)
    dataset = load("mnist", data_dir=str(tmp_path / "data"), download=False)
    assert torch.equal(dataset.test.data, real_mnist.test.data)
    assert np.array_equal(dataset.train.labels(), real_mnist.train.labels())


def test_betavae_data_dir_is_used_when_no_data_dir_is_given(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    place(mnist_dir, tmp_path / "from-env" / "mnist")
    monkeypatch.setenv("BETAVAE_DATA_DIR", str(tmp_path / "from-env"))
    assert len(load("mnist", download=False).train) == 60_000


def test_data_root_prefers_the_argument_then_the_environment_then_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mnist.data_root() == tmp_path / "xdg-cache" / "betavae"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert mnist.data_root() == Path.home() / ".cache" / "betavae"
    monkeypatch.setenv("BETAVAE_DATA_DIR", str(tmp_path / "env"))
    assert mnist.data_root() == tmp_path / "env"
    assert mnist.data_root(tmp_path / "arg") == tmp_path / "arg"


def test_altered_content_fails_the_checksum(mnist_dir: Path, tmp_path: Path) -> None:
    folder = place(mnist_dir, tmp_path / "mnist", stems=tuple(stem for stem in mnist.FILES if stem != LABELS))
    raw = bytearray(gzip.decompress((mnist_dir / f"{LABELS}.gz").read_bytes()))
    raw[8] = 1 if raw[8] != 1 else 2  # relabel the first test digit: still a valid IDX file
    assert parse_idx(bytes(raw)).shape == (10_000,)
    (folder / LABELS).write_bytes(raw)
    with pytest.raises(BetaVAEError, match="is corrupt.*SHA-256.*delete it") as caught:
        load("mnist", data_dir=str(tmp_path), download=False)
    assert str(folder / LABELS) in str(caught.value)


# --- missing files and downloading ----------------------------------------------------


def test_missing_files_without_download_say_where_to_put_them(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    with pytest.raises(BetaVAEError) as caught:
        load("mnist", data_dir=str(root), download=False)
    message = str(caught.value)
    assert "\n" not in message and "download=False" in message
    assert all(stem in message for stem in mnist.FILES)
    assert f"into {root / 'mnist'}" in message and "BETAVAE_DATA_DIR" in message
    assert not root.exists()


def test_offline_download_names_the_missing_files_and_leaves_nothing_behind(
    mnist_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    present = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    place(mnist_dir, root, stems=present)
    with pytest.raises(BetaVAEError, match="MNIST files missing") as caught:
        load("mnist", data_dir=str(root))
    message = str(caught.value)
    assert "\n" not in message and "could not download" in message
    assert "t10k-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert not any(stem in message.split("(")[0] for stem in present)
    assert f"searched {root / 'mnist'} and {root}" in message and f"into {root / 'mnist'}" in message
    assert files_under(root) == sorted(f"{stem}.gz" for stem in present)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("missing", "HTTP Error 404"),
        ("garbage", "not the official one"),
        ("damaged", "damaged gzip"),
        ("truncated", "connection closed after"),
    ],
)
def test_a_failed_download_says_why_and_leaves_no_partial_file(
    local_mirror: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, reason: str
) -> None:
    monkeypatch.setattr(mnist, "MIRRORS", (f"{local_mirror}/{mode}/",))
    with pytest.raises(BetaVAEError, match="MNIST files missing") as caught:
        load("mnist", data_dir=str(tmp_path / "data"))
    assert reason in str(caught.value) and "\n" not in str(caught.value)
    assert files_under(tmp_path) == []


def test_download_falls_through_the_mirrors_and_verifies_the_files(
    mnist_dir: Path, local_mirror: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes = ("missing", "garbage", "damaged", "truncated")
    broken = [closed_port_url()] + [f"{local_mirror}/{mode}/" for mode in modes]
    monkeypatch.setattr(mnist, "MIRRORS", (*broken, f"{local_mirror}/good/"))
    root = tmp_path / "data"
    dataset = load("mnist", data_dir=str(root))
    assert len(dataset.train) == 60_000 and len(dataset.test) == 10_000
    assert files_under(root) == sorted(f"mnist/{stem}.gz" for stem in mnist.FILES)
    for stem in mnist.FILES:
        assert (root / "mnist" / f"{stem}.gz").read_bytes() == (mnist_dir / f"{stem}.gz").read_bytes()
