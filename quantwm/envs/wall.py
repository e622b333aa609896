"""Wall ("DotWall"): a dot moves between two rooms joined by one door (DINO-WM's Wall task).

World: a 65 x 65 canvas in pixel units (pixel j covers [j, j + 1)). Border walls fill x, y < 4 and
x, y > 60; the middle wall fills 29 < x < 35 (6 px, centre 32) except the door 29 < x < 35,
|y - door| < 4. The door centre is part of the state and lies in [12, 52], so the door always sits
at least 4 px inside the border walls.

Dynamics: ``pos += 2 * action``; the dot is a point that moves along the straight segment and stops
1e-3 px short of the first wall face it meets (no sliding, no tunnelling: it only crosses the middle
wall through the door opening). Actions are unbounded; an action with max |a| > 1000 is rescaled
to max |a| = 1000 keeping its direction (such a move crosses the whole room anyway).

Rendering: the dot is a Gaussian blob (std 1.7 px, peak 1) drawn red on white, walls black; the
image is the exact pixel-area average of that continuous picture at the render size (an
antialiased resize of the 65 x 65 canvas).

State (3,): [x, y, door_centre_y]; proprio (2,): [x, y]. Success: ||goal_xy - xy|| < 4.5.
"""
from __future__ import annotations

import math

import numpy as np

from quantwm.envs.base import EnvSpec, QuantWMEnv

CANVAS = 65.0
BORDER_LO, BORDER_HI = 4.0, 60.0
WALL_X0, WALL_X1 = 29.0, 35.0
WALL_CENTRE = 32.0
DOOR_HALF = 4.0
DOOR_MARGIN = 4.0  # free space kept between the door and the border walls
DOOR_RANGE = (BORDER_LO + DOOR_MARGIN + DOOR_HALF, BORDER_HI - DOOR_MARGIN - DOOR_HALF)  # (12, 52)
ROOM_MARGIN = 3.4  # eval starts / goals keep this distance from every wall face
LEFT_ROOM_X = (BORDER_LO + ROOM_MARGIN, WALL_X0 - ROOM_MARGIN)  # (7.4, 25.6)
RIGHT_ROOM_X = (WALL_X1 + ROOM_MARGIN, BORDER_HI - ROOM_MARGIN)  # (38.4, 56.6)
ROOM_Y = (BORDER_LO + ROOM_MARGIN, BORDER_HI - ROOM_MARGIN)  # (7.4, 56.6)
STEP_SCALE = 2.0
MAX_ACTION = 1000.0
STOP_GAP = 1e-3
DOT_STD = 1.7
SUCCESS_TOL = 4.5

WALL_SPEC = EnvSpec(
    name="wall",
    gym_id="quantwm/Wall-v0",
    proprio_dim=2,
    state_dim=3,
    default_render_size=64,
    num_hist=1,
    success_pos_tol=SUCCESS_TOL,
    success_angle_tol=None,
    success_rule="||goal[0:2] - state[0:2]|| < 4.5 (dot position)",
)


def wall_boxes(door_y: float) -> np.ndarray:
    """Open obstacle boxes for a door centre: (6, 2, 2) as [axis][lo, hi] (infinite outside the canvas)."""
    inf = np.inf
    return np.array([
        [[-inf, BORDER_LO], [-inf, inf]],
        [[BORDER_HI, inf], [-inf, inf]],
        [[-inf, inf], [-inf, BORDER_LO]],
        [[-inf, inf], [BORDER_HI, inf]],
        [[WALL_X0, WALL_X1], [-inf, door_y - DOOR_HALF]],
        [[WALL_X0, WALL_X1], [door_y + DOOR_HALF, inf]],
    ])


def _segment_entry(pos: np.ndarray, delta: np.ndarray, box: np.ndarray) -> tuple[float, int]:
    """Parameter t at which pos + t * delta enters the open box, and the entry axis; (inf, -1) if never."""
    t_enter, t_exit, axis = -np.inf, np.inf, -1
    for ax in (0, 1):
        lo, hi = box[ax]
        if delta[ax] == 0.0:
            if not lo < pos[ax] < hi:
                return np.inf, -1
            continue
        t0, t1 = sorted(((lo - pos[ax]) / delta[ax], (hi - pos[ax]) / delta[ax]))
        if t0 > t_enter:
            t_enter, axis = t0, ax
        t_exit = min(t_exit, t1)
    if t_enter < t_exit and t_exit > 0.0 and t_enter < 1.0:
        return max(t_enter, 0.0), axis
    return np.inf, -1


