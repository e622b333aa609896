"""Offline datasets: scripted-policy episodes rendered to frames, split by episode into train / val / calib.

Layout of ``out_dir``: ``{train,val,calib}.npz`` (zip-deflated .npy members, readable with
``np.load``) and ``meta.json``. Per split, with N frames and E episodes:

- ``frames`` uint8 (N, S, S, 3), ``proprio`` float32 (N, proprio_dim), ``states`` float64 (N, state_dim)
- ``actions`` float32 (N, 2): the env action applied after frame i (zeros on each episode's last frame)
- ``episode_offsets`` int64 (E + 1,): episode e is rows ``offsets[e]:offsets[e + 1]``

Episode e (a global index; splits take consecutive index ranges, so they never share episodes) is
generated from ``np.random.default_rng([seed, e])`` alone, hence identical whatever ``n_episodes``.
Each split is written to a temporary file and renamed, and ``meta.json`` is written last (and
removed first), so an interrupted run never leaves a corrupt split or a dataset that looks complete.
Training maps the frames from ``SPLIT.frames.npy``, an uncompressed copy extracted on first use.

Plan replays (optional, ``plans.npz`` + ``plans.json``, same layout, episodes of any length): action
sequences a planner chose, executed in the env from the states it planned from - DAgger-style data
from where the planner takes the model, which the scripted policy may never visit. Training adds
them to ``train``; ``plans.json`` names the records and the model that planned them.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantwm.envs import ENV_NAMES, ENV_SPECS, QuantWMEnv, check_env_name, make_env
from quantwm.envs.pusht import PushTDataPolicy
from quantwm.envs.wall import WallDataPolicy
from quantwm.values import kind_of, parse, split_assignment

SPLITS = ("train", "val", "calib")
PLANS = "plans"  # the optional split of plan replays
DataPolicy = Callable[[np.ndarray], np.ndarray]
DATA_POLICIES: dict[str, Callable[[np.random.Generator], DataPolicy]] = {"pusht": PushTDataPolicy, "wall": WallDataPolicy}
_COMPRESS_LEVEL = 1  # zlib level: frames are mostly flat colour, level 1 is ~3x faster than 6 for a few % more bytes


@dataclass(frozen=True)
class DatasetConfig:
    """What to generate: ``n_episodes`` episodes of ``episode_len`` env steps (episode_len + 1 frames)."""

    env: str
    n_episodes: int
    episode_len: int
    render_size: int
    seed: int
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train / val / calib
    policy_overrides: tuple[str, ...] = ()  # "NAME=VALUE" settings of the env's data policy (``data_policy``)

    def split_ranges(self) -> dict[str, range]:
        """Consecutive global episode indices of each split; ValueError when a split would be empty."""
        fractions = np.asarray(self.split_fractions, dtype=np.float64)
        if fractions.shape != (len(SPLITS),) or np.any(fractions <= 0) or abs(fractions.sum() - 1.0) > 1e-6:
            raise ValueError(f"split_fractions must be {len(SPLITS)} positive numbers summing to 1 ({SPLITS}), got {self.split_fractions}")
        ends = np.rint(np.cumsum(fractions) * self.n_episodes).astype(int)
        starts = np.concatenate([[0], ends[:-1]])
        if np.any(ends <= starts):
            raise ValueError(f"{self.n_episodes} episodes leave a split of {SPLITS} empty with fractions {self.split_fractions}")
        return {name: range(int(a), int(b)) for name, a, b in zip(SPLITS, starts, ends)}

    def validate(self) -> None:
        """Raise ValueError for an unknown env, non-positive sizes or bad split fractions."""
        check_env_name(self.env)
        if self.n_episodes <= 0 or self.episode_len <= 0 or self.render_size <= 0:
            raise ValueError(f"n_episodes, episode_len and render_size must be positive, got {self}")
        self.split_ranges()
        data_policy(self)


def policy_settings(env: str) -> dict[str, Any]:
    """The tunable settings of env's data policy: its public numeric and range class attributes."""
    cls = DATA_POLICIES[check_env_name(env)]
    return {name: value for klass in reversed(cls.__mro__) for name, value in vars(klass).items()
            if not name.startswith("_") and isinstance(value, (int, float, tuple)) and not isinstance(value, bool)}


