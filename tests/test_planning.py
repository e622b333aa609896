"""Planning: objective, optimiser records, matched episodes, no env access while optimising."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from quantwm.envs import make_env
from quantwm.envs.episodes import make_eval_episodes
from quantwm.experiment.config import PlannerChoice
from quantwm.models import Latents, PredictorConfig, ViTConfig, WorldModel, WorldModelConfig
from quantwm.planning import CEMConfig, Objective, PlannerSpec, latent_cost, planner_spec, planning_cost, run_episodes
from quantwm.planning import episodes as episodes_module
from quantwm.planning.optimizers import cem, colored_noise


@pytest.fixture(scope="module")
def wall_model() -> WorldModel:
    torch.manual_seed(0)
    cfg = WorldModelConfig(
        env="wall", image_size=64, num_hist=1, frameskip=5, action_dim=2, proprio_dim=2,
        encoder=ViTConfig(64, 16, 16, 1, 2), predictor=PredictorConfig(depth=1, heads=2, dim_head=8, mlp_dim=16),
        decoder=None, action_mean=(0.0, 0.0), action_std=(1.3, 1.3), proprio_mean=(32.0, 32.0), proprio_std=(14.0, 14.0),
    )
    return WorldModel(cfg).eval().requires_grad_(False)


def test_objective_is_last_frame_visual_plus_alpha_proprio(wall_model: WorldModel) -> None:
    z = torch.randn(2, 3, 16, wall_model.cfg.token_dim)
    goal = Latents(torch.randn(1, 1, 16, 16), torch.randn(1, 1, 10))
    cost = planning_cost(wall_model, z, goal, alpha=0.5)
    vis = ((z[:, -1, :, :16] - goal.visual[:, 0]) ** 2).mean(dim=(1, 2))
    pro = ((z[:, -1, 0, 16:26] - goal.proprio[:, 0]) ** 2).mean(dim=1)
    torch.testing.assert_close(cost, vis + 0.5 * pro)
    z2 = z.clone()
    z2[:, :-1] += 1  # earlier frames and action dims do not count
    z2[..., 26:] += 1
    torch.testing.assert_close(planning_cost(wall_model, z2, goal, alpha=0.5), cost)


def test_objective_over_all_frames_weights_frame_t_by_base_to_the_t(wall_model: WorldModel) -> None:
    """Mode "all": per-frame costs averaged with weights base^t / sum; a plan that reaches the goal
    earlier and stays there rates better than one that arrives last, which "last" cannot tell apart."""
    goal = Latents(torch.randn(1, 1, 16, 16), torch.randn(1, 1, 10))
    z = torch.randn(2, 4, 16, wall_model.cfg.token_dim)
    per_frame = torch.stack([planning_cost(wall_model, z[:, : t + 1], goal, alpha=0.5) for t in range(4)], 1)  # (2, 4)
    weights = torch.tensor([1.0, 3.0, 9.0, 27.0]) / 40
    torch.testing.assert_close(Objective(alpha=0.5, frames="all", base=3.0).cost(wall_model, z, goal), per_frame @ weights)
    at_goal = torch.cat([goal.visual[0, 0], goal.proprio[0, 0].expand(16, 10)], -1)  # a frame exactly at the goal
    early, late = z[:1].clone(), z[:1].clone()
    early[0, 1:, :, :26] = at_goal
    late[0, 3, :, :26] = at_goal
    both = torch.cat([early, late])
    last, every = Objective(), Objective(frames="all")
    torch.testing.assert_close(last.cost(wall_model, both, goal), torch.zeros(2))
    cost = every.cost(wall_model, both, goal)
    assert cost[0] < cost[1]
    with pytest.raises(ValueError, match="unknown objective frames 'first'; valid: last, all"):
        Objective(frames="first")
    with pytest.raises(ValueError, match="base must be > 0"):
        Objective(frames="all", base=0.0)
    with pytest.raises(ValueError, match="alpha .* must be >= 0"):
        Objective(alpha=-1.0)


def test_planner_spec_objective_alpha_reaches_the_objective() -> None:
    """``objective_alpha`` (``quantwm eval --objective-alpha``) weights the proprio term of every planner's
    objective; the presets keep DINO-WM's 1."""
    for planner in ("mpc", "cem", "gd"):
        assert planner_spec("wall", planner).objective.alpha == 1.0
        assert planner_spec("wall", planner, objective_alpha=4.0).objective.alpha == 4.0
    with pytest.raises(ValueError, match="alpha"):
        planner_spec("wall", "mpc", objective_alpha=-0.5)
    # an experiment's planner takes it too (an int is a valid float)
    assert PlannerChoice("mpc", overrides=(("objective_alpha", 2),)).spec("wall").objective.alpha == 2.0
    with pytest.raises(ValueError, match="planner override samples must be an int, got True"):
        PlannerChoice("mpc", overrides=(("samples", True),))


