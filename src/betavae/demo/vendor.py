"""ONNX Runtime Web for the demo page: one pinned version, fetched once on first use into the user's cache.

The decision: the page runs the models with the npm package ``onnxruntime-web``, version
:data:`ORT_WEB_VERSION`, taken from the npm registry's tarball (:data:`ORT_WEB_TARBALL_URL`) and
accepted only if it matches the registry's ``sha512`` integrity (:data:`ORT_WEB_INTEGRITY`).
The first ``betavae demo`` (:func:`require`), or ``make install`` through ``python -m
betavae.demo.vendor``, downloads it with the standard library (no node or npm needed), checks
it and keeps the few files the page loads in ``onnxruntime-web/<version>/`` of the user's cache
(:func:`betavae.files.user_cache`: ``~/.cache/betavae``). Every later demo copies that folder
and never reaches the internet; on a machine without the internet, ``--tarball FILE`` installs
from a copy of the same tarball.

Why the user's cache rather than the package's folder, where it was first kept: a wheel built
from a clean clone, or a ``make run`` user who never ran the set-up, gets a demo all the same;
``pip uninstall`` no longer leaves 14 MB that pip did not install behind in site-packages (the
cache, like every cache, may be deleted at any time and is fetched again when needed); and one
folder per version keeps two checkouts pinning different versions from replacing each other's.

Why not a copy in the repository: the WebAssembly alone is 14 MB per version, and a pinned
tarball with its integrity is as reproducible without bloating every clone.

What the page needs (checked in the 1.30.0 tarball): ``ort.wasm.min.js``, the script build that
defines the global ``ort`` with the WebAssembly back end only; at its first session it imports
``ort-wasm-simd-threaded.mjs`` (Emscripten's loader), which fetches
``ort-wasm-simd-threaded.wasm``. Both are looked up beside ``ort.wasm.min.js`` (from its
``<script src>``) unless ``ort.env.wasm.wasmPaths`` names their folder, as an absolute URL (a
relative one fails to import the ``.mjs``; checked in Chromium). The tarball carries no
licence file, so the MIT licence its ``package.json`` declares is written beside them, with a
``VERSION`` note saying where the files came from.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from betavae.errors import BetaVAEError
from betavae.files import user_cache

ORT_WEB_VERSION = "1.30.0"
ORT_WEB_TARBALL_URL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{ORT_WEB_VERSION}.tgz"
ORT_WEB_INTEGRITY = (
    "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
)
# What a download costs (the tarball's Content-Length, 33,106,585 bytes): said before the pause it makes.
ORT_WEB_TARBALL_SIZE = "33 MB"

# Tarball member -> name in the vendor folder.
_MEMBERS = {
    "package/dist/ort.wasm.min.js": "ort.wasm.min.js",
    "package/dist/ort-wasm-simd-threaded.mjs": "ort-wasm-simd-threaded.mjs",
    "package/dist/ort-wasm-simd-threaded.wasm": "ort-wasm-simd-threaded.wasm",
    "package/package.json": "package.json",
}
ORT_WEB_SCRIPT = "ort.wasm.min.js"
"""The one file the page loads with ``<script src>``; it loads the other two runtime files itself."""
ORT_WEB_FILES = (*_MEMBERS.values(), "LICENSE", "VERSION")
"""Every file of the installed folder, all of which the demo folder carries."""

LICENSE_TEXT = """\
MIT License

Copyright (c) Microsoft Corporation

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
"""ONNX Runtime's licence (github.com/microsoft/onnxruntime, LICENSE), which ``package.json`` declares."""


def vendor_dir() -> Path:
    """Where ONNX Runtime Web is installed: ``onnxruntime-web/<version>/`` in the user's cache.

    A folder per version: a checkout pinning another version installs beside this one instead of
    replacing the files a demo of this one copies.
    """
    return user_cache() / "onnxruntime-web" / ORT_WEB_VERSION


