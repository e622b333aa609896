"""Train a DINO-WM-architecture world model in three resumable phases.

1. ``encoder``: self-supervised masked image modelling (SimMIM, Xie et al. 2022) on environment
   frames - 30 % of patch embeddings are replaced by DINOv2's ``mask_token`` and a linear head
   reconstructs every patch's pixels from its output token, with the pixel loss weighted towards
   pixels that differ from the mean frame so small objects (agent, dot) count. No labels. The
   encoder is then frozen, as DINOv2 is in DINO-WM.
2. ``predictor``: predictor + action / proprio embeddings with DINO-WM's teacher-forced latent
   loss (MSE on visual + proprio dims of next-frame tokens, targets detached) on windows of
   num_hist + 1 frames, frameskip apart, starting at every time step. Latents of the frozen encoder
   are computed once. Every ``eval_every`` steps a planning-relevance check runs on validation
   windows: the planning cost of the true actions against random ones.
3. ``decoder``: the transposed-conv decoder on detached latents (pixel MSE), visualisation only.

State (weights, optimiser, step, wall time, log) is saved to ``run_dir/state.pt`` every
``save_every_s`` seconds and at phase ends; a new call resumes from it. Each step's batch is drawn
from a generator seeded by (seed, phase, step), so a resumed run sees the same batches.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quantwm.envs import ENV_SPECS
from quantwm.envs.dataset import PLANS, load_meta, load_plan_meta, load_split
from quantwm.models import Latents, WorldModel, WorldModelConfig, save_checkpoint
from quantwm.planning.objective import planning_cost
from quantwm.runtime import check_device
from quantwm.training.presets import TrainPreset, get_preset
from quantwm.training.quality import latent_quality

PHASES = ("encoder", "predictor", "decoder")


@dataclass(frozen=True)
class TrainConfig:
    env: str
    data_dir: Path
    run_dir: Path
    out: Path
    seed: int = 0
    steps_scale: float = 1.0  # multiplies every phase's step count (tests use tiny values)
    preset_overrides: tuple[str, ...] = ()  # "FIELD=VALUE" changes to the env's training preset (``get_preset``)
    save_every_s: float = 60.0
    eval_every: int = 500
    eval_windows: int = 256
    command: str = ""
    device: str = "cpu"  # "cuda": same steps and seed, different float rounding (a CPU run reproduces it up to that)


def _phase_steps(preset: TrainPreset, scale: float) -> dict[str, int]:
    raw = {"encoder": preset.encoder_steps, "predictor": preset.predictor_steps, "decoder": preset.decoder_steps}
    return {k: max(1, round(v * scale)) for k, v in raw.items()}


def _lr_at(step: int, total: int, base: float, warmup: int = 200) -> float:
    warm = min(warmup, max(1, total // 10))
    if step < warm:
        return base * (step + 1) / warm
    return base * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _generator(seed: int, phase: str, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(hash((seed, PHASES.index(phase), step)) & 0x7FFFFFFF)


class Windows:
    """Index of training windows: frames ``start + k * frameskip`` for k = 0..length, one episode."""

    def __init__(self, offsets: np.ndarray, frameskip: int, length: int) -> None:
        starts = [np.arange(a, b - length * frameskip) for a, b in zip(offsets[:-1], offsets[1:]) if b - a > length * frameskip]
        self.starts = torch.from_numpy(np.concatenate(starts)) if starts else torch.zeros(0, dtype=torch.long)
        self.frameskip, self.length = frameskip, length
        if len(self.starts) == 0:
            raise ValueError(f"no episode is longer than {length * frameskip} steps")

    def frame_index(self, starts: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, length + 1) frame rows."""
        return starts[:, None] + self.frameskip * torch.arange(self.length + 1)

    def action_index(self, starts: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, length, frameskip) action rows (the env actions between frames)."""
        return starts[:, None, None] + torch.arange(self.length * self.frameskip).reshape(self.length, self.frameskip)


def _in_eval_mode(method: Callable[["Trainer"], dict[str, float]]) -> Callable[["Trainer"], dict[str, float]]:
    """Run ``method`` with the model in eval mode, restoring every submodule's train flag after."""

    def wrapper(self: "Trainer") -> dict[str, float]:
        flags = {mod: mod.training for mod in self.model.modules()}
        self.model.eval()
        try:
            return method(self)
        finally:
            for mod, flag in flags.items():
                mod.train(flag)

    return wrapper


