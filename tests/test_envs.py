"""Environments: API, determinism, exact resets, success rules, Wall collisions, PushT stability."""
from __future__ import annotations

import importlib
import math
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import quantwm.envs as envs
from quantwm.envs import ENV_NAMES, ENV_SPECS, make_env
from quantwm.envs.pusht import (
    AGENT_RADIUS,
    ARENA_HI,
    ARENA_LO,
    GOAL_POSE,
    PushTDataPolicy,
    tee_polygons,
    tee_signed_distance,
)
from quantwm.envs.wall import DOOR_HALF, DOOR_RANGE, WALL_X0, WALL_X1, WallDataPolicy, in_free_space


def _rollout(name: str, seed: int, actions: np.ndarray, options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    env = make_env(name, render_size=32)
    obs, info = env.reset(seed=seed, options=options)
    frames, states = [obs["visual"]], [info["state"]]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        assert (reward, terminated, truncated) == (0.0, False, False)
        frames.append(obs["visual"])
        states.append(info["state"])
    return np.stack(frames), np.stack(states)


# ---- API -----------------------------------------------------------------------------------------
def test_make_env_unknown_name_lists_choices() -> None:
    with pytest.raises(ValueError, match="pusht.*wall"):
        make_env("pointmaze")


@pytest.mark.parametrize("name", ENV_NAMES)
def test_spec_and_spaces(name: str) -> None:
    spec = ENV_SPECS[name]
    env = make_env(name)
    obs, info = env.reset(seed=0)
    assert (spec.frameskip, spec.action_dim) == (5, 2)
    assert obs["visual"].shape == (spec.default_render_size,) * 2 + (3,) and obs["visual"].dtype == np.uint8
    assert obs["proprio"].shape == (spec.proprio_dim,) and obs["proprio"].dtype == np.float32
    assert info["state"].shape == (spec.state_dim,) and info["state"].dtype == np.float64
    assert env.observation_space.contains(obs)
    assert np.array_equal(env.render(), obs["visual"])
    assert make_env(name, render_size=24).reset(seed=0)[0]["visual"].shape == (24, 24, 3)


def test_spec_values() -> None:
    assert (ENV_SPECS["pusht"].proprio_dim, ENV_SPECS["pusht"].state_dim, ENV_SPECS["pusht"].num_hist) == (4, 7, 3)
    assert (ENV_SPECS["wall"].proprio_dim, ENV_SPECS["wall"].state_dim, ENV_SPECS["wall"].num_hist) == (2, 3, 1)
    assert (ENV_SPECS["pusht"].default_render_size, ENV_SPECS["wall"].default_render_size) == (128, 64)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_gymnasium_registration_is_idempotent(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(envs)
    env = gymnasium.make(ENV_SPECS[name].gym_id, render_size=16)
    obs, _ = env.reset(seed=1)
    assert obs["visual"].shape == (16, 16, 3)
    env.step(np.zeros(2, dtype=np.float32))


@pytest.mark.parametrize("name", ENV_NAMES)
def test_gymnasium_env_checker(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(make_env(name, render_size=16), skip_render_check=False)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_bad_inputs(name: str) -> None:
    env = make_env(name, render_size=16)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))
    env.reset(seed=0)
    for bad in (np.zeros(3), np.array([np.nan, 0.0]), np.array([np.inf, 0.0])):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    with pytest.raises(ValueError, match="state"):
        env.reset(options={"state": np.zeros(ENV_SPECS[name].state_dim + 1)})
    with pytest.raises(ValueError, match="valid: \\['state'\\]"):
        env.reset(options={"goal": 1})
    with pytest.raises(ValueError, match="render_size"):
        make_env(name, render_size=0)


# ---- determinism and exact resets -----------------------------------------------------------------
@pytest.mark.parametrize("name", ENV_NAMES)
def test_determinism_same_seed_same_actions(name: str) -> None:
    actions = np.random.default_rng(0).normal(0.0, 1.0, (40, 2))
    frames_a, states_a = _rollout(name, 3, actions)
    frames_b, states_b = _rollout(name, 3, actions)
    assert np.array_equal(frames_a, frames_b) and np.array_equal(states_a, states_b)
    states_c = _rollout(name, 4, actions)[1]
    assert not np.array_equal(states_a[0], states_c[0])
    # reset(state=...) after other episodes reproduces a fresh rollout from that state bit for bit
    options = {"state": states_a[10]}
    env = make_env(name, render_size=32)
    env.reset(seed=9)
    for a in actions[:5]:
        env.step(a)
    env.reset(options=options)
    replay = [env.step(a)[4]["state"] for a in actions[10:20]]
    fresh = _rollout(name, 0, actions[10:20], options=options)[1][1:]
    assert np.array_equal(np.stack(replay), fresh)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_reset_with_state_is_exact(name: str) -> None:
    env = make_env(name, render_size=16)
    states = {
        "wall": np.array([10.123456789, 50.987654321, 33.3333333]),
        "pusht": np.array([100.1234567, 400.7654321, 256.111, 301.999, 7.123, -123.456, 78.9]),
    }
    obs, info = env.reset(options={"state": states[name]})
    assert np.array_equal(info["state"], states[name]) and np.array_equal(env.state, states[name])
    idx = list(env.proprio_index)
    assert np.array_equal(obs["proprio"], states[name][idx].astype(np.float32))
    env.state[0] = -1.0  # state is a copy
    assert np.array_equal(env.state, states[name])


# ---- Wall --------------------------------------------------------------------------------------------
def test_wall_success_rule() -> None:
    env = make_env("wall", render_size=16)
    goal = np.array([20.0, 30.0, 30.0])
    assert env.is_success(goal, np.array([20.0 + 4.4, 30.0, 12.0]))
    assert not env.is_success(goal, np.array([20.0 + 3.0, 30.0 + 3.5, 30.0]))  # 4.61 away
    assert env.state_distance(goal, np.array([23.0, 34.0, 30.0])) == pytest.approx(5.0)


def test_wall_invalid_states() -> None:
    env = make_env("wall", render_size=16)
    with pytest.raises(ValueError, match="inside a wall"):
        env.reset(options={"state": np.array([32.0, 10.0, 40.0])})
    with pytest.raises(ValueError, match="inside a wall"):
        env.reset(options={"state": np.array([2.0, 10.0, 40.0])})
    with pytest.raises(ValueError, match="door"):
        env.reset(options={"state": np.array([10.0, 10.0, DOOR_RANGE[1] + 1.0])})
    env.reset(options={"state": np.array([32.0, 40.0, 40.0])})  # inside the door opening is free space


def test_wall_huge_action_stops_at_wall() -> None:
    env = make_env("wall", render_size=16)
    env.reset(options={"state": np.array([20.0, 10.0, 40.0])})
    s = env.simulate(np.array([1e6, 1e-3]))
    assert WALL_X0 - 0.01 < s[0] < WALL_X0 and s[1] == pytest.approx(10.0, abs=1e-6)
    s = env.simulate(np.array([1e300, 0.0]))  # pressing on stays put, no overflow
    assert WALL_X0 - 0.01 < s[0] < WALL_X0
    env.reset(options={"state": np.array([40.0, 20.0, 40.0])})
    assert env.simulate(np.array([-1e9, -1e9]))[0] > WALL_X1


def test_wall_passes_through_door() -> None:
    env = make_env("wall", render_size=16)
    env.reset(options={"state": np.array([20.0, 37.0, 37.0])})
    s = env.simulate(np.array([1e3, 0.0]))  # straight through the door to the right border
    assert s[0] == pytest.approx(60.0, abs=0.01) and s[1] == 37.0
    env.reset(options={"state": np.array([20.0, 37.0 + DOOR_HALF + 0.5, 37.0])})
    assert env.simulate(np.array([1e3, 0.0]))[0] < WALL_X0  # just above the door: blocked


def test_wall_never_tunnels() -> None:
    """Random huge and small actions: the dot stays in free space and changes room only through the door."""
    env = make_env("wall", render_size=16)
    rng = np.random.default_rng(0)
    crossings = 0
    for episode in range(30):
        prev = env.reset(seed=episode)[1]["state"]
        door = prev[2]
        for _ in range(60):
            scale = 10.0 ** rng.integers(-1, 6)
            s = env.simulate(rng.normal(0.0, scale, 2))
            assert in_free_space(s[:2], door) and 4.0 < s[0] < 60.0 and 4.0 < s[1] < 60.0
            if (prev[0] < WALL_X0) != (s[0] < WALL_X0) or (prev[0] > WALL_X1) != (s[0] > WALL_X1):
                for face in (WALL_X0, WALL_X1):
                    if min(prev[0], s[0]) <= face <= max(prev[0], s[0]):
                        y = prev[1] + (face - prev[0]) / (s[0] - prev[0]) * (s[1] - prev[1])
                        assert abs(y - door) < DOOR_HALF
                crossings += 1
            prev = s
    assert crossings > 0


def test_wall_render_draws_dot_and_walls() -> None:
    env = make_env("wall", render_size=65)
    frame = env.reset(options={"state": np.array([15.5, 20.5, 40.0])})[0]["visual"]
    assert tuple(frame[20, 15]) == (255, 0, 0) or (frame[20, 15, 0] == 255 and frame[20, 15, 1] < 20)
    assert tuple(frame[10, 31]) == (0, 0, 0)  # middle wall
    assert tuple(frame[40, 31]) == (255, 255, 255)  # door opening
    assert tuple(frame[2, 40]) == (0, 0, 0) and tuple(frame[50, 50]) == (255, 255, 255)


def test_wall_data_policy_crosses_the_door() -> None:
    env = make_env("wall", render_size=16)
    crossed = 0
    for e in range(40):
        rng = np.random.default_rng([0, e])
        state = env.reset(seed=int(rng.integers(2**31)))[1]["state"]
        policy, xs = WallDataPolicy(rng), [state[0]]
        for _ in range(60):
            state = env.simulate(policy(state))
            xs.append(state[0])
        crossed += min(xs) < WALL_X0 and max(xs) > WALL_X1
    assert crossed / 40 >= 0.4


# ---- PushT -------------------------------------------------------------------------------------------
def test_pusht_success_rule_and_angle_wrap() -> None:
    env = make_env("pusht", render_size=16)
    goal = np.array([100.0, 100.0, 256.0, 256.0, 0.1, 0.0, 0.0])
    near = goal + np.array([10.0, 0.0, 0.0, 10.0, 0.0, 50.0, 50.0])
    assert env.is_success(goal, near)  # velocities do not count
    assert not env.is_success(goal, goal + np.array([15.0, 0.0, 15.0, 0.0, 0.0, 0.0, 0.0]))  # 21.2 away
    wrapped = goal.copy()
    wrapped[4] = 0.1 + 2 * math.pi - 0.3
    assert env.is_success(goal, wrapped)
    turned = goal.copy()
    turned[4] = 0.1 + math.pi / 9 + 0.01
    assert not env.is_success(goal, turned)
    assert env.state_distance(goal, wrapped) == pytest.approx(20.0 / (math.pi / 9) * 0.3)
    assert env.state_distance(goal, goal + np.array([3.0, 4.0, 0, 0, 2 * math.pi, 1.0, 1.0])) == pytest.approx(5.0)


def _check_pusht_invariants(s: np.ndarray) -> None:
    assert np.all(np.isfinite(s))
    assert np.all(s[:2] >= ARENA_LO + AGENT_RADIUS - 2.0) and np.all(s[:2] <= ARENA_HI - AGENT_RADIUS + 2.0)
    corners = tee_polygons(s[2:5]).reshape(-1, 2)
    assert corners.min() > ARENA_LO - 9.0 and corners.max() < ARENA_HI + 9.0, "T through a wall"
    assert tee_signed_distance(s[2:5], s[:2]) > AGENT_RADIUS - 9.0, "agent through the T"


EXTREME_ACTIONS = {
    "plus": lambda i, rng: np.array([1e3, 1e3]),
    "minus": lambda i, rng: np.array([-1e3, -1e3]),
    "alternating": lambda i, rng: np.array([1e3, -1e3]) * (-1) ** i,
    "random_huge": lambda i, rng: rng.normal(0.0, 1e3, 2),
    "random_axis": lambda i, rng: rng.choice([-1e3, 0.0, 1e3], 2) if i % 15 == 0 else None,
    "tiny_huge": lambda i, rng: np.array([1e300, -1e-300]),
}


@pytest.mark.parametrize("pattern", EXTREME_ACTIONS)
def test_pusht_stable_under_extreme_actions(pattern: str) -> None:
    env = make_env("pusht", render_size=16)
    rng = np.random.default_rng(1)
    action = np.zeros(2)
    for episode in range(3):
        env.reset(seed=episode)
        for i in range(200):
            new = EXTREME_ACTIONS[pattern](i, rng)
            action = action if new is None else new
            _check_pusht_invariants(env.simulate(action))


@pytest.mark.parametrize("angle", [0.0, math.pi / 2, math.pi, 0.7])
def test_pusht_agent_cannot_squeeze_t_through_wall(angle: float) -> None:
    env = make_env("pusht", render_size=16)
    env.reset(options={"state": np.array([256.0, 300.0, 256.0, 110.0, angle, 0.0, 0.0])})
    for _ in range(150):
        s = env.simulate(np.array([0.0, -1e3]))
        _check_pusht_invariants(s)
    assert tee_signed_distance(s[2:5], s[:2]) > AGENT_RADIUS - 3.0  # resting contact, little overlap


def test_pusht_pushes_are_quasi_static() -> None:
    env = make_env("pusht", render_size=16)
    env.reset(options={"state": np.array([256.0, 400.0, 256.0, 256.0, 0.0, 0.0, 0.0])})
    for _ in range(12):  # drive up into the stem end and push
        s = env.simulate(np.array([0.0, -0.4]))
    assert np.linalg.norm(s[2:4] - [256.0, 256.0]) > 10.0, "the push should move the T"
    for _ in range(3):  # back off
        s = env.simulate(np.array([0.0, 1.0]))
    rest = s[2:5].copy()
    for _ in range(5):
        s = env.simulate(np.array([0.0, 0.5]))
    assert np.allclose(s[2:5], rest, atol=0.5), "the T kept sliding after contact ended"


def test_pusht_render_draws_agent_block_and_goal() -> None:
    env = make_env("pusht", render_size=128)
    frame = env.reset(options={"state": np.array([100.0, 100.0, 400.0, 400.0, 0.0, 0.0, 0.0])})[0]["visual"].astype(int)
    assert frame[25, 25, 2] > 200 and frame[25, 25, 0] < 100  # blue agent at (100, 100) / 4
    assert abs(frame[100 - 7, 100, 0] - 119) < 5  # grey bar just above the centre of mass
    gx, gy = (GOAL_POSE[:2] / 4).astype(int)
    assert frame[gy, gx, 1] > frame[gy, gx, 0] + 50  # light-green target T
    assert tuple(frame[64, 0]) == (211, 211, 211) and tuple(frame[64, 30]) == (255, 255, 255)


def test_pusht_data_policy_moves_the_t() -> None:
    env = make_env("pusht", render_size=16)
    moved = 0
    for e in range(6):
        rng = np.random.default_rng([0, e])
        state = env.reset(seed=int(rng.integers(2**31)))[1]["state"]
        start, policy = state.copy(), PushTDataPolicy(rng)
        for _ in range(100):
            state = env.simulate(policy(state))
            _check_pusht_invariants(state)
        moved += np.linalg.norm(state[2:4] - start[2:4]) > 20.0 or abs(state[4] - start[4]) > math.pi / 9
    assert moved >= 5
