"""Datasets (generation, splits, round trip, errors) and evaluation episodes."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import quantwm.envs.dataset as dataset_module
from quantwm.envs import make_env
from quantwm.envs.dataset import (
    DATA_POLICIES,
    DEFAULT_DATASETS,
    SPLITS,
    DatasetConfig,
    data_policy,
    dataset_dir,
    default_dataset_config,
    generate_dataset,
    load_meta,
    load_plan_meta,
    load_split,
    record_episode,
    regenerate_split,
    replay_episode,
    write_plan_replays,
)
from quantwm.envs.episodes import GOAL_STEPS, goal_motion_stats, make_eval_episodes
from quantwm.envs.wall import (
    DOOR_RANGE, LEFT_ROOM_X, RIGHT_ROOM_X, ROOM_Y, WALL_X0, WALL_X1, WallDataPolicy, detour_ratio, door_path_actions,
)

WALL_CFG = DatasetConfig(env="wall", n_episodes=10, episode_len=12, render_size=16, seed=5)
PUSHT_CFG = DatasetConfig(env="pusht", n_episodes=10, episode_len=60, render_size=16, seed=1, split_fractions=(0.5, 0.3, 0.2))


@pytest.fixture(scope="module")
def wall_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(WALL_CFG, tmp_path_factory.mktemp("data") / "wall")


@pytest.fixture(scope="module")
def pusht_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(PUSHT_CFG, tmp_path_factory.mktemp("data") / "pusht")


# ---- datasets ------------------------------------------------------------------------------------
def test_split_layout_and_dtypes(wall_dir: Path) -> None:
    assert sorted(p.name for p in wall_dir.iterdir()) == ["calib.npz", "meta.json", "train.npz", "val.npz"]
    meta = json.loads((wall_dir / "meta.json").read_text())
    assert meta["config"]["n_episodes"] == 10 and meta["generation_seconds"] >= 0
    expected_episodes = {"train": 8, "val": 1, "calib": 1}
    for split in SPLITS:
        data = load_split(wall_dir, split)
        n = expected_episodes[split] * 13
        assert data.n_episodes == expected_episodes[split] == meta["counts"][split]["episodes"]
        assert data.frames.shape == (n, 16, 16, 3) and data.frames.dtype == np.uint8
        assert data.proprio.shape == (n, 2) and data.proprio.dtype == np.float32
        assert data.actions.shape == (n, 2) and data.actions.dtype == np.float32
        assert data.states.shape == (n, 3) and data.states.dtype == np.float64
        assert data.episode_offsets.dtype == np.int64 and data.episode_offsets[-1] == n
        last_rows = data.episode_offsets[1:] - 1
        assert np.all(data.actions[last_rows] == 0)
        assert np.array_equal(data.proprio, data.states[:, :2].astype(np.float32))


def test_splits_are_disjoint_episode_ranges(wall_dir: Path) -> None:
    firsts = []
    for split in SPLITS:
        data = load_split(wall_dir, split, frames=False)
        assert data.frames is None
        firsts += [tuple(data.states[data.episode(e)][0]) for e in range(data.n_episodes)]
    assert len(set(firsts)) == WALL_CFG.n_episodes
    ranges = WALL_CFG.split_ranges()
    assert [list(r) for r in ranges.values()] == [list(range(8)), [8], [9]]


def test_round_trip_matches_a_fresh_recording(wall_dir: Path) -> None:
    """Stored rows equal a re-recording of the same global episode, and the actions replay to the states."""
    val = load_split(wall_dir, "val")
    rec = record_episode(make_env("wall", 16), DATA_POLICIES["wall"], WALL_CFG.seed, 8, WALL_CFG.episode_len)
    rows = val.episode(0)
    for key in ("frames", "proprio", "actions", "states"):
        assert np.array_equal(getattr(val, key)[rows], rec[key]), key
    env = make_env("wall", 16)
    env.reset(options={"state": val.states[rows.start]})
    for i in range(rows.start, rows.stop - 1):
        assert np.array_equal(env.simulate(val.actions[i]), val.states[i + 1])


def test_plan_replays_are_an_extra_split_of_any_episode_lengths(tmp_path: Path) -> None:
    """Replaying a recorded episode's actions from its first state reproduces it exactly; replays of
    different lengths load as a split whose episodes concatenate after ``train``'s."""
    data = generate_dataset(WALL_CFG, tmp_path / "wall")
    env = make_env("wall", 16)
    rec = record_episode(env, DATA_POLICIES["wall"], WALL_CFG.seed, 2, WALL_CFG.episode_len)
    again = replay_episode(env, rec["states"][0], rec["actions"][:-1])
    for key in ("frames", "proprio", "actions", "states"):
        assert np.array_equal(again[key], rec[key]), key
    with pytest.raises(FileNotFoundError, match="--plans"):
        load_split(data, "plans")
    starts = [rec["states"][0], rec["states"][5]]
    write_plan_replays(data, starts, [rec["actions"][:3], rec["actions"][5:12]], {"what": "test"})
    assert load_plan_meta(data)["source"] == {"what": "test"}
    plans = load_split(data, "plans")
    assert plans.episode_offsets.tolist() == [0, 4, 12]
    assert np.array_equal(plans.frames[plans.episode(1)], rec["frames"][5:13])
    train = load_split(data, "train")
    both = train.concat(plans)
    assert both.n_episodes == train.n_episodes + 2
    assert np.array_equal(both.states[both.episode(train.n_episodes + 1)], rec["states"][5:13])
    assert np.array_equal(both.frames[both.episode(0)], train.frames[train.episode(0)])
    with pytest.raises(ValueError, match="one start state per action sequence"):
        write_plan_replays(data, starts, [rec["actions"][:3]], {})
    assert load_split(data, "plans").n_episodes == 2  # bad input leaves the finished split alone


