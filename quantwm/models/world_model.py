"""The DINO-WM world model: frozen ViT encoder, frame-causal predictor, action / proprio embeddings
and a decoder for showing imagined frames.

Tensor layout (B batch, T frames, P patches, E visual dim, D = E + Ep + Ea token dim):

- frames: uint8 (B, T, H, W, 3) as environments render them; ``preprocess`` maps them to
  float (B*T, 3, S, S) in [-1, 1] (mean 0.5 / std 0.5, as DINO-WM).
- proprio: raw (B, T, proprio_dim); normalised with the model's stats before embedding.
- actions: the planner's space is *normalised, frameskip-stacked* actions (B, T, frameskip *
  action_dim), i.e. env actions (B, T, frameskip, action_dim) normalised per dimension and
  flattened; ``denormalize_actions`` maps them back to env actions.
- latents: ``Latents(visual (B, T, P, E), proprio (B, T, Ep))``.
- tokens: (B, T, P, D) = [visual | proprio embedding | action embedding], the proprio and action
  embeddings tiled over patches ("concat_dim = 1"). The proprio read back from tokens is patch 0's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from quantwm.models.decoder import VQVAE, DecoderConfig
from quantwm.models.embeddings import ProprioceptiveEmbedding
from quantwm.models.predictor import PredictorCache, PredictorConfig, ViTPredictor
from quantwm.models.vit import DinoVisionTransformer, ViTConfig

MODULE_GROUPS = ("encoder", "predictor", "action_encoder", "proprio_encoder", "decoder")


class Latents(NamedTuple):
    visual: torch.Tensor  # (B, T, P, E)
    proprio: torch.Tensor  # (B, T, Ep)


@dataclass(frozen=True)
class WorldModelConfig:
    """Everything needed to rebuild a world model, including its normalisation statistics."""

    env: str
    image_size: int  # frame size the environment renders for this model
    num_hist: int
    frameskip: int
    action_dim: int  # per env step
    proprio_dim: int
    encoder: ViTConfig
    predictor: PredictorConfig
    decoder: DecoderConfig | None
    action_mean: tuple[float, ...]
    action_std: tuple[float, ...]
    proprio_mean: tuple[float, ...]
    proprio_std: tuple[float, ...]
    action_emb_dim: int = 10
    proprio_emb_dim: int = 10

    def __post_init__(self) -> None:
        for name, size in (("action_mean", self.action_dim), ("action_std", self.action_dim),
                           ("proprio_mean", self.proprio_dim), ("proprio_std", self.proprio_dim)):
            if len(getattr(self, name)) != size:
                raise ValueError(f"{name} has {len(getattr(self, name))} values, expected {size}")

    @property
    def visual_dim(self) -> int:
        return self.encoder.embed_dim

    @property
    def token_dim(self) -> int:
        return self.visual_dim + self.proprio_emb_dim + self.action_emb_dim

    @property
    def planner_action_dim(self) -> int:
        return self.frameskip * self.action_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "WorldModelConfig":
        nested = {"encoder": ViTConfig, "predictor": PredictorConfig, "decoder": DecoderConfig}
        known = {f.name for f in fields(WorldModelConfig)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown world-model config keys {sorted(unknown)}; valid: {sorted(known)}")
        kw = {}
        for k, v in d.items():
            if k in nested and v is not None:
                v = nested[k](**v)
            elif isinstance(v, list):
                v = tuple(v)
            kw[k] = v
        return WorldModelConfig(**kw)


class WorldModel(nn.Module):
    """DINO-WM world model with ``encode_obs``, ``rollout`` and ``decode`` (layout: module doc)."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = DinoVisionTransformer(cfg.encoder)
        self.predictor = ViTPredictor(cfg.encoder.num_patches, cfg.num_hist, cfg.token_dim, cfg.predictor)
        self.action_encoder = ProprioceptiveEmbedding(cfg.planner_action_dim, cfg.action_emb_dim)
        self.proprio_encoder = ProprioceptiveEmbedding(cfg.proprio_dim, cfg.proprio_emb_dim)
        self.decoder = VQVAE(cfg.visual_dim, cfg.decoder) if cfg.decoder is not None else None
        for name in ("action_mean", "action_std", "proprio_mean", "proprio_std"):
            self.register_buffer(name, torch.tensor(getattr(cfg, name), dtype=torch.float32), persistent=False)

    # ---- observations -------------------------------------------------------------------
    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> float (N, 3, S, S) in [-1, 1], N = prod(...), S = encoder size."""
        x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).to(self.action_mean)  # the model's device and float dtype
        x = x / 127.5 - 1.0
        size = self.cfg.encoder.img_size
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, T, H, W, 3) -> visual latents (B, T, P, E)."""
        b, t = frames.shape[:2]
        return self.encoder(self.preprocess(frames)).reshape(b, t, self.cfg.encoder.num_patches, -1)

    def encode_proprio(self, proprio: torch.Tensor) -> torch.Tensor:
        """Raw proprio (B, T, proprio_dim) -> embedding (B, T, Ep)."""
        return self.proprio_encoder((proprio.to(self.proprio_mean) - self.proprio_mean) / self.proprio_std)

    def encode_obs(self, frames: torch.Tensor, proprio: torch.Tensor) -> Latents:
        """uint8 frames (B, T, H, W, 3) and raw proprio (B, T, dp) -> Latents."""
        return Latents(self.encode_frames(frames), self.encode_proprio(proprio))

    # ---- actions ------------------------------------------------------------------------
    def normalize_actions(self, env_actions: torch.Tensor) -> torch.Tensor:
        """Env actions (..., frameskip, action_dim) -> planner actions (..., frameskip * action_dim)."""
        return ((env_actions.to(self.action_mean) - self.action_mean) / self.action_std).flatten(-2)

    def denormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Planner actions (..., frameskip * action_dim) -> env actions (..., frameskip, action_dim)."""
        a = actions.unflatten(-1, (self.cfg.frameskip, self.cfg.action_dim))
        return a * self.action_std + self.action_mean

    def encode_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Planner actions (B, T, frameskip * action_dim) -> embedding (B, T, Ea)."""
        return self.action_encoder(actions)

    # ---- tokens and prediction ----------------------------------------------------------
    def tokens(self, latents: Latents, action_emb: torch.Tensor) -> torch.Tensor:
        """Latents (B, T, P, E) + (B, T, Ep) and action embedding (B, T, Ea) -> tokens (B, T, P, D)."""
        b, t, p, _ = latents.visual.shape
        tile = torch.cat([latents.proprio, action_emb], dim=-1).unsqueeze(2).expand(b, t, p, -1)
        return torch.cat([latents.visual, tile], dim=-1)

    def split(self, tokens: torch.Tensor) -> Latents:
        """Tokens (B, T, P, D) -> Latents (visual (B, T, P, E), proprio of patch 0 (B, T, Ep))."""
        e, ep = self.cfg.visual_dim, self.cfg.proprio_emb_dim
        return Latents(tokens[..., :e], tokens[..., 0, e : e + ep])

    def predict(self, tokens: torch.Tensor, newest_only: bool = False, cache: PredictorCache | None = None) -> torch.Tensor:
        """Tokens of t <= num_hist frames (B, t, P, D) -> next-frame predictions (B, t, P, D), or
        with ``newest_only`` only the prediction after the newest frame (B, 1, P, D); ``cache``:
        see ``ViTPredictor.forward``."""
        b, t, p, d = tokens.shape
        return self.predictor(tokens.reshape(b, t * p, d), newest_only=newest_only, cache=cache).reshape(b, -1, p, d)

    def rollout(self, latents: Latents, actions: torch.Tensor) -> torch.Tensor:
        """Imagine the future under planner actions, as DINO-WM does.

        latents: context (B, T0, ...); actions: (B, H, frameskip * action_dim), H >= T0, the first
        T0 actions paired with the context frames. Returns tokens (B, H + 1, P, D): the context
        frames then one predicted frame per further action, the last being the state after all H
        actions. Each prediction sees the last ``num_hist`` frames, positions restarting at 0.
        Exact shortcuts: only the newest frame's outputs are computed, and until the window slides
        the earlier frames' keys / values are cached.
        """
        t0, horizon = latents.visual.shape[1], actions.shape[1]
        if horizon < t0:
            raise ValueError(f"rollout needs at least one action per context frame ({t0}), got {horizon}")
        act_emb = self.encode_actions(actions)
        z = self.tokens(latents, act_emb[:, :t0])
        e = self.cfg.visual_dim + self.cfg.proprio_emb_dim
        cache = PredictorCache()  # while the window still starts at frame 0, earlier frames are not recomputed
        for t in range(t0, horizon + 1):
            growing = z.shape[1] <= self.cfg.num_hist
            newest = self.predict(z[:, -self.cfg.num_hist :], newest_only=True, cache=cache if growing else None)
            if t < horizon:
                action = act_emb[:, t : t + 1].unsqueeze(2).expand(-1, -1, newest.shape[2], -1)
                newest = torch.cat([newest[..., :e], action], dim=-1)
            z = torch.cat([z, newest], dim=1)
        return z

    # ---- decoding -----------------------------------------------------------------------
    def decode(self, visual: torch.Tensor) -> torch.Tensor:
        """Visual latents (B, T, P, E) -> frames uint8 (B, T, S', S', 3) at the env's frame size."""
        if self.decoder is None:
            raise ValueError("this world model has no decoder")
        b, t = visual.shape[:2]
        x = self.decoder(visual).flatten(0, 1)
        size = self.cfg.image_size
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).reshape(b, t, size, size, 3)
