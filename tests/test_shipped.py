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
    """MPC with the default settings on the first evaluation episodes of seed 99."""
    model = load_model("wall")
    episodes = make_eval_episodes("wall", 3, 99)
    records = run_episodes(model, "wall", episodes, planner_spec("wall", "mpc"), batch_size=3)
    assert sum(r.success for r in records) >= 2, [(r.success, r.state_distance) for r in records]
    assert all(len(trace) == 10 for r in records for trace in r.objective_traces)
