"""Experiments: config round trip, bad input before work, matched FP / quantized episodes, the
probe, caching of the FP side, calibration and whole experiments."""
from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest

from quantwm import cli
from quantwm.cache import ResultsCache
from quantwm.experiment import CalibrationSpec, ExperimentConfig, ModelSource, PlannerChoice
from quantwm.experiment.options import RunOptions
from quantwm.experiment import run as run_module
from quantwm.experiment.probe import imagination_probe
from quantwm.experiment.run import (
    _episodes, calibration_for, cached_result, experiment_key, loaded_model, plan_side, run_experiment,
)
from quantwm.planning import episodes as episodes_module
from quantwm.planning.presets import PRESETS
from quantwm.quant import GroupQuant, QuantConfig, WeightQuant, quantize

# a small, fast Wall experiment: 2 episodes, MPC with a budget of 4 planner steps
SMALL = dict(planner=PlannerChoice("mpc", overrides=(("budget", 4),)), episodes=2, seed=7,
             calibration=CalibrationSpec(episodes=1, size=24, holdout=8), probe_steps=3, videos=1)


def small_config(**quant: object) -> ExperimentConfig:
    q = QuantConfig(predictor=GroupQuant(WeightQuant(quant.pop("bits", 3))), **quant)
    return ExperimentConfig(ModelSource("wall"), q, **SMALL)


def test_config_round_trips_through_json_and_hashes_by_value() -> None:
    config = small_config(method="gptq")
    again = ExperimentConfig.from_json(config.to_json())
    assert again == config and hash(again) == hash(config)
    assert replace(config, seed=8).to_json() != config.to_json()
    assert config.fp_fields() == small_config(bits=4).fp_fields()  # the FP side ignores the quantization
    with pytest.raises(ValueError, match="unknown experiment config keys"):
        ExperimentConfig.from_dict({**config.to_dict(), "colour": 1})


def test_a_changed_preset_changes_every_planning_key(monkeypatch: pytest.MonkeyPatch) -> None:
    config, sha = small_config(), "ab" * 32
    before = (experiment_key(config, sha), config.fp_fields(), config.key_fields()["calibration_planner_resolved"])
    assert before == (experiment_key(small_config(), sha), small_config().fp_fields(),
                      small_config().key_fields()["calibration_planner_resolved"])
    wall = PRESETS["quick"]["wall"]
    monkeypatch.setitem(PRESETS["quick"], "wall", replace(wall, horizon=wall.horizon + 1))
    assert experiment_key(config, sha) != before[0] and config.fp_fields() != before[1]
    assert config.fp_fields()["planner_resolved"]["horizon"] == wall.horizon + 1
    monkeypatch.setitem(PRESETS["quick"], "wall", replace(wall, cem=replace(wall.cem, samples=wall.cem.samples + 1)))
    assert config.key_fields()["calibration_planner_resolved"] != before[2]  # calibration plans with the preset's CEM


def test_an_fp_side_replaced_by_another_process_mid_experiment_is_no_error(tmp_path, monkeypatch) -> None:
    """Two runs that share an FP side: the other one stores it again (new media, old removed) while
    this one plans its quantized side; this one must not lose the FP arrays it already read."""
    cache = ResultsCache(tmp_path / "results")
    run_experiment(small_config(bits=4), cache=cache)  # caches the FP side
    (fp_entry,) = [cache.get(e.key) for e in cache.list("fp")]
    real_plan_side = run_module.plan_side

    def plan_then_replace(model, fp, config, stage, progress):
        out = real_plan_side(model, fp, config, stage, progress)
        if stage == "planning quantized":
            cache.put(fp_entry.key, "fp", fp_entry.value, media={"fp.npz": fp_entry.media["fp.npz"].read_bytes()})
        return out

    monkeypatch.setattr(run_module, "plan_side", plan_then_replace)
    result = run_experiment(small_config(bits=3), cache=cache)
    assert not result.cached and result.media["fp.npz"].read_bytes() == cache.get(fp_entry.key).media["fp.npz"].read_bytes()


