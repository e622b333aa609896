"""``quantize(world_model, config, calibration)``: a fake-quantized copy, a layer report, sizes.

Steps: resolve and validate the config against the model (nothing is copied before that passes),
deep-copy the model, let the method transform the copy (FP-equivalent rewrites such as smoothing
or rotation, then one quantized weight per layer), replay calibration through the transformed
copy for static activation ranges, swap every layer for a ``QuantizedLayer`` (and every selected
``attend`` for a ``QuantizedAttend``), and measure each layer's output error on its calibration
inputs. The FP model is never modified and the global RNG is never drawn from.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from quantwm.quant.calibration import (
    Calibration, LayerInputs, collect_attention_ranges, collect_layer_inputs, collect_module_calls,
)
from quantwm.quant.config import QuantConfig
from quantwm.quant.layout import Plan, Target, make_plan
from quantwm.quant.methods import METHODS
from quantwm.quant.modules import ActivationQuantizer, QuantizedAttend, QuantizedLayer
from quantwm.quant.quantizer import QuantizedWeight, weight_rows


class QuantSession:
    """What a method works on: the model copy, the plan, calibration replay, and its results
    (``weights``: one QuantizedWeight per weight-quantized layer; ``rotations``: online input
    rotations (C, C) per layer; ``log``: anything worth showing, e.g. training losses)."""

    def __init__(self, model: nn.Module, config: QuantConfig, calibration: Calibration, plan: Plan) -> None:
        self.model, self.config, self.calibration, self.plan = model, config, calibration, plan
        self.weights: dict[str, QuantizedWeight] = {}
        self.rotations: dict[str, torch.Tensor] = {}
        self.log: dict[str, Any] = {}
        self._inputs: dict[str, LayerInputs] | None = None

    @property
    def weight_targets(self) -> list[Target]:
        return [t for t in self.plan.targets.values() if t.settings.weight.enabled]

    def layer_inputs(self) -> dict[str, LayerInputs]:
        """Inputs of every target under replay through the model as it is now (cached until ``changed``)."""
        if self._inputs is None:
            layers = {n: (t.group, t.module) for n, t in self.plan.targets.items()}
            self._inputs = collect_layer_inputs(
                self.model, self.calibration, layers, self.config.max_layer_tokens, self.config.seed, self.rotations
            )
        return self._inputs

    def changed(self) -> None:
        """Call after rewriting FP weights: layer inputs are captured again when next needed."""
        self._inputs = None

    def module_calls(self, modules: dict[str, tuple[str, nn.Module]]) -> dict[str, list[tuple[tuple, dict]]]:
        return collect_module_calls(self.model, self.calibration, modules)


@dataclass
class QuantSummary:
    """Attached to a quantized model as ``.quantization``."""

    config: QuantConfig
    report: pd.DataFrame
    fp_bytes: int
    quantized_bytes: int
    log: dict[str, Any] = field(default_factory=dict)


REPORT_ROWS = 512  # layer-report errors are measured on this many of each layer's calibration rows


def sqnr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """10 log10(|ref|^2 / |ref - approx|^2) in dB (inf when identical)."""
    noise = (reference - approx).pow(2).sum().item()
    signal = reference.pow(2).sum().item()
    return math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)


def model_size_bytes(model: nn.Module) -> int:
    """Parameter bytes; weights of ``QuantizedLayer``s at their bit-width plus scales / zero points.
    Buffers (masks, online rotation matrices) are not counted."""
    quantized = {id(m.layer.weight): m.weight_storage_bits for m in model.modules() if isinstance(m, QuantizedLayer)}
    bits = sum(quantized.get(id(p), p.numel() * p.element_size() * 8) for p in model.parameters())
    return math.ceil(bits / 8)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


def _range(t: torch.Tensor) -> tuple[float, float]:
    return float(t.min()), float(t.max())


@torch.no_grad()
def quantize(world_model: nn.Module, config: QuantConfig, calibration: Calibration, apply_quantization: bool = True) -> nn.Module:
    """A fake-quantized deep copy of ``world_model`` per ``config``, calibrated on ``calibration``
    (inputs of every quantized group). The copy carries ``.quantization`` (a QuantSummary).

    ``apply_quantization=False`` returns the method's FP-equivalent rewrite alone (smoothing,
    rotation with its online part), weights and activations left in full precision: it must
    reproduce the FP model up to float rounding.
    """
    make_plan(world_model, config)
    missing = [g for g in config.groups if g not in calibration.inputs]
    if missing:
        raise ValueError(f"calibration has no inputs for {', '.join(missing)}; it has: {', '.join(calibration.inputs) or 'none'}")
    model = copy.deepcopy(world_model).eval()
    plan = make_plan(model, config)
    session = QuantSession(model, config, calibration, plan)
    METHODS[config.method].transform(session, config.method_config)
    unquantized = [t.name for t in session.weight_targets if t.name not in session.weights]
    if unquantized:
        raise RuntimeError(f"method {config.method!r} left layers unquantized: {unquantized}")
    inputs = session.layer_inputs()
    rows = [_swap_layer(model, t, inputs[t.name], session, apply_quantization) for t in plan.targets.values()]
    if plan.attends and apply_quantization:
        ranges = collect_attention_ranges(model, calibration, {n: (t.group, t.module) for n, t in plan.attends.items()})
        examples = {n: calls[0] for n, calls in session.module_calls({n: (t.group, t.module) for n, t in plan.attends.items()}).items()}
        rows += [_swap_attend(model, t, ranges[t.name], examples[t.name]) for t in plan.attends.values()]
    model.train(world_model.training)
    model.quantization = QuantSummary(config, pd.DataFrame(rows), model_size_bytes(world_model), model_size_bytes(model), session.log)
    return model


def _swap_layer(model: nn.Module, t: Target, inputs: LayerInputs, session: QuantSession, apply: bool) -> dict[str, Any]:
    w_spec, a_spec = t.settings.weight, t.settings.activation
    fp_weight = weight_rows(t.module).detach().clone()
    example = inputs.example[:REPORT_ROWS]
    fp_out = t.module(example)
    act = ActivationQuantizer(a_spec, (inputs.lo, inputs.hi)) if a_spec.enabled and apply else None
    qweight = session.weights.get(t.name) if apply else None
    wrapper = QuantizedLayer(t.module, qweight, act, session.rotations.get(t.name))
    q_out = wrapper.layer(wrapper.quantize_input(example))
    _replace(model, t.name, wrapper)
    return {
        "name": t.name, "group": t.group, "block": t.block, "kind": type(t.module).__name__,
        "method": qweight.method if qweight else "fp weights",
        "weight_bits": w_spec.bits if qweight else 16, "weight_granularity": w_spec.describe() if qweight else "-",
        "weight_symmetric": w_spec.symmetric, "act_bits": a_spec.bits if act else 16,
        "act_granularity": a_spec.granularity if act else "-",
        "rotated": t.name in session.rotations,
        "weight_min": _range(fp_weight)[0], "weight_max": _range(fp_weight)[1],
        "act_min": float(inputs.lo.min()), "act_max": float(inputs.hi.max()),
        "sqnr_db": sqnr_db(fp_out, q_out), "mse": float((fp_out - q_out).pow(2).mean()),
    }


def _swap_attend(model: nn.Module, t: Target, ranges: tuple, example: tuple[tuple, dict]) -> dict[str, Any]:
    spec = t.settings.activation
    quantizers = [ActivationQuantizer(spec, r) for r in ranges]
    wrapper = QuantizedAttend(*quantizers, prob_bits=spec.bits)
    args, kwargs = example
    fp_out, q_out = t.module(*args, **kwargs), wrapper(*args, **kwargs)
    _replace(model, t.name, wrapper)
    lo = min(float(r[0].min()) for r in ranges)
    hi = max(float(r[1].max()) for r in ranges)
    return {
        "name": t.name, "group": t.group, "block": t.block, "kind": "attention matmuls", "method": "rtn",
        "weight_bits": 16, "weight_granularity": "-", "weight_symmetric": True, "act_bits": spec.bits,
        "act_granularity": spec.granularity, "rotated": False, "weight_min": math.nan, "weight_max": math.nan,
        "act_min": lo, "act_max": hi, "sqnr_db": sqnr_db(fp_out, q_out), "mse": float((fp_out - q_out).pow(2).mean()),
    }
