"""The run folder: the unit every command exchanges.

A run folder holds ``config.toml`` (what made it), ``checkpoint.pt`` (weights, optimiser
and random state, written atomically), ``metrics.json`` (results, merged section by
section so that later commands add to it), ``log.jsonl`` and ``tensorboard/`` (curves),
and the figures made from it. Training, evaluation, figures, transfer and sweeps all
take run folders, so they compose without glue.

Because every later command (and a sweep's workers, which share folders) trusts what a
run folder says, it must never lie and never lose work:

- **One writer at a time.** A process writing into a run folder holds an OS lock on its
  ``.lock`` file (:meth:`RunDir.lock`); a second writer gets a one-line error naming the
  holder's pid. The lock dies with its process, so a ``kill -9`` leaves no stale lock.
- **Results say which weights they describe.** Every section of ``metrics.json`` carries
  the ``step`` of the checkpoint it was computed from; when training goes past that step,
  the section moves to ``history`` (kept, not deleted), and readers refuse a section whose
  step is not the checkpoint's (:meth:`RunDir.current_result`).
- **Writes are atomic** (:func:`betavae.files.atomic_write_bytes`): a file holds its old or its new
  content, never half; temporaries a kill left behind are removed on the next start.
"""

from __future__ import annotations

import errno
import io
import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from betavae.config import DERIVED_TABLE, DerivedValues, TrainConfig, load_config, read_toml, to_toml
from betavae.errors import BetaVAEError
from betavae.files import TEMPORARY_MARK, atomic_write_bytes, atomic_write_text

CONFIG_FILE = "config.toml"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.jsonl"
TENSORBOARD_DIR = "tensorboard"
LOCK_FILE = ".lock"
# What metrics.json keeps of results computed from earlier weights.
HISTORY_SECTION = "history"
# The metrics measured while training (betavae.training.tracking): one entry per evaluated step,
# each naming its step.
DURING_TRAINING_SECTION = "during_training"
# Sections that are histories themselves: never moved to history when training goes on.
HISTORIES = (HISTORY_SECTION, DURING_TRAINING_SECTION)
# What every checkpoint written by betavae.training.checkpoints holds.
CHECKPOINT_KEYS = ("step", "model", "optimizer", "noise_state", "config", "derived")
# TensorBoard names its files events.out.tfevents.<time>.<host>...: the only ones of
# tensorboard/ that are ours.
TENSORBOARD_PREFIX = "events.out.tfevents."


