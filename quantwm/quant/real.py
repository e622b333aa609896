"""Real int8 execution of world-model groups, the kernel chosen per device by measurement.

Candidates per (device, mode): on CPU, W8A8 through torch.ao ``quantize_dynamic`` (fbgemm / x86:
per-channel int8 weights, int8 activations quantized per tensor at run time, over everything
in one call: a sample's outputs depend on the batch it is in) or torchao's
int8 dynamic-activation config; W8A16 through torchao's int8 weight-only config. On CUDA,
torchao's configs. Every candidate is applied to a copy of each group and timed on the example
inputs, interleaved with fp32; the fastest is used only if it beats fp32, otherwise the group
stays fp32 and every layer says so. Layers no candidate can take (convolutions, embeddings'
Conv1d) are listed as fp32 fallbacks in the report, never dropped silently. torchao is imported
only when one of its candidates runs, its loader messages demoted to DEBUG.
"""
from __future__ import annotations

import copy
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import pandas as pd
import torch
from torch import nn

from quantwm.quant.calibration import Calibration
from quantwm.quant.config import GROUPS
from quantwm.quant.engine import sqnr_db
from quantwm.quant.layout import QUANTIZABLE

REAL_MODES = ("w8a8", "w8a16")
log = logging.getLogger(__name__)

# What importing torchao logs at WARNING that says nothing about the int8 configs used here
# (logger -> message text): optional kernels built for other CUDA / Python versions (mxfp8,
# cutlass sm90a) that fail to load, and torch's deprecation notice on an Enum torchao registers.
_TORCHAO_IMPORT_NOISE = {"torchao": "Failed to load ", "torch.utils._pytree": "is an Enum subclass"}


class _DemoteToDebug(logging.Filter):
    """Drops records whose message contains ``text`` after re-logging them at DEBUG under ``log``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.text not in record.getMessage():
            return True
        log.debug("while importing torchao, %s: %s", record.name, record.getMessage())
        return False


def _torchao_quantization() -> ModuleType:
    """``torchao.quantization``, imported on first use (only the torchao int8 paths need it, so
    importing quantwm never loads torchao) with its known loader messages demoted to DEBUG."""
    filters = [(logging.getLogger(name), _DemoteToDebug(text)) for name, text in _TORCHAO_IMPORT_NOISE.items()]
    for logger, f in filters:
        logger.addFilter(f)
    try:
        import torchao.quantization
    finally:
        for logger, f in filters:
            logger.removeFilter(f)
    return torchao.quantization


def _quantize_dynamic(module: nn.Module) -> nn.Module:
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
        return quantize_dynamic(module, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


def _torchao(config_name: str) -> Callable[[nn.Module], nn.Module]:
    def apply(module: nn.Module) -> nn.Module:
        tq = _torchao_quantization()
        tq.quantize_(module, getattr(tq, config_name)(), filter_fn=lambda m, _: isinstance(m, nn.Linear))
        return module
    return apply


CANDIDATES: dict[tuple[str, str], dict[str, Callable[[nn.Module], nn.Module]]] = {
    ("cpu", "w8a8"): {"torch.ao quantize_dynamic (int8 per-channel)": _quantize_dynamic,
                      "torchao Int8DynamicActivationInt8Weight": _torchao("Int8DynamicActivationInt8WeightConfig")},
    ("cpu", "w8a16"): {"torchao Int8WeightOnly": _torchao("Int8WeightOnlyConfig")},
    ("cuda", "w8a8"): {"torchao Int8DynamicActivationInt8Weight": _torchao("Int8DynamicActivationInt8WeightConfig")},
    ("cuda", "w8a16"): {"torchao Int8WeightOnly": _torchao("Int8WeightOnlyConfig")},
}


@dataclass(frozen=True)
class RealQuantConfig:
    """``mode`` w8a8 / w8a16, the ``groups`` to run in int8, ``repeats`` timed forwards per path."""

    mode: str = "w8a8"
    groups: tuple[str, ...] = ("predictor",)
    repeats: int = 5

    def __post_init__(self) -> None:
        if self.mode not in REAL_MODES:
            raise ValueError(f"real mode {self.mode!r} is invalid; valid: {', '.join(REAL_MODES)}")
        bad = [g for g in self.groups if g not in GROUPS]
        if bad or not self.groups:
            raise ValueError(f"real groups {bad or '()'} invalid; valid: {', '.join(GROUPS)}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")


@dataclass
class RealQuantized:
    """The int8 model, the per-group measurements (``timings``: group, path, seconds, speedup,
    sqnr_db, error) and the per-layer report (name, group, kind, kernel). Weight bytes cover the
    groups' Linear weights: fp32 versus int8 with fp32 per-channel scales."""

    model: nn.Module
    timings: pd.DataFrame
    report: pd.DataFrame
    fp_weight_bytes: int
    int8_weight_bytes: int


