"""The 64×64 architectures of the large disentanglement studies.

``conv64`` has the widths of Locatello et al. (2019, "Challenging common assumptions…",
Table 1): four stride-2 convolutions with 32, 32, 64, 64 channels, FC 256, FC 2M; the
decoder mirrors it with transposed convolutions. Its kernels are 4×4 throughout.
``conv64_dlib`` is that study's encoder as disentanglement_lib's ``conv_encoder`` builds it,
2×2 kernels in the last two convolutions (the decoder is the same as conv64's), so scores
compare with its published models. ``burgess64`` is Burgess et al. (2018, "Understanding
disentangling in β-VAE", Appendix A.1): four 4×4 stride-2 convolutions of 32 channels,
FC 256, FC 256, FC 2M, mirrored — the one most PyTorch toolkits ship, so our numbers
compare with theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from betavae.models.layers import ImageTransposedConv

IMAGE_SIZE = 64
_FEATURE_SIZE = IMAGE_SIZE // 16  # four stride-2 convolutions


def _build(
    in_channels: int,
    latent_dim: int,
    channels: Sequence[int],
    hidden: Sequence[int],
    kernels: Sequence[int] = (4, 4, 4, 4),
) -> tuple[nn.Module, nn.Module]:
    conv: list[nn.Module] = []
    previous = in_channels
    for width, kernel in zip(channels, kernels, strict=True):
        # halves an even size, as TensorFlow's 'same' padding does at stride 2
        padding = (kernel - 2) // 2
        conv += [nn.Conv2d(previous, width, kernel, stride=2, padding=padding), nn.ReLU(inplace=True)]
        previous = width
    flat = channels[-1] * _FEATURE_SIZE * _FEATURE_SIZE

    dense: list[nn.Module] = []
    previous = flat
    for width in hidden:
        dense += [nn.Linear(previous, width), nn.ReLU(inplace=True)]
        previous = width
    encoder = nn.Sequential(*conv, nn.Flatten(), *dense, nn.Linear(previous, 2 * latent_dim))

    decoder_dense: list[nn.Module] = []
    previous = latent_dim
    for width in [*reversed(hidden), flat]:
        decoder_dense += [nn.Linear(previous, width), nn.ReLU(inplace=True)]
        previous = width
    deconv: list[nn.Module] = []
    widths = [*reversed(channels), in_channels]
    for index, (wide, narrow) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        last = index == len(widths) - 2
        deconv.append(
            (ImageTransposedConv if last else nn.ConvTranspose2d)(wide, narrow, 4, stride=2, padding=1)
        )
        if not last:
            deconv.append(nn.ReLU(inplace=True))
    decoder = nn.Sequential(
        *decoder_dense, nn.Unflatten(1, (channels[-1], _FEATURE_SIZE, _FEATURE_SIZE)), *deconv
    )
    return encoder, decoder


def build_conv64(in_channels: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """Locatello et al.'s architecture: channels 32, 32, 64, 64; FC 256."""
    return _build(in_channels, latent_dim, channels=(32, 32, 64, 64), hidden=(256,))


def build_conv64_dlib(in_channels: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """disentanglement_lib's ``conv_encoder`` and ``deconv_decoder``: conv64 with 2×2 kernels last."""
    return _build(in_channels, latent_dim, channels=(32, 32, 64, 64), hidden=(256,), kernels=(4, 4, 2, 2))


def build_burgess64(in_channels: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """Burgess et al.'s architecture: channels 32 ×4; FC 256, FC 256."""
    return _build(in_channels, latent_dim, channels=(32, 32, 32, 32), hidden=(256, 256))