def installed(dest: Path | None = None) -> bool:
    """Whether ``dest`` (default :func:`vendor_dir`) holds every file of the pinned version."""
    dest = vendor_dir() if dest is None else Path(dest)
    if not all((dest / name).is_file() for name in ORT_WEB_FILES):
        return False
    try:
        package = json.loads((dest / "package.json").read_text(encoding="utf-8"))
        return package.get("version") == ORT_WEB_VERSION
    except (OSError, ValueError):
        return False


def require(report: Callable[[str], None] = lambda line: None) -> Path:
    """The installed folder, fetched from the npm registry first when it is absent (the demo's first use).

    ``report`` gets one line before the download, which takes a while (:data:`ORT_WEB_TARBALL_SIZE`).
    Offline, or with a cache that cannot be written, the error is one line saying what failed;
    the download's says how to install from a copy of the tarball (``--tarball FILE``).
    """
    dest = vendor_dir()
    if installed(dest):
        return dest
    report(f"fetching ONNX Runtime Web {ORT_WEB_VERSION} ({ORT_WEB_TARBALL_SIZE}) from the npm registry "
           f"into {dest}")
    try:
        return fetch(dest)
    except OSError as error:  # the machine's: a full disk, a cache folder that cannot be written
        raise BetaVAEError(f"cannot install ONNX Runtime Web {ORT_WEB_VERSION} into {dest}: "
                           f"{error.strerror or error}") from error


def copy_installed(source: Path, folder: Path) -> None:
    """Copy the installed files of ``source`` into the new ``folder`` with the modes any new file gets.

    Not ``shutil.copytree``, which copies modes: a cache made under a private umask (or copied
    from one) would give a demo site whose ``ort/`` a web server running as another user cannot
    read (:func:`betavae.files.usual_mode`). Only the files the page loads are copied, never
    anything else that ``source`` may hold.
    """
    folder.mkdir()
    for name in ORT_WEB_FILES:
        shutil.copyfile(source / name, folder / name)


def integrity_of(path: Path) -> str:
    """The npm ``integrity`` string (``sha512-`` and the base64 digest) of a file."""
    digest = hashlib.sha512()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def check_integrity(path: Path, expected: str | None = None) -> None:
    """Refuse a tarball whose integrity is not ``expected`` (default :data:`ORT_WEB_INTEGRITY`).

    So a corrupted, truncated or substituted download is never unpacked.
    """
    expected = ORT_WEB_INTEGRITY if expected is None else expected
    got = integrity_of(path)
    if got != expected:
        raise BetaVAEError(
            f"{path} is not onnxruntime-web {ORT_WEB_VERSION} as published: "
            f"expected integrity {expected}, got {got}"
        )


