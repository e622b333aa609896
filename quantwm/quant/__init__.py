"""Post-training quantization of DINO-WM world models: configs, grid, methods, calibration, reports.

Public API::

    calibration = capture_calibration(world_model, ["encoder", "predictor"], run_fp_planning, size=64, seed=0)
    config = QuantConfig(predictor=GroupQuant(WeightQuant(4, granularity="group", group_size=32)), method="gptq")
    quantized = quantize(world_model, config, calibration)   # FP model untouched
    quantized.quantization.report                            # one row per quantized layer
    quantized.quantization.fp_bytes, quantized.quantization.quantized_bytes
"""
from quantwm.quant.calibration import Calibration, capture_calibration
from quantwm.quant.config import GROUPS, ActQuant, BlockSelection, GroupQuant, QuantConfig, WeightQuant
from quantwm.quant.engine import QuantSummary, model_size_bytes, quantize, sqnr_db
from quantwm.quant.methods import METHODS
from quantwm.quant.methods.awq import AWQConfig
from quantwm.quant.methods.gptq import GPTQConfig
from quantwm.quant.methods.omniquant import OmniQuantConfig
from quantwm.quant.methods.omse import OMSEConfig
from quantwm.quant.methods.rotation import RotationConfig
from quantwm.quant.methods.rtn import RTNConfig
from quantwm.quant.methods.smoothquant import SmoothQuantConfig

__all__ = [
    "GROUPS", "METHODS", "AWQConfig", "ActQuant", "BlockSelection", "Calibration", "GPTQConfig", "GroupQuant",
    "OMSEConfig", "OmniQuantConfig", "QuantConfig", "QuantSummary", "RTNConfig", "RotationConfig",
    "SmoothQuantConfig", "WeightQuant", "capture_calibration", "model_size_bytes", "quantize", "sqnr_db",
]
