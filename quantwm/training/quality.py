"""Latent quality of a world model on validation windows: the numbers a researcher asks for first.

From one real context frame the model rolls out the recorded actions for ``steps`` planner steps
(open loop, no real frame after the first). At every step its imagined latents are compared with
the encoder's latents of the real frame reached, beside the error of "nothing moves" (the context
frame copied forward), which a useful model must beat. The decoder's frames are scored by PSNR
against the real frames, both for the encoder's latents (reconstruction: the decoder alone) and
for the imagined ones (prediction: what the imagination videos show).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from quantwm.envs.dataset import EpisodeData
from quantwm.models import Latents, WorldModel


@dataclass(frozen=True)
class LatentQuality:
    """Medians over ``windows`` validation windows; tuples hold one value per planner step 1..steps."""

    windows: int
    steps: int
    visual_mse: tuple[float, ...]  # imagined vs real visual latents, mean over patches and dims
    copy_mse: tuple[float, ...]  # the context frame's latents copied forward vs real
    proprio_mse: tuple[float, ...]  # imagined vs real proprio embedding
    final_cost: float  # visual + proprio MSE after the last step: the planning objective's scale
    recon_psnr: float | None  # dB, decoder(encoder(real frame)) vs real frame; None without a decoder
    pred_psnr: tuple[float, ...] | None  # dB, decoder(imagined latents) vs real frame, per step

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """uint8 frames (N, H, W, 3) x 2 -> PSNR per frame (N,) in dB (peak 255)."""
    mse = (a.float() - b.float()).pow(2).mean((1, 2, 3)).clamp(min=1e-6)
    return 10 * torch.log10(255.0**2 / mse)


def validation_windows(data: EpisodeData, span: int, n: int, seed: int = 0) -> np.ndarray:
    """(n,) start rows of windows of ``span`` env steps inside one episode each, drawn uniformly
    over episodes long enough, then over start steps (fixed by ``seed``)."""
    rng = np.random.default_rng(seed)
    episodes = [r for r in (data.episode(e) for e in range(data.n_episodes)) if r.stop - r.start - 1 >= span]
    if not episodes:
        raise ValueError(f"no validation episode is longer than {span} env steps")
    return np.array([r.start + int(rng.integers(r.stop - r.start - span)) for r in
                     (episodes[int(i)] for i in rng.integers(len(episodes), size=n))])


@torch.inference_mode()
def latent_quality(model: WorldModel, data: EpisodeData, windows: int = 200, steps: int = 5, seed: int = 0,
                   batch: int = 50) -> LatentQuality:
    """Open-loop latent error and decoded PSNR of ``model`` on ``windows`` windows of ``data``
    (frames, proprio, actions of a validation split), ``steps`` planner steps from one frame."""
    skip = model.cfg.frameskip
    starts = validation_windows(data, steps * skip, windows, seed)
    vis, copy, prop, cost, recon, pred = [], [], [], [], [], []
    for i in range(0, windows, batch):
        s = starts[i : i + batch]
        rows = s[:, None] + skip * np.arange(steps + 1)  # (B, steps + 1) frame rows
        frames = torch.from_numpy(data.frames[rows])  # (B, steps + 1, H, W, 3) uint8
        real = model.encode_obs(frames, torch.from_numpy(data.proprio[rows]).float())
        env_actions = torch.from_numpy(np.stack([data.actions[a : a + steps * skip] for a in s])).float()
        actions = model.normalize_actions(env_actions.view(len(s), steps, skip, model.cfg.action_dim))
        imagined = model.split(model.rollout(Latents(real.visual[:, :1], real.proprio[:, :1]), actions))
        vis.append((imagined.visual[:, 1:] - real.visual[:, 1:]).pow(2).mean((2, 3)))  # (B, steps)
        copy.append((real.visual[:, :1] - real.visual[:, 1:]).pow(2).mean((2, 3)))
        prop.append((imagined.proprio[:, 1:] - real.proprio[:, 1:]).pow(2).mean(2))
        cost.append(vis[-1][:, -1] + prop[-1][:, -1])
        if model.decoder is not None:
            truth = frames[:, 1:].flatten(0, 1).to(real.visual.device)  # decoded frames are on the model's device
            recon.append(_psnr(model.decode(real.visual[:, 1:]).flatten(0, 1), truth))
            pred.append(_psnr(model.decode(imagined.visual[:, 1:]).flatten(0, 1), truth).view(len(s), steps))

    def per_step(parts: list[torch.Tensor]) -> tuple[float, ...]:
        return tuple(round(float(x), 6) for x in torch.cat(parts).median(0).values)

    return LatentQuality(
        windows=windows, steps=steps, visual_mse=per_step(vis), copy_mse=per_step(copy), proprio_mse=per_step(prop),
        final_cost=round(float(torch.cat(cost).median()), 6),
        recon_psnr=round(float(torch.cat(recon).median()), 2) if recon else None,
        pred_psnr=tuple(round(x, 2) for x in per_step(pred)) if pred else None,
    )
