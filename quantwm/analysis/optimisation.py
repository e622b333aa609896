"""Does more optimisation help? Success and objectives against the optimiser's step count.

The claim under test: under quantization, more CEM optimiser steps lower the *imagined* objective
(the search exploits the model) without raising success. Each run is one side (FP or quantized)
planned with one ``opt_steps`` on the same episodes.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from quantwm.analysis._values import json_float, number

SIDES = ("fp", "quant")
LEVEL = 0.95


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return json_float(np.mean(finite)) if finite else None


def opt_steps_table(runs: list[dict]) -> list[dict[str, Any]]:
    """One row per run {"opt_steps": int, "side": "fp" | "quant", "episodes": [episode dicts]},
    sorted by (side, opt_steps): ``opt_steps``, ``side``, ``n``, ``successes``, ``success_rate``
    with its 95 % Wilson interval ``success_lo`` / ``success_hi``, ``mean_objective`` (mean final
    imagined objective) and ``mean_true_objective`` (mean true objective of the last executed plan,
    rated by the FP encoder); means skip missing values and are None without any."""
    rows, seen = [], set()
    for run in runs:
        side, steps, episodes = run.get("side"), run.get("opt_steps"), run.get("episodes")
        if side not in SIDES:
            raise ValueError(f"unknown side {side!r}; valid: {', '.join(SIDES)}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"opt_steps must be an int >= 1, got {steps!r}")
        if not episodes:
            raise ValueError(f"run ({side}, {steps} opt steps) has no episodes")
        if (side, steps) in seen:
            raise ValueError(f"two runs for ({side}, {steps} opt steps)")
        seen.add((side, steps))
        successes = sum(bool(ep["success"]) for ep in episodes)
        ci = stats.binomtest(successes, len(episodes)).proportion_ci(LEVEL, method="wilson")
        rows.append({
            "opt_steps": steps, "side": side, "n": len(episodes), "successes": successes,
            "success_rate": successes / len(episodes), "success_lo": float(ci.low), "success_hi": float(ci.high),
            "mean_objective": _mean([number(ep["final_objective"]) for ep in episodes]),
            "mean_true_objective": _mean([number(ep["plan_true_objectives"][-1]) for ep in episodes
                                          if ep.get("plan_true_objectives")]),
        })
    return sorted(rows, key=lambda r: (SIDES.index(r["side"]), r["opt_steps"]))


def _falls(first: float | None, last: float | None) -> bool | None:
    return None if first is None or last is None else last < first


def opt_steps_verdict(rows: list[dict]) -> dict[str, Any]:
    """From the fewest to the most optimiser steps of each side (``opt_steps_table`` rows): per side
    (None with fewer than two step counts) ``steps_from`` / ``steps_to``, ``success_from`` /
    ``success_to``, ``success_rises`` and ``success_intervals_overlap`` (the two Wilson intervals
    overlap: the change may be noise), ``objective_from`` / ``_to`` / ``objective_falls``
    (imagined), ``true_objective_from`` / ``_to`` / ``true_objective_falls``; booleans None where a
    value is missing. ``summary``: one neutral sentence per side."""
    out: dict[str, Any] = {}
    lines = []
    for side in SIDES:
        rs = sorted((r for r in rows if r["side"] == side), key=lambda r: r["opt_steps"])
        if len(rs) < 2:
            out[side] = None
            if rs:
                lines.append(f"{side}: one step count ({rs[0]['opt_steps']}), nothing to compare.")
            continue
        a, b = rs[0], rs[-1]
        v = {
            "steps_from": a["opt_steps"], "steps_to": b["opt_steps"],
            "success_from": a["success_rate"], "success_to": b["success_rate"],
            "success_rises": b["success_rate"] > a["success_rate"],
            "success_intervals_overlap": a["success_lo"] <= b["success_hi"] and b["success_lo"] <= a["success_hi"],
            "objective_from": a["mean_objective"], "objective_to": b["mean_objective"],
            "objective_falls": _falls(a["mean_objective"], b["mean_objective"]),
            "true_objective_from": a["mean_true_objective"], "true_objective_to": b["mean_true_objective"],
            "true_objective_falls": _falls(a["mean_true_objective"], b["mean_true_objective"]),
        }
        out[side] = v
        lines.append(
            f"{side}: {v['steps_from']} -> {v['steps_to']} opt steps: success {v['success_from']:.0%} -> "
            f"{v['success_to']:.0%} ({'95 % intervals overlap' if v['success_intervals_overlap'] else '95 % intervals disjoint'}), "
            f"imagined objective {_fmt(v['objective_from'])} -> {_fmt(v['objective_to'])}, "
            f"true objective {_fmt(v['true_objective_from'])} -> {_fmt(v['true_objective_to'])}.")
    out["summary"] = " ".join(lines) or "no runs."
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"
