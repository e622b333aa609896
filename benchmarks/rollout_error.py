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
sustained rightward pushing into the middle wall at several action sizes from 60 random left-room
states per door (door at 45 with the dot below it, door at 15 with the dot above; the real env
stops every push), and the share the model imagines past the wall after each planner step
(imagined position read as the nearest of a 1-px grid of encoded real states). Slow pushes held
for several steps are what CEM's best samples exploit when the model lets them through.

Usage: python benchmarks/rollout_error.py --env pusht|wall [--checkpoint PATH] [--windows 200] [--steps 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantwm.envs import make_env  # noqa: E402
from quantwm.envs.dataset import dataset_dir, load_split  # noqa: E402
from quantwm.experiment import load_model  # noqa: E402
from quantwm.models import Latents  # noqa: E402
from quantwm.planning.episodes import encode_observations  # noqa: E402
from quantwm.runtime import configure_runtime  # noqa: E402


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


def wall_pushes(model, sizes: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0), steps: int = 6) -> dict[float, list[float]]:
    """Per env action size: share of sustained rightward pushes (``steps`` planner steps of env action
    (size, 0)) into the middle wall imagined past it after each planner step, over two door heights."""
    from quantwm.envs.wall import WALL_X1, in_free_space

    env = make_env("wall", render_size=model.cfg.image_size)
    rng = np.random.default_rng(0)
    past: dict[float, list[np.ndarray]] = {size: [] for size in sizes}
    with torch.inference_mode():
        for door, y_range in ((45.0, (8, 30)), (15.0, (30, 56))):
            grid = np.array([[x, y, door] for x in np.arange(5.0, 60.0) for y in np.arange(5.0, 60.0)
                             if in_free_space(np.array([x, y]), door)])
            starts = np.array([[rng.uniform(8, 28.9), rng.uniform(*y_range), door] for _ in range(60)])
            grid_lat, context = encode_states(model, env, grid), encode_states(model, env, starts)
            for size in sizes:
                env_actions = torch.zeros(len(starts), steps, model.cfg.frameskip, 2)
                env_actions[..., 0] = size
                lat = model.split(model.rollout(context, model.normalize_actions(env_actions)))
                dist = ((grid_lat.visual[None, :, 0, None] - lat.visual[:, None, 1:]).pow(2).mean((3, 4))
                        + (grid_lat.proprio[None, :, 0, None] - lat.proprio[:, None, 1:]).pow(2).mean(3))  # (S, G, steps)
                past[size].append(grid[dist.argmin(1).numpy(), 0] > WALL_X1)  # (S, steps)
    return {size: np.concatenate(v).mean(0).tolist() for size, v in past.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="pusht", choices=["pusht", "wall"])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", help="a quantwm checkpoint's .json (default: the shipped model)")
    args = parser.parse_args()
    configure_runtime(args.threads)
    model = load_model(args.env, args.checkpoint)
    skip = model.cfg.frameskip
    span = args.steps * skip
    data = load_split(dataset_dir(args.env), "val", frames=True)
    rng = np.random.default_rng(args.seed)
    episodes = [data.episode(e) for e in range(data.n_episodes)]
    episodes = [r for r in episodes if r.stop - r.start - 1 >= span]
    starts = np.array([r.start + int(rng.integers(r.stop - r.start - span)) for r in
                       (episodes[int(i)] for i in rng.integers(len(episodes), size=args.windows))])
    frame_rows = starts[:, None] + skip * np.arange(args.steps + 1)  # (W, steps + 1)
    actions = torch.from_numpy(np.stack([data.actions[s : s + span] for s in starts])).float()
    with torch.inference_mode():
        real = model.encode_obs(torch.from_numpy(data.frames[frame_rows]), torch.from_numpy(data.proprio[frame_rows]).float())
        planner_actions = model.normalize_actions(actions.view(args.windows, args.steps, skip, model.cfg.action_dim))
        imagined = model.split(model.rollout(Latents(real.visual[:, :1], real.proprio[:, :1]), planner_actions))
    print(f"{args.env}: {args.windows} validation windows, {args.steps} planner steps of {skip} env steps, from one frame")
    print(f"{'step':>4} {'visual err':>11} {'copy-frame':>11} {'ratio':>6} {'proprio err':>12}   (medians over windows)")
    for k in range(1, args.steps + 1):
        vis = (imagined.visual[:, k] - real.visual[:, k]).pow(2).mean((1, 2)).median()
        copy = (real.visual[:, 0] - real.visual[:, k]).pow(2).mean((1, 2)).median()
        prop = (imagined.proprio[:, k] - real.proprio[:, k]).pow(2).mean(1).median()
        print(f"{k:>4} {vis:11.4f} {copy:11.4f} {vis / copy:6.2f} {prop:12.5f}")
    final = ((imagined.visual[:, -1] - real.visual[:, -1]).pow(2).mean((1, 2))
             + (imagined.proprio[:, -1] - real.proprio[:, -1]).pow(2).mean(1)).median()
    print(f"planning cost of the model's error after {args.steps} steps: {final:.4f}; cost of one success tolerance (encoder):")
    for name, cost in resolution(model, args.env, data.states[frame_rows[:, -1]]).items():
        print(f"  {name:<20} {cost:.4f}")
    if args.env == "wall":
        print("sustained pushes into the middle wall (all stopped in the env), share imagined past it after 1..6 planner steps:")
        for size, shares in wall_pushes(model).items():
            print(f"  env action size {size:g}: " + " ".join(f"{share:4.0%}" for share in shares))


if __name__ == "__main__":
    main()
