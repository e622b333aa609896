"""Fake-quantized layers: activation quantizers, the quantized-layer wrapper, quantized attention.

``QuantizedLayer`` keeps the original layer with its weight replaced, once, by the dequantized
weight, so weight-only settings cost nothing at run time beyond the wrapper call. Activations are
quantized channel-last (..., C): convolution inputs have their channel axis moved last first.
"""
from __future__ import annotations

import torch
from torch import nn

from quantwm.quant.config import ActQuant
from quantwm.quant.quantizer import QuantizedWeight, fake_quantize, minmax_qparams, rows_to_weight


def observed_range(x: torch.Tensor, granularity: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Min / max of channel-last x (..., C): per_token (..., 1), per_tensor (1,), per_channel (C,)."""
    if granularity == "per_token":
        return x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    flat = x.reshape(-1, x.shape[-1])
    lo, hi = flat.amin(0), flat.amax(0)
    if granularity == "per_tensor":
        return lo.amin().reshape(1), hi.amax().reshape(1)
    return lo, hi


class ActivationQuantizer(nn.Module):
    """Fake-quantizes channel-last activations (..., C) -> (..., C).

    With ``ranges`` (per-channel calibrated min / max, each (C,)) the grid is static: reduced to one
    range for ``per_tensor``, kept per channel for ``per_channel``. Without ranges, or for
    ``per_token``, the range is observed on every input at the configured granularity (dynamic).
    """

    def __init__(self, spec: ActQuant, ranges: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.static = ranges is not None and spec.granularity != "per_token"
        if self.static:
            lo, hi = ranges
            if spec.granularity == "per_tensor":
                lo, hi = lo.amin().reshape(1), hi.amax().reshape(1)
            scale, zero = minmax_qparams(lo, hi, spec.bits, spec.symmetric)
            self.register_buffer("scale", scale)
            self.register_buffer("zero", zero)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.static:
            scale, zero = self.scale, self.zero
        else:
            scale, zero = minmax_qparams(*observed_range(x, self.spec.granularity), self.spec.bits, self.spec.symmetric)
        return fake_quantize(x, scale, zero, self.spec.bits, self.spec.symmetric, own_range=not self.static)


def channels_last(x: torch.Tensor, channel_dim: int) -> torch.Tensor:
    return x if channel_dim == -1 else x.movedim(channel_dim, -1)


def channels_back(x: torch.Tensor, channel_dim: int) -> torch.Tensor:
    return x if channel_dim == -1 else x.movedim(-1, channel_dim)


def channel_dim_of(layer: nn.Module) -> int:
    """Axis of the input channels: 1 for convolutions, -1 for Linear."""
    return 1 if isinstance(layer, nn.modules.conv._ConvNd) else -1


class QuantizedLayer(nn.Module):
    """A Linear / Conv whose weight is the cached dequantized weight, with optional online input
    rotation (x @ R, Linear only, the weight already multiplied by R) and input quantization.

    ``forward(x) = layer(quantize_input(rotate(x)))``; ``weight_storage_bits`` counts the weight at
    its bit-width with its scales and zero points.
    """

    def __init__(
        self, layer: nn.Module, qweight: QuantizedWeight | None,
        input_quant: ActivationQuantizer | None = None, input_rotation: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.channel_dim = channel_dim_of(layer)
        if input_rotation is not None and self.channel_dim != -1:
            raise ValueError("online input rotation is only supported on Linear layers")
        self.layer = layer
        self.input_quant = input_quant
        self.register_buffer("input_rotation", input_rotation)
        if qweight is None:
            self.weight_storage_bits = layer.weight.numel() * 32
        else:
            layer.weight = nn.Parameter(rows_to_weight(layer, qweight.dequant.detach()), requires_grad=False)
            self.register_buffer("weight_scale", qweight.scale.detach())
            self.register_buffer("weight_zero", qweight.zero.detach())
            self.weight_storage_bits = qweight.storage_bits()

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.input_rotation is None else x @ self.input_rotation

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quant is None:
            return x
        return channels_back(self.input_quant(channels_last(x, self.channel_dim)), self.channel_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self.quantize_input(self.rotate(x)))


def heads_last(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, dh) -> (B, N, heads * dh)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def heads_back(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, heads * dh) -> (B, heads, N, dh)."""
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


class QuantizedAttend(nn.Module):
    """``softmax(q k^T / sqrt(dh)) v`` with q, k, v and the probabilities fake-quantized.

    q, k, v are quantized channel-last over (heads * dh) with their own quantizers; the softmax
    probabilities on the fixed unsigned grid of [0, 1] (scale 1 / (2^b - 1)), their exact range.
    Same interface as ``quantwm.models.attention.ScaledDotProductAttention``.
    """

    def __init__(self, q_quant: ActivationQuantizer, k_quant: ActivationQuantizer, v_quant: ActivationQuantizer, prob_bits: int) -> None:
        super().__init__()
        self.q_quant, self.k_quant, self.v_quant = q_quant, k_quant, v_quant
        self.prob_bits = prob_bits
        self.register_buffer("prob_scale", torch.tensor(1.0 / (2**prob_bits - 1)))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """q, k, v: (B, heads, N, dh); attn_mask: (N, N) bool, True = may attend -> (B, heads, N, dh)."""
        heads = q.shape[1]
        q, k, v = (heads_back(quant(heads_last(t)), heads) for quant, t in ((self.q_quant, q), (self.k_quant, k), (self.v_quant, v)))
        scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        probs = fake_quantize(scores.softmax(-1), self.prob_scale, torch.zeros_like(self.prob_scale), self.prob_bits, False)
        return probs @ v
