"""Labelled comparison videos and H.264 mp4 that browsers play (yuv420p, +faststart).

Frames are uint8 (T, H, W, 3). Panels are nearest-neighbour upscaled by an integer factor (no
blur) to at least ``PANEL_PX`` pixels, then get a title bar above (coloured FP_COLOR / QUANT_COLOR
for the two sides) and caption lines below, drawn with Pillow's bundled font (works offline).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from quantwm.viz.figures import FAILURE_COLOR, FP_COLOR, QUANT_COLOR, SUCCESS_COLOR

PANEL_PX = 192  # smallest upscaled panel side: 64-px Wall frames x3, 128-px PushT frames x2
VIEW_PX = 256  # write_mp4 upscales videos shorter than this; composed videos are at least this tall
GAP = 4  # white gap between panels (even, so composed widths stay even)
SIDE_GAP = 16  # wider gap between the FP group, the quantized group and the goal
TEXT = (26, 26, 26)
BAR = (77, 77, 77)  # title bar of neutral panels (real, goal, heat map): dark grey, white text
WHITE = (255, 255, 255)
_MAGMA = np.rint(matplotlib.colormaps["magma"](np.arange(256))[:, :3] * 255).astype(np.uint8)  # (256, 3) lookup


def _check(frames: np.ndarray, name: str, ndim: int = 4) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != ndim or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        want = "(T, H, W, 3)" if ndim == 4 else "(H, W, 3)"
        raise ValueError(f"{name} must be uint8 {want}, got {frames.dtype} {frames.shape}")
    if ndim == 4 and len(frames) == 0:
        raise ValueError(f"{name} has no frames")
    return frames


def _even(frames: np.ndarray) -> np.ndarray:
    return frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]


def _nearest(frames: np.ndarray, factor: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, H*factor, W*factor, 3): each pixel an exact factor x factor block, cropped even."""
    return _even(frames.repeat(factor, axis=1).repeat(factor, axis=2))


