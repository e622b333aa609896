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
"""
from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantwm.envs import ENV_NAMES, ENV_SPECS, QuantWMEnv, check_env_name, make_env
from quantwm.envs.pusht import PushTDataPolicy
from quantwm.envs.wall import WallDataPolicy

SPLITS = ("train", "val", "calib")
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


def record_episode(env: QuantWMEnv, policy_factory: Callable[[np.random.Generator], DataPolicy], seed: int, index: int,
                   episode_len: int) -> dict[str, np.ndarray]:
    """Roll the scripted policy for one episode -> frames, proprio, actions, states of (episode_len + 1) rows."""
    rng = np.random.default_rng([seed, index])
    obs, info = env.reset(seed=int(rng.integers(2**31)))
    policy = policy_factory(rng)
    frames, proprio, states, actions = [obs["visual"]], [obs["proprio"]], [info["state"]], []
    for _ in range(episode_len):
        action = np.asarray(policy(states[-1]), dtype=np.float32)
        obs, _, _, _, info = env.step(action)
        actions.append(action)
        frames.append(obs["visual"])
        proprio.append(obs["proprio"])
        states.append(info["state"])
    actions.append(np.zeros(env.env_spec.action_dim, dtype=np.float32))
    return {"frames": np.stack(frames), "proprio": np.stack(proprio), "actions": np.stack(actions), "states": np.stack(states)}


def _write_npy_header(f: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(f, header)


def _write_split(path: Path, episodes: range, env: QuantWMEnv, cfg: DatasetConfig, on_episode: Callable[[], None]) -> int:
    """Generate the episodes of one split into ``path`` (atomically) -> number of frames.

    Frames stream episode by episode into the zip member (only one episode's frames in memory)."""
    n_frames = len(episodes) * (cfg.episode_len + 1)
    frame_shape = (n_frames, env.render_size, env.render_size, 3)
    small: dict[str, list[np.ndarray]] = {"proprio": [], "actions": [], "states": []}
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=_COMPRESS_LEVEL) as archive:
        with archive.open("frames.npy", "w", force_zip64=True) as member:
            _write_npy_header(member, frame_shape, np.uint8)
            for e in episodes:
                rec = record_episode(env, DATA_POLICIES[cfg.env], cfg.seed, e, cfg.episode_len)
                member.write(np.ascontiguousarray(rec["frames"]).tobytes())
                for key in small:
                    small[key].append(rec[key])
                on_episode()
        offsets = np.arange(len(episodes) + 1, dtype=np.int64) * (cfg.episode_len + 1)
        arrays = {key: np.concatenate(parts) for key, parts in small.items()} | {"episode_offsets": offsets}
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array)
    os.replace(tmp, path)
    return n_frames


def generate_dataset(cfg: DatasetConfig, out_dir: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate ``cfg`` into ``out_dir`` ({train,val,calib}.npz + meta.json) -> out_dir.

    ``progress(done_episodes, total_episodes)`` is called after every episode."""
    cfg.validate()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / "meta.json"
    meta_path.unlink(missing_ok=True)
    env = make_env(cfg.env, cfg.render_size)
    done = 0

    def on_episode() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, cfg.n_episodes)

    start = time.perf_counter()
    counts = {}
    for split, episodes in cfg.split_ranges().items():
        n_frames = _write_split(out_dir / f"{split}.npz", episodes, env, cfg, on_episode)
        counts[split] = {"episodes": len(episodes), "frames": n_frames, "first_episode": episodes.start}
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


def load_split(data_dir: Path, split: str, frames: bool = True) -> EpisodeData:
    """Load one split of a generated dataset (``frames=False`` skips decompressing the frames)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {list(SPLITS)}")
    data_dir = Path(data_dir)
    env = data_dir.name if data_dir.name in ENV_NAMES else "ENV"
    path = data_dir / f"{split}.npz"
    if not path.is_file() or not (data_dir / "meta.json").is_file():
        raise FileNotFoundError(
            f"no complete dataset at {data_dir} (missing {path.name} or meta.json): generate it with `quantwm data --env {env}`"
        )
    with np.load(path) as archive:
        return EpisodeData(
            frames=archive["frames"] if frames else None,
            proprio=archive["proprio"],
            actions=archive["actions"],
            states=archive["states"],
            episode_offsets=archive["episode_offsets"],
        )


def regenerate_split(cfg: DatasetConfig, split: str) -> EpisodeData:
    """One split's states, proprio and actions (no frames), recomputed instead of loaded.

    Episodes are deterministic per (seed, index) and the policy sees states only, so this equals
    the stored split of a dataset generated from ``cfg``; rendering at a tiny size keeps it fast
    (PushT's default validation split: ~5 s). Lets evaluation run before ``quantwm data``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {list(SPLITS)}")
    env = make_env(cfg.env, 8)
    records = [record_episode(env, DATA_POLICIES[cfg.env], cfg.seed, e, cfg.episode_len) for e in cfg.split_ranges()[split]]
    offsets = np.arange(len(records) + 1, dtype=np.int64) * (cfg.episode_len + 1)
    return EpisodeData(frames=None, episode_offsets=offsets,
                       **{key: np.concatenate([r[key] for r in records]) for key in ("proprio", "actions", "states")})


def load_meta(data_dir: Path) -> dict[str, Any]:
    """The meta.json of a generated dataset."""
    return json.loads((Path(data_dir) / "meta.json").read_text())
