"""Shared pieces of the quantwm environments: the static spec record and the common env base class."""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from PIL import Image

MIN_RENDER_SIZE, MAX_RENDER_SIZE = 8, 1024


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about one environment (what models, planners and datasets need to know).

    Success is ``||goal[pos] - state[pos]|| < success_pos_tol`` over the state entries named in
    ``success_rule``, and, when ``success_angle_tol`` is set, the wrapped angle difference
    ``min(d, 2 pi - d) < success_angle_tol`` as well.
    """

    name: str
    gym_id: str
    proprio_dim: int
    state_dim: int
    default_render_size: int
    num_hist: int
    success_pos_tol: float
    success_angle_tol: float | None
    success_rule: str
    frameskip: int = 5
    action_dim: int = 2


def wrapped_angle_diff(a: float | np.ndarray, b: float | np.ndarray) -> float | np.ndarray:
    """Absolute angle difference folded into [0, pi]: min(d, 2 pi - d) with d = |a - b| mod 2 pi."""
    d = np.mod(np.abs(np.asarray(a, dtype=np.float64) - b), 2 * np.pi)
    return np.minimum(d, 2 * np.pi - d)


def resize_frame(image: Image.Image, size: int) -> np.ndarray:
    """Square RGB PIL image -> uint8 (size, size, 3): area averaging when shrinking (integer-factor
    reduction first, which is 3x faster), bicubic when growing."""
    if image.width == size:
        return np.asarray(image, dtype=np.uint8)
    if size < image.width:
        return np.asarray(image.resize((size, size), Image.Resampling.BOX, reducing_gap=1.0), dtype=np.uint8)
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


class QuantWMEnv(gymnasium.Env):
    """Base of the quantwm envs: dict observations, state-settable resets, no reward, no termination.

    Subclasses define ``env_spec``, ``proprio_index`` (which state entries form the proprio vector)
    and the physics / rendering hooks. ``simulate`` advances the physics without rendering (fast
    replays); ``step`` = ``simulate`` + a rendered observation.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}
    env_spec: ClassVar[EnvSpec]
    proprio_index: ClassVar[tuple[int, ...]]

    def __init__(self, render_size: int | None = None, render_mode: str = "rgb_array") -> None:
        size = self.env_spec.default_render_size if render_size is None else render_size
        if not isinstance(size, (int, np.integer)) or not MIN_RENDER_SIZE <= size <= MAX_RENDER_SIZE:
            raise ValueError(f"render_size must be an int in [{MIN_RENDER_SIZE}, {MAX_RENDER_SIZE}], got {size!r}")
        if render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; valid: {self.metadata['render_modes']}")
        self.render_size = int(size)
        self.render_mode = render_mode
        self.observation_space = spaces.Dict({
            "visual": spaces.Box(0, 255, (self.render_size, self.render_size, 3), np.uint8),
            "proprio": spaces.Box(-np.inf, np.inf, (self.env_spec.proprio_dim,), np.float32),
        })
        # Any finite action is valid (the dynamics bound its effect); the box is unbounded on purpose.
        self.action_space = spaces.Box(-np.inf, np.inf, (self.env_spec.action_dim,), np.float32)
        self._ready = False

    # ---- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode: ``options={"state": s}`` sets the full state exactly, else a random valid state from the seed."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"state"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; valid: ['state']")
        state = self._check_state(options["state"]) if "state" in options else self._sample_state(self.np_random)
        self._set_state(state)
        self._ready = True
        return self._observation(), {"state": self.state}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """One env step: returns (obs, 0.0, False, False, {"state": (state_dim,)})."""
        self.simulate(action)
        return self._observation(), 0.0, False, False, {"state": self.state}

    def render(self) -> np.ndarray:
        """Current frame, uint8 (S, S, 3)."""
        self._require_reset()
        return self._render_frame()

    # ---- quantwm API --------------------------------------------------------------------------
    def simulate(self, action: np.ndarray) -> np.ndarray:
        """Advance one env step without rendering; action (action_dim,) any finite values -> new state (state_dim,)."""
        self._require_reset()
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self.env_spec.action_dim,) or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be a finite array of shape ({self.env_spec.action_dim},), got {np.asarray(action)!r}")
        self._advance(a)
        return self.state

    @property
    def state(self) -> np.ndarray:
        """Full state, float64 (state_dim,) (a copy)."""
        self._require_reset()
        return np.array(self._get_state(), dtype=np.float64)

    def proprio(self, state: np.ndarray) -> np.ndarray:
        """Proprio vector of a state: (..., state_dim) -> float32 (..., proprio_dim)."""
        return np.asarray(state)[..., list(self.proprio_index)].astype(np.float32)

    @abstractmethod
    def is_success(self, goal_state: np.ndarray, state: np.ndarray) -> bool:
        """Whether ``state`` reaches ``goal_state`` within the env's tolerances (pure)."""

    @abstractmethod
    def state_distance(self, goal_state: np.ndarray, state: np.ndarray) -> float:
        """Distance between two states in world units (pure)."""

    # ---- subclass hooks -----------------------------------------------------------------------
    @abstractmethod
    def _sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random valid start state (state_dim,)."""

    @abstractmethod
    def _validate_state(self, state: np.ndarray) -> None:
        """Raise ValueError if a finite state of the right shape is not a valid state of this env."""

    @abstractmethod
    def _set_state(self, state: np.ndarray) -> None:
        """Rebuild the simulation at exactly ``state``."""

    @abstractmethod
    def _get_state(self) -> np.ndarray:
        """Current full state (state_dim,)."""

    @abstractmethod
    def _advance(self, action: np.ndarray) -> None:
        """One env step of the physics for a finite float64 action."""

    @abstractmethod
    def _render_frame(self) -> np.ndarray:
        """Current frame, uint8 (S, S, 3)."""

    # ---- helpers ------------------------------------------------------------------------------
    def _check_state(self, state: Any) -> np.ndarray:
        s = np.array(state, dtype=np.float64)
        if s.shape != (self.env_spec.state_dim,) or not np.all(np.isfinite(s)):
            raise ValueError(f"{self.env_spec.name} state must be a finite array of shape ({self.env_spec.state_dim},), got {state!r}")
        self._validate_state(s)
        return s

    def _observation(self) -> dict[str, np.ndarray]:
        return {"visual": self._render_frame(), "proprio": self.proprio(self._get_state())}

    def _require_reset(self) -> None:
        if not self._ready:
            raise RuntimeError("call reset() before using the environment")
