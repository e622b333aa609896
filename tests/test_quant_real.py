"""Real int8 execution: measured path choice, visible fallbacks, accuracy."""
from __future__ import annotations

import pytest
import torch

from quantwm.quant.real import RealQuantConfig, realize
from tests.quant_fixtures import calibration_for, tiny_world_model

torch.set_num_threads(1)


def test_realize_reports_every_layer_and_never_hides_a_slower_path():
    model = tiny_world_model(outlier_channels=0)  # per-tensor dynamic int8 activations lose ~10 dB to outlier channels
    example = calibration_for(model, samples=8)
    result = realize(model, RealQuantConfig(mode="w8a8", groups=("predictor", "decoder"), repeats=2), example)
    timings = result.timings
    assert {"fp32", "torch.ao quantize_dynamic (int8 per-channel)"} <= set(timings["path"])
    report = result.report
    assert len(report[report.group == "predictor"]) == 8 and (report.loc[report.group == "decoder", "kernel"].str.startswith("fallback fp32: no int8 kernel")).all()
    for group in ("predictor",):  # the decoder has no Linear: all its layers are fallbacks (checked above)
        rows = timings[(timings.group == group) & (timings.path != "fp32")].dropna(subset=["speedup"])
        used = set(report.loc[(report.group == group) & (report.kind == "Linear"), "kernel"])
        best = rows.loc[rows.speedup.idxmax()] if len(rows) else None
        if best is not None and best.speedup > 1:
            assert used == {best.path}
        else:
            assert all(k.startswith("fallback fp32") for k in used)
    ran = timings[timings.path == "torch.ao quantize_dynamic (int8 per-channel)"].iloc[0]
    assert ran.sqnr_db > 30
    assert result.int8_weight_bytes <= 0.3 * result.fp_weight_bytes
    with torch.no_grad():  # the returned model runs; the FP model is untouched
        x = example.inputs["predictor"][0][0]
        assert result.model.predictor(x).shape == model.predictor(x).shape
    assert all(type(m).__module__.startswith("torch.nn.modules") or "quantwm" in type(m).__module__ for m in model.modules())


def test_realize_rejects_bad_input():
    with pytest.raises(ValueError, match="w8a8, w8a16"):
        RealQuantConfig(mode="w4a16")
    with pytest.raises(ValueError, match="valid: encoder"):
        RealQuantConfig(groups=("planner",))
