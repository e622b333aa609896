"""``run_experiment(config)``: full-precision vs quantized planning on identical episodes.

Stages (each reported to ``progress(stage, done, total)``): calibrating (FP planning on the
calibration split, cached per module group), quantizing, planning FP (cached on its own key: the
FP side does not depend on the quantization), planning quantized, imagination probe, rendering.
Both sides plan the same episodes with the same per-episode sampler noise, and every plan's true
objective is rated by the FP encoder. The result (JSON + media) is stored in the results cache
under the config, the schema version and the weights' sha256.
"""
from __future__ import annotations

import functools
import hashlib
import io
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from quantwm import analysis
from quantwm.cache import ResultsCache, entry_key
from quantwm.envs.episodes import EvalEpisode, make_eval_episodes
from quantwm.experiment.config import ExperimentConfig, ModelSource, PlannerChoice
from quantwm.experiment.evaluation import EvalResult, load_model
from quantwm.experiment.media import render_videos
from quantwm.experiment.probe import imagination_probe
from quantwm.models import WorldModel
from quantwm.planning import EpisodeRecord, run_episodes
from quantwm.quant import Calibration, capture_calibration, quantize
from quantwm.quant.layout import make_plan
from quantwm.quant.modules import QuantizedLayer
from quantwm.runtime import check_device

Progress = Callable[[str, int, int], None]
STAGES = ("calibrating", "quantizing", "planning FP", "planning quantized", "imagination probe", "rendering")
BATCH_EPISODES = 10  # episodes planned together (results do not depend on it)
RESULT_SCHEMA = "quantwm.experiment/1"  # the result JSON's layout; part of every key, so a new layout recomputes


