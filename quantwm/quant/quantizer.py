"""The integer grid: scales, zero points, fake quantization and weight granularity.

Grid rules (``b`` bits):

- symmetric: integers ``q`` in ``[-2^(b-1), 2^(b-1) - 1]``, zero point 0, and
  ``scale = max|x| / (2^(b-1) - 1)``. The largest magnitude maps exactly onto level
  ``±(2^(b-1) - 1)``, so min-max RTN never clips it (dividing by ``(2^b - 1) / 2``, e.g. 7.5 at
  4 bits, would push it to 7.5 and clip it to 7). Zero is exact.
- asymmetric: integers in ``[0, 2^b - 1]``, the range widened to contain 0,
  ``scale = (max - min) / (2^b - 1)`` and an integer zero point ``z = round(-min / scale)``;
  zero is exact and no value in ``[min, max]`` is off by more than ``scale / 2``.

Dequantized values are ``(clamp(round(x / scale) + z, qmin, qmax) - z) * scale``: at most
``2^b`` distinct values per scale. Rounding uses a straight-through gradient when the input
requires grad (learnable clipping).

Weight granularity views a weight as rows (output channels) x columns (everything else, in
memory order) and splits each row into column groups:

- ``per_tensor``: one scale for the whole weight;
- ``per_channel``: one scale per row;
- ``group`` of size g: row r has groups ``[0, g), [g, 2g), ...``; when the row length C is not a
  multiple of g the *last group of every row is partial* (``C mod g`` columns). Groups never
  cross a row.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from quantwm.quant.config import WeightQuant

_EPS = 1e-8


def integer_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """(qmin, qmax) of the grid."""
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _round(x: torch.Tensor) -> torch.Tensor:
    if x.requires_grad:
        return x + (torch.round(x) - x).detach()
    return torch.round(x)


def minmax_qparams(lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and integer zero point (both shaped like ``lo``) of the grid covering [lo, hi]."""
    if symmetric:
        scale = torch.maximum(lo.abs(), hi.abs()) / (2 ** (bits - 1) - 1)
        return scale.clamp_min(_EPS), torch.zeros_like(scale)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = ((hi - lo) / (2**bits - 1)).clamp_min(_EPS)
    return scale, _round(-lo / scale)


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int, symmetric: bool,
                  own_range: bool = False) -> torch.Tensor:
    """Round ``x`` onto the grid and back: (...) -> (...) (scale / zero broadcast against x).

    Without gradients the steps run in place on the one new tensor ``x / scale``, and symmetric
    grids (zero point 0) skip adding and removing the zero point: the same values with a third of
    the memory passes (this runs on every Linear input under activation quantization).

    ``own_range``: the grid was made by ``minmax_qparams`` from x's own min / max (dynamic
    activation ranges), so x never passes the grid's lower end (rounding is monotone and
    symmetric: round(x / s) >= round(lo / s) = -zero) and a symmetric grid's ends are never passed
    either (|x / s| <= qmax up to float rounding, which rounds back to qmax). Only the upper end of
    an asymmetric grid can bind, where float rounding of hi / s and -lo / s lands a token's maximum
    one level above qmax. The clamps that cannot bind are skipped, and the zero point is never
    added: min(round(x / s), qmax - zero) * s, the same values in two fewer memory passes.
    """
    qmin, qmax = integer_range(bits, symmetric)
    if x.requires_grad or scale.requires_grad:
        return (torch.clamp(_round(x / scale) + zero, qmin, qmax) - zero) * scale
    q = (x / scale).round_()
    if own_range:
        return q.mul_(scale) if symmetric else torch.minimum(q, qmax - zero, out=q).mul_(scale)
    if symmetric:
        return q.clamp_(qmin, qmax).mul_(scale)
    return q.add_(zero).clamp_(qmin, qmax).sub_(zero).mul_(scale)


# ---- weights -------------------------------------------------------------------------------
def weight_rows(module: nn.Module) -> torch.Tensor:
    """The module's weight as (rows = output channels, columns) (a view, or a copy for ConvTranspose)."""
    w = module.weight
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        if module.groups != 1:
            raise ValueError(f"grouped transposed convolutions are not supported (groups={module.groups})")
        w = w.transpose(0, 1)
    return w.reshape(w.shape[0], -1)


