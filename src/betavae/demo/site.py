"""The demo folder: the page, each run's ONNX models and ONNX Runtime Web, nothing else.

``betavae demo RUN_DIR... --static DIR`` writes it for any static host; ``betavae demo
RUN_DIR...`` writes it into a temporary folder and serves that (:mod:`betavae.demo.server`).
The layout, which ``page/demo.js`` reads::

    index.html  common.js  common.css  demo.js  demo.css
    demo.json               the runs in the order given, each with its model.json and folder
    ort/                    ONNX Runtime Web's script, its WebAssembly and licence (betavae.demo.vendor)
    runs/<k>-<name>/        encoder.onnx, decoder.onnx, model.json, test_images.png (betavae.demo.export)
    .betavae.json           the mark (betavae.files): every file above, as written (never served)

A later ``--static`` onto the same folder replaces it only when the mark proves that betavae
wrote it and it holds nothing else (:func:`betavae.files.remove_owned_folder`): a user's file
added to it, or a folder of the user's own that happens to hold a ``demo.json``, is refused in
one line and never deleted.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from betavae import files
from betavae.errors import BetaVAEError

PAGE_DIR = Path(__file__).parent / "page"
PAGE_FILES = ("index.html", "common.js", "common.css", "demo.js", "demo.css")
MANIFEST = "demo.json"
RUNS_DIR = "runs"
ORT_DIR = "ort"
# The kind in the mark of a demo folder: what lets a later --static replace it.
KIND = "betavae demo --static"
WHAT = "folder for --static"


def build_site(run_dirs: Sequence[str | Path], out: str | Path, *, images: int = 16,
               report: Callable[[str], None] = lambda line: None) -> Path:
    """Export every run into ``out`` and write the page around them; returns ``out``.

    ``out`` is created, or must be an empty folder or an earlier demo folder (which is
    replaced whole), so that a mistyped ``--static`` never writes into a folder of other files.
    ``report`` receives one line per exported model with its largest difference from PyTorch,
    and one before ONNX Runtime Web is downloaded on the demo's first use (:func:`vendor.require`).
    """
    from betavae.demo import export, vendor
    from betavae.viz.traversals import ACTIVE_KL

    if not run_dirs:
        raise BetaVAEError("betavae demo needs at least one run folder")
    out = Path(out)
    files.check_removable(out, KIND, WHAT)  # before minutes of exporting (or a download), not after
    ort_files = vendor.require(report)
    # Built beside its destination and moved in whole: a run that fails to export, or a kill,
    # leaves the earlier demo (or nothing), never a page with some of its runs.
    with files.folder_built_beside(out, KIND, WHAT) as building:
        entries = []
        for k, run_dir in enumerate(run_dirs):
            folder = f"{RUNS_DIR}/{k}-{_safe(Path(run_dir).resolve().name)}"
            exported = export.export_run(run_dir, building / folder, images=images)
            entries.append({**exported.manifest, "path": f"{folder}/"})
            for line in exported.check_lines():
                report(f"{run_dir}: {line}")
        for name in PAGE_FILES:
            shutil.copyfile(PAGE_DIR / name, building / name)
        vendor.copy_installed(ort_files, building / ORT_DIR)  # readable by others, whatever the cache's modes
        manifest = {"format": 1, "ort": f"{ORT_DIR}/", "active_kl": ACTIVE_KL, "runs": entries}
        (building / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return out


def _safe(name: str) -> str:
    """A run folder's name as a URL path part: letters, digits, ``. _ = -`` kept, the rest ``_``."""
    return re.sub(r"[^A-Za-z0-9._=-]", "_", name) or "run"
