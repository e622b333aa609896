"""GPTQ: column-by-column quantization with second-order error compensation (Frantar et al.,
"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers", ICLR 2023,
arXiv 2210.17323)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from quantwm.quant.config import WeightQuant
from quantwm.quant.layout import is_linear_like
from quantwm.quant.methods import register
from quantwm.quant.methods.rtn import rtn_weights
from quantwm.quant.quantizer import (
    QuantizedWeight, fake_quantize, group_ranges, group_size_of, minmax_qparams, to_groups, weight_rows,
)

if TYPE_CHECKING:
    from quantwm.quant.engine import QuantSession


@dataclass(frozen=True)
class GPTQConfig:
    """``damp``: fraction of the mean Hessian diagonal added to it; ``act_order``: quantize columns
    by decreasing Hessian diagonal; ``block_size``: columns updated lazily together."""

    damp: float = 0.01
    act_order: bool = False
    block_size: int = 128

    def __post_init__(self) -> None:
        if self.damp <= 0 or self.block_size < 1:
            raise ValueError(f"GPTQ needs damp > 0 and block_size >= 1, got {self.damp}, {self.block_size}")


def gptq_quantize(w: torch.Tensor, hessian: torch.Tensor, spec: WeightQuant, cfg: GPTQConfig) -> QuantizedWeight:
    """GPTQ of weights (R, C) given H = X^T X of the inputs (C, C).

    Group grids: per-tensor and per-channel scales, and all group scales under ``act_order``, are
    fixed from the weights before any update ("static groups", contiguous in the original column
    order, the last group of a row partial); without act order a group's scale is computed from
    the already-updated weights when its first column is reached, as in the paper.
    """
    rows, cols = w.shape
    w = w.clone().double()
    h = hessian.clone().double()
    dead = torch.diagonal(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    g = group_size_of(spec, cols)
    lazy = spec.granularity == "group" and not cfg.act_order
    scale, zero = minmax_qparams(*group_ranges(to_groups(w, spec), spec), spec.bits, spec.symmetric)
    perm = torch.argsort(torch.diagonal(h), descending=True) if cfg.act_order else torch.arange(cols)
    w, h = w[:, perm], h[perm][:, perm]
    h += cfg.damp * torch.diagonal(h).mean() * torch.eye(cols, dtype=h.dtype)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    q = torch.zeros_like(w)
    for i1 in range(0, cols, cfg.block_size):
        i2 = min(i1 + cfg.block_size, cols)
        w1, err1 = w[:, i1:i2].clone(), torch.zeros(rows, i2 - i1, dtype=w.dtype)
        for i in range(i2 - i1):
            col = int(perm[i1 + i])
            if lazy and col % g == 0:
                ahead = torch.cat([w1[:, i:], w[:, i2:]], dim=1)[:, :g]
                scale[:, col // g], zero[:, col // g] = minmax_qparams(ahead.amin(1), ahead.amax(1), spec.bits, spec.symmetric)
            q[:, i1 + i] = fake_quantize(w1[:, i], scale[:, col // g], zero[:, col // g], spec.bits, spec.symmetric)
            err = (w1[:, i] - q[:, i1 + i]) / hinv[i1 + i, i1 + i]
            w1[:, i:] -= err[:, None] * hinv[i1 + i, i1 + i : i2][None, :]
            err1[:, i] = err
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    q = q[:, torch.argsort(perm)]
    return QuantizedWeight(q.to(hessian.dtype), scale.to(hessian.dtype), zero.to(hessian.dtype), spec, "gptq")


def gptq_weights(session: "QuantSession", cfg: GPTQConfig) -> None:
    """GPTQ on Linear-like layers (Hessian from their calibration inputs); RTN, labelled as a
    fallback, on convolutions."""
    inputs = session.layer_inputs()
    for t in session.weight_targets:
        if is_linear_like(t.module):
            x = inputs[t.name].rows.double()
            session.weights[t.name] = gptq_quantize(weight_rows(t.module).detach(), (x.T @ x / x.shape[0]).float(), t.settings.weight, cfg)
    rtn_weights(session, "rtn (gptq fallback: not a Linear)")


@register("gptq", GPTQConfig)
def gptq(session: "QuantSession", cfg: GPTQConfig) -> None:
    """GPTQ weights (see ``gptq_quantize``)."""
    gptq_weights(session, cfg)
