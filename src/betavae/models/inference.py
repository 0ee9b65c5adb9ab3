"""Encoding without gradients near the CPU's peak: each layer fused with the ReLU after it.

The metrics, transfer learning and the factor figures encode up to 737,280 images per
model. In eager PyTorch every ReLU is a pass of its own over an activation that, at the
batch sizes that keep the convolutions efficient, no longer fits in cache: in conv28's
encoder at batch 512 the ReLU after the first convolution took as long as the
convolution. oneDNN can apply the ReLU while the convolution or matrix product writes its
output (a "post-op"), which is what ``torch.compile``'s CPU backend does after freezing
the weights; :class:`FusedEncoder` makes the same oneDNN calls directly, without a
compile step. It brings every architecture's encoding closer to the fp32 matrix-product
peak (``benchmarks/train_throughput.py --sections encode``; figures in
docs/notes/performance.md).

Two more layers are rewritten, because conv28's encoder spent much of its time in
them at batch 512: 2×2 max-pooling as two element-wise maxima over strided views (faster
than PyTorch's channels-last pooling; the result is the same, max being exact),
and a ``Flatten`` followed by a linear layer as one matrix product over the channels-last
map read as it lies, the weight's columns put in (height, width, channel) order once,
instead of reordering every activation to (channel, height, width) first. Together they
speed up conv28's encoding; burgess64, whose map is 4×4, is unchanged
(docs/notes/performance.md).

The fused calls are PyTorch's ``torch.ops.mkldnn._convolution_pointwise`` and
``_linear_pointwise`` (the operators Inductor emits). Being internal, they are checked
once on a probe batch against the eager layers; if they are missing, fail or disagree, the
eager encoder is used, so the codes are the same either way (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

_PROBE_BATCH = 2


class FusedEncoder:
    """``encoder(x)`` for inference, with each Conv2d or Linear layer fused with a following ReLU.

    ``fused_layers`` counts the fused pairs: zero where the fusion is unavailable (not a
    CPU, no oneDNN, a layer it does not cover) or the probe disagrees, in which case calls run
    the eager encoder. Weights holding NaN always disagree (NaN is unequal to itself), which
    matters: the fused ReLU maps NaN to 0 and would hide a diverged model behind finite codes.
    Holds a snapshot of the weights: build it after training, from the model to encode with.
    """

    def __init__(self, encoder: nn.Module, image_shape: tuple[int, int, int]) -> None:
        self.encoder = encoder
        self.fused_layers = 0
        self._steps: list[Callable[[torch.Tensor], torch.Tensor]] = []
        parameter = next(encoder.parameters(), None)
        if (
            parameter is None
            or parameter.device.type != "cpu"
            or not isinstance(encoder, nn.Sequential)
            or not torch.backends.mkldnn.is_available()
            or not hasattr(torch.ops.mkldnn, "_convolution_pointwise")
        ):
            return
        steps, fused = _fused_steps(list(encoder))
        rewritten = any(not isinstance(step, nn.Module) for step in steps)
        if rewritten and _agrees(steps, encoder, (_PROBE_BATCH, *image_shape), parameter.dtype):
            self._steps, self.fused_layers = steps, fused

    @property
    def eager(self) -> bool:
        """Whether calls run the eager encoder, none of its layers fused or rewritten."""
        return not self._steps

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self._steps:
            return self.encoder(x)
        for step in self._steps:
            x = step(x)
        return x


def _fused_steps(layers: list[nn.Module]) -> tuple[list[Callable[[torch.Tensor], torch.Tensor]], int]:
    steps: list[Callable[[torch.Tensor], torch.Tensor]] = []
    fused, index = 0, 0
    while index < len(layers):
        layer = layers[index]
        if _is_max_pool_2x2(layer):
            steps.append(_max_pool_2x2)
            index += 1
            continue
        flatten = (
            type(layer) is nn.Flatten
            and (layer.start_dim, layer.end_dim) == (1, -1)
            and index + 1 < len(layers)
            and type(layers[index + 1]) is nn.Linear
        )
        index += flatten  # the linear layer after it takes the map unflattened
        relu = index + 1 < len(layers) and isinstance(layers[index + 1], nn.ReLU)
        post_op = "relu" if relu else "none"
        step = _ChannelsLastLinear(layers[index], post_op) if flatten else _fused_step(layers[index], post_op)
        if step is None:
            steps.append(layer)
            index += 1
            continue
        steps.append(step)
        fused += relu
        index += 2 if relu else 1
    return steps, fused


def _fused_step(layer: nn.Module, post_op: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """One oneDNN call for ``layer`` followed by ``post_op``, or None for a layer it does not cover."""
    bias = None if getattr(layer, "bias", None) is None else layer.bias.detach()
    if type(layer) is nn.Linear:
        weight = layer.weight.detach()
        return lambda x: torch.ops.mkldnn._linear_pointwise(x, weight, bias, post_op, [], "")
    if type(layer) is nn.Conv2d and layer.padding_mode == "zeros" and not isinstance(layer.padding, str):
        weight = layer.weight.detach().contiguous(memory_format=torch.channels_last)
        padding, stride, dilation, groups = (
            list(layer.padding),
            list(layer.stride),
            list(layer.dilation),
            layer.groups,
        )
        return lambda x: torch.ops.mkldnn._convolution_pointwise(
            x, weight, bias, padding, stride, dilation, groups, post_op, [], ""
        )
    return None


def _is_max_pool_2x2(layer: nn.Module) -> bool:
    if type(layer) is not nn.MaxPool2d or layer.ceil_mode or layer.return_indices:
        return False

    def pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
        return tuple(value) if isinstance(value, (tuple, list)) else (value, value)

    return (pair(layer.kernel_size), pair(layer.stride), pair(layer.padding), pair(layer.dilation)) == (
        (2, 2),
        (2, 2),
        (0, 0),
        (1, 1),
    )


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``max_pool2d(x, 2)``: the maximum of rows 2i and 2i + 1, then of columns 2j and 2j + 1.

    Two passes that stream through memory; an odd last row or column is dropped, as the
    pooling layer drops it.
    """
    height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    rows = torch.maximum(x[..., 0:height:2, :width], x[..., 1:height:2, :width])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


