"""FusedEncoder: the encoder's codes, each layer fused with its ReLU where oneDNN can."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from betavae.metrics.representation import model_representation
from betavae.models import build
from betavae.models.inference import FusedEncoder

CHANNELS_LAST = torch.channels_last


@pytest.mark.parametrize(
    "arch,size", [("conv28", 28), ("conv64", 64), ("conv64_dlib", 64), ("burgess64", 64), ("fc", 64)]
)
def test_fused_encoder_gives_the_eager_codes(arch, size):
    torch.manual_seed(0)
    model = build(arch, 8, (1, size, size)).eval().to(memory_format=CHANNELS_LAST)
    fused = FusedEncoder(model.encoder, model.image_shape)
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this PyTorch has no oneDNN: the eager encoder runs (tested below)")
    relus = sum(isinstance(layer, nn.ReLU) for layer in model.encoder)
    assert fused.fused_layers == relus  # every ReLU in these encoders follows a conv or linear layer
    x = torch.rand(5, 1, size, size).contiguous(memory_format=CHANNELS_LAST)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), model.encoder(x), rtol=1e-4, atol=1e-5)


def test_layers_it_cannot_fuse_run_eagerly_in_their_place():
    torch.manual_seed(0)
    encoder = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect"),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 6),
    ).eval()
    fused = FusedEncoder(encoder, (1, 6, 6))
    # not the reflect-padded one
    assert fused.fused_layers == (1 if torch.backends.mkldnn.is_available() else 0)
    x = torch.rand(3, 1, 6, 6).contiguous(memory_format=CHANNELS_LAST)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), encoder(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layout", [CHANNELS_LAST, torch.contiguous_format])
def test_pooling_and_flatten_rewrites_give_the_eager_layers_results(layout):
    """2×2 max-pooling as two maxima and Flatten + Linear over the unreordered map: same codes.

    The odd 7×7 map checks that pooling drops the last row and column as nn.MaxPool2d does;
    a NaN must come through the pooling as it does through the eager layer.
    """
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this PyTorch has no oneDNN: the eager encoder runs")
    torch.manual_seed(0)
    encoder = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 7 * 7, 16),
        nn.ReLU(),
        nn.Linear(16, 4),
    ).eval()
    fused = FusedEncoder(encoder, (1, 15, 15))
    assert fused.fused_layers == 2
    x = torch.rand(6, 1, 15, 15).contiguous(memory_format=layout)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), encoder(x), rtol=1e-5, atol=1e-6)


def test_pooling_passes_nan_on_as_the_layer_does():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(7 * 7, 3)).eval()
    x = torch.rand(2, 1, 14, 14).contiguous(memory_format=CHANNELS_LAST)
    x[0, 0, 5, 5] = float("nan")
    fused = FusedEncoder(encoder, (1, 14, 14))
    assert not fused.eager or not torch.backends.mkldnn.is_available()
    with torch.inference_mode():
        codes = fused(x)
        torch.testing.assert_close(codes, encoder(x), rtol=1e-5, atol=1e-6, equal_nan=True)
    assert codes[0].isnan().all() and not codes[1].isnan().any()


def test_a_model_with_non_finite_weights_is_encoded_eagerly_so_its_codes_show_it():
    """oneDNN's fused ReLU turns NaN into 0, which would hide a diverged model behind finite codes;
    the probe batch's comparison with the eager layers catches it (NaN equals nothing)."""
    torch.manual_seed(0)
    encoder = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    ).eval()
    with torch.no_grad():
        encoder[0].weight[0, 0, 1, 1] = float("nan")
    fused = FusedEncoder(encoder, (1, 6, 6))
    assert fused.eager and fused.fused_layers == 0
    with torch.inference_mode():
        assert fused(torch.rand(2, 1, 6, 6)).isnan().all()


@pytest.mark.parametrize(
    "pool",
    [nn.MaxPool2d(3), nn.MaxPool2d(2, stride=1), nn.MaxPool2d(2, ceil_mode=True), nn.MaxPool2d(2, padding=1)],
    ids=["3x3", "stride 1", "ceil", "padded"],
)
def test_other_poolings_run_as_the_layer(pool):
    torch.manual_seed(0)
    features = 4 * pool(torch.zeros(1, 1, 9, 9)).numel()
    encoder = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), pool, nn.Flatten(), nn.Linear(features, 3)
    ).eval()
    fused = FusedEncoder(encoder, (1, 9, 9))
    assert fused.fused_layers == (1 if torch.backends.mkldnn.is_available() else 0)  # not refused as a whole
    assert fused.eager == (not torch.backends.mkldnn.is_available())
    x = torch.rand(2, 1, 9, 9).contiguous(memory_format=CHANNELS_LAST)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), encoder(x), rtol=1e-5, atol=1e-6)


def test_an_encoder_that_is_not_a_sequence_runs_eagerly():
    class Custom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 2)

        def forward(self, x):
            return self.linear(x.flatten(1))

    encoder = Custom()
    fused = FusedEncoder(encoder, (1, 2, 2))
    assert fused.fused_layers == 0
    x = torch.rand(3, 1, 2, 2)
    assert torch.equal(fused(x), encoder(x))


def test_model_representation_codes_are_mu_and_ignore_later_training():
    """The representation snapshots the weights: training the model afterwards leaves its codes alone."""
    torch.manual_seed(0)
    model = build("conv28", 6, (1, 28, 28))
    images = np.random.default_rng(0).integers(0, 256, (700, 1, 28, 28), dtype=np.uint8)  # two batches of 512
    represent = model_representation(model)
    codes = represent(images)
    with torch.no_grad():
        mu, _ = model.eval().encode(torch.from_numpy(images).float() / 255)
    np.testing.assert_allclose(codes, mu.numpy(), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    np.testing.assert_array_equal(represent(images), codes)
