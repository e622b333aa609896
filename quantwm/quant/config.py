"""What to quantize and how: frozen, hashable, JSON-serialisable configs.

A ``QuantConfig`` names, per module group of the world model, the weight and activation
quantization (``GroupQuant``), the PTQ method with its own frozen config, an optional block
selection (``"predictor.blocks[2:]"``) and the seed of its random choices (row subsets, minibatch
order). The calibration data is not part of it: ``quantize`` takes a ``Calibration``. Every check
that does not need the model runs in ``__post_init__``; the model-dependent ones (block indices,
group size versus layer width) run at the start of ``quantize``. Both raise ``ValueError`` naming
the valid choices before any work starts.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

GROUPS = ("encoder", "predictor", "action_encoder", "proprio_encoder", "decoder")
BLOCK_GROUPS = ("encoder", "predictor")
VALID_BITS = (2, 3, 4, 5, 6, 7, 8, 16)
WEIGHT_GRANULARITIES = ("per_tensor", "per_channel", "group")
ACT_GRANULARITIES = ("per_tensor", "per_token", "per_channel")
_BLOCK_SELECTION = re.compile(r"^(\w+)\.blocks\[(-?\d*)(:?)(-?\d*)\]$")


def _bits(value: int | str, what: str) -> int:
    """Normalise a bit-width: "fp" or 16 means not quantized."""
    if value == "fp":
        return 16
    if isinstance(value, bool) or not isinstance(value, int) or value not in VALID_BITS:
        raise ValueError(f"{what} bits {value!r} is invalid; valid: 2..8, 16 or 'fp' (not quantized)")
    return value


def _choice(value: Any, valid: tuple[str, ...], what: str) -> None:
    if value not in valid:
        raise ValueError(f"{what} {value!r} is invalid; valid: {', '.join(valid)}")


@dataclass(frozen=True)
class WeightQuant:
    """Weight quantization: ``bits`` 2..8 or 16 (off); granularity ``per_tensor``,
    ``per_channel`` (one scale per output row) or ``group`` (``group_size`` input columns per
    scale, groups never crossing an output row)."""

    bits: int | str = 16
    symmetric: bool = True
    granularity: str = "per_channel"
    group_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", _bits(self.bits, "weight"))
        _choice(self.granularity, WEIGHT_GRANULARITIES, "weight granularity")
        if self.granularity == "group":
            if not isinstance(self.group_size, int) or isinstance(self.group_size, bool) or self.group_size < 1:
                raise ValueError(f"group granularity needs an integer group_size >= 1, got {self.group_size!r}")
        elif self.group_size is not None:
            raise ValueError(f"group_size is only valid with granularity 'group', not {self.granularity!r}")

    @property
    def enabled(self) -> bool:
        return self.bits < 16

    def describe(self) -> str:
        return f"group{self.group_size}" if self.granularity == "group" else self.granularity


@dataclass(frozen=True)
class ActQuant:
    """Input-activation quantization of each quantized layer: ``per_tensor`` (static, calibrated
    range), ``per_token`` (dynamic, range of each token at run time) or ``per_channel`` (static,
    calibrated range per input channel)."""

    bits: int | str = 16
    symmetric: bool = False
    granularity: str = "per_token"

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", _bits(self.bits, "activation"))
        _choice(self.granularity, ACT_GRANULARITIES, "activation granularity")

    @property
    def enabled(self) -> bool:
        return self.bits < 16


@dataclass(frozen=True)
class GroupQuant:
    """Settings of one module group. ``attention_matmuls`` also quantizes q, k, v and the softmax
    probabilities of every attention at the activation bit-width (needs activation bits < 16)."""

    weight: WeightQuant = field(default_factory=WeightQuant)
    activation: ActQuant = field(default_factory=ActQuant)
    attention_matmuls: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.weight, WeightQuant) or not isinstance(self.activation, ActQuant):
            raise ValueError("GroupQuant takes a WeightQuant and an ActQuant")
        if self.attention_matmuls and not self.activation.enabled:
            raise ValueError("attention_matmuls quantizes at the activation bit-width; set activation bits 2..8")

    @property
    def enabled(self) -> bool:
        return self.weight.enabled or self.activation.enabled


@dataclass(frozen=True)
class BlockSelection:
    """A parsed ``"<group>.blocks[i]"`` / ``"<group>.blocks[a:b]"`` selection."""

    group: str
    start: int | None
    stop: int | None
    single: bool

    @staticmethod
    def parse(text: str) -> "BlockSelection":
        match = _BLOCK_SELECTION.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"block selection {text!r} is invalid; valid forms: 'encoder.blocks[i]', 'predictor.blocks[a:b]', "
                "'predictor.blocks[a:]' (groups with blocks: encoder, predictor)"
            )
        group, start, colon, stop = match.groups()
        _choice(group, BLOCK_GROUPS, "block-selection group")
        if not colon and not start:
            raise ValueError(f"block selection {text!r} needs an index or a slice")
        if not colon and stop:
            raise ValueError(f"block selection {text!r} is invalid")
        return BlockSelection(group, int(start) if start else None, int(stop) if stop else None, not colon)

    def indices(self, depth: int) -> list[int]:
        """Selected block indices of a group with ``depth`` blocks (ValueError if out of range or empty)."""
        if self.single:
            if not -depth <= self.start < depth:
                raise ValueError(f"{self.group}.blocks[{self.start}] is out of range; valid: 0..{depth - 1}")
            return [self.start % depth]
        chosen = list(range(depth))[self.start : self.stop]
        if not chosen:
            raise ValueError(f"{self.group}.blocks[{self.start}:{self.stop}] selects no block of {depth} (0..{depth - 1})")
        return chosen


@dataclass(frozen=True)
class QuantConfig:
    """One quantization setting: per-group settings + method + block selection.

    Groups left ``None`` stay full precision. ``blocks`` restricts a block group to the listed
    selections (all blocks when a group has none). ``method_config`` defaults to the method's
    default config. ``max_layer_tokens`` bounds the per-layer input rows kept for data-driven
    methods and the layer report (a random subset drawn with ``seed``).
    """

    encoder: GroupQuant | None = None
    predictor: GroupQuant | None = None
    action_encoder: GroupQuant | None = None
    proprio_encoder: GroupQuant | None = None
    decoder: GroupQuant | None = None
    method: str = "rtn"
    method_config: Any = None
    blocks: tuple[str, ...] = ()
    seed: int = 0
    max_layer_tokens: int = 4096

    def __post_init__(self) -> None:
        from quantwm.quant.methods import METHODS

        _choice(self.method, tuple(sorted(METHODS)), "method")
        entry = METHODS[self.method]
        if self.method_config is None:
            object.__setattr__(self, "method_config", entry.config_cls())
        elif type(self.method_config) is not entry.config_cls:
            raise ValueError(f"method {self.method!r} takes a {entry.config_cls.__name__}, got {type(self.method_config).__name__}")
        for name in GROUPS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, GroupQuant):
                raise ValueError(f"{name} must be a GroupQuant or None")
            if value is not None and value.attention_matmuls and name not in BLOCK_GROUPS:
                raise ValueError(f"attention_matmuls is only valid for groups with attention: {', '.join(BLOCK_GROUPS)}")
        if not self.groups:
            raise ValueError(f"no module group is quantized; set at least one of {', '.join(GROUPS)}")
        object.__setattr__(self, "blocks", tuple(self.blocks))
        for selection in self.selections:
            if selection.group not in self.groups:
                raise ValueError(f"block selection on {selection.group!r}, which is not quantized; quantized: {', '.join(self.groups)}")
        if not isinstance(self.max_layer_tokens, int) or isinstance(self.max_layer_tokens, bool) or self.max_layer_tokens < 1:
            raise ValueError(f"max_layer_tokens must be an integer >= 1, got {self.max_layer_tokens!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        entry.check(self)

    @property
    def groups(self) -> dict[str, GroupQuant]:
        """Quantized groups (those set and not entirely 16-bit), in model order."""
        return {g: getattr(self, g) for g in GROUPS if getattr(self, g) is not None and getattr(self, g).enabled}

    @property
    def selections(self) -> list[BlockSelection]:
        return [BlockSelection.parse(text) for text in self.blocks]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["method_config"] = asdict(self.method_config)
        out["blocks"] = list(self.blocks)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "QuantConfig":
        from quantwm.quant.methods import METHODS

        known = {f.name for f in fields(QuantConfig)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown QuantConfig keys {sorted(unknown)}; valid: {sorted(known)}")
        kw = dict(d)
        for name in GROUPS:
            if kw.get(name) is not None:
                g = kw[name]
                kw[name] = GroupQuant(WeightQuant(**g["weight"]), ActQuant(**g["activation"]), g["attention_matmuls"])
        method = kw.get("method", "rtn")
        _choice(method, tuple(sorted(METHODS)), "method")
        if kw.get("method_config") is not None:
            mc = {k: tuple(v) if isinstance(v, list) else v for k, v in kw["method_config"].items()}
            kw["method_config"] = METHODS[method].config_cls(**mc)
        kw["blocks"] = tuple(kw.get("blocks", ()))
        return QuantConfig(**kw)

    @staticmethod
    def from_json(text: str) -> "QuantConfig":
        return QuantConfig.from_dict(json.loads(text))

    def key(self) -> str:
        """Stable 16-hex-digit cache key (SHA-256 of the canonical JSON)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]
