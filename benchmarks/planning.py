"""Planning speed on the shipped models, every number measured in one run (issue 6).

Prints, per environment:
  (a) rollout throughput of quantwm's rollout versus a reference rollout written the way DINO-WM's
      planner does it (one episode at a time, the context frame repeated and encoded for every
      sample, the whole history window recomputed with all its outputs at every step), the max
      output difference (and each rollout's distance from the reference computed in float64, the
      float32 rounding both carry), both rollouts' FLOPs, and the ceiling of any exact fp32 rollout: quantwm's
      FLOPs done at the matmul peak of (c), as a multiple of the reference's time;
  (b) CEM plan time and MPC-episode time at the quick and paper presets;
  (c) predictor forward at batch 300: achieved GFLOP/s (FLOPs counted by torch's FlopCounterMode)
      against the measured fp32 matmul peak of this machine (best sgemm over a few sizes);
  (d) quantized / FP plan-time ratio: W4A16 group-32, W8A8 and W4A4 fake quant (RTN; activations
      per-token dynamic, and W8A8 also per-tensor static from the calibration) and real int8;
  (e) peak memory (process max RSS; CUDA max allocated on a GPU);
  (f) ``run_experiment`` end to end in a fresh results cache: RTN W4 group-32 on the predictor, 10
      quick MPC episodes with calibration, probe and 2 videos; then RTN W3 per-channel with the FP
      side and the calibration cached (the quantized side alone); a cached rerun in this process
      and from the CLI; and GPTQ W3 per-channel, whose probe drift from FP is compared with RTN's.
With ``--compile``, (c) also times ``torch.compile`` of the predictor (first call and steady state).
Timings are medians of ``--repeats`` runs; the speed ratios of (a) and (d) are medians of ratios taken
within rounds that run each compared function once, alternating their order. Usage:
  python benchmarks/planning.py [--env wall pusht] [--threads 2] [--device cpu] [--paper-mpc-episodes 1] [--compile]
                                [--sections a c b d f]
"""
from __future__ import annotations

import argparse
import copy
import functools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantwm.cache import RESULTS_DIR_ENV, ResultsCache  # noqa: E402
from quantwm.envs import make_env  # noqa: E402
from quantwm.envs.episodes import make_eval_episodes  # noqa: E402
from quantwm.experiment import calibrate, evaluate, load_model  # noqa: E402
from quantwm.experiment.options import RunOptions  # noqa: E402
from quantwm.experiment.run import run_experiment  # noqa: E402
from quantwm.models import Latents, WorldModel  # noqa: E402
from quantwm.planning import planner_spec  # noqa: E402
from quantwm.planning.optimizers import cem  # noqa: E402
from quantwm.quant import ActQuant, Calibration, GroupQuant, QuantConfig, WeightQuant, quantize  # noqa: E402
from quantwm.quant.real import RealQuantConfig, realize  # noqa: E402
from quantwm.runtime import configure_runtime  # noqa: E402

SEED = 99
EPISODES = 10
W4A16 = QuantConfig(predictor=GroupQuant(WeightQuant(4, granularity="group", group_size=32)))
W8A8 = QuantConfig(predictor=GroupQuant(WeightQuant(8), ActQuant(8, granularity="per_token")))
W8A8_STATIC = QuantConfig(predictor=GroupQuant(WeightQuant(8), ActQuant(8, granularity="per_tensor")))
W4A4 = QuantConfig(predictor=GroupQuant(WeightQuant(4), ActQuant(4, granularity="per_token")))


def timer(fn: Callable[[], object], device: str) -> Callable[[], float]:
    """A function that runs ``fn`` once and returns its wall time (synchronising a GPU)."""
    def run() -> float:
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start
    return run


