"""Seeded evaluation episodes (start state + goal state) for planning.

Episode ``i`` of ``make_eval_episodes(env, n, seed)`` is drawn from ``np.random.default_rng([seed, i])``
alone (``[seed, i, split index]`` for another split, so calibration episodes never repeat evaluation
ones, Wall's included), so it is the same whatever ``n`` is. Its first draw is the episode's own ``seed`` (for the
planner's sampling noise); the start / goal come after.

- Wall: a random door centre in [12, 52]; start and goal in opposite rooms (which room starts is a
  coin flip), x uniform in the left room [7.4, 25.6] or the right room [38.4, 56.6] (3.4 px from
  the border at 4, the wall faces at 29 / 35 and the border at 60), y uniform in [7.4, 56.6]. Its
  ``reference_actions`` walk to the goal through the door centre at constant speed in 25 env steps
  (``door_path_actions``).
- PushT (DINO-WM's rule): pick a (trajectory, start step) of the dataset's ``split``; the start is
  the recorded state, the goal is the state reached by replaying the recorded 25 env actions
  (goal_H 5 x frameskip 5) from that start in a fresh env; those actions are kept as the episode's
  ``reference_actions`` (a plan known to reach the goal, for telling search from model failures). The goal must require moving the T:
  windows are redrawn (up to 32 draws) until the block moves >= 20 units or turns >= pi/9 (the
  success tolerances); if no draw qualifies, the draw with the largest motion is kept.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantwm.envs import check_env_name, make_env
from quantwm.envs.base import wrapped_angle_diff
from quantwm.envs.dataset import DEFAULT_DATASETS, SPLITS, EpisodeData, dataset_dir, load_split, regenerate_split
from quantwm.envs.pusht import SUCCESS_ANGLE_TOL, SUCCESS_POS_TOL
from quantwm.envs.wall import DOOR_RANGE, LEFT_ROOM_X, RIGHT_ROOM_X, ROOM_Y, door_path_actions

GOAL_H, FRAMESKIP = 5, 5
GOAL_STEPS = GOAL_H * FRAMESKIP
MAX_WINDOW_DRAWS = 32

# rng -> (start state, goal state, env actions that reach the goal from the start, or None)
GoalSampler = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray, np.ndarray | None]]


@dataclass(frozen=True, eq=False)
class EvalEpisode:
    """One evaluation episode: states are float64 (state_dim,); ``reference_actions`` (n, action_dim)
    env actions known to reach the goal from the start (PushT: the demonstration; Wall: a path
    through the door centre), or None."""

    index: int
    seed: int
    start_state: np.ndarray
    goal_state: np.ndarray
    reference_actions: np.ndarray | None = None


def _wall_sampler(data_dir: Path | None, split: str) -> GoalSampler:
    def sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        door = rng.uniform(*DOOR_RANGE)
        rooms = (LEFT_ROOM_X, RIGHT_ROOM_X) if rng.random() < 0.5 else (RIGHT_ROOM_X, LEFT_ROOM_X)
        start, goal = (np.array([rng.uniform(*room), rng.uniform(*ROOM_Y), door]) for room in rooms)
        return start, goal, door_path_actions(start, goal, GOAL_STEPS)

    return sample


def block_motion(start: np.ndarray, goal: np.ndarray) -> tuple[float, float]:
    """PushT block displacement (world units) and wrapped rotation (radians) between two states (7,)."""
    return float(np.linalg.norm(goal[2:4] - start[2:4])), float(wrapped_angle_diff(goal[4], start[4]))


def _motion_score(start: np.ndarray, goal: np.ndarray) -> float:
    """Block motion in success-tolerance units: >= 1 means the goal requires moving the T."""
    shift, turn = block_motion(start, goal)
    return max(shift / SUCCESS_POS_TOL, turn / SUCCESS_ANGLE_TOL)


def _pusht_data(data_dir: Path | None, split: str) -> EpisodeData:
    """The split from ``data_dir``; with no ``data_dir`` and no generated default dataset, the
    default dataset's split recomputed (identical, frames not needed)."""
    if data_dir is None and not (dataset_dir("pusht") / "meta.json").is_file():
        return regenerate_split(DEFAULT_DATASETS["pusht"], split)
    return load_split(dataset_dir("pusht") if data_dir is None else Path(data_dir), split, frames=False)


