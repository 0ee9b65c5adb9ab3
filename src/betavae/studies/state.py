"""What a sweep has done: one SQLite file in the sweep folder, one row per run.

SQLite because the state must survive any stop (Ctrl-C, ``kill -9``, a reboot) whole:
every change is one transaction, so the file always says either the old thing or the new.
Only the sweep's driver writes it (it holds the sweep folder's lock); workers, local or on
a Ray cluster, return their results to it. A run's status moves

    queued → running → done | failed      (an interrupted run goes back to queued)

and a run found ``running`` when a sweep starts was cut off (its driver is gone, or it
would still hold the lock), so it is queued again: its worker resumes it from its last
checkpoint, not from step 0. Read while no driver holds the lock (:func:`driver_running`),
``running`` means the same: cut off.

The file is created whole (never empty), so an empty or corrupt ``sweep.db`` is an
unreadable state, refused in one line rather than read as a sweep without runs.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from betavae.errors import BetaVAEError
from betavae.files import atomic_write_bytes
from betavae.runs import LOCK_FILE, RunDir
from betavae.studies.grid import GridPoint, GridSpec, resumable_keys, shown

STATE_FILE = "sweep.db"
STATUSES = ("queued", "running", "done", "failed")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY,           -- the run folder, inside the sweep folder
    position INTEGER NOT NULL,       -- the order runs are started in
    config TEXT NOT NULL,            -- TrainConfig.to_dict() as JSON
    config_hash TEXT NOT NULL,       -- grid.config_hash: what makes the run the experiment it is
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,                     -- host:pid of the sweep that started the last attempt
    started REAL,                    -- Unix times of the last attempt
    ended REAL,
    error TEXT,                      -- why the last attempt failed
    result TEXT                      -- JSON: held-out loss, metrics, derived values (see studies.worker)
);
"""


