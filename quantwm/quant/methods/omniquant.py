"""OmniQuant: learnable weight clipping (LWC) and a learnable equivalent transform (LET), trained
block by block to minimise the block's output error against full precision (Shao et al.,
"OmniQuant: Omnidirectionally Calibrated Quantization for Large Language Models", ICLR 2024,
arXiv 2308.13137).

Units trained: each encoder block, and each predictor Attention and FeedForward (self-contained
modules holding their LayerNorm). LWC: per-scale clip ratios sigmoid(logit) of the min and max,
initialised at logit ``clip_init``. LET (only when the group quantizes activations, as OmniQuant
does for weight-activation settings): a per-channel scale on every foldable pair of the unit,
initialised from SmoothQuant (alpha 0.5), plus a shift on LayerNorm -> Linear-with-bias pairs
initialised at the channel centre. During training activations are quantized dynamically at the
configured granularity and attention matmuls are not quantized; unit inputs come from the FP
model. ``epochs = 0`` keeps the initialisation (what the study ran); with epochs > 0 the parameters of
the best epoch on the calibration loss are kept, so the unit error never ends above its
initialisation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import functional_call

from quantwm.quant.layout import FOLD_PAIRS, UNITS, submodule
from quantwm.quant.methods import register
from quantwm.quant.methods.rtn import rtn_weights
from quantwm.quant.methods.smoothquant import smoothing_scale
from quantwm.quant.modules import ActivationQuantizer, channel_dim_of, channels_back, channels_last
from quantwm.quant.quantizer import group_ranges, quantize_weight, to_groups, weight_rows
from quantwm.quant.transforms import fold_pair, scale_pair

if TYPE_CHECKING:
    from quantwm.quant.engine import QuantSession


@dataclass(frozen=True)
class OmniQuantConfig:
    """``epochs`` over the calibration samples, ``batch_size`` samples per step, Adam learning
    rates ``lwc_lr`` / ``let_lr``, ``let`` enables the equivalent transform, ``clip_init`` the
    initial clip logit (sigmoid(4) = 0.982, OmniQuant's default)."""

    epochs: int = 5
    batch_size: int = 8
    lwc_lr: float = 1e-2
    let_lr: float = 5e-3
    let: bool = True
    clip_init: float = 4.0

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lwc_lr <= 0 or self.let_lr <= 0:
            raise ValueError("OmniQuant needs epochs >= 0, batch_size >= 1 and positive learning rates")


def _minibatches(calls: list[tuple[tuple, dict]], size: int) -> list[tuple[tuple, dict]]:
    """Split each call's first argument (the unit's hidden states (B, ...)) into chunks of ``size``."""
    return [((a[0][i : i + size], *a[1:]), k) for a, k in calls for i in range(0, a[0].shape[0], size)]


class _Unit:
    """Learnable LWC / LET parameters of one unit and the unit's tensors they produce."""

    def __init__(self, session: "QuantSession", block, rel: str, cfg: OmniQuantConfig) -> None:
        self.module = submodule(block.module, rel, block.prefix)
        self.prefix = f"{block.prefix}.{rel}" if rel else block.prefix
        self.block = block
        self.targets = {t.name[len(self.prefix) + 1 :]: t for t in session.weight_targets if t.name.startswith(self.prefix + ".")}
        inputs = session.layer_inputs()
        acts_quantized = any(t.settings.activation.enabled for t in session.plan.targets.values() if t.name.startswith(self.prefix + "."))
        inside = (lambda path: path.startswith(rel + ".")) if rel else (lambda path: True)
        unit_pairs = [p for p in FOLD_PAIRS[block.group] if inside(p.producer) and inside(p.consumer)]
        self.pairs = [p for p in unit_pairs if f"{block.prefix}.{p.consumer}" in session.plan.targets] if cfg.let and acts_quantized else []
        self.log_scales, self.shifts = nn.ParameterList(), []
        for p in self.pairs:
            consumer = submodule(block.module, p.consumer, block.prefix)
            x = inputs[f"{block.prefix}.{p.consumer}"]
            self.log_scales.append(nn.Parameter(smoothing_scale(torch.maximum(x.lo.abs(), x.hi.abs()), consumer.weight.detach(), 0.5).log()))
            shiftable = p.kind == "norm" and consumer.bias is not None
            self.shifts.append(nn.Parameter((x.lo + x.hi) / 2) if shiftable else None)
        self.clip_logits = {}
        for name, t in self.targets.items():
            lo, _ = group_ranges(to_groups(weight_rows(t.module).detach(), t.settings.weight), t.settings.weight)
            self.clip_logits[name] = nn.Parameter(torch.full((2, *lo.shape), cfg.clip_init))

    def parameter_groups(self, cfg: OmniQuantConfig) -> list[dict]:
        let = [*self.log_scales, *(s for s in self.shifts if s is not None)]
        return [{"params": list(self.clip_logits.values()), "lr": cfg.lwc_lr}, {"params": let, "lr": cfg.let_lr}]

    def _rel(self, block_rel: str) -> str:
        """Block-relative module name -> unit-relative."""
        unit_rel = self.prefix[len(self.block.prefix) + 1 :]
        return block_rel[len(unit_rel) + 1 :] if unit_rel else block_rel

    def tensors(self) -> dict[str, torch.Tensor]:
        """Unit-relative parameter name -> transformed, fake-quantized tensor."""
        base = {n: p.detach() for n, p in self.module.named_parameters()}
        out: dict[str, torch.Tensor] = {}
        for p, log_s, shift in zip(self.pairs, self.log_scales, self.shifts):
            names = {f"{role}.{param}": f"{self._rel(getattr(p, role))}.{param}" for role in ("producer", "consumer") for param in ("weight", "bias")}
            current = {key: out.get(name, base.get(name)) for key, name in names.items()}
            for key, value in scale_pair(current, p.kind, log_s.exp(), shift).items():
                if value is not None:
                    out[names[key]] = value
        for name, t in self.targets.items():
            w = out.get(f"{name}.weight", base[f"{name}.weight"])
            clip = torch.sigmoid(self.clip_logits[name])
            q = quantize_weight(w.reshape(w.shape[0], -1), t.settings.weight, "omniquant", clip[0], clip[1])
            out[f"{name}.weight"] = q.dequant.reshape(w.shape)
        return out

    def act_hooks(self) -> list:
        """Dynamic input quantization of the unit's layers during training."""
        handles = []
        for t in self.targets.values():
            if t.settings.activation.enabled:
                quant, dim = ActivationQuantizer(t.settings.activation), channel_dim_of(t.module)
                handles.append(t.module.register_forward_pre_hook(
                    lambda _m, a, q=quant, d=dim: (channels_back(q(channels_last(a[0], d)), d), *a[1:])))
        return handles

    def loss(self, batches: list[tuple[tuple, dict]], targets: list[torch.Tensor]) -> torch.Tensor:
        tensors = self.tensors()
        return sum(nn.functional.mse_loss(functional_call(self.module, tensors, a, k), y) for (a, k), y in zip(batches, targets)) / len(batches)

    @torch.no_grad()
    def fold(self, session: "QuantSession") -> None:
        for p, log_s, shift in zip(self.pairs, self.log_scales, self.shifts):
            fold_pair(self.block, p, log_s.exp(), shift)
        for name, t in self.targets.items():
            clip = torch.sigmoid(self.clip_logits[name])
            session.weights[t.name] = quantize_weight(weight_rows(t.module).detach(), t.settings.weight, "omniquant", clip[0], clip[1])


def train_unit(unit: _Unit, calls: list[tuple[tuple, dict]], cfg: OmniQuantConfig, generator: torch.Generator) -> tuple[float, float]:
    """Train LWC / LET of one unit with Adam, keeping the parameters of the epoch with the lowest
    mean output MSE over all samples (the initialisation included); returns (initial, final) MSE."""
    batches = _minibatches(calls, cfg.batch_size)
    with torch.no_grad():
        targets = [unit.module(*a, **k) for a, k in batches]
    params = [p for group in unit.parameter_groups(cfg) for p in group["params"]]
    handles = unit.act_hooks()
    try:
        with torch.no_grad():
            initial = best = float(unit.loss(batches, targets))
        best_state = [p.detach().clone() for p in params]
        optimizer = torch.optim.Adam(unit.parameter_groups(cfg))
        for _ in range(cfg.epochs):
            with torch.enable_grad():
                for i in torch.randperm(len(batches), generator=generator).tolist():
                    optimizer.zero_grad()
                    unit.loss([batches[i]], [targets[i]]).backward()
                    optimizer.step()
            with torch.no_grad():
                loss = float(unit.loss(batches, targets))
            if loss < best:
                best, best_state = loss, [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, saved in zip(params, best_state):
                p.copy_(saved)
        return initial, best
    finally:
        for h in handles:
            h.remove()


@register("omniquant", OmniQuantConfig)
def omniquant(session: "QuantSession", cfg: OmniQuantConfig) -> None:
    """Train LWC (+ LET) per unit of the selected blocks, fold LET, quantize with the learned clips;
    RTN for layers outside blocks. Losses per unit go to ``session.log['omniquant']``."""
    units = [_Unit(session, block, rel, cfg) for block in session.plan.blocks for rel in UNITS[block.group]]
    units = [u for u in units if u.targets]
    calls = session.module_calls({u.prefix: (u.block.group, u.module) for u in units})
    generator = torch.Generator().manual_seed(session.config.seed)
    session.log["omniquant"] = {}
    for unit in units:
        initial, final = train_unit(unit, calls[unit.prefix], cfg, generator)
        session.log["omniquant"][unit.prefix] = {"initial_mse": initial, "final_mse": final}
        unit.fold(session)
    session.changed()
    rtn_weights(session)