class _ChannelsLastLinear:
    """``Flatten`` then ``Linear`` (+ ``post_op``) on a feature map, without reordering the map.

    ``Flatten`` reads a map in (channel, height, width) order, so on a channels-last map it
    copies every activation; reading the map in the order it lies in memory and permuting
    the weight's columns to match (once per map shape) computes the same products.
    """

    def __init__(self, linear: nn.Linear, post_op: str) -> None:
        self.weight = linear.weight.detach()
        self.bias = None if linear.bias is None else linear.bias.detach()
        self.post_op = post_op
        self._weights: dict[tuple[int, ...], torch.Tensor] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            flat, weight = x.flatten(1), self.weight
        else:
            channels, height, width = x.shape[1:]
            weight = self._weights.get(x.shape[1:])
            if weight is None:
                weight = (
                    self.weight.view(-1, channels, height, width)
                    .permute(0, 2, 3, 1)
                    .reshape(len(self.weight), -1)
                )
                weight = self._weights.setdefault(x.shape[1:], weight.contiguous())
            flat = x.permute(0, 2, 3, 1).reshape(len(x), -1)  # a view of a channels-last map
        return torch.ops.mkldnn._linear_pointwise(flat, weight, self.bias, self.post_op, [], "")


def _agrees(
    steps: list[Callable[[torch.Tensor], torch.Tensor]],
    encoder: nn.Module,
    shape: tuple[int, ...],
    dtype: torch.dtype,
) -> bool:
    """Whether the fused steps give the eager encoder's output on a random probe batch."""
    probe = torch.rand(shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    probe = probe.contiguous(memory_format=torch.channels_last)
    try:
        with torch.inference_mode():
            expected, got = encoder(probe), probe
            for step in steps:
                got = step(got)
    except RuntimeError:
        return False
    return got.shape == expected.shape and bool(torch.allclose(got, expected, rtol=1e-4, atol=1e-5))