def median_time(fn: Callable[[], object], repeats: int, device: str) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up run."""
    run = timer(fn, device)
    run()
    return statistics.median(run() for _ in range(repeats))


def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int, device: str) -> dict[str, tuple[float, float]]:
    """{name: (median wall time, median ratio to the first function's time in the same round)}.

    Each round runs every function once, the order reversed every other round, so drifts of a
    shared machine's speed (seconds to minutes long) hit all of them alike and the ratios, taken
    within one round, do not carry them. One warm-up round first.
    """
    runs = {name: timer(fn, device) for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats + 1):
        for name in (list(runs) if r % 2 else list(runs)[::-1]):
            t = runs[name]()
            if r:
                times[name].append(t)
    base = times[next(iter(fns))]
    return {name: (statistics.median(ts), statistics.median(t / b for t, b in zip(ts, base))) for name, ts in times.items()}


def observations(model: WorldModel, env: str, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Start and goal frames (n, 1, S, S, 3) and proprio (n, 1, dp) of the first n validation episodes."""
    episodes = make_eval_episodes(env, n, SEED)
    e = make_env(env, render_size=model.cfg.image_size)
    obs = [e.reset(options={"state": s})[0] for ep in episodes for s in (ep.start_state, ep.goal_state)]
    frames = torch.from_numpy(np.stack([o["visual"] for o in obs]))[:, None]
    proprio = torch.from_numpy(np.stack([o["proprio"] for o in obs])).float()[:, None]
    return frames[0::2], proprio[0::2], frames[1::2], proprio[1::2]


def reference_predict(predictor: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """DINO-WM's ViTPredictor forward, written out from its code's structure (explicit masked
    softmax attention, all outputs): tokens (B, t, P, D) -> (B, t, P, D)."""
    b, t, p, d = tokens.shape
    x = tokens.reshape(b, t * p, d) + predictor.pos_embedding[:, : t * p]
    mask = predictor.frame_causal_mask[: t * p, : t * p]
    for attn, ff in predictor.transformer.layers:
        q, k, v = attn.to_qkv(attn.norm(x)).chunk(3, dim=-1)
        q, k, v = (z.reshape(b, t * p, attn.heads, -1).transpose(1, 2) for z in (q, k, v))
        dots = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        out = dots.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        x = x + attn.to_out(out.transpose(1, 2).reshape(b, t * p, -1))
        x = x + ff.net(x)
    return predictor.transformer.norm(x).reshape(b, t, p, d)


def reference_rollout(model: WorldModel, frames: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """DINO-WM's way: frames (E, 1, ...), proprio (E, 1, dp), actions (E, S, H, A) -> (E*S, H+1, P, D)."""
    e_dim = model.cfg.visual_dim + model.cfg.proprio_emb_dim
    out = []
    for ep in range(actions.shape[0]):
        s, h = actions.shape[1:3]
        lat = model.encode_obs(frames[ep : ep + 1].expand(s, *frames.shape[1:]), proprio[ep : ep + 1].expand(s, *proprio.shape[1:]))
        act = model.encode_actions(actions[ep])
        z = model.tokens(lat, act[:, :1])
        for t in range(1, h + 1):
            newest = reference_predict(model.predictor, z[:, -model.cfg.num_hist :])[:, -1:]
            if t < h:
                newest = torch.cat([newest[..., :e_dim], act[:, t : t + 1, None].expand(-1, -1, newest.shape[2], -1)], -1)
            z = torch.cat([z, newest], 1)
        out.append(z)
    return torch.cat(out)


def project_rollout(model: WorldModel, frames: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """quantwm's way: every episode's observation encoded once, all E*S samples in one batch."""
    lat = model.encode_obs(frames, proprio)
    s = actions.shape[1]
    ctx = Latents(lat.visual.repeat_interleave(s, 0), lat.proprio.repeat_interleave(s, 0))
    return model.rollout(ctx, actions.flatten(0, 1))


def flop_counter() -> FlopCounterMode:
    """torch's FLOP counter, also counting the fused CPU attention kernel (torch registers only the GPU ones)."""
    def cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa})


def matmul_peak(device: str, repeats: int) -> float:
    """Best fp32 matmul GFLOP/s over a few square sizes."""
    best = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        best = max(best, 2 * n**3 / median_time(lambda: a @ b, repeats, device) / 1e9)
    return best


def plan_fn(model: WorldModel, env: str, preset: str, start: Latents, goal: Latents) -> Callable[[], None]:
    """One CEM plan (MPC's first plan) for all episodes at once."""
    spec = planner_spec(env, "mpc", preset=preset)
    n = start.visual.shape[0]

    def plan() -> None:
        gens = [torch.Generator().manual_seed(i) for i in range(n)]
        cem(model, start, goal, spec.horizon, spec.objective, gens, spec.optimizer)
    return plan


def mpc_seconds(model: WorldModel, env: str, preset: str, episodes: int) -> tuple[float, float]:
    """(seconds per MPC episode, success rate), all episodes planned in one batch as ``quantwm eval``."""
    res = evaluate(model, env, "mpc", episodes, SEED, batch_size=episodes, preset=preset)
    return res.wall_time_s / episodes, res.success_rate


@dataclass
class Bench:
    """What every section of one environment's benchmark shares."""

    env: str
    model: WorldModel
    frames: torch.Tensor  # (E, 1, S, S, 3) start frames
    proprio: torch.Tensor  # (E, 1, dp)
    start: Latents
    goal: Latents
    args: argparse.Namespace

    @functools.cached_property
    def peak(self) -> float:
        return matmul_peak(self.args.device, self.args.repeats)

    @functools.cached_property
    def calibration(self) -> Calibration:
        """Predictor inputs from the FP model's MPC on calibration episodes, shared by (d) and (f)."""
        return calibrate(self.model, self.env, ("predictor",), size=64, seed=0, episodes=2, budget=2)


def rollout_section(b: Bench) -> None:
    """(a) rollout throughput, and the most an exact fp32 rollout could gain: quantwm's FLOPs at the matmul peak."""
    model, dev, reps = b.model, b.args.device, b.args.repeats
    quick = planner_spec(b.env, "mpc")
    samples, horizon = quick.optimizer.samples, quick.horizon
    actions = torch.randn(EPISODES, samples, horizon, model.cfg.planner_action_dim, generator=torch.Generator().manual_seed(0)).to(dev)
    frames, proprio = b.frames, b.proprio
    with torch.inference_mode():
        with flop_counter() as counter:
            ref = reference_rollout(model, frames, proprio, actions)
        f_ref = counter.get_total_flops()
        with flop_counter() as counter:
            ours = project_rollout(model, frames, proprio, actions)
        f_ours = counter.get_total_flops()
        diff = (ref - ours).abs().max().item()
        exact = reference_rollout(copy.deepcopy(model).double(), frames, proprio.double(), actions.double())
        ref_err, ours_err = ((x - exact).abs().max().item() for x in (ref, ours))
        times = interleaved_times({"reference": lambda: reference_rollout(model, frames, proprio, actions),
                                   "quantwm": lambda: project_rollout(model, frames, proprio, actions)}, reps, dev)
    (t_ref, _), (t_ours, ratio) = times["reference"], times["quantwm"]
    n_roll = EPISODES * samples
    print(f"(a) rollout of {EPISODES} episodes x {samples} samples x {horizon} steps: reference {n_roll / t_ref:.0f} rollouts/s, "
          f"quantwm {n_roll / t_ours:.0f} rollouts/s: {1 / ratio:.2f}x; max |difference| {diff:.2e} (largest value "
          f"{ref.abs().max().item():.2f}); float32 rounding: max |reference - float64 reference| {ref_err:.2e}, "
          f"|quantwm - float64 reference| {ours_err:.2e}")
    print(f"(a) FLOPs: reference {f_ref / 1e9:.1f} GFLOP at {f_ref / t_ref / 1e9:.1f} GFLOP/s "
          f"({100 * f_ref / t_ref / 1e9 / b.peak:.0f} % of the {b.peak:.1f} GFLOP/s peak), quantwm {f_ours / 1e9:.1f} GFLOP at "
          f"{f_ours / t_ours / 1e9:.1f} GFLOP/s; ceiling of an exact fp32 rollout (quantwm's FLOPs at the peak): "
          f"{t_ref * b.peak * 1e9 / f_ours:.2f}x the reference")


def forward_section(b: Bench) -> None:
    """(c) predictor forward at batch 300 against the matmul peak (and torch.compile with --compile)."""
    model, dev, reps = b.model, b.args.device, b.args.repeats
    x = torch.randn(300, model.cfg.num_hist * model.cfg.encoder.num_patches, model.cfg.token_dim, device=dev)
    with torch.inference_mode():
        with flop_counter() as counter:
            model.predictor(x)
        flops = counter.get_total_flops()
        t_fwd = median_time(lambda: model.predictor(x), reps, dev)
        if b.args.compile:
            start = time.perf_counter()
            compiled = torch.compile(model.predictor)
            compiled(x)
            first = time.perf_counter() - start
            t_comp = median_time(lambda: compiled(x), reps, dev)
            print(f"(c) torch.compile: first call {first:.1f} s, then {t_comp * 1e3:.1f} ms ({t_fwd / t_comp:.2f}x eager)")
    print(f"(c) predictor forward, batch 300 x {x.shape[1]} tokens: {flops / 1e9:.2f} GFLOP in {t_fwd * 1e3:.1f} ms = "
          f"{flops / t_fwd / 1e9:.1f} GFLOP/s; fp32 matmul peak {b.peak:.1f} GFLOP/s: {100 * flops / t_fwd / 1e9 / b.peak:.0f} % of peak")


def preset_section(b: Bench) -> None:
    """(b) plan and MPC-episode time per preset."""
    reps = b.args.repeats
    with torch.inference_mode():
        for preset in ("quick", "paper"):
            plan = plan_fn(b.model, b.env, preset, b.start, b.goal)
            p = median_time(plan, max(1, reps // 2) if preset == "paper" else reps, b.args.device) / b.start.visual.shape[0]
            spec = planner_spec(b.env, "mpc", preset=preset)
            n_mpc = EPISODES if preset == "quick" else b.args.paper_mpc_episodes
            warm = f" (warm-started, {spec.replan_opt_steps or spec.optimizer.opt_steps} steps)" if spec.warm_start else ""
            line = (f"(b) {preset}: {spec.optimizer}, horizon {spec.horizon}, replan every {spec.replan_every}{warm}, "
                    f"budget {spec.max_steps}: plan {p:.2f} s/episode")
            if n_mpc:
                per_episode, success = mpc_seconds(b.model, b.env, preset, n_mpc)
                line += f"; MPC {per_episode:.2f} s/episode ({n_mpc} episodes in one batch, success {success:.2f})"
            print(line)


def quant_section(b: Bench) -> None:
    """(d) quantized / FP plan time."""
    model, env, dev, reps = b.model, b.env, b.args.device, b.args.repeats
    cal = b.calibration
    models = {"FP": model, "W4A16 g32 fake": quantize(model, W4A16, cal), "W8A8 fake": quantize(model, W8A8, cal),
              "W8A8 per-tensor static fake": quantize(model, W8A8_STATIC, cal), "W4A4 fake": quantize(model, W4A4, cal)}
    kernels = ""
    if dev == "cpu":
        real = realize(model, RealQuantConfig("w8a8"), cal)
        kernels = ", ".join(sorted(set(real.report["kernel"])))
        models["real int8"] = real.model
    with torch.inference_mode():
        times = interleaved_times({name: plan_fn(m, env, "quick", b.start, b.goal) for name, m in models.items()}, reps, dev)
    for name, (_, ratio) in list(times.items())[1:]:
        detail = f" (w8a8; predictor kernels: {kernels})" if name == "real int8" else ""
        print(f"(d) {name}{detail}: plan time {ratio:.3f}x FP")


def experiment_section(b: Bench) -> None:
    """(f) experiments through ``run_experiment`` and the CLI, in a fresh results cache."""
    options = RunOptions(env=b.env, w_bits=4, w_granularity="group", group_size=32, episodes=EPISODES, seed=SEED,
                         device=b.args.device)
    w3 = options.with_values(w_bits=3, w_granularity="per_channel", group_size=None)
    with tempfile.TemporaryDirectory() as tmp:
        cache = ResultsCache(Path(tmp))
        t0 = time.perf_counter()
        first = run_experiment(options.config(), cache=cache)
        t1 = time.perf_counter()
        rtn = run_experiment(w3.config(), cache=cache)
        t2 = time.perf_counter()
        again = run_experiment(options.config(), cache=cache)
        t3 = time.perf_counter()
        command = [sys.executable, "-m", "quantwm.cli", "run", "--env", b.env, "--w-bits", "4", "--w-granularity", "group",
                   "--group-size", "32", "--episodes", str(EPISODES), "--seed", str(SEED), "--device", b.args.device, "--quiet"]
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, RESULTS_DIR_ENV: tmp})
        t4 = time.perf_counter()
        gptq = run_experiment(w3.with_values(method="gptq").config(), cache=cache)
    assert again.cached
    v = first.value
    print(f"(f) experiment, nothing cached: {t1 - t0:.1f} s ({EPISODES} episodes, success FP {v['fp']['summary']['success_rate']:.2f}"
          f" / RTN W4 g32 {v['quant']['summary']['success_rate']:.2f}; stages "
          + ", ".join(f"{k[:-2]} {s:.1f} s" for k, s in v["timing"].items() if k.endswith("_s")) + ")")
    print(f"(f) FP side and calibration cached, RTN W3 per-channel: {t2 - t1:.1f} s; cached rerun {t3 - t2:.3f} s in process, "
          f"{t4 - t3:.2f} s from the CLI")
    drift = {name: r.value["latent_error"]["quant_vs_fp"]["mean"] for name, r in (("RTN", rtn), ("GPTQ", gptq))}
    print("(f) W3 per-channel probe drift from FP (visual RMS, first and last probe step, mean over steps): "
          + "; ".join(f"{name} {d[1]:.3f} -> {d[-1]:.3f}, mean {statistics.fmean(d[1:]):.3f}" for name, d in drift.items())
          + f"; success RTN {rtn.value['quant']['summary']['success_rate']:.2f}, GPTQ {gptq.value['quant']['summary']['success_rate']:.2f}")


SECTIONS: dict[str, Callable[[Bench], None]] = {
    "a": rollout_section, "c": forward_section, "b": preset_section, "d": quant_section, "f": experiment_section,
}


def bench_env(env: str, args: argparse.Namespace) -> None:
    model = load_model(env, device=args.device)
    print(f"\n=== {env}: {sum(p.numel() for p in model.predictor.parameters()) / 1e6:.2f} M predictor params, "
          f"{model.cfg.encoder.num_patches} patches x {model.cfg.num_hist} frames, token dim {model.cfg.token_dim}")
    frames, proprio, goal_frames, goal_proprio = observations(model, env, EPISODES)
    frames, proprio = frames.to(args.device), proprio.to(args.device)
    with torch.inference_mode():
        start = model.encode_obs(frames, proprio)
        goal = model.encode_obs(goal_frames.to(args.device), goal_proprio.to(args.device))
    bench = Bench(env, model, frames, proprio, start, goal, args)
    for name in args.sections:
        SECTIONS[name](bench)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=["wall", "pusht"], choices=["wall", "pusht"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--paper-mpc-episodes", type=int, default=1, help="0 skips MPC at the paper preset")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile on the predictor forward")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS),
                        help="which of (a) (c) (b) (d) (f) to run, in that order; (e) is always printed")
    args = parser.parse_args()
    configure_runtime(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    for env in args.env:
        bench_env(env, args)
    print(f"\n(e) peak memory: max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
          + (f", CUDA max allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if args.device == "cuda" else ""))


if __name__ == "__main__":
    main()
