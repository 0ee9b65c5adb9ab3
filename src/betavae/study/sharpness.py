"""How sharp reconstructions are: the share of an image's spectral power at high frequencies.

The paper shows, and the reproducibility report notes, that reconstructions get blurrier as
β grows. To judge that claim rather than look at it, blur is measured: a blurred image has
lost its high spatial frequencies, so the share of its power (mean removed) above a cut-off
frequency falls. The statistic is computed on held-out reconstructions (the decoded
posterior mean, no sampling noise) and on the inputs themselves, whose value is what a
perfect reconstruction would reach.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from betavae.runs import RunDir, load_model

CUTOFF = 0.25  # cycles per pixel; Nyquist is 0.5


def high_frequency_share(images: np.ndarray, cutoff: float = CUTOFF) -> np.ndarray:
    """Per image of ``(n, C, H, W)`` floats: the share of its power above ``cutoff`` cycles/pixel.

    The power spectrum of each channel with its mean removed, summed over channels; an
    image with no power at all (a constant image) has share 0.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (n, C, H, W), got {images.shape}")
    centred = images - images.mean(axis=(2, 3), keepdims=True)
    power = (np.abs(np.fft.fft2(centred)) ** 2).sum(axis=1)  # (n, H, W)
    fy = np.fft.fftfreq(images.shape[2])[:, None]
    fx = np.fft.fftfreq(images.shape[3])[None, :]
    high = np.sqrt(fx**2 + fy**2) > cutoff
    total = power.sum(axis=(1, 2))
    share = np.divide(power[:, high].sum(axis=1), total, out=np.zeros_like(total), where=total > 0)
    return share


def reconstruction_sharpness(run_dir: str | Path, count: int = 256, seed: int = 0) -> dict[str, float]:
    """Mean high-frequency share of ``count`` held-out images and of their reconstructions.

    The images are the same for every run of a dataset and split (drawn by ``seed``), so
    runs compare image for image. ``ratio`` is reconstruction over input: 1 for a perfect
    reconstruction, lower the blurrier.
    """
    run = RunDir(run_dir)
    config = run.read_config()
    split = config.load_dataset().test
    count = min(count, len(split))
    positions = np.sort(np.random.default_rng(seed).choice(len(split), size=count, replace=False))
    model = load_model(run)
    with torch.no_grad():
        images = split.images(torch.from_numpy(positions)).float() / 255
        mu, _ = model.encode(images)
        reconstructions = model.decode(mu)
    inputs = float(high_frequency_share(images.numpy()).mean())
    recon = float(high_frequency_share(reconstructions.numpy()).mean())
    return {"input": inputs, "reconstruction": recon, "ratio": recon / inputs if inputs > 0 else float("nan")}
