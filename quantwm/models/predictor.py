"""DINO-WM's ViT predictor, with DINO-WM's attribute names.

Tokens of ``num_frames`` frames are flattened into one sequence of ``num_frames * num_patches``
tokens. Attention is restricted by a frame-level causal mask: every token of frame i sees all
tokens of frames <= i and none of later frames. Attribute names follow DINO-WM
(``pos_embedding``, ``transformer.layers[i][0]`` attention with ``norm`` / ``to_qkv`` /
``to_out[0]``, ``transformer.layers[i][1].net``, ``transformer.norm``) so official weights map
one-to-one; the mask is a registered, derived buffer ``frame_causal_mask``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from quantwm.models.attention import ScaledDotProductAttention

# Cache blocking of inference batches, per device type: the batch runs through the transformer in
# equal blocks of samples holding at most this many residual-stream values (samples x tokens x
# dim; 2^20 fp32 values = 4 MiB), so each block's activations stay in the CPU's caches through
# all layers. Measured on the shipped PushT model (3-frame windows, 2 threads): 6-13 % faster
# forwards at 300-1000 samples; Wall's 16-token windows gain little and are not split at 300
# samples, where splitting cost 4 %. GPUs take the whole batch. Exact: samples never interact.
BLOCK_VALUES: dict[str, int] = {"cpu": 1 << 20}


class PredictorCache:
    """Every layer's [keys, values] (B, heads, tokens, dim_head) of the first ``tokens`` tokens of
    one sequence; filled and extended in place by ``ViTPredictor.forward(..., cache=...)``. A batch
    run in cache blocks keeps one PredictorCache per block in ``blocks`` instead."""

    def __init__(self) -> None:
        self.layers: list[list[torch.Tensor]] = []
        self.blocks: list[PredictorCache] = []
        self.tokens = 0


@dataclass(frozen=True)
class PredictorConfig:
    """DINO-WM's released predictor: depth 6, heads 16, dim_head 64, mlp_dim 2048, dropout 0.1."""

    depth: int = 6
    heads: int = 16
    dim_head: int = 64
    mlp_dim: int = 2048
    dropout: float = 0.1
    emb_dropout: float = 0.1


def frame_causal_mask(num_frames: int, num_patches: int) -> torch.Tensor:
    """Block lower-triangular mask (N, N) bool, N = num_frames * num_patches; True = may attend."""
    frame_of_token = torch.arange(num_frames * num_patches) // num_patches
    return frame_of_token[:, None] >= frame_of_token[None, :]


