"""`quantwm` command line: data, train, eval. Thin: parses arguments and calls the library."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from quantwm.envs import ENV_NAMES
from quantwm.models.official import OfficialCheckpoint
from quantwm.planning import FRAME_WEIGHTS, PLANNERS
from quantwm.planning.presets import DEFAULT_PRESET, PRESETS
from quantwm.runtime import configure_runtime


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def _cmd_data(args: argparse.Namespace) -> None:
    from quantwm.envs.dataset import DEFAULT_DATASETS, dataset_dir, generate_dataset, write_plan_replays

    out_dir = Path(args.out) if args.out else dataset_dir(args.env)
    if args.plans:
        from quantwm.experiment import load_model, plan_replays

        if args.checkpoint is None:
            raise ValueError("--plans needs --checkpoint: the model that planned them (its action normalisation)")
        starts, actions, source = plan_replays(load_model(args.env, args.checkpoint), [Path(p) for p in args.plans])
        source |= {"checkpoint": args.checkpoint, "command": "quantwm " + shlex.join(sys.argv[1:])}
        write_plan_replays(out_dir, starts, actions, source)
        print(f"wrote {len(starts)} plan replays to {out_dir}/plans.npz")
        return
    cfg = DEFAULT_DATASETS[args.env]
    cfg = replace(cfg, **{k: v for k, v in (("n_episodes", args.episodes), ("seed", args.seed)) if v is not None})
    def progress(done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            print(f"  {done}/{total} episodes", flush=True)

    out = generate_dataset(cfg, out_dir, progress=progress)
    print(f"wrote {out}")


def _cmd_train(args: argparse.Namespace) -> None:
    from quantwm.envs.dataset import dataset_dir
    from quantwm.models.checkpoint import shipped_checkpoint
    from quantwm.training.trainer import TrainConfig, train

    cfg = TrainConfig(
        env=args.env, data_dir=Path(args.data_dir) if args.data_dir else dataset_dir(args.env),
        run_dir=Path(args.run_dir or f"cache/runs/{args.env}"), out=Path(args.out) if args.out else shipped_checkpoint(args.env),
        seed=args.seed, steps_scale=args.steps_scale, preset_overrides=tuple(args.set), command="quantwm " + shlex.join(sys.argv[1:]), device=args.device,
    )
    train(cfg)


def _cmd_eval(args: argparse.Namespace) -> None:
    from quantwm.experiment import evaluate, load_model

    model = load_model(args.env, args.checkpoint, args.device, official=official_from_args(args))
    overrides = {"samples": args.samples, "topk": args.topk, "opt_steps": args.opt_steps, "horizon": args.horizon,
                 "budget": args.budget, "replan_every": args.replan_every, "warm_start": args.warm_start,
                 "noise_beta": args.noise_beta, "action_clip": args.action_clip, "keep_elites": args.keep_elites,
                 "return_best": args.return_best, "replan_opt_steps": args.replan_opt_steps, "hold": args.hold, "objective_frames": args.objective, "objective_base": args.objective_base}
    planners = [args.planner, "do_nothing"] + (["random"] if args.random_baseline else [])
    results = []
    for planner in planners:
        res = evaluate(model, args.env, planner, args.episodes, args.seed, batch_size=args.batch_episodes,
                       progress=(lambda r: print(f"  episode {r.index}: success={r.success} dist={r.state_distance:.2f} "
                                                 f"objective={r.final_objective:.4f} {r.wall_time_s:.1f}s", flush=True))
                       if planner == args.planner and not args.quiet else None,
                       preset=args.preset,
                       **(overrides if planner == args.planner else {"budget": args.budget, "horizon": args.horizon}))
        s = res.summary()
        print(f"{args.env} {planner}: success {s['success_rate']:.2f} over {s['episodes']} episodes, mean state distance "
              f"{s['mean_state_distance']:.2f}, {s['seconds_per_episode']:.2f} s/episode, total {s['wall_time_s']:.1f}s",
              flush=True)
        if "episodes_with_reference" in s and planner not in ("do_nothing", "random"):
            optimism = {k: "-" if s[f"median_optimism_{k}"] is None else f"{s[f'median_optimism_{k}']:.3f}"
                        for k in ("failed", "succeeded")}
            print(f"  why failures? the model rated its first plan below the episode's reference actions in "
                  f"{s['first_plan_rated_below_reference']:.0%} of episodes; failures whose first plan really scores "
                  f"no worse than the reference (objective): {s['failures_objective_prefers_own_plan']}, else where the "
                  f"model rated a plan below it (model): {s['failures_model_prefers_own_plan']}, else (search): "
                  f"{s['failures_search_missed_reference']}; median optimism of chosen plans (true - imagined "
                  f"objective): failed {optimism['failed']}, succeeded {optimism['succeeded']}", flush=True)
        results.append(res)
    if args.json:
        out = {"command": "quantwm " + shlex.join(sys.argv[1:]),
               "results": [{"summary": r.summary(), "episodes": [e.to_json() for e in r.records]} for r in results]}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out))
        print(f"wrote {args.json}")


def add_official_arguments(p: argparse.ArgumentParser) -> None:
    """Flags naming an official DINO-WM checkpoint (see ``quantwm.models.official``)."""
    g = p.add_argument_group("official DINO-WM checkpoint (instead of a quantwm model)")
    g.add_argument("--checkpoint-root", metavar="ROOT", help="DINO-WM root holding outputs/NAME/{hydra.yaml,checkpoints/}")
    g.add_argument("--model-name", metavar="NAME", help="the run under ROOT/outputs")
    g.add_argument("--dinov2", metavar="PATH", help="dinov2_vits14_pretrain.pth or a torch-hub cache directory")
    g.add_argument("--stats", metavar="PATH", help="normalisation stats JSON (required for Wall)")
    g.add_argument("--trust-checkpoint", action="store_true",
                   help="unpickle globals outside the allow-list: runs arbitrary code, only for files you trust")


def official_from_args(args: argparse.Namespace) -> OfficialCheckpoint | None:
    """The official checkpoint the flags name, or None; ValueError on an incomplete or clashing set."""
    if args.checkpoint_root is None:
        given = [f for f, v in (("--model-name", args.model_name), ("--dinov2", args.dinov2), ("--stats", args.stats),
                                ("--trust-checkpoint", args.trust_checkpoint)) if v]
        if given:
            raise ValueError(f"{', '.join(given)} given without --checkpoint-root ROOT (an official DINO-WM checkpoint "
                             "needs --checkpoint-root, --model-name and --dinov2)")
        return None
    if args.model_name is None or args.dinov2 is None:
        raise ValueError("--checkpoint-root needs --model-name NAME and --dinov2 PATH")
    if getattr(args, "checkpoint", None) is not None:
        raise ValueError("give --checkpoint or --checkpoint-root, not both")
    return OfficialCheckpoint(Path(args.checkpoint_root), args.model_name, Path(args.dinov2),
                              Path(args.stats) if args.stats else None, args.trust_checkpoint)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quantwm", description=__doc__)
    p.add_argument("--threads", type=_positive, help="torch threads (default: all cores)")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="generate an environment's dataset (train / val / calib splits) under cache/data")
    d.add_argument("--env", required=True, choices=ENV_NAMES)
    d.add_argument("--episodes", type=_positive)
    d.add_argument("--seed", type=int)
    d.add_argument("--out")
    d.add_argument("--plans", nargs="+", metavar="EVAL_JSON",
                   help="instead, replay every plan of these `quantwm eval --json` records in the env (an extra training "
                        "split of where the planner goes; needs --checkpoint, the model that planned them)")
    d.add_argument("--checkpoint", help="with --plans: the checkpoint .json that planned them")
    d.set_defaults(func=_cmd_data)

    t = sub.add_parser("train", help="train (or resume) a world model; writes the checkpoint, log and loss curves")
    t.add_argument("--env", required=True, choices=ENV_NAMES)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps-scale", type=float, default=1.0, help="multiply every phase's step count")
    t.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a field of the env's training preset (quantwm/training/presets.py), nested fields dotted: "
                        "--set predictor.depth=6 --set predictor_lr=2e-3 (repeatable; recorded in the checkpoint)")
    t.add_argument("--data-dir")
    t.add_argument("--run-dir", help="resumable training state (default cache/runs/ENV)")
    t.add_argument("--out", help="checkpoint path (default assets/ENV.json)")
    t.add_argument("--device", default="cpu", help="cpu or cuda (same recipe; float rounding differs)")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="plan validation episodes and report the success rate")
    e.add_argument("--env", required=True, choices=ENV_NAMES)
    e.add_argument("--planner", default="mpc", choices=PLANNERS)
    e.add_argument("--episodes", type=_positive, default=50)
    e.add_argument("--seed", type=int, default=99)
    e.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                   help="planner settings: quick (interactive default) or paper (DINO-WM's); flags below override it")
    for flag in ("--samples", "--opt-steps", "--topk", "--horizon", "--budget", "--replan-every"):
        e.add_argument(flag, type=_positive)
    e.add_argument("--replan-opt-steps", type=_positive,
                   help="optimiser steps of MPC's warm-started replans (default: the preset's; else as the first plan)")
    e.add_argument("--noise-beta", type=float, default=None,
                   help="CEM sampling noise coloured 1/f^beta over time: 0 = white (DINO-WM), 2-3 = iCEM (default: the preset's)")
    e.add_argument("--action-clip", type=float, default=None,
                   help="bound CEM actions to +-CLIP data std around the data mean; inf: unbounded, as DINO-WM "
                        "(default: the preset's)")
    e.add_argument("--keep-elites", type=int, default=None,
                   help="CEM carries this many elites into the next step's population (iCEM; default: the preset's, DINO-WM: 0)")
    e.add_argument("--return-best", action=argparse.BooleanOptionalAction, default=None,
                   help="CEM returns the best sample evaluated instead of the final mean (iCEM; default: the preset's)")
    e.add_argument("--hold", action=argparse.BooleanOptionalAction, default=None,
                   help="CEM samples one env action per planner step, held for its frameskip env steps (default: the "
                        "preset's; DINO-WM: no, every env step's action sampled)")
    e.add_argument("--objective", choices=list(FRAME_WEIGHTS), default=None,
                   help="imagined frames the objective compares with the goal: last (DINO-WM's default) or all, "
                        "frame t weighted base^t (DINO-WM's mode all)")
    e.add_argument("--objective-base", type=float, default=None, help="base of --objective all's frame weights (DINO-WM: 2)")
    e.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=None,
                   help="MPC replans start from the rest of the previous plan (default: the preset's choice)")
    e.add_argument("--checkpoint", help="a checkpoint's .json (default: the shipped model)")
    add_official_arguments(e)
    e.add_argument("--device", default="cpu")
    e.add_argument("--batch-episodes", type=_positive, default=10,
                   help="episodes planned together in one batch (results do not depend on it)")
    e.add_argument("--random-baseline", action="store_true", help="also run the random-action baseline")
    e.add_argument("--json", help="write per-episode records here")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_runtime(args.threads)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"quantwm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
