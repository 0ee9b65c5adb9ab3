"""Writing only what betavae owns: atomic writes, and the marks that prove a folder or a file ours.

Every command that writes goes through here, so that none of them replaces or deletes a file
of the user's, and the next command gets the same care for free. The rule:

- **A folder a command writes into is its own**: it created it and marked it with
  :data:`MARKER` (the kind of output and a format version: :func:`claim_folder`). A folder that
  exists, holds other files and carries no mark of that kind is refused in one line, never
  written into (a user's project folder given as ``--out``).
- **A single file in a folder that is not ours** (``show recon --out mine.png``, ``transfer``'s
  tables beside the runs) may replace only a file that this command wrote there before: the
  folder's mark records the files betavae wrote into it (:func:`claim_file`, :func:`record_file`).
- **No output ever lands on a run folder's own files** (:data:`RUN_FOLDER_FILES`).
- **Replacing is atomic** (:func:`atomic_write_bytes`, :func:`replacing`): write beside, then
  rename; a kill leaves the old file or the new one, and a temporary that only a resume of ours
  deletes (its name carries :data:`TEMPORARY_MARK`). What it renames into place has the mode any
  file the user makes has (:func:`usual_mode`), not the temporary's private 0600.
- **Nothing is deleted that we cannot prove we made** (:func:`remove_owned_folder`: the mark
  lists every file in the folder).

A leaf module: it imports nothing of betavae but the error type, so data, viz and runs all use it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from betavae.errors import BetaVAEError

# The mark of every folder betavae writes into: {"kind", "format", "files", ...}.
MARKER = ".betavae.json"
# The layout of the mark; a mark of a later format is refused rather than misread.
MARK_FORMAT = 1
# The mark in the name of every temporary of an atomic write (``.<file>.betavae-<random>.tmp``): what
# lets a resume delete the temporaries a kill left behind and nothing a user named ``.notes.tmp``.
TEMPORARY_MARK = "betavae-"
# A run folder's and a sweep folder's own files: what the next command trusts, never an output's target.
RUN_FOLDER_FILES = frozenset({
    "config.toml", "checkpoint.pt", "metrics.json", "log.jsonl", "tensorboard", ".lock",
    "sweep.db", "sweep.db-journal", "sweep.db-wal", "sweep.db-shm", MARKER,
})


# -- atomic writes ---------------------------------------------------------------------------------

def atomic_write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new content, never half.

    The bytes go to a temporary file in the same folder, are flushed to disk, and then replace
    ``path`` with one rename, which POSIX makes atomic. A write that fails (a full disk) removes
    its temporary; one killed half-way leaves it for :meth:`betavae.runs.RunDir.remove_stale_temporaries`.
    """
    with replacing(path) as temporary:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def usual_mode(folder: bool = False) -> int:
    """The mode ``open()`` or ``mkdir()`` gives a new file or folder under this process's umask.

    ``tempfile`` makes its files 0600 and its folders 0700, private to the user; renamed into
    place as they are, a run folder shared on a cluster, or a demo site served by a web server
    running as another user, could not be read (the page then said only that an image could not
    be decoded). Whatever is written through a temporary is given this mode before its rename.
    """
    return (0o777 if folder else 0o666) & ~_umask()