def _panel_scale(height: int) -> int:
    return max(1, -(-PANEL_PX // height))


def _rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _ink(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """White or near-black text, whichever contrasts more with ``background`` (WCAG relative luminance)."""
    srgb = np.asarray(background) / 255.0
    lin = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    luminance = float(lin @ [0.2126, 0.7152, 0.0722])
    return WHITE if 1.05 / (luminance + 0.05) >= (luminance + 0.05) / 0.05 else TEXT


def upscale(frames: np.ndarray, min_size: int = 256) -> np.ndarray:
    """(T, H, W, 3) uint8 -> nearest-neighbour upscaled by an integer factor so H >= min_size; even sizes."""
    return _nearest(frames, max(1, -(-min_size // frames.shape[1])))


def side_by_side(*videos: np.ndarray, gap: int | Sequence[int] = 4) -> np.ndarray:
    """Videos (T_i, H, W, 3) -> one (max T, H, sum W + gaps, 3); shorter ones hold their last frame.
    ``gap``: px of white between neighbours, one width or one per neighbouring pair."""
    t = max(len(v) for v in videos)
    gaps = [gap] * (len(videos) - 1) if isinstance(gap, int) else list(gap)
    if len(gaps) != len(videos) - 1:
        raise ValueError(f"{len(videos)} videos need {len(videos) - 1} gaps, got {len(gaps)}")
    parts = []
    for v, g in zip(videos, [*gaps, 0]):
        parts.append(np.concatenate([v, np.repeat(v[-1:], t - len(v), axis=0)]))
        if g:
            parts.append(np.full((t, v.shape[1], g, 3), 255, dtype=np.uint8))
    return np.concatenate(parts, axis=2)


# ---------------------------------------------------------------- text


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _title_font(width: int) -> ImageFont.FreeTypeFont:
    return _font(int(np.clip(width // 13, 12, 20)))


def _caption_font(width: int) -> ImageFont.FreeTypeFont:
    return _font(int(np.clip(width // 14, 12, 18)))


def _line_px(font: ImageFont.FreeTypeFont) -> int:
    return round(font.size * 1.3)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy word wrap of ``text`` to lines no wider than ``width`` px (a longer single word is clipped)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if line and font.getlength(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def _text_block(lines: Sequence[str], width: int, height: int, font: ImageFont.FreeTypeFont,
                fg: tuple[int, int, int], bg: tuple[int, int, int], pad: int | None) -> np.ndarray:
    """(height, width, 3) uint8 with ``lines`` centred horizontally, from ``pad`` px below the top
    (``None``: centred vertically too)."""
    image = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(image)
    top = (height - len(lines) * _line_px(font)) / 2 + 2 if pad is None else pad
    for i, line in enumerate(lines):
        draw.text((width / 2, top + i * _line_px(font)), line, fill=fg, font=font, anchor="ma")
    return np.asarray(image)


def _title_lines(title: str, width: int) -> list[str]:
    return _wrap(title, _title_font(width), width - 12)


def _caption_lines(lines: Sequence[str], width: int) -> list[str]:
    return [part for line in lines for part in _wrap(line, _caption_font(width), width - 8)]


def _title_height(n_lines: int, width: int) -> int:
    return -(-(n_lines * _line_px(_title_font(width)) + 12) // 2) * 2


def _caption_height(n_lines: int, width: int) -> int:
    return 0 if n_lines == 0 else -(-(n_lines * _line_px(_caption_font(width)) + 10) // 2) * 2


def _panel(frames: np.ndarray, title: str, color: str | None, lines: Sequence[Sequence[str]] | None,
           title_height: int, caption_height: int) -> np.ndarray:
    """Already upscaled, even-sized frames (T, H, W, 3) -> (T, title_height + H + caption_height, W, 3)."""
    t, _, w, _ = frames.shape
    bg = _rgb(color) if color else BAR
    top = _text_block(_title_lines(title, w), w, title_height, _title_font(w), _ink(bg), bg, pad=None)
    parts = [np.broadcast_to(top, (t, *top.shape)), frames]
    if caption_height:
        font, rendered = _caption_font(w), {}
        bottom = np.empty((t, caption_height, w, 3), np.uint8)
        for i in range(t):
            key = tuple(lines[i]) if lines else ()
            if key not in rendered:
                rendered[key] = _text_block(_caption_lines(key, w), w, caption_height, font, TEXT, WHITE, pad=5)
            bottom[i] = rendered[key]
        parts.append(bottom)
    return np.concatenate(parts, axis=1)


def _check_lines(lines: Sequence[Sequence[str]] | None, t: int) -> None:
    if lines is not None and len(lines) != t:
        raise ValueError(f"lines must have one entry per frame: {len(lines)} for {t} frames")


def label_panel(frames: np.ndarray, title: str, *, color: str | None = None,
                lines: Sequence[Sequence[str]] | None = None, scale: int | None = None) -> np.ndarray:
    """Frames (T, H, W, 3) -> (T, title + H*scale + captions, W*scale, 3) uint8, all sizes even.

    Nearest-neighbour upscale by ``scale`` (default: the smallest integer giving >= PANEL_PX px), a
    title bar above (filled with ``color``, else dark grey; white or black text, whichever contrasts more) and, when ``lines`` is
    given, per-frame caption lines below (lines[t] = strings for frame t).
    """
    frames = _check(frames, "frames")
    _check_lines(lines, len(frames))
    if scale is not None and scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    big = _nearest(frames, scale or _panel_scale(frames.shape[1]))
    w = big.shape[2]
    n_caption = max((len(_caption_lines(x, w)) for x in lines), default=0) if lines else 0
    return _panel(big, title, color, lines, _title_height(len(_title_lines(title, w)), w), _caption_height(n_caption, w))


def _row(panels: Sequence[dict[str, Any]], gaps: Sequence[int]) -> np.ndarray:
    """Panels {"frames" (upscaled, same T, H, W), "title", "color", "lines"} -> one video, with shared
    title / caption heights, at least VIEW_PX tall; ``gaps[i]`` px of white after panel i."""
    _, h, w, _ = panels[0]["frames"].shape
    title_h = _title_height(max(len(_title_lines(p["title"], w)) for p in panels), w)
    n_caption = max(len(_caption_lines(x, w)) for p in panels for x in set(map(tuple, p["lines"])))
    fill = VIEW_PX - title_h - h
    caption_h = max(_caption_height(n_caption, w), fill + fill % 2)
    return side_by_side(*(_panel(p["frames"], p["title"], p["color"], p["lines"], title_h, caption_h) for p in panels),
                        gap=gaps)


# ---------------------------------------------------------------- overlays


def error_heatmap(a: np.ndarray, b: np.ndarray, *, vmax: float = 255.0) -> np.ndarray:
    """|a - b| per pixel, mean over RGB, through the "magma" colormap on a fixed 0..vmax scale.

    a, b: uint8 (T, H, W, 3) -> uint8 (T, H, W, 3); equal pixels are black, larger errors brighter,
    and the scale is the same for every frame so frames compare over time.
    """
    a, b = _check(a, "a"), _check(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"frames to compare must have one shape, got {a.shape} and {b.shape}")
    if vmax <= 0:
        raise ValueError(f"vmax must be positive, got {vmax}")
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=-1)
    index = np.clip(np.rint(diff * (255.0 / vmax)), 0, 255).astype(np.uint8)
    return _MAGMA[index]


def badge(frames: np.ndarray, text: str, color: str, *, start: int = 0) -> np.ndarray:
    """Copy of frames (T, H, W, 3) with a rounded ``text`` badge filled with ``color`` at the bottom
    centre of frames ``start`` onward (e.g. "SUCCESS" in SUCCESS_COLOR)."""
    frames = _check(frames, "frames").copy()
    _, h, w, _ = frames.shape
    font = _font(int(np.clip(w // 11, 10, 24)))
    tw, th = font.getlength(text), font.size
    bw, bh = min(w, int(tw + th)), min(h, int(th * 1.6))
    patch = Image.new("RGBA", (bw, bh), (0, 0, 0, 0))
    draw = ImageDraw.Draw(patch)
    ink = _ink(_rgb(color))
    draw.rounded_rectangle((0, 0, bw - 1, bh - 1), radius=bh // 3, fill=(*_rgb(color), 235), outline=WHITE, width=1)
    draw.text((bw / 2, bh / 2), text, fill=ink, font=font, anchor="mm", stroke_width=1, stroke_fill=ink)
    rgba = np.asarray(patch).astype(np.float32)
    alpha = rgba[..., 3:] / 255.0
    y0, x0 = h - bh - max(2, h // 24), (w - bw) // 2
    region = frames[start:, y0:y0 + bh, x0:x0 + bw].astype(np.float32)
    frames[start:, y0:y0 + bh, x0:x0 + bw] = np.rint(alpha * rgba[..., :3] + (1 - alpha) * region).astype(np.uint8)
    return frames


# ---------------------------------------------------------------- composed videos


def imagination_video(real: np.ndarray, fp_imagined: np.ndarray, quant_imagined: np.ndarray, goal: np.ndarray, *,
                      quant_label: str, step_labels: Sequence[str] | None = None) -> np.ndarray:
    """One row of five labelled panels per probe step: real | FP imagined | quantized imagined |
    |FP - quantized| heat map | goal.

    real, fp_imagined, quant_imagined: uint8 (K+1, H, W, 3); goal: uint8 (H, W, 3).
    Returns uint8 (K+1, H', W', 3), even sizes, at least VIEW_PX tall.
    """
    real, fp, quant = (_check(x, n) for x, n in ((real, "real"), (fp_imagined, "fp_imagined"),
                                                 (quant_imagined, "quant_imagined")))
    goal = _check(goal, "goal", ndim=3)
    if not real.shape == fp.shape == quant.shape or goal.shape != real.shape[1:]:
        raise ValueError(f"shapes differ: real {real.shape}, fp {fp.shape}, quant {quant.shape}, goal {goal.shape}")
    steps = len(real)
    labels = list(step_labels) if step_labels is not None else [f"step {k}" for k in range(steps)]
    if len(labels) != steps:
        raise ValueError(f"step_labels must have {steps} entries, got {len(labels)}")
    heat = error_heatmap(fp, quant)
    mean_err = np.abs(fp.astype(np.int16) - quant.astype(np.int16)).mean(axis=(1, 2, 3))
    k = _panel_scale(real.shape[1])
    step_lines = [[s] for s in labels]
    panels = [
        {"frames": real, "title": "real", "color": None, "lines": step_lines},
        {"frames": fp, "title": "FP imagined (decoded)", "color": FP_COLOR, "lines": step_lines},
        {"frames": quant, "title": f"{quant_label} imagined (decoded)", "color": QUANT_COLOR, "lines": step_lines},
        {"frames": heat, "title": "|FP - quantized|", "color": None, "lines": [[f"mean {e:.1f} of 255"] for e in mean_err]},
        {"frames": goal[None].repeat(steps, axis=0), "title": "goal", "color": None, "lines": [[""]] * steps},
    ]
    for p in panels:
        p["frames"] = _nearest(p["frames"], k)
    return _row(panels, [GAP] * 4)


def _check_side(side: Mapping[str, Any], name: str, frame_shape: tuple[int, ...]) -> dict[str, Any]:
    for key in ("frames", "plan_starts", "plan_ends", "plan_objectives", "success"):
        if key not in side:
            raise ValueError(f"{name} side lacks {key!r}")
    frames, ends = _check(side["frames"], f"{name} frames"), _check(side["plan_ends"], f"{name} plan_ends")
    starts, objectives = list(side["plan_starts"]), list(side["plan_objectives"])
    if frames.shape[1:] != frame_shape or ends.shape[1:] != frame_shape:
        raise ValueError(f"{name} frames {frames.shape} and plan_ends {ends.shape} must be (*, {frame_shape})")
    if not len(starts) == len(ends) == len(objectives):
        raise ValueError(f"{name}: plan_starts, plan_ends and plan_objectives need one entry per plan, "
                         f"got {len(starts)}, {len(ends)}, {len(objectives)}")
    if starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])) or starts[-1] >= len(frames):
        raise ValueError(f"{name} plan_starts must ascend from 0 within the {len(frames)} frames, got {starts}")
    return {"frames": frames, "plan_starts": starts, "plan_ends": ends, "plan_objectives": objectives,
            "success": bool(side["success"])}


def _side_panels(side: Mapping[str, Any], label: str, color: str, steps: int, scale: int) -> list[dict[str, Any]]:
    frames = side["frames"]
    last = len(frames) - 1
    step = np.minimum(np.arange(steps), last)
    plan = np.searchsorted(np.asarray(side["plan_starts"]), step, side="right") - 1
    n_plans = len(side["plan_starts"])
    real = _nearest(frames[step], scale)
    outcome = ("SUCCESS", SUCCESS_COLOR) if side["success"] else ("FAILURE", FAILURE_COLOR)
    real = badge(real, *outcome, start=last)
    objective = side["plan_objectives"]
    return [
        {"frames": real, "title": f"{label} real", "color": color,
         "lines": [[f"step {s}", "done" if t > last else ""] for t, s in enumerate(step)]},
        {"frames": _nearest(side["plan_ends"][plan], scale), "title": f"{label} plan end (imagined)", "color": color,
         "lines": [[f"plan {p + 1} of {n_plans} (step {side['plan_starts'][p]})", f"objective {objective[p]:.3f}"]
                   for p in plan]},
    ]


def planning_video(fp: Mapping[str, Any], quant: Mapping[str, Any], goal: np.ndarray, *, quant_label: str) -> np.ndarray:
    """FP [real | decoded end of current plan], quantized [real | decoded end of current plan], goal.

    Each side: {"frames": (T_s, H, W, 3) real frames per executed step, "plan_starts": ascending env
    steps where each plan was made (first 0), "plan_ends": (n_plans, H, W, 3) decoded last imagined
    frame of each plan, "plan_objectives": (n_plans,), "success": bool}; goal: (H, W, 3).
    Captions show the step and the objective of the active plan (last start <= step); the shorter
    side holds its last frame; a SUCCESS / FAILURE badge shows from each side's last frame on.
    Returns uint8 (max T_s, H', W', 3), even sizes, at least VIEW_PX tall.
    """
    goal = _check(goal, "goal", ndim=3)
    fp, quant = _check_side(fp, "fp", goal.shape), _check_side(quant, "quant", goal.shape)
    steps = max(len(fp["frames"]), len(quant["frames"]))
    k = _panel_scale(goal.shape[0])
    panels = (_side_panels(fp, "FP", FP_COLOR, steps, k) + _side_panels(quant, quant_label, QUANT_COLOR, steps, k)
              + [{"frames": _nearest(goal[None], k).repeat(steps, axis=0), "title": "goal", "color": None,
                  "lines": [[""]] * steps}])
    return _row(panels, [GAP, SIDE_GAP, GAP, SIDE_GAP])


def write_mp4(frames: np.ndarray, path: str | Path, fps: int = 10, *, min_size: int | None = VIEW_PX) -> Path:
    """Write uint8 frames (T, H, W, 3) as H.264 yuv420p mp4 with +faststart; returns the path.

    Videos shorter than ``min_size`` px (raw renders) are nearest-upscaled to at least that; taller
    ones, such as the composed videos above, are written as they are (``None``: never upscale).
    Sizes are cropped even.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = upscale(frames, min_size) if min_size else _even(frames)
    writer = imageio.get_writer(path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=2,
                                ffmpeg_params=["-movflags", "+faststart", "-preset", "veryfast", "-crf", "20"])
    try:
        for f in frames:
            writer.append_data(f)
    finally:
        writer.close()
    return path
