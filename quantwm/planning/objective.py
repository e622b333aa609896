"""DINO-WM's planning objective: patch-latent MSE + alpha x proprio-embedding MSE to the goal, on the
last imagined frame (DINO-WM's default) or on every frame weighted base^t (DINO-WM's mode "all")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from quantwm.models import Latents, WorldModel


def _last(n_frames: int, base: float) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(n_frames - 1), n_frames).float()


def _all(n_frames: int, base: float) -> torch.Tensor:
    weights = base ** torch.arange(n_frames, dtype=torch.float32)
    return weights / weights.sum()


FRAME_WEIGHTS: dict[str, Callable[[int, float], torch.Tensor]] = {"last": _last, "all": _all}


def planning_cost(model: WorldModel, rollout_tokens: torch.Tensor, goal: Latents, alpha: float, frames: str = "last",
                  base: float = 2.0) -> torch.Tensor:
    """Cost of each imagined trajectory against the goal.

    rollout_tokens: (B, T, P, D) from ``model.rollout`` (context frames first); goal: Latents with
    visual (B|1, 1, P, E) and proprio (B|1, 1, Ep). Per frame: mean squared error of the visual
    patch latents plus ``alpha`` times that of the proprio embedding (action dims dropped); the
    frames are then averaged with ``FRAME_WEIGHTS[frames]`` (T,): "last" takes the last frame only,
    "all" weights frame t by base^t / sum (as DINO-WM, context frames included: the same for every
    plan of a batch). Returns (B,).
    """
    return latent_cost(model.split(rollout_tokens), goal, alpha, frames, base)


def latent_cost(lat: Latents, goal: Latents, alpha: float, frames: str = "last", base: float = 2.0) -> torch.Tensor:
    """``planning_cost`` of latents (visual (B, T, P, E), proprio (B, T, Ep)), imagined or encoded
    from real frames, against the goal -> (B,)."""
    per_frame = (lat.visual - goal.visual).pow(2).mean(dim=(2, 3)) + alpha * (lat.proprio - goal.proprio).pow(2).mean(dim=2)
    return per_frame @ FRAME_WEIGHTS[frames](lat.visual.shape[1], base).to(per_frame)


@dataclass(frozen=True)
class Objective:
    """What a planner minimises: ``planning_cost`` with these settings."""

    alpha: float = 1.0
    frames: str = "last"
    base: float = 2.0

    def __post_init__(self) -> None:
        if self.frames not in FRAME_WEIGHTS:
            raise ValueError(f"unknown objective frames {self.frames!r}; valid: {', '.join(FRAME_WEIGHTS)}")
        if not self.base > 0:
            raise ValueError(f"objective base must be > 0, got {self.base}")
        if not self.alpha >= 0:
            raise ValueError(f"objective alpha (the proprio term's weight) must be >= 0, got {self.alpha}")

    def cost(self, model: WorldModel, rollout_tokens: torch.Tensor, goal: Latents) -> torch.Tensor:
        """(B, T, P, D) imagined tokens -> (B,) costs."""
        return planning_cost(model, rollout_tokens, goal, self.alpha, self.frames, self.base)

    def latent_cost(self, lat: Latents, goal: Latents) -> torch.Tensor:
        """Latents of (B, T) frames -> (B,) costs."""
        return latent_cost(lat, goal, self.alpha, self.frames, self.base)
