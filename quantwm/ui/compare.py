"""Compare tab: every cached experiment in a filterable table; overlay the latent-error curves, the
success and the per-layer SQNR of several; export the table as CSV and each figure as HTML.

The table reads the cache's metadata only (``ResultsCache.list``); values are loaded just for the
experiments picked for the overlay.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from quantwm.analysis import layer_table
from quantwm.cache import EntryInfo
from quantwm.viz.figures import (FP_COLOR, GROUP_COLORS, QUANT_COLOR, latent_error_figure, layer_heatmap_figure,
                                 success_bits_figure)

if TYPE_CHECKING:
    from quantwm.ui import UIContext

COLUMNS = ("env", "experiment", "method", "modules", "bits", "granularity", "planner", "episodes", "seed",
           "FP success", "quantized success", "key")
FILTERS = ("env", "method", "modules", "bits")  # the table columns the filters act on, in control order
# one per overlaid experiment: the colours that mean neither side first (FP blue and quantized orange
# mean a side in every other chart), pale yellow last
OVERLAY_COLORS = (*GROUP_COLORS[:5], QUANT_COLOR, FP_COLOR, GROUP_COLORS[5])
CURVES = {"quant_vs_fp": "quantized vs FP imagination", "quant_vs_true": "quantized imagination vs real frames",
          "fp_vs_true": "FP imagination vs real frames"}
KEY_CHARS = 12  # key prefix shown (``quantwm cache show`` takes a prefix)
EMPTY = ("No experiment in the results cache yet: run one on the Explore tab, or from a shell with "
         "`quantwm run` / `quantwm sweep`, then press Refresh.")


# ---- table ------------------------------------------------------------------------------------
def bits_label(meta: Mapping[str, Any]) -> str:
    """'W3', or 'W8A4' when activations are quantized too (16 bits = left in full precision)."""
    a_bits = meta.get("a_bits", 16)
    return f"W{meta.get('w_bits')}" + (f"A{a_bits}" if a_bits < 16 else "")


def experiment_table(infos: Sequence[EntryInfo]) -> pd.DataFrame:
    """One row per cached experiment, in ``infos`` order (row i = infos[i]), from its metadata."""
    rows = [{
        "env": m.get("env"), "experiment": m.get("label"), "method": m.get("method"),
        "modules": "+".join(m.get("modules", [])), "bits": bits_label(m), "granularity": m.get("w_granularity"),
        "planner": m.get("planner"), "episodes": m.get("episodes"), "seed": m.get("seed"),
        "FP success": m.get("fp_success"), "quantized success": m.get("quant_success"), "key": e.key[:KEY_CHARS],
    } for e in infos for m in (e.meta,)]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def filter_choices(table: pd.DataFrame) -> dict[str, list[str]]:
    """Per filter column, its distinct values (``modules``: each module on its own)."""
    out = {}
    for column in FILTERS:
        values = table[column].dropna().astype(str)
        if column == "modules":
            values = values.str.split("+").explode()
        out[column] = sorted(set(values))
    return out


def filter_table(table: pd.DataFrame, selected: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Rows matching every non-empty filter (a row matches ``modules`` when it quantizes any of them)."""
    keep = pd.Series(True, index=table.index)
    for column, values in selected.items():
        if not values:
            continue
        if column == "modules":
            keep &= table[column].str.split("+").map(lambda ms: bool(set(ms) & set(values)))
        else:
            keep &= table[column].astype(str).isin(values)
    return table[keep]


def display_names(infos: Sequence[EntryInfo]) -> dict[str, str]:
    """Full key -> a readable name for the picker, unique (a key prefix is added to repeats)."""
    names = {e.key: f"{e.meta.get('env')} · {e.meta.get('label')} · {e.meta.get('planner')} · "
                    f"{e.meta.get('episodes')} ep" for e in infos}
    counts = pd.Series(list(names.values())).value_counts()
    return {k: f"{n} · {k[:6]}" if counts[n] > 1 else n for k, n in names.items()}


def distinct_names(parts: Sequence[Sequence[str]]) -> tuple[list[str], str]:
    """Short names for several experiments described by parts (words of a label, env, planner...):
    each without the parts all of them share, and the shared parts ('' for a single experiment).
    Repeated names get their position appended, so chart categories stay apart."""
    shared = set.intersection(*(set(ps) for ps in parts)) if len(parts) > 1 else set()
    names = [" ".join(p for p in ps if p not in shared) or " ".join(ps) for ps in parts]
    counts = pd.Series(names).value_counts()
    return ([f"{n} #{i + 1}" if counts[n] > 1 else n for i, n in enumerate(names)],
            " ".join(p for p in parts[0] if p in shared))


def experiment_parts(meta: Mapping[str, Any]) -> list[str]:
    """What tells cached experiments apart, as parts for ``distinct_names``."""
    return [str(meta.get("env")), *str(meta.get("label")).split(), str(meta.get("planner")),
            f"{meta.get('episodes')} ep", f"seed {meta.get('seed')}"]


