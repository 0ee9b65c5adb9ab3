"""The reproducibility report's 28×28 architecture.

Two convolution + max-pool stages take 28×28 to 7×7; the decoder mirrors them with
nearest-neighbour interpolation (the inverse of max-pooling) followed by transposed
convolutions, so the two halves have the same shape at every stage.
"""

from __future__ import annotations

from torch import nn

from betavae.models.layers import ImageTransposedConv

IMAGE_SIZE = 28
_CHANNELS = (32, 64)
_HIDDEN = 256
_FEATURE_SIZE = IMAGE_SIZE // 4  # two 2× max-pools


def build(in_channels: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """(encoder: images → (B, 2M) [μ, log σ²], decoder: (B, M) → logits (B, C, 28, 28))."""
    c1, c2 = _CHANNELS
    flat = c2 * _FEATURE_SIZE * _FEATURE_SIZE
    encoder = nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, _HIDDEN), nn.ReLU(inplace=True),
        nn.Linear(_HIDDEN, 2 * latent_dim),
    )
    decoder = nn.Sequential(
        nn.Linear(latent_dim, _HIDDEN), nn.ReLU(inplace=True),
        nn.Linear(_HIDDEN, flat), nn.ReLU(inplace=True),
        nn.Unflatten(1, (c2, _FEATURE_SIZE, _FEATURE_SIZE)),
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.ConvTranspose2d(c2, c1, 3, padding=1), nn.ReLU(inplace=True),
        nn.Upsample(scale_factor=2, mode="nearest"),
        ImageTransposedConv(c1, in_channels, 3, padding=1),
    )
    return encoder, decoder