def data_policy(cfg: DatasetConfig) -> Callable[[np.random.Generator], DataPolicy]:
    """cfg.env's scripted data policy with ``cfg.policy_overrides`` applied (a subclass, so the defaults
    stay as they are); ValueError naming the valid settings for an unknown one."""
    base = DATA_POLICIES[cfg.env]
    if not cfg.policy_overrides:
        return base
    settings, values = policy_settings(cfg.env), {}
    for item in cfg.policy_overrides:
        try:
            name, text = split_assignment(item)
        except ValueError as e:
            raise ValueError(f"data policy setting {e}") from None
        if name not in settings:
            raise ValueError(f"unknown {cfg.env} data policy setting {name!r}; valid: {', '.join(sorted(settings))}")
        try:
            values[name] = parse(text, kind_of(settings[name]))
        except ValueError as e:
            raise ValueError(f"{cfg.env} data policy setting {name} {e}") from None
    return type(base.__name__, (base,), values)


# Defaults: Wall 2000 x 60 steps at 64 px (~122 k frames, 1.5 GB in memory); PushT 1000 x 100 steps at 128 px
# (~101 k frames, 5 GB in memory - the frames dominate; lower n_episodes if memory is short).
DEFAULT_DATASETS: dict[str, DatasetConfig] = {
    "wall": DatasetConfig(env="wall", n_episodes=2000, episode_len=60, render_size=64, seed=0),
    "pusht": DatasetConfig(env="pusht", n_episodes=1000, episode_len=100, render_size=128, seed=0),
}


@dataclass(frozen=True)
class EpisodeData:
    """One split in memory. Arrays as in the module docstring; ``frames`` is None when loaded without them."""

    frames: np.ndarray | None
    proprio: np.ndarray
    actions: np.ndarray
    states: np.ndarray
    episode_offsets: np.ndarray

    @property
    def n_episodes(self) -> int:
        return len(self.episode_offsets) - 1

    def concat(self, other: "EpisodeData") -> "EpisodeData":
        """This split's episodes followed by ``other``'s (both with frames, or both without)."""
        if (self.frames is None) != (other.frames is None):
            raise ValueError("cannot concatenate a split with frames and one without")
        return EpisodeData(
            frames=None if self.frames is None else np.concatenate([self.frames, other.frames]),
            proprio=np.concatenate([self.proprio, other.proprio]), actions=np.concatenate([self.actions, other.actions]),
            states=np.concatenate([self.states, other.states]),
            episode_offsets=np.concatenate([self.episode_offsets, other.episode_offsets[1:] + self.episode_offsets[-1]]),
        )

    def episode(self, e: int) -> slice:
        """Rows of episode ``e`` (0 <= e < n_episodes)."""
        if not 0 <= e < self.n_episodes:
            raise IndexError(f"episode {e} out of range [0, {self.n_episodes})")
        return slice(int(self.episode_offsets[e]), int(self.episode_offsets[e + 1]))


def dataset_dir(env: str, root: Path = Path("cache/data")) -> Path:
    """Default directory of env's dataset: ``root / env``."""
    return Path(root) / check_env_name(env)


def default_dataset_config(env: str) -> DatasetConfig:
    """The default DatasetConfig of an env (ValueError naming ENV_NAMES for an unknown one)."""
    return DEFAULT_DATASETS[check_env_name(env)]


