"""Figures build from hand-made analysis records, label their axes and keep the FP / quantized colours."""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import pytest

from quantwm.viz.figures import (
    FP_COLOR, QUANT_COLOR, latent_error_figure, layer_bars_figure, layer_heatmap_figure, objective_success_figure,
    opt_steps_figure, success_bits_figure)


def _curve(mean: list[float]) -> dict:
    return {"steps": list(range(len(mean))), "mean": mean, "lo": [0.8 * m for m in mean], "hi": [1.2 * m for m in mean],
            "per_episode": [{"episode": e, "sequence": "random", "values": [m * (1 + 0.1 * e) for m in mean]}
                            for e in range(3)]}


CURVES = {"quant_vs_fp": _curve([0.0, 0.1, 0.2, 0.4]), "quant_vs_true": _curve([0.05, 0.2, 0.3, 0.5]),
          "fp_vs_true": _curve([0.0, 0.05, 0.1, 0.2]), "encoder": _curve([0.02, 0.02, 0.02, 0.02])}


def _line_colors(fig: go.Figure) -> set[str]:
    return {t.line.color for t in fig.data if t.line is not None and t.line.color}


def _axis_titles(fig: go.Figure) -> list[str]:
    layout = fig.layout
    return [layout[k].title.text for k in layout if k.startswith(("xaxis", "yaxis"))]


def test_latent_error_figure() -> None:
    fig = latent_error_figure(CURVES, show_episodes=True, title="probe")
    assert fig.layout.xaxis.title.text == "planner step (open loop, identical actions)"
    assert fig.layout.yaxis.title.text == "latent error (RMS, latent units)"
    names = {t.name for t in fig.data if t.showlegend is not False}
    assert {"quantized vs FP imagination", "encoder only, on real frames"} <= names
    assert any("floor" in n for n in names)
    assert {FP_COLOR, QUANT_COLOR} <= _line_colors(fig)
    dashes = {t.name: t.line.dash for t in fig.data if t.mode == "lines+markers"}
    assert dashes["quantized vs FP imagination"] == "solid" and dashes["quantized imagination vs real frames"] == "dash"
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 4 and all("rgba" in t.fillcolor for t in bands)
    assert len(fig.data) == 4 * (2 + 3)  # band + mean + 3 episodes per curve
    assert 360 <= fig.layout.height <= 420 and fig.layout.width is None


def test_latent_error_log_axis_drops_non_positive_points() -> None:
    fig = latent_error_figure(CURVES, log_y=True)
    assert fig.layout.yaxis.type == "log"
    for trace in fig.data:
        assert all(y > 0 for y in trace.y)
    means = {t.name: t for t in fig.data if t.mode == "lines+markers"}
    assert list(means["quantized vs FP imagination"].x) == [1, 2, 3]  # step 0 (error 0) dropped
    assert list(means["encoder only, on real frames"].x) == [0, 1, 2, 3]


def test_latent_error_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        latent_error_figure({})
    with pytest.raises(ValueError, match="unknown curve"):
        latent_error_figure({"mystery": _curve([1.0])})
    with pytest.raises(ValueError, match="same length"):
        latent_error_figure({"quant_vs_fp": {**_curve([1.0, 2.0]), "lo": [1.0]}})


POINTS = {
    "fp": [{"episode": 0, "success": True, "state_distance": 0.5, "final_objective": 0.01, "true_objective": 0.02},
           {"episode": 1, "success": False, "state_distance": 3.0, "final_objective": 0.2, "true_objective": 0.3}],
    "quant": [{"episode": 0, "success": False, "state_distance": 2.0, "final_objective": 0.0, "true_objective": 0.4},
              {"episode": 1, "success": False, "state_distance": 4.0, "final_objective": 0.1, "true_objective": 0.5}],
}


def test_objective_success_figure() -> None:
    fig = objective_success_figure(POINTS, labels={"quant": "RTN W3 per-channel predictor"})
    assert fig.layout.xaxis.title.text == "final objective (latent MSE to goal)"
    assert fig.layout.yaxis.title.text == "final state distance (env units)"
    markers = [t for t in fig.data if t.mode == "markers"]
    outline = {t.name.split(" · ")[0]: t.marker.line.color for t in markers}
    assert outline == {"FP": FP_COLOR, "RTN W3 per-channel predictor": QUANT_COLOR}
    assert {t.marker.symbol for t in markers} == {"circle", "diamond"}
    assert len({t.marker.color for t in markers}) == 2 and not {t.marker.color for t in markers} & {FP_COLOR, QUANT_COLOR}
    joins = [t for t in fig.data if t.mode == "lines"]
    assert len(joins) == 1 and sum(x is None for x in joins[0].x) == 2  # two episodes joined
    assert "episode" in markers[0].hovertemplate and "state distance" in markers[0].hovertemplate


def test_objective_success_log_axis_drops_non_positive_points() -> None:
    fig = objective_success_figure(POINTS, log_x=True)
    assert fig.layout.xaxis.type == "log"
    xs = [x for t in fig.data for x in t.x if x is not None]
    assert xs and all(x > 0 for x in xs) and 0.0 not in xs


def test_objective_success_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="keyed by"):
        objective_success_figure({"other": []})
    with pytest.raises(ValueError, match="lacks"):
        objective_success_figure({"fp": [{"episode": 0}]})