def test_cem_records_objective_per_step_and_returns_the_mean(wall_model: WorldModel) -> None:
    ctx = Latents(torch.randn(2, 1, 16, 16), torch.randn(2, 1, 10))
    goal = Latents(torch.randn(2, 1, 16, 16), torch.randn(2, 1, 10))
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    plan = cem(wall_model, ctx, goal, horizon=4, objective=Objective(), gens=gens, cfg=CEMConfig(samples=32, topk=4, opt_steps=5))
    assert plan.actions.shape == (2, 4, 10) and plan.objective_trace.shape == (2, 5)
    torch.testing.assert_close(plan.objective_trace[:, -1], plan.final_objective)
    direct = planning_cost(wall_model, wall_model.rollout(ctx, plan.actions), goal, 1.0)
    torch.testing.assert_close(direct, plan.final_objective)
    # the plan of episode 0 does not depend on episode 1 being in the batch
    alone = cem(wall_model, Latents(ctx.visual[:1], ctx.proprio[:1]), Latents(goal.visual[:1], goal.proprio[:1]), 4, Objective(),
                [torch.Generator().manual_seed(0)], CEMConfig(samples=32, topk=4, opt_steps=5))
    torch.testing.assert_close(alone.actions[0], plan.actions[0])


def test_cem_hold_samples_one_env_action_per_planner_step(wall_model: WorldModel, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = Latents(torch.randn(2, 1, 16, 16), torch.randn(2, 1, 10))
    goal = Latents(torch.randn(2, 1, 16, 16), torch.randn(2, 1, 10))
    fs, ad = wall_model.cfg.frameskip, wall_model.cfg.action_dim
    rolled: list[torch.Tensor] = []
    real = wall_model.rollout
    monkeypatch.setattr(wall_model, "rollout", lambda c, a: rolled.append(a.clone()) or real(c, a))
    cfg = CEMConfig(samples=16, topk=4, opt_steps=3, hold=True)
    plan = cem(wall_model, ctx, goal, 4, Objective(), [torch.Generator().manual_seed(i) for i in range(2)], cfg)
    assert plan.actions.shape == (2, 4, fs * ad) and len(rolled) == 4  # 3 populations + the final mean
    for a in [*rolled, plan.actions]:  # every sample rolled out, and the plan, hold each env action for the step
        env_steps = a.unflatten(-1, (fs, ad))
        assert torch.equal(env_steps, env_steps[..., :1, :].expand_as(env_steps))
    assert rolled[0][1:].unflatten(-1, (fs, ad))[..., 0, :].std() > 0.5  # samples still vary across steps
    # a held warm start is the first mean (sample 0 of the first population)
    init = plan.actions[:, :2].repeat(1, 2, 1)
    rolled.clear()
    cem(wall_model, ctx, goal, 4, Objective(), [torch.Generator().manual_seed(i) for i in range(2)], cfg, init)
    torch.testing.assert_close(rolled[0].view(2, 16, 4, -1)[:, 0], init)
    # without hold, CEM samples every env step (DINO-WM)
    rolled.clear()
    cem(wall_model, ctx, goal, 4, Objective(), [torch.Generator().manual_seed(i) for i in range(2)], replace(cfg, hold=False))
    env_steps = rolled[0].unflatten(-1, (fs, ad))
    assert not torch.equal(env_steps, env_steps[..., :1, :].expand_as(env_steps))
    assert planner_spec("wall", "mpc", hold=True).optimizer.hold


def test_episodes_are_matched_and_batch_independent(wall_model: WorldModel) -> None:
    eps = make_eval_episodes("wall", 3, 7)
    spec = planner_spec("wall", "mpc", samples=16, topk=4, opt_steps=2, budget=3)
    one = run_episodes(wall_model, "wall", eps, spec, batch_size=1)
    together = run_episodes(wall_model, "wall", eps, spec, batch_size=3)
    for a, b in zip(one, together):
        np.testing.assert_allclose(a.env_actions, b.env_actions, atol=1e-5)
        np.testing.assert_allclose(a.states, b.states, atol=1e-5)
        np.testing.assert_allclose(a.objective_traces, b.objective_traces, rtol=1e-5)
    assert all(len(t) == 2 for r in one for t in r.objective_traces)
    assert all(len(r.objective_traces) == 3 for r in one if not r.success)  # one plan per executed step


def test_planner_never_steps_the_env_while_optimising(wall_model: WorldModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """Env steps happen only between plans: count them inside every optimiser call."""
    calls = {"steps_during_plan": 0, "in_plan": False}
    real_optimize = episodes_module.optimize
    real_make_env = episodes_module.make_env

    def watched_optimize(*args, **kwargs):
        calls["in_plan"] = True
        try:
            return real_optimize(*args, **kwargs)
        finally:
            calls["in_plan"] = False

    def watched_make_env(*args, **kwargs):
        env = real_make_env(*args, **kwargs)
        for name in ("step", "reset", "is_success"):
            real = getattr(env, name)

            def spy(*a, _real=real, **k):
                if calls["in_plan"]:
                    calls["steps_during_plan"] += 1
                return _real(*a, **k)

            setattr(env, name, spy)
        return env

    monkeypatch.setattr(episodes_module, "optimize", watched_optimize)
    monkeypatch.setattr(episodes_module, "make_env", watched_make_env)
    spec = planner_spec("wall", "mpc", samples=8, topk=2, opt_steps=2, budget=2)
    run_episodes(wall_model, "wall", make_eval_episodes("wall", 2, 1), spec)
    assert calls["steps_during_plan"] == 0


def test_open_loop_executes_the_whole_plan(wall_model: WorldModel) -> None:
    spec = PlannerSpec(CEMConfig(samples=8, topk=2, opt_steps=1), horizon=3, replan_every=3, max_steps=3)
    (rec,) = run_episodes(wall_model, "wall", make_eval_episodes("wall", 1, 3), spec)
    assert rec.env_actions.shape == (15, 2) and rec.states.shape == (16, 3)
    np.testing.assert_allclose(rec.env_actions, wall_model.denormalize_actions(torch.from_numpy(rec.planned_actions[0])).reshape(-1, 2).numpy(), rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"planner": "nope"}, "unknown planner 'nope'; valid: cem, mpc, gd, do_nothing, random"),
    ({"planner": "mpc", "samples": 0}, "samples must be >= 1"),
    ({"planner": "mpc", "samples": 4, "topk": 8}, r"topk \(8\) must not exceed samples \(4\)"),
    ({"planner": "mpc", "preset": "fast"}, "unknown planner preset 'fast'; valid: quick, paper"),
    ({"planner": "mpc", "replan_every": 0}, "replan_every must be >= 1"),
    ({"planner": "mpc", "noise_beta": -1.0}, r"noise_beta must be >= 0 \(0 = white noise\)"),
])
def test_planner_spec_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        planner_spec("wall", **kwargs)


