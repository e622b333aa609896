"""Per-channel equivalent transforms of a foldable pair (SmoothQuant, AWQ, OmniQuant's LET).

For a pair producer -> consumer (``quantwm.quant.layout.FoldPair``) and per-channel scale s (and
optional shift d, LayerNorm producers only), the consumer sees X' = (X - d) / s and gets
W' = W diag(s), b' = b + W d, so its output is unchanged:

- LayerNorm producer: gamma' = gamma / s, beta' = (beta - d) / s;
- value producer (qkv / to_qkv): the v rows (the last ``C`` rows) and their bias are divided by s
  (attention averages tokens, so a channel scale on v reaches the projection input as is).
"""
from __future__ import annotations

import torch
from torch import nn

from quantwm.quant.layout import Block, FoldPair, submodule

PairTensors = dict[str, torch.Tensor | None]  # keys: producer.weight, producer.bias, consumer.weight, consumer.bias


def pair_modules(block: Block, pair: FoldPair) -> tuple[nn.Module, nn.Module]:
    return submodule(block.module, pair.producer, block.prefix), submodule(block.module, pair.consumer, block.prefix)


def pair_tensors(producer: nn.Module, consumer: nn.Module) -> PairTensors:
    return {"producer.weight": producer.weight, "producer.bias": producer.bias,
            "consumer.weight": consumer.weight, "consumer.bias": consumer.bias}


def scale_pair(t: PairTensors, kind: str, scale: torch.Tensor, shift: torch.Tensor | None = None) -> PairTensors:
    """The pair's tensors after the transform (differentiable in scale and shift): (C,) each."""
    w = t["consumer.weight"]
    out: PairTensors = {"consumer.weight": w * scale, "consumer.bias": t["consumer.bias"]}
    if shift is not None:
        if kind != "norm" or t["consumer.bias"] is None:
            raise ValueError("a shift folds only into a LayerNorm -> Linear-with-bias pair")
        out["consumer.bias"] = t["consumer.bias"] + w @ shift
    if kind == "norm":
        beta = t["producer.bias"] if shift is None else t["producer.bias"] - shift
        out["producer.weight"], out["producer.bias"] = t["producer.weight"] / scale, beta / scale
        return out
    n = w.shape[1]
    pw, pb = t["producer.weight"], t["producer.bias"]
    out["producer.weight"] = torch.cat([pw[:-n], pw[-n:] / scale[:, None]])
    out["producer.bias"] = None if pb is None else torch.cat([pb[:-n], pb[-n:] / scale])
    return out


@torch.no_grad()
def fold_pair(block: Block, pair: FoldPair, scale: torch.Tensor, shift: torch.Tensor | None = None) -> None:
    """Apply the transform to the block's modules in place."""
    producer, consumer = pair_modules(block, pair)
    new = scale_pair(pair_tensors(producer, consumer), pair.kind, scale.detach(), None if shift is None else shift.detach())
    for key, value in new.items():
        role, param = key.split(".")
        target = getattr(producer if role == "producer" else consumer, param)
        if value is not None:
            target.copy_(value)