class SweepState:
    """The SQLite state of one sweep folder; a context manager that closes the connection."""

    def __init__(self, sweep_dir: str | Path) -> None:
        """Open the state of ``sweep_dir``, creating it when the folder has none (only the driver,
        holding the folder's lock, opens a folder without one)."""
        self.path = Path(sweep_dir) / STATE_FILE
        try:
            if not self.path.exists() and self.path.parent.is_dir():
                self._create()
            elif self.path.is_file() and self.path.stat().st_size == 0:
                # SQLite would take an empty file for a new state, and the sweep for one without runs.
                raise BetaVAEError(self._unreadable("it is empty"))
            # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE) in _transaction.
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            raise BetaVAEError(self._unreadable(str(error))) from None

    def _create(self) -> None:
        """Write a new state with its tables in one atomic write: connecting creates an empty file
        first, and a sweep killed then would leave one."""
        with closing(sqlite3.connect(":memory:")) as fresh:
            fresh.executescript(SCHEMA)
            atomic_write_bytes(self.path, fresh.serialize())

    def _unreadable(self, why: str) -> str:
        return (
            f"{self.path} is an unreadable sweep state ({why}); move it away and run betavae sweep again "
            f"with the sweep's grid: its run folders are kept, and their finished runs reused"
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SweepState:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- the grid --------------------------------------------------------------------------

    def sync(
        self, points: Sequence[GridPoint], spec: GridSpec, names: Mapping[str, str] | None = None
    ) -> None:
        """Add the grid's new points as queued; queue again the done runs this grid asks more of; keep
        ``spec`` as the grid to continue the sweep with. ``names`` maps keys to the flags the user
        typed, for messages.

        A point whose name exists with another config hash means the folder holds a
        different experiment under that name, and one asking fewer steps than its run has
        trained would leave it longer than the grid says: both refused, since its run
        folder would be resumed as if it were this one. A finished run is queued again when
        the grid asks for more steps or for metrics (or a metric seed or sizes) its result
        lacks; its worker then trains on from the checkpoint or only evaluates.
        """
        with self._transaction() as db:
            known = {row["name"]: row for row in db.execute("SELECT * FROM runs")}
            next_position = max((row["position"] for row in known.values()), default=-1) + 1
            for point in points:
                config = json.dumps(point.config.to_dict())
                row = known.get(point.name)
                if row is None:
                    db.execute(
                        "INSERT INTO runs (name, position, config, config_hash, status) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (point.name, next_position, config, point.config_hash(), "queued"),
                    )
                    next_position += 1
                    continue
                self._check_continues(row, point, names or {})
                status = row["status"]
                if status == "done" and _asks_more(row, point, spec):
                    status = "queued"
                db.execute(
                    "UPDATE runs SET config = ?, status = ? WHERE name = ?", (config, status, point.name)
                )
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('spec', ?)", (json.dumps(spec.to_dict()),)
            )

    def check(self, points: Sequence[GridPoint], names: Mapping[str, str] | None = None) -> None:
        """Refuse, as :meth:`sync` would, points that would change a run this sweep holds; write nothing."""
        known = {row["name"]: row for row in self._db.execute("SELECT * FROM runs")}
        for point in points:
            if point.name in known:
                self._check_continues(known[point.name], point, names or {})

    def _check_continues(self, row: sqlite3.Row, point: GridPoint, names: Mapping[str, str]) -> None:
        """Refuse ``point`` when its run ``row`` is another experiment, or has trained more steps."""
        saved = json.loads(row["config"])
        if row["config_hash"] != point.config_hash():
            differing = _differences(saved, point.config.to_dict(), names)
            raise BetaVAEError(
                f"{self.path.parent} already holds run {point.name} made with another {differing}; "
                f"a grid that changes what its runs are needs another --out"
            )
        if saved["steps"] <= point.config.steps:
            return  # it was never asked for more, so it trained no more: no checkpoint to read
        trained = self._trained_steps(row)
        if trained > point.config.steps:
            steps = names.get("steps", "steps")
            raise BetaVAEError(
                f"{self.path.parent} already holds run {point.name} trained {trained:,} steps, more than "
                f"{steps} {point.config.steps:,}; a sweep's runs only train on: give {steps} {trained} or "
                f"more"
            )

    def _trained_steps(self, row: sqlite3.Row) -> int:
        """The steps run ``row`` has trained: all it was asked for once done, else its checkpoint's (a run
        cut off short of a long grid may be asked for fewer steps than that grid's, but not fewer than it
        holds)."""
        if row["status"] == "done":
            return int(json.loads(row["config"])["steps"])
        run = RunDir(self.path.parent / row["name"])
        try:
            return run.checkpoint_step() if run.has_checkpoint() else 0
        except BetaVAEError:
            return 0  # an unreadable checkpoint: the run starts again, as its worker would find

    def spec(self) -> GridSpec | None:
        """The grid this sweep was last started with, or None for a new sweep folder."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'spec'").fetchone()
        return GridSpec.from_dict(json.loads(row["value"])) if row else None

    def forget(self, names: Sequence[str]) -> None:
        """Drop the rows of ``names`` (their run folders were deleted: they start again as new points)."""
        with self._transaction() as db:
            db.executemany("DELETE FROM runs WHERE name = ?", [(name,) for name in names])

    def requeue(self, status: str) -> int:
        """Queue every run of ``status`` again (``running``: cut off by a stop; ``failed``: retried)."""
        with self._transaction() as db:
            return db.execute("UPDATE runs SET status = 'queued' WHERE status = ?", (status,)).rowcount

    # -- one run's life ---------------------------------------------------------------------

    def queued(self, names: Sequence[str]) -> list[str]:
        """Those of ``names`` that are queued, in the order runs start."""
        wanted = set(names)
        rows = self._db.execute("SELECT name FROM runs WHERE status = 'queued' ORDER BY position")
        return [row["name"] for row in rows if row["name"] in wanted]

    def config(self, name: str) -> dict[str, Any]:
        return json.loads(self._row(name)["config"])

    def attempts(self, name: str) -> int:
        """How many times the run was started."""
        return int(self._row(name)["attempts"])

    def mark_running(self, name: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = 'running', attempts = attempts + 1, worker = ?, started = ?, "
                "ended = NULL, error = NULL WHERE name = ?",
                (f"{socket.gethostname()}:{os.getpid()}", time.time(), name),
            )

    def mark_done(self, name: str, result: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = 'done', ended = ?, error = NULL, result = ? WHERE name = ?",
                (time.time(), json.dumps(result), name),
            )

    def mark_failed(self, name: str, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = 'failed', ended = ?, error = ? WHERE name = ?",
                (time.time(), error, name),
            )

    def mark_queued(self, name: str) -> None:
        """An interrupted run: it goes back to the queue and resumes from its checkpoint next time."""
        with self._transaction() as db:
            db.execute("UPDATE runs SET status = 'queued', ended = ? WHERE name = ?", (time.time(), name))

    # -- reading ----------------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """Every run, in start order, with its config and result decoded."""
        rows = []
        for row in self._db.execute("SELECT * FROM runs ORDER BY position"):
            values = dict(row)
            values["config"] = json.loads(values["config"])
            values["result"] = json.loads(values["result"]) if values["result"] else None
            rows.append(values)
        return rows

    def counts(self, names: Sequence[str] | None = None) -> dict[str, int]:
        """How many runs (of ``names``, or all) are in each status."""
        wanted = None if names is None else set(names)
        counts = dict.fromkeys(STATUSES, 0)
        for row in self._db.execute("SELECT name, status FROM runs"):
            if wanted is None or row["name"] in wanted:
                counts[row["status"]] += 1
        return counts

    def _row(self, name: str) -> sqlite3.Row:
        row = self._db.execute("SELECT * FROM runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(name)
        return row


def stored_spec(out: str | Path) -> GridSpec | None:
    """The grid the sweep folder ``out`` was last started with, or None when it holds none."""
    if not (Path(out) / STATE_FILE).is_file():
        return None
    with SweepState(out) as state:
        return state.spec()


def driver_running(sweep_dir: str | Path) -> bool:
    """Whether a sweep driver holds the lock of ``sweep_dir`` now, so that its ``running`` runs run.

    The driver holds the lock (``flock``, :meth:`betavae.runs.RunDir.lock`) for as long as it
    lives, and the kernel drops it however the driver ends (``kill -9`` too), so a run marked
    ``running`` in a folder whose lock is free was cut off. Asking for a shared lock tests it
    without taking it from anyone; a lock that cannot be tested counts as held.
    """
    import fcntl

    try:
        fd = os.open(Path(sweep_dir) / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False  # no driver ever ran there
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True  # held (EWOULDBLOCK), or a lock this system cannot test
    finally:
        os.close(fd)  # releases the shared lock when it was granted
    return False


def _differences(saved: dict[str, Any], wanted: dict[str, Any], names: Mapping[str, str]) -> str:
    """``--mig-points (300, not 500), lr (…)``: each non-resumable key that differs, with both values."""
    keys = sorted(
        key
        for key in set(saved) | set(wanted)
        if key not in resumable_keys() and saved.get(key) != wanted.get(key)
    )
    return ", ".join(
        f"{names.get(key, key)} ({shown(saved.get(key))}, not {shown(wanted.get(key))})" for key in keys
    ) or "config"


def _asks_more(row: sqlite3.Row, point: GridPoint, spec: GridSpec) -> bool:
    """Whether a finished run must run again for this grid: more steps, or metrics it has not measured."""
    result = json.loads(row["result"]) if row["result"] else {}
    if result.get("step", 0) < point.config.steps:
        return True
    measured = result.get("metric_settings", {})
    wanted = {"seed": spec.metric_seed, **spec.sizes}
    return any(name not in result.get("metrics", {}) for name in spec.metrics) or (
        bool(spec.metrics) and measured != wanted
    )
