"""PushT: a disc agent pushes a T-shaped block on a table (DINO-WM's PushT task), pymunk physics.

World: 512 x 512 units, arena walls with inner faces at 5 and 506 (100 units thick static boxes).
The T is the original PushT shape (bar 120 x 30 on top of a stem 30 x 90), mass 1; its body frame
has its origin at the T's centre of mass (so states round-trip exactly): block x, y is the centre
of mass and the angle rotates the body frame (bar at local y < 0, stem at local y > 0).

Control: 100 Hz physics, 10 substeps per env step. The action is a relative target
``target = agent_xy + 100 * action`` (clipped into the arena) tracked by the original PD law
``dv = (kp (target - p) - kv v) dt`` with kp 100, kv 20. For stability under any finite action the
agent is a heavy dynamic disc (radius 15, mass 10 against the T's 1) rather than a kinematic body:
the PD velocity change, capped at 800 units/s (8 units per substep, below the agent radius and half
the T's thickness), is applied as a force so it passes through the contact solver. It moves the
free T like a kinematic body would, but walls stop it and it cannot squeeze the T through a wall
(an infinite-mass kinematic body would). The T's speed is capped likewise (800 units/s, 8 rad/s).
Ground friction (a velocity-only pivot and gear joint to the table, max force 1500 and torque
1500 x 28) makes pushes quasi-static: the T stops within the env step in which contact ends.

State (7,): [agent x, agent y, block x, block y, block angle, agent vx, agent vy]; proprio (4,):
[agent x, agent y, agent vx, agent vy]. Success: ||goal[:4] - state[:4]|| < 20 and the wrapped
angle difference < pi / 9. Rendering: 512 canvas (white, light-grey walls outside the arena, the
fixed light-green target T at (256, 256, pi / 4), grey T, blue agent) area-averaged to the render
size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pymunk
from PIL import Image, ImageDraw

from quantwm.envs.base import EnvSpec, QuantWMEnv, resize_frame, wrapped_angle_diff

WORLD_SIZE = 512
ARENA_LO, ARENA_HI = 5.0, 506.0
WALL_THICKNESS = 100.0
AGENT_RADIUS = 15.0
SIM_HZ, SUBSTEPS = 100, 10
DT = 1.0 / SIM_HZ
KP, KV = 100.0, 20.0
ACTION_SCALE = 100.0
ACTION_CLIP = 10.0  # |100 * 10| exceeds the arena: clipping changes no target, it only avoids overflow
TARGET_LO, TARGET_HI = ARENA_LO + AGENT_RADIUS, ARENA_HI - AGENT_RADIUS
AGENT_MAX_SPEED = 800.0
BLOCK_MAX_SPEED = 800.0
BLOCK_MAX_SPIN = 8.0
AGENT_MASS, BLOCK_MASS = 10.0, 1.0
GROUND_FRICTION_FORCE = 1500.0
GROUND_FRICTION_TORQUE = GROUND_FRICTION_FORCE * 28.0  # pushes > ~28 units off the centre of mass turn the T
CONTACT_FRICTION = 0.5
SOLVER_ITERATIONS = 20
GOAL_POSE = np.array([256.0, 256.0, math.pi / 4])
SUCCESS_POS_TOL, SUCCESS_ANGLE_TOL = 20.0, math.pi / 9

# T geometry in the body frame (origin at the centre of mass): per box (centre x, centre y, half w, half h).
_BAR_AREA, _STEM_AREA = 120.0 * 30.0, 30.0 * 90.0
_CENTROID_Y = (_BAR_AREA * 15.0 + _STEM_AREA * 75.0) / (_BAR_AREA + _STEM_AREA)
TEE_BOXES = np.array([[0.0, 15.0 - _CENTROID_Y, 60.0, 15.0], [0.0, 75.0 - _CENTROID_Y, 15.0, 45.0]])
_CORNER_SIGNS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
TEE_LOCAL_POLYS = TEE_BOXES[:, None, :2] + _CORNER_SIGNS[None] * TEE_BOXES[:, None, 2:]  # (2, 4, 2)


def _tee_moment() -> float:
    total = _BAR_AREA + _STEM_AREA
    moment = 0.0
    for (cx, cy, hw, hh), area in zip(TEE_BOXES, (_BAR_AREA, _STEM_AREA)):
        m = BLOCK_MASS * area / total
        moment += m * ((2 * hw) ** 2 + (2 * hh) ** 2) / 12.0 + m * (cx**2 + cy**2)
    return moment


BLOCK_MOMENT = _tee_moment()

PUSHT_SPEC = EnvSpec(
    name="pusht",
    gym_id="quantwm/PushT-v0",
    proprio_dim=4,
    state_dim=7,
    default_render_size=128,
    num_hist=3,
    success_pos_tol=SUCCESS_POS_TOL,
    success_angle_tol=SUCCESS_ANGLE_TOL,
    success_rule="||goal[0:4] - state[0:4]|| < 20 (agent and block xy) and wrapped |goal[4] - state[4]| < pi/9",
)


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def tee_polygons(pose: np.ndarray) -> np.ndarray:
    """World corners of the T's two boxes for a block pose (x, y, angle): (2, 4, 2)."""
    return pose[:2] + TEE_LOCAL_POLYS @ _rotation(float(pose[2])).T


