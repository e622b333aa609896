"""The flat run options that the CLI flags, the dashboard's controls, a URL query string and a
sweep's ``--set`` all speak, turned into an ``ExperimentConfig`` in one place.

One quantization setting (weight bits / granularity / group size, activation bits / granularity,
attention matmuls) applies to every module in ``modules``; a ``--quant-config`` JSON file gives
full per-group control instead.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from quantwm.experiment.config import CalibrationSpec, ExperimentConfig, ModelSource, PlannerChoice
from quantwm.quant import GROUPS, METHODS, ActQuant, GroupQuant, QuantConfig, WeightQuant


def _csv(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    return tuple(s.strip() for s in items if s.strip())


@dataclass(frozen=True)
class RunOptions:
    """Everything a user picks for one experiment, as flat values (defaults: the CLI's)."""

    env: str = "wall"
    method: str = "rtn"
    w_bits: int = 4
    w_granularity: str = "per_channel"
    group_size: int | None = None
    a_bits: int = 16
    a_granularity: str = "per_token"
    attention_matmuls: bool = False
    modules: tuple[str, ...] = ("predictor",)
    blocks: tuple[str, ...] = ()
    quant_config: str | None = None  # a QuantConfig JSON file; replaces the quantization fields above
    planner: str = "mpc"
    preset: str = "quick"
    episodes: int = 10
    seed: int = 4242
    probe_steps: int = 10
    videos: int = 2
    calibration_episodes: int = 4
    calibration_size: int = 256
    device: str = "cpu"
    checkpoint: str | None = None
    official: tuple[tuple[str, Any], ...] = ()  # OfficialCheckpoint fields

    def __post_init__(self) -> None:
        object.__setattr__(self, "modules", _csv(self.modules))
        object.__setattr__(self, "blocks", _csv(self.blocks))
        unknown = [m for m in self.modules if m not in GROUPS]
        if unknown or not self.modules:
            raise ValueError(f"unknown module {', '.join(unknown) or '(none given)'}; valid: {', '.join(GROUPS)}")

    def quant(self) -> QuantConfig:
        """The QuantConfig these options name (ValueError naming valid choices)."""
        if self.quant_config is not None:
            try:
                return QuantConfig.from_json(Path(self.quant_config).read_text())
            except (OSError, json.JSONDecodeError, TypeError, KeyError) as err:
                raise ValueError(f"cannot read quant config {self.quant_config}: {err}") from None
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r} is invalid; valid: {', '.join(sorted(METHODS))}")
        setting = GroupQuant(
            WeightQuant(self.w_bits, granularity=self.w_granularity, group_size=self.group_size),
            ActQuant(self.a_bits, granularity=self.a_granularity), self.attention_matmuls)
        return QuantConfig(**dict.fromkeys(self.modules, setting), method=self.method, blocks=self.blocks)

    def config(self) -> ExperimentConfig:
        """The ExperimentConfig of these options."""
        model = ModelSource(self.env, self.checkpoint, dict(self.official) or None)
        return ExperimentConfig(
            model=model, quant=self.quant(), planner=PlannerChoice(self.planner, self.preset), episodes=self.episodes,
            seed=self.seed, calibration=CalibrationSpec(episodes=self.calibration_episodes, size=self.calibration_size),
            probe_steps=self.probe_steps, videos=min(self.videos, self.episodes), device=self.device)

    def with_values(self, **values: Any) -> "RunOptions":
        """A copy with fields set from strings or values (ValueError naming the valid fields)."""
        return replace(self, **{k: parse_value(k, v) for k, v in values.items()})


OPTION_FIELDS = {f.name: f for f in fields(RunOptions)}
_INT = {"w_bits", "group_size", "a_bits", "episodes", "seed", "probe_steps", "videos", "calibration_episodes",
        "calibration_size"}


def parse_value(name: str, value: Any) -> Any:
    """``value`` (a string from a flag, URL or ``--set``) as the type of option ``name``."""
    if name not in OPTION_FIELDS or name == "official":
        raise ValueError(f"unknown option {name!r}; valid: {', '.join(n for n in OPTION_FIELDS if n != 'official')}")
    if not isinstance(value, str):
        return value
    if name in _INT:
        if name == "group_size" and value.lower() in ("", "none"):
            return None
        if name in ("w_bits", "a_bits") and value.lower() == "fp":
            return 16
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if name == "attention_matmuls":
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"attention_matmuls must be true or false, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    if name in ("modules", "blocks"):
        return tuple(value.replace("+", ",").split(","))
    return value
