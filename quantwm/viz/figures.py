"""Plotly figures over analysis records: one pure function per figure, records in, Figure out.

Every figure uses the "plotly_white" template (a white card that reads on light and dark pages),
a responsive width, a height near 400 px, and the Okabe-Ito colour-blind-safe palette, with the
full-precision and quantized sides in the same two colours everywhere (videos included).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

if TYPE_CHECKING:
    import pandas as pd

FP_COLOR = "#0072B2"  # Okabe-Ito blue: full precision
QUANT_COLOR = "#D55E00"  # Okabe-Ito vermillion: quantized
SUCCESS_COLOR = "#009E73"  # Okabe-Ito bluish green
FAILURE_COLOR = "#CC79A7"  # Okabe-Ito reddish purple
NEUTRAL_COLOR = "#000000"  # Okabe-Ito black: reference curves (encoder-only error)
GROUP_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#000000", "#F0E442")  # Okabe-Ito, sides' colours left out

_TRACE_TYPES = ("scatter", "bar", "heatmap")  # the trace types these figures draw
_UNUSED_LAYOUT = ("polar", "ternary", "scene", "geo")  # plot kinds these figures never draw


def _slim_template(name: str) -> go.layout.Template:
    """Plotly's template ``name`` kept to the trace types and layout parts these figures use.

    Plotly validates and copies the whole template into every figure that sets it; the full
    "plotly_white" holds styles for two dozen trace types and costs about two thirds of building a
    figure, which the Findings tab does a few dozen times at start-up.
    """
    full = pio.templates[name]
    layout = {k: v for k, v in full.layout.to_plotly_json().items() if k not in _UNUSED_LAYOUT}
    return go.layout.Template(layout=layout, data={t: full.data[t] for t in _TRACE_TYPES})


_TEMPLATE = _slim_template("plotly_white")
_HEIGHT = 400
_SIDE_COLORS = {"fp": FP_COLOR, "quant": QUANT_COLOR}
_SIDE_LABELS = {"fp": "FP", "quant": "quantized"}

# latent-error curve key -> (legend name, colour, dash)
_CURVE_STYLES = {
    "quant_vs_fp": ("quantized vs FP imagination", QUANT_COLOR, "solid"),
    "quant_vs_true": ("quantized imagination vs real frames", QUANT_COLOR, "dash"),
    "fp_vs_true": ("FP imagination vs real frames (floor: FP's own error)", FP_COLOR, "solid"),
    "encoder": ("encoder only, on real frames", NEUTRAL_COLOR, "dot"),
}

__all__ = ["FP_COLOR", "QUANT_COLOR", "SUCCESS_COLOR", "FAILURE_COLOR", "NEUTRAL_COLOR", "GROUP_COLORS",
           "latent_error_figure", "objective_success_figure", "opt_steps_figure", "success_bits_figure",
           "layer_heatmap_figure", "layer_bars_figure"]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _style(fig: go.Figure, title: str | None, height: int = _HEIGHT) -> go.Figure:
    fig.update_layout(template=_TEMPLATE, height=height, autosize=True, title=title, font=dict(size=13),
                      margin=dict(l=70, r=30, t=60 if title else 30, b=60), hoverlabel=dict(namelength=-1),
                      title_x=0.01,
                      legend=dict(orientation="h", yanchor="top", y=-0.3, xanchor="left", x=0))
    return fig


def _require(record: Mapping[str, Any], keys: Sequence[str], what: str) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        raise ValueError(f"{what} lacks {missing}; has {sorted(record)}")


def _points(xs: Sequence[float], *series: Sequence[float], positive: bool) -> list[list[float]]:
    """Lists (xs, *series); with ``positive`` only the points where every series is finite and > 0 (log axes)."""
    keep = [i for i in range(len(xs)) if not positive or all(_finite(s[i]) and s[i] > 0 for s in series)]
    return [[xs[i] for i in keep]] + [[s[i] for i in keep] for s in series]


def _finite(v: Any) -> bool:
    return v is not None and math.isfinite(v)


def latent_error_figure(curves: Mapping[str, Mapping[str, Any]], *, log_y: bool = False, title: str | None = None,
                        show_episodes: bool = False) -> go.Figure:
    """Latent error vs probe step: mean line with a shaded 95 % band (lo..hi) per curve.

    curves: {key: {"steps": (K+1,), "mean": (K+1,), "lo": (K+1,), "hi": (K+1,),
    "per_episode": [{"episode", "sequence", "values": (K+1,)}]}}, keys from "quant_vs_fp",
    "quant_vs_true", "fp_vs_true", "encoder". On a log axis non-positive points are dropped.
    """
    if not curves:
        raise ValueError("latent_error_figure needs at least one curve")
    unknown = set(curves) - set(_CURVE_STYLES)
    if unknown:
        raise ValueError(f"unknown curve keys {sorted(unknown)}; expected some of {list(_CURVE_STYLES)}")
    fig = go.Figure()
    for key in (k for k in _CURVE_STYLES if k in curves):
        curve = curves[key]
        _require(curve, ("steps", "mean", "lo", "hi"), f"curve {key!r}")
        n = len(curve["steps"])
        if any(len(curve[k]) != n for k in ("mean", "lo", "hi")):
            raise ValueError(f"curve {key!r}: steps, mean, lo and hi must have the same length")
        name, color, dash = _CURVE_STYLES[key]
        bx, blo, bhi = _points(curve["steps"], curve["lo"], curve["hi"], positive=log_y)
        fig.add_trace(go.Scatter(x=bx + bx[::-1], y=bhi + blo[::-1], fill="toself", fillcolor=_rgba(color, 0.18),
                                 line=dict(width=0), hoverinfo="skip", showlegend=False, legendgroup=key,
                                 name=f"{name} 95 % band"))
        if show_episodes:
            for ep in curve.get("per_episode", []):
                if len(ep["values"]) != n:
                    raise ValueError(f"curve {key!r}: episode {ep.get('episode')} has {len(ep['values'])} values, expected {n}")
                ex, ey = _points(curve["steps"], ep["values"], positive=log_y)
                fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color=color, width=0.8, dash=dash),
                                         opacity=0.35, legendgroup=key, showlegend=False,
                                         name=f"episode {ep['episode']} ({ep.get('sequence', '')})",
                                         hovertemplate="step %{x}<br>error %{y:.4g}<extra>%{fullData.name}</extra>"))
        mx, my = _points(curve["steps"], curve["mean"], positive=log_y)
        fig.add_trace(go.Scatter(x=mx, y=my, mode="lines+markers", name=name, legendgroup=key,
                                 line=dict(color=color, width=2.5, dash=dash), marker=dict(size=5),
                                 hovertemplate="step %{x}<br>mean error %{y:.4g}<extra>%{fullData.name}</extra>"))
    fig.update_xaxes(title="planner step (open loop, identical actions)", rangemode="tozero")
    fig.update_yaxes(title="latent error (RMS, latent units)", type="log" if log_y else "linear",
                     rangemode="normal" if log_y else "tozero")
    return _style(fig, title)


def objective_success_figure(points: Mapping[str, Sequence[Mapping[str, Any]]], *,
                             labels: Mapping[str, str] | None = None, log_x: bool = False,
                             join_episodes: bool = True) -> go.Figure:
    """Final imagined objective (x) vs final state distance to goal (y), one marker per episode and side.

    points: {"fp" | "quant": [{"episode", "success", "state_distance", "final_objective",
    "true_objective"}]}. Fill colour = success, symbol and outline = side; the same episode's FP
    and quantized points (same start and goal) are joined by a faint line.
    """
    if not points or set(points) - set(_SIDE_COLORS):
        raise ValueError(f"points must be keyed by 'fp' and/or 'quant', got {sorted(points)}")
    names = {**_SIDE_LABELS, **(labels or {})}
    symbols = {"fp": "circle", "quant": "diamond"}
    fig = go.Figure()
    kept: dict[str, dict[int, tuple[float, float]]] = {}
    for side in (s for s in ("fp", "quant") if s in points):
        for p in points[side]:
            _require(p, ("episode", "success", "state_distance", "final_objective", "true_objective"), f"{side} point")
        usable = [p for p in points[side] if not log_x or (_finite(p["final_objective"]) and p["final_objective"] > 0)]
        kept[side] = {p["episode"]: (p["final_objective"], p["state_distance"]) for p in usable}
        for success in (True, False):
            group = [p for p in usable if bool(p["success"]) == success]
            if not group:
                continue
            outcome = "success" if success else "failure"
            fig.add_trace(go.Scatter(
                x=[p["final_objective"] for p in group], y=[p["state_distance"] for p in group], mode="markers",
                name=f"{names[side]} · {outcome}", legendgroup=side,
                marker=dict(symbol=symbols[side], size=11, color=SUCCESS_COLOR if success else FAILURE_COLOR,
                            line=dict(color=_SIDE_COLORS[side], width=2)),
                customdata=[[p["episode"], names[side], outcome, p["true_objective"]] for p in group],
                hovertemplate=("episode %{customdata[0]} · %{customdata[1]}<br>%{customdata[2]}<br>"
                               "final objective %{x:.4g}<br>true objective %{customdata[3]:.4g}<br>"
                               "state distance %{y:.3g}<extra></extra>")))
    if join_episodes and len(kept) == 2:
        xs: list[float | None] = []
        ys: list[float | None] = []
        for ep in sorted(set(kept["fp"]) & set(kept["quant"])):
            (x0, y0), (x1, y1) = kept["fp"][ep], kept["quant"][ep]
            xs += [x0, x1, None]
            ys += [y0, y1, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="rgba(0,0,0,0.18)", width=1),
                                 hoverinfo="skip", name="same episode (start and goal)"))
        fig.data = fig.data[-1:] + fig.data[:-1]  # lines under the markers
    fig.update_xaxes(title="final objective (latent MSE to goal)", type="log" if log_x else "linear")
    fig.update_yaxes(title="final state distance (env units)", rangemode="tozero")
    return _style(fig, None)


def opt_steps_figure(rows: Sequence[Mapping[str, Any]], *, labels: Mapping[str, str] | None = None) -> go.Figure:
    """Success rate (with its interval) and mean objectives vs optimiser steps, FP and quantized.

    rows: [{"opt_steps", "side" ("fp" | "quant"), "n", "success_rate", "success_lo", "success_hi",
    "mean_objective", "mean_true_objective"}]. Left: success rate; right: imagined objective
    (solid) and true objective rated by the FP encoder (dashed). x is a log axis ticked at the data.
    """
    if not rows:
        raise ValueError("opt_steps_figure needs at least one row")
    for r in rows:
        _require(r, ("opt_steps", "side", "n", "success_rate", "success_lo", "success_hi", "mean_objective",
                     "mean_true_objective"), "opt-steps row")
        if r["side"] not in _SIDE_COLORS:
            raise ValueError(f"side must be 'fp' or 'quant', got {r['side']!r}")
        if r["opt_steps"] <= 0:
            raise ValueError(f"opt_steps must be positive (log axis), got {r['opt_steps']}")
    names = {**_SIDE_LABELS, **(labels or {})}
    fig = make_subplots(rows=1, cols=2, subplot_titles=("success rate", "objective at the chosen plan"),
                        horizontal_spacing=0.12)
    for side in (s for s in ("fp", "quant") if any(r["side"] == s for r in rows)):
        rs = sorted((r for r in rows if r["side"] == side), key=lambda r: r["opt_steps"])
        x = [r["opt_steps"] for r in rs]
        rate = [r["success_rate"] for r in rs]
        color = _SIDE_COLORS[side]
        fig.add_trace(go.Scatter(
            x=x, y=rate, mode="lines+markers", name=f"{names[side]} success", legendgroup=side,
            line=dict(color=color, width=2.5), marker=dict(size=7),
            error_y=dict(type="data", symmetric=False, array=[r["success_hi"] - r["success_rate"] for r in rs],
                         arrayminus=[r["success_rate"] - r["success_lo"] for r in rs], color=color, thickness=1.5),
            customdata=[[r["n"], r["success_lo"], r["success_hi"]] for r in rs],
            hovertemplate=("%{x} optimiser steps<br>success %{y:.2f} [%{customdata[1]:.2f}, %{customdata[2]:.2f}]"
                           "<br>n = %{customdata[0]}<extra>%{fullData.name}</extra>")), row=1, col=1)
        for key, kind, dash in (("mean_objective", "imagined", "solid"), ("mean_true_objective", "true", "dash")):
            fig.add_trace(go.Scatter(
                x=x, y=[r[key] for r in rs], mode="lines+markers", name=f"{names[side]} {kind} objective",
                legendgroup=side, line=dict(color=color, width=2.5, dash=dash), marker=dict(size=6),
                hovertemplate="%{x} optimiser steps<br>mean %{y:.4g}<extra>%{fullData.name}</extra>"), row=1, col=2)
    ticks = sorted({r["opt_steps"] for r in rows})
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[str(t) for t in ticks], title="optimiser steps")
    fig.update_yaxes(title="success rate", range=[-0.02, 1.02], row=1, col=1)
    fig.update_yaxes(title="objective (latent MSE to goal)", rangemode="tozero", row=1, col=2)
    return _style(fig, None)


def success_bits_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Grouped bars of FP and quantized success rate per experiment, sorted by weight bits (desc).

    rows: [{"label", "w_bits", "fp_success", "quant_success", optional "quant_lo", "quant_hi"}].
    """
    if not rows:
        raise ValueError("success_bits_figure needs at least one row")
    for r in rows:
        _require(r, ("label", "w_bits", "fp_success", "quant_success"), "success-bits row")
    rs = sorted(rows, key=lambda r: (-r["w_bits"], str(r["label"])))
    labels = [str(r["label"]) for r in rs]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=[r["fp_success"] for r in rs], name="FP", marker_color=FP_COLOR,
                         hovertemplate="%{x}<br>FP success %{y:.2f}<extra></extra>"))
    has_ci = [("quant_lo" in r and "quant_hi" in r) for r in rs]
    error = None
    if any(has_ci):
        error = dict(type="data", symmetric=False, color="#333333", thickness=1.5,
                     array=[r["quant_hi"] - r["quant_success"] if ok else None for r, ok in zip(rs, has_ci)],
                     arrayminus=[r["quant_success"] - r["quant_lo"] if ok else None for r, ok in zip(rs, has_ci)])
    fig.add_trace(go.Bar(x=labels, y=[r["quant_success"] for r in rs], name="quantized", marker_color=QUANT_COLOR,
                         error_y=error, customdata=[[r["w_bits"]] for r in rs],
                         hovertemplate="%{x}<br>W%{customdata[0]} quantized success %{y:.2f}<extra></extra>"))
    fig.update_layout(barmode="group", bargap=0.25, bargroupgap=0.05)
    fig.update_xaxes(title="experiment (sorted by weight bits, high to low)", automargin=True)
    fig.update_yaxes(title="success rate", range=[0, 1.05])
    return _style(fig, None)