ROWS = [{"opt_steps": s, "side": side, "n": 10, "success_rate": r, "success_lo": r - 0.1, "success_hi": min(1, r + 0.1),
         "mean_objective": 1 / s, "mean_true_objective": 1.5 / s}
        for s in (1, 5, 20, 50) for side, r in (("fp", 0.8), ("quant", 0.4))]


def test_opt_steps_figure() -> None:
    fig = opt_steps_figure(ROWS)
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == [1, 5, 20, 50]
    assert fig.layout.xaxis.title.text == "optimiser steps" and fig.layout.yaxis.title.text == "success rate"
    assert fig.layout.yaxis2.title.text == "objective (latent MSE to goal)"
    assert {FP_COLOR, QUANT_COLOR} == _line_colors(fig)
    success = [t for t in fig.data if t.name.endswith("success")]
    assert all(t.error_y.array is not None for t in success)
    assert {t.line.dash for t in fig.data if "true" in t.name} == {"dash"}
    with pytest.raises(ValueError, match="side"):
        opt_steps_figure([{**ROWS[0], "side": "int8"}])
    with pytest.raises(ValueError, match="lacks"):
        opt_steps_figure([{"opt_steps": 1}])


def test_success_bits_figure() -> None:
    rows = [{"label": "rtn w4", "w_bits": 4, "fp_success": 0.8, "quant_success": 0.6, "quant_lo": 0.4, "quant_hi": 0.8},
            {"label": "rtn w8", "w_bits": 8, "fp_success": 0.8, "quant_success": 0.8},
            {"label": "gptq w4", "w_bits": 4, "fp_success": 0.8, "quant_success": 0.7}]
    fig = success_bits_figure(rows)
    fp, quant = fig.data
    assert list(fp.x) == ["rtn w8", "gptq w4", "rtn w4"]  # w_bits desc, then label
    assert fp.marker.color == FP_COLOR and quant.marker.color == QUANT_COLOR
    assert fig.layout.yaxis.title.text == "success rate" and fig.layout.xaxis.title.text
    assert quant.error_y.array[2] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="at least one"):
        success_bits_figure([])


def test_layer_heatmap_figure() -> None:
    table = pd.DataFrame({"rtn w8": [40.0, 38.0, math.nan], "rtn w4": [20.0, 15.0, 12.0]},
                         index=["predictor.0.qkv", "predictor.0.proj", "predictor.1.qkv"])
    fig = layer_heatmap_figure(table, zmin=0, zmax=45)
    heat = fig.data[0]
    assert len(heat.z) == 3 and len(heat.z[0]) == 2
    assert list(heat.y) == list(table.index) and list(heat.x) == list(table.columns)
    assert math.isnan(heat.z[2][0])  # NaN kept: drawn as a gap
    assert heat.colorbar.title.text == "SQNR (dB)" and "SQNR" in heat.hovertemplate
    assert fig.layout.xaxis.title.text == "experiment" and fig.layout.yaxis.title.text == "layer"
    big = layer_heatmap_figure(pd.DataFrame({"a": range(60)}, index=[f"l{i}" for i in range(60)]))
    assert big.layout.height >= 18 * 60 > fig.layout.height
    with pytest.raises(ValueError, match="empty"):
        layer_heatmap_figure(pd.DataFrame())
    with pytest.raises(ValueError, match="numbers"):
        layer_heatmap_figure(pd.DataFrame({"a": ["x"]}))


def test_layer_bars_figure() -> None:
    rows = [{"name": "encoder.0", "group": "encoder", "sqnr_db": 30.0},
            {"name": "predictor.0", "group": "predictor", "sqnr_db": 12.0},
            {"name": "predictor.1", "group": "predictor", "sqnr_db": math.nan}]
    fig = layer_bars_figure(rows)
    assert [t.name for t in fig.data] == ["encoder", "predictor"]
    assert len({t.marker.color for t in fig.data}) == 2
    assert fig.layout.xaxis.title.text.startswith("SQNR (dB")
    assert list(fig.layout.yaxis.categoryarray) == ["encoder.0", "predictor.0", "predictor.1"]
    with pytest.raises(ValueError, match="lacks"):
        layer_bars_figure([{"name": "x"}])


def test_every_figure_uses_one_template() -> None:
    figs = [latent_error_figure(CURVES), objective_success_figure(POINTS), opt_steps_figure(ROWS)]
    assert all(f.layout.template.layout.paper_bgcolor == "white" for f in figs)
    assert all(len(_axis_titles(f)) >= 2 and all(_axis_titles(f)) for f in figs)


def test_the_template_styles_every_trace_type_the_figures_draw() -> None:
    bars = [{"label": "rtn w4", "w_bits": 4, "fp_success": 0.8, "quant_success": 0.6}]
    layers = [{"name": "encoder.0", "group": "encoder", "sqnr_db": 30.0}]
    figs = [latent_error_figure(CURVES), objective_success_figure(POINTS), opt_steps_figure(ROWS),
            success_bits_figure(bars), layer_heatmap_figure(pd.DataFrame({"a": [1.0]}, index=["l0"])),
            layer_bars_figure(layers)]
    drawn = {trace.type for fig in figs for trace in fig.data}
    assert drawn == {"scatter", "bar", "heatmap"}
    for fig in figs:
        template = fig.layout.template
        assert all(template.data[t] for t in drawn)  # plotly_white's style for each kind of trace
        assert template.layout.xaxis.gridcolor == template.layout.yaxis.gridcolor == "#EBF0F8"
