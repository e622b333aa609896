"""Training presets of the shipped models, one per environment.

Sizes are chosen for interactive planning on 2 CPU cores: 16 patch tokens per frame (predictor
cost grows with tokens x frames), but from frames large enough that the objects are resolved
(PushT 128 px with 32-px patches: the T is ~30 x 7 px, the agent ~7 px across).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

from quantwm.models import DecoderConfig, PredictorConfig, ViTConfig
from quantwm.values import kind_of, parse, split_assignment


@dataclass(frozen=True)
class TrainPreset:
    image_size: int
    num_hist: int
    encoder: ViTConfig
    predictor: PredictorConfig
    decoder: DecoderConfig
    encoder_steps: int
    predictor_steps: int
    decoder_steps: int
    batch_size: int = 64
    encoder_lr: float = 1e-3
    predictor_lr: float = 5e-4  # DINO-WM
    decoder_lr: float = 3e-4  # DINO-WM
    mask_ratio: float = 0.3
    foreground_weight: float = 4.0
    proprio_loss_weight: float = 1.0  # weight of each proprio dim vs each visual dim (1 = DINO-WM's plain MSE)
    planning_horizon: int = 5  # planner steps of the relevance check (DINO-WM's horizon)


PRESETS: dict[str, TrainPreset] = {
    "wall": TrainPreset(
        image_size=64,
        num_hist=1,
        encoder=ViTConfig(img_size=64, patch_size=16, embed_dim=64, depth=4, num_heads=4, layerscale_init=0.1),
        predictor=PredictorConfig(depth=4, heads=4, dim_head=32, mlp_dim=256, dropout=0.0, emb_dropout=0.0),
        decoder=DecoderConfig(channel=32, n_res_block=2, n_res_channel=16, upsample_stride=4, dec_stride=4),
        encoder_steps=2500,
        predictor_steps=50000,  # v14, on 8000 training episodes (v10: 20000 on 1600, unseen success 0.88 vs 0.92)
        decoder_steps=1000,
        predictor_lr=2e-3,  # as PushT's (v10; v8 at 5e-4: relevance cost true / random 0.298 / 1.015 vs 0.269 / 1.535)
        proprio_loss_weight=5.0,
    ),
    "pusht": TrainPreset(
        image_size=128,
        num_hist=3,
        encoder=ViTConfig(img_size=128, patch_size=32, embed_dim=128, depth=4, num_heads=4, layerscale_init=0.1),
        predictor=PredictorConfig(depth=4, heads=4, dim_head=32, mlp_dim=512, dropout=0.0, emb_dropout=0.0),
        decoder=DecoderConfig(channel=32, n_res_block=2, n_res_channel=16, upsample_stride=4, dec_stride=8),
        encoder_steps=2000,
        predictor_steps=30000,  # v7, on 6000 training episodes (v6: 20000 on 2400, unseen success 0.78 vs 0.83)
        decoder_steps=500,
        predictor_lr=2e-3,  # 4x DINO-WM's: after 800 steps from the same init, loss 0.0122 vs 0.0140, relevance cost 0.034 vs 0.039
    ),
}


def get_preset(env: str, overrides: tuple[str, ...] = ()) -> TrainPreset:
    """The env's preset with ``overrides`` applied: "FIELD=VALUE" strings, nested fields dotted
    ("predictor.depth=6", "predictor_lr=2e-3")."""
    if env not in PRESETS:
        raise ValueError(f"no training preset for env {env!r}; valid: {sorted(PRESETS)}")
    preset = PRESETS[env]
    for item in overrides:
        try:
            name, value = split_assignment(item, "FIELD=VALUE")
        except ValueError as e:
            raise ValueError(f"preset override {e}") from None
        preset = _override(preset, name.split("."), value, item)
    return preset


def _override(obj: Any, path: list[str], value: str, item: str) -> Any:
    valid = {f.name: getattr(obj, f.name) for f in fields(obj)}
    if path[0] not in valid:
        raise ValueError(f"preset override {item!r}: no field {path[0]!r} in {type(obj).__name__}; valid: {', '.join(valid)}")
    current = valid[path[0]]
    if is_dataclass(current):
        if len(path) == 1:
            raise ValueError(f"preset override {item!r}: {path[0]} has fields, name one ({path[0]}.FIELD)")
        return replace(obj, **{path[0]: _override(current, path[1:], value, item)})
    if len(path) > 1:
        raise ValueError(f"preset override {item!r}: {path[0]} has no fields")
    try:
        parsed = parse(value, kind_of(current))
    except ValueError as e:
        raise ValueError(f"preset override {item!r}: {path[0]} {e}") from None
    return replace(obj, **{path[0]: parsed})
