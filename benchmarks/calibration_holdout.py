"""How far in-sample layer errors flatter a data-driven PTQ method: the mean layer-output SQNR of the
predictor's Linears, fitted on inputs captured while the FP model plans calibration episodes, measured
on (a) those same fitting inputs, (b) other inputs of the same episodes (``Calibration.split``), and
(c) inputs of other calibration episodes (what experiments report in their ``layers`` table).

    python benchmarks/calibration_holdout.py [--env pusht|wall] [--bits 3] [--threads 2]

The shipped model of ``--env``; the calibration as in experiments: FP open-loop CEM plans (quick
preset) of ``--episodes`` calibration-split episodes for fitting, ``--other-episodes`` more for (c).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantwm.envs.episodes import make_eval_episodes  # noqa: E402
from quantwm.experiment import load_model  # noqa: E402
from quantwm.planning import planner_spec, run_episodes  # noqa: E402
from quantwm.quant import Calibration, GroupQuant, QuantConfig, WeightQuant, quantize  # noqa: E402
from quantwm.quant.calibration import capture_calibration  # noqa: E402
from quantwm.runtime import configure_runtime  # noqa: E402

METHODS = ("rtn", "gptq")


def capture(model, env: str, episodes: list, size: int, seed: int) -> Calibration:
    """``size`` seeded predictor inputs captured while ``model`` plans ``episodes`` open loop."""
    spec = planner_spec(env, "cem")
    return capture_calibration(model, ("predictor",), lambda: run_episodes(model, env, episodes, spec, batch_size=len(episodes)),
                               size=size, seed=seed)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--env", default="pusht", choices=["pusht", "wall"])
    p.add_argument("--bits", type=int, default=3)
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--other-episodes", type=int, default=2)
    p.add_argument("--size", type=int, default=256, help="fitting inputs")
    p.add_argument("--held", type=int, default=64, help="inputs of each held-out set")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    configure_runtime(args.threads)
    model = load_model(args.env)
    start = time.perf_counter()
    eps = make_eval_episodes(args.env, args.episodes + args.other_episodes, 0, split="calib")
    fit, same = capture(model, args.env, eps[: args.episodes], args.size + args.held, 0).split(args.held, seed=0)
    other = capture(model, args.env, eps[args.episodes :], args.held, 0)
    print(f"{args.env}: {fit.size('predictor')} fitting inputs of {args.episodes} calibration episodes, {same.size('predictor')} "
          f"others of them, {other.size('predictor')} of {args.other_episodes} other episodes "
          f"(captured in {time.perf_counter() - start:.0f} s, {args.threads} threads)")
    print(f"mean layer-output SQNR (dB), predictor Linears, W{args.bits} per channel")
    print(f"{'method':<8}{'fitting inputs':>16}{'same episodes':>15}{'other episodes':>16}")
    for method in METHODS:
        config = QuantConfig(predictor=GroupQuant(WeightQuant(args.bits)), method=method)
        sqnr = [quantize(model, config, fit, report_calibration=r).quantization.report["sqnr_db"].mean()
                for r in (None, same, other)]
        print(f"{method:<8}" + "".join(f"{v:>{w}.1f}" for v, w in zip(sqnr, (16, 15, 16))))


if __name__ == "__main__":
    main()
