"""Verdicts on the quantization study's findings, from compact experiment results.

Each rule ``judge(results, opt_steps)`` reads named experiments (``compact_result`` dicts keyed by their role, e.g. "pred W3
per_channel") and returns a ``verdict``: *reproduced*, *not reproduced* or *mixed*, with the numbers
it compared and a sentence saying why (``opt_steps``: the optimiser-steps study, read by the rules that need it;
cross-environment rules get {env: results}). Success differences smaller than ``MIN_GAP`` (in success
rate) count as no difference: with 20 episodes one episode is 0.05.
"""
from __future__ import annotations

from typing import Any

MIN_GAP = 0.1


def compact_result(value: dict[str, Any]) -> dict[str, Any]:
    """The parts of an experiment result a findings card needs (no per-episode states or plans):
    summaries, latent-error bands, alignment with its per-episode points, per-layer SQNR, sizes."""
    keep = ("success_rate", "mean_state_distance", "mean_final_objective", "episodes", "seconds_per_episode",
            "failures_objective_prefers_own_plan", "failures_model_prefers_own_plan", "failures_search_missed_reference")
    return {
        "key": value["key"], "label": value["label"], "config": value["config"],
        "fp": {k: value["fp"]["summary"].get(k) for k in keep},
        "quant": {k: value["quant"]["summary"].get(k) for k in keep},
        "latent_error": value["latent_error"], "alignment": value["alignment"],
        "layers": [{k: row.get(k) for k in ("name", "group", "sqnr_db")} for row in value["layers"]],
        "model": value["model"],
    }


def _success(r: dict[str, Any]) -> float:
    return r["quant"]["success_rate"]


def _drift(r: dict[str, Any]) -> float:
    """Quantized-vs-FP latent error at the last probe step (visual RMS)."""
    return r["latent_error"]["quant_vs_fp"]["mean"][-1]


def _gap(a: float, b: float) -> float:
    """``a - b`` without binary floating-point noise: success rates are fractions of episodes, and
    0.6 - 0.5 falls just below 0.1 in floats while 0.8 - 0.7 falls just above it."""
    return round(a - b, 9)


def _compare(better: float, worse: float) -> int:
    """+1 when ``better`` exceeds ``worse`` by at least MIN_GAP, -1 when the reverse, else 0."""
    return 1 if _gap(better, worse) >= MIN_GAP else -1 if _gap(worse, better) >= MIN_GAP else 0


def _verdict(votes: list[int], why: str, numbers: dict[str, Any]) -> dict[str, Any]:
    if votes and all(v > 0 for v in votes):
        word = "reproduced"
    elif votes and all(v < 0 for v in votes):
        word = "not reproduced"
    else:
        word = "mixed"
    return {"verdict": word, "why": why, "numbers": numbers}


def group_wise_rescue(results: dict[str, dict[str, Any]], opt_steps: dict[str, Any] | None = None, bits: tuple[int, ...] = (4, 3)) -> dict[str, Any]:
    """Finding 1: group-wise weights keep low-bit planning close to FP where per-channel breaks.
    Per bit-width a vote: group-wise succeeds more (by MIN_GAP) -> +1, less -> -1; a tie is decided by
    drift (group-wise drifting less -> +1)."""
    votes, numbers = [], {}
    for b in bits:
        pc, grp = results[f"pred W{b} per_channel"], results[f"pred W{b} group"]
        vote = _compare(_success(grp), _success(pc)) or (1 if _drift(grp) < _drift(pc) else -1)
        votes.append(vote)
        numbers[f"W{b}"] = {"per_channel_success": _success(pc), "group_success": _success(grp),
                            "per_channel_drift": _drift(pc), "group_drift": _drift(grp), "fp_success": pc["fp"]["success_rate"]}
    return _verdict(votes, "per bit-width: group-wise success (ties: latent drift) against per-channel", numbers)


def activation_granularity(results: dict[str, dict[str, Any]], opt_steps: dict[str, Any] | None = None, bits: tuple[int, ...] = (6, 4)) -> dict[str, Any]:
    """Finding 2: per-token vs per-tensor activations give *inconsistent* benefits. Reproduced when
    per-token's advantage changes sign (or vanishes) across bit-widths or between success and drift;
    not reproduced when per-token is better on every bit-width in both."""
    signs, numbers = set(), {}
    for b in bits:
        tensor, token = results[f"pred W8A{b} per_tensor"], results[f"pred W8A{b} per_token"]
        by_success = _compare(_success(token), _success(tensor))
        by_drift = 1 if _drift(token) < _drift(tensor) else -1
        signs |= {by_success, by_drift}
        numbers[f"A{b}"] = {"per_tensor_success": _success(tensor), "per_token_success": _success(token),
                            "per_tensor_drift": _drift(tensor), "per_token_drift": _drift(token)}
    consistent = signs == {1}
    return {"verdict": "not reproduced" if consistent else "reproduced" if {1, -1} <= signs else "mixed",
            "why": "per-token against per-tensor per bit-width, by success (gap >= 0.1) and by latent drift", "numbers": numbers}