@pytest.mark.parametrize("options, message", [
    (dict(w_bits=9), "weight bits 9 is invalid; valid: 2..8, 16"),
    (dict(w_granularity="group", group_size=0), "group_size >= 1"),
    (dict(method="magic"), "method 'magic' is invalid; valid: awq, gptq"),
    (dict(modules=("predictr",)), "unknown module predictr; valid: encoder, predictor"),
    (dict(blocks=("predictor.block[1]",)), "block selection 'predictor.block\\[1\\]' is invalid"),
    (dict(env="maze"), "unknown env 'maze'; valid: "),
    (dict(episodes=0), "episodes must be an integer >= 1"),
    (dict(probe_steps=51), "probe steps must be an integer 1..50"),
    (dict(w_bits=16), "no module group is quantized"),
    (dict(method="awq", a_bits=8), "AWQ is weight-only; activation bits must be 16"),
    (dict(quant_config="/nonexistent/q.json"), "cannot read quant config /nonexistent/q.json"),
])
def test_bad_options_are_one_clear_error(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunOptions(**options).config()


def test_cli_rejects_bad_input_before_any_work(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("quantwm.experiment.run.calibration_for", lambda *a, **k: pytest.fail("work started"))
    t = time.time()
    assert cli.main(["run", "--env", "wall", "--w-granularity", "group", "--group-size", "4096"]) == 2
    err = capsys.readouterr().err.strip()
    assert "group_size 4096" in err or "group size 4096" in err, err
    assert len(err.splitlines()) == 1
    assert cli.main(["run", "--env", "wall", "--probe-steps", "0"]) == 2
    assert "probe steps must be an integer 1..50" in capsys.readouterr().err
    assert time.time() - t < 10


def _noop_quantized(fp):
    """The predictor wrapped in quantized layers that quantize nothing (the 16-bit control)."""
    config = QuantConfig(predictor=GroupQuant(WeightQuant(8)))
    calibration = calibration_for(fp, "x", small_config(), None)[0]
    return quantize(fp, config, calibration, apply_quantization=False)


def test_noop_quantization_gives_records_identical_to_fp_with_identical_sampler_noise(monkeypatch) -> None:
    fp, _ = loaded_model(ModelSource("wall"))
    noop = _noop_quantized(fp)
    seen: dict[int, list] = {}
    original = episodes_module.optimize

    def spy(model, context, goal, horizon, objective, gens, *args):
        seen.setdefault(id(model), []).append([g.initial_seed() for g in gens])
        return original(model, context, goal, horizon, objective, gens, *args)

    monkeypatch.setattr(episodes_module, "optimize", spy)
    config = small_config()
    _, fp_records = plan_side(fp, fp, config, "planning FP")
    _, q_records = plan_side(noop, fp, config, "planning quantized")
    assert seen[id(fp)] == seen[id(noop)] and len(seen[id(fp)]) >= 2
    for a, b in zip(fp_records, q_records, strict=True):
        assert a.success == b.success and a.index == b.index
        np.testing.assert_array_equal(a.env_actions, b.env_actions)
        np.testing.assert_allclose(a.plan_objectives, b.plan_objectives, atol=1e-6)
        np.testing.assert_allclose(a.plan_true_objectives, b.plan_true_objectives, atol=1e-6)
        for u, v in zip(a.imagined_visual, b.imagined_visual, strict=True):
            np.testing.assert_allclose(u, v, atol=1e-5)
    records, _ = imagination_probe(fp, noop, "wall", _episodes(config), fp_records, 3)
    assert {r["sequence"] for r in records} == {"reference", "fp_plan"}
    for r in records:
        assert max(r["visual"]["quant_vs_fp"]) < 1e-5 and max(r["encoder"]["visual"]) == 0
        assert r["visual"]["fp_vs_true"][0] == 0 and max(r["visual"]["fp_vs_true"]) > 0


def test_a_quantized_encoder_is_judged_by_the_fp_encoder() -> None:
    """True objectives use one yardstick: the reference's true objective does not depend on the
    planning model when the FP model judges, and does when a 2-bit encoder grades itself."""
    fp, _ = loaded_model(ModelSource("wall"))
    config = replace(small_config(), planner=PlannerChoice("cem", overrides=(("opt_steps", 1),)))
    q_config = QuantConfig(encoder=GroupQuant(WeightQuant(2, granularity="per_tensor")))
    calibration = calibration_for(fp, "x", replace(config, quant=q_config), None)[0]
    q = quantize(fp, q_config, calibration)
    _, fp_records = plan_side(fp, fp, config, "fp")
    _, judged = plan_side(q, fp, config, "q")
    _, self_graded = plan_side(q, q, config, "q")
    for a, b, c in zip(fp_records, judged, self_graded):
        assert a.reference_true_objective == pytest.approx(b.reference_true_objective, abs=1e-6)
        assert abs(a.reference_true_objective - c.reference_true_objective) > 1e-4


def test_experiment_result_schema_cache_and_shared_fp_side(tmp_path) -> None:
    cache = ResultsCache(tmp_path / "results")
    stages: list[str] = []
    config = small_config()
    result = run_experiment(config, lambda stage, done, total: stages.append(stage), cache=cache)
    assert not result.cached
    v = result.value
    assert {"config", "fp", "quant", "latent_error", "alignment", "layers", "videos", "timing"} <= set(v)
    assert ExperimentConfig.from_dict(v["config"]) == config
    for side in ("fp", "quant"):
        assert 0 <= v[side]["summary"]["success_rate"] <= 1 and len(v[side]["episodes"]) == 2
    assert [e["index"] for e in v["fp"]["episodes"]] == [e["index"] for e in v["quant"]["episodes"]]
    err = v["latent_error"]
    assert err["steps"] == [0, 1, 2, 3]
    for name in ("quant_vs_fp", "fp_vs_true", "quant_vs_true", "encoder"):
        assert len(err[name]["mean"]) == 4 and all(lo <= m + 1e-9 for lo, m in zip(err[name]["lo"], err[name]["mean"]))
    assert err["quant_vs_fp"]["mean"][-1] > 0  # 3-bit weights drift
    assert all(row["report_rows"] == "held-out" for row in v["layers"])
    assert sorted(v["videos"]) == sorted(f"{k}_{v['fp']['episodes'][0]['index']}.mp4" for k in ("imagination", "planning"))
    assert all(result.media[n].read_bytes()[4:8] == b"ftyp" for n in v["videos"])
    assert stages[0] == "calibrating" and {"quantizing", "planning FP", "planning quantized", "imagination probe",
                                           "rendering"} <= set(stages)
    json.dumps(v, allow_nan=False)  # strict JSON

    t = time.time()
    again = run_experiment(config, cache=cache)
    assert again.cached and again.value == v and time.time() - t < 1.0
    assert cached_result(config, cache).key == result.key

    other = run_experiment(small_config(bits=4), lambda stage, done, total: stages.append(stage), cache=cache)
    assert not other.cached
    assert other.value["fp"] == v["fp"]  # one FP run ...
    assert len(cache.list("fp")) == 1 and len(cache.list("calibration")) == 1  # ... and one calibration, shared
    assert len(cache.list("experiment")) == 2