# ---- figures ----------------------------------------------------------------------------------
def latent_curves(latent_error: Mapping[str, Any], keys: Sequence[str] = tuple(CURVES) + ("encoder",)
                  ) -> dict[str, dict[str, Any]]:
    """The visual curves of a result's ``latent_error`` ({"steps", name: {"mean", "lo", "hi"}}) in
    ``latent_error_figure``'s shape, leaving out curves that are zero or missing everywhere (the
    encoder-only error when the encoder is not quantized)."""
    steps = latent_error["steps"]
    return {k: {"steps": steps, **latent_error[k]} for k in keys
            if k in latent_error and any(latent_error[k]["mean"])}


def latent_overlay_figure(series: Sequence[tuple[str, Mapping[str, Any]]], curve: str = "quant_vs_fp",
                          shared: str = "") -> go.Figure:
    """One latent-error curve (mean and 95 % band) per experiment, one colour each.

    series: [(legend name, the result's ``latent_error``, which must hold ``curve``)]; ``shared``:
    what all experiments have in common, shown in the legend title. Built from
    ``latent_error_figure`` per experiment (its axes and style), recoloured and merged.
    """
    if not series:
        raise ValueError("latent_overlay_figure needs at least one experiment")
    figure: go.Figure | None = None
    for i, (name, latent_error) in enumerate(series):
        color = OVERLAY_COLORS[i % len(OVERLAY_COLORS)]
        one = latent_error_figure({curve: {"steps": latent_error["steps"], **latent_error[curve]}})
        band, mean = one.data
        band.update(fillcolor=color, opacity=0.15, legendgroup=name, name=f"{name} 95 % band")
        mean.update(name=name, legendgroup=name, line=dict(color=color, dash="solid"))
        if figure is None:
            figure = one
        else:
            figure.add_traces([band, mean])
    figure.update_layout(height=380 + 24 * len(series),
                         legend=dict(orientation="v", title_text=f"{CURVES[curve]}{f' ({shared})' if shared else ''}:",
                                     y=-0.2, yanchor="top"))
    return figure


def success_figure(named_meta: Sequence[tuple[str, Mapping[str, Any]]]) -> go.Figure:
    """FP and quantized success rate per experiment, from (name, cache metadata) pairs; the legend
    sits above the bars, clear of long slanted experiment names."""
    figure = success_bits_figure([{"label": name, "w_bits": m.get("w_bits", 16), "fp_success": m.get("fp_success"),
                                   "quant_success": m.get("quant_success")} for name, m in named_meta])
    return figure.update_layout(legend=dict(y=1.02, yanchor="bottom", x=1, xanchor="right"), margin=dict(t=50))


def layers_figure(named_layers: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> go.Figure | None:
    """Per-layer SQNR heat map (layers x experiments) of the experiments that report layers, from
    (name, the result's ``layers`` rows) pairs; None when none does. Layers one experiment does
    not quantize stay blank, so experiments on different modules line up by layer name."""
    reported = {name: rows for name, rows in named_layers if rows}
    return layer_heatmap_figure(layer_table(reported)) if reported else None


# ---- exports ----------------------------------------------------------------------------------
def export_dir() -> Path:
    """Where exported files go: under Gradio's temp dir (it serves files from there)."""
    root = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    return Path(root) / "quantwm-exports"


EXPORT_MAX_AGE_S = 86400  # exports unused this long are deleted when a new one is written (each figure is ~5 MB)


def export_file(name: str, content: str) -> Path:
    """Write ``content`` as ``<export dir>/<content hash>/<name>`` (the same content reuses its file and
    renews its age); a new file also deletes the exports no view has written or reused for
    ``EXPORT_MAX_AGE_S``."""
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    path = export_dir() / digest / name
    if path.exists():
        os.utime(path.parent)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(content)
    tmp.replace(path)
    prune_exports()
    return path


def prune_exports(max_age_s: float = EXPORT_MAX_AGE_S) -> None:
    """Delete export folders whose last write or reuse is older than ``max_age_s``; one a concurrent
    request removes first is skipped."""
    cutoff = time.time() - max_age_s
    for folder in export_dir().iterdir():
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder)
        except FileNotFoundError:
            continue


def export_figure(figure: go.Figure, name: str) -> Path:
    """The figure as a self-contained HTML file (plotly.js inlined: opens offline); a fixed div id
    keeps the same figure's file the same."""
    return export_file(f"{name}.html", figure.to_html(include_plotlyjs=True, full_html=True, div_id=name))