def layer_heatmap_figure(table: pd.DataFrame, *, zmin: float | None = None, zmax: float | None = None) -> go.Figure:
    """Per-layer SQNR (dB) heat map: rows = layers (table.index), columns = experiments; NaN blank.

    Height grows 18 px per layer (at least 300 px) so layer names stay legible.
    """
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise ValueError(f"layer table is empty: shape {table.shape}")
    try:
        z = table.to_numpy(dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"layer table must hold numbers (SQNR dB): {e}") from e
    layers, experiments = [str(i) for i in table.index], [str(c) for c in table.columns]
    fig = go.Figure(go.Heatmap(
        z=z, x=experiments, y=layers, zmin=zmin, zmax=zmax, colorscale="Viridis", hoverongaps=False,
        colorbar=dict(title=dict(text="SQNR (dB)")),
        hovertemplate="layer %{y}<br>experiment %{x}<br>SQNR %{z:.1f} dB<extra></extra>"))
    fig.update_xaxes(title="experiment", type="category", automargin=True, side="bottom")
    fig.update_yaxes(title="layer", type="category", autorange="reversed", automargin=True, tickfont=dict(size=11))
    return _style(fig, None, height=max(300, 18 * len(layers) + 140))


def layer_bars_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Per-layer SQNR (dB) of one experiment as horizontal bars in model order, coloured by group.

    rows: [{"name", "group", "sqnr_db", ...}] (the quantizer's layer report); NaN SQNR shows no bar.
    """
    if not rows:
        raise ValueError("layer_bars_figure needs at least one layer row")
    for r in rows:
        _require(r, ("name", "group", "sqnr_db"), "layer row")
    groups = list(dict.fromkeys(str(r["group"]) for r in rows))
    order = [str(r["name"]) for r in rows]
    fig = go.Figure()
    for i, group in enumerate(groups):
        rs = [r for r in rows if str(r["group"]) == group]
        fig.add_trace(go.Bar(
            x=[r["sqnr_db"] for r in rs], y=[str(r["name"]) for r in rs], orientation="h", name=group,
            marker_color=GROUP_COLORS[i % len(GROUP_COLORS)],
            hovertemplate="%{y}<br>SQNR %{x:.1f} dB<extra>%{fullData.name}</extra>"))
    fig.update_xaxes(title="SQNR (dB, higher = closer to FP)")
    fig.update_yaxes(title="layer", type="category", categoryorder="array", categoryarray=order,
                     autorange="reversed", automargin=True, tickfont=dict(size=11))
    fig = _style(fig, None, height=max(300, 18 * len(order) + 140))
    fig.update_layout(legend=dict(title_text="group", orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"))
    return fig