def _quiet(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class ExperimentResult:
    """A finished experiment: ``value`` is the result JSON (schema in docs/experiments.md), ``media`` name ->
    file (videos ``imagination_<episode>.mp4`` / ``planning_<episode>.mp4``, arrays ``fp.npz`` /
    ``quant.npz``); ``cached`` tells whether it came from the cache."""

    key: str
    value: dict[str, Any]
    media: dict[str, Path]
    cached: bool


# ---- models ---------------------------------------------------------------------------------
def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and persistent buffer (names, dtypes, shapes, bytes): identifies
    a model whatever file or format it came from."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def loaded_model(source: ModelSource, device: str = "cpu") -> tuple[WorldModel, str]:
    """The FP world model of ``source`` on ``device`` and its weights' sha256 (kept loaded: the
    dashboard and sweeps reuse it)."""
    model = load_model(source.env, source.checkpoint, device, official=source.official_checkpoint())
    return model, weights_sha256(model)


def check_config(config: ExperimentConfig, model: WorldModel) -> None:
    """Model-dependent checks (blocks, group sizes, a decoder to quantize) before any work."""
    check_device(config.device)
    if "decoder" in config.quant.groups and model.decoder is None:
        raise ValueError("this world model has no decoder to quantize; valid groups: encoder, predictor, "
                         "action_encoder, proprio_encoder")
    make_plan(model, config.quant)


def experiment_key(config: ExperimentConfig, sha: str) -> str:
    return entry_key("experiment", config.key_fields() | {"result_schema": RESULT_SCHEMA}, sha)


# ---- calibration ------------------------------------------------------------------------------
def _pack(batches: list[tuple[torch.Tensor, ...]]) -> bytes:
    return save_tensors({f"{i}.{j}": t.contiguous() for i, batch in enumerate(batches) for j, t in enumerate(batch)})


def _unpack(data: bytes) -> list[tuple[torch.Tensor, ...]]:
    tensors = load_tensors(data)
    n = 1 + max(int(k.split(".")[0]) for k in tensors)
    return [tuple(tensors[k] for k in sorted((k for k in tensors if int(k.split(".")[0]) == i), key=lambda k: int(k.split(".")[1])))
            for i in range(n)]


def _capture(fp: WorldModel, config: ExperimentConfig, groups: list[str]) -> tuple[Calibration, Calibration]:
    """(fit, held-out) calibration inputs of ``groups``, from FP planning of the calibration split's
    first ``episodes`` and of the ``holdout_episodes`` after them (the decoder's from decoding the
    plans' imagined frames, as the videos do)."""
    spec = config.calibration
    eps = make_eval_episodes(config.env, spec.episodes + spec.holdout_episodes, spec.seed, split="calib")
    plan_spec = spec.planner_choice().spec(config.env)
    decode = "decoder" in groups

    def planning(episodes: list[EvalEpisode]) -> Callable[[], None]:
        def run() -> None:
            records = run_episodes(fp, config.env, episodes, plan_spec, batch_size=len(episodes), record_latents=decode)
            if decode:
                with torch.inference_mode():
                    for r in records:
                        fp.decode(torch.from_numpy(np.concatenate(r.imagined_visual))[:, None])
        return run

    fit = capture_calibration(fp, groups, planning(eps[: spec.episodes]), size=spec.size, seed=spec.seed)
    held = capture_calibration(fp, groups, planning(eps[spec.episodes :]), size=spec.holdout, seed=spec.seed)
    return fit, held


def calibration_for(fp: WorldModel, sha: str, config: ExperimentConfig, cache: ResultsCache | None,
                    progress: Progress = _quiet) -> tuple[Calibration, Calibration]:
    """(fit, held-out) calibration of the quantized groups; each group cached on its own key."""
    groups = list(config.quant.groups)
    planner = config.calibration.planner_choice().resolved(config.env)
    keys = {g: entry_key("calibration", {**config.to_dict()["calibration"], "group": g, "device": config.device,
                                         "env": config.env, "planner_resolved": planner}, sha) for g in groups}
    parts: dict[str, tuple[list, list]] = {}
    for g in groups:
        entry = cache.get(keys[g]) if cache else None
        if entry is not None:
            parts[g] = (_unpack(entry.media["fit.safetensors"].read_bytes()), _unpack(entry.media["held.safetensors"].read_bytes()))
    missing = [g for g in groups if g not in parts]
    progress("calibrating", len(groups) - len(missing), len(groups))
    if missing:
        fit, held = _capture(fp, config, missing)
        for g in missing:
            parts[g] = (fit.inputs[g], held.inputs[g])
            if cache:
                cache.put(keys[g], "calibration", {"group": g, "fit_samples": fit.size(g), "held_out_samples": held.size(g)},
                          media={"fit.safetensors": _pack(fit.inputs[g]), "held.safetensors": _pack(held.inputs[g])},
                          meta={"env": config.env, "label": f"calibration {g}"})
        progress("calibrating", len(groups), len(groups))
    return Calibration({g: p[0] for g, p in parts.items()}), Calibration({g: p[1] for g, p in parts.items()})


# ---- planning sides -----------------------------------------------------------------------------
def _episodes(config: ExperimentConfig) -> list[EvalEpisode]:
    return make_eval_episodes(config.env, config.episodes, config.seed)


def plan_side(model: WorldModel, judge: WorldModel, config: ExperimentConfig, stage: str,
              progress: Progress = _quiet) -> tuple[EvalResult, list[EpisodeRecord]]:
    """Plan the config's episodes with ``model``, true objectives rated by ``judge``'s encoder;
    frames and each plan's imagined latents are recorded."""
    spec = config.planner.spec(config.env)
    eps = _episodes(config)
    done = [0]

    def tick(_record: EpisodeRecord) -> None:
        done[0] += 1
        progress(stage, done[0], len(eps))

    progress(stage, 0, len(eps))
    t0 = time.time()
    records = run_episodes(model, config.env, eps, spec, batch_size=BATCH_EPISODES, record_frames=True, progress=tick,
                           judge=judge, record_latents=True)
    return EvalResult(config.env, config.planner.name, spec, records, time.time() - t0), records


def side_json(result: EvalResult) -> dict[str, Any]:
    """{"summary", "episodes"} of one side (episodes without frames / latents, which go to npz)."""
    summary = result.summary() | {"mean_final_objective": statistics.fmean(r.final_objective for r in result.records)}
    return {"summary": summary, "episodes": [r.to_json() for r in result.records]}


def side_arrays(records: list[EpisodeRecord]) -> bytes:
    """npz of each episode's real frames (uint8) and its plans' imagined visual latents (float16,
    concatenated over plans, with the plans' lengths)."""
    arrays: dict[str, np.ndarray] = {}
    for r in records:
        arrays[f"frames_{r.index}"] = r.frames
        arrays[f"imagined_{r.index}"] = np.concatenate(r.imagined_visual).astype(np.float16)
        arrays[f"imagined_len_{r.index}"] = np.array([len(v) for v in r.imagined_visual])
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def fp_side(fp: WorldModel, sha: str, config: ExperimentConfig, cache: ResultsCache | None, progress: Progress = _quiet
            ) -> tuple[dict[str, Any], bytes, list[EpisodeRecord] | None]:
    """The FP side (json, the arrays file's bytes, records or None when cached), on its own cache
    key. The arrays are read at once: another process may replace the entry, and its media with
    it, while this experiment plans its quantized side."""
    planner = config.planner
    key = entry_key("fp", config.fp_fields() | {"result_schema": RESULT_SCHEMA}, sha)
    entry = cache.get(key) if cache else None
    if entry is not None:
        progress("planning FP", config.episodes, config.episodes)
        return entry.value, entry.media["fp.npz"].read_bytes(), None
    result, records = plan_side(fp, fp, config, "planning FP", progress)
    value, data = side_json(result), side_arrays(records)
    if cache:
        cache.put(key, "fp", value, media={"fp.npz": data},
                  meta={"env": config.env, "label": f"FP {planner.name} {planner.preset}", "episodes": config.episodes})
    return value, data, records


def _records_from_json(episodes: list[dict[str, Any]]) -> list[EpisodeRecord]:
    """Enough of each episode for the probe (its first plan)."""
    return [EpisodeRecord(index=e["index"], seed=e["seed"], success=e["success"], state_distance=e["state_distance"],
                          final_objective=e["final_objective"], objective_traces=[], plan_objectives=e["plan_objectives"],
                          planned_actions=[np.asarray(a) for a in e["planned_actions"]], plan_starts=e["plan_starts"],
                          env_actions=np.zeros((0, 0)), states=np.zeros((0, 0)), wall_time_s=e["wall_time_s"])
            for e in episodes]


def quant_model_stats(quantized: torch.nn.Module) -> dict[str, Any]:
    """Sizes and effective bits per weight of the quantized layers."""
    q = quantized.quantization
    layers = [m for m in quantized.modules() if isinstance(m, QuantizedLayer)]
    n = sum(m.layer.weight.numel() for m in layers)
    return {"fp_mb": q.fp_bytes / 2**20, "quantized_mb": q.quantized_bytes / 2**20,
            "effective_bits": sum(m.weight_storage_bits for m in layers) / n if n else 32.0, "quantized_layers": len(layers)}


# ---- the experiment ---------------------------------------------------------------------------
def cached_result(config: ExperimentConfig, cache: ResultsCache | None = None) -> ExperimentResult | None:
    """The experiment's stored result, or None (loads the model to learn its weights' sha256)."""
    fp, sha = loaded_model(config.model, config.device)
    key = experiment_key(config, sha)
    entry = (cache or ResultsCache()).get(key)
    return None if entry is None else ExperimentResult(key, entry.value, entry.media, cached=True)


def run_experiment(config: ExperimentConfig, progress: Progress | None = None, *, cache: ResultsCache | None = None,
                   use_cache: bool = True, work_dir: Path | None = None) -> ExperimentResult:
    """Run (or fetch from the cache) one experiment; see the module docstring."""
    progress = progress or _quiet
    fp, sha = loaded_model(config.model, config.device)
    check_config(config, fp)
    cache = (cache or ResultsCache()) if use_cache else None
    key = experiment_key(config, sha)
    if cache is not None and (entry := cache.get(key)) is not None:
        return ExperimentResult(key, entry.value, entry.media, cached=True)
    timing: dict[str, float] = {}
    t = time.time()
    fit, held = calibration_for(fp, sha, config, cache, progress)
    timing["calibration_s"] = time.time() - t

    progress("quantizing", 0, 1)
    t = time.time()
    quantized = quantize(fp, config.quant, fit, report_calibration=held).requires_grad_(False)
    timing["quantization_s"] = time.time() - t
    progress("quantizing", 1, 1)

    t = time.time()
    fp_value, fp_arrays, fp_records = fp_side(fp, sha, config, cache, progress)
    timing["fp_planning_s"] = time.time() - t
    t = time.time()
    q_result, q_records = plan_side(quantized, fp, config, "planning quantized", progress)
    timing["quant_planning_s"] = time.time() - t
    q_value = side_json(q_result)

    progress("imagination probe", 0, 1)
    t = time.time()
    video_eps = {e["index"] for e in fp_value["episodes"][: config.videos]}
    probe, traces = imagination_probe(fp, quantized, config.env, _episodes(config),
                                      fp_records or _records_from_json(fp_value["episodes"]), config.probe_steps, video_eps)
    timing["probe_s"] = time.time() - t
    progress("imagination probe", 1, 1)

    value = {
        "schema": RESULT_SCHEMA, "key": key, "weights_sha256": sha, "label": config.label(),
        "config": config.to_dict(), "fp": fp_value, "quant": q_value,
        "latent_error": latent_error_json(probe, config.probe_steps), "probe": probe,
        "alignment": analysis.compare_alignment(fp_value["episodes"], q_value["episodes"]),
        "layers": _layers_json(quantized), "model": quant_model_stats(quantized),
    }
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        t = time.time()
        media = {"fp.npz": _write(Path(tmp) / "fp.npz", fp_arrays),
                 "quant.npz": _write(Path(tmp) / "quant.npz", side_arrays(q_records))}
        media |= render_videos(fp, quantized, config, fp_value, q_value, media["fp.npz"], media["quant.npz"], traces,
                               Path(tmp), progress)
        timing["rendering_s"] = time.time() - t
        value["videos"] = sorted(n for n in media if n.endswith(".mp4"))
        value["timing"] = timing | {
            "fp_s_per_episode": fp_value["summary"]["seconds_per_episode"],
            "quant_s_per_episode": q_value["summary"]["seconds_per_episode"]}
        if cache is None:
            keep = Path(tempfile.mkdtemp(prefix="quantwm-exp-"))
            paths = {n: _write(keep / n, Path(p).read_bytes()) for n, p in media.items()}
            return ExperimentResult(key, value, paths, cached=False)
        entry = cache.put(key, "experiment", value, media=media, meta=_meta(config, value))
    return ExperimentResult(key, entry.value, entry.media, cached=False)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _meta(config: ExperimentConfig, value: dict[str, Any]) -> dict[str, Any]:
    """What ``quantwm cache list`` and the Compare tab show without opening the value."""
    q = config.quant
    first = next(iter(q.groups.values()))
    return {"env": config.env, "label": config.label(), "method": q.method, "modules": list(q.groups),
            "w_bits": first.weight.bits, "a_bits": first.activation.bits, "w_granularity": first.weight.describe(),
            "planner": config.planner.name, "episodes": config.episodes, "seed": config.seed,
            "fp_success": value["fp"]["summary"]["success_rate"], "quant_success": value["quant"]["summary"]["success_rate"]}


def latent_error_json(probe: list[dict], steps: int) -> dict[str, Any]:
    """Mean and 95 % bootstrap band per probe step: visual pairs at the top level, proprio under
    ``proprio`` (per-episode curves are in ``probe``)."""
    out: dict[str, Any] = {"steps": list(range(steps + 1))}
    if not probe:
        return out
    for part in ("visual", "proprio"):
        curves = {name: {k: c[k] for k in ("mean", "lo", "hi")}
                  for name, c in analysis.latent_error_curves(probe, part=part).items()}
        if part == "visual":
            out |= curves
        else:
            out["proprio"] = curves
    return out


def _layers_json(quantized: torch.nn.Module) -> list[dict[str, Any]]:
    rows = quantized.quantization.report.to_dict("records")
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()} for row in rows]