def encoder_sensitivity(results: dict[str, dict[str, Any]], opt_steps: dict[str, Any] | None = None, bits: tuple[int, ...] = (4, 3)) -> dict[str, Any]:
    """Finding 3: the encoder is far more sensitive than the predictor. Per bit-width: the encoder
    quantized alone succeeds less than the predictor quantized alone -> +1, more -> -1 (a tie by
    the probe's latent error against the real frames)."""
    votes, numbers = [], {}
    for b in bits:
        enc, pred = results[f"enc W{b} per_channel"], results[f"pred W{b} per_channel"]
        true_err = {k: r["latent_error"]["quant_vs_true"]["mean"][-1] for k, r in (("enc", enc), ("pred", pred))}
        vote = _compare(_success(pred), _success(enc)) or (1 if true_err["enc"] > true_err["pred"] else -1)
        votes.append(vote)
        numbers[f"W{b}"] = {"encoder_success": _success(enc), "predictor_success": _success(pred),
                            "encoder_error_vs_real": true_err["enc"], "predictor_error_vs_real": true_err["pred"],
                            "encoder_only_error": enc["latent_error"]["encoder"]["mean"][0]}
    return _verdict(votes, "per bit-width: predictor-only success against encoder-only success (ties: error vs real frames)", numbers)


def objective_misalignment(results: dict[str, dict[str, Any]], opt_steps: dict[str, Any], role: str = "pred W3 per_channel"
                           ) -> dict[str, Any]:
    """Finding 4: at low bits the objective stops predicting success, and more optimiser steps do
    not help. Votes: (a) the quantized AUROC of the final objective for success falls below FP's by
    MIN_GAP (+1) or not (-1); (b) over optimiser steps the quantized success does not rise while its
    imagined objective falls *and* at the most steps its plans are rated more optimistically than
    FP's (true minus imagined objective larger: the optimiser exploits the quantized model's
    errors) -> +1; quantized success rising -> -1; else 0 (more steps fail alike in full precision:
    the planner's limit, not quantization's)."""
    r = results[role]
    fp_auc, q_auc = r["alignment"]["fp"]["auroc_objective_success"], r["alignment"]["quant"]["auroc_objective_success"]
    votes = [] if fp_auc is None or q_auc is None else [1 if _gap(fp_auc, q_auc) >= MIN_GAP else -1]
    fp, quant = opt_steps["verdict"].get("fp"), opt_steps["verdict"].get("quant")
    numbers: dict[str, Any] = {"fp_auroc": fp_auc, "quant_auroc": q_auc, "opt_steps": opt_steps["verdict"]}
    if fp is not None and quant is not None:
        gaps = {side: v["true_objective_to"] - v["objective_to"] for side, v in (("fp", fp), ("quant", quant))}
        numbers["optimism_at_most_steps"] = gaps
        exploited = quant["objective_falls"] and gaps["quant"] > gaps["fp"]
        votes.append(-1 if quant["success_rises"] else 1 if exploited else 0)
    return _verdict(votes, "AUROC of the final objective for success (FP vs quantized); open-loop CEM over optimiser "
                           "steps: success, and how optimistic the plans' ratings become", numbers)


def drift_vs_collapse(env_results: dict[str, dict[str, dict[str, Any]]], opt_steps: dict[str, Any] | None = None,
                      role: str = "pred W3 per_channel") -> dict[str, Any]:
    """Finding 5: PushT fails by planning drift (error that grows along the rollout), Wall by
    representation collapse (error already there at the first step). Growth = latent error at the
    last probe step / at step 1; reproduced when PushT's growth exceeds Wall's by a factor 1.5,
    not reproduced when Wall's exceeds PushT's likewise."""
    growth = {}
    for env, results in env_results.items():
        mean = results[role]["latent_error"]["quant_vs_fp"]["mean"]
        growth[env] = mean[-1] / mean[1] if mean[1] else None
    if growth.get("pusht") is None or growth.get("wall") is None:
        return {"verdict": "mixed", "why": "needs both environments", "numbers": growth}
    ratio = growth["pusht"] / growth["wall"]
    vote = 1 if ratio >= 1.5 else -1 if ratio <= 1 / 1.5 else 0
    return _verdict([vote], f"growth of quantized-vs-FP error from probe step 1 to the last ({role})", growth | {"ratio": ratio})