def _umask() -> int:
    """This process's umask, read where Linux shows it, else set and restored at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that takes a path (PIL, matplotlib, ONNX);
    renamed onto ``path`` (with the :func:`usual_mode`) when the block ends without an error,
    removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{TEMPORARY_MARK}", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, usual_mode())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def make_folder(path: str | Path, what: str = "output folder") -> Path:
    """Create folder ``path`` (and its parents), or say in one line why it cannot be one.

    ``what`` names the folder in the message ("run folder", "output folder").
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BetaVAEError(f"{what} {path} is a file, not a folder; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), path)
        raise BetaVAEError(
            f"cannot create {what} {path}: {blocking} is a file, not a folder; choose another path"
        ) from None
    except OSError as error:
        raise BetaVAEError(f"cannot create {what} {path}: {error.strerror or error}") from None
    return path


# -- the user's cache ------------------------------------------------------------------------------

def user_cache() -> Path:
    """Where betavae keeps what it fetched or computed for this user: ``$XDG_CACHE_HOME/betavae`` or
    ``~/.cache/betavae``. Everything in it can be deleted; it is made again when needed."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "betavae"


def cached(kind: str, key: Mapping[str, Any], compute: Callable[[], Any]) -> Any:
    """``compute()``'s JSON value, kept in the user's cache under ``kind`` and ``key`` (JSON data: all that
    the value depends on, a code version among it) and read back by the next call with the same key.

    A file is used only when it names this very key and its value's SHA-256 matches the one
    written with it: a damaged, truncated or hand-edited file is computed again (and replaced),
    never trusted. An unwritable cache only costs the time to compute.
    """
    canonical, stem = _cache_entry(kind, key)
    path = stem.with_suffix(".json")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        value = stored["value"]
        if stored["key"] == json.loads(canonical) and stored["sha256"] == _digest(value):
            return value
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = compute()
    try:
        atomic_write_text(path, json.dumps({"key": json.loads(canonical), "value": value,
                                            "sha256": _digest(value)}, allow_nan=True))
    except OSError:
        pass
    return value


def cached_array(kind: str, key: Mapping[str, Any], compute: Callable[[], Any]) -> Any:
    """``compute()``'s numpy array, kept in the user's cache under ``kind`` and ``key`` as :func:`cached`
    keeps JSON values: ``<digest>.npy`` beside ``<digest>.json``, which names the key, the array's shape,
    dtype and SHA-256, and is written last, so that a file cut short by a kill is never read back.

    For what is slow to compute and quick to read (a rendered image set: a second to render, tens of
    milliseconds to read), in every process that needs it. Read back only when the key, shape, dtype
    and checksum all match; anything else is computed again and replaced. Unwritable: only the time.
    """
    import numpy as np

    canonical, stem = _cache_entry(kind, key)
    try:
        stored = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
        if stored["key"] == json.loads(canonical):
            with open(stem.with_suffix(".npy"), "rb") as file:
                array = np.load(file, allow_pickle=False)
            if (list(array.shape) == stored["shape"] and str(array.dtype) == stored["dtype"]
                    and _array_digest(array) == stored["sha256"]):
                return array
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        pass
    array = np.ascontiguousarray(compute())
    data = io.BytesIO()
    np.save(data, array, allow_pickle=False)
    try:
        atomic_write_bytes(stem.with_suffix(".npy"), data.getbuffer())
        atomic_write_text(stem.with_suffix(".json"), json.dumps({
            "key": json.loads(canonical), "shape": list(array.shape), "dtype": str(array.dtype),
            "sha256": _array_digest(array)}, allow_nan=True))
    except OSError:
        pass
    return array


def _cache_entry(kind: str, key: Mapping[str, Any]) -> tuple[str, Path]:
    """``key`` as canonical JSON, and the path (without suffix) of its entry under ``kind``."""
    canonical = json.dumps(key, sort_keys=True, allow_nan=True)
    return canonical, user_cache() / kind / hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _array_digest(array: Any) -> str:
    return hashlib.sha256(memoryview(array).cast("B")).hexdigest()


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, allow_nan=True).encode()).hexdigest()


# -- marks -----------------------------------------------------------------------------------------

@dataclass
class Mark:
    """What :data:`MARKER` says of its folder.

    ``kind``: the command that owns the whole folder (``"betavae export"``), or None for a folder
    of the user's that betavae only wrote some files into; ``files``: those files (relative POSIX
    paths) and the command that wrote each; ``extra``: what the owner must find again (a study's
    scale).
    """

    kind: str | None = None
    format: int = MARK_FORMAT
    files: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "format": self.format, "files": self.files, **self.extra},
                          indent=1, sort_keys=True) + "\n"


def read_mark(folder: str | Path) -> Mark | None:
    """The mark of ``folder``; None when it has none, or one that is not betavae's (then nothing in the
    folder is proven ours, which is the safe reading)."""
    try:
        values = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
        kind, format_, files = values.pop("kind"), values.pop("format"), values.pop("files")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if kind is not None and not isinstance(kind, str):
        return None
    if not isinstance(format_, int) or not isinstance(files, dict):
        return None
    return Mark(kind, format_, {str(name): str(by) for name, by in files.items()}, values)


def write_mark(folder: str | Path, mark: Mark) -> None:
    atomic_write_text(Path(folder) / MARKER, mark.to_json())


def is_temporary(name: str) -> bool:
    """A temporary of :func:`replacing`'s (``.<file>.betavae-<random>.tmp``)."""
    return name.startswith(".") and f".{TEMPORARY_MARK}" in name and name.endswith(".tmp")


