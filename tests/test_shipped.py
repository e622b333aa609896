"""The shipped checkpoints: they load, carry their training record, and the Wall model plans."""
from __future__ import annotations

import pytest

from quantwm.envs.episodes import make_eval_episodes
from quantwm.experiment import load_model
from quantwm.models import read_meta, shipped_checkpoint
from quantwm.planning import planner_spec, run_episodes


@pytest.mark.parametrize("env", ["wall", "pusht"])
def test_shipped_checkpoint_loads_with_its_training_record(env: str) -> None:
    model = load_model(env)
    assert model.cfg.env == env
    training = read_meta(shipped_checkpoint(env))["training"]
    assert training["command"].startswith("quantwm") and f"--env {env}" in training["command"]
    assert training["wall_time_s"] > 0 and training["data"]["train_episodes"] > 0
    rel = training["relevance"]
    assert rel["cost_true"] < rel["cost_random"], "the model must rate the true actions better than random ones"


def test_shipped_wall_model_plans_to_success() -> None:
    """MPC with the default (quick) settings reaches the goal on two evaluation episodes of seed 99
    that start and end in opposite rooms (the door must be found), and CEM lowers the model's own
    objective within each plan."""
    model = load_model("wall")
    episodes = [make_eval_episodes("wall", 6, 99)[i] for i in (1, 5)]
    spec = planner_spec("wall", "mpc")
    records = run_episodes(model, "wall", episodes, spec, batch_size=2)
    for ep, r in zip(episodes, records):
        assert (ep.start_state[0] < 32) != (ep.goal_state[0] < 32)
        assert r.success, f"episode {r.index} ended {r.state_distance:.1f} px from the goal"
        assert (r.states[-1][0] < 32) == (ep.goal_state[0] < 32)
        first_plan = r.objective_traces[0]
        assert len(first_plan) == spec.optimizer.opt_steps and first_plan[-1] < first_plan[0]
