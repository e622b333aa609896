"""AWQ: activation-aware per-channel weight scaling searched on the layer's output error, folded
into the preceding LayerNorm / Linear, then a per-scale clip search on the output error (Lin et
al., "AWQ: Activation-aware Weight Quantization for LLM Compression and Acceleration", MLSys 2024,
arXiv 2306.00978). Weight-only."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from quantwm.quant.layout import is_linear_like
from quantwm.quant.methods import register
from quantwm.quant.methods.rtn import rtn_weights
from quantwm.quant.quantizer import quantize_weight, search_clip, weight_rows
from quantwm.quant.transforms import fold_pair, pair_modules

if TYPE_CHECKING:
    from quantwm.quant.config import QuantConfig
    from quantwm.quant.engine import QuantSession


@dataclass(frozen=True)
class AWQConfig:
    """``grid``: exponents alpha in [0, 1) tried for s = mean|X|^alpha; ``clip_min_ratio`` /
    ``clip_steps``: the clip ratios searched afterwards (``clip_steps`` 0 disables it)."""

    grid: int = 20
    clip_min_ratio: float = 0.5
    clip_steps: int = 21

    def __post_init__(self) -> None:
        if self.grid < 1 or self.clip_steps < 0 or not 0 < self.clip_min_ratio <= 1:
            raise ValueError("AWQ needs grid >= 1, clip_steps >= 0 and 0 < clip_min_ratio <= 1")


def check_weight_only(config: "QuantConfig") -> None:
    quantized_acts = [g for g, s in config.groups.items() if s.activation.enabled]
    if quantized_acts:
        raise ValueError(f"AWQ is weight-only; activation bits must be 16 ('fp') in {', '.join(quantized_acts)}; "
                         "for activation quantization use: rtn, omse, gptq, smoothquant, omniquant, rotation")
    if not any(s.weight.enabled for s in config.groups.values()):
        raise ValueError("AWQ quantizes weights; set weight bits 2..8 in at least one group")


def search_scale(x: torch.Tensor, w: torch.Tensor, spec, grid: int) -> torch.Tensor:
    """s (C,) minimising |X W^T - X (Q(W diag s) diag(1/s))^T|^2 over s = mean|X|^alpha (normalised)."""
    x_mean = x.abs().mean(0).clamp_min(1e-8)
    reference = x @ w.T
    best, best_err = torch.ones_like(x_mean), float("inf")
    for i in range(grid):
        s = x_mean.pow(i / grid)
        s = s / (s.max() * s.min()).sqrt()
        approx = x @ (quantize_weight(w * s, spec).dequant / s).T
        err = (reference - approx).pow(2).mean().item()
        if err < best_err:
            best, best_err = s, err
    return best


@register("awq", AWQConfig, check_weight_only)
def awq(session: "QuantSession", cfg: AWQConfig) -> None:
    """Scale search on every foldable pair of the selected blocks (norm1 -> qkv, norm2 -> fc1,
    v -> proj; predictor: norm -> to_qkv, net[0] -> net[1], v -> to_out[0]); fc1 -> fc2 is not
    foldable (GELU) and keeps scale 1. Then clip search on all Linear-like layers (RTN on convs)."""
    inputs = session.layer_inputs()
    for block, pair in session.plan.pairs():
        _, consumer = pair_modules(block, pair)
        x = inputs[f"{block.prefix}.{pair.consumer}"].rows
        spec = session.plan.targets[f"{block.prefix}.{pair.consumer}"].settings.weight
        fold_pair(block, pair, search_scale(x, consumer.weight.detach(), spec, cfg.grid))
    session.changed()
    inputs = session.layer_inputs()
    ratios = torch.linspace(cfg.clip_min_ratio, 1.0, cfg.clip_steps)
    for t in session.weight_targets:
        if is_linear_like(t.module):
            x, w = inputs[t.name].rows, weight_rows(t.module).detach()
            clip = search_clip(w, t.settings.weight, ratios, x.T @ x) if cfg.clip_steps else 1.0
            session.weights[t.name] = quantize_weight(w, t.settings.weight, "awq", clip, clip)
    rtn_weights(session, "rtn (awq fallback: not a Linear)")
