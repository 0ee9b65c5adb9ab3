"""Training throughput of each architecture, against this machine's matrix-product peak.

For every architecture and batch size this prints images/s of a full training step
(forward, backward, Adam), the step's floating-point operations (counted by PyTorch's
FlopCounterMode: convolutions and matrix products, forward and backward), the achieved
GFLOP/s, and its ratio to a large fp32 matrix product timed in the same run. Ratios
measured side by side mean something on a noisy shared machine; raw times do not.

    python benchmarks/train_throughput.py [--seconds 3] [--batch-sizes 64,256]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from betavae.models import ARCHITECTURES, build
from betavae.objectives import BetaVAELoss


def matmul_peak_gflops(size: int = 2048, seconds: float = 2.0) -> float:
    """Best sustained fp32 GFLOP/s of an ``size``×``size`` matrix product on this device."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b, out=out)
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def make_step(arch: str, batch_size: int, latent_dim: int = 10):
    size = ARCHITECTURES[arch].image_size
    torch.manual_seed(0)
    model = build(arch, latent_dim, (1, size, size))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = BetaVAELoss(4.0, "bernoulli")
    x = (torch.rand(batch_size, 1, size, size) > 0.7).float()

    def step() -> None:
        terms = loss_fn(model(x), x)
        optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        optimizer.step()

    return step


def step_flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def steps_per_second(step, seconds: float) -> float:
    for _ in range(3):
        step()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per configuration")
    parser.add_argument("--batch-sizes", default="64,256")
    parser.add_argument("--archs", default=",".join(ARCHITECTURES))
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peak_before = matmul_peak_gflops()
    rows = []
    for arch in args.archs.split(","):
        for batch_size in map(int, args.batch_sizes.split(",")):
            step = make_step(arch, batch_size)
            flops = step_flops(step)
            rate = steps_per_second(step, args.seconds)
            rows.append((arch, batch_size, rate * batch_size, flops / batch_size, flops * rate / 1e9))
    peak_after = matmul_peak_gflops()
    # The larger of the two peaks: a ratio against a peak slowed by a noisy neighbour would flatter us.
    peak = max(peak_before, peak_after)
    print(f"fp32 matrix-product peak (2048², before/after the runs): {peak_before:.1f} / {peak_after:.1f} GFLOP/s\n")
    print(f"{'arch':<10} {'batch':>5} {'images/s':>9} {'MFLOP/img':>10} {'GFLOP/s':>8} {'of peak':>8}")
    for arch, batch_size, images_per_s, flops_per_image, achieved in rows:
        print(f"{arch:<10} {batch_size:>5} {images_per_s:>9.0f} {flops_per_image / 1e6:>10.1f} "
              f"{achieved:>8.1f} {achieved / peak:>8.2f}")


if __name__ == "__main__":
    main()