def test_generation_is_deterministic_and_atomic(wall_dir: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    again = generate_dataset(WALL_CFG, tmp_path / "wall", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 10) for i in range(1, 11)]
    assert not list(again.glob("*.tmp"))
    for split in SPLITS:
        a, b = load_split(wall_dir, split), load_split(again, split)
        for key in ("frames", "proprio", "actions", "states", "episode_offsets"):
            assert np.array_equal(getattr(a, key), getattr(b, key))
    bigger = DatasetConfig(env="wall", n_episodes=12, episode_len=12, render_size=16, seed=5)
    rec = record_episode(make_env("wall", 16), DATA_POLICIES["wall"], bigger.seed, 3, bigger.episode_len)
    assert np.array_equal(rec["states"], load_split(wall_dir, "train").states[load_split(wall_dir, "train").episode(3)])


def test_mapped_frames_equal_the_archive_and_follow_a_regenerated_split(tmp_path: Path) -> None:
    """Training's memory-mapped frames equal the archived ones; the extracted copy is reused while
    the archive is older, and extracted again once the split is regenerated with other frames."""
    data = generate_dataset(WALL_CFG, tmp_path / "wall")
    archive, copy = data / "train.npz", data / "train.frames.npy"
    os.utime(archive, ns=(archive.stat().st_atime_ns, archive.stat().st_mtime_ns - 10**9))  # written a while ago
    mapped = load_split(data, "train", mmap=True)
    assert isinstance(mapped.frames, np.memmap) and not mapped.frames.flags.writeable
    first = np.array(mapped.frames)
    assert np.array_equal(first, load_split(data, "train").frames)
    inode = copy.stat().st_ino
    assert np.array_equal(load_split(data, "train", mmap=True).frames, first) and copy.stat().st_ino == inode
    os.utime(copy, ns=(copy.stat().st_atime_ns, archive.stat().st_mtime_ns))  # extracted before the split changed
    generate_dataset(replace(WALL_CFG, seed=6), data)
    again = load_split(data, "train", mmap=True).frames
    assert np.array_equal(again, load_split(data, "train").frames) and not np.array_equal(again, first)
    assert not list(data.glob("*.tmp"))