class _HeldLocks:
    """The run-folder locks this process holds, per thread, so that a holder may lock again."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.counts: dict[tuple[Path, int], tuple[int, int]] = {}  # (folder, thread) -> (fd, depth)


_held = _HeldLocks()


class RunDir:
    """Paths and atomic reads/writes of one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    # -- the lock --------------------------------------------------------------------------

    @contextmanager
    def lock(self, purpose: str) -> Iterator[None]:
        """Hold the folder's write lock for the ``with`` block; ``purpose`` says why ("training").

        ``flock`` on ``.lock``: the kernel drops it when the process ends however it ends,
        so a killed writer never blocks the next one. The holder's pid and purpose are
        written into the file for the message another writer gets. The same thread may
        take the lock again (a hook of the training loop writing into its own run).
        """
        import fcntl

        if not self.path.is_dir():
            raise BetaVAEError(f"{self.path} is not a run folder (no such folder)")
        key = (self.path.resolve(), threading.get_ident())
        with _held.guard:
            held = _held.counts.get(key)
            if held is not None:
                _held.counts[key] = (held[0], held[1] + 1)
        if held is None:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise BetaVAEError(
                    f"cannot write into run folder {self.path}: {error.strerror or error}"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise BetaVAEError(self._in_use_message()) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {purpose}\n".encode())
            with _held.guard:
                _held.counts[key] = (fd, 1)
        try:
            yield
        finally:
            with _held.guard:
                fd, depth = _held.counts[key]
                if depth > 1:
                    _held.counts[key] = (fd, depth - 1)
                else:
                    del _held.counts[key]
                    os.close(fd)  # closing the only descriptor releases the flock

    def lock_if_run_folder(self, purpose: str) -> AbstractContextManager[None]:
        """:meth:`lock` when this folder is a run folder (it has a ``config.toml``), else nothing.

        For outputs that may go into a run folder or into a folder holding several runs (a
        sweep's), which no single writer owns.
        """
        return self.lock(purpose) if self.config_path.exists() else nullcontext()

    def in_use_message(self) -> str | None:
        """The one-line message :meth:`lock` would give now (another process writes here), else None.

        For advice that depends on it: "finish it with --resume" is wrong while the run still trains.
        """
        import fcntl

        with _held.guard:
            if any(folder == self.path.resolve() for folder, _ in _held.counts):
                return None  # this process is the writer
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except OSError:
            return None  # no lock file: nobody has written here
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return self._in_use_message()
        finally:
            os.close(fd)
        return None

    def _in_use_message(self) -> str:
        try:
            pid, _, purpose = self.lock_path.read_text().strip().partition(" ")
        except OSError:
            pid, purpose = "", ""
        holder = f"process {pid} ({purpose})" if pid.isdigit() else "another process"
        stop = f" or stop it (kill {pid})" if pid.isdigit() else ""
        return f"{self.path} is in use by {holder}; wait for it to finish{stop}, then run again"

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the temporaries of atomic writes that a kill left behind; call while holding the lock.

        Only files named as :func:`atomic_write_bytes` names them (``.<file>.betavae-<random>.tmp``),
        and only in this folder: with the lock held no other process is writing them. A user's own
        ``.notes.tmp`` is not ours and stays.
        """
        stale = [path for path in self.path.glob(f".*.{TEMPORARY_MARK}*.tmp") if path.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    # -- starting a run --------------------------------------------------------------------

    def clear_unfinished_attempt(self) -> None:
        """Make the folder ready for a new run, touching only what an earlier attempt of a run wrote.

        A folder without a checkpoint may hold the config, log and curves of an attempt that
        died before its first checkpoint; they would mix with ours, so the log and
        TensorBoard's event files go (nothing else: other files in the folder are left
        alone). A folder holding files of a run (``log.jsonl``, ``tensorboard/``,
        ``metrics.json`` …) without a ``config.toml`` of betavae's is not a run folder, and
        is refused rather than overwritten.
        """
        ours = [
            name
            for name in (CONFIG_FILE, CHECKPOINT_FILE, METRICS_FILE, LOG_FILE, TENSORBOARD_DIR)
            if (self.path / name).exists()
        ]
        if not ours:
            return
        if CONFIG_FILE not in ours or not self._is_betavae_config():
            raise BetaVAEError(
                f"{self.path} holds {', '.join(name for name in ours)} but is not a betavae run "
                f"folder (no readable {CONFIG_FILE} written by betavae); choose another --out "
                f"or move those files away"
            )
        self.log_path.unlink(missing_ok=True)
        if self.tensorboard_dir.is_dir():
            for path in self.tensorboard_dir.glob(TENSORBOARD_PREFIX + "*"):
                path.unlink(missing_ok=True)

    def _is_betavae_config(self) -> bool:
        try:
            values = read_toml(self.config_path)
            values.pop(DERIVED_TABLE)
            TrainConfig.from_dict(values)
        except (BetaVAEError, KeyError, TypeError):
            return False
        return True

    # -- config ----------------------------------------------------------------------------

    def write_config(self, config: TrainConfig, derived: DerivedValues) -> None:
        atomic_write_text(self.config_path, to_toml({**config.to_dict(), DERIVED_TABLE: derived.to_dict()}))

    def read_config(self) -> TrainConfig:
        if not self.config_path.exists():
            raise BetaVAEError(f"{self.path} is not a run folder (no {CONFIG_FILE})")
        try:
            return load_config(self.config_path)
        except BetaVAEError as error:
            raise BetaVAEError(f"{error}{self._config_recovery()}") from None

    def read_derived(self) -> DerivedValues:
        """The values the run derived from its config (β and β_norm, arch, image shape …)."""
        if not self.config_path.exists():
            raise BetaVAEError(f"{self.path} is not a run folder (no {CONFIG_FILE})")
        try:
            return DerivedValues.from_dict(
                read_toml(self.config_path).get(DERIVED_TABLE, {}), str(self.config_path)
            )
        except BetaVAEError as error:
            raise BetaVAEError(f"{error}{self._config_recovery()}") from None

    def resume_config(self) -> TrainConfig:
        """The config to continue this run with: ``config.toml``'s, or the checkpoint's when that
        is unreadable.

        ``config.toml`` comes first because it holds the last command's resumable changes
        (more ``--steps``) even when that command was killed before its first checkpoint.
        """
        self.require_checkpoint_to_resume()
        try:
            return self.read_config()
        except BetaVAEError:
            return TrainConfig.from_dict(self.load_checkpoint()["config"], source=str(self.checkpoint_path))

    def require_checkpoint_to_resume(self) -> None:
        if not self.has_checkpoint():
            raise BetaVAEError(
                f"nothing to resume: {self.path} has no checkpoint; "
                f"run the same command without --resume to start it"
            )

    def _config_recovery(self) -> str:
        if self.has_checkpoint():
            return (
                f"; the checkpoint holds the whole config: betavae train --out {self.path} --resume "
                f"rewrites {CONFIG_FILE} from it"
            )
        return ""

    # -- checkpoint ------------------------------------------------------------------------

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.checkpoint_path, buffer.getvalue())

    def load_checkpoint(self, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
        """The checkpoint, checked to be betavae's; ``mmap`` maps its tensors instead of reading them."""
        if not self.has_checkpoint():
            raise BetaVAEError(f"{self.path} has no checkpoint ({CHECKPOINT_FILE}); train it first")
        try:
            checkpoint = torch.load(
                self.checkpoint_path, map_location=map_location, weights_only=False, mmap=mmap
            )
        except Exception as error:  # a truncated or foreign file: say which and what to do
            # torch's first sentence says what failed; the rest is advice that ours replaces. A longer
            # one (mmap's "please torch.save …") would mislead, so it is left out rather than cut.
            first = " ".join(str(error).split()).split(". ")[0].rstrip(".")
            reason = f" ({first})" if first and len(first) <= 160 else ""
            raise BetaVAEError(
                f"checkpoint {self.checkpoint_path} cannot be read: it is truncated, damaged or not a "
                f"PyTorch file{reason}; delete it and train again"
            ) from None
        missing = [
            key for key in CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint
        ]
        if missing:
            raise BetaVAEError(
                f"{self.checkpoint_path} is not a betavae checkpoint (it lacks {', '.join(missing)}): "
                f"written by another program or an older betavae; train a new run with another --out"
            )
        return checkpoint

    def checkpoint_step(self) -> int:
        """The step the weights in ``checkpoint.pt`` were saved at.

        Read with the tensors memory-mapped, not loaded: readers ask for the step and then
        load the model (:func:`load_model`), which would otherwise read the file twice.
        """
        return int(self.load_checkpoint(mmap=True)["step"])

    # -- results ---------------------------------------------------------------------------

    def read_metrics(self) -> dict[str, Any]:
        """``metrics.json`` as a dict ({} when absent); an unreadable file is a one-line error."""
        if not self.metrics_path.exists():
            return {}
        try:
            metrics = json.loads(self.metrics_path.read_bytes().decode("utf-8"))
            if not isinstance(metrics, dict):
                raise ValueError(f"it holds a JSON {type(metrics).__name__}, not an object")
        except (ValueError, UnicodeDecodeError) as error:
            reason = " ".join(str(error).split())[:160]
            raise BetaVAEError(
                f"{self.metrics_path} is not valid JSON ({reason}); move it aside (mv {self.metrics_path} "
                f"{self.metrics_path}.bad) and run again: betavae train --out {self.path} --resume "
                f"recomputes the held-out loss, betavae evaluate the scores"
            ) from None
        return metrics

    def during_training(self) -> dict[str, Any]:
        """The evaluations made while training (``metrics.json``'s ``during_training`` section,
        :mod:`betavae.training.tracking`); {} when there are none.

        The one reader of the section, for training resuming it, a sweep showing it and the
        benchmarks timing it. Its ``entries`` are those that name their step (a hand-edited
        or foreign file's others are left out), in order; an unreadable ``metrics.json`` is a
        one-line error (:meth:`read_metrics`).
        """
        section = self.read_metrics().get(DURING_TRAINING_SECTION)
        if not isinstance(section, dict):
            return {}
        entries = section.get("entries")
        return {
            **section,
            "entries": [
                entry for entry in (entries if isinstance(entries, list) else [])
                if isinstance(entry, dict) and isinstance(entry.get("step"), int)
            ],
        }

    def update_metrics(self, section: str, values: dict[str, Any], step: int) -> None:
        """Replace one section of ``metrics.json``, keeping the others, tagged with the weights' ``step``.

        Written atomically, and as strict JSON: NaN is not JSON, so a caller must write a
        result it could not compute as ``None`` with a reason.
        """
        metrics = self.read_metrics()
        metrics[section] = {**values, "step": step}
        atomic_write_text(self.metrics_path, json.dumps(metrics, indent=2, allow_nan=False) + "\n")

    def archive_results_before(self, step: int) -> list[str]:
        """Move sections computed at another step than ``step`` into ``history``; return their names.

        Called when training writes the checkpoint of ``step``: results of earlier weights
        no longer describe the run, but are kept, each with the step it was computed at.
        The sections of :data:`HISTORIES` stay: each of their entries names its own step.
        """
        if not self.metrics_path.exists():
            return []
        metrics = self.read_metrics()
        moved = [
            name
            for name, values in metrics.items()
            if name not in HISTORIES and not (isinstance(values, dict) and values.get("step") == step)
        ]
        if moved:
            history = metrics.setdefault(HISTORY_SECTION, [])
            for name in moved:
                values = metrics.pop(name)
                history.append(
                    {"section": name, **values}
                    if isinstance(values, dict)
                    else {"section": name, "value": values}
                )
            atomic_write_text(self.metrics_path, json.dumps(metrics, indent=2, allow_nan=False) + "\n")
        return moved

    def current_result(self, section: str, checkpoint_step: int | None = None) -> dict[str, Any] | None:
        """Section ``section`` of ``metrics.json`` if it describes the weights in the checkpoint.

        None when the section is absent; a one-line error when it was computed at another
        step (stale: training went on and it was not yet moved to ``history``).
        """
        values = self.read_metrics().get(section)
        if values is None:
            return None
        step = self.checkpoint_step() if checkpoint_step is None else checkpoint_step
        if not isinstance(values, dict) or values.get("step") != step:
            computed = values.get("step") if isinstance(values, dict) else None
            at = f"at step {computed}" if computed is not None else "at an unknown step"
            raise BetaVAEError(
                f"the {section!r} results in {self.metrics_path} were computed {at}, but the "
                f"checkpoint holds step {step}: they are stale; finish the run with betavae train "
                f"--out {self.path} --resume (and evaluate it again)"
            )
        return values


