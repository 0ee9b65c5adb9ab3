"""What deterministic GPU kernels cost, and whether they deliver: the same seed trained twice.

``betavae reproduce --scale paper`` trains every run with ``--deterministic`` (cuDNN's
deterministic algorithms, cuBLAS with a fixed workspace, PyTorch's deterministic
alternatives: :func:`betavae.training.performance.use_deterministic_kernels`), so that a grid
rerun gives the same numbers. This measures the price: one run configuration (conv64 on
dSprites at batch 64 by default, the paper scale's dSprites runs) trained twice with the
same seed without the switch and twice with it, each run a ``betavae train`` process of its
own (the switches and ``CUBLAS_WORKSPACE_CONFIG`` are a process's). Side by side it
prints, per mode, the images/s of the two runs (the median of the training log's windows, as
the sweep reports it, which the CUDA graph's capture in the first window does not move), the step
time over the fast mode's, and the largest weight difference between the two runs of the
same seed: 0 when deterministic is what it says.

    python benchmarks/deterministic_cost.py [--steps 3000] [--arch conv64] [--dataset dsprites]

It needs a CUDA GPU (on a CPU the switch changes nothing: its kernels already repeat
their numbers on one machine, which ``tests/test_train.py`` checks).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from betavae.runs import RunDir
from betavae.studies.worker import typical_rate

MODES = {"fast": "--no-deterministic", "deterministic": "--deterministic"}


def train_once(out: Path, args: argparse.Namespace, flag: str) -> None:
    command = [sys.executable, "-m", "betavae.cli", "train", "--dataset", args.dataset, "--arch", args.arch,
               "--latent", "10", "--beta", "4", "--steps", str(args.steps),
               "--batch-size", str(args.batch_size),
               "--checkpoint-every", str(args.steps), "--log-every", str(args.log_every), "--seed", "0",
               "--device", args.device, "--no-progress", flag, "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, text=True)


def largest_difference(first: Path, second: Path) -> float:
    a, b = (RunDir(path).load_checkpoint()["model"] for path in (first, second))
    return max((a[key].float() - b[key].float()).abs().max().item() for key in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--log-every", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--arch", default="conv64")
    parser.add_argument("--dataset", default="dsprites")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("deterministic_cost.py needs a CUDA GPU (or --device cpu, where the switch changes nothing)")
    print(f"torch {torch.__version__}, {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
          + f"; {args.arch} on {args.dataset}, batch {args.batch_size}, {args.steps} steps, seed 0, "
          "twice per mode")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode, flag in MODES.items():
            runs = [Path(folder) / f"{mode}-{attempt}" for attempt in (1, 2)]
            for run in runs:
                train_once(run, args, flag)
            results[mode] = ([typical_rate(RunDir(run)) for run in runs], largest_difference(*runs))
    fast = statistics.mean(results["fast"][0])
    print(f"\n{'mode':<14} {'images/s (two runs)':>22} {'step time × fast':>17} {'same seed: max |Δw|':>20}")
    for mode, (speeds, difference) in results.items():
        print(f"{mode:<14} {speeds[0]:>10.0f} {speeds[1]:>10.0f} {fast / statistics.mean(speeds):>17.2f} "
              f"{difference:>20.2e}")
    print("deterministic is what it says when its max |Δw| is 0")


if __name__ == "__main__":
    main()