def _time(fn: Callable[[], torch.Tensor]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.inference_mode()
def realize(world_model: nn.Module, config: RealQuantConfig, example: Calibration) -> RealQuantized:
    """A copy of ``world_model`` whose ``config.groups`` run real int8 Linears where a measured
    kernel beats fp32 on this device; ``example`` holds one input batch per group to time on."""
    missing = [g for g in config.groups if g not in example.inputs or not isinstance(getattr(world_model, g, None), nn.Module)]
    if missing:
        raise ValueError(f"groups {missing} lack a module or example inputs; example has: {', '.join(example.inputs)}")
    device = next(world_model.parameters()).device.type
    candidates = CANDIDATES.get((device, config.mode))
    if candidates is None:
        raise ValueError(f"no int8 path for {config.mode} on {device}; valid: {sorted(CANDIDATES)}")
    model = copy.deepcopy(world_model).eval()
    timings, report = [], []
    fp_bytes = int8_bytes = 0
    for group in config.groups:
        fp_module = getattr(model, group)
        batch = example.inputs[group][0]
        reference = fp_module(*batch)
        paths = {"fp32": fp_module}
        errors = {}
        seconds = {"fp32": [_time(lambda: fp_module(*batch))]}
        for name, apply in candidates.items():
            try:
                paths[name] = apply(copy.deepcopy(fp_module))
                seconds[name] = [_time(lambda m=paths[name]: m(*batch))]
            except (RuntimeError, NotImplementedError, AssertionError) as err:  # recorded, shown in timings
                errors[name] = f"{type(err).__name__}: {err}"[:200]
                paths.pop(name, None)
        # paths over 3x slower than fp32 on their first run are not repeated (one kernel here ran 12x slower)
        repeated = [n for n in paths if seconds[n][0] < 3 * seconds["fp32"][0]]
        for _ in range(config.repeats):
            for name in repeated:
                seconds[name].append(_time(lambda m=paths[name]: m(*batch)))
        fp_time = statistics.median(seconds["fp32"])
        for name in candidates:
            if name in errors:
                timings.append({"group": group, "path": name, "seconds": float("nan"), "speedup": float("nan"),
                                "sqnr_db": float("nan"), "error": errors[name]})
        for name, module in paths.items():
            t = statistics.median(seconds[name])
            timings.append({"group": group, "path": name, "seconds": t, "speedup": fp_time / t,
                            "sqnr_db": sqnr_db(reference, module(*batch)), "error": ""})
        faster = {n: statistics.median(s) for n, s in seconds.items() if n != "fp32" and statistics.median(s) < fp_time}
        chosen = min(faster, key=faster.get) if faster else None
        if chosen:
            setattr(model, group, paths[chosen])
        best = max((r for r in timings if r["group"] == group and r["path"] != "fp32" and r["speedup"] == r["speedup"]),
                   key=lambda r: r["speedup"], default=None)
        for name, layer in fp_module.named_modules():
            if not isinstance(layer, QUANTIZABLE):
                continue
            is_linear = isinstance(layer, nn.Linear)
            if is_linear:
                fp_bytes += layer.weight.numel() * 4
                int8_bytes += layer.weight.numel() + layer.out_features * 4  # int8 weights + fp32 per-channel scales
            if chosen and is_linear:
                kernel = chosen
            elif not is_linear:
                kernel = f"fallback fp32: no int8 kernel for {type(layer).__name__}"
            elif best is None:
                kernel = "fallback fp32: no int8 path ran on this device"
            else:
                kernel = f"fallback fp32: fastest int8 path ({best['path']}) ran at {best['speedup']:.2f}x fp32 speed"
            report.append({"name": f"{group}.{name}", "group": group, "kind": type(layer).__name__, "kernel": kernel})
    return RealQuantized(model, pd.DataFrame(timings), pd.DataFrame(report), fp_bytes, int8_bytes)