def _roll(env: QuantWMEnv, obs: dict[str, np.ndarray], info: dict[str, Any], n_steps: int,
          next_action: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """Step ``env`` from ``(obs, info)`` with ``next_action(state)`` -> (n_steps + 1)-row episode arrays."""
    frames, proprio, states, actions = [obs["visual"]], [obs["proprio"]], [info["state"]], []
    for _ in range(n_steps):
        action = np.asarray(next_action(states[-1]), dtype=np.float32)
        obs, _, _, _, info = env.step(action)
        actions.append(action)
        frames.append(obs["visual"])
        proprio.append(obs["proprio"])
        states.append(info["state"])
    actions.append(np.zeros(env.env_spec.action_dim, dtype=np.float32))
    return {"frames": np.stack(frames), "proprio": np.stack(proprio), "actions": np.stack(actions), "states": np.stack(states)}


def record_episode(env: QuantWMEnv, policy_factory: Callable[[np.random.Generator], DataPolicy], seed: int, index: int,
                   episode_len: int) -> dict[str, np.ndarray]:
    """Roll the scripted policy for one episode -> frames, proprio, actions, states of (episode_len + 1) rows."""
    rng = np.random.default_rng([seed, index])
    obs, info = env.reset(seed=int(rng.integers(2**31)))
    return _roll(env, obs, info, episode_len, policy_factory(rng))


def replay_episode(env: QuantWMEnv, state: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Execute env ``actions`` (T, action_dim) from ``state`` -> the episode's (T + 1)-row arrays."""
    obs, info = env.reset(options={"state": np.asarray(state, dtype=np.float64)})
    steps = iter(np.asarray(actions, dtype=np.float32))
    return _roll(env, obs, info, len(actions), lambda _state: next(steps))


def _write_npy_header(f: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(f, header)


def _write_episodes(path: Path, episodes: Iterable[dict[str, np.ndarray]], n_frames: int, render_size: int) -> int:
    """Stream episodes (``_roll``'s arrays) of ``n_frames`` rows in all into ``path``, atomically -> number of episodes.

    Frames go episode by episode into the zip member (only one episode's frames in memory)."""
    small: dict[str, list[np.ndarray]] = {"proprio": [], "actions": [], "states": []}
    lengths = [0]
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=_COMPRESS_LEVEL) as archive:
        with archive.open("frames.npy", "w", force_zip64=True) as member:
            _write_npy_header(member, (n_frames, render_size, render_size, 3), np.uint8)
            for rec in episodes:
                member.write(np.ascontiguousarray(rec["frames"]).tobytes())
                for key in small:
                    small[key].append(rec[key])
                lengths.append(len(rec["frames"]))
        if sum(lengths) != n_frames:
            raise ValueError(f"episodes held {sum(lengths)} frames, {n_frames} announced")
        arrays = {key: np.concatenate(parts) for key, parts in small.items()} | {"episode_offsets": np.cumsum(lengths, dtype=np.int64)}
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array)
    os.replace(tmp, path)
    return len(lengths) - 1


def generate_dataset(cfg: DatasetConfig, out_dir: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate ``cfg`` into ``out_dir`` ({train,val,calib}.npz + meta.json) -> out_dir.

    ``progress(done_episodes, total_episodes)`` is called after every episode."""
    cfg.validate()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / "meta.json"
    meta_path.unlink(missing_ok=True)
    env = make_env(cfg.env, cfg.render_size)
    policy = data_policy(cfg)
    done = 0

    def on_episode() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, cfg.n_episodes)

    start = time.perf_counter()
    counts = {}
    for split, indices in cfg.split_ranges().items():
        def episodes(indices: range = indices) -> Iterator[dict[str, np.ndarray]]:
            for e in indices:
                yield record_episode(env, policy, cfg.seed, e, cfg.episode_len)
                on_episode()

        n_frames = len(indices) * (cfg.episode_len + 1)
        _write_episodes(out_dir / f"{split}.npz", episodes(), n_frames, cfg.render_size)
        counts[split] = {"episodes": len(indices), "frames": n_frames, "first_episode": indices.start}
    meta = {
        "config": asdict(cfg),
        "counts": counts,
        "generation_seconds": round(time.perf_counter() - start, 2),
        "bytes": {split: (out_dir / f"{split}.npz").stat().st_size for split in SPLITS},
        "spec": asdict(ENV_SPECS[cfg.env]),
    }
    tmp = meta_path.with_name(meta_path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, meta_path)
    return out_dir


def load_split(data_dir: Path, split: str, frames: bool = True, mmap: bool = False) -> EpisodeData:
    """Load one split of a generated dataset, or its plan replays (``split="plans"``; ``frames=False``
    skips decompressing the frames; ``mmap=True`` maps them from disk instead, see ``frames_on_disk``)."""
    if split not in (*SPLITS, PLANS):
        raise ValueError(f"unknown split {split!r}; valid: {[*SPLITS, PLANS]}")
    data_dir = Path(data_dir)
    env = data_dir.name if data_dir.name in ENV_NAMES else "ENV"
    path, marker = data_dir / f"{split}.npz", (_plan_meta_path(data_dir) if split == PLANS else data_dir / "meta.json")
    if not path.is_file() or not marker.is_file():
        how = "`quantwm data --env ENV --plans EVAL_JSON...`" if split == PLANS else f"`quantwm data --env {env}`"
        raise FileNotFoundError(f"no complete {split} split at {data_dir} (missing {path.name} or {marker.name}): generate it with {how}")
    with np.load(path) as archive:
        return EpisodeData(
            frames=(frames_on_disk(path) if mmap else archive["frames"]) if frames else None,
            proprio=archive["proprio"],
            actions=archive["actions"],
            states=archive["states"],
            episode_offsets=archive["episode_offsets"],
        )


def frames_on_disk(archive: Path) -> np.ndarray:
    """The frames of the split archive ``archive`` (``SPLIT.npz``) as a read-only memory map of an
    uncompressed copy beside it (``SPLIT.frames.npy``), extracted once and again whenever the archive
    is newer. Training reads only the frames its batches touch, so a split larger than memory trains
    (PushT: 49 KB per 128-px frame, 12 GB for 2400 episodes); slices of the map are read-only."""
    archive = Path(archive)
    copy = archive.with_suffix(".frames.npy")
    if not copy.is_file() or copy.stat().st_mtime_ns <= archive.stat().st_mtime_ns:
        # a temporary file of its own: trainings started together on one dataset each extract, and the last rename wins
        fd, tmp = tempfile.mkstemp(prefix=copy.name + ".", suffix=".tmp", dir=copy.parent)
        try:
            with zipfile.ZipFile(archive) as zipped, zipped.open("frames.npy") as src, os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 24)
            os.replace(tmp, copy)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return np.load(copy, mmap_mode="r")


def _plan_meta_path(data_dir: Path) -> Path:
    return Path(data_dir) / f"{PLANS}.json"


def load_plan_meta(data_dir: Path) -> dict[str, Any] | None:
    """The plans.json of ``data_dir``'s plan-replay split (source, counts), or None when it holds no complete one."""
    path = _plan_meta_path(data_dir)
    return json.loads(path.read_text()) if path.is_file() else None


def write_plan_replays(data_dir: Path, starts: list[np.ndarray], actions: list[np.ndarray], source: dict[str, Any]) -> Path:
    """Execute each env action sequence ``actions[i]`` (T_i, action_dim) from state ``starts[i]`` into
    ``data_dir/plans.npz``, at the dataset's render size, replacing earlier replays; ``plans.json``
    (written last) stores ``source`` (what planned them) and the counts -> data_dir."""
    data_dir = Path(data_dir)
    cfg = load_meta(data_dir)["config"]
    if len(starts) != len(actions) or not starts:
        raise ValueError(f"need one start state per action sequence, got {len(starts)} states and {len(actions)} sequences")
    marker = _plan_meta_path(data_dir)
    marker.unlink(missing_ok=True)
    env = make_env(cfg["env"], cfg["render_size"])
    start = time.perf_counter()
    n_frames = sum(len(a) + 1 for a in actions)
    _write_episodes(data_dir / f"{PLANS}.npz", (replay_episode(env, s, a) for s, a in zip(starts, actions)), n_frames,
                    cfg["render_size"])
    meta = {"source": source, "episodes": len(starts), "frames": n_frames,
            "generation_seconds": round(time.perf_counter() - start, 2)}
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, marker)
    return data_dir


@functools.lru_cache(maxsize=8)
def regenerate_split(cfg: DatasetConfig, split: str) -> EpisodeData:
    """One split's states, proprio and actions (no frames), recomputed instead of loaded.

    Episodes are deterministic per (seed, index) and the policy sees states only, so this equals
    the stored split of a dataset generated from ``cfg``; rendering at a tiny size keeps it fast
    (PushT's default validation split: ~5 s). Lets evaluation run before ``quantwm data``. Kept per
    process (an experiment draws its episodes several times); callers must not modify the arrays.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {list(SPLITS)}")
    env = make_env(cfg.env, 8)
    policy = data_policy(cfg)
    records = [record_episode(env, policy, cfg.seed, e, cfg.episode_len) for e in cfg.split_ranges()[split]]
    offsets = np.arange(len(records) + 1, dtype=np.int64) * (cfg.episode_len + 1)
    arrays = {key: np.concatenate([r[key] for r in records]) for key in ("proprio", "actions", "states")}
    for array in (offsets, *arrays.values()):
        array.flags.writeable = False  # shared by every caller of the cached split
    return EpisodeData(frames=None, episode_offsets=offsets, **arrays)


def load_meta(data_dir: Path) -> dict[str, Any]:
    """The meta.json of a generated dataset."""
    return json.loads((Path(data_dir) / "meta.json").read_text())