def test_presets_and_overrides() -> None:
    paper = planner_spec("pusht", "mpc", preset="paper")
    assert (paper.optimizer.samples, paper.optimizer.topk, paper.optimizer.opt_steps, paper.horizon) == (300, 30, 30, 5)
    assert paper.replan_every == 5  # DINO-WM executes the whole horizon-5 plan before replanning
    assert planner_spec("wall", "cem", preset="paper").optimizer.opt_steps == 10
    over = planner_spec("wall", "mpc", preset="paper", samples=50, replan_every=2)
    assert (over.optimizer.samples, over.optimizer.topk, over.replan_every) == (50, 30, 2)
    assert planner_spec("wall", "mpc") == planner_spec("wall", "mpc", preset="quick")


def test_calibration_comes_from_fp_planning_on_calibration_episodes(wall_model: WorldModel) -> None:
    from quantwm.experiment import calibrate

    val = make_eval_episodes("wall", 3, 0)
    calib = make_eval_episodes("wall", 3, 0, split="calib")
    assert not any(np.array_equal(a.start_state, b.start_state) for a in val for b in calib)
    kw = {"samples": 6, "topk": 2, "opt_steps": 2, "budget": 2, "episodes": 2, "size": 40, "seed": 5}
    cal = calibrate(wall_model, "wall", ("predictor", "encoder"), **kw)
    assert cal.size("predictor") == 40 and cal.size("encoder") > 0
    tokens = cal.inputs["predictor"][0][0]
    assert tokens.shape[1:] == (wall_model.cfg.encoder.num_patches, wall_model.cfg.token_dim)  # one frame (num_hist 1)
    again = calibrate(wall_model, "wall", ("predictor", "encoder"), **kw)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(cal.inputs["predictor"], again.inputs["predictor"]))
    other = calibrate(wall_model, "wall", ("predictor",), **{**kw, "seed": 6})
    assert not torch.equal(other.inputs["predictor"][0][0], tokens)


