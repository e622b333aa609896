"""The study's findings, tested on our models: a named set of experiments per environment, their
verdicts (``quantwm.analysis.findings``), and compact results written to ``assets/findings/`` for
the dashboard's Findings tab (each naming the checkpoint's weights sha256 it was computed with).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from quantwm.analysis import findings as verdicts
from quantwm.envs import ENV_NAMES
from quantwm.experiment.options import RunOptions
from quantwm.experiment.run import Progress, loaded_model, run_experiment, run_opt_steps

FINDINGS_DIR = Path(__file__).resolve().parents[2] / "assets" / "findings"
EPISODES = 20
SEED = 4242

# role -> run options (RTN, quick MPC) of one experiment; every finding reads some of these roles
EXPERIMENTS: dict[str, dict[str, Any]] = {
    "pred W4 per_channel": dict(w_bits=4),
    "pred W4 group": dict(w_bits=4, w_granularity="group", group_size=32),
    "pred W3 per_channel": dict(w_bits=3),
    "pred W3 group": dict(w_bits=3, w_granularity="group", group_size=32),
    "pred W8A6 per_tensor": dict(w_bits=8, a_bits=6, a_granularity="per_tensor"),
    "pred W8A6 per_token": dict(w_bits=8, a_bits=6, a_granularity="per_token"),
    "pred W8A4 per_tensor": dict(w_bits=8, a_bits=4, a_granularity="per_tensor"),
    "pred W8A4 per_token": dict(w_bits=8, a_bits=4, a_granularity="per_token"),
    "enc W4 per_channel": dict(w_bits=4, modules=("encoder",)),
    "enc W3 per_channel": dict(w_bits=3, modules=("encoder",)),
}
OPT_STEPS_ROLE = "pred W3 per_channel"


@dataclass(frozen=True)
class Finding:
    """One claim of the study, the roles that test it, and the rule that judges them."""

    id: str
    title: str
    claim: str
    roles: tuple[str, ...]
    judge: Callable[..., dict[str, Any]]
    cross_env: bool = False  # judged on both environments together


FINDINGS: tuple[Finding, ...] = (
    Finding("group_wise", "Group-wise weights rescue low bits",
            "Group-wise weight quantization stabilises low-bit rollouts (4-bit close to FP; 3-bit still breaks).",
            ("pred W4 per_channel", "pred W4 group", "pred W3 per_channel", "pred W3 group"), verdicts.group_wise_rescue),
    Finding("act_granularity", "Activation granularity is inconsistent",
            "Per-tensor vs per-token activation quantization gives inconsistent benefits.",
            ("pred W8A6 per_tensor", "pred W8A6 per_token", "pred W8A4 per_tensor", "pred W8A4 per_token"),
            verdicts.activation_granularity),
    Finding("encoder_sensitivity", "The encoder is the sensitive module",
            "Sensitivity is highly asymmetric: the encoder is far more sensitive than the predictor.",
            ("enc W4 per_channel", "pred W4 per_channel", "enc W3 per_channel", "pred W3 per_channel"),
            verdicts.encoder_sensitivity),
    Finding("misalignment", "The objective stops predicting success",
            "Aggressive low-bit quantization breaks the alignment between the planning objective and success, "
            "and more optimiser iterations (up to 50) do not fix it.", (OPT_STEPS_ROLE,), verdicts.objective_misalignment),
    Finding("drift_vs_collapse", "PushT drifts, Wall collapses",
            "PushT failures tend to be planning drift; Wall failures tend to be representation collapse.",
            (OPT_STEPS_ROLE,), verdicts.drift_vs_collapse, cross_env=True),
)


def findings_options(env: str, role: str, episodes: int = EPISODES) -> RunOptions:
    return RunOptions(env=env, episodes=episodes, seed=SEED, videos=0).with_values(**EXPERIMENTS[role])


def run_env(env: str, episodes: int = EPISODES, progress: Callable[[str, str, int, int], None] | None = None
            ) -> dict[str, Any]:
    """Run (or fetch) every experiment of ``env`` and the optimiser-steps study -> the env's
    findings record: compact results by role, the opt-steps table, per-finding verdicts."""
    report = progress or (lambda role, stage, done, total: None)
    results: dict[str, dict[str, Any]] = {}
    for role in EXPERIMENTS:
        stage: Progress = lambda s, d, t, role=role: report(role, s, d, t)  # noqa: E731
        results[role] = verdicts.compact_result(run_experiment(findings_options(env, role, episodes).config(), stage).value)
    opt_config = findings_options(env, OPT_STEPS_ROLE, episodes).config()
    opt_steps = run_opt_steps(opt_config, progress=lambda s, d, t: report("optimiser steps", s, d, t))
    _, sha = loaded_model(opt_config.model)
    record = {"env": env, "weights_sha256": sha, "episodes": episodes, "seed": SEED, "results": results,
              "opt_steps": {k: opt_steps[k] for k in ("label", "steps", "rows", "verdict")}}
    record["verdicts"] = {f.id: f.judge(results, opt_steps) for f in FINDINGS if not f.cross_env}
    return record


def cross_env_verdicts(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Verdicts of findings judged across environments (needs every env's record)."""
    return {f.id: f.judge({env: r["results"] for env, r in records.items()}) for f in FINDINGS if f.cross_env}


def write_findings(records: dict[str, dict[str, Any]], out_dir: Path = FINDINGS_DIR) -> list[Path]:
    """Write ``<env>.json`` per record, atomically, plus ``summary.json`` (the cross-env verdicts) over
    these records and the other environments' records already in ``out_dir``: a run of one
    environment never rewrites another's, so two runs side by side keep both results."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payloads = {f"{env}.json": r for env, r in records.items()}
    every = {k: v for k, v in load_findings(out_dir).items() if k in ENV_NAMES} | records
    if {"wall", "pusht"} <= set(every):
        payloads["summary.json"] = {"findings": [{"id": f.id, "title": f.title, "claim": f.claim} for f in FINDINGS],
                                    "cross_env": cross_env_verdicts(every),
                                    "weights_sha256": {env: r["weights_sha256"] for env, r in every.items()}}
    paths = []
    for name, payload in payloads.items():
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(payload, allow_nan=False, separators=(",", ":")))
        tmp.replace(out_dir / name)
        paths.append(out_dir / name)
    return paths


def load_findings(out_dir: Path = FINDINGS_DIR) -> dict[str, dict[str, Any]]:
    """The shipped findings records by file stem (``wall``, ``pusht``, ``summary``); {} when none."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json"))}