class Attention(nn.Module):
    """Pre-norm multi-head attention: LayerNorm -> to_qkv (no bias) -> attend -> to_out."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.attend = ScaledDotProductAttention()
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, queries: int | None = None,
                kv: list[torch.Tensor] | None = None) -> torch.Tensor:
        """x: (B, N, dim) tokens following the M tokens whose keys / values ``kv`` holds ([] or
        None: M = 0); mask: (N, M + N) bool. Returns the outputs of the last Nq = ``queries``
        tokens (default all N), (B, Nq, dim); a given ``kv`` is updated in place to all M + N tokens'
        keys and values, each (B, heads, M + N, dim_head)."""
        b, n, _ = x.shape
        nq = n if queries is None else queries
        q, k, v = self.to_qkv(self.norm(x)).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if kv:
            k, v = torch.cat([kv[0], k], dim=2), torch.cat([kv[1], v], dim=2)
        if kv is not None:
            kv[:] = [k, v]
        out = self.attend(q[:, :, n - nq :], k, v, mask[n - nq :])
        return self.to_out(out.transpose(1, 2).reshape(b, nq, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, dim), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Transformer(nn.Module):
    def __init__(self, dim: int, cfg: PredictorConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, cfg.heads, cfg.dim_head, cfg.dropout), FeedForward(dim, cfg.mlp_dim, cfg.dropout)])
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last: int | None = None,
                cache: PredictorCache | None = None) -> torch.Tensor:
        """x: (B, N, dim) following the tokens whose keys / values ``cache`` holds (updated in
        place); mask: (N, M + N). Returns (B, N, dim), or only the last ``last`` tokens' outputs.

        Exact shortcut: only the final layer's queries are restricted, because every earlier layer's
        outputs are the keys and values of the next.
        """
        final = len(self.layers) - 1
        if cache is not None and not cache.layers:
            cache.layers = [[] for _ in self.layers]
        for i, (attn, ff) in enumerate(self.layers):
            restrict = last if i == final else None
            out = attn(x, mask, queries=restrict, kv=None if cache is None else cache.layers[i])
            x = (x if restrict is None else x[:, -restrict:]) + out
            x = x + ff(x)
        return self.norm(x)


class ViTPredictor(nn.Module):
    """Frame-causal transformer over ``num_frames`` frames of ``num_patches`` tokens of size ``dim``."""

    def __init__(self, num_patches: int, num_frames: int, dim: int, cfg: PredictorConfig) -> None:
        super().__init__()
        self.num_patches = num_patches
        self.num_frames = num_frames
        self.pos_embedding = nn.Parameter(torch.randn(1, num_frames * num_patches, dim))
        self.dropout = nn.Dropout(cfg.emb_dropout)
        self.transformer = Transformer(dim, cfg)
        self.register_buffer("frame_causal_mask", frame_causal_mask(num_frames, num_patches), persistent=False)

    def forward(self, x: torch.Tensor, newest_only: bool = False, cache: PredictorCache | None = None) -> torch.Tensor:
        """(B, N, dim) with N = t * num_patches, t <= num_frames -> (B, N, dim), or with
        ``newest_only`` just the newest frame's outputs (B, num_patches, dim) - equal to the last
        ``num_patches`` rows of the full output (the frame-causal mask makes that exact).

        ``cache`` holds the keys / values of x's first M tokens from earlier calls on prefixes of
        the same sequence: only tokens M.. are computed (earlier frames never see later ones, so
        this is exact), the outputs are those of tokens M.. (B, N - M, dim) unless ``newest_only``,
        and the cache is extended to all N tokens.

        Positions restart at 0 for every sequence (``pos_embedding[:, :N]``), as in DINO-WM.
        Without gradients, large batches run in cache blocks (``BLOCK_VALUES``); a cache then holds
        one cache per block, so a cache must be extended by calls on the same batch.
        """
        n = x.shape[1]
        if n % self.num_patches or n > self.pos_embedding.shape[1]:
            raise ValueError(
                f"predictor takes up to {self.num_frames} frames of {self.num_patches} tokens, got {n} tokens"
            )
        rows = x.shape[0] if torch.is_grad_enabled() else self.block_rows(x)
        if rows >= x.shape[0] and not (cache is not None and cache.blocks):
            return self.run(x, newest_only, cache)
        blocks = x.split(rows)  # hooks on the predictor still see one call with the whole batch
        if cache is None:
            return torch.cat([self.run(block, newest_only) for block in blocks])
        if cache.layers or (cache.blocks and len(cache.blocks) != len(blocks)):
            raise ValueError(f"the cache was filled in {len(cache.blocks) or 1} block(s); this call needs {len(blocks)}: "
                             "extend a cache only with calls on the same batch, all with or all without gradients")
        cache.blocks = cache.blocks or [PredictorCache() for _ in blocks]
        out = torch.cat([self.run(block, newest_only, c) for block, c in zip(blocks, cache.blocks)])
        cache.tokens = n
        return out

    def run(self, x: torch.Tensor, newest_only: bool = False, cache: PredictorCache | None = None) -> torch.Tensor:
        """``forward`` on the batch as one block (x checked by ``forward``)."""
        n = x.shape[1]
        m = 0 if cache is None else cache.tokens
        if m >= n:
            raise ValueError(f"the cache already holds {m} tokens; the sequence has {n}")
        x = self.dropout(x[:, m:] + self.pos_embedding[:, m:n])
        out = self.transformer(x, self.frame_causal_mask[m:n, :n], last=self.num_patches if newest_only else None, cache=cache)
        if cache is not None:
            cache.tokens = n
        return out

    def block_rows(self, x: torch.Tensor) -> int:
        """Samples per cache block of the batch x (B, N, dim) on its device (BLOCK_VALUES), sized by
        the full window (num_frames frames) so that every call of one rollout splits the batch the
        same way and each block keeps its own key / value cache; B: one block."""
        budget = BLOCK_VALUES.get(x.device.type)
        if budget is None:
            return x.shape[0]
        blocks = -(-x.shape[0] * self.pos_embedding.shape[1] * x.shape[2] // budget)
        return -(-x.shape[0] // blocks)