OPT_STEPS = (1, 2, 5, 10, 20, 30, 50)


def run_opt_steps(config: ExperimentConfig, steps: tuple[int, ...] = OPT_STEPS, progress: Progress | None = None, *,
                  cache: ResultsCache | None = None, use_cache: bool = True) -> dict[str, Any]:
    """Does more optimisation help? Open-loop CEM (the config's preset, ``opt_steps`` = each of
    ``steps``) on the experiment's episodes, FP and quantized: one row per (side, steps) with
    success and imagined / true objective, and a verdict (``quantwm.analysis.opt_steps_table``).
    Each FP run is cached as an FP side; the whole table on its own key."""
    if not steps or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in steps):
        raise ValueError(f"optimiser steps must be integers >= 1, got {steps!r}")
    progress = progress or _quiet
    fp, sha = loaded_model(config.model, config.device)
    check_config(config, fp)
    cache = (cache or ResultsCache()) if use_cache else None
    key = entry_key("opt_steps", config.key_fields() | {"opt_steps": list(steps), "result_schema": RESULT_SCHEMA}, sha)
    if cache is not None and (entry := cache.get(key)) is not None:
        return entry.value
    fit, _held = calibration_for(fp, sha, config, cache, progress)
    progress("quantizing", 0, 1)
    quantized = quantize(fp, config.quant, fit).requires_grad_(False)
    progress("quantizing", 1, 1)
    runs = []
    for n, s in enumerate(steps):
        progress("optimiser steps", n, len(steps))
        variant = replace(config, planner=PlannerChoice("cem", config.planner.preset, overrides=(("opt_steps", s),)))
        fp_value, _, _ = fp_side(fp, sha, variant, cache)
        q_result, _ = plan_side(quantized, fp, variant, "planning quantized")
        runs += [{"opt_steps": s, "side": "fp", "episodes": fp_value["episodes"]},
                 {"opt_steps": s, "side": "quant", "episodes": side_json(q_result)["episodes"]}]
    progress("optimiser steps", len(steps), len(steps))
    rows = analysis.opt_steps_table(runs)
    value = {"key": key, "weights_sha256": sha, "label": config.label(), "config": config.to_dict(), "steps": list(steps),
             "rows": rows, "verdict": analysis.opt_steps_verdict(rows)}
    if cache is not None:
        cache.put(key, "opt_steps", value, meta={"env": config.env, "label": f"optimiser steps: {config.label()}"})
    return value
