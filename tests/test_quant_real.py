"""Real int8 execution: measured path choice, visible fallbacks, accuracy, a quiet lazy torchao."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quantwm.quant.real import RealQuantConfig, realize
from tests.quant_fixtures import calibration_for, one_thread, tiny_world_model  # noqa: F401  (one_thread: autouse)


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


def _run_python(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter at the repository root (stdout, stderr captured)."""
    return subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=300)


def test_importing_quantwm_leaves_torchao_unloaded_and_prints_nothing():
    run = _run_python("import sys, quantwm.quant, quantwm.experiment; print('torchao' in sys.modules, end='')")
    assert run.returncode == 0, run.stderr
    assert (run.stdout, run.stderr) == ("False", "")


def test_torchao_path_imports_torchao_quietly():
    # importing torchao logs kernels that cannot load here (mxfp8, cutlass sm90a); the int8 path demotes them to DEBUG
    run = _run_python(
        "import sys\n"
        "from quantwm.quant.real import RealQuantConfig, realize\n"
        "from tests.quant_fixtures import calibration_for, tiny_world_model\n"
        "model = tiny_world_model(outlier_channels=0)\n"
        "result = realize(model, RealQuantConfig(mode='w8a16', repeats=1), calibration_for(model, samples=4))\n"
        "print(any(p.startswith('torchao') for p in result.timings.path), 'torchao' in sys.modules, end='')"
    )
    assert run.returncode == 0, run.stderr
    assert (run.stdout, run.stderr) == ("True True", "")
