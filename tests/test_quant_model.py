"""quantize() on a world model: FP untouched, selections, calibration capture, report, size."""
from __future__ import annotations

import math

import pytest
import torch

from quantwm.models.attention import ScaledDotProductAttention
from quantwm.quant import ActQuant, GroupQuant, QuantConfig, WeightQuant, capture_calibration, quantize, sqnr_db
from quantwm.quant.modules import ActivationQuantizer, QuantizedAttend, QuantizedLayer
from tests.quant_fixtures import NUM_HIST, calibration_for, one_thread, tiny_world_model  # noqa: F401  (one_thread: autouse)


W4A8 = GroupQuant(WeightQuant(4, granularity="group", group_size=16), ActQuant(8, granularity="per_tensor"), attention_matmuls=True)


def test_fp_model_bit_identical_and_global_rng_untouched():
    model = tiny_world_model()
    cal = calibration_for(model, samples=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = cal.inputs["predictor"][0][0]
    with torch.no_grad():
        out_before = model.predictor(x)
    rng_before = torch.get_rng_state()
    for method in ("gptq", "rotation", "omniquant", "smoothquant"):
        quantize(model, QuantConfig(encoder=W4A8, predictor=W4A8, decoder=GroupQuant(WeightQuant(4)), method=method), cal)
    assert torch.equal(torch.get_rng_state(), rng_before)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        assert torch.equal(model.predictor(x), out_before)
    assert not any(isinstance(m, (QuantizedLayer, QuantizedAttend)) for m in model.modules())


def test_report_sizes_and_block_selection():
    model = tiny_world_model()
    cal = calibration_for(model, samples=4)
    config = QuantConfig(predictor=W4A8, action_encoder=GroupQuant(WeightQuant(8)), blocks=("predictor.blocks[1]",))
    q = quantize(model, config, cal)
    report = q.quantization.report
    assert set(report["group"]) == {"predictor", "action_encoder"}
    assert set(report.loc[report.group == "predictor", "block"]) == {1}
    assert len(report) == 4 + 1 + 1  # 4 Linears of block 1, its attention matmuls, the action Conv1d
    assert {"name", "group", "block", "weight_bits", "weight_granularity", "act_granularity", "weight_min", "weight_max",
            "act_min", "act_max", "sqnr_db", "mse", "method"} <= set(report.columns)
    assert (report["sqnr_db"] > 10).all() and (report["mse"] > 0).all()
    assert isinstance(q.predictor.transformer.layers[0][0].to_qkv, torch.nn.Linear)  # block 0 untouched
    assert isinstance(q.predictor.transformer.layers[1][0].attend, QuantizedAttend)
    # size: 4-bit weights + one fp16 scale per 16 weights (52 % 16 -> 4 groups of a 52-wide row)
    layer = q.predictor.transformer.layers[1][0].to_qkv
    assert layer.weight_storage_bits == 96 * 52 * 4 + 96 * 4 * 16
    s = q.quantization
    saved = sum(m.layer.weight.numel() * 32 - m.weight_storage_bits for m in q.modules() if isinstance(m, QuantizedLayer))
    assert s.quantized_bytes == s.fp_bytes - saved // 8


def test_weight_only_forward_has_no_quantization_work(monkeypatch):
    model = tiny_world_model()
    cal = calibration_for(model, samples=4)
    q = quantize(model, QuantConfig(predictor=GroupQuant(WeightQuant(3))), cal)
    layer = q.predictor.transformer.layers[0][1].net[1]
    calls = []
    monkeypatch.setattr("quantwm.quant.modules.fake_quantize", lambda *a: calls.append(1))
    monkeypatch.setattr("quantwm.quant.quantizer.fake_quantize", lambda *a: calls.append(1))
    x = torch.randn(3, 52, generator=torch.Generator().manual_seed(0))
    assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.layer.weight, layer.layer.bias))
    with torch.no_grad():
        q.predictor(cal.inputs["predictor"][0][0])
    assert not calls
    assert len(layer.layer.weight.unique()) <= 8 * 52  # on the 3-bit grid: <= 8 values per row


