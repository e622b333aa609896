"""`quantwm` command line: data, train, eval, run, sweep, cache. Thin: parses arguments and calls the library."""
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
        if args.set:
            raise ValueError("--set changes the scripted data policy; --plans replays a planner's actions instead")
        from quantwm.experiment import load_model, plan_replays

        if args.checkpoint is None:
            raise ValueError("--plans needs --checkpoint: the model that planned them (its action normalisation)")
        starts, actions, source = plan_replays(load_model(args.env, args.checkpoint), [Path(p) for p in args.plans])
        source |= {"checkpoint": args.checkpoint, "command": "quantwm " + shlex.join(sys.argv[1:])}
        write_plan_replays(out_dir, starts, actions, source)
        print(f"wrote {len(starts)} plan replays to {out_dir}/plans.npz")
        return
    cfg = DEFAULT_DATASETS[args.env]
    cfg = replace(cfg, **{k: v for k, v in (("n_episodes", args.episodes), ("seed", args.seed)) if v is not None},
                  policy_overrides=tuple(args.set))
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
                 "return_best": args.return_best, "replan_opt_steps": args.replan_opt_steps, "hold": args.hold, "objective_frames": args.objective, "objective_base": args.objective_base,
                 "objective_alpha": args.objective_alpha}
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


def _run_options(args: argparse.Namespace):
    """RunOptions from ``run`` / ``sweep`` flags (validated: ValueError naming valid choices)."""
    from dataclasses import asdict

    from quantwm.experiment.options import RunOptions

    official = official_from_args(args)
    pairs = tuple((k, str(v) if isinstance(v, Path) else v) for k, v in asdict(official).items()) if official else ()
    return RunOptions(
        env=args.env, method=args.method, w_bits=args.w_bits, w_granularity=args.w_granularity, group_size=args.group_size,
        a_bits=args.a_bits, a_granularity=args.a_granularity, attention_matmuls=args.attention_matmuls,
        modules=args.modules, blocks=tuple(args.blocks), quant_config=args.quant_config, planner=args.planner,
        preset=args.preset, episodes=args.episodes, seed=args.seed, probe_steps=args.probe_steps, videos=args.videos,
        device=args.device, checkpoint=args.checkpoint, official=pairs)


def _stage_printer(quiet: bool):
    """A progress callback printing each stage's completion on one line."""
    last: dict[str, int] = {}

    def show(stage: str, done: int, total: int) -> None:
        if quiet or last.get(stage) == done:
            return
        last[stage] = done
        print(f"\r  {stage}: {done}/{total}" + (" " * 10 if done < total else "\n"), end="", flush=True)
    return show


def _print_result(value: dict) -> None:
    fp, q = value["fp"]["summary"], value["quant"]["summary"]
    fa, qa = value["alignment"]["fp"], value["alignment"]["quant"]
    err = value["latent_error"]

    def f(x: float | None, spec: str = ".3f") -> str:
        return "-" if x is None else format(x, spec)

    print(f"{value['label']} on {value['config']['model']['env']}, {fp['episodes']} episodes "
          f"(seed {value['config']['seed']}, {value['config']['planner']['name']} {value['config']['planner']['preset']}):")
    print(f"  {'':10} {'success':>8} {'distance':>9} {'objective':>10} {'AUROC':>6} {'Spearman':>9}")
    for name, s, a in (("FP", fp, fa), ("quantized", q, qa)):
        print(f"  {name:10} {s['success_rate']:8.2f} {s['mean_state_distance']:9.2f} {s['mean_final_objective']:10.4f} "
              f"{f(a['auroc_objective_success'], '.2f'):>6} {f(a['spearman_objective_distance'], '.2f'):>9}")
    if "quant_vs_fp" in err:
        k = err["steps"][-1]
        print(f"  latent error at probe step {k} (visual RMS, 95 % CI): quantized vs FP {f(err['quant_vs_fp']['mean'][-1])} "
              f"[{f(err['quant_vs_fp']['lo'][-1])}, {f(err['quant_vs_fp']['hi'][-1])}], FP vs real "
              f"{f(err['fp_vs_true']['mean'][-1])}, quantized vs real {f(err['quant_vs_true']['mean'][-1])}, "
              f"encoder alone {f(err['encoder']['mean'][-1])}")
    m = value["model"]
    print(f"  model {m['fp_mb']:.2f} MB -> {m['quantized_mb']:.2f} MB ({m['effective_bits']:.2f} bits per quantized weight)")


