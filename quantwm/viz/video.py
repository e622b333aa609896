"""H.264 mp4 videos that browsers play (yuv420p, +faststart), written with imageio-ffmpeg's ffmpeg."""
from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np


def upscale(frames: np.ndarray, min_size: int = 256) -> np.ndarray:
    """(T, H, W, 3) uint8 -> nearest-neighbour upscaled by an integer factor so H >= min_size; even sizes."""
    factor = max(1, -(-min_size // frames.shape[1]))
    out = frames.repeat(factor, axis=1).repeat(factor, axis=2)
    return out[:, : out.shape[1] // 2 * 2, : out.shape[2] // 2 * 2]


def side_by_side(*videos: np.ndarray, gap: int = 4) -> np.ndarray:
    """Videos (T_i, H, W, 3) -> one (max T, H, sum W + gaps, 3); shorter ones hold their last frame."""
    t = max(len(v) for v in videos)
    padded = [np.concatenate([v, np.repeat(v[-1:], t - len(v), axis=0)]) for v in videos]
    sep = np.full((t, videos[0].shape[1], gap, 3), 255, dtype=np.uint8)
    parts = [p for v in padded for p in (v, sep)][:-1]
    return np.concatenate(parts, axis=2)


def write_mp4(frames: np.ndarray, path: str | Path, fps: int = 10) -> Path:
    """Write uint8 frames (T, H, W, 3) as H.264 mp4 with +faststart; returns the path."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = upscale(frames)
    writer = imageio.get_writer(path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=2,
                                ffmpeg_params=["-movflags", "+faststart", "-preset", "veryfast", "-crf", "20"])
    try:
        for f in frames:
            writer.append_data(f)
    finally:
        writer.close()
    return path
