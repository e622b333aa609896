"""DINO-WM's action and proprio embeddings: a kernel-1 Conv1d, i.e. one linear map per time step."""
from __future__ import annotations

import torch
from torch import nn


class ProprioceptiveEmbedding(nn.Module):
    """(B, T, in_chans) -> (B, T, emb_dim); DINO-WM uses it for both actions and proprio."""

    def __init__(self, in_chans: int, emb_dim: int = 10) -> None:
        super().__init__()
        self.patch_embed = nn.Conv1d(in_chans, emb_dim, kernel_size=1, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x.transpose(1, 2)).transpose(1, 2)
