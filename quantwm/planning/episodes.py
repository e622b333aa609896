"""Plan and execute evaluation episodes: open-loop planning, MPC and baselines share one loop.

An episode is fully determined by its ``EvalEpisode`` (start and goal state, seed): the planner's
random numbers come from a generator seeded by (episode seed, plan index), so the same episode
planned by a full-precision and by a quantized model sees the same sampler noise.

Execution: plan ``horizon`` planner steps from the last real frame only (planning context is one
frame, as DINO-WM's MPC), execute ``replan_every`` of them (each is ``frameskip`` env steps), and
repeat until ``max_steps`` planner steps are spent. With ``sticky_success`` (MPC) an episode stops
as soon as an executed planner step reached the goal; otherwise success is judged on the final
state only (open-loop evaluation). The planner never sees env state or success while optimising.

Search or model? Where an episode carries reference actions (PushT: the demonstration that
defines its goal; Wall: a path through the door), its record holds the model's objective of them from the start
(``reference_objective``). A failed episode whose first plan the model rated *below* the reference
is a model failure (it prefers a plan that fails over one that reaches the goal); one rated above
is a search failure (the optimiser did not find what the model would have preferred).

What the plans really score: after each plan is chosen (never while optimising, and never fed
back), it is replayed in a separate copy of the env from the state it was planned at, and the
frames it really produces are encoded and rated by the same objective (``plan_true_objectives``;
the reference's likewise, ``reference_true_objective``). The encoder that rates them is the
``judge``'s (default: the planning model's own); a quantized model is judged by the full-precision
encoder, so a quantized encoder never grades itself and both sides share one yardstick. The gap between a plan's true and
imagined objective is how far the model was wrong about the plan it chose - the error the search
exploited; a failure whose first plan really scores no worse than the reference is the
objective's fault, not the model's (a perfect model would have chosen the same plan).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch

from quantwm.envs import QuantWMEnv, make_env
from quantwm.envs.dataset import replay_episode
from quantwm.envs.episodes import EvalEpisode
from quantwm.models import Latents, WorldModel
from quantwm.planning.objective import Objective
from quantwm.planning.optimizers import OptimizerConfig, optimize


@dataclass(frozen=True)
class PlannerSpec:
    """How episodes are planned and executed (a budget of ``max_steps`` planner steps)."""

    optimizer: OptimizerConfig
    horizon: int = 5
    replan_every: int = 5
    max_steps: int = 5
    sticky_success: bool = False
    shrink_horizon: bool = False  # plan min(horizon, remaining budget) steps: no overshoot at the end
    warm_start: bool = False  # start each replan from the unexecuted rest of the previous plan (zeros after it)
    replan_opt_steps: int | None = None  # optimiser steps of a warm-started replan (None: the optimizer's own)
    objective: Objective = Objective()

    def __post_init__(self) -> None:
        for name in ("horizon", "replan_every", "max_steps", "replan_opt_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.replan_opt_steps is not None and not hasattr(self.optimizer, "opt_steps"):
            raise ValueError(f"replan_opt_steps needs an iterative optimiser (CEM or GD), not {type(self.optimizer).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """Every setting, the optimiser's kind included: what a cached result planned with."""
        return {"optimizer_kind": type(self.optimizer).__name__, **asdict(self)}


@dataclass
class EpisodeRecord:
    """What happened in one episode; ``frames`` (T, H, W, 3) uint8 only when recorded."""

    index: int
    seed: int
    success: bool
    state_distance: float
    final_objective: float  # objective of the last plan, as the planner rated it
    objective_traces: list[list[float]]  # per plan: objective after every optimiser step
    plan_objectives: list[float]  # per plan: final objective of the chosen plan
    planned_actions: list[np.ndarray]  # per plan: (H, A) planner actions
    plan_starts: list[int]  # per plan: the env step it was made at (its start state is states[plan_starts[k]])
    env_actions: np.ndarray  # (n, action_dim) executed
    states: np.ndarray  # (n + 1, state_dim)
    wall_time_s: float
    reference_objective: float = math.nan  # model objective of the episode's reference actions (NaN: none)
    plan_true_objectives: list[float] = field(default_factory=list)  # per plan: objective of the frames it really produces
    reference_true_objective: float = math.nan  # objective of the frames the reference actions really produce
    frames: np.ndarray | None = field(default=None, repr=False)
    # per plan, when recorded: the chosen plan's imagined latents, visual (H_k + 1, P, E) and proprio (H_k + 1, Ep)
    imagined_visual: list[np.ndarray] | None = field(default=None, repr=False)
    imagined_proprio: list[np.ndarray] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "seed": self.seed, "success": self.success, "state_distance": self.state_distance,
            "final_objective": self.final_objective, "objective_traces": self.objective_traces,
            "plan_objectives": self.plan_objectives, "planned_actions": [a.tolist() for a in self.planned_actions],
            "plan_starts": self.plan_starts,
            "env_actions": self.env_actions.tolist(), "states": self.states.tolist(), "wall_time_s": self.wall_time_s,
            "reference_objective": None if math.isnan(self.reference_objective) else self.reference_objective,
            "plan_true_objectives": self.plan_true_objectives,
            "reference_true_objective": None if math.isnan(self.reference_true_objective) else self.reference_true_objective,
        }


