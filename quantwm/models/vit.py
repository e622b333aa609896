"""Vision transformer with DINOv2's module and parameter names.

The same class builds the project's small encoders and the real DINOv2 ViT-S/14, so an official
``dinov2_vits14_pretrain.pth`` state dict loads into ``DinoVisionTransformer(ViTConfig.dinov2_vits14())``
with ``strict=True``. The encoder's output is the normalised patch tokens (DINOv2's
``x_norm_patchtokens``), which is what DINO-WM plans on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from quantwm.models.attention import ScaledDotProductAttention


@dataclass(frozen=True)
class ViTConfig:
    """Encoder hyper-parameters. ``pos_grid`` is the grid the position embedding is stored for
    (37 for DINOv2's 518-px pretraining); it is resampled to the actual grid at run time."""

    img_size: int
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    layerscale_init: float = 1e-5
    pos_grid: int | None = None

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2

    @staticmethod
    def dinov2_vits14(img_size: int = 196) -> "ViTConfig":
        """DINOv2 ViT-S/14 as DINO-WM uses it: 196-px input, 14 x 14 patches of dim 384."""
        return ViTConfig(img_size=img_size, patch_size=14, embed_dim=384, depth=12, num_heads=6, pos_grid=37)


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, P, D)."""
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attend = ScaledDotProductAttention()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.proj(self.attend(q, k, v).transpose(1, 2).reshape(b, n, d))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm block: ``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))``."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Attention(d, cfg.num_heads)
        self.ls1 = LayerScale(d, cfg.layerscale_init)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio))
        self.ls2 = LayerScale(d, cfg.layerscale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    """DINOv2-layout ViT. ``forward`` returns the normalised patch tokens (B, P, D)."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        if cfg.img_size % cfg.patch_size:
            raise ValueError(f"img_size {cfg.img_size} is not a multiple of patch_size {cfg.patch_size}")
        self.cfg = cfg
        d = cfg.embed_dim
        stored = cfg.pos_grid or cfg.grid
        self.patch_embed = PatchEmbed(cfg.patch_size, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + stored * stored, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def interpolate_pos_encoding(self, grid: int) -> torch.Tensor:
        """Position embedding for a ``grid x grid`` patch grid: (1, 1 + grid^2, D).

        Resampled bicubically from the stored grid M with scale (grid + 0.1) / M and no
        antialiasing, as DINOv2 does.
        """
        n_stored = self.pos_embed.shape[1] - 1
        m = math.isqrt(n_stored)
        if m == grid:
            return self.pos_embed
        patch_pos = self.pos_embed[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
        scale = (grid + 0.1) / m
        patch_pos = F.interpolate(patch_pos, scale_factor=(scale, scale), mode="bicubic", antialias=False)
        if patch_pos.shape[-1] != grid:
            raise RuntimeError(f"position-embedding resampling gave {patch_pos.shape[-1]}, expected {grid}")
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)
        return torch.cat([self.pos_embed[:, :1], patch_pos], dim=1)

    def tokens(self, x: torch.Tensor, patch_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised tokens including CLS: (B, 3, H, W) -> (B, 1 + P, D).

        ``patch_mask`` (B, P) bool replaces those patch embeddings with ``mask_token`` (masked
        image modelling during pretraining).
        """
        b, _, h, w = x.shape
        grid = h // self.cfg.patch_size
        patches = self.patch_embed(x)
        if patch_mask is not None:
            patches = torch.where(patch_mask.unsqueeze(-1), self.mask_token.to(patches.dtype), patches)
        x = torch.cat([self.cls_token.expand(b, -1, -1), patches], dim=1) + self.interpolate_pos_encoding(grid)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor, patch_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W) pixels in [-1, 1] -> (B, P, D) normalised patch tokens."""
        return self.tokens(x, patch_mask)[:, 1:]
