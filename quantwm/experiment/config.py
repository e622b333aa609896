"""What one experiment is: a model, a quantization, a planner, episodes and the calibration that
feeds the quantizer - frozen, hashable and JSON round-trippable, so it can key a cache and live in
a URL or a sweep file.

The full-precision side and the calibration depend on fewer fields than the whole experiment
(``fp_key_fields``, ``CalibrationSpec``): twenty quantized variants of one model, planner and
episode set share one FP run and one calibration.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from quantwm.envs import ENV_NAMES
from quantwm.models.official import OfficialCheckpoint
from quantwm.planning import PLANNERS, PlannerSpec, planner_spec
from quantwm.planning.presets import DEFAULT_PRESET, PRESETS
from quantwm.quant import QuantConfig
from quantwm.runtime import DEVICES
from quantwm.values import conform

MAX_PROBE_STEPS = 50
# planner_spec keyword -> type; the overrides an experiment may set (as the CLI's eval flags)
PLANNER_OVERRIDES: dict[str, type] = {
    "samples": int, "topk": int, "opt_steps": int, "horizon": int, "budget": int, "replan_every": int,
    "replan_opt_steps": int, "warm_start": bool, "noise_beta": float, "action_clip": float, "keep_elites": int,
    "return_best": bool, "hold": bool, "objective_frames": str, "objective_base": float, "objective_alpha": float,
}
PLANNED = tuple(p for p in PLANNERS if p in ("mpc", "cem", "gd"))  # planners that use the model


def _int(value: Any, name: str, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {span}, got {value!r}")


@dataclass(frozen=True)
class ModelSource:
    """Which world model: the shipped model of ``env``, a quantwm ``checkpoint`` (.json), or an
    official DINO-WM run. The cache identifies it by its weights' sha256, not by these paths."""

    env: str
    checkpoint: str | None = None
    official: dict[str, Any] | None = None  # OfficialCheckpoint fields (root, name, dinov2_weights, stats, trust_checkpoint)

    def __post_init__(self) -> None:
        if self.env not in ENV_NAMES:
            raise ValueError(f"unknown env {self.env!r}; valid: {', '.join(ENV_NAMES)}")
        if self.checkpoint is not None and self.official is not None:
            raise ValueError("give a quantwm checkpoint or an official DINO-WM checkpoint, not both")
        if self.official is not None:
            known = {f.name for f in fields(OfficialCheckpoint)}
            if not isinstance(self.official, dict) or set(self.official) - known:
                raise ValueError(f"official checkpoint fields must be among {sorted(known)}")

    def official_checkpoint(self) -> OfficialCheckpoint | None:
        if self.official is None:
            return None
        o = self.official
        return OfficialCheckpoint(Path(o["root"]), o["name"], Path(o["dinov2_weights"]),
                                  Path(o["stats"]) if o.get("stats") else None, bool(o.get("trust_checkpoint", False)))

    def __hash__(self) -> int:
        return hash(json.dumps(asdict(self), sort_keys=True))


@dataclass(frozen=True)
class PlannerChoice:
    """A named planner under a preset, with overrides of its fields (sorted (name, value) pairs)."""

    name: str = "mpc"
    preset: str = DEFAULT_PRESET
    overrides: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.name not in PLANNED:
            raise ValueError(f"unknown planner {self.name!r}; valid: {', '.join(PLANNED)}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown planner preset {self.preset!r}; valid: {', '.join(PRESETS)}")
        pairs = {}
        for key, value in dict(self.overrides).items():
            if key not in PLANNER_OVERRIDES:
                raise ValueError(f"unknown planner override {key!r}; valid: {', '.join(PLANNER_OVERRIDES)}")
            if value is not None:
                try:
                    pairs[key] = conform(value, PLANNER_OVERRIDES[key])
                except ValueError as e:
                    raise ValueError(f"planner override {key} {e}") from None
        object.__setattr__(self, "overrides", tuple(sorted(pairs.items())))

    def spec(self, env: str) -> PlannerSpec:
        """The PlannerSpec on ``env`` (ValueError for values the planner rejects)."""
        return planner_spec(env, self.name, preset=self.preset, **dict(self.overrides))

    def resolved(self, env: str) -> dict[str, Any]:
        """The settings the preset and overrides resolve to on ``env``: part of every cache key that
        plans, so a changed preset recomputes instead of serving results planned under the old one."""
        return self.spec(env).to_dict()