def _plan_generator(episode_seed: int, plan_index: int) -> torch.Generator:
    return torch.Generator().manual_seed((episode_seed * 1_000_003 + plan_index) & 0x7FFF_FFFF_FFFF)


def encode_observations(model: WorldModel, obs: list[dict[str, np.ndarray]]) -> Latents:
    """Latents (N, 1, ...) of N env observations."""
    frames = torch.from_numpy(np.stack([o["visual"] for o in obs]))[:, None]
    proprio = torch.from_numpy(np.stack([o["proprio"] for o in obs]))[:, None]
    with torch.inference_mode():
        return model.encode_obs(frames, proprio.to(model.action_mean.device))


def true_objectives(model: WorldModel, env: QuantWMEnv, starts: list[np.ndarray], env_actions: np.ndarray, goal: Latents,
                    objective: Objective) -> list[float]:
    """Replay each plan's env actions (N, H, frameskip, action_dim) in ``env`` from its start state
    (N states) and rate the frames it really shows after every planner step, encoded, with
    ``objective`` against ``goal`` (Latents with leading dim N) -> N floats."""
    steps = model.cfg.frameskip
    frames, proprio = [], []
    for start, actions in zip(starts, env_actions):
        rec = replay_episode(env, start, actions.reshape(-1, actions.shape[-1]))
        frames.append(rec["frames"][::steps])
        proprio.append(rec["proprio"][::steps])
    with torch.inference_mode():
        lat = model.encode_obs(torch.from_numpy(np.stack(frames)), torch.from_numpy(np.stack(proprio)).to(model.action_mean.device))
        return objective.latent_cost(lat, goal).tolist()


def reference_objectives(model: WorldModel, env: QuantWMEnv, context: Latents, goal: Latents, episodes: list[EvalEpisode],
                         horizon: int, objective: Objective, judge: WorldModel | None = None,
                         judge_goal: Latents | None = None) -> tuple[list[float], list[float]]:
    """Each episode's ``reference_actions`` from its start (``context``, ``goal``: Latents with
    leading dim E = len(episodes)) -> (the model's objective of them, their true objective, replayed
    in ``env`` and rated by ``judge`` against ``judge_goal``, default the model and ``goal``), E floats each. A reference shorter than ``horizon`` planner steps is padded with
    zero env actions (waiting at the goal: exact for Wall, where a zero action does not move the
    dot); NaN for an episode without reference actions or with a longer one."""
    steps = horizon * model.cfg.frameskip
    rows = [i for i, ep in enumerate(episodes) if ep.reference_actions is not None and len(ep.reference_actions) <= steps]
    imagined, true = [math.nan] * len(episodes), [math.nan] * len(episodes)
    if rows:
        padded = np.stack([np.pad(episodes[i].reference_actions, ((0, steps - len(episodes[i].reference_actions)), (0, 0)))
                           for i in rows]).reshape(len(rows), horizon, model.cfg.frameskip, model.cfg.action_dim)
        actions = model.normalize_actions(torch.tensor(padded, dtype=torch.float32))
        with torch.inference_mode():
            ctx, tgt = _rows(context, rows), _rows(goal, rows)
            cost = objective.cost(model, model.rollout(ctx, actions.to(ctx.visual.device)), tgt)
        judge, judge_goal = (model, goal) if judge is None else (judge, judge_goal)
        rated = true_objectives(judge, env, [episodes[i].start_state for i in rows], padded, _rows(judge_goal, rows), objective)
        for i, c, t in zip(rows, cost.tolist(), rated):
            imagined[i], true[i] = c, t
    return imagined, true


def _rows(lat: Latents, rows: list[int]) -> Latents:
    idx = torch.tensor(rows, device=lat.visual.device)
    return Latents(lat.visual[idx], lat.proprio[idx])