def test_warm_start_begins_each_replan_from_the_rest_of_the_last_plan(wall_model: WorldModel, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[torch.Tensor | None, torch.Tensor]] = []
    real = episodes_module.optimize

    def spy(*args, **kwargs):
        plan = real(*args, **kwargs)
        seen.append((args[-1], plan.actions.clone()))
        return plan

    monkeypatch.setattr(episodes_module, "optimize", spy)
    spec = PlannerSpec(CEMConfig(samples=8, topk=2, opt_steps=2), horizon=4, replan_every=1, max_steps=3, warm_start=True)
    run_episodes(wall_model, "wall", make_eval_episodes("wall", 2, 1), spec, batch_size=2)
    assert seen[0][0] is None and len(seen) == 3
    for (_, previous), (init, _) in zip(seen, seen[1:]):
        torch.testing.assert_close(init[:, :3], previous[:, 1:])
        assert torch.equal(init[:, 3:], torch.zeros_like(init[:, 3:]))
    # without warm start every plan starts from zeros
    seen.clear()
    run_episodes(wall_model, "wall", make_eval_episodes("wall", 2, 1), PlannerSpec(CEMConfig(samples=8, topk=2, opt_steps=2), horizon=4, replan_every=1, max_steps=3), batch_size=2)
    assert all(init is None for init, _ in seen)


