"""Full-size DINO-WM smoke run: one CEM plan with a random-initialised world model of the released size.

Model: DINOv2 ViT-S/14 encoder at 196 px (14 x 14 = 196 patches of dim 384), DINO-WM predictor
(depth 6, 16 heads x 64, MLP 2048, token dim 404 = 384 + 10 + 10, num_hist 3 as PushT), PushT
action / proprio embeddings and decoder (channel 384); frames rendered at 224 px as for an official
checkpoint. The plan goes through ``quantwm.planning.optimize`` from one real PushT frame to
another (start and goal drawn from the env's seeds), so its cost is that of a real plan: CEM with
``samples`` x ``opt_steps`` rollouts of ``horizon`` predictor steps plus the final evaluation.
Defaults (16 samples, top-k 4, 2 opt steps, horizon 5: 33 rollouts) take about 2 minutes on one CPU thread.
Usage: python benchmarks/full_size.py [--device cpu|cuda] [--threads 1] [--samples 16 --topk 4
--opt-steps 2 --horizon 5] [--repeats 1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from quantwm.envs import make_env
from quantwm.models import DecoderConfig, Latents, PredictorConfig, ViTConfig, WorldModel, WorldModelConfig
from quantwm.models.official import PUSHT_STATS
from quantwm.planning import CEMConfig, optimize


def full_size_model(device: str) -> WorldModel:
    """Random weights, released DINO-WM PushT sizes (see module doc), eval mode."""
    torch.manual_seed(0)
    cfg = WorldModelConfig(
        env="pusht", image_size=224, num_hist=3, frameskip=5, action_dim=2, proprio_dim=4,
        encoder=ViTConfig.dinov2_vits14(img_size=196), predictor=PredictorConfig(), decoder=DecoderConfig(),
        **PUSHT_STATS,
    )
    return WorldModel(cfg).to(device).eval().requires_grad_(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--topk", type=int, default=4)
    parser.add_argument("--opt-steps", type=int, default=2)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1, help="plans timed one after another (the first warms up CUDA)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but no CUDA GPU is available")
    torch.set_num_threads(args.threads)
    model = full_size_model(args.device)
    params = {k: sum(p.numel() for p in getattr(model, k).parameters()) / 1e6 for k in ("encoder", "predictor", "decoder")}
    print(f"full-size world model on {args.device} ({torch.get_num_threads()} threads): "
          + ", ".join(f"{k} {v:.1f} M params" for k, v in params.items())
          + f"; {model.cfg.encoder.num_patches} patches x {model.cfg.num_hist} frames, token dim {model.cfg.token_dim}")
    env = make_env("pusht", render_size=model.cfg.image_size)
    obs = [env.reset(seed=seed)[0] for seed in (0, 1)]
    frames = torch.from_numpy(np.stack([o["visual"] for o in obs]))[:, None]  # (2, 1, 224, 224, 3)
    proprio = torch.from_numpy(np.stack([o["proprio"] for o in obs]))[:, None]
    cem = CEMConfig(samples=args.samples, topk=args.topk, opt_steps=args.opt_steps)
    print(f"CEM: {cem.samples} samples, top-k {cem.topk}, {cem.opt_steps} opt steps, horizon {args.horizon}, "
          f"one episode, context 1 frame")
    for i in range(args.repeats):
        t0 = time.perf_counter()
        with torch.inference_mode():
            lat = model.encode_obs(frames.to(args.device), proprio.to(args.device))
        t1 = time.perf_counter()
        start, goal = Latents(lat.visual[:1], lat.proprio[:1]), Latents(lat.visual[1:], lat.proprio[1:])
        plan = optimize(model, start, goal, args.horizon, 1.0, [torch.Generator().manual_seed(i)], cem)
        if args.device == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        print(f"plan {i}: encode start + goal {t1 - t0:.2f} s, CEM plan {t2 - t1:.2f} s "
              f"(final objective {plan.final_objective[0]:.4f}, actions {tuple(plan.actions.shape)})", flush=True)


if __name__ == "__main__":
    main()
