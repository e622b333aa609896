"""Round-to-nearest with min-max ranges: the baseline of every PTQ study (e.g. Nagel et al.,
"A White Paper on Neural Network Quantization", arXiv 2106.08295)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from quantwm.quant.methods import register
from quantwm.quant.quantizer import quantize_weight, weight_rows

if TYPE_CHECKING:
    from quantwm.quant.engine import QuantSession


@dataclass(frozen=True)
class RTNConfig:
    """RTN has no parameters: scales come from each group's min / max (see quantwm.quant.quantizer)."""


def rtn_weights(session: "QuantSession", label: str = "rtn") -> None:
    """Min-max RTN of every weight-quantized layer not yet quantized."""
    for t in session.weight_targets:
        if t.name not in session.weights:
            session.weights[t.name] = quantize_weight(weight_rows(t.module).detach(), t.settings.weight, label)


@register("rtn", RTNConfig)
def rtn(session: "QuantSession", cfg: RTNConfig) -> None:
    """Quantize every layer's weights with min-max RTN."""
    rtn_weights(session)
