"""quantwm.analysis on hand-made records with known answers."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from quantwm.analysis import (
    alignment, auroc, bootstrap_mean_ci, compare_alignment, failure_split, final_step_error, group_summary,
    latent_error_curves, layer_table, opt_steps_table, opt_steps_verdict, spearman, worst_layers,
)
from quantwm.experiment import EvalResult
from quantwm.planning import EpisodeRecord


def record(index: int, success: bool, plan_objectives: list[float], plan_true: list[float], *, distance: float = 1.0,
           reference: float = math.nan, reference_true: float = math.nan) -> EpisodeRecord:
    return EpisodeRecord(
        index=index, seed=100 + index, success=success, state_distance=distance, final_objective=plan_objectives[-1],
        objective_traces=[[o + 1, o] for o in plan_objectives], plan_objectives=plan_objectives,
        planned_actions=[np.zeros((5, 2)) for _ in plan_objectives], plan_starts=[5 * k for k in range(len(plan_objectives))],
        env_actions=np.zeros((3, 2)), states=np.zeros((4, 5)), wall_time_s=0.1, reference_objective=reference,
        plan_true_objectives=plan_true, reference_true_objective=reference_true)


def episode(index: int, success: bool, plan_objectives: list[float], plan_true: list[float], **kw) -> dict:
    return record(index, success, plan_objectives, plan_true, **kw).to_json()


# latent error

def probe_record(ep: int, sequence: str, scale: float, k: int = 3) -> dict:
    curve = [scale * t for t in range(k + 1)]
    return {"episode": ep, "sequence": sequence,
            "visual": {"quant_vs_fp": curve, "fp_vs_true": [2 * v for v in curve], "quant_vs_true": [3 * v for v in curve]},
            "proprio": {"quant_vs_fp": curve, "fp_vs_true": curve, "quant_vs_true": curve},
            "encoder": {"visual": [0.1] * (k + 1), "proprio": [0.2] * (k + 1)}}


def test_bootstrap_ci_contains_mean_shrinks_and_is_seeded():
    rng = np.random.default_rng(1)
    small, large = rng.normal(1.0, 1.0, 10), rng.normal(1.0, 1.0, 1000)
    mean, lo, hi = bootstrap_mean_ci(small)
    assert lo <= mean <= hi and mean == pytest.approx(small.mean())
    _, lo_l, hi_l = bootstrap_mean_ci(large)
    assert hi_l - lo_l < (hi - lo) / 3
    assert bootstrap_mean_ci(small, seed=7) == bootstrap_mean_ci(small, seed=7)
    assert bootstrap_mean_ci(small, seed=7) != bootstrap_mean_ci(small, seed=8)
    assert bootstrap_mean_ci([2.0, None, math.nan]) == (2.0, 2.0, 2.0)
    assert bootstrap_mean_ci([None, math.nan]) == (None, None, None)
    means, los, his = bootstrap_mean_ci(np.stack([small, small * 2], axis=1))
    assert (means[0], los[0], his[0]) == bootstrap_mean_ci(small)
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_ci(small, level=1.5)


def test_latent_curves_pool_filter_skip_missing_and_keep_outliers():
    probe = [probe_record(e, "reference", 1.0) for e in range(5)] + [probe_record(9, "reference", 50.0)]
    probe += [probe_record(e, "fp_plan", 2.0) for e in range(5)]
    probe[1]["visual"]["quant_vs_fp"][2] = None
    probe[2]["visual"]["quant_vs_fp"][2] = math.nan
    probe[3]["visual"]["fp_vs_true"] = None  # not probed
    ref = latent_error_curves(probe, sequence="reference")
    assert set(ref) == {"quant_vs_fp", "fp_vs_true", "quant_vs_true", "encoder"}
    c = ref["quant_vs_fp"]
    assert c["steps"] == [0, 1, 2, 3]
    assert c["mean"][2] == pytest.approx((3 * 2.0 + 100.0) / 4)  # two missing values skipped
    assert c["mean"][0] == c["lo"][0] == c["hi"][0] == 0.0
    assert all(lo <= m <= hi for m, lo, hi in zip(c["mean"], c["lo"], c["hi"]))
    outlier = next(p for p in c["per_episode"] if p["episode"] == 9)
    assert outlier == {"episode": 9, "sequence": "reference", "values": [0.0, 50.0, 100.0, 150.0]}
    assert c["per_episode"][1]["values"][2] is None
    assert ref["encoder"]["mean"] == pytest.approx([0.1] * 4)
    assert ref["fp_vs_true"]["per_episode"][3]["values"] == [None] * 4
    assert ref["fp_vs_true"]["mean"][1] == pytest.approx((4 * 2.0 + 100.0) / 5)
    pooled = latent_error_curves(probe, part="proprio")
    assert len(pooled["fp_vs_true"]["per_episode"]) == 11
    assert final_step_error(pooled)["quant_vs_fp"]["step"] == 3
    assert final_step_error(pooled)["encoder"]["mean"] == pytest.approx(0.2)
    json.dumps(ref, allow_nan=False)
    with pytest.raises(ValueError, match="visual, proprio"):
        latent_error_curves(probe, part="depth")
    with pytest.raises(ValueError, match="reference, fp_plan"):
        latent_error_curves(probe, sequence="demo")


# alignment

def test_auroc_known_values():
    labels = [True, True, False, False]
    assert auroc([0.1, 0.2, 0.5, 0.9], labels) == 1.0
    assert auroc([0.5, 0.9, 0.1, 0.2], labels) == 0.0
    assert auroc([0.3] * 4, labels) == 0.5
    assert auroc([0.1, 0.5, 0.3, 0.9], labels) == 0.75
    assert auroc([0.1, 0.2], [True, True]) is None
    assert auroc([0.1, None, 0.5], [True, False, False]) == 1.0


def test_spearman_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert spearman([1, 2], [1, 2]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_alignment_points_and_metrics():
    eps = [episode(0, True, [0.5, 0.1], [0.6, 0.2], distance=0.1), episode(1, True, [0.2], [0.3], distance=0.5),
           episode(2, False, [0.3], [0.9], distance=2.0), episode(3, False, [0.4], [0.5], distance=3.0)]
    a = alignment(eps)
    assert a["n"] == 4 and a["success_rate"] == 0.5
    assert a["auroc_objective_success"] == 1.0
    assert a["spearman_objective_distance"] == pytest.approx(1.0)
    assert a["spearman_imagined_true"] == pytest.approx(spearman([0.5, 0.1, 0.2, 0.3, 0.4], [0.6, 0.2, 0.3, 0.9, 0.5]))
    assert a["median_optimism"] == pytest.approx(0.1)
    assert a["auroc_true_objective_success"] == 1.0
    assert a["points"][0] == {"episode": 0, "success": True, "state_distance": 0.1, "final_objective": 0.1,
                              "true_objective": 0.2}
    json.dumps(a, allow_nan=False)


def test_compare_alignment_matched_counts_and_mismatch():
    fp = [episode(i, s, [0.1], [0.2], distance=1.0) for i, s in enumerate([True, True, False, False, True])]
    quant = [episode(i, s, [0.1], [0.2], distance=d) for i, (s, d) in enumerate(
        zip([True, False, True, False, False], [1.0, 2.0, 3.0, 1.0, 2.0]))]
    m = compare_alignment(fp, quant[::-1])["matched"]
    assert (m["n"], m["both_succeed"], m["fp_only"], m["quant_only"], m["neither"]) == (5, 1, 2, 1, 1)
    assert m["mean_state_distance_diff"] == pytest.approx(0.8)
    assert m["state_distance_diff_lo"] <= 0.8 <= m["state_distance_diff_hi"]
    with pytest.raises(ValueError, match="differ"):
        compare_alignment(fp, quant[:4])


# failure split

def crafted_records() -> list[EpisodeRecord]:
    return [
        record(0, False, [0.2], [0.5], reference=0.3, reference_true=0.6),  # objective: its real frames beat the reference's
        record(1, False, [0.4, 0.2], [0.9, 0.8], reference=0.3, reference_true=0.6),  # model: a replan imagined below the reference
        record(2, False, [0.5], [0.9], reference=0.3, reference_true=0.5),  # search: nothing imagined as good as the reference
        record(3, True, [0.1], [0.2], reference=0.3, reference_true=0.25),
        record(4, True, [0.1], [0.3]),  # no reference: left out
    ]


def test_failure_split_categories():
    split = failure_split([r.to_json() for r in crafted_records()])
    assert split == {
        "episodes_with_reference": 4, "first_plan_rated_below_reference": 0.5,
        "failures_objective_prefers_own_plan": 1, "failures_model_prefers_own_plan": 1,
        "failures_search_missed_reference": 1, "median_reference_objective": 0.3,
        "median_optimism_failed": pytest.approx(0.45), "median_optimism_succeeded": pytest.approx(0.1),
    }
    assert failure_split([episode(0, False, [0.1], [0.2])]) == {}


def test_failure_split_is_the_same_from_records_json_and_eval_summaries():
    records = crafted_records()
    expected = failure_split([r.to_json() for r in records])
    assert failure_split(json.loads(json.dumps([r.to_json() for r in records]))) == expected
    summary = EvalResult("wall", "cem", None, records, 1.0).summary()
    assert {k: summary[k] for k in expected} == expected


# optimisation steps

def run(side: str, steps: int, successes: int, n: int, objective: float, true: float) -> dict:
    return {"side": side, "opt_steps": steps,
            "episodes": [episode(i, i < successes, [objective], [true]) for i in range(n)]}


def test_opt_steps_table_wilson_and_verdict():
    runs = [run("quant", 30, 8, 20, 0.2, 0.9), run("fp", 10, 10, 20, 0.5, 0.6), run("quant", 10, 7, 20, 0.5, 0.8),
            run("fp", 30, 14, 20, 0.3, 0.4)]
    rows = opt_steps_table(runs)
    assert [(r["side"], r["opt_steps"]) for r in rows] == [("fp", 10), ("fp", 30), ("quant", 10), ("quant", 30)]
    q10 = rows[2]
    z, n, p = 1.959963984540054, 20, 7 / 20
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (q10["success_lo"], q10["success_hi"]) == pytest.approx((centre - half, centre + half))
    assert (q10["success_lo"], q10["success_hi"]) == pytest.approx((0.1812, 0.5671), abs=1e-4)
    assert q10["n"] == 20 and q10["success_rate"] == 0.35
    assert q10["mean_objective"] == pytest.approx(0.5) and q10["mean_true_objective"] == pytest.approx(0.8)
    v = opt_steps_verdict(rows)
    assert v["quant"]["objective_falls"] and v["quant"]["success_rises"] and v["quant"]["success_intervals_overlap"]
    assert v["quant"]["true_objective_falls"] is False
    assert (v["fp"]["success_from"], v["fp"]["success_to"]) == (0.5, 0.7)
    assert "quant: 10 -> 30" in v["summary"]
    assert opt_steps_verdict(rows[:1])["fp"] is None
    json.dumps(v, allow_nan=False)
    with pytest.raises(ValueError, match="two runs"):
        opt_steps_table(runs + [run("fp", 10, 1, 2, 0.1, 0.1)])
    with pytest.raises(ValueError, match="side"):
        opt_steps_table([run("int8", 10, 1, 2, 0.1, 0.1)])


# layers

def layer(name: str, group: str, sqnr: float | None, mse: float) -> dict:
    return {"name": name, "group": group, "block": 0, "kind": "Linear", "method": "rtn", "weight_bits": 4,
            "act_bits": 16, "sqnr_db": sqnr, "mse": mse}


def test_layer_table_worst_layers_and_group_summary():
    a = [layer("enc.0", "encoder", 30.0, 1e-3), layer("pred.0", "predictor", 10.0, 1.0), layer("pred.1", "predictor", 20.0, 1.0)]
    b = [layer("pred.1", "predictor", 15.0, 1.0), layer("pred.2", "predictor", None, 0.0)]
    table = layer_table({"w4": a, "w8": b})
    assert list(table.index) == ["enc.0", "pred.0", "pred.1", "pred.2"] and list(table.columns) == ["w4", "w8"]
    assert table.loc["pred.1", "w8"] == 15.0 and math.isnan(table.loc["enc.0", "w8"]) and math.isnan(table.loc["pred.2", "w8"])
    assert [r["name"] for r in worst_layers(a + b, n=2)] == ["pred.0", "pred.1"]
    summary = group_summary(a + b[1:])
    assert [s["group"] for s in summary] == ["encoder", "predictor"]
    pred = summary[1]
    assert (pred["layers"], pred["measured"], pred["worst_layer"]) == (3, 2, "pred.0")
    assert pred["mean_sqnr_db"] == pytest.approx(15.0) and pred["min_sqnr_db"] == 10.0
    assert pred["pooled_sqnr_db"] == pytest.approx(10 * math.log10((10 + 100) / 2))  # dB of the mean ratio, not 15
    with pytest.raises(ValueError, match="repeats"):
        layer_table({"x": a + a})
