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


# ---------------------------------------------------------------- labelled panels and composed videos

import imageio.v2 as imageio  # noqa: E402

from quantwm.viz.figures import FP_COLOR, QUANT_COLOR  # noqa: E402
from quantwm.viz.video import (  # noqa: E402
    badge, error_heatmap, imagination_video, label_panel, planning_video)


def _frames(t: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (t, size, size, 3), dtype=np.uint8)


def _hex(color: str) -> tuple[int, ...]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


def _read_back(path) -> tuple[str, list[np.ndarray]]:
    reader = imageio.get_reader(path)
    try:
        return reader.get_meta_data()["codec"], [f for f in reader]
    finally:
        reader.close()


def test_label_panel_adds_a_title_bar_and_captions_with_even_sizes() -> None:
    frames = _frames(3, 65)
    out = label_panel(frames, "FP imagined (decoded)", color=FP_COLOR, lines=[["step 0", "objective 0.412"]] * 3)
    assert out.dtype == np.uint8 and out.shape[0] == 3
    assert out.shape[1] % 2 == 0 and out.shape[2] % 2 == 0
    assert out.shape[2] == 194  # 65 px x3 = 195, cropped even
    plain = label_panel(frames, "FP imagined (decoded)", color=FP_COLOR)
    title_h = plain.shape[1] - 194
    assert title_h > 0 and (plain[0, 1, 1] == _hex(FP_COLOR)).all()  # the bar is filled with the side colour
    assert out.shape[1] > plain.shape[1]  # caption lines below
    assert (out[:, title_h:title_h + 3, :3] == frames[:, :1, :1]).all()  # frames start right under the bar


def test_nearest_upscale_makes_exact_blocks() -> None:
    frames = _frames(2, 8)
    out = label_panel(frames, "real", scale=3)
    title_h = out.shape[1] - 24
    body = out[:, title_h:]
    assert body.shape == (2, 24, 24, 3)
    blocks = body.reshape(2, 8, 3, 8, 3, 3)
    assert (blocks == frames[:, :, None, :, None]).all()  # each source pixel is an exact 3 x 3 block, no blur


def test_label_panel_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        label_panel(np.zeros((2, 8, 8, 3), np.float32), "x")
    with pytest.raises(ValueError, match="one entry per frame"):
        label_panel(_frames(2, 8), "x", lines=[["a"]])


def test_error_heatmap_black_where_equal_brighter_where_different() -> None:
    a = _frames(2, 16)
    same = error_heatmap(a, a)
    assert same.shape == a.shape and same.dtype == np.uint8
    assert (same == same[0, 0, 0]).all() and same[0, 0, 0].sum() < 10  # uniform, (near) black
    b = a.copy()
    b[:, :8] = 255 - b[:, :8]
    diff = error_heatmap(a, b)
    assert diff[:, :8].astype(int).sum(-1).mean() > diff[:, 8:].astype(int).sum(-1).mean() + 100
    assert (diff[:, 8:] == same[:, 8:]).all()
    with pytest.raises(ValueError, match="one shape"):
        error_heatmap(a, a[:, :8])


def test_badge_marks_only_frames_from_start() -> None:
    frames = np.full((4, 192, 192, 3), 255, np.uint8)
    out = badge(frames, "SUCCESS", "#009E73", start=2)
    assert (out[:2] == 255).all() and (out[2:] != 255).any()
    assert (out[2] == out[3]).all() and (frames == 255).all()  # input untouched


def test_imagination_video_layout_and_mp4(tmp_path) -> None:
    real, fp, quant = _frames(6, 64, 0), _frames(6, 64, 1), _frames(6, 64, 2)
    video = imagination_video(real, fp, quant, real[-1], quant_label="RTN W3 per-channel predictor")
    assert video.shape[0] == 6 and video.shape[1] % 2 == 0 and video.shape[2] % 2 == 0
    assert video.shape[1] >= 256 and 5 * 192 <= video.shape[2] <= 1100  # five 192-px panels
    colors = {tuple(c) for c in video[0, 2, ::8]}
    assert _hex(FP_COLOR) in colors and _hex(QUANT_COLOR) in colors
    path = write_mp4(video, tmp_path / "imagination.mp4")
    codec, frames = _read_back(path)
    assert codec == "h264" and len(frames) == 6
    assert frames[0].shape == video.shape[1:]  # composed video is not upscaled again
    data = path.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")
    with pytest.raises(ValueError, match="step_labels"):
        imagination_video(real, fp, quant, real[-1], quant_label="q", step_labels=["a"])
    with pytest.raises(ValueError, match="shapes differ"):
        imagination_video(real, fp[:, :32, :32], quant, real[-1], quant_label="q")


def _side(t: int, starts: list[int], success: bool, seed: int) -> dict:
    return {"frames": _frames(t, 128, seed), "plan_starts": starts, "plan_ends": _frames(len(starts), 128, seed + 10),
            "plan_objectives": [1.0 / (i + 1) for i in range(len(starts))], "success": success}


def test_planning_video_holds_the_shorter_side_and_writes_mp4(tmp_path) -> None:
    fp, quant = _side(5, [0, 3], True, 0), _side(9, [0, 4, 8], False, 1)
    video = planning_video(fp, quant, _frames(1, 128, 5)[0], quant_label="RTN W3")
    assert video.shape[0] == 9 and video.shape[1] % 2 == 0 and video.shape[2] % 2 == 0
    assert video.shape[1] >= 256 + 2 * 20  # 256-px panels (128 px x2) with title and captions
    colors = {tuple(c) for c in video[0, 2, ::8]}
    assert _hex(FP_COLOR) in colors and _hex(QUANT_COLOR) in colors
    title_h = int(np.argmax((video[0, :, 1] != _hex(FP_COLOR)).any(-1)))  # rows of the FP-coloured title bar
    fp_real = video[:, title_h:title_h + 256, :256]
    assert (fp_real[5:] == fp_real[4]).all()  # FP stopped after 5 frames: it holds its last frame and badge
    badged = badge(_frames(5, 128, 0).repeat(2, 1).repeat(2, 2), "SUCCESS", "#009E73", start=4)
    assert (fp_real[:5] == badged).all()  # x2 nearest upscale, badge from the last frame on
    path = write_mp4(video, tmp_path / "planning.mp4")
    codec, frames = _read_back(path)
    assert codec == "h264" and len(frames) == 9 and frames[0].shape == video.shape[1:]
    data = path.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")


def test_planning_video_rejects_bad_sides() -> None:
    goal = _frames(1, 128)[0]
    with pytest.raises(ValueError, match="plan_starts must ascend"):
        planning_video(_side(5, [1, 3], True, 0), _side(5, [0], True, 1), goal, quant_label="q")
    with pytest.raises(ValueError, match="one entry per plan"):
        planning_video({**_side(5, [0, 3], True, 0), "plan_objectives": [1.0]}, _side(5, [0], True, 1), goal,
                       quant_label="q")
    with pytest.raises(ValueError, match="lacks 'success'"):
        planning_video({k: v for k, v in _side(5, [0], True, 0).items() if k != "success"}, _side(5, [0], True, 1),
                       goal, quant_label="q")