def common_parent(paths: Sequence[Path]) -> Path:
    """The deepest folder holding every path (for one run: its parent folder): a sweep's folder."""
    resolved = [path.resolve() for path in paths]
    parents = [set(path.parents) for path in resolved]
    return max(set.intersection(*parents), key=lambda path: len(path.parts))


def shared_dataset(runs: Sequence[RunDir], purpose: str):
    """The one dataset (name and split options) every run was trained on; runs of several are an error.

    ``purpose`` completes the error message: "<purpose> compares runs of one dataset".
    """
    configs = [run.read_config() for run in runs]

    def identity(config: TrainConfig) -> str:
        return repr((config.dataset, {k: v for k, v in config.dataset_kwargs().items() if k != "data_dir"}))

    if len({identity(config) for config in configs}) > 1:
        listed = ", ".join(
            f"{run.path.name}: {config.dataset}" for run, config in zip(runs, configs, strict=True)
        )
        raise BetaVAEError(
            f"runs trained on different datasets or splits ({listed}); {purpose} compares runs "
            f"of one dataset, so give them in separate calls"
        )
    return configs[0].load_dataset()


def load_model(run: str | Path | RunDir, device: str | torch.device = "cpu"):
    """The trained :class:`~betavae.models.BetaVAE` of a run folder, in eval mode."""
    from betavae.models import build

    run = run if isinstance(run, RunDir) else RunDir(run)
    checkpoint = run.load_checkpoint(map_location=device)
    derived = DerivedValues.from_dict(checkpoint["derived"], str(run.checkpoint_path))
    model = build(derived.arch, checkpoint["config"]["latent_dim"], derived.image_shape)
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()
