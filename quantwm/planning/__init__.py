"""Planning in the world model: DINO-WM's objective, CEM / GD optimisers, MPC and evaluation."""
from quantwm.planning.episodes import EpisodeRecord, PlannerSpec, run_episodes
from quantwm.planning.objective import FRAME_WEIGHTS, Objective, latent_cost, planning_cost
from quantwm.planning.optimizers import CEMConfig, DoNothingConfig, GDConfig, Plan, RandomConfig, optimize
from quantwm.planning.presets import PLANNERS, planner_spec

__all__ = [
    "FRAME_WEIGHTS", "PLANNERS", "CEMConfig", "DoNothingConfig", "EpisodeRecord", "GDConfig", "Objective", "Plan", "PlannerSpec", "RandomConfig",
    "latent_cost", "optimize", "planner_spec", "planning_cost", "run_episodes",
]