def fetch(
    dest: Path | None = None, tarball: Path | None = None, *, integrity: str | None = None
) -> Path:
    """Install the pinned ONNX Runtime Web files into ``dest`` (default :func:`vendor_dir`).

    From the npm registry, or from ``tarball`` (a copy of :data:`ORT_WEB_TARBALL_URL`) on a
    machine without the internet. The tarball is checked against ``integrity`` (default
    :data:`ORT_WEB_INTEGRITY`; the tests give their own tarball's) before anything
    is extracted, and the files are written into a hidden sibling folder renamed into place at
    the end, so an interrupted fetch never leaves a folder that looks installed. What is renamed
    is a folder made inside ``tempfile``'s staging folder, not that folder itself, so it has the
    modes any new folder gets, not the staging folder's private 0700. Nothing is done when
    ``dest`` already holds the pinned version.
    """
    dest = vendor_dir() if dest is None else Path(dest)
    integrity = ORT_WEB_INTEGRITY if integrity is None else integrity
    if installed(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-partial-", dir=dest.parent))
    try:
        if tarball is None:
            tarball = staging / "onnxruntime-web.tgz"
            _download(ORT_WEB_TARBALL_URL, tarball)
        elif not Path(tarball).is_file():
            raise BetaVAEError(f"{tarball} not found; download {ORT_WEB_TARBALL_URL} and give its path")
        check_integrity(Path(tarball), integrity)
        files = staging / "files"
        _extract(Path(tarball), files)
        (files / "LICENSE").write_text(LICENSE_TEXT, encoding="utf-8")
        (files / "VERSION").write_text(
            f"onnxruntime-web {ORT_WEB_VERSION}\n"
            f"tarball {ORT_WEB_TARBALL_URL}\n"
            f"integrity {integrity}\n"
            "installed by betavae (betavae.demo.vendor), which keeps only the files the demo page loads\n",
            encoding="utf-8",
        )
        _replace_folder(files, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _download(url: str, path: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as file:
            shutil.copyfileobj(response, file, 1 << 20)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise BetaVAEError(
            f"cannot download ONNX Runtime Web {ORT_WEB_VERSION} from {url} ({reason}); without the "
            f"internet, fetch that file elsewhere and run `python -m betavae.demo.vendor --tarball FILE`"
        ) from error


def _extract(tarball: Path, folder: Path) -> None:
    """Copy the members the page needs out of an npm tarball, by name (nothing else is written)."""
    folder.mkdir()
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member, name in _MEMBERS.items():
                try:
                    info = archive.getmember(member)
                except KeyError:
                    message = f"{tarball} has no {member}; is it onnxruntime-web {ORT_WEB_VERSION}?"
                    raise BetaVAEError(message) from None
                source = archive.extractfile(info) if info.isfile() else None
                if source is None:
                    raise BetaVAEError(f"{member} in {tarball} is not a regular file")
                with source, open(folder / name, "wb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
    except (tarfile.TarError, EOFError) as error:
        raise BetaVAEError(f"{tarball} is not a readable .tgz ({error})") from error


def _replace_folder(new: Path, dest: Path) -> None:
    """Rename ``new`` to ``dest``; a ``dest`` that is not the pinned version (incomplete, damaged) is moved
    aside first.

    A ``dest`` that another process installed while this one downloaded is kept (a demo may be
    copying from it) and ``new`` is dropped with the staging folder.
    """
    if installed(dest):
        return
    if dest.exists() or dest.is_symlink():
        dest.rename(new.parent / "old")
    new.rename(dest)


def main(argv: list[str] | None = None) -> int:
    """``python -m betavae.demo.vendor [--tarball FILE] [--check]``."""
    parser = argparse.ArgumentParser(
        prog="python -m betavae.demo.vendor",
        description=f"Install ONNX Runtime Web {ORT_WEB_VERSION} (npm onnxruntime-web) for the betavae demo.",
    )
    parser.add_argument("--tarball", type=Path, help=f"install from a local copy of {ORT_WEB_TARBALL_URL}")
    parser.add_argument("--check", action="store_true", help="only check it is installed; exit 1 if not")
    args = parser.parse_args(argv)
    dest = vendor_dir()
    if args.check:
        if installed(dest):
            print(f"ONNX Runtime Web {ORT_WEB_VERSION} is installed in {dest}")
            return 0
        print(f"error: ONNX Runtime Web {ORT_WEB_VERSION} is not installed in {dest}; run `python -m "
              f"betavae.demo.vendor` (or let `betavae demo` fetch it on first use)", file=sys.stderr)
        return 1
    try:
        if installed(dest):
            print(f"ONNX Runtime Web {ORT_WEB_VERSION} is already installed in {dest}")
            return 0
        source = args.tarball or f"{ORT_WEB_TARBALL_URL} ({ORT_WEB_TARBALL_SIZE})"
        print(f"installing ONNX Runtime Web {ORT_WEB_VERSION} from {source} into {dest} ...", flush=True)
        fetch(dest, args.tarball)
    except BetaVAEError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # the machine's: a full disk, a read-only folder
        print(f"error: {error.filename or dest}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f"checked its sha512 integrity; wrote {', '.join(ORT_WEB_FILES)} to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
