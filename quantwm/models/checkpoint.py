"""Checkpoints of quantwm's own models: ``NAME.safetensors`` (weights) beside ``NAME.json``
(``{"config": WorldModelConfig, "training": {...}}``, the training record: command, seed, data
size, epochs, wall time). Official DINO-WM checkpoints are read elsewhere.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from quantwm.models.world_model import WorldModel, WorldModelConfig

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SHIPPED = {"pusht": ASSETS / "pusht.json", "wall": ASSETS / "wall.json"}


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or whose config does not match its weights."""


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    base = p.with_suffix("") if p.suffix in (".json", ".safetensors") else p
    return base.with_suffix(".json"), base.with_suffix(".safetensors")


def save_checkpoint(model: WorldModel, path: str | Path, training: dict[str, Any] | None = None) -> Path:
    """Write weights and config atomically (temp files, then rename); returns the JSON path."""
    meta_path, weights_path = _paths(path)
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp_w, tmp_m = weights_path.with_suffix(".safetensors.tmp"), meta_path.with_suffix(".json.tmp")
    save_file(state, str(tmp_w))
    tmp_m.write_text(json.dumps({"config": model.cfg.to_dict(), "training": training or {}}, indent=1))
    os.replace(tmp_w, weights_path)
    os.replace(tmp_m, meta_path)
    return meta_path


def read_meta(path: str | Path) -> dict[str, Any]:
    meta_path, _ = _paths(path)
    if not meta_path.is_file():
        raise CheckpointError(f"checkpoint config {meta_path} not found")
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint config {meta_path} is not valid JSON: {e}") from None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
    """Build the model from ``NAME.json`` and load ``NAME.safetensors`` strictly (eval mode)."""
    meta_path, weights_path = _paths(path)
    meta = read_meta(meta_path)
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint weights {weights_path} not found")
    try:
        model = WorldModel(WorldModelConfig.from_dict(meta["config"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint config {meta_path} is invalid: {e}") from None
    load_state_strict(model, load_file(str(weights_path)), f"weights {weights_path} do not match config {meta_path}")
    return model.to(device).eval()


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error listing what does not match."""
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{kind}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for kind, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape (got vs expected)", wrong))
            if keys
        )
        raise CheckpointError(f"{what} ({detail})")
    module.load_state_dict(state, strict=True)


def shipped_checkpoint(env: str) -> Path:
    """Path of the shipped checkpoint for ``env`` (ValueError naming the envs that have one)."""
    if env not in SHIPPED:
        raise ValueError(f"no shipped checkpoint for env {env!r}; valid: {sorted(SHIPPED)}")
    return SHIPPED[env]