def files_of(folder: str | Path) -> list[str]:
    """Every file under ``folder`` but its mark, as sorted POSIX paths relative to it."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*")
                  if (path.is_file() or path.is_symlink()) and path.relative_to(folder).as_posix() != MARKER)


def claim_folder(path: str | Path, kind: str, *, flag: str = "--out", what: str = "output folder",
                 extra: Mapping[str, Any] | None = None,
                 adopt: Callable[[Path], bool] | None = None) -> Path:
    """Make ``path`` the folder of ``kind``'s output, or refuse in one line; returns the folder.

    :func:`check_folder` first (nothing written when it refuses), then the folder is created
    and marked as ``kind``'s.
    """
    mark = check_folder(path, kind, flag=flag, extra=extra, adopt=adopt)
    if mark is not None:
        make_folder(path, what)
        write_mark(path, mark)
    return Path(path)


def check_folder(path: str | Path, kind: str, *, flag: str = "--out", extra: Mapping[str, Any] | None = None,
                 adopt: Callable[[Path], bool] | None = None) -> Mark | None:
    """Refuse in one line, writing nothing, unless ``path`` may be ``kind``'s output folder; return the
    mark it is to get (None: it has it).

    Accepted: a folder that does not exist yet or is empty, or one that ``kind`` marked before
    (its ``extra`` values must match: a study made at one scale is not continued at another).
    ``adopt`` recognises a folder ``kind`` wrote before marks existed. Anything else — a user's
    folder, a run or a sweep, another command's output, a file — is refused.
    """
    path = Path(path)
    extra = dict(extra or {})
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise BetaVAEError(f"{flag} {path} is not a folder; give a new or empty folder")
    mark = read_mark(path) if path.is_dir() else None
    if mark is not None and mark.kind == kind:
        if mark.format > MARK_FORMAT:
            raise BetaVAEError(f"{flag} {path} was written by a newer betavae (mark format {mark.format}); "
                               f"upgrade betavae or give another folder")
        for key, value in extra.items():
            if key in mark.extra and mark.extra[key] != value:
                raise BetaVAEError(f"{flag} {path} holds output of {kind} with {key} {mark.extra[key]}, not "
                                   f"{value}; give another folder, or the same {key} to continue it")
        missing = any(key not in mark.extra for key in extra)
        return Mark(kind, MARK_FORMAT, mark.files, {**extra, **mark.extra}) if missing else None
    if mark is not None and mark.kind is not None:
        raise BetaVAEError(f"{flag} {path} holds the output of {mark.kind}, not of {kind}; "
                           f"give another folder")
    foreign = files_of_others(path)
    if foreign and not (adopt is not None and adopt(path)):
        if made_by_betavae(path):
            which = "a sweep folder" if (path / "sweep.db").is_file() else "a run folder"
            raise BetaVAEError(f"{flag} {path} is {which}, not a folder of {kind}'s output; give a new or "
                               f"empty folder")
        refuse_files_of_others(path, foreign, kind, flag)
    return Mark(kind, MARK_FORMAT, mark.files if mark else {}, extra)


def files_of_others(path: str | Path, ours: Collection[str] = ()) -> list[str]:
    """The files under ``path`` but its mark, the temporaries of our writes and the names ``ours``
    (relative POSIX paths), the user's names first: a dot-file (a run's .lock) says less about
    whose folder it is."""
    return sorted((name for name in files_of(path) if name not in ours and not is_temporary(Path(name).name)),
                  key=lambda name: (name.startswith("."), name))


def refuse_files_of_others(path: str | Path, foreign: Sequence[str], kind: str,
                           flag: str = "--out") -> NoReturn:
    """The one-line refusal of a folder holding ``foreign`` files that ``kind`` did not write."""
    more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
    raise BetaVAEError(f"{flag} {path} already holds files that {kind} did not write "
                       f"({foreign[0]}{more}); give a new or empty folder")


def made_by_betavae(folder: str | Path) -> bool:
    """A folder betavae made: one a command marked as its own, a run folder (its config beside its lock
    or its checkpoint) or a sweep folder (its state). A file under a name that only betavae gives is
    ours in such a folder."""
    folder = Path(folder)
    mark = read_mark(folder)
    run = (folder / "config.toml").is_file() and any((folder / name).is_file()
                                                      for name in (".lock", "checkpoint.pt"))
    return (mark is not None and mark.kind is not None) or (folder / "sweep.db").is_file() or run


def claim_file(path: str | Path, kind: str, *, flag: str = "--out",
               ours: Callable[[Path], bool] | None = None) -> Path:
    """``path`` as a file ``kind`` may write, or a one-line refusal naming it; nothing is written.

    Refused: a run folder's own file (:data:`RUN_FOLDER_FILES`), anything but a plain file, and
    an existing file that ``kind`` did not write — by the mark of its folder, or by ``ours``, the
    command's own proof (a name only it gives, inside a folder of betavae's).
    """
    path = Path(path)
    if path.name in RUN_FOLDER_FILES:
        raise BetaVAEError(f"{flag} {path}: {path.name} is a run folder's own file, never an output; "
                           f"give another name")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise BetaVAEError(f"{flag} {path} is not a plain file; give a new file name or a folder")
    if path.exists() and not written_by(path, kind) and not (ours is not None and ours(path)):
        raise BetaVAEError(f"{flag} {path} exists and {kind} did not write it; give a new name "
                           f"(or move that file away)")
    return path


def written_by(path: str | Path, kind: str) -> bool:
    """Whether the mark of ``path``'s folder says ``kind`` wrote it (or owns the whole folder)."""
    path = Path(path)
    mark = read_mark(path.parent)
    return mark is not None and (mark.kind == kind or mark.files.get(path.name) == kind)


