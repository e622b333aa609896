"""The shipped checkpoints: they load, carry their training record, and the Wall model plans."""
from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from quantwm.cli import build_parser
from quantwm.envs.dataset import DEFAULT_DATASETS, generate_dataset, load_split
from quantwm.envs.episodes import make_eval_episodes
from quantwm.experiment import load_model
from quantwm.models import read_meta, shipped_checkpoint
from quantwm.planning import planner_spec, run_episodes
from quantwm.training.presets import get_preset
from quantwm.training.quality import latent_quality


@pytest.mark.parametrize("env", ["wall", "pusht"])
def test_shipped_checkpoint_loads_with_its_training_record(env: str) -> None:
    model = load_model(env)
    assert model.cfg.env == env
    training = read_meta(shipped_checkpoint(env))["training"]
    assert training["command"].startswith("quantwm") and f"--env {env}" in training["command"]
    assert training["wall_time_s"] > 0 and training["data"]["train_episodes"] > 0
    rel = training["relevance"]
    assert rel["cost_true"] < rel["cost_random"], "the model must rate the true actions better than random ones"


# evaluation episodes (seed 99) whose goal the do-nothing policy misses, and a margin of success
# for the shipped model's MPC (Wall: start and goal in opposite rooms, so the door must be found)
PLANNED_EPISODES = {"wall": (1, 5), "pusht": (1, 7)}


@pytest.mark.parametrize("env", ["wall", "pusht"])
def test_shipped_model_plans_to_success_where_doing_nothing_fails(env: str) -> None:
    """MPC with the default (quick) settings reaches the goal on episodes the do-nothing policy
    fails, and CEM lowers the model's own objective within each first plan."""
    model = load_model(env)
    indices = PLANNED_EPISODES[env]
    episodes = [make_eval_episodes(env, max(indices) + 1, 99)[i] for i in indices]
    spec = planner_spec(env, "mpc")
    records = run_episodes(model, env, episodes, spec, batch_size=len(episodes))
    idle = run_episodes(model, env, episodes, planner_spec(env, "do_nothing"), batch_size=len(episodes))
    for ep, r, still in zip(episodes, records, idle):
        assert not still.success, f"episode {r.index}: doing nothing already reaches the goal"
        assert r.success, f"episode {r.index} ended {r.state_distance:.1f} from the goal"
        if env == "wall":  # the door was found: start and goal in opposite rooms, the dot ends in the goal's
            assert (ep.start_state[0] < 32) != (ep.goal_state[0] < 32)
            assert (r.states[-1][0] < 32) == (ep.goal_state[0] < 32)
        first_plan = r.objective_traces[0]
        assert len(first_plan) == spec.optimizer.opt_steps and first_plan[-1] < first_plan[0]


@pytest.mark.parametrize("env", ["wall", "pusht"])
def test_recorded_training_command_names_the_checkpoints_recipe(env: str) -> None:
    """The command in the checkpoint's record parses with today's CLI, and the preset it selects
    (with its --set overrides and --steps-scale) has the checkpoint's architecture and step counts."""
    training = read_meta(shipped_checkpoint(env))["training"]
    argv = shlex.split(training["command"])
    assert argv[0] == "quantwm"
    args = build_parser().parse_args(argv[1:])  # an unknown flag exits here
    assert (args.command, args.env) == ("train", env)
    preset = get_preset(env, tuple(args.set))
    steps = {"encoder": preset.encoder_steps, "predictor": preset.predictor_steps, "decoder": preset.decoder_steps}
    assert {k: max(1, round(v * args.steps_scale)) for k, v in steps.items()} == training["steps"]
    cfg = load_model(env).cfg
    assert (cfg.encoder, cfg.predictor, cfg.decoder, cfg.num_hist) == (preset.encoder, preset.predictor, preset.decoder, preset.num_hist)


def test_shipped_wall_model_beats_copying_the_frame(tmp_path: Path) -> None:
    """On validation windows, the imagined latents are closer to the real frame's than the context
    frame copied forward is, at every one of 5 open-loop steps; the error grows with the steps; the
    decoder's frames are scored (PSNR in a plausible range)."""
    data_dir = generate_dataset(replace(DEFAULT_DATASETS["wall"], n_episodes=20), tmp_path / "wall")
    q = latent_quality(load_model("wall"), load_split(data_dir, "val"), windows=48, steps=5)
    assert all(v < c for v, c in zip(q.visual_mse, q.copy_mse)), (q.visual_mse, q.copy_mse)
    assert q.visual_mse[-1] > q.visual_mse[0]
    assert 15 < q.recon_psnr < 60 and len(q.pred_psnr) == 5 and 15 < q.pred_psnr[0] < 60


@pytest.mark.parametrize("env", ["wall", "pusht"])
def test_shipped_model_never_trained_on_the_episodes_evaluation_draws_from(env: str) -> None:
    """PushT's evaluation goals and the quantization calibration episodes come from the val and
    calib episodes of the default dataset; the checkpoint's training episodes (generated from
    ``default_rng([seed, index])``) include none of them."""
    meta = read_meta(shipped_checkpoint(env))["training"]["data"]["meta"]
    first, count = meta["counts"]["train"]["first_episode"], meta["counts"]["train"]["episodes"]
    trained = range(first, first + count) if meta["config"]["seed"] == DEFAULT_DATASETS[env].seed else range(0)
    held_out = DEFAULT_DATASETS[env].split_ranges()
    for split in ("val", "calib"):
        assert not set(trained) & set(held_out[split]), f"{env} trained on {split} episodes of the default dataset"
    assert meta["config"]["env"] == env and meta["config"]["episode_len"] == DEFAULT_DATASETS[env].episode_len
