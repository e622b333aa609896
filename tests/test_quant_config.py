"""QuantConfig: JSON round trip, stable keys, and bad input rejected before any work."""
from __future__ import annotations

import pytest

from quantwm.quant import (
    ActQuant, GPTQConfig, GroupQuant, OmniQuantConfig, QuantConfig, RotationConfig, WeightQuant, quantize,
)
from tests.quant_fixtures import calibration_for, one_thread, tiny_world_model  # noqa: F401  (one_thread: autouse)


W4G = GroupQuant(WeightQuant(4, granularity="group", group_size=16), ActQuant(8, granularity="per_tensor"), attention_matmuls=True)


@pytest.mark.parametrize("config", [
    QuantConfig(predictor=W4G, encoder=GroupQuant(WeightQuant(8, symmetric=False)), blocks=("predictor.blocks[1:]",),
                method="gptq", method_config=GPTQConfig(act_order=True), max_layer_tokens=512, seed=3),
    QuantConfig(predictor=GroupQuant(WeightQuant("fp"), ActQuant(4, granularity="per_channel")), method="rotation",
                method_config=RotationConfig(weight_method="gptq")),
    QuantConfig(decoder=GroupQuant(WeightQuant(3, granularity="per_tensor")), method="omniquant",
                method_config=OmniQuantConfig(epochs=2)),
])
def test_json_round_trip_and_key(config):
    again = QuantConfig.from_json(config.to_json())
    assert again == config and hash(again) == hash(config) and again.key() == config.key()
    assert len({config.key(), QuantConfig(predictor=W4G).key()}) == 2


def test_defaults_and_fp_alias():
    cfg = QuantConfig(predictor=GroupQuant(WeightQuant("fp"), ActQuant(8)))
    assert cfg.predictor.weight.bits == 16 and cfg.method_config == QuantConfig(predictor=W4G).method_config
    d = QuantConfig(predictor=W4G).to_dict()
    shuffled = dict(reversed(list(d.items())))
    assert QuantConfig.from_dict(shuffled).key() == QuantConfig(predictor=W4G).key()  # independent of key order
    assert QuantConfig(predictor=W4G, seed=1).key() != QuantConfig(predictor=W4G).key()


def test_calibration_size_is_not_a_quant_config_key():
    # what to calibrate on belongs to the experiment layer; a stored config that still names it is refused
    old = {**QuantConfig(predictor=W4G).to_dict(), "calibration_size": 64}
    with pytest.raises(ValueError, match=r"unknown QuantConfig keys \['calibration_size'\]; valid: .*'max_layer_tokens'"):
        QuantConfig.from_dict(old)
    with pytest.raises(TypeError):
        QuantConfig(predictor=W4G, calibration_size=64)


@pytest.mark.parametrize("make, words", [
    (lambda: WeightQuant(9), "2..8"),
    (lambda: WeightQuant(1), "2..8"),
    (lambda: ActQuant(12), "2..8"),
    (lambda: WeightQuant(4, granularity="group"), "group_size"),
    (lambda: WeightQuant(4, granularity="group", group_size=0), "group_size"),
    (lambda: WeightQuant(4, granularity="per_row"), "per_tensor, per_channel, group"),
    (lambda: ActQuant(4, granularity="per_batch"), "per_tensor, per_token, per_channel"),
    (lambda: QuantConfig(predictor=W4G, method="hqq"), "awq, gptq, omniquant, omse, rotation, rtn, smoothquant"),
    (lambda: QuantConfig(), "encoder, predictor"),
    (lambda: QuantConfig(predictor=W4G, blocks=("predictor.layers[0]",)), "predictor.blocks[a:b]"),
    (lambda: QuantConfig(predictor=W4G, blocks=("decoder.blocks[0]",)), "encoder, predictor"),
    (lambda: QuantConfig(predictor=W4G, blocks=("encoder.blocks[0]",)), "not quantized"),
    (lambda: QuantConfig(predictor=W4G, method="awq"), "weight-only"),
    (lambda: QuantConfig(predictor=W4G, method="gptq", method_config=RotationConfig()), "GPTQConfig"),
    (lambda: GroupQuant(WeightQuant(4), attention_matmuls=True), "activation bits"),
    (lambda: QuantConfig(action_encoder=GroupQuant(WeightQuant(8), ActQuant(8), attention_matmuls=True)), "encoder, predictor"),
    (lambda: RotationConfig(weight_method="awq"), "rtn, gptq"),
])
def test_bad_config_rejected(make, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        make()


@pytest.mark.parametrize("config, words", [
    (QuantConfig(predictor=W4G, blocks=("predictor.blocks[5]",)), "out of range; valid: 0..1"),
    (QuantConfig(predictor=W4G, blocks=("predictor.blocks[4:]",)), "selects no block"),
    (QuantConfig(predictor=GroupQuant(WeightQuant(4, granularity="group", group_size=60))), "valid: 1..52"),
])
def test_model_dependent_errors_come_before_any_work(config, words, monkeypatch):
    model = tiny_world_model()
    monkeypatch.setattr("copy.deepcopy", lambda *a, **k: pytest.fail("work started before validation"))
    with pytest.raises(ValueError, match=words.replace(".", r"\.")):
        quantize(model, config, calibration_for(model, samples=2))


def test_missing_calibration_group_rejected():
    model = tiny_world_model()
    cal = calibration_for(model, samples=2)
    del cal.inputs["encoder"]
    with pytest.raises(ValueError, match="no inputs for encoder"):
        quantize(model, QuantConfig(encoder=W4G), cal)