def test_extractions_started_together_both_succeed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trainings started at once on a fresh dataset all extract the frames copy: one that starts
    while another is mid-copy must not take the other's temporary file from under it."""
    data = generate_dataset(WALL_CFG, tmp_path / "wall")
    copy_file, started = shutil.copyfileobj, []

    def copy_while_another_starts(src, dst, length=0):  # the second extraction runs inside the first's copy
        if not started:
            started.append(True)
            load_split(data, "train", mmap=True)
        copy_file(src, dst, length)

    monkeypatch.setattr(dataset_module.shutil, "copyfileobj", copy_while_another_starts)
    frames = load_split(data, "train", mmap=True).frames
    assert started and np.array_equal(frames, load_split(data, "train").frames)
    assert not list(data.glob("*.tmp"))


def test_load_split_errors(wall_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train.*val.*calib"):
        load_split(wall_dir, "test")
    with pytest.raises(FileNotFoundError, match="quantwm data --env wall"):
        load_split(tmp_path / "wall", "train")
    with pytest.raises(IndexError):
        load_split(wall_dir, "val").episode(1)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="pusht.*wall"):
        DatasetConfig(env="maze", n_episodes=10, episode_len=5, render_size=16, seed=0).validate()
    with pytest.raises(ValueError, match="positive"):
        DatasetConfig(env="wall", n_episodes=0, episode_len=5, render_size=16, seed=0).validate()
    with pytest.raises(ValueError, match="empty"):
        DatasetConfig(env="wall", n_episodes=3, episode_len=5, render_size=16, seed=0).validate()
    with pytest.raises(ValueError, match="summing to 1"):
        DatasetConfig(env="wall", n_episodes=30, episode_len=5, render_size=16, seed=0, split_fractions=(0.5, 0.5, 0.5)).validate()
    with pytest.raises(ValueError, match="pusht.*wall"):
        dataset_dir("maze")
    assert dataset_dir("wall") == Path("cache/data/wall")
    assert default_dataset_config("pusht") == DEFAULT_DATASETS["pusht"]
    for name, cfg in DEFAULT_DATASETS.items():
        cfg.validate()
        assert cfg.env == name and cfg.render_size == make_env(name).render_size


# ---- evaluation episodes ------------------------------------------------------------------------------
def test_wall_episodes_rooms_and_ranges() -> None:
    episodes = make_eval_episodes("wall", 40, seed=99)
    assert [ep.index for ep in episodes] == list(range(40))
    for ep in episodes:
        (sx, sy, sd), (gx, gy, gd) = ep.start_state, ep.goal_state
        assert sd == gd and DOOR_RANGE[0] <= sd <= DOOR_RANGE[1]
        in_left = [LEFT_ROOM_X[0] <= x <= LEFT_ROOM_X[1] for x in (sx, gx)]
        in_right = [RIGHT_ROOM_X[0] <= x <= RIGHT_ROOM_X[1] for x in (sx, gx)]
        assert in_left in ([True, False], [False, True]) and in_right == [not v for v in in_left]
        assert all(ROOM_Y[0] <= y <= ROOM_Y[1] for y in (sy, gy))
    assert len({ep.seed for ep in episodes}) == 40


@pytest.mark.parametrize("env", ["wall", "pusht"])
def test_episodes_depend_only_on_seed_and_index(env: str, pusht_dir: Path) -> None:
    few = make_eval_episodes(env, 3, seed=7, data_dir=pusht_dir)
    many = make_eval_episodes(env, 6, seed=7, data_dir=pusht_dir)
    for a, b in zip(few, many):
        assert (a.index, a.seed) == (b.index, b.seed)
        assert np.array_equal(a.start_state, b.start_state) and np.array_equal(a.goal_state, b.goal_state)
    other = make_eval_episodes(env, 3, seed=8, data_dir=pusht_dir)
    assert not np.array_equal(few[0].start_state, other[0].start_state)


