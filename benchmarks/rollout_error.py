"""How far a world model's imagination drifts from reality over a plan, on validation windows.

From one real context frame, the model rolls out the recorded actions for ``--steps`` planner
steps (frameskip env steps each); at every step the imagined latents are compared with the
encoding of the real frame reached: visual MSE, proprio-embedding MSE, and the visual MSE of
"nothing moves" (the context frame copied forward) as the baseline a useful model must beat.
A model whose visual error stays near the copy baseline does not predict how the scene changes
(PushT: how the agent moves the T) and its planner cannot tell a plan that works from one that
does not. Also prints the encoder's resolution: the planning cost (visual + proprio MSE) between
real states and the same states perturbed by a success tolerance; a planner can only separate
success from failure where the model's error is below that. On Wall, also: 6 planner steps of
rightward pushing into the middle wall, steady at several action sizes or jittering (white noise
around a drift, as CEM's samples), from 60 random left-room states per door (door at 45 with the
dot below it, door at 15 with the dot above), and the share the model imagines past the wall after
each planner step among the pushes the real env kept in the left room (imagined position read as
the nearest of a 1-px grid of encoded real states). Pushes held for several steps, slow or
jittering, are what CEM's best samples exploit when the model lets them through. And door paths:
straight-segment paths through the door to a right-room goal (``door_path_actions``) done in 3, 5
or 7 planner steps, from 24 left-room states per door (door at 20 and at 40) either free or
pressed against the middle wall, and the share whose imagined end lies within 4.5 px of the real
end (the planner must be able to imagine the way that works, fast ones included).

With ``--replans EVAL_JSON`` (Wall) it instead reads the failed episodes of a ``quantwm eval --json``
record: at every 3rd replan, where the model imagined the plan ends and where it really ends.

Usage: python benchmarks/rollout_error.py --env pusht|wall [--checkpoint PATH] [--split val|train|calib] [--windows 200] [--steps 5] [--threads 2]
       python benchmarks/rollout_error.py --env wall --replans cache/eval/wall_mpc.json [--eval-seed 99]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantwm.envs import make_env  # noqa: E402
from quantwm.envs.dataset import SPLITS, dataset_dir, load_split, replay_episode  # noqa: E402
from quantwm.experiment import load_model  # noqa: E402
from quantwm.models import Latents  # noqa: E402
from quantwm.planning.episodes import encode_observations  # noqa: E402
from quantwm.runtime import configure_runtime  # noqa: E402
from quantwm.training.quality import latent_quality, validation_windows  # noqa: E402


# state perturbations of one success tolerance (PushT: 20 units, pi / 9; Wall: 4.5 px)
PERTURBATIONS: dict[str, dict[str, list[float]]] = {
    "pusht": {"agent x +20": [20, 0, 0, 0, 0, 0, 0], "block x +20": [0, 0, 20, 0, 0, 0, 0],
              "block angle +20 deg": [0, 0, 0, 0, float(np.radians(20)), 0, 0]},
    "wall": {"dot x +4.5": [4.5, 0, 0], "dot y +4.5": [0, 4.5, 0]},
}


def encode_states(model, env, states) -> Latents:
    """Latents (N, 1, ...) of the frames and proprio ``env`` shows in each of ``states`` (N, state_dim)."""
    return encode_observations(model, [env.reset(options={"state": state})[0] for state in states])


def resolution(model, env_name: str, states: np.ndarray) -> dict[str, float]:
    """Median planning cost between each state (N, state_dim) and its perturbations that are valid states."""
    env = make_env(env_name, render_size=model.cfg.image_size)
    out = {}
    for name, delta in PERTURBATIONS[env_name].items():
        pairs = []
        for state in states:
            try:
                pairs.append((env.reset(options={"state": state})[0], env.reset(options={"state": state + np.array(delta)})[0]))
            except ValueError:  # the perturbed state lies inside a wall
                continue
        with torch.inference_mode():
            a, b = encode_observations(model, [p[0] for p in pairs]), encode_observations(model, [p[1] for p in pairs])
            cost = (a.visual - b.visual).pow(2).mean((1, 2, 3)) + (a.proprio - b.proprio).pow(2).mean((1, 2))
        out[name] = float(cost.median())
    return out


def wall_grid(model, env, door: float) -> tuple[np.ndarray, Latents]:
    """Every free 1-px grid position of the Wall canvas for a door: states (G, 3) and their latents."""
    from quantwm.envs.wall import in_free_space

    grid = np.array([[x, y, door] for x in np.arange(5.0, 60.0) for y in np.arange(5.0, 60.0)
                     if in_free_space(np.array([x, y]), door)])
    return grid, encode_states(model, env, grid)


def nearest_states(grid: np.ndarray, grid_lat: Latents, lat: Latents) -> np.ndarray:
    """The grid state whose latents are nearest (planning cost) to each of ``lat`` (S, T, ...) -> (S, T, 3)."""
    dist = ((grid_lat.visual[None, :, 0, None] - lat.visual[:, None]).pow(2).mean((3, 4))
            + (grid_lat.proprio[None, :, 0, None] - lat.proprio[:, None]).pow(2).mean(3))  # (S, G, T)
    return grid[dist.argmin(1).numpy()]


PUSHES = tuple((size, 0.0) for size in (0.5, 1.0, 2.0, 3.0, 4.0, 6.0)) + ((0.5, 2.0), (1.0, 2.0), (2.0, 2.0), (1.0, 3.0))


def wall_pushes(model, pushes: tuple[tuple[float, float], ...] = PUSHES, steps: int = 6) -> dict[tuple[float, float], list[float]]:
    """Per push (drift, jitter): env actions (drift, 0) plus N(0, jitter^2) noise per env step and
    axis (0: a steady push; CEM samples every env step's action independently, so its plans
    jitter), held for ``steps`` planner steps from left-room states below / above the door. Returns
    the share of pushes the model imagines past the middle wall after each planner step, among
    those the real env kept in the left room up to that step."""
    from quantwm.envs.wall import WALL_X1

    env = make_env("wall", render_size=model.cfg.image_size)
    rng = np.random.default_rng(0)
    fooled: dict[tuple[float, float], list[np.ndarray]] = {push: [] for push in pushes}
    stayed: dict[tuple[float, float], list[np.ndarray]] = {push: [] for push in pushes}
    with torch.inference_mode():
        for door, y_range in ((45.0, (8, 30)), (15.0, (30, 56))):
            grid, grid_lat = wall_grid(model, env, door)
            starts = np.array([[rng.uniform(8, 28.9), rng.uniform(*y_range), door] for _ in range(60)])
            context = encode_states(model, env, starts)
            for drift, jitter in pushes:
                env_actions = torch.zeros(len(starts), steps, model.cfg.frameskip, 2)
                env_actions[..., 0] = drift
                env_actions += jitter * torch.from_numpy(rng.normal(size=env_actions.shape)).float()
                real_x = np.empty((len(starts), steps))
                for i, start in enumerate(starts):
                    env.reset(options={"state": start})
                    for k, a in enumerate(env_actions[i].reshape(-1, 2).numpy()):
                        env.step(a)
                        if (k + 1) % model.cfg.frameskip == 0:
                            real_x[i, k // model.cfg.frameskip] = env.state[0]
                lat = model.split(model.rollout(context, model.normalize_actions(env_actions)))
                imagined = nearest_states(grid, grid_lat, Latents(lat.visual[:, 1:], lat.proprio[:, 1:]))  # (S, steps, 3)
                kept = np.minimum.accumulate(real_x < WALL_X1, axis=1)  # still in the left room at every step so far
                fooled[drift, jitter].append((imagined[..., 0] > WALL_X1) & kept)  # (S, steps)
                stayed[drift, jitter].append(kept)
    return {push: (np.concatenate(fooled[push]).sum(0) / np.maximum(np.concatenate(stayed[push]).sum(0), 1)).tolist()
            for push in pushes}


def wall_replans(model, eval_json: Path, seed: int, every: int = 3) -> None:
    """For each failed episode of a ``quantwm eval --json`` Wall record: at every ``every``-th replan,
    the state the plan started from, where the model imagined the whole plan ends (nearest grid
    state) and where it really ends (the plan replayed in the env from that state), and the plan's
    objective. A plan imagined in the goal's room that really ends in the start room is the model's
    blind spot, whatever the first plan's rating was."""
    from quantwm.envs.episodes import make_eval_episodes

    env = make_env("wall", render_size=model.cfg.image_size)
    result = json.loads(eval_json.read_text())["results"][0]
    records = [r for r in result["episodes"] if not r["success"]]
    episodes = make_eval_episodes("wall", max(r["index"] for r in result["episodes"]) + 1, seed)
    if any(episodes[r["index"]].seed != r["seed"] for r in records):
        raise SystemExit(f"{eval_json} was not evaluated with --seed {seed}: pass the seed of its `quantwm eval` run")
    print(f"{len(records)} failed episodes in {eval_json}: replan k from (x, y): imagined end -> real end, objective")
    fooled = total = 0
    for rec in records:
        ep = episodes[rec["index"]]
        grid, grid_lat = wall_grid(model, env, float(ep.start_state[2]))
        cells = []
        for k in range(0, len(rec["planned_actions"]), every):
            state = np.array(rec["states"][rec["plan_starts"][k]])
            plan = torch.tensor(rec["planned_actions"][k], dtype=torch.float32)[None]
            with torch.inference_mode():
                lat = model.split(model.rollout(encode_states(model, env, [state]), plan))
            end = nearest_states(grid, grid_lat, Latents(lat.visual[:, -1:], lat.proprio[:, -1:]))[0, 0]
            env_actions = model.denormalize_actions(plan)[0].reshape(-1, model.cfg.action_dim).numpy()
            real = replay_episode(env, state, env_actions)["states"][-1]
            crossed_in_mind = np.sign(end[0] - 32) == np.sign(ep.goal_state[0] - 32) != np.sign(real[0] - 32)
            fooled, total = fooled + crossed_in_mind, total + 1
            cells.append(f"k{k} ({state[0]:.0f},{state[1]:.0f}): ({end[0]:.0f},{end[1]:.0f}) -> ({real[0]:.0f},{real[1]:.0f}) "
                         f"{rec['plan_objectives'][k]:.3f}{' *' if crossed_in_mind else ''}")
        print(f"episode {rec['index']} door {ep.start_state[2]:.1f} goal ({ep.goal_state[0]:.0f},{ep.goal_state[1]:.0f})\n  "
              + "\n  ".join(cells))
    print(f"* plans imagined in the goal's room that really end in the other room: {fooled} of {total} replans read")


