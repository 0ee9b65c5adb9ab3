"""Packed training (:mod:`betavae.training.packed`) against the same models trained unpacked, on the study's
grid row.

The row: the ``small`` scale's heart-set grid (``betavae.study.design.SCALES["small"]``,
trained as ``betavae.study.runner._training`` sets it): conv28 on ``shapes_heart``, batch 64,
squared-error reconstruction, β_norm 0.002, 0.02 and 0.2, at latent size 5 and at 50. For
each latent size it times a training step (batch, forward, loss, backward, Adam; no
checkpoints or logs, the same in both) of the K models of the row:

- packed in one process (one vectorised step for all K), with 1 and with 2 threads;
- unpacked, one after another in one process, with 1 and with 2 threads, each step as
  ``train()`` takes it (:func:`betavae.training.setup.assemble`: on CUDA replayed from a CUDA graph);
- unpacked in two one-thread processes at once, as the local backend runs a sweep
  (``--workers 2``): each process trains one model of the row, and their rates add up.

It prints steps/s of the row (one step of every model) and images/s, and the packed rate's
ratio to each unpacked one, all measured in the same run; ``--profile`` adds where a
packed and an unpacked step spend their time (torch.profiler, top operators by own time).

    python benchmarks/packed_training.py [--steps 200] [--latents 5,50] [--device cuda] [--profile]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from betavae.config import TrainConfig
from betavae.training import performance
from betavae.training.batches import BatchStream
from betavae.training.packed import Pack
from betavae.training.setup import assemble, prepare

BETA_NORMS = (0.002, 0.02, 0.2)
WARMUP_STEPS = 5


def row_configs(latent_dim: int, device: str) -> list[TrainConfig]:
    """The grid row of the small scale's heart set at ``latent_dim``: one config per β_norm."""
    return [TrainConfig(dataset="shapes_heart", arch="conv28", latent_dim=latent_dim, beta_norm=beta_norm,
                        recon="gaussian", batch_size=64, steps=600, test_size=2000, seed=seed, device=device)
            for seed, beta_norm in enumerate(BETA_NORMS)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def packed_seconds(configs: list[TrainConfig], steps: int, profile: bool = False) -> float:
    """Seconds per packed step of all of ``configs``."""
    setups = [prepare(config) for config in configs]
    device = setups[0].device
    optimizers = [performance.make_optimizer(s.model.parameters(), s.derived.lr, device) for s in setups]
    betas = [s.objective.beta for s in setups]
    lr = setups[0].derived.lr
    pack = Pack([s.model for s in setups], optimizers, setups[0].objective, betas, lr, device)
    noises = [torch.Generator(device=device).manual_seed(c.seed) for c in configs]
    streams = [BatchStream(setups[0].dataset.train, c.batch_size, c.seed, 0, device) for c in configs]
    step_count = torch.tensor(0, device=device)
    for stream in streams:
        stream.__enter__()
    try:
        def step() -> None:
            x = torch.stack([stream.next() for stream in streams])
            eps = torch.stack([torch.randn((c.batch_size, c.latent_dim), generator=n, device=device)
                               for c, n in zip(configs, noises, strict=True)])
            pack.step(x, eps, step_count)

        return _timed(step, steps, device, "packed" if profile else None)
    finally:
        for stream in streams:
            stream.__exit__(None, None, None)


def unpacked_seconds(configs: list[TrainConfig], steps: int, profile: bool = False) -> float:
    """Seconds per step of every one of ``configs``, trained one after another."""
    total = 0.0
    for index, config in enumerate(configs):
        parts = assemble(config)  # as train() steps it: on CUDA, replayed from a graph
        device = parts.device
        with BatchStream(parts.dataset.train, config.batch_size, config.seed, 0, device) as stream:
            def step(take_step=parts.take_step, stream=stream) -> None:
                take_step(stream.next())

            total += _timed(step, steps, device, "unpacked" if profile and index == 0 else None)
    return total


def _timed(step, steps: int, device: torch.device, profile: str | None) -> float:
    for _ in range(WARMUP_STEPS):
        step()
    _sync(device)
    began = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = (time.perf_counter() - began) / steps
    if profile is not None:
        _profile(step, device, profile)
    return seconds


def _profile(step, device: torch.device, name: str) -> None:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as recorded:
        for _ in range(10):
            step()
        _sync(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"\n-- {name} step, 10 steps, {torch.get_num_threads()} threads --")
    print(recorded.key_averages().table(sort_by=sort, row_limit=12, max_name_column_width=40))


def two_processes_seconds(latent_dim: int, steps: int, device: str) -> float:
    """Seconds per row step when two one-thread processes train the row's models at once.

    Each process trains one model (the first two of the row) for ``steps`` steps, timed
    while both run; the row of K models then takes K / (the two rates added) seconds a step.
    """
    command = [sys.executable, __file__, "--worker", str(latent_dim), "--steps", str(steps),
               "--device", device]
    workers = [subprocess.Popen([*command, "--worker-index", str(index)], stdout=subprocess.PIPE, text=True)
               for index in range(2)]
    rates = [1.0 / json.loads(worker.communicate()[0].splitlines()[-1])["seconds"] for worker in workers]
    return len(BETA_NORMS) / sum(rates)


def _worker(latent_dim: int, index: int, steps: int, device: str) -> None:
    torch.set_num_threads(1)
    config = row_configs(latent_dim, device)[index]
    print(json.dumps({"seconds": unpacked_seconds([config], steps)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps of each model in each setting")
    parser.add_argument("--latents", default="5,50", help="latent sizes of the grid rows")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", action="store_true", help="where a packed and an unpacked step go")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        _worker(args.worker, args.worker_index, args.steps, args.device)
        return
    performance.keep_freed_memory()
    thread_counts = (1, 2) if args.device == "cpu" else (torch.get_num_threads(),)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads available, "
          f"{args.steps} steps; a row = {len(BETA_NORMS)} models (β_norm {', '.join(map(str, BETA_NORMS))}), "
          f"batch 64, shapes_heart, conv28, gaussian")
    for latent_dim in (int(size) for size in args.latents.split(",")):
        configs = row_configs(latent_dim, args.device)
        images = len(configs) * configs[0].batch_size
        rows: dict[str, float] = {}
        for threads in thread_counts:
            torch.set_num_threads(threads)
            rows[f"packed, {threads} thread(s)"] = packed_seconds(configs, args.steps)
            rows[f"one after another, {threads} thread(s)"] = unpacked_seconds(configs, args.steps)
        rows["two 1-thread processes at once"] = two_processes_seconds(latent_dim, args.steps, args.device)
        print(f"\nlatent {latent_dim}:")
        best_packed = min(seconds for name, seconds in rows.items() if name.startswith("packed"))
        for name, seconds in rows.items():
            print(f"  {name:38s} {1 / seconds:7.2f} row steps/s {images / seconds:8.0f} images/s"
                  f"   packed (best) is {seconds / best_packed:5.2f}x this")
        if args.profile:
            torch.set_num_threads(thread_counts[-1])
            packed_seconds(configs, 10, profile=True)
            unpacked_seconds(configs[:1], 10, profile=True)


if __name__ == "__main__":
    main()
