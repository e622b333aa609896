"""Videos are H.264 mp4 with the moov atom first (+faststart), so browsers stream them."""
from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from quantwm.viz.video import side_by_side, upscale, write_mp4


def test_mp4_is_h264_faststart(tmp_path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (12, 64, 64, 3), dtype=np.uint8)
    path = write_mp4(frames, tmp_path / "v.mp4", fps=10)
    data = path.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat"), "moov atom must precede mdat (+faststart)"
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    assert "Video: h264" in probe.stderr and "yuv420p" in probe.stderr
    assert "256x256" in probe.stderr  # 64-px frames upscaled x4 for viewing


def test_side_by_side_holds_the_last_frame() -> None:
    a = np.zeros((3, 8, 8, 3), np.uint8)
    b = np.full((5, 8, 8, 3), 7, np.uint8)
    out = side_by_side(a, b, gap=2)
    assert out.shape == (5, 8, 18, 3)
    assert (out[4, :, :8] == 0).all() and (out[4, :, 10:] == 7).all() and (out[:, :, 8:10] == 255).all()
    assert upscale(a, min_size=20).shape == (3, 24, 24, 3)


def test_bad_frames_rejected(tmp_path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(np.zeros((2, 8, 8, 3), np.float32), tmp_path / "x.mp4")