def test_replan_opt_steps_apply_to_warm_started_replans_only(wall_model: WorldModel, monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[tuple[int, bool]] = []
    real = episodes_module.optimize

    def spy(*args, **kwargs):
        plan = real(*args, **kwargs)
        steps.append((args[-2].opt_steps, args[-1] is not None))
        assert plan.objective_trace.shape[1] == args[-2].opt_steps
        return plan

    monkeypatch.setattr(episodes_module, "optimize", spy)
    cem_cfg = CEMConfig(samples=8, topk=2, opt_steps=3)
    run_episodes(wall_model, "wall", make_eval_episodes("wall", 2, 1),
                 PlannerSpec(cem_cfg, horizon=4, replan_every=1, max_steps=3, warm_start=True, replan_opt_steps=1), batch_size=2)
    assert steps == [(3, False), (1, True), (1, True)]
    steps.clear()  # cold replans keep the full count
    run_episodes(wall_model, "wall", make_eval_episodes("wall", 2, 1),
                 PlannerSpec(cem_cfg, horizon=4, replan_every=1, max_steps=3, replan_opt_steps=1), batch_size=2)
    assert steps == [(3, False)] * 3
    assert (planner_spec("wall", "mpc").replan_opt_steps, planner_spec("pusht", "mpc").replan_opt_steps) == (2, None)
    assert planner_spec("wall", "mpc", replan_opt_steps=3).replan_opt_steps == 3
    with pytest.raises(ValueError, match="replan_opt_steps must be >= 1"):
        planner_spec("wall", "mpc", replan_opt_steps=0)


def _lag1(x: torch.Tensor) -> float:
    """Correlation of consecutive steps along the time axis (-2) of (E, S, T, A) noise."""
    return float((x[..., 1:, :] * x[..., :-1, :]).mean() / x.var())


@pytest.mark.parametrize("t", [40, 25])
def test_colored_noise_is_unit_variance_and_coherent_in_time(t: int) -> None:
    gens = lambda: [torch.Generator().manual_seed(s) for s in (1, 2)]  # noqa: E731
    cpu = torch.device("cpu")
    white = colored_noise(gens(), (3000, t, 2), 0.0, cpu)
    assert torch.equal(white, torch.stack([torch.randn(3000, t, 2, generator=g) for g in gens()]))  # DINO-WM's sampler
    lags = []
    for beta in (0.0, 1.0, 2.0):
        x = colored_noise(gens(), (3000, t, 2), beta, cpu)
        assert x.shape == (2, 3000, t, 2)
        per_step = x.var(dim=(0, 1, 3))
        assert per_step.min() > 0.93 and per_step.max() < 1.07, per_step  # unit variance at every step
        assert abs(float(x.mean())) < 0.05
        lags.append(_lag1(x))
    assert abs(lags[0]) < 0.03 and 0.4 < lags[1] < 0.7 and lags[2] > 0.8, lags
    assert torch.equal(colored_noise(gens(), (5, t, 2), 2.0, cpu), colored_noise(gens(), (5, t, 2), 2.0, cpu))
    one = colored_noise(gens()[:1], (5, t, 2), 2.0, cpu)
    assert torch.equal(one[0], colored_noise(gens(), (5, t, 2), 2.0, cpu)[0])  # an episode's noise ignores the batch


def test_cem_samples_coloured_noise_over_env_steps(wall_model: WorldModel, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = colored_noise

    def spy(gens, shape, beta, device):
        seen.append((shape, beta))
        return real(gens, shape, beta, device)

    monkeypatch.setattr("quantwm.planning.optimizers.colored_noise", spy)
    spec = planner_spec("wall", "cem", samples=6, topk=2, opt_steps=2, horizon=3, noise_beta=2.5)
    assert spec.optimizer.noise_beta == 2.5 and planner_spec("wall", "cem", preset="paper").optimizer.noise_beta == 0.0
    run_episodes(wall_model, "wall", make_eval_episodes("wall", 2, 0), spec, batch_size=2)
    assert seen == [((6, 15, 2), 2.5)] * 2  # 3 planner steps x frameskip 5 env steps, per action dim


def test_reference_objective_tells_model_from_search_failures(wall_model: WorldModel) -> None:

    from quantwm.experiment import EvalResult

    plain = make_eval_episodes("wall", 4, 5)
    rng = np.random.default_rng(0)
    refs = [rng.normal(size=(10, 2)), None, rng.normal(size=(15, 2)), rng.normal(size=(4, 2))]  # horizon 2 = 10 env steps
    episodes = [replace(ep, reference_actions=r) for ep, r in zip(plain, refs)]
    spec = PlannerSpec(CEMConfig(samples=8, topk=2, opt_steps=2), horizon=2, replan_every=1, max_steps=2, sticky_success=False)
    records = run_episodes(wall_model, "wall", episodes, spec, batch_size=4)
    env = make_env("wall", render_size=64)
    encode = lambda o: wall_model.encode_obs(torch.from_numpy(o["visual"])[None, None], torch.from_numpy(o["proprio"])[None, None])  # noqa: E731
    for i, env_actions in ((0, refs[0]), (3, np.concatenate([refs[3], np.zeros((6, 2))]))):  # shorter: padded with zeros
        obs, _ = env.reset(options={"state": episodes[i].start_state})
        goal_obs, _ = env.reset(options={"state": episodes[i].goal_state})
        actions = wall_model.normalize_actions(torch.tensor(env_actions, dtype=torch.float32).view(1, 2, 5, 2))
        expected = planning_cost(wall_model, wall_model.rollout(encode(obs), actions), encode(goal_obs), 1.0)
        assert records[i].reference_objective == pytest.approx(float(expected), rel=1e-5)
        # what the reference and the first plan really score: replayed in the env, every 5th frame encoded
        goal = encode(goal_obs)
        for actions, rated in ((env_actions, records[i].reference_true_objective),
                               (wall_model.denormalize_actions(torch.from_numpy(records[i].planned_actions[0])).reshape(-1, 2).numpy(),
                                records[i].plan_true_objectives[0])):
            obs, _ = env.reset(options={"state": episodes[i].start_state})
            seen = [obs]
            for k, a in enumerate(actions):
                obs = env.step(a)[0]
                if (k + 1) % 5 == 0:
                    seen.append(obs)
            real = wall_model.encode_obs(torch.from_numpy(np.stack([o["visual"] for o in seen]))[None],
                                         torch.from_numpy(np.stack([o["proprio"] for o in seen]))[None])
            assert rated == pytest.approx(float(latent_cost(real, goal, 1.0)), rel=1e-5)
    assert np.isnan(records[1].reference_objective) and np.isnan(records[2].reference_objective)
    assert np.isnan(records[1].reference_true_objective) and len(records[1].plan_true_objectives) == 2
    assert records[1].to_json()["reference_objective"] is None and records[1].to_json()["reference_true_objective"] is None
    summary = EvalResult("wall", "cem", spec, records, 1.0).summary()
    assert summary["episodes_with_reference"] == 2
    assert all(len(r.plan_objectives) == 2 for r in records)  # two replans: the failure split counts both
    first = [r.plan_objectives[0] < r.reference_objective for r in (records[0], records[3])]
    assert summary["first_plan_rated_below_reference"] == sum(first) / 2
    assert "episodes_with_reference" not in EvalResult("wall", "cem", spec, records[1:2], 1.0).summary()
    # each failure counted once: objective (the first plan really scores no worse than the reference),
    # else model (some plan - a later one too - rated below the reference), else search
    base = replace(records[0], success=False, reference_objective=0.1, reference_true_objective=0.1)
    objective = replace(base, plan_objectives=[0.05, 0.2], plan_true_objectives=[0.08, 0.3])
    late = replace(base, plan_objectives=[0.5, 0.01], plan_true_objectives=[0.6, 0.5])
    never = replace(base, plan_objectives=[0.5, 0.2], plan_true_objectives=[0.6, 0.3])
    won = replace(base, success=True, plan_objectives=[0.2], plan_true_objectives=[0.1])
    split = EvalResult("wall", "mpc", spec, [objective, late, never, won], 1.0).summary()
    assert split["first_plan_rated_below_reference"] == 0.25
    assert (split["failures_objective_prefers_own_plan"], split["failures_model_prefers_own_plan"],
            split["failures_search_missed_reference"]) == (1, 1, 1)
    assert split["median_optimism_failed"] == pytest.approx(0.1) and split["median_optimism_succeeded"] == pytest.approx(-0.1)


def test_cem_action_clip_bounds_every_sample(wall_model: WorldModel, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy_costs(monkeypatch)
    spec = planner_spec("wall", "cem", samples=16, topk=4, opt_steps=3, horizon=2, action_clip=0.5)
    (rec,) = run_episodes(wall_model, "wall", make_eval_episodes("wall", 1, 0), spec)
    assert len(seen) == 4 and all(a.abs().max() <= 0.5 for a, _ in seen)  # 3 sampling steps + the final plan
    assert np.abs(rec.planned_actions[0]).max() <= 0.5
    monkeypatch.undo()
    for free_spec in (planner_spec("wall", "cem", preset="paper", samples=16, topk=4, opt_steps=3, horizon=2),  # DINO-WM
                      planner_spec("wall", "cem", samples=16, topk=4, opt_steps=3, horizon=2, action_clip=math.inf)):
        (free,) = run_episodes(wall_model, "wall", make_eval_episodes("wall", 1, 0), free_spec)
        assert np.abs(free.planned_actions[0]).max() > 2.5  # the quick preset's bound on Wall
    with pytest.raises(ValueError, match="action_clip must be > 0"):
        planner_spec("wall", "cem", action_clip=0.0)


def _spy_costs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record every (actions, cost) batch CEM evaluates."""
    from quantwm.planning import optimizers

    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    real = optimizers._cost

    def spy(m, c, g, a, objective):
        cost = real(m, c, g, a, objective)
        seen.append((a.clone(), cost.clone()))
        return cost

    monkeypatch.setattr(optimizers, "_cost", spy)
    return seen


def test_cem_keep_elites_carries_the_best_samples_forward(wall_model: WorldModel, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy_costs(monkeypatch)
    spec = planner_spec("wall", "cem", samples=12, topk=4, opt_steps=3, horizon=2, keep_elites=3)
    run_episodes(wall_model, "wall", make_eval_episodes("wall", 1, 0), spec)
    for (actions, cost), (following, _) in zip(seen[:2], seen[1:3]):
        best = actions[cost.argsort()[:3]]
        torch.testing.assert_close(following[-3:], best)  # the top 3 fill the last slots, best first
    assert not torch.equal(seen[1][0][1:-3], seen[0][0][1:-3])  # the rest is fresh noise
    with pytest.raises(ValueError, match=r"keep_elites must lie in \[0, min\(topk, samples - 1\)\] = \[0, 4\]"):
        planner_spec("wall", "cem", samples=12, topk=4, keep_elites=5)


def test_cem_return_best_returns_the_lowest_rated_sample(wall_model: WorldModel, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy_costs(monkeypatch)
    spec = planner_spec("wall", "cem", samples=12, topk=3, opt_steps=4, horizon=2, return_best=True)
    (rec,) = run_episodes(wall_model, "wall", make_eval_episodes("wall", 1, 0), spec)
    actions = torch.cat([a for a, _ in seen[:5]])
    costs = torch.cat([c for _, c in seen[:5]])  # 4 populations + the final mean
    assert rec.final_objective == pytest.approx(float(costs.min()), rel=1e-6)
    np.testing.assert_allclose(rec.planned_actions[0], actions[costs.argmin()].numpy(), rtol=1e-6)
    trace = rec.objective_traces[0]
    assert np.all(np.diff(trace) <= 1e-7) and trace[-1] == pytest.approx(rec.final_objective)  # best so far never rises
    monkeypatch.undo()
    (mean,) = run_episodes(wall_model, "wall", make_eval_episodes("wall", 1, 0),
                           planner_spec("wall", "cem", samples=12, topk=3, opt_steps=4, horizon=2))
    assert mean.final_objective >= rec.final_objective