def run_episodes(model: WorldModel, env_name: str, episodes: list[EvalEpisode], spec: PlannerSpec,
                 batch_size: int = 1, record_frames: bool = False,
                 progress: Callable[[EpisodeRecord], None] | None = None, *, judge: WorldModel | None = None,
                 record_latents: bool = False) -> list[EpisodeRecord]:
    """Plan and execute ``episodes`` in batches of ``batch_size``; one record per episode, in order.

    ``judge`` (default ``model``) encodes the real frames that rate plans' true objectives;
    ``record_latents`` keeps each chosen plan's imagined latents (one extra rollout per plan)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    records: list[EpisodeRecord] = []
    for i in range(0, len(episodes), batch_size):
        for rec in _run_batch(model, env_name, episodes[i : i + batch_size], spec, record_frames, judge or model,
                              record_latents):
            records.append(rec)
            if progress is not None:
                progress(rec)
    return records


def _run_batch(model: WorldModel, env_name: str, episodes: list[EvalEpisode], spec: PlannerSpec,
               record_frames: bool, judge: WorldModel, record_latents: bool) -> list[EpisodeRecord]:
    t_start = time.time()
    size = model.cfg.image_size
    envs = [make_env(env_name, render_size=size) for _ in episodes]
    obs = [env.reset(options={"state": ep.start_state})[0] for env, ep in zip(envs, episodes)]
    probe_env = make_env(env_name, render_size=size)  # shows the goals, and replays plans for their true objective
    goal_obs = [probe_env.reset(options={"state": ep.goal_state})[0] for ep in episodes]
    goal = encode_observations(model, goal_obs)
    judge_goal = goal if judge is model else encode_observations(judge, goal_obs)
    states = [[env.state] for env in envs]
    actions: list[list[np.ndarray]] = [[] for _ in episodes]
    frames = [[o["visual"]] for o in obs]
    plans: list[list[Any]] = [[] for _ in episodes]
    success = [False] * len(episodes)
    done_at = [0.0] * len(episodes)
    steps_done, plan_index = 0, 0
    active = list(range(len(episodes)))
    rest = torch.zeros(len(episodes), 0, model.cfg.planner_action_dim)  # unexecuted planned actions, for warm starts
    reference, reference_true = [math.nan] * len(episodes), [math.nan] * len(episodes)
    imagined: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in episodes]
    while active and steps_done < spec.max_steps:
        horizon = min(spec.horizon, spec.max_steps - steps_done) if spec.shrink_horizon else spec.horizon
        gens = [_plan_generator(episodes[i].seed, plan_index) for i in active]
        idx = torch.tensor(active)
        init, optimizer = None, spec.optimizer
        if spec.warm_start and plan_index:
            init = torch.cat([rest[idx], torch.zeros(len(active), max(0, horizon - rest.shape[1]), rest.shape[2])], 1)[:, :horizon]
            if spec.replan_opt_steps is not None:
                optimizer = replace(optimizer, opt_steps=spec.replan_opt_steps)
        context = encode_observations(model, [obs[i] for i in active])
        if plan_index == 0:
            reference, reference_true = reference_objectives(model, probe_env, context, goal, episodes, horizon, spec.objective,
                                                             judge, judge_goal)
        goal_active = _rows(goal, active)
        plan = optimize(model, context, goal_active, horizon, spec.objective, gens, optimizer, init)
        env_actions = model.denormalize_actions(plan.actions).cpu().numpy().astype(np.float64)
        plan_true = true_objectives(judge, probe_env, [envs[i].state for i in active], env_actions, _rows(judge_goal, active),
                                    spec.objective)
        if record_latents:
            with torch.inference_mode():
                lat = model.split(model.rollout(context, plan.actions))
            for row, i in enumerate(active):
                imagined[i].append((lat.visual[row].cpu().numpy(), lat.proprio[row].cpu().numpy()))
        n_exec = min(spec.replan_every, horizon, spec.max_steps - steps_done)
        if spec.warm_start:
            rest = torch.zeros(len(episodes), horizon - n_exec, rest.shape[2])
            rest[idx] = plan.actions[:, n_exec:].cpu()
        for row, i in enumerate(active):
            plans[i].append((plan.objective_trace[row].tolist(), float(plan.final_objective[row]), plan.actions[row].cpu().numpy(),
                             len(states[i]) - 1, plan_true[row]))
            for k in range(n_exec):
                for a in env_actions[row, k]:
                    obs[i] = envs[i].step(a)[0]
                    states[i].append(envs[i].state)
                    actions[i].append(a)
                    if record_frames:
                        frames[i].append(obs[i]["visual"])
                if spec.sticky_success and envs[i].is_success(episodes[i].goal_state, envs[i].state):
                    success[i] = True
                    break
        steps_done += n_exec
        plan_index += 1
        for i in active:
            done_at[i] = time.time()
        active = [i for i in active if not success[i]]
    records = []
    for i, (env, ep) in enumerate(zip(envs, episodes)):
        final = env.state
        records.append(EpisodeRecord(
            index=ep.index, seed=ep.seed,
            success=success[i] or bool(env.is_success(ep.goal_state, final)),
            state_distance=float(env.state_distance(ep.goal_state, final)),
            final_objective=plans[i][-1][1] if plans[i] else math.nan,
            objective_traces=[p[0] for p in plans[i]], plan_objectives=[p[1] for p in plans[i]],
            planned_actions=[p[2] for p in plans[i]], plan_starts=[p[3] for p in plans[i]],
            env_actions=np.asarray(actions[i]).reshape(-1, model.cfg.action_dim), states=np.asarray(states[i]),
            wall_time_s=round(done_at[i] - t_start, 3), reference_objective=reference[i],
            plan_true_objectives=[p[4] for p in plans[i]], reference_true_objective=reference_true[i],
            frames=np.stack(frames[i]) if record_frames else None,
            imagined_visual=[v for v, _ in imagined[i]] if record_latents else None,
            imagined_proprio=[p for _, p in imagined[i]] if record_latents else None,
        ))
    return records
