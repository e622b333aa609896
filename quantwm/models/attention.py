"""The attention matmuls of every transformer in quantwm, as one replaceable module.

Both the DINOv2 encoder and the DINO-WM predictor compute ``softmax(q k^T * scale) v`` through a
child module named ``attend``. Quantization swaps that child for a version that quantizes the
Q.K^T and attn.V operands; nothing else in the model changes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ScaledDotProductAttention(nn.Module):
    """``softmax(q k^T / sqrt(dh)) v`` with an optional boolean mask (True = may attend)."""

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """q, k, v: (B, heads, N, dh); attn_mask: (N, N) bool or None -> (B, heads, N, dh)."""
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
