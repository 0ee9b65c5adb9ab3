"""The original β-VAE paper's fully connected network for 2D shapes (dSprites).

Higgins et al. 2017, Appendix A, Table 1 (the 2D shapes row): encoder 4096 → FC 1200 → FC 1200
with ReLU → 2M (μ, log σ²); decoder M → FC 1200 → FC 1200 → FC 1200 with tanh → 4096, a
Bernoulli output. The paper's disentanglement-score table on dSprites (its Figure 6) was
measured with this network, so its numbers compare with runs of ``fc``, not of the
convolutional nets.

disentanglement_lib builds the same layers as ``fc_encoder`` and ``fc_decoder``
(google-research/disentanglement_lib, ``disentanglement_lib/methods/shared/architectures.py``:
Flatten, Dense 1200 relu "e1", Dense 1200 relu "e2", Dense M means, Dense M log_var; Dense
1200 tanh ×3, Dense 64·64·C, reshape). Two differences of form, not of function: its two
output layers of M units each are our one layer of 2M (the same weights, stacked), and it
flattens channels-last images (H, W, C) where we flatten (C, H, W), a fixed permutation of
the first layer's inputs and the last layer's outputs, the same for one channel.
"""

from __future__ import annotations

from torch import nn

IMAGE_SIZE = 64
HIDDEN = 1200
ENCODER_LAYERS = 2  # FC 1200 ×2, ReLU
DECODER_LAYERS = 3  # FC 1200 ×3, tanh


def build(in_channels: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """(encoder: images → (B, 2M) [μ, log σ²], decoder: (B, M) → logits (B, C, 64, 64))."""
    pixels = in_channels * IMAGE_SIZE * IMAGE_SIZE
    encoder: list[nn.Module] = [nn.Flatten()]
    previous = pixels
    for _ in range(ENCODER_LAYERS):
        encoder += [nn.Linear(previous, HIDDEN), nn.ReLU(inplace=True)]
        previous = HIDDEN
    encoder.append(nn.Linear(previous, 2 * latent_dim))

    decoder: list[nn.Module] = []
    previous = latent_dim
    for _ in range(DECODER_LAYERS):
        decoder += [nn.Linear(previous, HIDDEN), nn.Tanh()]
        previous = HIDDEN
    # logits: BetaVAE.decode applies the sigmoid, the loss takes them as they are (Bernoulli output)
    decoder += [nn.Linear(previous, pixels), nn.Unflatten(1, (in_channels, IMAGE_SIZE, IMAGE_SIZE))]
    return nn.Sequential(*encoder), nn.Sequential(*decoder)