def _pusht_sampler(data_dir: Path | None, split: str) -> GoalSampler:
    data = _pusht_data(data_dir, split)
    rows = [data.episode(e) for e in range(data.n_episodes)]
    # (first row, last valid window offset) of each episode with room for GOAL_STEPS actions
    windows = [(r.start, r.stop - r.start - 1 - GOAL_STEPS) for r in rows if r.stop - r.start - 1 >= GOAL_STEPS]
    if not windows:
        raise ValueError(f"no {split} episode of the PushT data is longer than {GOAL_STEPS} steps")
    env = make_env("pusht", render_size=8)

    def replay(row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start, actions = data.states[row], data.actions[row : row + GOAL_STEPS]
        env.reset(options={"state": start})
        for action in actions:
            env.simulate(action)
        return start.copy(), env.state, np.asarray(actions, dtype=np.float64)

    def sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        best, best_score = None, -math.inf
        for _ in range(MAX_WINDOW_DRAWS):
            first, last_offset = windows[int(rng.integers(len(windows)))]
            drawn = replay(first + int(rng.integers(last_offset + 1)))
            score = _motion_score(*drawn[:2])
            if score >= 1.0:
                return drawn
            if score > best_score:
                best, best_score = drawn, score
        return best

    return sample


GOAL_SAMPLERS: dict[str, Callable[[Path | None, str], GoalSampler]] = {"pusht": _pusht_sampler, "wall": _wall_sampler}


def make_eval_episodes(env: str, n: int, seed: int, data_dir: Path | None = None, split: str = "val") -> list[EvalEpisode]:
    """Episodes 0..n-1 of env's evaluation set for ``seed`` (PushT reads ``split`` of the data in ``data_dir``,
    default ``dataset_dir("pusht")``; Wall needs no data)."""
    check_env_name(env)
    if n <= 0:
        raise ValueError(f"n must be a positive number of episodes, got {n}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {list(SPLITS)}")
    sample = GOAL_SAMPLERS[env](data_dir, split)
    episodes = []
    for index in range(n):
        rng = np.random.default_rng([seed, index] if split == "val" else [seed, index, SPLITS.index(split)])
        episode_seed = int(rng.integers(2**31))
        start, goal, reference = sample(rng)
        episodes.append(EvalEpisode(index, episode_seed, start, goal, reference))
    return episodes


def goal_motion_stats(episodes: list[EvalEpisode]) -> dict[str, float]:
    """PushT start -> goal motion: block displacement (units) and rotation (degrees) percentiles, agent
    displacement median, and the fraction of goals that require moving the T (beyond a success tolerance)."""
    if not episodes or any(ep.start_state.shape != (7,) for ep in episodes):
        raise ValueError("goal_motion_stats needs a non-empty list of PushT episodes (7-d states)")
    shift, turn = np.array([block_motion(ep.start_state, ep.goal_state) for ep in episodes]).T
    turn_deg = np.degrees(turn)
    agent = np.array([np.linalg.norm(ep.goal_state[:2] - ep.start_state[:2]) for ep in episodes])
    stats: dict[str, float] = {"n": float(len(episodes))}
    for name, values in (("block_shift", shift), ("block_turn_deg", turn_deg)):
        for q in (10, 50, 90):
            stats[f"{name}_p{q}"] = float(np.percentile(values, q))
        stats[f"{name}_mean"] = float(values.mean())
    stats["agent_shift_p50"] = float(np.median(agent))
    stats["frac_requires_block_motion"] = float(np.mean((shift >= SUCCESS_POS_TOL) | (turn >= SUCCESS_ANGLE_TOL)))
    return stats
