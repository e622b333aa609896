"""An experiment's videos: decode what the models imagined and compose the mp4s (``quantwm.viz.video``).

Per video episode: ``imagination_<episode>.mp4`` (the probe's reference sequence, or the FP plan
where the episode has no reference: real | FP imagined | quantized imagined | difference | goal) and
``planning_<episode>.mp4`` (the FP and the quantized episode of the same start and goal side by
side). Each model decodes its own latents, so a quantized decoder shows in its own panels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from quantwm.envs import make_env
from quantwm.envs.episodes import make_eval_episodes
from quantwm.experiment.config import ExperimentConfig
from quantwm.experiment.probe import ProbeTrace
from quantwm.models import WorldModel
from quantwm.viz.video import imagination_video, planning_video, write_mp4


@torch.inference_mode()
def _decode(model: WorldModel, visual: torch.Tensor | np.ndarray) -> np.ndarray:
    """Visual latents (T, P, E) -> frames (T, S, S, 3) uint8."""
    v = torch.as_tensor(visual, dtype=torch.float32, device=model.action_mean.device)
    return model.decode(v[None])[0].cpu().numpy()


def plan_ends(arrays: Any, episode: int) -> np.ndarray:
    """Visual latents (n_plans, P, E) of each plan's last imagined frame, from ``side_arrays``."""
    lat = arrays[f"imagined_{episode}"].astype(np.float32)
    ends = np.cumsum(arrays[f"imagined_len_{episode}"]) - 1
    return lat[ends]


def _side(model: WorldModel, arrays: Any, episode: dict[str, Any]) -> dict[str, Any]:
    index = episode["index"]
    return {"frames": arrays[f"frames_{index}"], "plan_starts": episode["plan_starts"],
            "plan_ends": _decode(model, plan_ends(arrays, index)), "plan_objectives": episode["plan_objectives"],
            "success": episode["success"]}


def render_videos(fp: WorldModel, quant: WorldModel, config: ExperimentConfig, fp_value: dict[str, Any],
                  q_value: dict[str, Any], fp_npz: Path, q_npz: Path, traces: list[ProbeTrace], out_dir: Path,
                  progress: Callable[[str, int, int], None]) -> dict[str, Path]:
    """Write the videos of the first ``config.videos`` episodes into ``out_dir`` -> name -> path
    (nothing when the model has no decoder: there is nothing imagined to show)."""
    if fp.decoder is None or config.videos == 0:
        return {}
    episodes = make_eval_episodes(config.env, config.videos, config.seed)
    env = make_env(config.env, render_size=fp.cfg.image_size)
    label = config.label()
    by_episode: dict[int, ProbeTrace] = {}
    for trace in traces:  # the reference sequence where there is one
        if trace.episode not in by_episode or trace.sequence == "reference":
            by_episode[trace.episode] = trace
    out: dict[str, Path] = {}
    with np.load(fp_npz) as fp_arrays, np.load(q_npz) as q_arrays:
        for n, (ep, fp_ep, q_ep) in enumerate(zip(episodes, fp_value["episodes"], q_value["episodes"])):
            progress("rendering", n, len(episodes))
            goal = env.reset(options={"state": ep.goal_state})[0]["visual"]
            trace = by_episode.get(ep.index)
            if trace is not None:
                frames = imagination_video(trace.real_frames, _decode(fp, trace.fp_visual), _decode(quant, trace.quant_visual),
                                           goal, quant_label=label,
                                           step_labels=[f"{trace.sequence.replace('_', ' ')} step {k}"
                                                        for k in range(len(trace.real_frames))])
                out[f"imagination_{ep.index}.mp4"] = write_mp4(frames, out_dir / f"imagination_{ep.index}.mp4", fps=2)
            frames = planning_video(_side(fp, fp_arrays, fp_ep), _side(quant, q_arrays, q_ep), goal, quant_label=label)
            out[f"planning_{ep.index}.mp4"] = write_mp4(frames, out_dir / f"planning_{ep.index}.mp4", fps=10)
    progress("rendering", len(episodes), len(episodes))
    return out
