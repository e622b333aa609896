"""Full-precision evaluation: load a world model, plan named episodes, calibration capture."""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from quantwm.analysis import failure_split
from quantwm.envs import ENV_NAMES
from quantwm.envs.episodes import make_eval_episodes
from quantwm.models import OfficialCheckpoint, WorldModel, load_checkpoint, shipped_checkpoint
from quantwm.planning import EpisodeRecord, PlannerSpec, planner_spec, run_episodes
from quantwm.planning.presets import DEFAULT_PRESET
from quantwm.quant import Calibration, capture_calibration
from quantwm.runtime import check_device


def check_env(env: str) -> str:
    if env not in ENV_NAMES:
        raise ValueError(f"unknown env {env!r}; valid: {', '.join(ENV_NAMES)}")
    return env


def load_model(env: str | None, checkpoint: str | Path | None = None, device: str = "cpu",
               official: OfficialCheckpoint | None = None) -> WorldModel:
    """A world model on ``device``, in eval mode, frozen: the shipped model of ``env``, or
    ``checkpoint`` (quantwm's format), or ``official`` (a DINO-WM run; ``env`` None takes its env)."""
    if checkpoint is not None and official is not None:
        raise ValueError("give a quantwm checkpoint or an official DINO-WM checkpoint, not both")
    if env is None and official is None:
        raise ValueError(f"an env is required for a quantwm checkpoint; valid: {', '.join(ENV_NAMES)}")
    if env is not None:
        check_env(env)
    check_device(device)
    if official is not None:
        model, source = official.load(device), f"DINO-WM run {official.root / 'outputs' / official.name}"
    else:
        model, source = load_checkpoint(checkpoint or shipped_checkpoint(env), device=device), f"checkpoint {checkpoint}"
    if env is not None and model.cfg.env != env:
        raise ValueError(f"{source} is a {model.cfg.env!r} model, not {env!r}")
    return model.requires_grad_(False)


@dataclass
class EvalResult:
    env: str
    planner: str
    spec: PlannerSpec
    records: list[EpisodeRecord]
    wall_time_s: float

    @property
    def success_rate(self) -> float:
        return sum(r.success for r in self.records) / len(self.records)

    def summary(self) -> dict[str, Any]:
        return {
            "env": self.env, "planner": self.planner, "episodes": len(self.records), "success_rate": self.success_rate,
            "mean_state_distance": statistics.fmean(r.state_distance for r in self.records),
            "seconds_per_episode": round(self.wall_time_s / len(self.records), 3),  # batches amortised
            "median_episode_s": statistics.median(r.wall_time_s for r in self.records),  # batch start -> episode done
            "wall_time_s": round(self.wall_time_s, 2), "spec": repr(self.spec), **self.reference_summary(),
        }

    def reference_summary(self) -> dict[str, Any]:
        """Why episodes failed (objective / model / search), see ``quantwm.analysis.failure_split``."""
        return failure_split([r.to_json() for r in self.records])


def evaluate(model: WorldModel, env: str, planner: str, episodes: int, seed: int, *,
             data_dir: Path | None = None, batch_size: int = 1, record_frames: bool = False,
             progress: Callable[[EpisodeRecord], None] | None = None, preset: str = DEFAULT_PRESET,
             **overrides: int | bool | None) -> EvalResult:
    """Plan ``episodes`` validation episodes (determined by ``seed``) with a named planner."""
    check_env(env)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    spec = planner_spec(env, planner, preset=preset, **overrides)
    eps = make_eval_episodes(env, episodes, seed, data_dir=data_dir)
    t0 = time.time()
    records = run_episodes(model, env, eps, spec, batch_size=batch_size, record_frames=record_frames, progress=progress)
    return EvalResult(env, planner, spec, records, time.time() - t0)


def plan_replays(model: WorldModel, eval_jsons: list[Path]) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, Any]]:
    """Every plan of every episode in ``quantwm eval --json`` records, in env units, with the state it
    was planned from: (starts (state_dim,), env actions (H * frameskip, action_dim), source).
    ``model`` must be the one that planned them (its action normalisation turns plans into env actions)."""
    starts, actions, commands = [], [], []
    for path in eval_jsons:
        try:
            record = json.loads(Path(path).read_text())
            result = record["results"][0]
            episodes = result["episodes"]
        except (OSError, ValueError, KeyError, IndexError) as err:
            raise ValueError(f"{path} is not a `quantwm eval --json` record: {err}") from None
        if result["summary"]["env"] != model.cfg.env:
            raise ValueError(f"{path} holds {result['summary']['env']} episodes, the model plans {model.cfg.env}")
        commands.append(record["command"])
        for ep in episodes:
            for plan, start in zip(ep["planned_actions"], ep["plan_starts"]):
                env_actions = model.denormalize_actions(torch.tensor(plan, dtype=torch.float32))
                actions.append(env_actions.reshape(-1, model.cfg.action_dim).numpy())
                starts.append(np.asarray(ep["states"][start]))
    return starts, actions, {"eval_commands": commands, "eval_files": [str(p) for p in eval_jsons]}


def calibrate(model: WorldModel, env: str, groups: tuple[str, ...] = ("predictor",), size: int = 256, seed: int = 0,
              episodes: int = 4, preset: str = DEFAULT_PRESET, data_dir: Path | None = None,
              **overrides: int | bool | None) -> Calibration:
    """Quantization calibration inputs of ``groups``: a seeded subset of ``size`` inputs captured
    while ``model`` (full precision) plans MPC episodes of the calibration split, which never
    shares an episode with evaluation. Same arguments, same calibration."""
    check_env(env)
    spec = planner_spec(env, "mpc", preset=preset, **overrides)
    eps = make_eval_episodes(env, episodes, seed, data_dir=data_dir, split="calib")
    return capture_calibration(model, groups, lambda: run_episodes(model, env, eps, spec, batch_size=len(eps)),
                               size=size, seed=seed)
