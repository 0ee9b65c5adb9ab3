"""Where a study's wall time goes: training steps, per-run fixed costs, measurements, the report.

A study is many small runs, and on two cores its verdicts are limited by how many trained models fit
in its time: every second not spent in a training step is a model not trained. This runs
``betavae reproduce --scale SCALE`` into a fresh folder and reads back where the time went:

- the study's own timings (each sweep, the measurements, the report: the report's "Time taken");
- every run's training-step seconds, from its ``log.jsonl`` (images/s over each logged window),
  and the images it trained;
- the **share of core time in training steps**: training-step seconds over (wall × workers);
- **training images per wall-second**: what the issue's 1.6× is measured in;
- the **fixed cost per run**: the sweeps' core time (wall × workers) less their training steps,
  per run (process start, data, held-out loss, figure, metrics, and a core idle at a sweep's tail);
- where a run's worker records it (``timings`` in the sweep's state), that fixed cost by kind.

With ``--against REV`` the same study is run, in the same run of this script and one after the
other, by a checkout of REV (a ``git worktree`` of it, imported by this interpreter), and the
ratios of this checkout's figures to REV's are printed beside the goals: ≥ 85 % of core time in
training steps, ≥ 1.6× the training images per wall-second, ≤ 3 s fixed cost per run, and the
measurements within 2 minutes at ``small``.

    python benchmarks/study_throughput.py [--scale smoke] [--against REV] [--workers K] [--data-dir D]

``small`` takes about half an hour per checkout on two cores; ``smoke`` a minute or two (its runs are
so short that fixed costs are most of it, which is what this measures).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from betavae.runs import RunDir
from betavae.studies.state import STATE_FILE, SweepState
from betavae.studies.worker import step_seconds

REPOSITORY = Path(__file__).resolve().parents[1]
TRAINING_SHARE_GOAL = 0.85
IMAGES_RATE_GOAL = 1.6
FIXED_COST_GOAL_S = 3.0
MEASUREMENTS_GOAL_S = 120.0  # at small
# The parts of the report's "Time taken" that are not sweeps.
NOT_SWEEPS = ("measurements", "in all (this invocation)", "report")


@dataclass
class StudyTime:
    """What one checkout's study spent its time on."""

    label: str
    wall: float
    workers: int
    parts: dict[str, float]
    runs: int = 0
    images: int = 0
    step_seconds: float = 0.0
    by_kind: dict[str, list[float]] = field(default_factory=dict)

    @property
    def sweeps(self) -> float:
        return sum(seconds for name, seconds in self.parts.items() if name not in NOT_SWEEPS)

    @property
    def training_share(self) -> float:
        return self.step_seconds / (self.wall * self.workers)

    @property
    def images_per_second(self) -> float:
        return self.images / self.wall

    @property
    def fixed_per_run(self) -> float:
        return (self.sweeps * self.workers - self.step_seconds) / max(self.runs, 1)


def run_study(source: Path, label: str, scale: str, workers: int, data_dir: str | None) -> StudyTime:
    """``betavae reproduce`` by the package under ``source`` (its ``src`` first on the path)."""
    out = Path(tempfile.mkdtemp(prefix=f"study-{label}-")) / "reproduce"
    args = ["reproduce", "--scale", scale, "--out", str(out), "--workers", str(workers), "--no-progress"]
    if data_dir:
        args += ["--data-dir", data_dir]
    else:
        args += ["--no-download"]
    environment = {**os.environ, "PYTHONPATH": str(source / "src")}
    command = [sys.executable, "-c", "import sys; from betavae.cli import main; main(sys.argv[1:])", *args]
    print(f"[{label}] betavae {' '.join(args)}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, env=environment, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    study = StudyTime(label, wall, workers, read_time_taken(out / "report.md"))
    for log in out.rglob("log.jsonl"):
        run = RunDir(log.parent)
        study.runs += 1
        study.images += run.checkpoint_step() * run.read_config().batch_size
        study.step_seconds += step_seconds(run)
    for state_file in out.rglob(STATE_FILE):
        with SweepState(state_file.parent) as state:
            for row in state.rows():
                for kind, seconds in ((row["result"] or {}).get("timings") or {}).items():
                    if isinstance(seconds, (int, float)):
                        study.by_kind.setdefault(kind, []).append(seconds)
    return study


def read_time_taken(report: Path) -> dict[str, float]:
    """The report's "Time taken" table as seconds per part."""
    text = report.read_text().split("## Time taken", 1)[1]
    parts = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] not in ("Part", "---") and not set(cells[0]) <= {"-"}:
            parts[cells[0]] = parse_seconds(cells[1])
    return parts