def tee_signed_distance(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Signed distance from points (..., 2) to the T at pose (3,): > 0 outside, < 0 inside -> (...)."""
    local = (np.asarray(points, dtype=np.float64) - pose[:2]) @ _rotation(float(pose[2]))
    q = np.abs(local[..., None, :] - TEE_BOXES[:, :2]) - TEE_BOXES[:, 2:]  # (..., 2 boxes, 2)
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
    inside = np.minimum(q.max(axis=-1), 0.0)
    return (outside + inside).min(axis=-1)


def _wall_polys() -> list[list[tuple[float, float]]]:
    lo, hi, t = ARENA_LO, ARENA_HI, WALL_THICKNESS
    boxes = [(lo - t, lo - t, lo, hi + t), (hi, lo - t, hi + t, hi + t), (lo - t, lo - t, hi + t, lo), (lo - t, hi, hi + t, hi + t)]
    return [[(x0, y0), (x1, y0), (x1, y1), (x0, y1)] for x0, y0, x1, y1 in boxes]


_WHITE, _WALL_GREY, _GOAL_GREEN = (255, 255, 255), (211, 211, 211), (144, 238, 144)
_BLOCK_GREY, _AGENT_BLUE = (119, 136, 153), (65, 105, 225)


def _draw_tee(draw: ImageDraw.ImageDraw, pose: np.ndarray, colour: tuple[int, int, int]) -> None:
    for poly in tee_polygons(pose):
        draw.polygon([(float(x), float(y)) for x, y in poly], fill=colour)


def _background() -> Image.Image:
    """The static 512 x 512 canvas: white arena, light-grey walls, light-green target T."""
    image = Image.new("RGB", (WORLD_SIZE, WORLD_SIZE), _WHITE)
    draw = ImageDraw.Draw(image)
    lo, hi = int(ARENA_LO), int(ARENA_HI)
    for box in ((0, 0, lo - 1, WORLD_SIZE), (hi, 0, WORLD_SIZE, WORLD_SIZE), (0, 0, WORLD_SIZE, lo - 1), (0, hi, WORLD_SIZE, WORLD_SIZE)):
        draw.rectangle(box, fill=_WALL_GREY)
    _draw_tee(draw, GOAL_POSE, _GOAL_GREEN)
    return image


def render_pusht_frame(state: np.ndarray, size: int, background: Image.Image | None = None) -> np.ndarray:
    """Frame of a state (7,) at ``size`` px: uint8 (size, size, 3)."""
    image = (background if background is not None else _background()).copy()
    draw = ImageDraw.Draw(image)
    _draw_tee(draw, state[2:5], _BLOCK_GREY)
    x, y, r = float(state[0]), float(state[1]), AGENT_RADIUS
    draw.ellipse((x - r, y - r, x + r, y + r), fill=_AGENT_BLUE)
    return resize_frame(image, size)


class PushTEnv(QuantWMEnv):
    """PushT env (see the module docstring). Observation: {"visual": uint8 (S, S, 3), "proprio": float32 (4,)}."""

    env_spec = PUSHT_SPEC
    proprio_index = (0, 1, 5, 6)

    def __init__(self, render_size: int | None = None, render_mode: str = "rgb_array") -> None:
        super().__init__(render_size, render_mode)
        self._background = _background()

    def is_success(self, goal_state: np.ndarray, state: np.ndarray) -> bool:
        """Agent + block position error < 20 and wrapped block angle error < pi/9."""
        goal, cur = np.asarray(goal_state, dtype=np.float64), np.asarray(state, dtype=np.float64)
        pos_ok = np.linalg.norm(goal[:4] - cur[:4]) < SUCCESS_POS_TOL
        return bool(pos_ok and wrapped_angle_diff(goal[4], cur[4]) < SUCCESS_ANGLE_TOL)

    def state_distance(self, goal_state: np.ndarray, state: np.ndarray) -> float:
        """sqrt(||d agent+block xy||^2 + (20 / (pi/9) * wrapped d angle)^2): one angle tolerance counts as 20 units."""
        goal, cur = np.asarray(goal_state, dtype=np.float64), np.asarray(state, dtype=np.float64)
        angle_units = SUCCESS_POS_TOL / SUCCESS_ANGLE_TOL * wrapped_angle_diff(goal[4], cur[4])
        return float(math.sqrt(float(np.sum((goal[:4] - cur[:4]) ** 2)) + angle_units**2))

    def _sample_state(self, rng: np.random.Generator) -> np.ndarray:
        while True:
            agent = rng.uniform(50.0, 462.0, 2)
            block = np.array([*rng.uniform(100.0, 412.0, 2), rng.uniform(-math.pi, math.pi)])
            if tee_signed_distance(block, agent) > AGENT_RADIUS + 10.0:
                return np.concatenate([agent, block, np.zeros(2)])

    def _validate_state(self, state: np.ndarray) -> None:
        for name, xy in (("agent", state[0:2]), ("block", state[2:4])):
            if not (np.all(xy >= ARENA_LO) and np.all(xy <= ARENA_HI)):
                raise ValueError(f"{name} position {xy} outside the arena [{ARENA_LO}, {ARENA_HI}]")

    def _set_state(self, state: np.ndarray) -> None:
        space = pymunk.Space()
        space.iterations = SOLVER_ITERATIONS
        table = space.static_body
        walls = [pymunk.Poly(table, verts) for verts in _wall_polys()]
        block = pymunk.Body(BLOCK_MASS, BLOCK_MOMENT)
        block.position = (float(state[2]), float(state[3]))
        block.angle = float(state[4])
        tee = [pymunk.Poly(block, [tuple(v) for v in poly]) for poly in TEE_LOCAL_POLYS.tolist()]
        agent = pymunk.Body(AGENT_MASS, math.inf)
        agent.position = (float(state[0]), float(state[1]))
        agent.velocity = (float(state[5]), float(state[6]))
        disc = pymunk.Circle(agent, AGENT_RADIUS)
        for shape in (*walls, *tee, disc):
            shape.friction = CONTACT_FRICTION
        slide = pymunk.PivotJoint(table, block, (0.0, 0.0), (0.0, 0.0))
        slide.max_bias, slide.max_force = 0.0, GROUND_FRICTION_FORCE
        spin = pymunk.GearJoint(table, block, 0.0, 1.0)
        spin.max_bias, spin.max_force = 0.0, GROUND_FRICTION_TORQUE
        space.add(*walls, block, *tee, agent, disc, slide, spin)
        self._space, self._agent, self._block = space, agent, block

    def _get_state(self) -> np.ndarray:
        a, b = self._agent, self._block
        return np.array([a.position.x, a.position.y, b.position.x, b.position.y, b.angle, a.velocity.x, a.velocity.y])

    def _advance(self, action: np.ndarray) -> None:
        agent, block = self._agent, self._block
        step = ACTION_SCALE * np.clip(action, -ACTION_CLIP, ACTION_CLIP)
        tx = min(max(agent.position.x + float(step[0]), TARGET_LO), TARGET_HI)
        ty = min(max(agent.position.y + float(step[1]), TARGET_LO), TARGET_HI)
        for _ in range(SUBSTEPS):
            (px, py), (vx0, vy0) = agent.position, agent.velocity
            vx = vx0 + (KP * (tx - px) - KV * vx0) * DT
            vy = vy0 + (KP * (ty - py) - KV * vy0) * DT
            speed = math.hypot(vx, vy)
            if speed > AGENT_MAX_SPEED:
                vx, vy = vx * AGENT_MAX_SPEED / speed, vy * AGENT_MAX_SPEED / speed
            # Apply the PD velocity change as a force so it goes through the contact solver (chipmunk
            # integrates positions with the solved velocity of the previous substep).
            agent.force = ((vx - vx0) * AGENT_MASS / DT, (vy - vy0) * AGENT_MASS / DT)
            self._space.step(DT)
            speed = block.velocity.length
            if speed > BLOCK_MAX_SPEED:
                block.velocity = block.velocity * (BLOCK_MAX_SPEED / speed)
            block.angular_velocity = min(max(block.angular_velocity, -BLOCK_MAX_SPIN), BLOCK_MAX_SPIN)

    def _render_frame(self) -> np.ndarray:
        return render_pusht_frame(self._get_state(), self.render_size, self._background)


# ---- data collection ---------------------------------------------------------------------------
def _contact_candidates(spacing: float = 6.0, corner_gap: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Points on the T's outer boundary (body frame) where the agent fits when touching: ((K, 2), (K, 2) normals)."""
    origin = np.zeros(3)
    points, normals = [], []
    for cx, cy, hw, hh in TEE_BOXES:
        for axis, half, other_half in ((0, hw, hh), (1, hh, hw)):
            for sign in (-1.0, 1.0):
                n_along = max(1, int((2 * (other_half - corner_gap)) // spacing) + 1)
                for t in np.linspace(-other_half + corner_gap, other_half - corner_gap, n_along):
                    p, n = np.zeros(2), np.zeros(2)
                    p[axis], p[1 - axis] = sign * half, t
                    n[axis] = sign
                    p += (cx, cy)
                    on_boundary = tee_signed_distance(origin, p + n) > 0.5
                    agent_fits = tee_signed_distance(origin, p + n * (AGENT_RADIUS + 2.0)) > AGENT_RADIUS + 1.0
                    if on_boundary and agent_fits:
                        points.append(p)
                        normals.append(n)
    return np.array(points), np.array(normals)


CONTACT_POINTS, CONTACT_NORMALS = _contact_candidates()


@dataclass
class _PushBout:
    """One push: walk round to a contact point, push for ``push_steps`` steps, maybe back off."""

    contact: int
    push_steps: int
    push_angle: float
    retreat_steps: int
    phase: str = "far"
    steps: int = 0


class PushTDataPolicy:
    """Scripted noisy pusher for data collection. Each bout picks a sub-goal position for the T and a
    contact point whose push direction points towards it (any reachable contact point in 30 % of
    bouts, for rotations), walks round the T to it (orbiting when the straight way is blocked),
    pushes for 6-25 steps with a fixed random deviation of up to 25 degrees, and sometimes backs off.
    Per-episode push speed, travel speed and Gaussian noise; 3 % of actions are random.
    Call with the state (7,) -> relative action (2,) = (target - agent) / 100."""

    push_offset = (6.0, 14.0)  # target offset while pushing (steady agent speed ~ half of it per step)
    travel_offset = (20.0, 40.0)
    noise_std = (1.0, 4.0)
    push_steps = (6, 26)
    max_push_angle = math.radians(25.0)
    random_face_prob = 0.3
    random_action_prob = 0.03
    retreat_prob = 0.5
    subgoal_range = (130.0, 382.0)
    approach_gap = 25.0
    orbit_radius = 105.0
    orbit_step = 0.6  # radians per step
    approach_timeout = 40

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._push = rng.uniform(*self.push_offset)
        self._travel = rng.uniform(*self.travel_offset)
        self._noise = rng.uniform(*self.noise_std)
        self._bout: _PushBout | None = None

    def __call__(self, state: np.ndarray) -> np.ndarray:
        agent, pose = state[:2], state[2:5]
        if self._bout is None:
            self._bout = self._new_bout(pose)
        offset = self._bout_offset(agent, pose) + self._rng.normal(0.0, self._noise, 2)
        if self._rng.random() < self.random_action_prob:
            offset = self._rng.normal(0.0, self._travel, 2)
        return offset / ACTION_SCALE

    def _new_bout(self, pose: np.ndarray) -> _PushBout:
        rng, rot = self._rng, _rotation(float(pose[2]))
        contacts, normals = pose[:2] + CONTACT_POINTS @ rot.T, CONTACT_NORMALS @ rot.T
        far = contacts + normals * (AGENT_RADIUS + self.approach_gap)
        lo, hi = TARGET_LO + 3.0, TARGET_HI - 3.0
        reachable = np.all((far >= lo) & (far <= hi), axis=1)
        heading = rng.uniform(*self.subgoal_range, 2) - pose[:2]
        aligned = -normals @ heading > 0.5 * np.linalg.norm(heading)
        pool = reachable if rng.random() < self.random_face_prob else reachable & aligned
        for candidates in (pool, reachable, np.ones_like(reachable)):
            if candidates.any():
                break
        return _PushBout(
            contact=int(rng.choice(np.flatnonzero(candidates))),
            push_steps=int(rng.integers(*self.push_steps)),
            push_angle=float(rng.uniform(-self.max_push_angle, self.max_push_angle)),
            retreat_steps=int(rng.integers(2, 5)) if rng.random() < self.retreat_prob else 0,
        )

    def _bout_offset(self, agent: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Target offset for this step; advances the bout's phase (far -> near -> push -> retreat)."""
        bout, rot = self._bout, _rotation(float(pose[2]))
        contact = pose[:2] + rot @ CONTACT_POINTS[bout.contact]
        normal = rot @ CONTACT_NORMALS[bout.contact]
        bout.steps += 1
        if bout.phase in ("far", "near") and bout.steps > self.approach_timeout:
            self._bout = None
            return np.zeros(2)
        if bout.phase == "far":
            waypoint = contact + normal * (AGENT_RADIUS + self.approach_gap)
            if np.linalg.norm(waypoint - agent) < 6.0:
                bout.phase = "near"
            elif self._blocked(agent, waypoint, pose):
                return _clip_norm(self._orbit_point(agent, waypoint, pose) - agent, self._travel)
            else:
                return _clip_norm(waypoint - agent, self._travel)
        if bout.phase == "near":
            waypoint = contact + normal * (AGENT_RADIUS + 1.0)
            if np.linalg.norm(waypoint - agent) < 3.0:
                bout.phase, bout.steps = "push", 0
            else:
                return _clip_norm(waypoint - agent, self._travel)
        if bout.phase == "push":
            if bout.steps > bout.push_steps:
                bout.phase, bout.steps = "retreat", 0
            else:
                direction = _rotation(bout.push_angle) @ -normal
                return _clip_norm(contact + normal * (AGENT_RADIUS - 1.0) + direction * self._push - agent, 2 * self._push)
        if bout.steps > bout.retreat_steps:
            self._bout = None
            return np.zeros(2)
        return normal * 10.0

    def _blocked(self, agent: np.ndarray, waypoint: np.ndarray, pose: np.ndarray) -> bool:
        """Whether the straight way from the agent to the waypoint runs into the T."""
        path = agent + np.linspace(0.0, 1.0, 9)[:, None] * (waypoint - agent)
        return bool(tee_signed_distance(pose, path).min() < AGENT_RADIUS + 2.0)

    def _orbit_point(self, agent: np.ndarray, waypoint: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Next point on a circle round the T, turning from the agent's bearing towards the waypoint's."""
        rel_a, rel_w = agent - pose[:2], waypoint - pose[:2]
        bearing = math.atan2(rel_a[1], rel_a[0])
        turn = math.remainder(math.atan2(rel_w[1], rel_w[0]) - bearing, 2 * math.pi)
        bearing += max(-self.orbit_step, min(self.orbit_step, turn))
        return pose[:2] + self.orbit_radius * np.array([math.cos(bearing), math.sin(bearing)])


def _clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v * (limit / norm) if norm > limit else v