def move_dot(pos: np.ndarray, delta: np.ndarray, door_y: float) -> np.ndarray:
    """Move a point by ``delta`` (2,), stopping STOP_GAP short of the first wall face on the way -> (2,)."""
    t_hit, hit_axis, hit_box = np.inf, -1, None
    for box in wall_boxes(door_y):
        t, axis = _segment_entry(pos, delta, box)
        if t < t_hit:
            t_hit, hit_axis, hit_box = t, axis, box
    if hit_box is None:
        return pos + delta
    new = pos + t_hit * delta
    face = hit_box[hit_axis][0] if delta[hit_axis] > 0 else hit_box[hit_axis][1]
    new[hit_axis] = face - np.sign(delta[hit_axis]) * STOP_GAP
    return new


def in_free_space(xy: np.ndarray, door_y: float) -> bool:
    """Whether a point (2,) lies outside every (open) wall box."""
    return all(not (box[0][0] < xy[0] < box[0][1] and box[1][0] < xy[1] < box[1][1]) for box in wall_boxes(door_y))


_erf = np.frompyfunc(math.erf, 1, 1)


def _interval_cover(edges: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fraction of each pixel interval [edges[i], edges[i+1]) inside [lo, hi]: (S+1,) -> (S,)."""
    overlap = np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo)
    return np.clip(overlap, 0.0, None) / (edges[1:] - edges[:-1])


def _gaussian_cover(edges: np.ndarray, mu: float) -> np.ndarray:
    """Mean over each pixel interval of exp(-(x - mu)^2 / (2 std^2)): (S+1,) -> (S,)."""
    scale = DOT_STD * math.sqrt(2.0)
    cdf = _erf((edges - mu) / scale).astype(np.float64)
    return DOT_STD * math.sqrt(math.pi / 2.0) * np.diff(cdf) / np.diff(edges)


def render_wall_frame(state: np.ndarray, size: int) -> np.ndarray:
    """Frame of a state (3,) at ``size`` px: uint8 (size, size, 3), rows = y, columns = x."""
    x, y, door = state
    edges = np.linspace(0.0, CANVAS, size + 1)
    free = np.outer(_interval_cover(edges, BORDER_LO, BORDER_HI), _interval_cover(edges, BORDER_LO, BORDER_HI))
    wall_x = _interval_cover(edges, WALL_X0, WALL_X1)
    for lo, hi in ((BORDER_LO, door - DOOR_HALF), (door + DOOR_HALF, BORDER_HI)):
        free -= np.outer(_interval_cover(edges, lo, hi), wall_x)
    dot = np.outer(_gaussian_cover(edges, y), _gaussian_cover(edges, x))
    free = np.clip(free, 0.0, 1.0)
    rgb = np.stack([free, free * (1.0 - dot), free * (1.0 - dot)], axis=-1)
    return np.rint(rgb * 255.0).astype(np.uint8)


class WallEnv(QuantWMEnv):
    """DotWall env (see the module docstring). Observation: {"visual": uint8 (S, S, 3), "proprio": float32 (2,)}."""

    env_spec = WALL_SPEC
    proprio_index = (0, 1)

    def is_success(self, goal_state: np.ndarray, state: np.ndarray) -> bool:
        """||goal_xy - xy|| < 4.5."""
        return self.state_distance(goal_state, state) < SUCCESS_TOL

    def state_distance(self, goal_state: np.ndarray, state: np.ndarray) -> float:
        """Euclidean distance between the dot positions."""
        return float(np.linalg.norm(np.asarray(goal_state, dtype=np.float64)[:2] - np.asarray(state, dtype=np.float64)[:2]))

    def _sample_state(self, rng: np.random.Generator) -> np.ndarray:
        room = LEFT_ROOM_X if rng.random() < 0.5 else RIGHT_ROOM_X
        return np.array([rng.uniform(*room), rng.uniform(*ROOM_Y), rng.uniform(*DOOR_RANGE)])

    def _validate_state(self, state: np.ndarray) -> None:
        if not DOOR_RANGE[0] <= state[2] <= DOOR_RANGE[1]:
            raise ValueError(f"door centre {state[2]} outside the valid range {DOOR_RANGE}")
        if not in_free_space(state[:2], state[2]):
            raise ValueError(f"dot position {state[:2]} lies inside a wall")

    def _set_state(self, state: np.ndarray) -> None:
        self._state = state.copy()

    def _get_state(self) -> np.ndarray:
        return self._state

    def _advance(self, action: np.ndarray) -> None:
        peak = float(np.max(np.abs(action)))
        if peak > MAX_ACTION:
            action = action * (MAX_ACTION / peak)
        self._state[:2] = move_dot(self._state[:2], STEP_SCALE * action, self._state[2])

    def _render_frame(self) -> np.ndarray:
        return render_wall_frame(self._state, self.render_size)


def door_path(start: np.ndarray, goal: np.ndarray, clearance: float = 3.0) -> np.ndarray:
    """Waypoints (K, 2) of the shortest way through free space along straight segments from
    ``start`` to ``goal`` (states (3,), same door): to ``clearance`` px before the middle wall at
    the door centre's height, straight through the door, then to the goal (just the two ends when
    both lie in the same room)."""
    start_xy, goal_xy, door = np.asarray(start[:2], np.float64), np.asarray(goal[:2], np.float64), float(start[2])
    points = [start_xy]
    if (start_xy[0] < WALL_CENTRE) != (goal_xy[0] < WALL_CENTRE):
        near, far = (WALL_X0 - clearance, WALL_X1 + clearance) if start_xy[0] < WALL_CENTRE else (WALL_X1 + clearance, WALL_X0 - clearance)
        points += [np.array([near, door]), np.array([far, door])]
    points.append(goal_xy)
    return np.stack(points)


def detour_ratio(start: np.ndarray, goal: np.ndarray) -> float:
    """Length of ``door_path`` over the straight distance: how far the way round the wall leads
    away from the goal (1 in one room; large when start and goal lie far from the door's height)."""
    points = door_path(start, goal)
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum() / max(np.linalg.norm(points[-1] - points[0]), 1e-9))