def preset_changes(made: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """"FIELD: RUN's value -> now VALUE" for every (dotted, nested) field of two ``asdict`` presets that differs."""
    out = []
    for key in sorted(made.keys() | now.keys()):
        a, b = made.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += preset_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: run {a!r} -> now {b!r}")
    return out


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.device = check_device(cfg.device)
        self.preset = get_preset(cfg.env, cfg.preset_overrides)
        self.steps = _phase_steps(self.preset, cfg.steps_scale)
        self.train = load_split(cfg.data_dir, "train", mmap=True)  # frames stay on disk: see frames_on_disk
        self.val = load_split(cfg.data_dir, "val", mmap=True)
        spec = ENV_SPECS[cfg.env]
        if self.train.frames.shape[1] != self.preset.image_size:
            raise ValueError(
                f"data in {cfg.data_dir} has {self.train.frames.shape[1]}-px frames, the {cfg.env} preset needs "
                f"{self.preset.image_size}: regenerate with `quantwm data --env {cfg.env}`"
            )
        actions, proprio = self.train.actions, self.train.proprio  # normalisation stats: the scripted policy's data only
        self.plans = load_plan_meta(cfg.data_dir)
        if self.plans is not None:
            self.train = self.train.concat(load_split(cfg.data_dir, PLANS))
        model_cfg = WorldModelConfig(
            env=cfg.env, image_size=self.preset.image_size, num_hist=self.preset.num_hist, frameskip=spec.frameskip,
            action_dim=spec.action_dim, proprio_dim=spec.proprio_dim, encoder=self.preset.encoder,
            predictor=self.preset.predictor, decoder=self.preset.decoder,
            action_mean=tuple(float(x) for x in actions.mean(0)), action_std=tuple(float(x) for x in actions.std(0) + 1e-6),
            proprio_mean=tuple(float(x) for x in proprio.mean(0)), proprio_std=tuple(float(x) for x in proprio.std(0) + 1e-6),
        )
        torch.manual_seed(cfg.seed)
        self.model = WorldModel(model_cfg)
        p = self.preset.encoder.patch_size
        self.pixel_head = nn.Linear(self.preset.encoder.embed_dim, p * p * 3)
        self.model.to(self.device)
        self.pixel_head.to(self.device)
        self.state: dict[str, Any] = {"phase": PHASES[0], "step": 0, "elapsed_s": 0.0, "log": [], "opt": None,
                                      "train_episodes": self.train.n_episodes, "preset_overrides": list(cfg.preset_overrides),
                                      "preset": asdict(self.preset)}
        self._latents: dict[str, torch.Tensor] = {}  # frozen-encoder latents per split, (N, P, E)
        self._mean_frame: torch.Tensor | None = None  # (1, 3, S, S), for the foreground weighting
        self._state_path = cfg.run_dir / "state.pt"
        if self._state_path.is_file():
            saved = torch.load(self._state_path, weights_only=False, map_location=self.device)
            trained_on = saved["state"].get("train_episodes", self.train.n_episodes)  # not recorded before plan replays
            if trained_on != self.train.n_episodes:
                raise ValueError(f"{cfg.run_dir} holds a run on {trained_on} training episodes, {cfg.data_dir} now has "
                                 f"{self.train.n_episodes}: pass a new --run-dir (or delete that one) to train on this data")
            if "preset" in saved["state"]:  # the resolved preset: catches preset edits between sittings, not spellings
                changed = preset_changes(saved["state"]["preset"], asdict(self.preset))
                if changed:
                    raise ValueError(f"{cfg.run_dir} holds a run made with another training preset ({'; '.join(changed)}): "
                                     "pass a new --run-dir (or delete that one), or the same --set overrides")
            elif saved["state"].get("preset_overrides", []) != list(cfg.preset_overrides):  # states before the preset was stored
                raise ValueError(f"{cfg.run_dir} holds a run with preset overrides {saved['state'].get('preset_overrides', [])}, "
                                 f"not {list(cfg.preset_overrides)}: pass a new --run-dir (or delete that one)")
            self.model.load_state_dict(saved["model"])
            self.pixel_head.load_state_dict(saved["pixel_head"])
            self.state = saved["state"]
            if "torch_rng" in saved:  # dropout draws from the global generator (absent in pre-0.1 states)
                torch.set_rng_state(saved["torch_rng"].cpu())

    # ---- bookkeeping --------------------------------------------------------------------
    def _save(self, opt: torch.optim.Optimizer | None) -> None:
        self.cfg.run_dir.mkdir(parents=True, exist_ok=True)
        self.state["opt"] = opt.state_dict() if opt is not None else None
        tmp = self._state_path.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "pixel_head": self.pixel_head.state_dict(), "state": self.state,
                    "torch_rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, self._state_path)
        with open(self.cfg.run_dir / "log.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in self.state["log"])

    def _log(self, record: dict[str, Any], echo: Callable[[str], None]) -> None:
        self.state["log"].append(record)
        echo(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))

    def _loop(self, phase: str, params: list[nn.Parameter], lr: float, loss_fn: Callable[[torch.Generator], torch.Tensor],
              echo: Callable[[str], None], eval_fn: Callable[[], dict[str, float]] | None = None) -> None:
        opt = torch.optim.AdamW(params, lr=lr)
        if self.state["phase"] == phase and self.state["opt"] is not None:
            opt.load_state_dict(self.state["opt"])
        total, last_save, t_start = self.steps[phase], time.time(), time.time()
        base_elapsed, running = self.state["elapsed_s"], []
        while self.state["step"] < total:
            step = self.state["step"]
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total, lr)
            loss = loss_fn(_generator(self.cfg.seed, phase, step))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running.append(loss.item())
            self.state["step"] = step + 1
            self.state["elapsed_s"] = base_elapsed + time.time() - t_start
            done = self.state["step"] == total
            if self.state["step"] % 100 == 0 or done:
                record = {"phase": phase, "step": self.state["step"], "loss": float(np.mean(running)),
                          "elapsed_s": round(self.state["elapsed_s"], 1)}
                running = []
                if eval_fn is not None and (self.state["step"] % self.cfg.eval_every == 0 or done):
                    record.update(eval_fn())
                self._log(record, echo)
            if done or time.time() - last_save > self.cfg.save_every_s:
                self._save(opt)
                last_save = time.time()
        self.state.update(phase=PHASES[PHASES.index(phase) + 1] if phase != PHASES[-1] else "done", step=0, opt=None)
        self._save(None)

    # ---- phase 1: encoder ---------------------------------------------------------------
    def _encoder_loss(self, gen: torch.Generator) -> torch.Tensor:
        pre, enc = self.preset, self.model.encoder
        idx = torch.randint(len(self.train.frames), (pre.batch_size,), generator=gen)
        x = self.model.preprocess(torch.from_numpy(self.train.frames[idx.numpy()]))
        p, n = pre.encoder.patch_size, pre.encoder.num_patches
        mask = (torch.rand(len(x), n, generator=gen) < pre.mask_ratio).to(self.device)
        recon = self.pixel_head(enc(x, patch_mask=mask))  # (B, P, p*p*3)
        target = F.unfold(x, kernel_size=p, stride=p).transpose(1, 2)  # (B, P, 3*p*p)
        weight = 1 + pre.foreground_weight * (F.unfold(self._mean_frame_gap(x), kernel_size=p, stride=p).transpose(1, 2))
        return (weight * (recon - target).pow(2)).mean()

    def _mean_frame_gap(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, 3, S, S) in [0, 1]: 1 where a pixel differs from the mean frame."""
        if self._mean_frame is None:
            sample = self.train.frames[:: max(1, len(self.train.frames) // 2000)]
            self._mean_frame = self.model.preprocess(torch.from_numpy(np.array(sample))).mean(0, keepdim=True)
        gap = (x - self._mean_frame).abs().amax(dim=1, keepdim=True)
        return (gap > 0.1).float().expand_as(x)

    # ---- phase 2: predictor -------------------------------------------------------------
    @torch.inference_mode()
    def _encode_split(self, name: str, echo: Callable[[str], None]) -> torch.Tensor:
        if name not in self._latents:
            frames, t0 = getattr(self, name).frames, time.time()
            self.model.encoder.eval()
            cfg = self.model.cfg
            out = torch.empty((len(frames), cfg.encoder.num_patches, cfg.visual_dim), device=self.device)  # filled in place:
            for i in range(0, len(frames), 512):  # a list of chunks concatenated would hold the latents twice at its peak
                out[i : i + 512] = self.model.encode_frames(torch.from_numpy(np.array(frames[i : i + 512]))[None].to(self.device))[0]
            self._latents[name] = out
            self.state["elapsed_s"] += time.time() - t0
            echo(f"encoded {len(frames)} {name} frames in {time.time() - t0:.0f}s")
        return self._latents[name]

    def _window_batch(self, split: str, windows: Windows, starts: torch.Tensor) -> tuple[Latents, torch.Tensor, torch.Tensor]:
        """Frame latents (B, L+1, P, E), raw proprio (B, L+1, dp), planner actions (B, L, A)."""
        data = getattr(self, split)
        frames = windows.frame_index(starts)
        visual = self._latents[split][frames]
        proprio = torch.from_numpy(data.proprio[frames.numpy()]).to(self.device)
        actions = self.model.normalize_actions(torch.from_numpy(data.actions[windows.action_index(starts).numpy()]))
        return Latents(visual, proprio), actions, frames

    def _predictor_loss(self, gen: torch.Generator) -> torch.Tensor:
        m, nh = self.model, self.preset.num_hist
        starts = self._train_windows.starts[torch.randint(len(self._train_windows.starts), (self.preset.batch_size,), generator=gen)]
        lat, actions, _ = self._window_batch("train", self._train_windows, starts)
        proprio_emb = m.encode_proprio(lat.proprio)
        src = m.tokens(Latents(lat.visual[:, :nh], proprio_emb[:, :nh]), m.encode_actions(actions))
        pred = m.predict(src)
        e, ep, w = m.cfg.visual_dim, m.cfg.proprio_emb_dim, self.preset.proprio_loss_weight
        target = m.tokens(Latents(lat.visual[:, 1:], proprio_emb[:, 1:]), torch.zeros_like(m.encode_actions(actions))).detach()
        visual = F.mse_loss(pred[..., :e], target[..., :e])
        proprio = F.mse_loss(pred[..., e : e + ep], target[..., e : e + ep])
        return (e * visual + w * ep * proprio) / (e + w * ep)  # w = 1: plain MSE over all e + ep dims

    @torch.inference_mode()
    @_in_eval_mode
    def relevance_check(self) -> dict[str, float]:
        """Planning cost (alpha 1) of true vs random actions on fixed validation windows.

        Windows span ``planning_horizon`` planner steps from one context frame, as MPC plans; the
        goal is the real frame at the end. A model that cannot tell the two apart cannot plan.
        """
        m, h = self.model, self.preset.planning_horizon
        windows = Windows(self.val.episode_offsets, m.cfg.frameskip, h)
        gen = torch.Generator().manual_seed(self.cfg.seed)
        starts = windows.starts[torch.randperm(len(windows.starts), generator=gen)[: self.cfg.eval_windows]]
        lat, actions, _ = self._window_batch("val", windows, starts)
        proprio_emb = m.encode_proprio(lat.proprio)
        context = Latents(lat.visual[:, :1], proprio_emb[:, :1])
        goal = Latents(lat.visual[:, -1:], proprio_emb[:, -1:])
        true_cost = planning_cost(m, m.rollout(context, actions), goal, alpha=1.0)
        random_cost = planning_cost(m, m.rollout(context, torch.randn(actions.shape, generator=gen).to(self.device)), goal, alpha=1.0)
        return {"cost_true": true_cost.mean().item(), "cost_random": random_cost.mean().item(),
                "true_beats_random": (true_cost < random_cost).float().mean().item(),
                "proprio_target_std": proprio_emb.std().item()}

    # ---- phase 3: decoder ---------------------------------------------------------------
    def _decoder_loss(self, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self.train.frames), (self.preset.batch_size // 2,), generator=gen)
        visual = self._latents["train"][idx][:, None]
        out = self.model.decoder(visual)[:, 0]
        target = F.interpolate(self.model.preprocess(torch.from_numpy(self.train.frames[idx.numpy()])),
                               size=out.shape[-2:], mode="bilinear", antialias=True, align_corners=False)
        return F.mse_loss(out, target)

    # ---- driver -------------------------------------------------------------------------
    def run(self, echo: Callable[[str], None] = print) -> Path:
        m, pre = self.model, self.preset
        for p in m.parameters():
            p.requires_grad_(False)
        if self.state["phase"] == "encoder":
            m.encoder.train()
            params = list(m.encoder.parameters()) + list(self.pixel_head.parameters())
            for p in params:
                p.requires_grad_(True)
            self._loop("encoder", params, pre.encoder_lr, self._encoder_loss, echo)
            for p in params:
                p.requires_grad_(False)
        m.encoder.eval()
        if self.state["phase"] in ("predictor", "decoder"):
            self._encode_split("train", echo)
            self._encode_split("val", echo)
        if self.state["phase"] == "predictor":
            self._train_windows = Windows(self.train.episode_offsets, m.cfg.frameskip, pre.num_hist)
            modules = [m.predictor, m.action_encoder, m.proprio_encoder]
            params = [p for mod in modules for p in mod.parameters()]
            for mod in modules:
                mod.train()
            for p in params:
                p.requires_grad_(True)
            self._loop("predictor", params, pre.predictor_lr, self._predictor_loss, echo, eval_fn=self.relevance_check)
            for p in params:
                p.requires_grad_(False)
        if self.state["phase"] == "decoder":
            m.decoder.train()
            params = list(m.decoder.parameters())
            for p in params:
                p.requires_grad_(True)
            self._loop("decoder", params, pre.decoder_lr, self._decoder_loss, echo)
        return self.export(echo)

    def export(self, echo: Callable[[str], None] = print) -> Path:
        """Write the checkpoint, its training log and loss curves next to ``cfg.out``."""
        self.model.eval()
        relevance = self.relevance_check()
        meta = load_meta(self.cfg.data_dir)
        training = {
            "command": self.cfg.command, "seed": self.cfg.seed, "preset_overrides": list(self.cfg.preset_overrides),
            "steps": self.steps, "batch_size": self.preset.batch_size,
            "epochs": {ph: round(self.steps[ph] * self.preset.batch_size / n, 2) for ph, n in
                       (("encoder", len(self.train.frames)), ("predictor", len(Windows(self.train.episode_offsets, self.model.cfg.frameskip, self.preset.num_hist).starts)),
                        ("decoder", len(self.train.frames)))},
            "data": {"dir": str(self.cfg.data_dir), "train_episodes": int(self.train.n_episodes),
                     "train_frames": int(len(self.train.frames)), "val_episodes": int(self.val.n_episodes), "meta": meta,
                     "plan_replays": self.plans},
            "wall_time_s": round(self.state["elapsed_s"], 1),
            "relevance": relevance,
            "quality": latent_quality(self.model, self.val, self.cfg.eval_windows, self.preset.planning_horizon, self.cfg.seed).to_dict(),
        }
        path = save_checkpoint(self.model, self.cfg.out, training)
        base = path.with_suffix("")
        (base.parent / f"{base.name}.log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in self.state["log"]))
        plot_losses(self.state["log"], base.parent / f"{base.name}.loss.png", title=f"{self.cfg.env} training")
        echo(f"wrote {path} (relevance: {relevance})")
        return path


def plot_losses(log: list[dict[str, Any]], path: Path, title: str) -> None:
    """One panel per phase (log-scale loss), plus the true-vs-random planning cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = [ph for ph in PHASES if any(r["phase"] == ph for r in log)]
    fig, axes = plt.subplots(1, len(phases) + 1, figsize=(4 * (len(phases) + 1), 3.2))
    for ax, ph in zip(axes, phases):
        rows = [r for r in log if r["phase"] == ph]
        ax.semilogy([r["step"] for r in rows], [r["loss"] for r in rows])
        ax.set(title=f"{ph} loss", xlabel="step")
    rel = [r for r in log if "cost_true" in r]
    ax = axes[-1]
    ax.plot([r["step"] for r in rel], [r["cost_true"] for r in rel], label="true actions")
    ax.plot([r["step"] for r in rel], [r["cost_random"] for r in rel], label="random actions")
    ax.set(title="planning cost on val windows", xlabel="predictor step")
    ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def train(cfg: TrainConfig, echo: Callable[[str], None] = print) -> Path:
    """Train (or resume) and export; returns the checkpoint's JSON path."""
    return Trainer(cfg).run(echo)
