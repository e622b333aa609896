"""The imagination probe: open-loop drift on identical actions.

Closed-loop FP and quantized runs diverge after their first executed step, so their latents cannot
be compared step by step. The probe feeds the *same* action sequences from each episode's start
frame to the FP model, the quantized model and the real environment, and measures per planner
step how far the three latents lie apart; the real frames are encoded by the FP encoder (z_true),
and their encoding by the quantized encoder gives the encoder-only error.

Sequences: ``reference`` (actions known to reach the goal: PushT's demonstration, Wall's door
path) and ``fp_plan`` (the FP model's first plan of the episode), each cut or padded with zero env
actions to ``steps`` planner steps (a zero action holds the Wall dot still and lets PushT's agent
brake to a stop).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from quantwm.envs import make_env
from quantwm.envs.dataset import replay_episode
from quantwm.envs.episodes import EvalEpisode
from quantwm.models import Latents, WorldModel
from quantwm.planning import EpisodeRecord

SEQUENCES = ("reference", "fp_plan")
PAIRS = ("quant_vs_fp", "fp_vs_true", "quant_vs_true")


@dataclass
class ProbeTrace:
    """One probed sequence's arrays: real frames (K+1, H, W, 3), visual latents (K+1, P, E)."""

    episode: int
    sequence: str
    real_frames: np.ndarray
    fp_visual: torch.Tensor
    quant_visual: torch.Tensor


def _env_actions(fp: WorldModel, record: EpisodeRecord, episode: EvalEpisode, sequence: str) -> np.ndarray | None:
    """The sequence's env actions (n, action_dim), or None when the episode has none."""
    if sequence == "reference":
        return None if episode.reference_actions is None else np.asarray(episode.reference_actions, dtype=np.float64)
    if not record.planned_actions:
        return None
    plan = torch.as_tensor(record.planned_actions[0], dtype=torch.float32)
    return fp.denormalize_actions(plan).reshape(-1, fp.cfg.action_dim).numpy().astype(np.float64)


def _rms(a: torch.Tensor, b: torch.Tensor, dims: tuple[int, ...]) -> list[float]:
    return (a - b).pow(2).mean(dim=dims).sqrt().tolist()


@torch.inference_mode()
def imagination_probe(fp: WorldModel, quant: WorldModel, env_name: str, episodes: list[EvalEpisode],
                      fp_records: list[EpisodeRecord], steps: int, keep: set[int] = frozenset()
                      ) -> tuple[list[dict], list[ProbeTrace]]:
    """Probe every episode (``fp_records`` matched to ``episodes``) for ``steps`` planner steps.

    Returns one JSON record per (episode, sequence) - per step 0..steps the RMS latent distances
    ``visual`` / ``proprio`` {quant_vs_fp, fp_vs_true, quant_vs_true} and ``encoder`` {visual,
    proprio} (step 0 is the start frame) - and the traces of the episodes indexed in ``keep`` (for
    videos)."""
    fs, adim = fp.cfg.frameskip, fp.cfg.action_dim
    n_env = steps * fs
    env = make_env(env_name, render_size=fp.cfg.image_size)
    rows: list[tuple[int, str, int]] = []
    frames, proprio, actions = [], [], []
    for ep, rec in zip(episodes, fp_records):
        for sequence in SEQUENCES:
            acts = _env_actions(fp, rec, ep, sequence)
            if acts is None:
                continue
            given = min(len(acts), n_env)
            padded = np.zeros((n_env, adim))
            padded[:given] = acts[:given]
            real = replay_episode(env, ep.start_state, padded)
            frames.append(real["frames"][::fs])
            proprio.append(real["proprio"][::fs])
            actions.append(padded.reshape(steps, fs, adim))
            rows.append((ep.index, sequence, -(-given // fs)))
    if not rows:
        return [], []
    device = fp.action_mean.device
    x = torch.from_numpy(np.stack(frames))
    p = torch.from_numpy(np.stack(proprio)).to(device)
    z_true = fp.encode_obs(x, p)
    z_enc_q = quant.encode_obs(x, p)
    planner_actions = fp.normalize_actions(torch.from_numpy(np.stack(actions)))
    z_fp = fp.split(fp.rollout(Latents(z_true.visual[:, :1], z_true.proprio[:, :1]), planner_actions))
    z_q = quant.split(quant.rollout(Latents(z_enc_q.visual[:, :1], z_enc_q.proprio[:, :1]), planner_actions))
    latents = {"fp": z_fp, "quant": z_q, "true": z_true}
    records, traces = [], []
    for b, (index, sequence, given) in enumerate(rows):
        record = {"episode": index, "sequence": sequence, "action_steps": given}
        for part, dims in (("visual", (-1, -2)), ("proprio", (-1,))):
            record[part] = {}
            for pair in PAIRS:
                left, right = pair.split("_vs_")
                record[part][pair] = _rms(getattr(latents[left], part)[b], getattr(latents[right], part)[b], dims)
        record["encoder"] = {"visual": _rms(z_enc_q.visual[b], z_true.visual[b], (-1, -2)),
                             "proprio": _rms(z_enc_q.proprio[b], z_true.proprio[b], (-1,))}
        records.append(record)
        if index in keep:
            traces.append(ProbeTrace(index, sequence, frames[b], z_fp.visual[b], z_q.visual[b]))
    return records, traces
