"""Why planned episodes failed: the objective, the model or the search.

Over episodes with reference actions (a path known to reach the goal from the start), each failed
episode is put in exactly one category, tested in this order:

- *objective*: the first plan's frames, really produced in the env and rated by the FP encoder,
  score no worse than the reference's. Even a perfect model would have chosen that plan: the
  objective (latent distance to the goal frame) prefers a plan that fails to one that succeeds.
- *model*: otherwise, *some* plan was imagined (rated by the planning model) below the
  reference's imagined objective. The model believed a plan as good as a real solution and
  reality disagreed. Any plan counts, not only the first: MPC's first plan can be rated above the
  reference while a later replan, from a dot pressed against a wall, is imagined through it.
- *search*: otherwise. The optimiser found no plan the model itself rates as well as the reference.
"""
from __future__ import annotations

import math
import statistics
from typing import Any

from quantwm.analysis._values import number


def _has_reference(ep: dict) -> bool:
    return not math.isnan(number(ep.get("reference_objective"))) and bool(ep.get("plan_objectives"))


def _objective_failure(ep: dict) -> bool:
    true = ep.get("plan_true_objectives") or []
    return bool(true) and number(true[0]) <= number(ep.get("reference_true_objective"))  # NaN compares False


def _median_optimism(episodes: list[dict]) -> float | None:
    gaps = [number(t) - number(m) for ep in episodes for t, m in zip(ep.get("plan_true_objectives") or [], ep["plan_objectives"])]
    gaps = [g for g in gaps if not math.isnan(g)]
    return statistics.median(gaps) if gaps else None


def failure_split(episodes: list[dict]) -> dict[str, Any]:
    """Failure categories (module docstring) of episode dicts (``EpisodeRecord.to_json()``), over
    those with a reference objective and at least one plan; {} when none has one.

    Keys: ``episodes_with_reference``; ``first_plan_rated_below_reference`` (fraction whose first
    plan the model imagined below the reference); ``failures_objective_prefers_own_plan``,
    ``failures_model_prefers_own_plan``, ``failures_search_missed_reference`` (counts, summing to
    the failed episodes); ``median_reference_objective`` (imagined); ``median_optimism_failed`` /
    ``median_optimism_succeeded`` (median over chosen plans of true minus imagined objective;
    positive: the model thought its plans better than they were; None without plans). A missing
    true objective (None / NaN) never makes an objective failure, and missing gaps are skipped.
    """
    ref = [ep for ep in episodes if _has_reference(ep)]
    if not ref:
        return {}
    failed = [ep for ep in ref if not ep["success"]]
    objective = [_objective_failure(ep) for ep in failed]
    model = [not o and min(map(number, ep["plan_objectives"])) < number(ep["reference_objective"])
             for o, ep in zip(objective, failed)]
    return {
        "episodes_with_reference": len(ref),
        "first_plan_rated_below_reference":
            sum(number(ep["plan_objectives"][0]) < number(ep["reference_objective"]) for ep in ref) / len(ref),
        "failures_objective_prefers_own_plan": sum(objective),
        "failures_model_prefers_own_plan": sum(model),
        "failures_search_missed_reference": len(failed) - sum(objective) - sum(model),
        "median_reference_objective": statistics.median(number(ep["reference_objective"]) for ep in ref),
        "median_optimism_failed": _median_optimism(failed),
        "median_optimism_succeeded": _median_optimism([ep for ep in ref if ep["success"]]),
    }
