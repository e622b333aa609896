"""Reproduce README's planning table: every planner on the same validation episodes, via `quantwm eval`.

    python benchmarks/eval_table.py --env wall --episodes 50 [--planners mpc cem gd random] [--preset quick]
                                    [--batch-episodes 10] [--threads 2]

Each planner runs in its own `quantwm eval` process (the CLI's code path, with the do-nothing
baseline beside it); per-episode records land in cache/eval/ENV_PLANNER.json (quick preset) or
cache/eval/ENV_PLANNER_PRESET.json. Prints a markdown row per planner: success rate, mean final
state distance, wall time per episode (batches amortised) and in total.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--env", required=True)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=99)
    p.add_argument("--planners", nargs="+", default=["mpc", "cem", "gd", "random"])
    p.add_argument("--batch-episodes", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--preset", default="quick")
    args = p.parse_args()
    rows = {}
    for planner in args.planners:
        out = ROOT / "cache" / "eval" / f"{args.env}_{planner}{'' if args.preset == 'quick' else '_' + args.preset}.json"
        cmd = [sys.executable, "-m", "quantwm.cli", "--threads", str(args.threads), "eval", "--env", args.env, "--planner", planner,
               "--batch-episodes", str(args.batch_episodes), "--preset", args.preset,
               "--episodes", str(args.episodes), "--seed", str(args.seed), "--json", str(out), "--quiet"]
        subprocess.run(cmd, cwd=ROOT, check=True)
        for result in json.loads(out.read_text())["results"]:
            rows[result["summary"]["planner"]] = result["summary"]
    print(f"\n| {args.env} planner | success | mean state distance | s / episode (batches of {args.batch_episodes}) | total (s) |")
    print("|---|---|---|---|---|")
    for name, s in rows.items():
        print(f"| {name} | {s['success_rate']:.2f} | {s['mean_state_distance']:.1f} | {s['seconds_per_episode']:.2f} | {s['wall_time_s']:.0f} |")


if __name__ == "__main__":
    main()
