"""``quantize(world_model, config, calibration)``: a fake-quantized copy, a layer report, sizes.

Steps: resolve and validate the config against the model (nothing is copied before that passes),
deep-copy the model, let the method transform the copy (FP-equivalent rewrites such as smoothing
or rotation, then one quantized weight per layer), replay calibration through the transformed
copy for static activation ranges, swap every layer for a ``QuantizedLayer`` (and every selected
``attend`` for a ``QuantizedAttend``), and measure each layer's output error on a seeded random
subset of its inputs from every call (all samples, frames and tokens): inputs of a held-out
``report_calibration`` when given (what a data-driven method was not fitted on), else of the
calibration itself (in-sample: optimistic for GPTQ, AWQ, OmniQuant). The FP model is never
modified and the global RNG is never drawn from.
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
    Calibration, Call, LayerInputs, collect_attention_ranges, collect_attention_samples, collect_layer_inputs,
    collect_module_calls, sample_calls,
)
from quantwm.quant.config import QuantConfig
from quantwm.quant.layout import Plan, Target, make_plan
from quantwm.quant.methods import METHODS
from quantwm.quant.modules import ActivationQuantizer, QuantizedAttend, QuantizedLayer, channel_dim_of
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
    """Attached to a quantized model as ``.quantization``. ``report_rows``: where the report's
    layer errors were measured: ``"held-out"`` (a report calibration the method never saw) or
    ``"in-sample"`` (the calibration it was fitted on, optimistic for data-driven methods)."""

    config: QuantConfig
    report: pd.DataFrame
    fp_bytes: int
    quantized_bytes: int
    report_rows: str
    log: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_sqnr_db(self) -> dict[str, float]:
        """Mean layer SQNR (dB) per group over the layers with an error (finite SQNR), measured
        where ``report_rows`` says; NaN for a group without one."""
        finite = self.report[self.report["sqnr_db"].abs() != math.inf]
        return {g: float(finite.loc[finite["group"] == g, "sqnr_db"].mean()) for g in self.report["group"].unique()}


REPORT_ROWS = 2048  # at most this many input rows (tokens / positions) of a layer measure its report error


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


def _check_groups(calibration: Calibration, config: QuantConfig, what: str) -> None:
    missing = [g for g in config.groups if g not in calibration.inputs]
    if missing:
        raise ValueError(f"{what} has no inputs for {', '.join(missing)}; it has: {', '.join(calibration.inputs) or 'none'}")


@torch.no_grad()
def quantize(
    world_model: nn.Module, config: QuantConfig, calibration: Calibration, apply_quantization: bool = True, *,
    report_calibration: Calibration | None = None,
) -> nn.Module:
    """A fake-quantized deep copy of ``world_model`` per ``config``, calibrated on ``calibration``
    (inputs of every quantized group). The copy carries ``.quantization`` (a QuantSummary).

    The report's layer errors are measured on at most ``REPORT_ROWS`` seeded random rows of each
    layer's inputs from every call: under replay of ``report_calibration`` (held out, e.g. from
    ``Calibration.split``) when given, else of ``calibration`` (in-sample).

    ``apply_quantization=False`` returns the method's FP-equivalent rewrite alone (smoothing,
    rotation with its online part), weights and activations left in full precision: it must
    reproduce the FP model up to float rounding.
    """
    make_plan(world_model, config)
    _check_groups(calibration, config, "calibration")
    if report_calibration is not None:
        _check_groups(report_calibration, config, "report calibration")
    model = copy.deepcopy(world_model).eval()
    plan = make_plan(model, config)
    session = QuantSession(model, config, calibration, plan)
    METHODS[config.method].transform(session, config.method_config)
    unquantized = [t.name for t in session.weight_targets if t.name not in session.weights]
    if unquantized:
        raise RuntimeError(f"method {config.method!r} left layers unquantized: {unquantized}")
    inputs = session.layer_inputs()
    measured_on, where = (calibration, "in-sample") if report_calibration is None else (report_calibration, "held-out")
    report_inputs = inputs if report_calibration is None else collect_layer_inputs(
        model, report_calibration, {n: (t.group, t.module) for n, t in plan.targets.items()}, REPORT_ROWS, config.seed,
        session.rotations,
    )
    generator = torch.Generator().manual_seed(config.seed)
    rows = [_swap_layer(model, t, inputs[t.name], report_inputs[t.name], session, apply_quantization, generator)
            for t in plan.targets.values()]
    if plan.attends and apply_quantization:
        attends = {n: (t.group, t.module) for n, t in plan.attends.items()}
        ranges = collect_attention_ranges(model, calibration, attends)
        samples = collect_attention_samples(model, measured_on, attends, REPORT_ROWS, config.seed)
        rows += [_swap_attend(model, t, ranges[t.name], samples[t.name]) for t in plan.attends.values()]
    model.train(world_model.training)
    report = pd.DataFrame([{**row, "report_rows": where} for row in rows])
    model.quantization = QuantSummary(config, report, model_size_bytes(world_model), model_size_bytes(model), where, session.log)
    return model


def _output_error(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """``sqnr_db`` and ``mse`` of the approximations over all (reference, approx) output pairs."""
    reference = torch.cat([r.flatten() for r, _ in pairs])
    approx = torch.cat([a.flatten() for _, a in pairs])
    return {"sqnr_db": sqnr_db(reference, approx), "mse": float((reference - approx).pow(2).mean())}


def _report_inputs(t: Target, inputs: LayerInputs, generator: torch.Generator) -> list[torch.Tensor]:
    """At most REPORT_ROWS random rows of ``inputs`` to measure ``t`` on: Linear, channel-last rows
    (n, C) (already rotated); convolutions, samples of raw calls [(n, C, *spatial), ...]."""
    if channel_dim_of(t.module) == -1:
        return [inputs.rows[torch.randperm(inputs.rows.shape[0], generator=generator)[:REPORT_ROWS]]]
    return [args[0] for args, _ in sample_calls(inputs.calls, REPORT_ROWS, generator)]


def _swap_layer(
    model: nn.Module, t: Target, inputs: LayerInputs, report_inputs: LayerInputs, session: QuantSession, apply: bool,
    generator: torch.Generator,
) -> dict[str, Any]:
    w_spec, a_spec = t.settings.weight, t.settings.activation
    fp_weight = weight_rows(t.module).detach().clone()
    xs = _report_inputs(t, report_inputs, generator)
    fp_outs = [t.module(x) for x in xs]  # before the wrapper replaces the weight
    act = ActivationQuantizer(a_spec, (inputs.lo, inputs.hi)) if a_spec.enabled and apply else None
    qweight = session.weights.get(t.name) if apply else None
    wrapper = QuantizedLayer(t.module, qweight, act, session.rotations.get(t.name))
    error = _output_error([(fp, wrapper.layer(wrapper.quantize_input(x))) for fp, x in zip(fp_outs, xs)])
    _replace(model, t.name, wrapper)
    return {
        "name": t.name, "group": t.group, "block": t.block, "kind": type(t.module).__name__,
        "method": qweight.method if qweight else "fp weights",
        "weight_bits": w_spec.bits if qweight else 16, "weight_granularity": w_spec.describe() if qweight else "-",
        "weight_symmetric": w_spec.symmetric, "act_bits": a_spec.bits if act else 16,
        "act_granularity": a_spec.granularity if act else "-",
        "rotated": t.name in session.rotations,
        "weight_min": _range(fp_weight)[0], "weight_max": _range(fp_weight)[1],
        "act_min": float(inputs.lo.min()), "act_max": float(inputs.hi.max()), **error,
        "report_n": sum(x[:, 0].numel() for x in xs),
    }


def _swap_attend(model: nn.Module, t: Target, ranges: tuple, samples: list[Call]) -> dict[str, Any]:
    """Swap in a QuantizedAttend; its error measured on ``samples`` (calls restricted to some samples)."""
    spec = t.settings.activation
    quantizers = [ActivationQuantizer(spec, r) for r in ranges]
    wrapper = QuantizedAttend(*quantizers, prob_bits=spec.bits)
    error = _output_error([(t.module(*args, **kwargs), wrapper(*args, **kwargs)) for args, kwargs in samples])
    _replace(model, t.name, wrapper)
    lo = min(float(r[0].min()) for r in ranges)
    hi = max(float(r[1].max()) for r in ranges)
    return {
        "name": t.name, "group": t.group, "block": t.block, "kind": "attention matmuls", "method": "rtn",
        "weight_bits": 16, "weight_granularity": "-", "weight_symmetric": True, "act_bits": spec.bits,
        "act_granularity": spec.granularity, "rotated": False, "weight_min": math.nan, "weight_max": math.nan,
        "act_min": lo, "act_max": hi, **error, "report_n": sum(args[0].shape[0] * args[0].shape[2] for args, _ in samples),
    }
