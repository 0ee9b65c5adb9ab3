"""Pick the compute device: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import torch

from betavae.errors import BetaVAEError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` takes the fastest device present; a named device that is absent is an error."""
    base = name.split(":")[0]
    if base not in DEVICE_CHOICES:
        raise BetaVAEError(f"unknown device {name!r}; choose one of: {', '.join(DEVICE_CHOICES)}")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if base == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if base == "cuda" and not cuda:
        raise BetaVAEError(
            "--device cuda was asked for but PyTorch sees no CUDA GPU (is a CPU build installed?)"
        )
    if base == "mps" and not mps:
        raise BetaVAEError("--device mps was asked for but this PyTorch has no MPS support")
    return torch.device(name)