@dataclass(frozen=True)
class CalibrationSpec:
    """The full-precision planning whose inputs calibrate the quantizer: ``episodes`` of the
    calibration split (never shared with evaluation) planned by ``planner`` under ``preset`` (by
    default one open-loop CEM plan per episode: more start states for the time than MPC's replans), of
    which ``size`` inputs per module group are kept (seeded) for fitting; ``holdout`` inputs of
    ``holdout_episodes`` further calibration episodes measure each layer's error out of sample
    (other episodes: inputs of the fitting episodes would flatter data-driven methods)."""

    episodes: int = 4
    planner: str = "cem"
    preset: str = DEFAULT_PRESET
    size: int = 256
    holdout: int = 64
    holdout_episodes: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        _int(self.episodes, "calibration episodes", 1)
        _int(self.size, "calibration size", 1)
        _int(self.holdout, "calibration holdout", 1)
        _int(self.holdout_episodes, "calibration holdout episodes", 1)
        _int(self.seed, "calibration seed", -2**63)
        self.planner_choice()

    def planner_choice(self) -> PlannerChoice:
        """The calibration planner as a PlannerChoice (ValueError for an unknown planner or preset)."""
        return PlannerChoice(self.planner, self.preset)


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: FP and quantized planning of the same ``episodes`` of evaluation ``seed``.

    ``probe_steps``: planner steps of the open-loop imagination probe (1..50); ``videos``: how many
    episodes (the first ones) get rendered videos; ``device``: cpu or cuda (float rounding differs,
    so it is part of the key)."""

    model: ModelSource
    quant: QuantConfig
    planner: PlannerChoice = field(default_factory=PlannerChoice)
    episodes: int = 10
    seed: int = 4242
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec)
    probe_steps: int = 10
    videos: int = 2
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not isinstance(self.quant, QuantConfig):
            raise ValueError("quant must be a QuantConfig")
        _int(self.episodes, "episodes", 1)
        _int(self.seed, "seed", -2**63)
        _int(self.probe_steps, "probe steps", 1, MAX_PROBE_STEPS)
        _int(self.videos, "videos", 0, self.episodes)
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}; valid: {', '.join(DEVICES)}")
        self.planner.spec(self.model.env)  # the planner's own checks (topk <= samples, ...)

    @property
    def env(self) -> str:
        return self.model.env

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["quant"] = self.quant.to_dict()
        out["planner"]["overrides"] = dict(self.planner.overrides)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "ExperimentConfig":
        known = {f.name for f in fields(ExperimentConfig)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown experiment config keys {sorted(unknown)}; valid: {sorted(known)}")
        kw = dict(d)
        kw["model"] = ModelSource(**d["model"])
        kw["quant"] = QuantConfig.from_dict(d["quant"])
        if "planner" in d:
            p = dict(d["planner"])
            p["overrides"] = tuple(sorted(dict(p.get("overrides", {})).items()))
            kw["planner"] = PlannerChoice(**p)
        if "calibration" in d:
            kw["calibration"] = CalibrationSpec(**d["calibration"])
        return ExperimentConfig(**kw)

    @staticmethod
    def from_json(text: str) -> "ExperimentConfig":
        return ExperimentConfig.from_dict(json.loads(text))

    def key_fields(self) -> dict[str, Any]:
        """What a whole experiment depends on (its cache key, with the weights' sha256): the config
        and what its planners resolve to."""
        return self.to_dict() | {"planner_resolved": self.planner.resolved(self.env),
                                 "calibration_planner_resolved": self.calibration.planner_choice().resolved(self.env)}

    def fp_fields(self) -> dict[str, Any]:
        """What the full-precision side depends on (its cache key, with the weights' sha256)."""
        d = self.to_dict()
        return ({k: d[k] for k in ("planner", "episodes", "seed", "device")}
                | {"env": self.env, "planner_resolved": self.planner.resolved(self.env)})

    def label(self) -> str:
        """A short human label of the quantization: 'RTN W3 per_channel predictor'."""
        q = self.quant
        parts = [q.method.upper()]
        for group, gq in q.groups.items():
            w = f"W{gq.weight.bits} {gq.weight.describe()}" if gq.weight.enabled else "W16"
            a = f" A{gq.activation.bits} {gq.activation.granularity}" if gq.activation.enabled else ""
            parts.append(f"{w}{a} {group}")
        if q.blocks:
            parts.append(" ".join(q.blocks))
        return " ".join(parts)
