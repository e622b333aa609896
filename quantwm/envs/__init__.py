"""Gymnasium environments of quantwm (PushT, Wall) and their static specs.

``make_env(name)`` builds an env directly (unwrapped, so ``state``, ``is_success`` and
``simulate`` are at hand); the gymnasium ids ``quantwm/PushT-v0`` and ``quantwm/Wall-v0`` are
registered as well for ``gymnasium.make``.
"""
from __future__ import annotations

import gymnasium

from quantwm.envs.base import EnvSpec, QuantWMEnv
from quantwm.envs.pusht import PushTEnv
from quantwm.envs.wall import WallEnv

ENV_NAMES = ("pusht", "wall")
ENV_CLASSES: dict[str, type[QuantWMEnv]] = {"pusht": PushTEnv, "wall": WallEnv}
ENV_SPECS: dict[str, EnvSpec] = {name: cls.env_spec for name, cls in ENV_CLASSES.items()}


def check_env_name(name: str) -> str:
    """Return ``name`` if it is a known env, else raise ValueError listing ENV_NAMES."""
    if name not in ENV_CLASSES:
        raise ValueError(f"unknown env {name!r}; valid: {list(ENV_NAMES)}")
    return name


def make_env(name: str, render_size: int | None = None) -> QuantWMEnv:
    """Build env ``name`` rendering square frames of ``render_size`` px (default: the spec's)."""
    return ENV_CLASSES[check_env_name(name)](render_size=render_size)


for _cls in ENV_CLASSES.values():
    if _cls.env_spec.gym_id not in gymnasium.registry:
        gymnasium.register(id=_cls.env_spec.gym_id, entry_point=f"{_cls.__module__}:{_cls.__name__}")

__all__ = ["ENV_CLASSES", "ENV_NAMES", "ENV_SPECS", "EnvSpec", "QuantWMEnv", "check_env_name", "make_env"]