def door_path_actions(start: np.ndarray, goal: np.ndarray, steps: int, clearance: float = 3.0) -> np.ndarray:
    """Env actions (steps, 2) that move the dot along ``door_path`` at constant speed. Every segment
    stays in free space, so executing them reaches the goal."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    points = door_path(start, goal, clearance)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.linspace(0.0, arc[-1], steps + 1)
    path = np.stack([np.interp(s, arc, points[:, k]) for k in (0, 1)], axis=1)
    return np.diff(path, axis=0) / STEP_SCALE


class WallDataPolicy:
    """Data-collection policy: a persistent random walk (AR(1) actions that reverse when a wall stopped
    the last move) that, in ``cross_prob`` of the episodes, walks through the door once (aligning
    with the door on the near side, then crossing to a point 3-12 px past the far face), starting
    at a step drawn below ``seek_start_max`` - often from a dot that a charge (below) left pressed
    against the wall, as an MPC planner must after a failed attempt - then wanders again. The
    crossing draws its speed from ``seek_speed``: a model whose data crossed only slowly (<= 1.5,
    the dot 3 px per env step) imagined fast door paths (a planner's 3-step paths, ~2.7) stuck at
    the wall, and from a dot pressed against the wall put the end of such a path within 4.5 px of
    the real one in 17 % of cases (slow 5-step paths: 67 %). While wandering, each step starts a
    *charge* with probability ``charge_prob``: a straight run of ``charge_steps`` steps at a random
    point of the other room, which the middle wall stops unless the line meets the door - so the
    data shows sustained pushes against the wall at every height (a model that never sees them
    imagines the dot through the wall). Charge speeds span ``charge_speed``, up to 4 (8 px per env
    step): a planner samples actions of several
    data std, and a model that saw only gentle pushes imagines fast ones passing through the wall
    (a model trained on speeds <= 1.5 did so for 80 % of pushes at 3). Charges last up to 40 steps
    and start as slow as 0.3: a model trained on charges of 6-20 steps at speeds >= 0.8 kept the
    dot at the wall under one planner step of pushing but imagined it through after 4-6 steps of
    slow pushing (up to half of such pushes), and CEM's best samples were exactly such plans.
    Each charge also draws its per-step noise std from ``charge_noise``, from a steady push (0.15)
    to white-noise jitter around a weak drift (2.5, about 1.5 data std): CEM samples every env step's
    action independently, so its plans jitter; a model trained on smooth walks and steady charges
    only imagined such jittering plans through the wall from a dot pressed against it, and most of
    MPC's failures were those plans. Call with the state (3,) -> action (2,)."""

    cross_prob = 0.6
    charge_prob = 0.08
    walk_momentum = 0.8
    walk_std = 0.8  # innovation std; stationary per-axis std = 0.8 / sqrt(1 - 0.8^2) = 1.33
    seek_speed = (0.5, 4.0)
    seek_start_max = 45
    charge_speed = (0.3, 4.0)
    charge_steps = (6, 40)
    charge_noise = (0.15, 2.5)
    seek_noise = 0.15
    phase_timeout = 30

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._walk = rng.normal(0.0, 1.0, 2)
        self._phase = "wander"
        self._seek_start = int(rng.integers(0, self.seek_start_max)) if rng.random() < self.cross_prob else -1
        self._t = 0
        self._phase_t = 0
        self._near = self._far = np.zeros(2)
        self._seek_max = self.seek_speed[0]
        self._last_xy: np.ndarray | None = None

    def __call__(self, state: np.ndarray) -> np.ndarray:
        xy, door = state[:2], state[2]
        if self._t == self._seek_start:
            self._seek_max = self._rng.uniform(*self.seek_speed)
            left = xy[0] < WALL_CENTRE
            sign = 1.0 if left else -1.0
            near_x = (WALL_X0 - 2.5) if left else (WALL_X1 + 2.5)
            far_x = (WALL_X1 if left else WALL_X0) + sign * self._rng.uniform(3.0, 12.0)
            self._near = np.array([near_x, door + self._rng.uniform(-2.0, 2.0)])
            self._far = np.array([far_x, door + self._rng.uniform(-2.0, 2.0)])
            self._phase, self._phase_t = "to_door", 0
        self._t += 1
        self._phase_t += 1
        if self._phase != "wander" and self._phase_t > self.phase_timeout:
            self._phase = "wander"
        if self._phase == "to_door" and np.linalg.norm(self._near - xy) < 1.0:
            self._phase, self._phase_t = "through", 0
        if self._phase == "through" and np.linalg.norm(self._far - xy) < 1.0:
            self._phase = "wander"
        if self._phase == "charge" and self._phase_t > self._charge_len:
            self._phase = "wander"
        if self._phase == "wander" and self._rng.random() < self.charge_prob:
            other_room = RIGHT_ROOM_X if xy[0] < WALL_CENTRE else LEFT_ROOM_X
            self._far = np.array([self._rng.uniform(*other_room), self._rng.uniform(*ROOM_Y)])
            self._charge_speed = self._rng.uniform(*self.charge_speed)
            self._charge_len = int(self._rng.integers(self.charge_steps[0], self.charge_steps[1] + 1))
            self._charge_noise = self._rng.uniform(*self.charge_noise)
            self._phase, self._phase_t = "charge", 0
        if self._phase == "charge":
            heading = self._far - xy
            return heading / max(np.linalg.norm(heading), 1e-6) * self._charge_speed + self._rng.normal(0.0, self._charge_noise, 2)
        if self._phase == "wander":
            blocked = self._last_xy is not None and np.linalg.norm(xy - self._last_xy) < STEP_SCALE * np.linalg.norm(self._walk) / 2
            self._walk = (-1.0 if blocked else 1.0) * self.walk_momentum * self._walk + self._rng.normal(0.0, self.walk_std, 2)
            self._last_xy = xy.copy()
            return self._walk.copy()
        self._last_xy = None
        aligned = abs(xy[1] - door) < DOOR_HALF - 1.0
        near_side = (xy[0] < WALL_X1) if self._near[0] < WALL_CENTRE else (xy[0] > WALL_X0)
        waypoint = self._far if self._phase == "through" and (aligned or not near_side) else self._near
        step = (waypoint - xy) / STEP_SCALE
        norm = np.linalg.norm(step)
        if norm > self._seek_max:
            step *= self._seek_max / norm
        return step + self._rng.normal(0.0, self.seek_noise, 2)
