"""Compare world-model checkpoints of one environment on the same episodes: docs/models.md's tables.

    python benchmarks/model_table.py --env pusht --checkpoints assets/pusht.json cache/pusht_v5/pusht.json
        [--episodes 100] [--seed 20261129] [--planner mpc] [--preset quick] [--windows 200] [--threads 2]
        [--set horizon=12 ...] [--json cache/eval/model_table_pusht.json]

Per checkpoint: latent quality on the validation split (``quantwm.training.quality``: open-loop
visual latent error after 1 and 5 planner steps over the copied context frame, decoded PSNR of the
real frames' latents and of the imagined ones after 1 and 5 steps), then the planner's success on
the same evaluation episodes with a 95 % Wilson interval, the do-nothing baseline beside it, and
the seconds per episode with batches amortised (and, on PushT, how far the goals move the T).
``--set`` overrides the planner preset (``planner_spec`` keywords), so planner ablations on one
checkpoint use the same table. Prints one markdown row per checkpoint.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantwm.envs.dataset import dataset_dir, load_split  # noqa: E402
from quantwm.envs.episodes import goal_motion_stats, make_eval_episodes  # noqa: E402
from quantwm.experiment import load_model  # noqa: E402
from quantwm.experiment.config import PLANNER_OVERRIDES  # noqa: E402
from quantwm.planning import planner_spec, run_episodes  # noqa: E402
from quantwm.runtime import configure_runtime  # noqa: E402
from quantwm.training.quality import latent_quality  # noqa: E402
from quantwm.values import parse, split_assignment  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--env", required=True, choices=["wall", "pusht"])
    p.add_argument("--checkpoints", nargs="+", required=True, help="quantwm checkpoint .json files")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=20261129)
    p.add_argument("--planner", default="mpc")
    p.add_argument("--preset", default="quick")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="planner_spec keyword, e.g. horizon=12")
    p.add_argument("--windows", type=int, default=200)
    p.add_argument("--batch-episodes", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="write every row (and each episode's success) here")
    args = p.parse_args()
    configure_runtime(args.threads)
    overrides = {}
    for item in args.set:
        try:
            key, value = split_assignment(item, "KEY=VALUE")
            key = key.replace("-", "_")
            if key not in PLANNER_OVERRIDES:
                raise ValueError(f"unknown planner setting {key!r}; valid: {', '.join(PLANNER_OVERRIDES)}")
            overrides[key] = parse(value, PLANNER_OVERRIDES[key])
        except ValueError as e:
            raise SystemExit(f"--set {item!r}: {e}") from None
    spec = planner_spec(args.env, args.planner, preset=args.preset, **overrides)
    idle = planner_spec(args.env, "do_nothing", preset=args.preset)
    val = load_split(dataset_dir(args.env), "val")
    episodes = make_eval_episodes(args.env, args.episodes, args.seed)
    if args.env == "pusht":  # the goals must still require moving the T
        print("PushT goal motion:", json.dumps({k: round(v, 3) for k, v in goal_motion_stats(episodes).items()}), file=sys.stderr)
    rows = []
    for ckpt in args.checkpoints:
        model = load_model(args.env, ckpt)
        q = latent_quality(model, val, windows=args.windows, steps=5)
        start = time.perf_counter()
        records = run_episodes(model, args.env, episodes, spec, batch_size=args.batch_episodes)
        seconds = (time.perf_counter() - start) / len(records)  # batches amortised, as `quantwm eval` reports
        baseline = run_episodes(model, args.env, episodes, idle, batch_size=args.batch_episodes)
        wins = sum(r.success for r in records)
        ci = stats.binomtest(wins, len(records)).proportion_ci(0.95, method="wilson")
        rows.append({"checkpoint": ckpt, "quality": q.to_dict(), "success": wins / len(records), "ci": [ci.low, ci.high],
                     "do_nothing": sum(r.success for r in baseline) / len(baseline),
                     "seconds_per_episode": seconds,
                     "failed": [r.index for r in records if not r.success]})
        print(f"{ckpt}: success {rows[-1]['success']:.2f}, failed {rows[-1]['failed']}", file=sys.stderr, flush=True)
    print(f"\n{args.env}, {args.planner} ({args.preset}{', ' + ', '.join(args.set) if args.set else ''}), "
          f"{args.episodes} episodes of seed {args.seed}; latent quality on {args.windows} validation windows")
    print("| checkpoint | visual error / copied frame, 1 / 5 steps | PSNR dB: decoded real / imagined 1 / 5 steps "
          "| success (95 % CI) | do-nothing | s / episode (batches amortised) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        q = r["quality"]
        v = [q["visual_mse"][k] / q["copy_mse"][k] for k in (0, -1)]
        psnr = f"{q['recon_psnr']:.1f} / {q['pred_psnr'][0]:.1f} / {q['pred_psnr'][-1]:.1f}" if q["recon_psnr"] is not None else "-"
        print(f"| {r['checkpoint']} | {v[0]:.2f} / {v[1]:.2f} | {psnr} | {r['success']:.2f} ({r['ci'][0]:.2f}-{r['ci'][1]:.2f}) "
              f"| {r['do_nothing']:.2f} | {r['seconds_per_episode']:.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
