"""Layers that replace a PyTorch module where its CPU kernel is far below the CPU's peak.

The last layer of every decoder is a transposed convolution from many channels to the
image's channels. oneDNN runs that shape far below the matrix-product peak, so in
conv64 this layer takes a large share of a training step's time for a tiny share of its
arithmetic. Written as one matrix product (every input pixel times every kernel tap)
followed by adding the taps' shifted contributions into the output, the same forward
takes a fraction of the time (figures in docs/notes/performance.md). The backward stays
oneDNN's (``convolution_backward``), which is already fast for
this shape. Parameters, state dicts and results (up to float rounding) are those of
``nn.ConvTranspose2d``. Under bf16 autocast it stays float32 (still faster than oneDNN's
bf16 transposed convolution), so the logits the loss sums over 4,096
pixels are not rounded to 8 bits. On other devices, for shapes this does not cover, and
while exporting (ONNX, ``torch.export``), compiling or under a ``torch.func`` transform
(:mod:`betavae.training.packed`), the module simply is ``nn.ConvTranspose2d``.
"""

from __future__ import annotations

import torch
from torch import nn

_GEMM_WIDTH = 16  # matrix products with a right-hand side this many columns wide run at full speed
NARROW_OUT_CHANNELS = 1  # grey images gain (docs/notes/performance.md); for RGB (3) it measured no faster


class ImageTransposedConv(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` whose CPU forward is a matrix product when it outputs one channel."""

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if not self._uses_matmul(input, output_size):
            return super().forward(input, output_size)
        if torch.is_autocast_enabled("cpu"):
            input = input.float()  # the logits stay float32, like the loss summed from them
        with torch.autocast("cpu", enabled=False):
            return _TapProductTransposedConv.apply(input, self.weight, self.bias, self.stride, self.padding,
                                                   self.output_padding)

    def _uses_matmul(self, input: torch.Tensor, output_size: list[int] | None) -> bool:
        # Exports and compilers see the stock operator (one ONNX node; Inductor's own choice), and so do
        # torch.func's transforms (packed training's vmap), which refuse a custom autograd.Function.
        exporting = (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
                     or torch._C._are_functorch_transforms_active())
        return (input.device.type == "cpu" and input.dim() == 4 and output_size is None and not exporting
                and (input.dtype == self.weight.dtype or torch.is_autocast_enabled("cpu"))
                and self.groups == 1 and self.dilation == (1, 1) and self.padding_mode == "zeros"
                and self.out_channels <= NARROW_OUT_CHANNELS)


def transposed_conv_by_taps(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            stride: tuple[int, int], padding: tuple[int, int],
                            output_padding: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """``F.conv_transpose2d`` (groups 1, dilation 1) as one matrix product and a scatter of its taps.

    Input pixel (i, j) through kernel tap (ki, kj) lands on output pixel
    (stride·i − padding + ki, stride·j − padding + kj). The product gives every pixel's
    contribution through every tap at once; each tap's contributions are then one strided
    slice-add into the output. Returns a channels-last tensor.
    """
    batch, in_channels, height, width = input.shape
    out_channels, kernel_h, kernel_w = weight.shape[1:]
    (stride_h, stride_w), (pad_h, pad_w) = stride, padding
    out_h = (height - 1) * stride_h - 2 * pad_h + kernel_h + output_padding[0]
    out_w = (width - 1) * stride_w - 2 * pad_w + kernel_w + output_padding[1]
    pixels = input.permute(0, 2, 3, 1).reshape(-1, in_channels)  # a view when the input is channels-last
    tap_weights = weight.permute(0, 2, 3, 1).reshape(in_channels, -1)
    tap_count = tap_weights.shape[1]
    # a narrower right-hand side runs slower (docs/notes/performance.md)
    padded = -(-tap_count // _GEMM_WIDTH) * _GEMM_WIDTH
    taps = pixels @ torch.nn.functional.pad(tap_weights, (0, padded - tap_count))
    taps = (
        taps[:, :tap_count]
        .unflatten(1, (kernel_h, kernel_w, out_channels))
        .view(batch, height, width, kernel_h, kernel_w, out_channels)
    )
    output = input.new_zeros(batch, out_h, out_w, out_channels)
    rows = [_tap_span(k, height, stride_h, pad_h, out_h) for k in range(kernel_h)]
    columns = [_tap_span(k, width, stride_w, pad_w, out_w) for k in range(kernel_w)]
    for ki, (rows_in, rows_out) in enumerate(rows):
        for kj, (columns_in, columns_out) in enumerate(columns):
            output[:, rows_out, columns_out] += taps[:, rows_in, columns_in, ki, kj]
    if bias is not None:
        output += bias
    return output.permute(0, 3, 1, 2)


def _tap_span(tap: int, size: int, stride: int, padding: int, out_size: int) -> tuple[slice, slice]:
    """The input positions whose tap ``tap`` lands inside the output, and where they land."""
    first = max(0, -(-(padding - tap) // stride))  # the smallest i with stride·i − padding + tap ≥ 0
    last = min(size, (out_size - 1 + padding - tap) // stride + 1)
    start = stride * first - padding + tap
    return slice(first, last), slice(start, start + stride * (last - first), stride)


class _TapProductTransposedConv(torch.autograd.Function):
    """Forward by :func:`transposed_conv_by_taps`; backward by ATen's own convolution backward."""

    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, output_padding):
        ctx.save_for_backward(input, weight)
        ctx.geometry = (stride, padding, output_padding, bias is not None)
        return transposed_conv_by_taps(input, weight, bias, stride, padding, output_padding)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        stride, padding, output_padding, has_bias = ctx.geometry
        needs_input, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        grad_input, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad_output,
            input,
            weight,
            [weight.shape[1]] if has_bias else None,
            list(stride),
            list(padding),
            [1, 1],
            True,
            list(output_padding),
            1,
            [needs_input, needs_weight, needs_bias and has_bias],
        )
        return grad_input, grad_weight, grad_bias, None, None, None
