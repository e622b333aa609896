"""Search or model at Wall's longest detours: plan the same episodes once straight to the goal and
once through the door path's waypoints (``quantwm.envs.wall.door_path``: before the door, past it,
the goal), each waypoint a goal of its own for the quick MPC with its full budget.

    python benchmarks/wall_subgoals.py --seed 5 --episodes 100 --only 4 45 55 [--checkpoint assets/wall.json]

The waypoints use the env's geometry, which no planner of quantwm sees: this is a diagnostic, not a
planner. If the model reaches the goal leg by leg where it fails straight, its imagination holds
along the way round and the failure lies in a search that only rewards getting closer to the goal;
if a leg fails too, planning fails even on that short hop. Prints one markdown row per episode.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantwm.envs.episodes import EvalEpisode, make_eval_episodes  # noqa: E402
from quantwm.envs.wall import detour_ratio, door_path  # noqa: E402
from quantwm.experiment import load_model  # noqa: E402
from quantwm.models import WorldModel  # noqa: E402
from quantwm.planning import EpisodeRecord, PlannerSpec, planner_spec, run_episodes  # noqa: E402
from quantwm.runtime import configure_runtime  # noqa: E402


def legs(model: WorldModel, episode: EvalEpisode, spec: PlannerSpec) -> tuple[list[bool], list[int], EpisodeRecord]:
    """Plan ``episode`` through its door-path waypoints, one MPC run per leg from where the last
    ended. Returns per leg whether it reached its waypoint and the planner steps it spent, and the
    last leg's record: its goal is the episode's, so its success and distance are the episode's."""
    door = float(episode.start_state[2])
    state, reached, steps = episode.start_state, [], []
    for k, xy in enumerate(door_path(episode.start_state, episode.goal_state)[1:]):
        # each leg draws its own sampler noise (seeds a large prime apart), reproducibly
        leg = EvalEpisode(episode.index, episode.seed + 1000003 * k, state, np.array([xy[0], xy[1], door]))
        rec = run_episodes(model, "wall", [leg], spec)[0]
        reached.append(rec.success)
        steps.append(len(rec.env_actions) // model.cfg.frameskip)
        state = rec.states[-1]
    return reached, steps, rec


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", default="assets/wall.json")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--episodes", type=int, default=100, help="how many episodes the seed draws (indices below refer to them)")
    p.add_argument("--only", type=int, nargs="+", required=True, help="episode indices to plan")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    configure_runtime(args.threads)
    episodes = make_eval_episodes("wall", args.episodes, args.seed)
    bad = [i for i in args.only if not 0 <= i < len(episodes)]
    if bad:
        raise SystemExit(f"--only {bad}: indices must lie in 0..{len(episodes) - 1}")
    model = load_model("wall", args.checkpoint)
    spec = planner_spec("wall", "mpc")
    print(f"wall, quick MPC ({spec.max_steps} planner steps per goal), {args.checkpoint}, seed {args.seed}")
    print("| episode | door path / straight | straight: success, distance | legs reached | planner steps per leg | waypoints: success, distance |")
    print("|---|---|---|---|---|---|")
    for i in args.only:
        ep = episodes[i]
        direct = run_episodes(model, "wall", [ep], spec)[0]
        reached, steps, last = legs(model, ep, spec)
        print(f"| {i} | {detour_ratio(ep.start_state, ep.goal_state):.2f} | {direct.success}, {direct.state_distance:.1f} "
              f"| {'/'.join('y' if r else 'n' for r in reached)} | {' + '.join(map(str, steps))} | {last.success}, {last.state_distance:.1f} |", flush=True)


if __name__ == "__main__":
    main()
