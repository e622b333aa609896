"""Named planners with the project's default settings per environment.

``cem`` and ``gd`` plan once and execute the whole plan open-loop (success judged on the final
state); ``mpc`` replans with CEM after every executed planner step within a budget, shrinking the
horizon as the budget runs out, with sticky success; ``do_nothing`` and ``random`` are baselines
executed open-loop for the MPC budget, so every planner is judged on the same episodes.
"""
from __future__ import annotations

from dataclasses import replace

from quantwm.planning.episodes import PlannerSpec
from quantwm.planning.optimizers import CEMConfig, DoNothingConfig, GDConfig, RandomConfig

PLANNERS = ("cem", "mpc", "gd", "do_nothing", "random")

# Per env: the CEM used by `cem` and `mpc`, the GD, the horizon, MPC's budget (planner steps).
_DEFAULTS = {
    "wall": {"cem": CEMConfig(samples=200, topk=20, opt_steps=10), "gd": GDConfig(opt_steps=100, lr=1.0),
             "horizon": 5, "mpc_budget": 10},
    "pusht": {"cem": CEMConfig(samples=100, topk=10, opt_steps=10), "gd": GDConfig(opt_steps=100, lr=1.0),
              "horizon": 5, "mpc_budget": 10},
}


def planner_spec(env: str, planner: str, *, samples: int | None = None, topk: int | None = None,
                 opt_steps: int | None = None, horizon: int | None = None, budget: int | None = None) -> PlannerSpec:
    """The default ``PlannerSpec`` of ``planner`` on ``env``; given values override the defaults."""
    if env not in _DEFAULTS:
        raise ValueError(f"unknown env {env!r}; valid: {sorted(_DEFAULTS)}")
    if planner not in PLANNERS:
        raise ValueError(f"unknown planner {planner!r}; valid: {', '.join(PLANNERS)}")
    for name, value in (("samples", samples), ("topk", topk), ("opt_steps", opt_steps), ("horizon", horizon), ("budget", budget)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    d = _DEFAULTS[env]
    cem = replace(d["cem"], **{k: v for k, v in (("samples", samples), ("topk", topk), ("opt_steps", opt_steps)) if v is not None})
    if cem.topk > cem.samples:
        raise ValueError(f"topk ({cem.topk}) must not exceed samples ({cem.samples})")
    gd = replace(d["gd"], **({"opt_steps": opt_steps} if opt_steps is not None else {}))
    h = horizon or d["horizon"]
    mpc_budget = budget or d["mpc_budget"]
    specs = {
        "cem": PlannerSpec(cem, horizon=h, replan_every=h, max_steps=h),
        "gd": PlannerSpec(gd, horizon=h, replan_every=h, max_steps=h),
        "mpc": PlannerSpec(cem, horizon=h, replan_every=1, max_steps=mpc_budget, sticky_success=True, shrink_horizon=True),
        "do_nothing": PlannerSpec(DoNothingConfig(), horizon=mpc_budget, replan_every=mpc_budget, max_steps=mpc_budget),
        "random": PlannerSpec(RandomConfig(), horizon=mpc_budget, replan_every=mpc_budget, max_steps=mpc_budget),
    }
    return specs[planner]
