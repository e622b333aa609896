"""SmoothQuant: migrate activation outliers into the weights with a per-channel scale
s = max|X|^alpha / max|W|^(1 - alpha), folded into the preceding LayerNorm or Linear (Xiao et
al., "SmoothQuant: Accurate and Efficient Post-Training Quantization for Large Language Models",
ICML 2023, arXiv 2211.10438)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from quantwm.quant.methods import register
from quantwm.quant.methods.rtn import rtn_weights
from quantwm.quant.transforms import fold_pair, pair_modules

if TYPE_CHECKING:
    from quantwm.quant.engine import QuantSession


@dataclass(frozen=True)
class SmoothQuantConfig:
    """``alpha``: migration strength (0 = none, 1 = all to the weights); the study used 0.5."""

    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"SmoothQuant alpha must be in [0, 1], got {self.alpha}")


def smoothing_scale(act_absmax: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
    """s (C,) from the input channels' max |X| (C,) and the consumer weight (R, C)."""
    w_absmax = weight.abs().amax(0).clamp_min(1e-5)
    return (act_absmax.clamp_min(1e-5).pow(alpha) / w_absmax.pow(1 - alpha)).clamp_min(1e-5)


@register("smoothquant", SmoothQuantConfig)
def smoothquant(session: "QuantSession", cfg: SmoothQuantConfig) -> None:
    """Smooth every foldable pair of the selected blocks (norm1 -> qkv, norm2 -> fc1, v -> proj and
    the predictor's counterparts; not fc1 -> fc2: GELU), then RTN."""
    inputs = session.layer_inputs()
    for block, pair in session.plan.pairs():
        consumer_name = f"{block.prefix}.{pair.consumer}"
        _, consumer = pair_modules(block, pair)
        x = inputs[consumer_name]
        fold_pair(block, pair, smoothing_scale(torch.maximum(x.lo.abs(), x.hi.abs()), consumer.weight, cfg.alpha))
    session.changed()
    rtn_weights(session)