def test_episode_errors(pusht_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        make_eval_episodes("wall", 0, seed=1)
    with pytest.raises(ValueError, match="pusht.*wall"):
        make_eval_episodes("maze", 3, seed=1)
    with pytest.raises(ValueError, match="train.*val.*calib"):
        make_eval_episodes("pusht", 3, seed=1, data_dir=pusht_dir, split="test")
    with pytest.raises(FileNotFoundError, match="quantwm data --env pusht"):
        make_eval_episodes("pusht", 3, seed=1, data_dir=tmp_path / "pusht")
    with pytest.raises(ValueError, match="PushT"):
        goal_motion_stats(make_eval_episodes("wall", 2, seed=1))


def test_wall_reference_actions_reach_the_goal_through_the_door() -> None:
    env = make_env("wall", 16)
    for ep in make_eval_episodes("wall", 40, seed=99):
        assert ep.reference_actions.shape == (GOAL_STEPS, 2)
        env.reset(options={"state": ep.start_state})
        xs = []
        for action in ep.reference_actions:
            env.step(action)
            xs.append(env.state[0])
        assert np.allclose(env.state, ep.goal_state, atol=1e-9)  # never stopped by a wall on the way
        assert min(xs) < 29 and max(xs) > 35  # it crossed the middle wall
    same_room = np.array([10.0, 10.0, 30.0]), np.array([20.0, 50.0, 30.0])
    np.testing.assert_allclose(door_path_actions(*same_room, 4), np.tile([[1.25, 5.0]], (4, 1)))  # straight line
    with pytest.raises(ValueError, match="steps must be >= 1"):
        door_path_actions(*same_room, 0)


def test_detour_ratio_measures_the_way_round_the_wall() -> None:
    door = 30.0
    assert detour_ratio(np.array([10.0, 10.0, door]), np.array([20.0, 50.0, door])) == pytest.approx(1.0)  # one room
    assert detour_ratio(np.array([10.0, door, door]), np.array([50.0, door, door])) == pytest.approx(1.0)  # level with the door
    start, goal = np.array([10.0, 50.0, 12.0]), np.array([50.0, 50.0, 12.0])  # both 38 px below the door
    way = np.hypot(WALL_X0 - 3 - 10, 38) + (WALL_X1 - WALL_X0 + 6) + np.hypot(50 - WALL_X1 - 3, 38)
    assert detour_ratio(start, goal) == pytest.approx(way / 40.0) and way / 40.0 > 2


def test_pusht_goals_replay_recorded_actions(pusht_dir: Path) -> None:
    val = load_split(pusht_dir, "val", frames=False)
    env = make_env("pusht", 16)
    for ep in make_eval_episodes("pusht", 5, seed=3, data_dir=pusht_dir):
        row = int(np.flatnonzero(np.all(val.states == ep.start_state, axis=1))[0])
        env.reset(options={"state": ep.start_state})
        assert np.array_equal(ep.reference_actions, val.actions[row : row + GOAL_STEPS])  # the demonstration
        for action in ep.reference_actions:
            env.step(action)
        assert np.array_equal(env.state, ep.goal_state)
        e = int(np.searchsorted(val.episode_offsets, row, side="right") - 1)
        assert row + GOAL_STEPS < val.episode_offsets[e + 1]  # the window stays inside its episode


def test_pusht_goals_require_moving_the_t(pusht_dir: Path) -> None:
    episodes = make_eval_episodes("pusht", 20, seed=99, data_dir=pusht_dir)
    stats = goal_motion_stats(episodes)
    assert stats["frac_requires_block_motion"] == 1.0  # windows are redrawn until the T moves (>= 0.8 required)
    env = make_env("pusht", 16)
    idle_failures = 0
    for ep in episodes:  # the do-nothing policy must fail
        env.reset(options={"state": ep.start_state})
        for _ in range(50):
            env.simulate(np.zeros(2))
        idle_failures += not env.is_success(ep.goal_state, env.state)
    assert idle_failures / len(episodes) >= 0.8


def test_regenerated_split_equals_the_stored_one(tmp_path) -> None:
    """Evaluation can run before `quantwm data`: a split recomputed without frames is the stored one."""
    cfg = replace(DEFAULT_DATASETS["pusht"], n_episodes=10, episode_len=30, render_size=32)
    stored = load_split(generate_dataset(cfg, tmp_path / "pusht"), "val", frames=False)
    again = regenerate_split(cfg, "val")
    for key in ("proprio", "actions", "states", "episode_offsets"):
        np.testing.assert_array_equal(getattr(again, key), getattr(stored, key), err_msg=key)
    assert again.frames is None


def test_data_policy_settings_change_the_episodes_and_are_recorded(tmp_path: Path) -> None:
    """``policy_overrides`` (`quantwm data --set`) reach the scripted policy, are recorded in meta.json,
    regenerate the same episodes, and leave the default policy alone."""
    default = DatasetConfig(env="wall", n_episodes=20, episode_len=60, render_size=16, seed=5)
    cfg = replace(default, policy_overrides=("charge_prob=1.0", "charge_steps=(30, 40)"))
    out = generate_dataset(cfg, tmp_path / "wall")
    assert load_meta(out)["config"]["policy_overrides"] == ["charge_prob=1.0", "charge_steps=(30, 40)"]
    assert (WallDataPolicy.charge_prob, WallDataPolicy.charge_steps) == (0.08, (6, 40))
    assert (data_policy(cfg).charge_prob, data_policy(cfg).charge_steps) == (1.0, (30, 40))
    changed = load_split(out, "train", frames=False)
    np.testing.assert_array_equal(regenerate_split(cfg, "train").actions, changed.actions)

    def pressed(states: np.ndarray) -> float:  # share of frames with the dot against the middle wall, off the door
        at_face = np.minimum(np.abs(states[:, 0] - WALL_X0), np.abs(states[:, 0] - WALL_X1)) < 0.6
        return float((at_face & (np.abs(states[:, 1] - states[:, 2]) > 4)).mean())

    # charging at the other room all the time holds the dot against the wall more often
    assert pressed(changed.states) > pressed(regenerate_split(default, "train").states) + 0.05
    with pytest.raises(ValueError, match="valid: charge_noise, charge_prob"):
        replace(WALL_CFG, policy_overrides=("charge_rate=1",)).validate()


def test_wall_data_policy_crosses_the_door_and_holds_long_pushes_against_the_wall() -> None:
    """The data must show door crossings, pushes held against the middle wall for 6+ planner steps
    (30 env steps) away from the door, and jittering pushes against it (actions that change by more
    than 2 between env steps, as CEM's white-noise samples do): a model trained without them
    imagines slow sustained pushes, and jittering plans, through the wall, and CEM's best samples
    exploit exactly that."""
    env = make_env("wall", render_size=16)
    crossed, long_presses, jittered = 0, 0, 0
    for e in range(200):
        rng = np.random.default_rng(e)
        env.reset(seed=e)
        policy, states, actions = WallDataPolicy(rng), [env.state.copy()], []
        for _ in range(60):
            actions.append(policy(states[-1]))
            env.step(actions[-1])
            states.append(env.state.copy())
        s, a = np.array(states), np.array(actions)
        crossed += len(set(np.sign(s[:, 0] - 32))) > 1
        at_wall = (np.minimum(np.abs(s[:, 0] - WALL_X0), np.abs(s[:, 0] - WALL_X1)) < 0.6) & (np.abs(s[:, 1] - s[:, 2]) > 4)
        still = np.r_[False, np.linalg.norm(np.diff(s[:, :2], axis=0), axis=1) < 0.3]
        run = longest = 0
        for pressed in at_wall & still:
            run = run + 1 if pressed else 0
            longest = max(longest, run)
        long_presses += longest >= 30
        into_wall = np.where(s[:-1, 0] < 32, a[:, 0] > 0, a[:, 0] < 0)
        jump = np.r_[False, np.linalg.norm(np.diff(a, axis=0), axis=1) > 2.0]
        jittered += (at_wall[:-1] & into_wall & jump).sum() >= 10
    assert crossed >= 80  # cross_prob 0.6, plus charges that meet the door
    assert long_presses >= 8  # charges of 6-20 steps at speeds >= 0.8 gave 2 in these 200 episodes
    assert jittered >= 25  # steady charges (noise 0.15) gave 0