def wall_door_paths(model, speeds: tuple[int, ...] = (3, 5, 7), n: int = 24, horizon: int = 8) -> dict[tuple[float, str, int], float]:
    """Per (door, start kind, planner steps R): the share of door paths done in R planner steps
    (zero actions after, up to ``horizon``) whose imagined end lies within 4.5 px of the real end."""
    from quantwm.envs.wall import WALL_X0, door_path_actions

    env = make_env("wall", render_size=model.cfg.image_size)
    rng = np.random.default_rng(1)
    skip = model.cfg.frameskip
    out = {}
    for door in (20.0, 40.0):
        grid, grid_lat = wall_grid(model, env, door)
        for kind in ("free", "pressed"):
            for steps in speeds:
                starts, goals = [], []
                while len(starts) < n:
                    y = rng.uniform(5.0, 59.0)
                    if abs(y - door) >= 6.0:  # not in front of the door
                        x = WALL_X0 - 0.01 if kind == "pressed" else rng.uniform(8.0, 25.0)
                        starts.append(np.array([x, y, door]))
                        goals.append(np.array([rng.uniform(40.0, 56.0), rng.uniform(8.0, 56.0), door]))
                env_actions = np.stack([np.pad(door_path_actions(s, g, steps * skip), ((0, (horizon - steps) * skip), (0, 0)))
                                        for s, g in zip(starts, goals)])
                real = np.array([replay_episode(env, s, a)["states"][-1] for s, a in zip(starts, env_actions)])
                actions = model.normalize_actions(torch.from_numpy(env_actions).float().view(n, horizon, skip, model.cfg.action_dim))
                with torch.inference_mode():
                    lat = model.split(model.rollout(encode_states(model, env, starts), actions))
                end = nearest_states(grid, grid_lat, Latents(lat.visual[:, -1:], lat.proprio[:, -1:]))[:, 0]
                out[door, kind, steps] = float(np.mean(np.linalg.norm(end[:, :2] - real[:, :2], axis=1) < 4.5))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="pusht", choices=["pusht", "wall"])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", help="a quantwm checkpoint's .json (default: the shipped model)")
    parser.add_argument("--split", default="val", choices=list(SPLITS),
                        help="windows from this split of the default dataset; a model's error on the windows it trained on "
                             "against val's measures how much it overfits")
    parser.add_argument("--replans", type=Path, metavar="EVAL_JSON",
                        help="Wall: instead, read every 3rd replan of the failed episodes of a `quantwm eval --json` record")
    parser.add_argument("--eval-seed", type=int, default=99, help="the --seed of that `quantwm eval` run")
    args = parser.parse_args()
    configure_runtime(args.threads)
    model = load_model(args.env, args.checkpoint)
    if args.replans:
        if args.env != "wall":
            raise SystemExit("--replans reads Wall episodes: pass --env wall")
        wall_replans(model, args.replans, args.eval_seed)
        return
    data = load_split(dataset_dir(args.env), args.split, frames=True)
    q = latent_quality(model, data, args.windows, args.steps, args.seed)
    print(f"{args.env}: {args.windows} {args.split} windows, {args.steps} planner steps of {model.cfg.frameskip} env steps, from one frame")
    print(f"{'step':>4} {'visual err':>11} {'copy-frame':>11} {'ratio':>6} {'proprio err':>12} {'PSNR dB':>8}   (medians over windows)")
    for k in range(args.steps):
        psnr = f"{q.pred_psnr[k]:8.2f}" if q.pred_psnr else f"{'-':>8}"
        print(f"{k + 1:>4} {q.visual_mse[k]:11.4f} {q.copy_mse[k]:11.4f} {q.visual_mse[k] / q.copy_mse[k]:6.2f} {q.proprio_mse[k]:12.5f} {psnr}")
    if q.recon_psnr is not None:
        print(f"decoder on the encoder's latents of the real frames: PSNR {q.recon_psnr:.2f} dB")
    ends = validation_windows(data, args.steps * model.cfg.frameskip, args.windows, args.seed) + args.steps * model.cfg.frameskip
    print(f"planning cost of the model's error after {args.steps} steps: {q.final_cost:.4f}; cost of one success tolerance (encoder):")
    for name, cost in resolution(model, args.env, data.states[ends]).items():
        print(f"  {name:<20} {cost:.4f}")
    if args.env == "wall":
        print("pushes into the middle wall held for 6 planner steps: share imagined past it after 1..6 planner steps "
              "(of those the env kept in the left room)")
        for (drift, jitter), shares in wall_pushes(model).items():
            print(f"  env action {drift:g}{f' + jitter {jitter:g}' if jitter else ''}: " + " ".join(f"{share:4.0%}" for share in shares))
        print("door paths to a right-room goal done in R planner steps: share imagined ending within 4.5 px of the real end")
        for (door, kind, steps), share in wall_door_paths(model).items():
            print(f"  door {door:g}, start {kind:<7} R{steps}: {share:4.0%}")


if __name__ == "__main__":
    main()
