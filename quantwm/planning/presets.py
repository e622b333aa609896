"""Named planners and planner presets per environment.

Planners: ``cem`` and ``gd`` plan once and execute the whole plan open-loop (success judged on the
final state); ``mpc`` replans with CEM after every ``replan_every`` executed planner steps within a
budget, shrinking the horizon as the budget runs out, with sticky success; ``do_nothing`` and
``random`` are baselines executed open-loop for the MPC budget, so every planner is judged on the
same episodes.

Presets: ``quick`` is the interactive default, sized for 2 CPU cores (on Wall its CEM keeps every
sampled action within 2.5 data std, where the shipped model was trained: unbounded, CEM's means
drift to env actions of 10-17, 6-10 std, and plans exploit what the model imagines there; and its
objective weights every imagined frame by 2^t, DINO-WM's mode "all": with the last frame alone, a
plan that leaves the goal and comes back rates as well as one that stays, and MPC near the goal
swung back and forth past the 4.5-px tolerance until its budget ran out; its warm-started replans
run 2 CEM steps, not 5: the same success on the 50 evaluation episodes in far less time (README),
where 1 step lost 4 episodes and PushT's replans at 2 steps lost 8; and its MPC budget is 50 planner
steps, not 20: the first 13 plans of an episode are the same (the horizon shrinks only near the
budget's end), and a dot held at the middle wall far from the door gets more replans to find the
way round - the study caps DINO-WM's MPC at 50 iterations on Wall);
``paper`` is DINO-WM's CEM
(300 samples, top-30, 30 optimiser steps for PushT and 10 for Wall, horizon 5) and its MPC, which
executes ``n_taken_actions = 5`` planner steps - the whole horizon-5 plan - before replanning; the
replanning budget is ours (DINO-WM has none). Explicit values override a preset.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from quantwm.planning.episodes import PlannerSpec
from quantwm.planning.objective import Objective
from quantwm.planning.optimizers import CEMConfig, DoNothingConfig, GDConfig, RandomConfig

PLANNERS = ("cem", "mpc", "gd", "do_nothing", "random")


@dataclass(frozen=True)
class PlannerPreset:
    """The optimisers and MPC schedule of one preset on one environment."""

    cem: CEMConfig
    gd: GDConfig
    horizon: int
    mpc_budget: int  # planner steps (each frameskip env steps)
    mpc_replan_every: int
    mpc_warm_start: bool = False  # replans start from the rest of the previous plan (DINO-WM: from zeros)
    mpc_replan_opt_steps: int | None = None  # optimiser steps of a warm-started replan (None: as the first plan)
    objective: Objective = Objective()  # DINO-WM's default: the last imagined frame


_GD = GDConfig(opt_steps=100, lr=1.0)
PRESETS: dict[str, dict[str, PlannerPreset]] = {
    "quick": {
        "wall": PlannerPreset(CEMConfig(samples=100, topk=10, opt_steps=5, action_clip=2.5), _GD, horizon=8, mpc_budget=50,
                              mpc_replan_every=1, mpc_warm_start=True, mpc_replan_opt_steps=2,
                              objective=Objective(frames="all", base=2.0)),
        "pusht": PlannerPreset(CEMConfig(samples=100, topk=10, opt_steps=5), _GD, horizon=5, mpc_budget=10, mpc_replan_every=1,
                               mpc_warm_start=True),
    },
    "paper": {
        "wall": PlannerPreset(CEMConfig(samples=300, topk=30, opt_steps=10), GDConfig(), horizon=5, mpc_budget=20, mpc_replan_every=5),
        "pusht": PlannerPreset(CEMConfig(samples=300, topk=30, opt_steps=30), GDConfig(), horizon=5, mpc_budget=20, mpc_replan_every=5),
    },
}
DEFAULT_PRESET = "quick"


def planner_spec(env: str, planner: str, *, preset: str = DEFAULT_PRESET, samples: int | None = None,
                 topk: int | None = None, opt_steps: int | None = None, horizon: int | None = None,
                 budget: int | None = None, replan_every: int | None = None, warm_start: bool | None = None,
                 noise_beta: float | None = None, action_clip: float | None = None, keep_elites: int | None = None,
                 return_best: bool | None = None, objective_frames: str | None = None,
                 objective_base: float | None = None, objective_alpha: float | None = None,
                 replan_opt_steps: int | None = None, hold: bool | None = None) -> PlannerSpec:
    """The ``PlannerSpec`` of ``planner`` on ``env`` under ``preset``; given values override it."""
    if preset not in PRESETS:
        raise ValueError(f"unknown planner preset {preset!r}; valid: {', '.join(PRESETS)}")
    if env not in PRESETS[preset]:
        raise ValueError(f"unknown env {env!r}; valid: {sorted(PRESETS[preset])}")
    if planner not in PLANNERS:
        raise ValueError(f"unknown planner {planner!r}; valid: {', '.join(PLANNERS)}")
    given = {"samples": samples, "topk": topk, "opt_steps": opt_steps, "horizon": horizon, "budget": budget,
             "replan_every": replan_every, "replan_opt_steps": replan_opt_steps}
    for name, value in given.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    p = PRESETS[preset][env]
    cem = replace(p.cem, **{k: given[k] for k in ("samples", "topk", "opt_steps") if given[k] is not None},
                  **{k: v for k, v in (("noise_beta", noise_beta), ("action_clip", action_clip), ("keep_elites", keep_elites),
                                       ("return_best", return_best), ("hold", hold)) if v is not None})
    if cem.topk > cem.samples:
        raise ValueError(f"topk ({cem.topk}) must not exceed samples ({cem.samples})")
    gd = replace(p.gd, **({"opt_steps": opt_steps} if opt_steps is not None else {}))
    h = horizon or p.horizon
    objective = replace(p.objective, **{k: v for k, v in (("frames", objective_frames), ("base", objective_base),
                                                          ("alpha", objective_alpha)) if v is not None})
    mpc_budget = budget or p.mpc_budget
    specs = {
        "cem": PlannerSpec(cem, horizon=h, replan_every=h, max_steps=h, objective=objective),
        "gd": PlannerSpec(gd, horizon=h, replan_every=h, max_steps=h, objective=objective),
        "mpc": PlannerSpec(cem, horizon=h, replan_every=replan_every or p.mpc_replan_every, max_steps=mpc_budget,
                           sticky_success=True, shrink_horizon=True,
                           warm_start=p.mpc_warm_start if warm_start is None else warm_start,
                           replan_opt_steps=replan_opt_steps or p.mpc_replan_opt_steps, objective=objective),
        "do_nothing": PlannerSpec(DoNothingConfig(), horizon=mpc_budget, replan_every=mpc_budget, max_steps=mpc_budget,
                                  objective=objective),
        "random": PlannerSpec(RandomConfig(), horizon=mpc_budget, replan_every=mpc_budget, max_steps=mpc_budget,
                              objective=objective),
    }
    return specs[planner]