def _cmd_run(args: argparse.Namespace) -> None:
    from quantwm.experiment.run import run_experiment

    config = _run_options(args).config()
    result = run_experiment(config, _stage_printer(args.quiet), use_cache=not args.no_cache)
    if result.cached:
        print("(from the results cache)")
    _print_result(result.value)
    if result.value["videos"]:
        print(f"  videos: {', '.join(str(result.media[n]) for n in result.value['videos'])}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result.value))
        print(f"wrote {args.json}")


def _cmd_sweep(args: argparse.Namespace) -> None:
    from quantwm.experiment.sweep import expand, parse_grid, run_sweep

    points = expand(_run_options(args), parse_grid(args.set))
    csv_path = Path(args.csv or "cache/sweeps/sweep.csv")
    print(f"sweep of {len(points)} experiments; table: {csv_path}")

    def show(done: int, total: int, what: str) -> None:
        bar = "#" * (20 * done // max(total, 1))
        print(f"\r  [{bar:<20}] {done}/{total} {what[:70]:<70}", end="", flush=True)

    rows = run_sweep(points, csv_path=csv_path, progress=None if args.quiet else show)
    print()
    for r in rows:
        v = r.values
        status = v["status"] if v["status"] in ("error", "pending") else f"FP {v['fp_success']:.2f} quantized {v['quant_success']:.2f}"
        print(f"  {v.get('label', v['method'])}: {status}{' - ' + v['error'] if v['status'] == 'error' else ''}")


def _cmd_findings(args: argparse.Namespace) -> None:
    from quantwm.experiment.findings import EXPERIMENTS, FINDINGS, load_findings, run_env, write_findings

    records = {}
    for env in args.env:
        last: dict[str, tuple] = {}

        def show(role: str, stage: str, done: int, total: int, env: str = env) -> None:
            if not args.quiet and last.get(role) != (stage, done):
                last[role] = (stage, done)
                print(f"\r  {env} {role}: {stage} {done}/{total}{' ' * 20}", end="", flush=True)

        records[env] = run_env(env, args.episodes, show)
        print()
    paths = write_findings(records)
    shipped = load_findings()
    summary = shipped.get("summary", {})
    records = {k: v for k, v in shipped.items() if k in ENV_NAMES}
    for env, record in records.items():
        print(f"\n{env} ({record['episodes']} episodes, seed {record['seed']}, weights {record['weights_sha256'][:12]}):")
        print(f"  {'experiment':24} {'FP':>5} {'quant':>6} {'drift':>7}")
        for role in EXPERIMENTS:
            r = record["results"][role]
            print(f"  {role:24} {r['fp']['success_rate']:5.2f} {r['quant']['success_rate']:6.2f} "
                  f"{r['latent_error']['quant_vs_fp']['mean'][-1]:7.3f}")
        for f in FINDINGS:
            v = record["verdicts"].get(f.id) or summary.get("cross_env", {}).get(f.id)
            if v is not None and (not f.cross_env or env == list(records)[-1]):
                print(f"  [{v['verdict']}] {f.title}: {v['why']}")
    print(f"wrote {', '.join(str(p) for p in paths)}")


def _cmd_cache(args: argparse.Namespace) -> None:
    import time

    from quantwm.cache import ResultsCache

    cache = ResultsCache()
    if args.action == "list":
        for e in cache.list(args.kind):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created))
            print(f"{e.key[:16]}  {e.kind:11} {when}  {e.size / 2**20:7.2f} MB  {e.meta.get('label', '')}")
    elif args.action == "show":
        matches = [e for e in cache.list() if e.key.startswith(args.key or "")]
        if len(matches) != 1 or not args.key:
            raise ValueError(f"`cache show KEY` needs a key prefix matching one entry ({len(matches)} match); see `quantwm cache list`")
        entry = cache.get(matches[0].key)
        if entry is None:
            raise ValueError(f"entry {args.key} was corrupt and has been removed; it will be recomputed when next run")
        print(json.dumps({"key": entry.key, "kind": entry.kind, "meta": entry.meta,
                          "media": {n: str(p) for n, p in entry.media.items()}}, indent=1))
        if entry.kind == "experiment":
            _print_result(entry.value)
    else:
        print(f"removed {cache.clear(args.kind)} entries")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of one experiment (``run``; ``sweep`` takes them as the grid's base)."""
    from quantwm.quant import GROUPS, METHODS
    from quantwm.quant.config import ACT_GRANULARITIES, WEIGHT_GRANULARITIES

    p.add_argument("--env", required=True, choices=ENV_NAMES)
    q = p.add_argument_group("quantization (one setting for every module in --modules)")
    q.add_argument("--method", default="rtn", choices=sorted(METHODS))
    q.add_argument("--w-bits", type=lambda v: 16 if v == "fp" else int(v), default=4, help="weight bits 2..8, or 16 / fp (off)")
    q.add_argument("--a-bits", type=lambda v: 16 if v == "fp" else int(v), default=16, help="activation bits 2..8, or 16 / fp (off)")
    q.add_argument("--w-granularity", default="per_channel", choices=WEIGHT_GRANULARITIES)
    q.add_argument("--group-size", type=int, help="input columns per scale (with --w-granularity group)")
    q.add_argument("--a-granularity", default="per_token", choices=ACT_GRANULARITIES)
    q.add_argument("--attention-matmuls", action="store_true", help="also quantize q, k, v and the attention probabilities")
    q.add_argument("--modules", default="predictor", help=f"comma-separated, of: {', '.join(GROUPS)}")
    q.add_argument("--blocks", action="append", default=[], metavar="SEL",
                   help="restrict a module's blocks, e.g. 'predictor.blocks[2:]' (repeatable)")
    q.add_argument("--quant-config", metavar="FILE.json", help="a QuantConfig JSON (per-module control); replaces the flags above")
    e = p.add_argument_group("planning")
    e.add_argument("--planner", default="mpc", choices=("mpc", "cem", "gd"))
    e.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS))
    e.add_argument("--episodes", type=_positive, default=10)
    e.add_argument("--seed", type=int, default=4242)
    e.add_argument("--probe-steps", type=int, default=10, help="planner steps of the open-loop imagination probe (1..50)")
    e.add_argument("--videos", type=int, default=2, help="episodes with rendered videos (the first ones)")
    p.add_argument("--checkpoint", help="a quantwm checkpoint's .json (default: the shipped model)")
    add_official_arguments(p)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")


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
    d.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="change a setting of the env's scripted data policy (class attributes of WallDataPolicy / "
                        "PushTDataPolicy), e.g. --set charge_prob=0.2 --set charge_steps='(10, 40)' (repeatable; recorded in meta.json)")
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
    e.add_argument("--objective-alpha", type=float, default=None,
                   help="weight of the proprio term against the patch term (DINO-WM: 1)")
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

    r = sub.add_parser("run", help="FP vs quantized planning on identical episodes: success, alignment, latent drift, videos")
    add_run_arguments(r)
    r.add_argument("--json", help="write the result JSON here (schema in docs/experiments.md)")
    r.add_argument("--no-cache", action="store_true", help="compute everything afresh and store nothing")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("sweep", help="a grid of experiments (cached points skipped; Ctrl-C safe), written as CSV")
    add_run_arguments(s)
    s.add_argument("--set", action="append", required=True, metavar="NAME=V1,V2",
                   help="a grid axis over a run option, e.g. --set w_bits=2,3,4,8 --set modules=encoder,predictor,encoder+predictor")
    s.add_argument("--csv", help="table path (default cache/sweeps/sweep.csv)")
    s.set_defaults(func=_cmd_sweep)

    f = sub.add_parser("findings", help="test the quantization study's findings on the shipped models; writes assets/findings/")
    f.add_argument("--env", nargs="+", choices=ENV_NAMES, default=list(ENV_NAMES))
    f.add_argument("--episodes", type=_positive, default=20)
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(func=_cmd_findings)

    c = sub.add_parser("cache", help="list, show or clear stored results")
    c.add_argument("action", choices=("list", "show", "clear"))
    c.add_argument("key", nargs="?", help="with show: a key prefix from `cache list`")
    c.add_argument("--kind", choices=("experiment", "fp", "calibration", "opt_steps"), help="only entries of this kind")
    c.set_defaults(func=_cmd_cache)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_runtime(args.threads)
    from quantwm.cache import CacheCorruptError

    try:
        args.func(args)
    except (ValueError, FileNotFoundError, CacheCorruptError) as e:
        print(f"quantwm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
