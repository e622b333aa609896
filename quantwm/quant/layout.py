"""Where the quantizable layers of a DINO-WM world model are, and which transforms fold exactly.

Quantized layers per group (as in the quantization study, plus the small groups it left out):

- ``encoder``: every Linear of the selected ``encoder.blocks`` (attn.qkv, attn.proj, mlp.fc1,
  mlp.fc2); not the patch embedding.
- ``predictor``: every Linear of the selected ``predictor.transformer.layers`` (to_qkv,
  to_out[0], net[1], net[4]).
- ``action_encoder`` / ``proprio_encoder``: their kernel-1 Conv1d.
- ``decoder``: every Conv / ConvTranspose / Linear.

Foldable pairs (a per-channel scale on the consumer's input columns folds exactly into the
producer): LayerNorm -> Linear (norm1 -> qkv, norm2 -> fc1; attention norm -> to_qkv, net[0] ->
net[1]) and the value rows of qkv -> the attention output projection (attention mixes tokens,
not channels, so a channel scale on v reaches the projection's input unchanged). fc1 -> fc2 and
net[1] -> net[4] are *not* foldable: GELU sits between them.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from quantwm.quant.config import GROUPS, GroupQuant, QuantConfig
from quantwm.quant.quantizer import group_size_of, weight_rows

BLOCK_LISTS = {"encoder": "blocks", "predictor": "transformer.layers"}
QUANTIZABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)


@dataclass(frozen=True)
class FoldPair:
    """``producer`` (LayerNorm, or Linear whose last ``consumer.in_features`` rows are v) feeds
    ``consumer`` (Linear); names relative to the block."""

    producer: str
    consumer: str
    kind: str  # "norm" or "value"


FOLD_PAIRS = {
    "encoder": (FoldPair("norm1", "attn.qkv", "norm"), FoldPair("norm2", "mlp.fc1", "norm"),
                FoldPair("attn.qkv", "attn.proj", "value")),
    "predictor": (FoldPair("0.norm", "0.to_qkv", "norm"), FoldPair("1.net.0", "1.net.1", "norm"),
                  FoldPair("0.to_qkv", "0.to_out.0", "value")),
}
ATTENTIONS = {"encoder": "attn", "predictor": "0"}  # the module holding `attend` and the head count
UNITS = {"encoder": ("",), "predictor": ("0", "1")}  # self-contained sub-modules of a block


def submodule(root: nn.Module, path: str, where: str) -> nn.Module:
    """``root.get_submodule(path)``, a ValueError naming the expected layout if it is missing."""
    try:
        return root.get_submodule(path) if path else root
    except AttributeError:
        raise ValueError(f"{where} has no module {path!r}; quantwm expects the DINO-WM layout (see quantwm.quant.layout)") from None


def head_count(attention: nn.Module) -> int:
    for attr in ("num_heads", "heads"):
        if isinstance(getattr(attention, attr, None), int):
            return getattr(attention, attr)
    raise ValueError(f"attention module {type(attention).__name__} has neither `num_heads` nor `heads`")


def is_linear_like(module: nn.Module) -> bool:
    """Linear, or a kernel-1 stride-1 Conv1d (DINO-WM's action / proprio embedding)."""
    if isinstance(module, nn.Conv1d):
        return module.kernel_size == (1,) and module.stride == (1,) and module.groups == 1 and module.padding == (0,)
    return isinstance(module, nn.Linear)


@dataclass
class Target:
    """One quantized layer: full dotted name, group, block index (None outside blocks)."""

    name: str
    group: str
    block: int | None
    settings: GroupQuant
    module: nn.Module


@dataclass
class Block:
    group: str
    index: int
    prefix: str  # dotted name of the block
    module: nn.Module


@dataclass
class Plan:
    targets: dict[str, Target]
    blocks: list[Block]
    attends: dict[str, Target]  # name of each `attend` to quantize -> its attention's settings

    def pairs(self) -> list[tuple[Block, FoldPair]]:
        """Foldable pairs of the selected blocks whose consumer's weight is quantized."""
        return [(b, p) for b in self.blocks for p in FOLD_PAIRS[b.group] if f"{b.prefix}.{p.consumer}" in self.targets]


def make_plan(model: nn.Module, config: QuantConfig) -> Plan:
    """Resolve the config against the model; ValueError on anything that does not fit."""
    selected: dict[str, set[int]] = {}
    for selection in config.selections:
        depth = len(submodule(getattr(model, selection.group), BLOCK_LISTS[selection.group], selection.group))
        selected.setdefault(selection.group, set()).update(selection.indices(depth))
    targets: dict[str, Target] = {}
    blocks: list[Block] = []
    attends: dict[str, Target] = {}
    for group, settings in config.groups.items():
        root = getattr(model, group, None)
        if not isinstance(root, nn.Module):
            have = [g for g in GROUPS if isinstance(getattr(model, g, None), nn.Module)]
            raise ValueError(f"the world model has no {group!r}; it has: {', '.join(have)}")
        if group in BLOCK_LISTS:
            block_list = submodule(root, BLOCK_LISTS[group], group)
            for i in sorted(selected.get(group, range(len(block_list)))):
                block = Block(group, i, f"{group}.{BLOCK_LISTS[group]}.{i}", block_list[i])
                blocks.append(block)
                for name, module in block.module.named_modules():
                    if isinstance(module, QUANTIZABLE):
                        targets[f"{block.prefix}.{name}"] = Target(f"{block.prefix}.{name}", group, i, settings, module)
                if settings.attention_matmuls:
                    attention = submodule(block.module, ATTENTIONS[group], block.prefix)
                    attend_name = f"{block.prefix}.{ATTENTIONS[group]}.attend"
                    attends[attend_name] = Target(attend_name, group, i, settings, submodule(attention, "attend", attend_name))
        else:
            found = {f"{group}.{n}": m for n, m in root.named_modules() if isinstance(m, QUANTIZABLE)}
            if not found:
                raise ValueError(f"group {group!r} has no quantizable layer ({', '.join(t.__name__ for t in QUANTIZABLE)})")
            for name, module in found.items():
                targets[name] = Target(name, group, None, settings, module)
    for t in targets.values():
        spec = t.settings.weight
        if spec.enabled and spec.granularity == "group":
            width = weight_rows(t.module).shape[1]
            if group_size_of(spec, width) > width:
                raise ValueError(f"group size {spec.group_size} is larger than layer {t.name} ({width} inputs per row); valid: 1..{width}")
    return Plan(targets, blocks, attends)
