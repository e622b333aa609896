"""Print docs/findings.md's result tables from the stored findings (assets/findings/ENV.json).

    python benchmarks/findings_tables.py [--env wall pusht] [--dir assets/findings]

Per environment: one row per experiment (FP and quantized MPC success, the imagination probe's
drift from FP at its last step with its 95 % bootstrap interval, the quantized imagination's
distance from the real frames' encoding, the quantized encoder's error on the real start frame,
and the AUROC of the final objective for success, FP / quantized), then the open-loop
optimiser-steps table (success and mean imagined / true objective per side). The verdict prose
stays hand-written; these tables are regenerated whenever `quantwm findings` reruns.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantwm.experiment.findings import FINDINGS_DIR, load_findings  # noqa: E402


def experiments_table(record: dict[str, Any]) -> list[str]:
    """Markdown lines: one row per experiment of an env's findings record."""
    probe_steps = next(iter(record["results"].values()))["latent_error"]["steps"][-1]
    lines = [f"| experiment (RTN, quick MPC) | FP success | quantized success | drift from FP at step {probe_steps} [95 % CI] "
             "| quantized vs real | encoder alone | AUROC FP / quantized |", "|---|---|---|---|---|---|---|"]
    for role, r in record["results"].items():
        err, align = r["latent_error"], r["alignment"]
        drift = err["quant_vs_fp"]
        lines.append(f"| {role} | {r['fp']['success_rate']:.2f} | {r['quant']['success_rate']:.2f} "
                     f"| {drift['mean'][-1]:.3f} [{drift['lo'][-1]:.3f}, {drift['hi'][-1]:.3f}] "
                     f"| {err['quant_vs_true']['mean'][-1]:.3f} | {err['encoder']['mean'][0]:.3f} "
                     f"| {align['fp']['auroc_objective_success']:.2f} / {align['quant']['auroc_objective_success']:.2f} |")
    return lines


def opt_steps_table(opt: dict[str, Any]) -> list[str]:
    """Markdown lines: success and imagined / true objective per optimiser-step count, FP and quantized."""
    rows = {(r["side"], r["opt_steps"]): r for r in opt["rows"]}
    steps = opt["steps"]
    lines = ["| steps | " + " | ".join(map(str, steps)) + " |", "|---" * (len(steps) + 1) + "|"]
    for side in ("fp", "quant"):
        lines.append(f"| {side} success | " + " | ".join(f"{rows[side, s]['success_rate']:.2f}" for s in steps) + " |")
    for side in ("fp", "quant"):
        lines.append(f"| {side} objective imagined / true | " + " | ".join(
            f"{rows[side, s]['mean_objective']:.3f} / {rows[side, s]['mean_true_objective']:.3f}" for s in steps) + " |")
    return lines


def env_section(record: dict[str, Any]) -> str:
    """The markdown section of one environment's findings record."""
    head = (f"### {record['env']} ({record['episodes']} episodes, seed {record['seed']}, "
            f"weights sha256 `{record['weights_sha256'][:12]}`)")
    opt = record["opt_steps"]
    return "\n".join([head, "", *experiments_table(record), "",
                      f"Open-loop CEM, {opt['label']}, by optimiser steps "
                      "(success FP / quantized; imagined -> true objective):", "", *opt_steps_table(opt)])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--env", nargs="+", default=["wall", "pusht"])
    p.add_argument("--dir", type=Path, default=FINDINGS_DIR)
    args = p.parse_args()
    records = load_findings(args.dir)
    missing = [e for e in args.env if e not in records]
    if missing:
        sys.exit(f"no findings for {', '.join(missing)} in {args.dir}; run `quantwm findings --env {' '.join(missing)}`")
    print("\n\n".join(env_section(records[e]) for e in args.env))


if __name__ == "__main__":
    main()