def parse_seconds(text: str) -> float:
    """``12.3 s``, ``4 min 05 s``, ``2 h 03 min`` (the report's cells) as seconds."""
    units = {"h": 3600.0, "min": 60.0, "s": 1.0}
    return sum(float(number) * units[unit] for number, unit in re.findall(r"([\d.]+)\s*(h|min|s)\b", text))


def checkout(revision: str) -> Path:
    """A ``git worktree`` of ``revision`` in a temporary folder (removed by :func:`remove_checkout`)."""
    folder = Path(tempfile.mkdtemp(prefix="study-against-")) / "checkout"
    subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", str(folder), revision],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return folder


def remove_checkout(folder: Path) -> None:
    subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(folder)], check=False)


def print_study(study: StudyTime) -> None:
    print(f"\n{study.label}: {study.wall:.0f} s wall, {study.workers} workers, {study.runs} runs, "
          f"{study.images:,} training images")
    for name, seconds in study.parts.items():
        print(f"  {name:<44} {seconds:8.1f} s")
    print(f"  {'training steps (core-seconds)':<44} {study.step_seconds:8.1f} s")
    print(f"  {'share of core time in training steps':<44} {study.training_share:8.1%}")
    print(f"  {'training images per wall-second':<44} {study.images_per_second:8.1f}")
    print(f"  {'fixed cost per run (core-seconds)':<44} {study.fixed_per_run:8.1f} s")
    for kind, values in sorted(study.by_kind.items()):
        mean, median = statistics.mean(values), statistics.median(values)
        print(f"    per run, {kind:<34} {mean:8.2f} s (median {median:.2f}, {len(values)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="smoke")
    parser.add_argument("--against", metavar="REV", help="also run the study with a checkout of REV")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data-dir", default=os.environ.get("BETAVAE_MNIST_DIR"),
                        help="MNIST's files  [default: $BETAVAE_MNIST_DIR; else the MNIST parts are skipped]")
    args = parser.parse_args()
    studies = []
    against = checkout(args.against) if args.against else None
    try:
        if against is not None:
            studies.append(run_study(against, args.against, args.scale, args.workers, args.data_dir))
        studies.append(run_study(REPOSITORY, "this checkout", args.scale, args.workers, args.data_dir))
    finally:
        if against is not None:
            remove_checkout(against)
    for study in studies:
        print_study(study)
    new = studies[-1]
    print(f"\ngoals at {args.scale}:")
    measurements = new.parts.get("measurements", 0.0)
    for name, value, goal in (
        ("share of core time in training steps", f"{new.training_share:6.1%} ",
         f"≥ {TRAINING_SHARE_GOAL:.0%}"),
        ("fixed cost per run", f"{new.fixed_per_run:6.1f} s", f"≤ {FIXED_COST_GOAL_S:.0f} s"),
        ("measurements", f"{measurements:6.1f} s", f"≤ {MEASUREMENTS_GOAL_S:.0f} s at small"),
    ):
        print(f"  {name:<38}{value} (goal {goal})")
    if len(studies) == 2:
        old = studies[0]
        for name, ratio, goal in (
            ("training images per wall-second", new.images_per_second / old.images_per_second,
             f" (goal ≥ {IMAGES_RATE_GOAL}×)"),
            ("wall time", new.wall / old.wall, ""),
            ("fixed cost per run", new.fixed_per_run / max(old.fixed_per_run, 1e-9), ""),
        ):
            print(f"  {name:<38}{ratio:6.2f}× {old.label}'s{goal}")


if __name__ == "__main__":
    main()