# ---- the tab ----------------------------------------------------------------------------------
def build_compare(ctx: UIContext) -> None:
    """The Compare tab; its table refreshes on page load, on a filter change and on Refresh."""
    gr.Markdown("## Compare cached experiments\nEvery experiment in this server's results cache. Filter the "
                "table, then pick up to eight experiments to overlay their latent-error curves, success rates and per-layer SQNR.")
    with gr.Row():
        filters = [gr.Dropdown(label=f"filter: {column}", multiselect=True, choices=[], min_width=160,
                               elem_id=f"compare-filter-{column}") for column in FILTERS]
    with gr.Row(equal_height=True):
        status = gr.Markdown(elem_id="compare-status")
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=120, elem_id="compare-refresh")
        csv_button = gr.DownloadButton("Download table (CSV)", interactive=False, size="sm", scale=0, min_width=200,
                                       elem_id="compare-csv")
    table = gr.Dataframe(headers=list(COLUMNS), interactive=False, max_height=420, elem_id="compare-table")
    with gr.Row(equal_height=True):
        picker = gr.Dropdown(label="experiments to overlay", multiselect=True, max_choices=len(OVERLAY_COLORS),
                             choices=[], scale=3, elem_id="compare-picker")
        curve = gr.Radio([(label, key) for key, label in CURVES.items()], value="quant_vs_fp", scale=2,
                         label="latent-error curve")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=420):
            latent_plot = gr.Plot(show_label=False, elem_id="compare-latent")
            latent_html = gr.DownloadButton("Download chart (HTML)", interactive=False, size="sm")
        with gr.Column(min_width=420):
            success_plot = gr.Plot(show_label=False, elem_id="compare-success")
            success_html = gr.DownloadButton("Download chart (HTML)", interactive=False, size="sm")
    gr.Markdown("Left: how far each experiment's quantized imagination drifts, step by step along the same action "
                "sequences (mean over episodes, shaded 95 % band); lower is better. Right: planning success of the "
                "full-precision (blue) and quantized (orange) model on each experiment's episodes.")
    gr.Markdown("Below: each quantized layer's output SQNR against FP on inputs recorded while the FP model planned "
                "calibration episodes (dB, higher is closer to FP; blank where an experiment leaves the layer in FP). "
                "Layers that turn dark in the columns of experiments that lose success are where their error enters.")
    layers_plot = gr.Plot(show_label=False, elem_id="compare-layers")
    layers_html = gr.DownloadButton("Download chart (HTML)", interactive=False, size="sm")

    def refresh_table(*values: Any) -> list[Any]:
        *chosen, picked = values
        infos = ctx.cache.list("experiment")
        full = experiment_table(infos)
        selected = dict(zip(FILTERS, chosen))
        shown = filter_table(full, selected)
        names = display_names(infos)
        keep = set(picked or [])
        options = [(names[e.key], e.key) for i, e in enumerate(infos) if i in shown.index or e.key in keep]
        choices = filter_choices(full)
        note = EMPTY if full.empty else f"{len(shown)} of {len(full)} cached experiments shown."
        csv = export_file("quantwm-experiments.csv", shown.to_csv(index=False)) if not shown.empty else None
        return [*(gr.Dropdown(choices=sorted(set(choices[c]) | set(v or []))) for c, v in selected.items()),
                note, shown, gr.Dropdown(choices=options), gr.DownloadButton(value=csv, interactive=csv is not None)]

    def overlay(keys: list[str] | None, curve_key: str) -> list[Any]:
        entries = [e for e in (ctx.cache.get(k) for k in keys or []) if e is not None]
        if len(entries) < len(keys or []):
            gr.Warning("Some picked experiments are no longer in the cache; press Refresh.")
        probed = [e for e in entries if curve_key in e.value.get("latent_error", {})]
        if len(probed) < len(entries):
            gr.Warning("Some picked experiments have no imagination-probe curves (no probe was run); they are left out.")
        entries = probed
        off = gr.DownloadButton(value=None, interactive=False)
        if not entries:
            return [None, None, None, off, off, off]
        names, shared = distinct_names([experiment_parts(e.meta) for e in entries])
        latent = latent_overlay_figure([(n, e.value["latent_error"]) for n, e in zip(names, entries)], curve_key, shared)
        success = success_figure([(n, e.meta) for n, e in zip(names, entries)])
        layers = layers_figure([(n, e.value.get("layers", [])) for n, e in zip(names, entries)])
        return [latent, success, layers, gr.DownloadButton(value=export_figure(latent, "latent-error"), interactive=True),
                gr.DownloadButton(value=export_figure(success, "success"), interactive=True),
                gr.DownloadButton(value=export_figure(layers, "layer-sqnr"), interactive=True) if layers else off]

    outputs = [*filters, status, table, picker, csv_button]
    gr.on(None, lambda: refresh_table(*[[]] * (len(FILTERS) + 1)), outputs=outputs, api_visibility="private")  # page load
    gr.on([refresh.click, *(f.change for f in filters)], refresh_table, inputs=[*filters, picker], outputs=outputs,
          api_name="compare_table")
    gr.on([picker.change, curve.change], overlay, inputs=[picker, curve],
          outputs=[latent_plot, success_plot, layers_plot, latent_html, success_html, layers_html], api_name="compare_overlay")
