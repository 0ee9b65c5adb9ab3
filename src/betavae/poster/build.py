"""Build ``DIR/poster/`` from a finished study's ``study.json`` and its run folders.

Each run is exported once (:func:`betavae.poster.export.export_run`): a rebuild keeps the export of
every run whose checkpoint has not changed since, so ``betavae poster DIR`` after a resumed study
exports only the runs that trained further. The poster is built beside its destination and renamed
into place whole, so a failure or a kill leaves the earlier poster (or none), never half of one, and
the folder it replaces is deleted only when its mark proves betavae wrote every file in it.

Every file and folder gets the mode the user's umask gives any new file (readable by others under the
usual 022): a static web server runs as another user, and a 0700 folder from ``mkdtemp`` made the
demo's page fail with nothing but "the source image cannot be decoded".
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from betavae import files
from betavae.errors import BetaVAEError
from betavae.poster import export
from betavae.study.data import FORMAT as STUDY_FORMAT
from betavae.study.data import STUDY_FILE
from betavae.study.design import POSTER_DIR

PAGE_DIR = Path(__file__).parent / "page"
PAGE_FILES = ("index.html", "poster.js", "poster.css")
# What the poster shares with the demo's page, which holds it: helpers and styles.
SHARED_FILES = tuple(Path(__file__).parents[1] / "demo" / "page" / name
                     for name in ("common.js", "common.css"))
MANIFEST = "poster.json"
RUNS_DIR = "runs"
ORT_DIR = "ort"
# The kind in the mark of a poster folder: what lets a rebuild replace it.
KIND = "betavae poster"
WHAT = "poster folder"
# The layout of poster.json, which the page checks.
FORMAT = 1


def read_study(study: Path) -> dict[str, Any]:
    """``study.json`` of a finished study, or a one-line error saying how to get one."""
    path = Path(study) / STUDY_FILE
    if not path.is_file():
        raise BetaVAEError(
            f"{study} holds no {STUDY_FILE}: not a finished study folder, or one written before posters; "
            f"run betavae reproduce --out {study} (with the scale it was made at) again, which reuses every "
            f"finished run and writes it")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BetaVAEError(f"{path} cannot be read ({error}); run betavae reproduce --out {study} again, "
                           "which rewrites it") from None
    if not isinstance(data, dict) or data.get("format") != STUDY_FORMAT:
        raise BetaVAEError(f"{path} is not a study.json of format {STUDY_FORMAT}; run betavae reproduce "
                           f"--out {study} again, which rewrites it")
    return data


def build_poster(study: str | Path, out: str | Path | None = None, *, images: int = export.IMAGES,
                 report: Callable[[str], None] = lambda line: None) -> Path:
    """Write the poster of the study in ``study`` into ``out`` (default ``STUDY/poster``); return ``out``.

    ``report`` receives a line per sweep (how many runs were exported and how many kept from the
    poster it replaces).
    """
    from betavae.demo import vendor
    from betavae.viz.traversals import ACTIVE_KL

    study = Path(study)
    data = read_study(study)
    out = study / POSTER_DIR if out is None else Path(out)
    files.check_removable(out, KIND, WHAT)  # before minutes of exporting, not after
    ort_files = vendor.require(report)
    splits: dict[str, Any] = {}

    def split_of(config: Any) -> Any:
        key = json.dumps([config.dataset, config.dataset_kwargs()], sort_keys=True, default=str)
        if key not in splits:
            splits[key] = config.load_dataset().test
        return splits[key]

    with files.folder_built_beside(out, KIND, WHAT) as building:
        for part in data["parts"]:
            for sweep, rows in part["sweeps"].items():
                exported = kept = 0
                for row in rows:
                    folder = f"{RUNS_DIR}/{part['folder']}/{sweep}/{row['run']}"
                    run_dir = study / part["folder"] / sweep / row["run"]
                    if _keep(out / folder, building / folder, run_dir, images):
                        kept += 1
                    else:
                        about = {"part": part["folder"], "sweep": sweep, "seed": row.get("seed")}
                        try:
                            export.export_run(run_dir, building / folder, images=images, split_of=split_of,
                                              about=about)
                        except BetaVAEError as error:
                            raise BetaVAEError(f"poster: {run_dir}: {error}") from None
                        exported += 1
                    row["model"] = f"{folder}/"
                if rows:
                    report(f"poster: {part['folder']}/{sweep}: {len(rows)} runs ({exported} exported, "
                           f"{kept} kept)")
        for name in PAGE_FILES:
            shutil.copyfile(PAGE_DIR / name, building / name)
        for path in SHARED_FILES:
            shutil.copyfile(path, building / path.name)
        vendor.copy_installed(ort_files, building / ORT_DIR)  # readable by others, whatever the cache's modes
        manifest = {**data, "format": FORMAT, "study_format": data["format"], "ort": f"{ORT_DIR}/",
                    "active_kl": ACTIVE_KL, "traversal": export.TRAVERSAL}
        text = json.dumps(manifest, ensure_ascii=False, allow_nan=False)
        files.atomic_write_text(building / MANIFEST, text)
    return out


def _keep(old: Path, new: Path, run_dir: Path, images: int) -> bool:
    """Carry the earlier poster's export of a run into the new one when it still describes the run's
    weights (linked, not copied: the same bytes)."""
    if not export.is_current(old, run_dir, images):
        return False
    new.mkdir(parents=True)
    for path in old.iterdir():
        try:
            os.link(path, new / path.name)
        except OSError:  # another file system, or links refused
            shutil.copyfile(path, new / path.name)
    return True
