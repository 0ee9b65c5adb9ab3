"""Where training curves go: a JSON-lines file and TensorBoard, with the same scalars.

The JSON-lines file is for scripts (one object per logged step); TensorBoard is for
people. On resume, entries past the checkpoint's step are dropped from both, and the
training loop keeps the partial sums of the window in flight in its checkpoints, so a
resumed run's curves are those of a run that was never interrupted (all but images/s,
a timing). TensorBoard also draws the scores of the evaluations made during training
(:meth:`TrainingLog.log_evaluation`).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

from betavae.files import atomic_write_text


class TrainingLog:
    def __init__(self, jsonl_path: Path, tensorboard_dir: Path | None, resume_step: int = 0) -> None:
        self.jsonl_path = jsonl_path
        self._drop_entries_after(resume_step)
        self._jsonl = jsonl_path.open("a", encoding="utf-8")
        self._writer = None
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            # TensorBoard hides the events from purge_step on; those of the checkpoint's step are kept.
            self._writer = SummaryWriter(
                str(tensorboard_dir), purge_step=resume_step + 1 if resume_step else None
            )

    def _drop_entries_after(self, step: int) -> None:
        """Keep the entries up to ``step``; a line torn by a kill mid-write, or not UTF-8, is dropped too."""
        if not self.jsonl_path.exists():
            return
        kept = []
        for raw in self.jsonl_path.read_bytes().splitlines():
            try:
                line = raw.decode("utf-8")
                entry = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("step", 0), int)
                and entry.get("step", 0) <= step
            ):
                kept.append(line)
        atomic_write_text(self.jsonl_path, "".join(line + "\n" for line in kept))

    def log(self, step: int, values: dict[str, Any]) -> None:
        self._jsonl.write(json.dumps({"step": step, **values}) + "\n")
        self._jsonl.flush()
        if self._writer is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)):
                    self._writer.add_scalar(name, value, step)
                elif isinstance(value, list):  # one curve per entry: KL of each latent dimension
                    for index, item in enumerate(value):
                        self._writer.add_scalar(f"{name}/{index}", item, step)

    def log_evaluation(self, step: int, results: dict[str, dict[str, float | None]]) -> None:
        """The metrics' scores at ``step`` as TensorBoard scalars ``eval/<metric>.<key>``; None (NaN)
        is left out.

        Only TensorBoard: the JSON-lines file holds the training curves, one kind of entry
        a line, and the scores' own history is in ``metrics.json`` (:mod:`betavae.training.tracking`).
        """
        if self._writer is None:
            return
        for name, values in results.items():
            for key, value in values.items():
                if value is not None:
                    self._writer.add_scalar(f"eval/{name}.{key}", value, step)
        self._writer.flush()

    def close(self) -> None:
        self._jsonl.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> TrainingLog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
