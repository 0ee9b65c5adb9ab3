"""ImageTransposedConv: the same layer as nn.ConvTranspose2d, computed another way on the CPU."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from betavae.models import build
from betavae.models.layers import ImageTransposedConv, _TapProductTransposedConv, transposed_conv_by_taps


def _pair(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int,
    padding: int,
    output_padding: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[nn.ConvTranspose2d, ImageTransposedConv]:
    torch.manual_seed(0)
    reference = nn.ConvTranspose2d(in_channels, out_channels, kernel, stride, padding, output_padding).to(
        dtype
    )
    ours = ImageTransposedConv(in_channels, out_channels, kernel, stride, padding, output_padding).to(dtype)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


@settings(max_examples=40, deadline=None)
@given(
    in_channels=st.integers(1, 5),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    output_padding=st.integers(0, 2),
    size=st.integers(1, 7),
    channels_last=st.booleans(),
    bias=st.booleans(),
)
def test_tap_product_equals_conv_transpose2d(
    in_channels, kernel, stride, padding, output_padding, size, channels_last, bias
):
    output_padding = min(output_padding, stride - 1)  # PyTorch's own rule
    out_size = (size - 1) * stride - 2 * padding + kernel + output_padding
    if out_size < 1:
        return
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, in_channels, size, size, generator=generator, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(in_channels, 1, kernel, kernel, generator=generator, dtype=torch.float64)
    b = torch.randn(1, generator=generator, dtype=torch.float64) if bias else None
    expected = nn.functional.conv_transpose2d(x, weight, b, stride, padding, output_padding)
    got = transposed_conv_by_taps(
        x, weight, b, (stride, stride), (padding, padding), (output_padding, output_padding)
    )
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(
    "geometry",
    [(32, 1, 4, 2, 1), (32, 1, 3, 1, 1), (8, 1, 4, 2, 1, 1)],
    ids=["conv64-last", "conv28-last", "output-padding"],
)
def test_forward_and_gradients_match_conv_transpose2d(geometry):
    reference, ours = _pair(*geometry)
    x = torch.randn(4, geometry[0], 9, 9).contiguous(memory_format=torch.channels_last).requires_grad_()
    expected, got = reference(x), ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, [x, reference.weight, reference.bias], grad)
    got_grads = torch.autograd.grad(got, [x, ours.weight, ours.bias], grad)
    for name, want, have in zip(["input", "weight", "bias"], expected_grads, got_grads, strict=True):
        torch.testing.assert_close(have, want, rtol=1e-5, atol=1e-5, msg=f"gradient of {name} differs")


@pytest.mark.slow
def test_gradients_pass_gradcheck():
    _, ours = _pair(3, 1, 4, 2, 1, dtype=torch.float64)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    geometry = ((2, 2), (1, 1), (0, 0))
    assert torch.autograd.gradcheck(
        lambda *tensors: _TapProductTransposedConv.apply(*tensors, *geometry), (x, ours.weight, ours.bias)
    )


def test_without_bias_and_frozen_weights_only_the_input_gets_a_gradient():
    layer = ImageTransposedConv(4, 1, 4, 2, 1, bias=False).requires_grad_(False)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight.grad is None


def test_falls_back_where_the_matrix_product_does_not_pay():
    """Three output channels: nn.ConvTranspose2d's own kernel runs, so the numbers are its own."""
    reference, ours = _pair(8, 3, 4, 2, 1)
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(ours(x), reference(x))


def test_under_bf16_autocast_the_image_logits_stay_float32():
    """The loss sums the logits over every pixel: they are computed and returned in float32."""
    reference, ours = _pair(32, 1, 4, 2, 1)
    activations = torch.randn(4, 32, 8, 8).bfloat16().contiguous(memory_format=torch.channels_last)
    x = activations.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ours(x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, reference(activations.detach().float()), rtol=1e-5, atol=1e-5)
    got.sum().backward()
    assert x.grad.dtype == torch.bfloat16 and ours.weight.grad.dtype == torch.float32


def test_models_keep_the_checkpoint_layout_of_conv_transpose2d():
    """A checkpoint written before the layer existed loads: same parameter names and shapes."""
    for arch, size in [("conv64", 64), ("burgess64", 64), ("conv28", 28)]:
        model = build(arch, 6, (1, size, size))
        last = [module for module in model.decoder.modules() if isinstance(module, nn.ConvTranspose2d)][-1]
        assert isinstance(last, ImageTransposedConv)
        plain = nn.ConvTranspose2d(
            last.in_channels, last.out_channels, last.kernel_size, last.stride, last.padding
        )
        assert {k: v.shape for k, v in last.state_dict().items()} == {
            k: v.shape for k, v in plain.state_dict().items()
        }


def test_export_records_the_stock_operator():
    """ONNX export traces the model: it must see one transposed convolution, not our matrix product."""
    _, ours = _pair(8, 1, 4, 2, 1)
    graph = str(torch.export.export(ours, (torch.randn(2, 8, 6, 6),)).graph)
    assert "conv_transpose2d" in graph and "aten.mm" not in graph
