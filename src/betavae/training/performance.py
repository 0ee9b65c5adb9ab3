"""The settings that make training and encoding fast, in one place.

Each is measured by ``benchmarks/train_throughput.py`` against the textbook loop (figures
in docs/notes/performance.md). On a
2-core CPU, in order of effect (the decoder's last layer and the fused inference encoder
live with the models: :mod:`betavae.models.layers`, :mod:`betavae.models.inference`):

- **Freed memory stays in the process** (:func:`keep_freed_memory`). glibc hands blocks
  above its mmap threshold back to the kernel when they are freed, so every large
  activation of every step lands on fresh pages and page-faults on first touch: tens of
  thousands of faults a step, which on a virtual machine cost more than the
  convolutions at batch 256. Raising the threshold makes PyTorch's CPU allocations
  reuse the same memory step after step, as jemalloc or tcmalloc would.
- **Channels-last tensors** (:data:`MEMORY_FORMAT`): oneDNN's convolutions work in
  NHWC; with NCHW tensors every convolution reorders its input and output.
- **The fused Adam step** (:func:`make_optimizer`): one kernel over all parameters.
- **On CUDA, steps replayed from a CUDA graph** (:mod:`betavae.training.steps`): a GPU step of
  these small models is bound by launching kernels, which a graph replays all at once.
- **bf16 autocast**, opt-in (``--precision bf16``): convolutions and matrix products in
  bfloat16 where the hardware has it (AVX-512 BF16 or AMX on CPUs, Ampere or newer GPUs);
  weights, optimiser state and the loss stay float32.

None of these changes what is computed, only how; the precision, the memory format and
the CUDA graph change the last bits of the numbers, so all three are recorded in every
run's config.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterable

import torch

from betavae.errors import BetaVAEError, unknown_choice

PRECISIONS = ("fp32", "bf16")
MEMORY_FORMAT = torch.channels_last
# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BELOW = 1 << 30  # blocks up to 1 GiB are reused rather than returned to the kernel

_memory_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc reuse freed blocks of up to 1 GiB instead of returning them to the kernel.

    Returns whether the setting is in force (False off glibc, e.g. on macOS, where the
    system allocator already reuses memory). Idempotent; the cost is that the process
    keeps its peak memory until it exits, as it would with jemalloc or tcmalloc.
    ``BETAVAE_KEEP_FREED_MEMORY=0`` in the environment turns it off.
    """
    global _memory_kept
    if _memory_kept is None:
        _memory_kept = False
        if sys.platform.startswith("linux") and os.environ.get("BETAVAE_KEEP_FREED_MEMORY", "1") != "0":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # musl and others have no mallopt
                return False
            # Older glibc caps the mmap threshold at 32 MiB; take the largest it accepts.
            for threshold in (_KEEP_BELOW, 32 << 20):
                if mallopt(_M_MMAP_THRESHOLD, threshold) == 1:
                    _memory_kept = bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BELOW))
                    break
    return _memory_kept


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run, with a message that says what to use."""
    if precision not in PRECISIONS:
        raise unknown_choice("precision", precision, PRECISIONS)
    if precision == "bf16" and not bf16_supported(device):
        raise BetaVAEError(f"--precision bf16 needs bfloat16 arithmetic, which this {device.type} lacks "
                           f"(CPUs with AVX-512 BF16 or AMX, NVIDIA Ampere or newer); use --precision fp32")


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward pass's precision: a no-op for fp32, bf16 autocast otherwise."""
    if precision == "fp32":
        return contextlib.nullcontext()
    # A graph captured with autocast's weight cache on could replay a cast made outside it,
    # stale after the first update; PyTorch's CUDA-graph notes ask for the cache off there.
    capturing = device.type == "cuda" and torch.cuda.is_current_stream_capturing()
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=not capturing)


def use_deterministic_kernels(device: torch.device, deterministic: bool) -> None:
    """On CUDA, choose kernels that give the same numbers every time (``deterministic``) or the fastest.

    Deterministic means cuDNN's deterministic algorithms, cuBLAS with a fixed workspace
    (``CUBLAS_WORKSPACE_CONFIG``, read when cuBLAS starts, so set before the first product)
    and PyTorch's deterministic alternatives, which raise for an operation that has none:
    the same seed twice then gives the same weights on the same GPU, at a cost in speed
    (``benchmarks/deterministic_cost.py``). Without it, atomics in cuDNN's backward kernels
    make two runs of one seed drift apart. These switches are the process's, as PyTorch's
    are; each run sets them to its own config. A CPU's kernels are deterministic already
    (same machine, same threads), so nothing changes there.
    """
    if device.type != "cuda":
        return
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(deterministic)


def make_optimizer(parameters: Iterable[torch.nn.Parameter], lr: float, device: torch.device,
                   capturable: bool = False, betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Adam:
    """Adam, with its fused single-kernel step where PyTorch has one for the device.

    ``capturable`` keeps every step's arithmetic on the device, which a CUDA graph needs
    (:mod:`betavae.training.steps`).
    """
    return torch.optim.Adam(parameters, lr=lr, betas=betas,
                            fused=True if device.type in ("cpu", "cuda") else None, capturable=capturable)


EXECUTION_OPTIONS = ("fused", "capturable", "foreach")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a checkpoint's optimiser ``state`` but keep how ``optimizer`` executes.

    ``load_state_dict`` takes every group option from the checkpoint, including the
    execution options (fused kernel, CUDA-graph capturable), which belong to the machine
    the run resumes on, not to the one that saved it.
    """
    kept = [
        {key: group[key] for key in EXECUTION_OPTIONS if key in group} for group in optimizer.param_groups
    ]
    optimizer.load_state_dict(state)
    for group, options in zip(optimizer.param_groups, kept, strict=True):
        group.update(options)


def optimizer_name(optimizer: torch.optim.Optimizer) -> str:
    fused = optimizer.defaults.get("fused")
    return f"{type(optimizer).__name__}{' (fused)' if fused else ''}"


def fast_layout(x: torch.Tensor) -> torch.Tensor:
    """Image batches in the layout the models are kept in (free for one-channel images)."""
    return x.contiguous(memory_format=MEMORY_FORMAT) if x.dim() == 4 else x