def test_quantized_attend_matches_fp_attention_and_quantizes():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 8, 4, generator=g) for _ in range(3))
    mask = torch.tril(torch.ones(8, 8, dtype=torch.bool))
    fp = ScaledDotProductAttention()(q, k, v, mask)
    def quantizers(bits):
        return [ActivationQuantizer(ActQuant(bits, granularity="per_token")) for _ in range(3)]
    close = QuantizedAttend(*quantizers(8), prob_bits=8)(q, k, v, mask)
    coarse = QuantizedAttend(*quantizers(3), prob_bits=3)(q, k, v, mask)
    assert sqnr_db(fp, close) > 30 and sqnr_db(fp, coarse) < sqnr_db(fp, close) - 10


def test_capture_calibration_is_seeded_and_uses_real_calls():
    model = tiny_world_model()
    p, d = model.cfg.encoder.num_patches, model.cfg.token_dim
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(10, NUM_HIST * p, d, generator=g) for _ in range(3)] + [torch.randn(5, p, d, generator=g)]  # one shorter sequence

    def planning():
        with torch.no_grad():
            for b in batches:
                model.predictor(b)

    rng = torch.get_rng_state()
    a = capture_calibration(model, ["predictor"], planning, size=12, seed=0, batch_size=4)
    b = capture_calibration(model, ["predictor"], planning, size=12, seed=0)
    c = capture_calibration(model, ["predictor"], planning, size=12, seed=1)
    assert torch.equal(torch.get_rng_state(), rng)
    assert a.size("predictor") == b.size("predictor") == 12
    assert all(x[0].shape[0] <= 4 for x in a.inputs["predictor"])
    pool = torch.cat([x.reshape(x.shape[0], -1)[:, :5] for x in batches])
    kept = torch.cat([x[0].reshape(x[0].shape[0], -1)[:, :5] for x in a.inputs["predictor"]])
    assert all((pool == row).all(1).any() for row in kept)  # every kept sample is a real input
    signature = lambda cal: sorted(float(x[0].sum()) for x in cal.inputs["predictor"])  # noqa: E731
    assert math.isclose(sum(signature(a)), sum(signature(b)), rel_tol=1e-6) and signature(a) != signature(c)
    quantize(model, QuantConfig(predictor=W4A8), a)  # mixed sequence lengths replay fine
    with pytest.raises(ValueError, match="never called"):
        capture_calibration(model, ["encoder"], planning, size=4, seed=0)
    with pytest.raises(ValueError, match="valid: encoder"):
        capture_calibration(model, ["planner"], planning, size=4, seed=0)


def test_quantized_rollout_shortcuts_are_exact():
    """The rollout's cached / newest-only predictor calls equal plain full-window calls on a
    quantized model too (per-token activations and attention matmuls quantized)."""
    from quantwm.models import Latents

    model = tiny_world_model()
    per_token = GroupQuant(WeightQuant(4, granularity="group", group_size=16), ActQuant(8, granularity="per_token"), attention_matmuls=True)
    q = quantize(model, QuantConfig(predictor=per_token), calibration_for(model, samples=4))
    p, e = model.cfg.encoder.num_patches, model.cfg.visual_dim + model.cfg.proprio_emb_dim
    g = torch.Generator().manual_seed(0)
    lat = Latents(torch.randn(3, 1, p, model.cfg.visual_dim, generator=g), torch.randn(3, 1, model.cfg.proprio_emb_dim, generator=g))
    actions = torch.randn(3, NUM_HIST + 2, model.cfg.planner_action_dim, generator=g)
    with torch.no_grad():
        fast = q.rollout(lat, actions)
        emb = q.encode_actions(actions)
        seq = q.tokens(lat, emb[:, :1])
        for t in range(1, actions.shape[1] + 1):
            newest = q.predict(seq[:, -NUM_HIST:])[:, -1:]
            if t < actions.shape[1]:
                newest = torch.cat([newest[..., :e], emb[:, t : t + 1, None].expand(-1, -1, p, -1)], -1)
            seq = torch.cat([seq, newest], 1)
    assert (fast - seq).abs().max().item() < 1e-4
