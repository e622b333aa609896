"""Latent-error curves of the imagination probe: mean and bootstrap band per planner step.

A probe record (one per episode and action sequence, from ``quantwm.experiment.probe``) holds,
per step 0..K (step 0 is the start frame), RMS latent distances between the FP model's, the
quantized model's and the real env's latents (``visual`` / ``proprio`` -> ``quant_vs_fp``,
``fp_vs_true``, ``quant_vs_true``) and the encoder-only error ``encoder`` -> ``visual`` /
``proprio``. Curves keep every episode's own values: DINO-WM's "div" is one norm over a whole
batch and hides an episode whose rollout blows up.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from quantwm.analysis._values import json_float

PARTS = ("visual", "proprio")
SEQUENCES = ("reference", "fp_plan")
PAIRS = ("quant_vs_fp", "fp_vs_true", "quant_vs_true")
CURVES = PAIRS + ("encoder",)

Curve = dict[str, Any]  # {"steps", "mean", "lo", "hi": lists over steps, "per_episode": [{"episode", "sequence", "values"}]}


def _ci_1d(x: np.ndarray, level: float, n_boot: int, seed: int) -> tuple[float | None, float | None, float | None]:
    x = x[~np.isnan(x)]
    if x.size == 0:
        return None, None, None
    mean = json_float(x.mean())
    if x.size == 1 or mean is None:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return mean, json_float(lo), json_float(hi)


def bootstrap_mean_ci(values: np.ndarray | list, level: float = 0.95, n_boot: int = 2000, seed: int = 0
                      ) -> tuple[Any, Any, Any]:
    """Mean and seeded percentile-bootstrap ``level`` interval of the mean over the first axis.

    ``values`` (N,) -> (mean, lo, hi) floats; (N, K) -> three lists of K, each column on its own
    non-NaN values (each column gives what it would alone). NaN / None are ignored; one value gives
    lo = hi = mean; none gives None, and so does an infinite value (a blown-up rollout).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    x = np.asarray(values, dtype=float)  # None -> NaN
    if x.ndim == 1:
        return _ci_1d(x, level, n_boot, seed)
    if x.ndim == 2:
        cols = [_ci_1d(x[:, k], level, n_boot, seed) for k in range(x.shape[1])]
        return tuple([c[i] for c in cols] for i in range(3))
    raise ValueError(f"values must be 1-D (N,) or 2-D (N, K), got shape {x.shape}")


def _series(record: dict, part: str, name: str) -> list:
    """The record's values of one curve; None (not probed) gives no values."""
    try:
        values = record["encoder"][part] if name == "encoder" else record[part][name]
    except (KeyError, TypeError):
        raise ValueError(f"probe record of episode {record.get('episode')!r} ({record.get('sequence')!r}) "
                         f"has no {name!r} values for {part!r}") from None
    return [] if values is None else values


def latent_error_curves(probe: list[dict], part: str = "visual", sequence: str | None = None, level: float = 0.95,
                        n_boot: int = 2000, seed: int = 0) -> dict[str, Curve]:
    """Per-step mean and bootstrap band (over episodes) of ``quant_vs_fp``, ``fp_vs_true``,
    ``quant_vs_true`` and ``encoder`` errors of ``part``, from probe records of ``sequence``
    (None: both sequences pooled). Each curve: ``steps`` [0..K], ``mean`` / ``lo`` / ``hi`` (K+1,
    None where no episode has a value) and ``per_episode`` [{"episode", "sequence", "values" (K+1)}],
    shorter records padded with None. No matching record gives empty curves."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; valid: {', '.join(PARTS)}")
    if sequence is not None and sequence not in SEQUENCES:
        raise ValueError(f"unknown sequence {sequence!r}; valid: {', '.join(SEQUENCES)} or None (both)")
    records = [r for r in probe if sequence is None or r.get("sequence") == sequence]
    curves: dict[str, Curve] = {}
    for name in CURVES:
        rows = [np.asarray(_series(r, part, name), dtype=float) for r in records]
        length = max((len(v) for v in rows), default=0)
        matrix = np.full((len(rows), length), np.nan)
        for i, v in enumerate(rows):
            matrix[i, : len(v)] = v
        mean, lo, hi = bootstrap_mean_ci(matrix, level, n_boot, seed) if rows else ([], [], [])
        curves[name] = {
            "steps": list(range(length)), "mean": mean, "lo": lo, "hi": hi,
            "per_episode": [{"episode": r.get("episode"), "sequence": r.get("sequence"),
                             "values": [json_float(v) for v in row]} for r, row in zip(records, matrix)],
        }
    return curves


def final_step_error(curves: dict[str, Curve]) -> dict[str, dict[str, Any]]:
    """The last step's {"step", "mean", "lo", "hi"} of each curve (all None for an empty curve)."""
    return {name: ({"step": c["steps"][-1], "mean": c["mean"][-1], "lo": c["lo"][-1], "hi": c["hi"][-1]}
                   if c["steps"] else {"step": None, "mean": None, "lo": None, "hi": None})
            for name, c in curves.items()}
