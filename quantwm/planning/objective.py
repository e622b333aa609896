"""DINO-WM's planning objective: last-frame patch-latent MSE + alpha x proprio-embedding MSE."""
from __future__ import annotations

import torch

from quantwm.models import Latents, WorldModel


def planning_cost(model: WorldModel, rollout_tokens: torch.Tensor, goal: Latents, alpha: float) -> torch.Tensor:
    """Cost of each imagined trajectory against the goal.

    rollout_tokens: (B, T, P, D) from ``model.rollout``; goal: Latents with visual (B|1, 1, P, E)
    and proprio (B|1, 1, Ep). Returns (B,): mean squared error of the last frame's visual patch
    latents plus ``alpha`` times that of its proprio embedding (action dims dropped).
    """
    last = model.split(rollout_tokens[:, -1:])
    visual = (last.visual - goal.visual).pow(2).mean(dim=(1, 2, 3))
    proprio = (last.proprio - goal.proprio).pow(2).mean(dim=(1, 2))
    return visual + alpha * proprio
