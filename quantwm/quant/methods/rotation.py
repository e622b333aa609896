"""Hadamard rotation of every block Linear's input so that outlier channels are spread over all
channels before quantization (QuaRot: Ashkboos et al., "QuaRot: Outlier-Free 4-Bit Inference in
Rotated LLMs", NeurIPS 2024, arXiv 2404.00456).

For a Linear y = x W^T and orthogonal R: y = (x R)(W R)^T. W R is folded into the weight; x R is
applied online, except for the attention output projection, where R = H_heads (x) R_dh and the
per-head factor R_dh is folded exactly into the value rows of qkv (attention averages tokens, so
it commutes), leaving only H_heads (x) I online. The residual stream is not rotated (DINO-WM's
tokens are read and overwritten by the rollout, and LayerScale / LayerNorm centring would have
to be rewritten), so LayerNorm -> Linear and GELU -> Linear inputs are rotated online.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from quantwm.quant.layout import ATTENTIONS, FOLD_PAIRS, head_count, submodule
from quantwm.quant.methods import register
from quantwm.quant.methods.gptq import GPTQConfig, gptq_weights
from quantwm.quant.methods.rtn import rtn_weights

if TYPE_CHECKING:
    from quantwm.quant.engine import QuantSession

WEIGHT_METHODS = ("rtn", "gptq")


@dataclass(frozen=True)
class RotationConfig:
    """``seed`` of the random signs / orthogonal factors; ``weight_method`` quantizing the rotated
    weights: rtn or gptq (QuaRot's best)."""

    seed: int = 0
    weight_method: str = "rtn"

    def __post_init__(self) -> None:
        if self.weight_method not in WEIGHT_METHODS:
            raise ValueError(f"rotation weight_method {self.weight_method!r} is invalid; valid: {', '.join(WEIGHT_METHODS)}")


def random_hadamard(n: int, generator: torch.Generator) -> torch.Tensor:
    """Orthogonal (n, n): diag(random signs) (H_k (x) Q_m), n = k m with k the largest power of two
    dividing n, H_k the normalised Walsh-Hadamard matrix and Q_m a random orthogonal matrix for
    the odd factor (identity when m = 1: a pure randomised Hadamard)."""
    k = n & -n
    h = torch.ones(1, 1)
    while h.shape[0] < k:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)])
    h = h / math.sqrt(k)
    m = n // k
    if m > 1:
        q, r = torch.linalg.qr(torch.randn(m, m, generator=generator))
        h = torch.kron(h, (q * torch.sign(torch.diagonal(r))).contiguous())
    signs = torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1
    return signs[:, None] * h


@torch.no_grad()
def rotate_blocks(session: "QuantSession", seed: int) -> None:
    """Fold W R into every block Linear and register the online part in ``session.rotations``."""
    generator = torch.Generator().manual_seed(seed)
    for block in session.plan.blocks:
        heads = head_count(submodule(block.module, ATTENTIONS[block.group], block.prefix))
        value_pairs = {p.consumer: p for p in FOLD_PAIRS[block.group] if p.kind == "value"}
        for name, t in session.plan.targets.items():
            rel = name[len(block.prefix) + 1 :]
            if t.block != block.index or t.group != block.group or not isinstance(t.module, torch.nn.Linear):
                continue
            width = t.module.in_features
            if rel in value_pairs:
                head_dim = width // heads
                per_head, mixing = random_hadamard(head_dim, generator), random_hadamard(heads, generator)
                producer = submodule(block.module, value_pairs[rel].producer, block.prefix)
                v = producer.weight[-width:].reshape(heads, head_dim, -1)
                producer.weight[-width:] = torch.einsum("de,hdi->hei", per_head, v).reshape(width, -1)
                if producer.bias is not None:
                    producer.bias[-width:] = (producer.bias[-width:].reshape(heads, head_dim) @ per_head).reshape(-1)
                full, online = torch.kron(mixing, per_head), torch.kron(mixing, torch.eye(head_dim))
            else:
                full = online = random_hadamard(width, generator)
            t.module.weight.copy_(t.module.weight @ full)
            session.rotations[name] = online
    session.changed()


@register("rotation", RotationConfig)
def rotation(session: "QuantSession", cfg: RotationConfig) -> None:
    """Rotate (see module doc), then quantize the rotated weights with ``cfg.weight_method``;
    layers outside the blocks (embeddings, decoder) are quantized unrotated."""
    rotate_blocks(session, cfg.seed)
    if cfg.weight_method == "gptq":
        gptq_weights(session, GPTQConfig())
    else:
        rtn_weights(session)
    for name in session.rotations:
        if name in session.weights:
            session.weights[name].method = f"rotation+{session.weights[name].method}"
