"""PTQ methods: GPTQ / OMSE beat RTN, FP-equivalent transforms, OmniQuant training lowers error."""
from __future__ import annotations

import pytest
import torch

from quantwm.quant import (
    AWQConfig, ActQuant, GPTQConfig, GroupQuant, OmniQuantConfig, QuantConfig, WeightQuant, quantize, sqnr_db,
)
from quantwm.quant.methods.gptq import gptq_quantize
from quantwm.quant.methods.rotation import random_hadamard
from quantwm.quant.quantizer import quantize_weight
from tests.quant_fixtures import calibration_for, one_thread, tiny_world_model  # noqa: F401  (one_thread: autouse)


def correlated_inputs(n: int, width: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, width // 4, generator=g) @ torch.randn(width // 4, width, generator=g) + 0.1 * torch.randn(n, width, generator=g)


@pytest.mark.parametrize("spec", [
    WeightQuant(3, granularity="per_channel"), WeightQuant(4, granularity="group", group_size=16),
    WeightQuant(4, symmetric=False, granularity="group", group_size=24),  # 52 = 2 * 24 + 4: partial last group
])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_beats_rtn_on_correlated_inputs(spec, act_order):
    x = correlated_inputs(512, 52)
    w = torch.randn(40, 52, generator=torch.Generator().manual_seed(1))
    rtn = quantize_weight(w, spec).dequant
    gptq = gptq_quantize(w, x.T @ x / x.shape[0], spec, GPTQConfig(act_order=act_order))
    assert sqnr_db(x @ w.T, x @ gptq.dequant.T) > sqnr_db(x @ w.T, x @ rtn.T) + 1.0
    # GPTQ output still lies on the grid of its group
    groups = gptq.dequant.reshape(40, -1) if spec.granularity != "group" else None
    if groups is not None:
        assert all(row.unique().numel() <= 2**spec.bits for row in groups)


def test_random_hadamard_is_orthogonal_for_any_width():
    g = torch.Generator().manual_seed(0)
    for n in (1, 4, 6, 52, 148, 404):
        r = random_hadamard(n, g)
        assert torch.allclose(r @ r.T, torch.eye(n), atol=1e-5)


def _max_output_error(fp, other, cal) -> float:
    with torch.no_grad():
        return max(
            (getattr(fp, g)(*cal.inputs[g][0]) - getattr(other, g)(*cal.inputs[g][0])).abs().max().item()
            for g in ("encoder", "predictor")
        )


@pytest.mark.parametrize("method, act", [("smoothquant", 8), ("awq", 16), ("rotation", 4), ("omniquant", 8)])
def test_transforms_alone_reproduce_fp(method, act):
    model = tiny_world_model()
    cal = calibration_for(model, samples=4)
    settings = GroupQuant(WeightQuant(4, granularity="group", group_size=16), ActQuant(act))
    kw = {"method_config": OmniQuantConfig(epochs=1)} if method == "omniquant" else {}
    config = QuantConfig(encoder=settings, predictor=settings, method=method, **kw)
    transformed = quantize(model, config, cal, apply_quantization=False)
    assert _max_output_error(model, transformed, cal) < 1e-4
    # and the transform really changed weights (not a no-op)
    changed = [n for n, p in transformed.named_parameters() if n.replace(".layer.", ".") in dict(model.named_parameters())
               and not torch.equal(p, dict(model.named_parameters())[n.replace(".layer.", ".")])]
    assert changed


def test_w4a4_rotation_beats_rtn_on_outlier_activations():
    model = tiny_world_model(outlier_channels=3)
    cal = calibration_for(model, samples=8)
    w4a4 = GroupQuant(WeightQuant(4), ActQuant(4))
    errors = {}
    for method in ("rtn", "rotation"):
        q = quantize(model, QuantConfig(predictor=w4a4, method=method), cal)
        with torch.no_grad():
            errors[method] = sqnr_db(model.predictor(*cal.inputs["predictor"][0]), q.predictor(*cal.inputs["predictor"][0]))
    assert errors["rotation"] > errors["rtn"] + 2.0


@pytest.mark.parametrize("method", ["omse", "gptq", "awq"])
def test_data_aware_methods_beat_rtn_on_predictor(method):
    model = tiny_world_model()
    cal = calibration_for(model, samples=8)
    w3 = GroupQuant(WeightQuant(3))
    out = {}
    for m in ("rtn", method):
        q = quantize(model, QuantConfig(predictor=w3, method=m), cal)
        out[m] = q.quantization.report["mse"].mean()
    assert out[method] < out["rtn"]


def test_awq_searches_every_foldable_pair():
    model = tiny_world_model()
    cal = calibration_for(model, samples=4)
    q = quantize(model, QuantConfig(encoder=GroupQuant(WeightQuant(3)), predictor=GroupQuant(WeightQuant(3)), method="awq",
                                    method_config=AWQConfig(clip_steps=0)), cal)
    fp = dict(model.named_parameters())
    scaled = {n.removesuffix(".weight") for n, p in q.named_parameters()
              if n.endswith("norm1.weight") or n.endswith("norm2.weight") or n.endswith("0.norm.weight") or n.endswith("net.0.weight")
              if not torch.equal(p, fp[n])}
    assert len(scaled) == 8  # 2 LayerNorm pairs x 2 blocks x (encoder, predictor)


@pytest.mark.parametrize("act_bits", [16, 6])  # LWC alone (weight-only), LWC + LET
def test_omniquant_training_lowers_block_error(act_bits):
    model = tiny_world_model()
    cal = calibration_for(model, samples=8)
    settings = GroupQuant(WeightQuant(3, granularity="group", group_size=16), ActQuant(act_bits))
    errors = {}
    # let_lr 1e-2, not 5e-2: at 5e-2 LET training under 6-bit activations was chaotic (inputs changed
    # by 1e-6 relative, as a different thread count's float sums do, moved a unit's error ratio
    # from 0.84 to 0.94); here it stays below 0.76 for model seeds 0..3 under such perturbations
    for epochs in (0, 10):
        cfg = OmniQuantConfig(epochs=epochs, batch_size=1, lwc_lr=5e-2, let_lr=1e-2)
        q = quantize(model, QuantConfig(predictor=settings, blocks=("predictor.blocks[0]",), method="omniquant", method_config=cfg), cal)
        log = q.quantization.log["omniquant"]
        assert len(log) == 2  # the block's Attention and FeedForward
        errors[epochs] = sum(u["final_mse"] for u in log.values())
        if epochs == 0:
            assert all(u["final_mse"] == u["initial_mse"] for u in log.values())
        else:
            assert all(u["final_mse"] < 0.9 * u["initial_mse"] for u in log.values())
        errors[f"block{epochs}"] = _first_block_error(model, q, cal.inputs["predictor"][0][0])
    assert errors[10] < 0.9 * errors[0]
    assert errors["block10"] < 0.9 * errors["block0"]  # measured on the returned model, not the training log


@torch.no_grad()
def _first_block_error(fp, quantized, tokens: torch.Tensor) -> float:
    """MSE of predictor block 0's output (x + attn, then + ff), FP vs quantized, on the same input."""
    x = tokens + fp.predictor.pos_embedding[:, : tokens.shape[1]]
    mask = fp.predictor.frame_causal_mask
    outs = []
    for model in (fp, quantized):
        attn, ff = model.predictor.transformer.layers[0]
        h = x + attn(x, mask)
        outs.append(h + ff(h))
    return (outs[0] - outs[1]).pow(2).mean().item()
