"""Does the planner's objective track success? Objective-vs-outcome alignment of planned episodes.

Episodes are ``EpisodeRecord.to_json()`` dicts. The *imagined* objective is the planning model's
rating of a plan; the *true* objective rates the frames the plan really produces with the
full-precision encoder (one yardstick for FP and quantized). A quantized model can fail because its
objective no longer ranks plans the way success does, or because it misrates the plans it chose;
comparing imagined and true objectives separates the two.
"""
from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
from scipy import stats

from quantwm.analysis._values import json_float, number
from quantwm.analysis.latent import bootstrap_mean_ci


def auroc(scores: list[float] | np.ndarray, labels: list[bool] | np.ndarray) -> float | None:
    """Probability that a random success (label True) has a *lower* score than a random failure,
    ties counting 1/2: how well a low objective predicts success (1 perfect, 0.5 chance, 0 reversed).
    The Mann-Whitney U of failures over successes divided by n_fail * n_success. Missing scores
    (None / NaN) are dropped; None when either class is empty."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D of one length, got shapes {s.shape} and {y.shape}")
    keep = ~np.isnan(s)
    success, failure = s[keep & y], s[keep & ~y]
    if not success.size or not failure.size:
        return None
    return float(stats.mannwhitneyu(failure, success).statistic / (failure.size * success.size))


def spearman(x: list[float] | np.ndarray, y: list[float] | np.ndarray) -> float | None:
    """Spearman rank correlation over pairs where both are present; None for fewer than 3 pairs or
    a constant side."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got shapes {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if a.size < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return json_float(stats.spearmanr(a, b).statistic)


def _field(ep: dict, key: str) -> Any:
    try:
        return ep[key]
    except (KeyError, TypeError):
        raise ValueError(f"episode record {ep.get('index') if isinstance(ep, dict) else ep!r} has no {key!r}") from None


def _last_true_objective(ep: dict) -> float:
    true = _field(ep, "plan_true_objectives")
    return number(true[-1]) if true else math.nan


def alignment(episodes: list[dict]) -> dict[str, Any]:
    """Alignment of one side's episodes: ``n``, ``success_rate``; ``spearman_objective_distance``
    (final imagined objective vs final state distance), ``auroc_objective_success`` (final imagined
    objective predicting success); over every chosen plan, ``spearman_imagined_true`` and
    ``median_optimism`` (median of true minus imagined objective: positive = the model thought its
    plans better than they were); ``auroc_true_objective_success`` (the last plan's true objective
    predicting success: low means the objective itself is misaligned with success, high while
    ``auroc_objective_success`` is low means the model misrates plans); ``points`` per episode
    {"episode", "success", "state_distance", "final_objective", "true_objective"} (None: missing)."""
    if not episodes:
        raise ValueError("alignment needs at least one episode")
    success = [bool(_field(ep, "success")) for ep in episodes]
    distance = [number(_field(ep, "state_distance")) for ep in episodes]
    objective = [number(_field(ep, "final_objective")) for ep in episodes]
    true_last = [_last_true_objective(ep) for ep in episodes]
    pairs = [(number(m), number(t)) for ep in episodes
             for m, t in zip(_field(ep, "plan_objectives"), _field(ep, "plan_true_objectives"))]
    imagined, true = [m for m, _ in pairs], [t for _, t in pairs]
    gaps = [t - m for m, t in pairs if math.isfinite(t - m)]
    return {
        "n": len(episodes),
        "success_rate": sum(success) / len(episodes),
        "spearman_objective_distance": spearman(objective, distance),
        "auroc_objective_success": auroc(objective, success),
        "spearman_imagined_true": spearman(imagined, true),
        "median_optimism": json_float(statistics.median(gaps)) if gaps else None,
        "auroc_true_objective_success": auroc(true_last, success),
        "points": [{"episode": _field(ep, "index"), "success": s, "state_distance": json_float(d), "final_objective": json_float(o),
                    "true_objective": json_float(t)}
                   for ep, s, d, o, t in zip(episodes, success, distance, objective, true_last)],
    }


def compare_alignment(fp: list[dict], quant: list[dict]) -> dict[str, Any]:
    """``alignment`` of each side and ``matched``: the same episodes on both sides - ``n``,
    ``both_succeed``, ``fp_only``, ``quant_only``, ``neither`` (counts) and the paired state-distance
    change, quantized minus FP: ``mean_state_distance_diff`` with its 95 % bootstrap interval
    ``state_distance_diff_lo`` / ``_hi`` (positive: quantization left episodes farther from the goal)."""
    fp_by, q_by = ({_field(ep, "index"): ep for ep in side} for side in (fp, quant))
    if len(fp_by) != len(fp) or len(q_by) != len(quant):
        raise ValueError("episode indices repeat within a side")
    if set(fp_by) != set(q_by):
        raise ValueError(f"FP and quantized episodes differ: only FP {sorted(set(fp_by) - set(q_by))}, "
                         f"only quantized {sorted(set(q_by) - set(fp_by))}")
    order = sorted(fp_by)
    both = [(bool(_field(fp_by[i], "success")), bool(_field(q_by[i], "success"))) for i in order]
    diff = [number(_field(q_by[i], "state_distance")) - number(_field(fp_by[i], "state_distance")) for i in order]
    mean, lo, hi = bootstrap_mean_ci(diff)
    return {
        "fp": alignment(fp), "quant": alignment(quant),
        "matched": {
            "n": len(order),
            "both_succeed": sum(f and q for f, q in both), "fp_only": sum(f and not q for f, q in both),
            "quant_only": sum(q and not f for f, q in both), "neither": sum(not f and not q for f, q in both),
            "mean_state_distance_diff": mean, "state_distance_diff_lo": lo, "state_distance_diff_hi": hi,
        },
    }