def record_file(path: str | Path, kind: str) -> None:
    """Note in the mark of ``path``'s folder that ``kind`` wrote it, so that ``kind`` may replace it later.

    A folder ``kind`` owns needs no note; in another, the mark is created or extended.
    """
    path = Path(path)
    mark = read_mark(path.parent)
    if mark is not None and mark.kind == kind:
        return
    if mark is None:
        if (path.parent / MARKER).exists():  # a file of that name that is not our mark: leave it alone
            return
        mark = Mark()
    if mark.files.get(path.name) != kind:
        mark.files[path.name] = kind
        write_mark(path.parent, mark)


def write_file(path: str | Path, data: bytes | str, kind: str, *, flag: str = "--out",
               ours: Callable[[Path], bool] | None = None) -> Path:
    """:func:`claim_file`, an atomic write and :func:`record_file`: a file output in one call."""
    path = claim_file(path, kind, flag=flag, ours=ours)
    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)
    record_file(path, kind)
    return path


def check_removable(path: str | Path, kind: str, what: str = "folder") -> None:
    """Refuse in one line unless deleting ``path`` loses nothing of the user's: it is absent, holds no
    file, or its mark is ``kind``'s and lists every file in it.

    The proof is the mark, not a file name a user might also have (a ``demo.json`` of their own).
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise BetaVAEError(f"{path} is not a folder; give a new or empty {what}")
    present = files_of(path)
    mark = read_mark(path)
    if not present or (mark is not None and mark.kind == kind and set(present) <= set(mark.files)):
        return
    if mark is None or mark.kind != kind:
        raise BetaVAEError(f"{path} holds other files and no mark of {kind}'s; give an empty or new "
                           f"{what}, or one that {kind} wrote")
    foreign = sorted(set(present) - set(mark.files))
    more = f" and {len(foreign) - 1} more files" if len(foreign) > 1 else ""
    raise BetaVAEError(f"{path} was written by {kind} but also holds {foreign[0]}{more} that betavae did "
                       f"not write; move them away or give another {what}")


def remove_owned_folder(path: str | Path, kind: str, what: str = "folder") -> None:
    """Delete ``path`` when :func:`check_removable` proves it ``kind``'s; else refuse in one line."""
    check_removable(path, kind, what)
    if Path(path).exists():
        shutil.rmtree(path)


@contextmanager
def folder_built_beside(out: str | Path, kind: str, what: str = "folder") -> Iterator[Path]:
    """A new folder to fill, built beside ``out`` and renamed into its place whole when the block ends.

    For a folder of many files made in one go (a demo site, a study's poster): a failure or a kill
    while it is filled leaves the earlier ``out`` (or none), never half of one, and the temporary is
    removed. At the end every file is listed in the new folder's mark of ``kind``, and the earlier
    ``out`` is deleted only when :func:`check_removable` proves it ``kind``'s (checked when the block
    begins and again before the swap). The folder has the usual mode (:func:`usual_mode`), not
    ``mkdtemp``'s private 0700: a web server running as another user serves these folders.
    """
    out = Path(out)
    check_removable(out, kind, what)
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".building", dir=out.parent))
    os.chmod(building, usual_mode(folder=True))
    try:
        yield building
        write_mark(building, Mark(kind, files=dict.fromkeys(files_of(building), kind)))
        remove_owned_folder(out, kind, what)  # checked again: it may have changed meanwhile
        building.rename(out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
