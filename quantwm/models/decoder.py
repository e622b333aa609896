"""DINO-WM's transposed-conv decoder (the VQ-VAE decoder layout, quantization off).

Visualisation only: it maps patch latents back to pixels and is trained on detached latents, so it
never shapes the latent space. ``upsample_b`` maps emb_dim -> emb_dim channels and ``dec``
emb_dim -> 3; each upsamples by its stride (DINO-WM: 4 and 4, 14 x 14 -> 224 px). The output is
unbounded, in the normalised [-1, 1] pixel space.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DecoderConfig:
    """DINO-WM's released decoders: channel 384 (PushT) or 128 (Wall), 4 res blocks of 128."""

    channel: int = 384
    n_res_block: int = 4
    n_res_channel: int = 128
    upsample_stride: int = 4
    dec_stride: int = 4


class ResBlock(nn.Module):
    def __init__(self, in_channel: int, channel: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.ReLU(), nn.Conv2d(in_channel, channel, 3, padding=1), nn.ReLU(), nn.Conv2d(channel, in_channel, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class Decoder(nn.Module):
    """Conv -> res blocks -> ReLU -> log2(stride) stride-2 transposed convs (channel/2 between)."""

    def __init__(self, in_channel: int, out_channel: int, channel: int, n_res_block: int, n_res_channel: int, stride: int) -> None:
        super().__init__()
        stages = int(math.log2(stride))
        if stride < 2 or 2**stages != stride:
            raise ValueError(f"decoder stride must be a power of two >= 2, got {stride}")
        blocks: list[nn.Module] = [nn.Conv2d(in_channel, channel, 3, padding=1)]
        blocks += [ResBlock(channel, n_res_channel) for _ in range(n_res_block)]
        blocks.append(nn.ReLU(inplace=True))
        widths = [channel] + [channel // 2] * (stages - 1) + [out_channel]
        for i in range(stages):
            if i:
                blocks.append(nn.ReLU(inplace=True))
            blocks.append(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, stride=2, padding=1))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class VQVAE(nn.Module):
    """Patch latents (B, T, P, E) -> frames (B, T, 3, g*s, g*s), g = sqrt(P), s = both strides."""

    def __init__(self, emb_dim: int, cfg: DecoderConfig) -> None:
        super().__init__()
        self.quantize = False
        args = (cfg.channel, cfg.n_res_block, cfg.n_res_channel)
        self.upsample_b = Decoder(emb_dim, emb_dim, *args, stride=cfg.upsample_stride)
        self.dec = Decoder(emb_dim, 3, *args, stride=cfg.dec_stride)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, t, p, e = z.shape
        g = math.isqrt(p)
        grid = z.reshape(b * t, g, g, e).permute(0, 3, 1, 2)
        out = self.dec(self.upsample_b(grid))
        return out.reshape(b, t, *out.shape[1:])
