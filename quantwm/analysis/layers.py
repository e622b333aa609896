"""Per-layer quantization error: tables across experiments, worst layers, per-group summaries.

Layer report rows (``quantize()``'s report as JSON records) carry ``name``, ``group``, ``block``,
``kind``, ``method``, ``weight_bits``, ``act_bits``, ``sqnr_db`` = 10 log10(signal / noise) of the
layer's output on calibration rows and ``mse`` = the noise's mean square. ``sqnr_db`` is None (or
non-finite) for an exact layer (no noise) or one that could not be measured; such layers are
counted but left out of every dB figure.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from quantwm.analysis._values import json_float, number


def _finite(x: Any) -> bool:
    return math.isfinite(number(x))


def layer_table(reports: dict[str, list[dict]], value: str = "sqnr_db") -> pd.DataFrame:
    """(layers, experiments) table of ``value``: index = layer name in first-seen model order,
    columns = experiment labels in ``reports`` order; NaN where an experiment lacks the layer or
    the value."""
    cells: dict[str, dict[str, float]] = {}
    for label, rows in reports.items():
        column: dict[str, float] = {}
        for row in rows:
            if "name" not in row or value not in row:
                raise ValueError(f"layer row {row.get('name')!r} of {label!r} has no 'name' or {value!r}")
            if row["name"] in column:
                raise ValueError(f"layer {row['name']!r} repeats in {label!r}")
            column[row["name"]] = number(row[value])
        cells[label] = column
    names = list(dict.fromkeys(name for column in cells.values() for name in column))
    return pd.DataFrame({label: [column.get(name, math.nan) for name in names] for label, column in cells.items()},
                        index=pd.Index(names, name="layer"), columns=list(reports), dtype=float)


def worst_layers(rows: list[dict], n: int = 5) -> list[dict]:
    """The ``n`` rows with the lowest finite SQNR, lowest first."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return sorted((r for r in rows if _finite(r.get("sqnr_db"))), key=lambda r: number(r["sqnr_db"]))[:n]


def group_summary(rows: list[dict]) -> list[dict[str, Any]]:
    """Per group, in first-seen order: ``group``, ``layers``, ``measured`` (layers with a finite
    SQNR), ``mean_sqnr_db`` (arithmetic mean of the layers' dB: the typical layer),
    ``pooled_sqnr_db`` (dB of the pooled ratio, 10 log10(sum_l S_l / sum_l N_l) with N_l = mse
    and S_l = mse * 10^(sqnr_l / 10), each layer's mean-square powers weighted equally: layers with the largest absolute noise
    dominate it, unlike the mean of dB, where each layer counts the same),
    ``min_sqnr_db`` and ``worst_layer``; dB figures None without a measured layer."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if "group" not in row or "name" not in row:
            raise ValueError(f"layer row {row.get('name')!r} has no 'group' or 'name'")
        groups.setdefault(row["group"], []).append(row)
    out = []
    for group, rs in groups.items():
        measured = [r for r in rs if _finite(r.get("sqnr_db"))]
        db = np.array([number(r["sqnr_db"]) for r in measured])
        powered = [(number(r["mse"]), number(r["sqnr_db"])) for r in measured if _finite(r.get("mse")) and number(r["mse"]) > 0]
        noise = sum(m for m, _ in powered)
        signal = sum(m * 10 ** (s / 10) for m, s in powered)
        worst = min(measured, key=lambda r: number(r["sqnr_db"]), default=None)
        out.append({
            "group": group, "layers": len(rs), "measured": len(measured),
            "mean_sqnr_db": json_float(db.mean()) if db.size else None,
            "pooled_sqnr_db": json_float(10 * math.log10(signal / noise)) if noise > 0 and signal > 0 else None,
            "min_sqnr_db": json_float(db.min()) if db.size else None,
            "worst_layer": None if worst is None else worst["name"],
        })
    return out