def rows_to_weight(module: nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """Inverse of ``weight_rows``: (R, C) -> the module's weight shape."""
    shape = module.weight.shape
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return rows.reshape(shape[1], shape[0], *shape[2:]).transpose(0, 1).contiguous()
    return rows.reshape(shape).contiguous()


def group_size_of(spec: WeightQuant, columns: int) -> int:
    """Columns per scale group of a row."""
    return spec.group_size if spec.granularity == "group" else columns


def to_groups(w: torch.Tensor, spec: WeightQuant) -> torch.Tensor:
    """(R, C) -> (R, G, g) with G = ceil(C / g); the partial last group is padded by repeating the
    row's last column (its min / max are unchanged); ``from_groups`` drops the padding."""
    rows, cols = w.shape
    g = group_size_of(spec, cols)
    pad = -cols % g
    if pad:
        w = torch.cat([w, w[:, -1:].expand(rows, pad)], dim=1)
    return w.reshape(rows, -1, g)


def from_groups(v: torch.Tensor, columns: int) -> torch.Tensor:
    """(R, G, g) -> (R, C)."""
    return v.reshape(v.shape[0], -1)[:, :columns]


def group_ranges(v: torch.Tensor, spec: WeightQuant) -> tuple[torch.Tensor, torch.Tensor]:
    """Min and max per scale: (R, G) for per-channel / group, (1, 1) for per-tensor."""
    lo, hi = v.amin(-1), v.amax(-1)
    if spec.granularity == "per_tensor":
        lo, hi = lo.amin(0, keepdim=True), hi.amax(0, keepdim=True)
    return lo, hi


@dataclass
class QuantizedWeight:
    """A fake-quantized weight: ``dequant`` (R, C) plus the grid it lies on (``scale`` / ``zero``:
    (R, G) or (1, 1)), and the name of the method that produced it."""

    dequant: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor
    spec: WeightQuant
    method: str

    def storage_bits(self) -> int:
        """Bits to store it: weights at their bit-width, fp16 scales, zero points at the bit-width."""
        zeros = 0 if self.spec.symmetric else self.zero.numel() * self.spec.bits
        return self.dequant.numel() * self.spec.bits + self.scale.numel() * 16 + zeros


def quantize_weight(
    w: torch.Tensor, spec: WeightQuant, method: str = "rtn",
    clip_lo: torch.Tensor | float = 1.0, clip_hi: torch.Tensor | float = 1.0,
) -> QuantizedWeight:
    """Min-max round-to-nearest of (R, C) weights, the range of each scale shrunk by the clip
    ratios (broadcast against the scale shape; symmetric grids use ``clip_hi`` only)."""
    v = to_groups(w, spec)
    lo, hi = group_ranges(v, spec)
    scale, zero = minmax_qparams(lo * clip_lo, hi * clip_hi, spec.bits, spec.symmetric)
    dq = fake_quantize(v, scale.unsqueeze(-1), zero.unsqueeze(-1), spec.bits, spec.symmetric)
    return QuantizedWeight(from_groups(dq, w.shape[1]), scale, zero, spec, method)


def search_clip(
    w: torch.Tensor, spec: WeightQuant, ratios: torch.Tensor, hessian: torch.Tensor | None = None
) -> torch.Tensor:
    """Clip ratio per scale (shape of the scale) minimising the quantization error of each scale's
    weights: ``sum (dW)^2`` (``hessian`` None, OMSE) or ``dW H dW^T`` restricted to the group's
    columns (``hessian`` = X^T X of the layer inputs (C, C), AWQ's output-error clip search)."""
    cols = w.shape[1]
    v = to_groups(w, spec)
    n_groups, g = v.shape[1], v.shape[2]
    valid = (torch.arange(n_groups * g) < cols).reshape(1, n_groups, g).to(w.dtype)
    if hessian is not None:
        pad = n_groups * g - cols
        h = torch.nn.functional.pad(hessian, (0, pad, 0, pad)).reshape(n_groups, g, n_groups, g)
        blocks = torch.diagonal(h, dim1=0, dim2=2).permute(2, 0, 1)  # (G, g, g)
    lo, hi = group_ranges(v, spec)
    best_err = torch.full_like(lo, float("inf"))
    best = torch.ones_like(lo)
    for ratio in ratios.tolist():
        scale, zero = minmax_qparams(lo * ratio, hi * ratio, spec.bits, spec.symmetric)
        delta = (v - fake_quantize(v, scale.unsqueeze(-1), zero.unsqueeze(-1), spec.bits, spec.symmetric)) * valid
        if hessian is None:
            err = delta.pow(2).sum(-1)
        else:
            err = torch.einsum("rgi,gij,rgj->rg", delta, blocks, delta)
        if spec.granularity == "per_tensor":
            err = err.sum().reshape(1, 1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, torch.full_like(best, ratio), best)
    return best
