"""OMSE: per-scale clipping ratio minimising the L2 weight quantization error (Choukroun et al.,
"Low-bit Quantization of Neural Networks for Efficient Inference", ICCVW 2019, arXiv 1902.06822)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from quantwm.quant.methods import register
from quantwm.quant.quantizer import quantize_weight, search_clip, weight_rows

if TYPE_CHECKING:
    from quantwm.quant.engine import QuantSession


@dataclass(frozen=True)
class OMSEConfig:
    """Clip ratios searched: ``steps`` values evenly spaced in [min_ratio, 1]."""

    min_ratio: float = 0.5
    steps: int = 51

    def __post_init__(self) -> None:
        if not 0 < self.min_ratio <= 1 or self.steps < 1:
            raise ValueError(f"OMSE needs 0 < min_ratio <= 1 and steps >= 1, got {self.min_ratio}, {self.steps}")

    def ratios(self) -> torch.Tensor:
        return torch.linspace(self.min_ratio, 1.0, self.steps)


@register("omse", OMSEConfig)
def omse(session: "QuantSession", cfg: OMSEConfig) -> None:
    """Per scale (tensor, row or group), the clip ratio of the range minimising sum (W - Q(W))^2."""
    for t in session.weight_targets:
        w = weight_rows(t.module).detach()
        clip = search_clip(w, t.settings.weight, cfg.ratios())
        session.weights[t.name] = quantize_weight(w, t.settings.weight, "omse", clip, clip)
