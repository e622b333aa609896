"""Action optimisers that plan in the world model only: CEM, GD, and two baselines.

Every optimiser plans a batch of E episodes at once and draws its random numbers from one
generator per episode, so an episode's plan does not depend on which other episodes share the
batch, and a full-precision and a quantized model see identical sampler noise. Nothing here
touches an environment: there is no ground-truth feedback while optimising (unlike DINO-WM's CEM,
which executed the mean plan in the real env after every iteration).
"""
from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from quantwm.models import Latents, WorldModel
from quantwm.planning.objective import Objective


class Plan(NamedTuple):
    actions: torch.Tensor  # (E, H, A) planner actions (normalised, frameskip-stacked)
    objective_trace: torch.Tensor  # (E, opt_steps): objective of the held plan after each step
    final_objective: torch.Tensor  # (E,) objective of the returned plan


@dataclass(frozen=True)
class CEMConfig:
    """Cross-entropy method as in DINO-WM: N(0, var_scale) start in normalised action space,
    sample 0 set to the mean, mean / std refit to the top-k each step.

    ``noise_beta`` colours the sampling noise along time: 0 is DINO-WM's white noise (every env
    step's action drawn independently); beta > 0 draws each action dimension's noise over the
    plan's env steps with power spectrum 1 / f^beta (iCEM, Pinneri et al. 2020, "Sample-efficient
    Cross-Entropy Method for Real-time Planning"), still unit variance per step, so samples make
    coherent long moves instead of jitter that averages out.

    ``action_clip`` bounds every sampled action to +-action_clip in normalised units (the data's
    mean +- action_clip std per env action dimension); None (or inf) is DINO-WM's unbounded CEM,
    whose means drift to actions far outside the training data, where the model's predictions are
    unchecked.

    ``keep_elites`` carries that many of one step's elites into the next step's population (they
    replace the last samples, so the budget is unchanged), and ``return_best`` returns the
    lowest-cost sample evaluated instead of the final mean (both from iCEM). When the elites split
    between two routes - along the wall towards the door, or through it - their mean can lie on
    neither; the best sample is a plan the model actually rated. 0 / False is DINO-WM's CEM.

    ``hold`` samples one env action per planner step and holds it for its ``frameskip`` env steps
    (a horizon x action_dim search instead of DINO-WM's horizon x frameskip x action_dim: 16 instead
    of 80 dims on Wall at horizon 8); the plans are still frameskip-stacked planner actions. False
    is DINO-WM's CEM, whose independent env actions jitter within every planner step.
    """

    samples: int = 300
    topk: int = 30
    opt_steps: int = 30
    var_scale: float = 1.0
    noise_beta: float = 0.0
    action_clip: float | None = None
    keep_elites: int = 0
    return_best: bool = False
    hold: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.keep_elites <= min(self.topk, self.samples - 1):
            raise ValueError(f"keep_elites must lie in [0, min(topk, samples - 1)] = [0, {min(self.topk, self.samples - 1)}], "
                             f"got {self.keep_elites}")
        if self.noise_beta < 0:
            raise ValueError(f"noise_beta must be >= 0 (0 = white noise), got {self.noise_beta}")
        if self.action_clip is not None and self.action_clip <= 0:
            raise ValueError(f"action_clip must be > 0 (normalised units; inf or None: unbounded), got {self.action_clip}")


@dataclass(frozen=True)
class GDConfig:
    """Gradient descent on the actions through the world model (DINO-WM: SGD, lr 1, 1000 steps)."""

    opt_steps: int = 1000
    lr: float = 1.0
    action_noise: float = 0.003
    init_std: float = 0.0


@dataclass(frozen=True)
class DoNothingConfig:
    """Baseline: zero env actions."""


@dataclass(frozen=True)
class RandomConfig:
    """Baseline: actions drawn from the data's action distribution (N(0, 1) normalised)."""


OptimizerConfig = CEMConfig | GDConfig | DoNothingConfig | RandomConfig


def _expand(x: torch.Tensor, n: int) -> torch.Tensor:
    """(E, ...) -> (E * n, ...), each row repeated n times consecutively."""
    return x.repeat_interleave(n, dim=0)


def _randn(gens: list[torch.Generator], shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device)


def colored_noise(gens: list[torch.Generator], shape: tuple[int, ...], beta: float, device: torch.device) -> torch.Tensor:
    """Gaussian noise (E, *shape) that is 1 / f^beta along ``shape[-2]`` (time), independent
    along every other axis, with unit variance per element (beta 0 is white noise).

    Spectral method of Timmer & Koenig (1995): random Fourier amplitudes scaled by f^(-beta / 2)
    (frequencies below 1 / T clamped to 1 / T), inverse real FFT, divided by the exact standard
    deviation of the result (the constant and, for even T, the Nyquist term are real, the others
    complex).
    """
    if beta == 0:
        return _randn(gens, shape, device)
    t = shape[-2]
    f = torch.fft.rfftfreq(t, dtype=torch.float64)
    scale = f.clamp(min=1.0 / t).pow(-beta / 2)
    spec_shape = (*shape[:-2], f.numel(), shape[-1])
    re = _randn(gens, spec_shape, torch.device("cpu")).double() * scale[:, None]
    im = _randn(gens, spec_shape, torch.device("cpu")).double() * scale[:, None]
    real_terms = [0, f.numel() - 1] if t % 2 == 0 else [0]
    im[..., real_terms, :] = 0.0
    weight = torch.full_like(scale, 4.0)  # var(y_t) = sum_k weight_k scale_k^2 / t^2 (a complex term counts twice)
    weight[real_terms] = 1.0
    sigma = (weight * scale.pow(2)).sum().sqrt() / t
    noise = torch.fft.irfft(torch.complex(re, im), n=t, dim=-2) / sigma
    return noise.float().contiguous().to(device)


def _cost(model: WorldModel, context: Latents, goal: Latents, actions: torch.Tensor, objective: Objective) -> torch.Tensor:
    return objective.cost(model, model.rollout(context, actions), goal)


def _held(actions: torch.Tensor, frameskip: int) -> torch.Tensor:
    """(..., H, action_dim) -> (..., H, frameskip * action_dim): each env action held for the planner step."""
    return actions.repeat(*([1] * (actions.dim() - 1)), frameskip)


@torch.inference_mode()
def cem(model: WorldModel, context: Latents, goal: Latents, horizon: int, objective: Objective,
        gens: list[torch.Generator], cfg: CEMConfig, init: torch.Tensor | None = None) -> Plan:
    """context / goal: Latents with leading dim E; ``init`` (E, horizon, A) starts the mean (zeros
    by default; with ``hold``, its mean env action per planner step); returns the mean plan after
    ``opt_steps``, (E, horizon, A) planner actions."""
    e, s = len(gens), cfg.samples
    fs = model.cfg.frameskip if cfg.hold else 1  # env steps one sampled action covers
    a_dim, steps = model.cfg.planner_action_dim // fs, model.cfg.frameskip // fs  # sampled dims / draws per planner step
    dev = context.visual.device
    if init is None:
        mu = torch.zeros(e, horizon, a_dim, device=dev)
    else:
        mu = init.to(dev, torch.float32).unflatten(-1, (fs, a_dim)).mean(-2)
    sigma = torch.full_like(mu, cfg.var_scale)
    ctx = Latents(_expand(context.visual, s), _expand(context.proprio, s))
    tgt = Latents(_expand(goal.visual, s), _expand(goal.proprio, s))
    trace = torch.empty(e, cfg.opt_steps)
    best, best_cost = mu.clone(), torch.full((e,), torch.inf, device=dev)
    kept = mu[:, None][:, :0]  # (E, 0, H, A): no elites before the first step
    for step in range(cfg.opt_steps):
        noise = colored_noise(gens, (s, horizon * steps, model.cfg.action_dim), cfg.noise_beta, dev)
        actions = mu[:, None] + sigma[:, None] * noise.view(e, s, horizon, a_dim)
        if cfg.action_clip is not None and math.isfinite(cfg.action_clip):
            actions = actions.clamp(-cfg.action_clip, cfg.action_clip)
        actions[:, 0] = mu
        actions[:, s - kept.shape[1]:] = kept
        cost = _cost(model, ctx, tgt, _held(actions.flatten(0, 1), fs), objective).view(e, s)
        top = cost.topk(cfg.topk, dim=1, largest=False)
        elite = actions.gather(1, top.indices[..., None, None].expand(-1, -1, horizon, a_dim))
        improved = top.values[:, 0] < best_cost
        best[improved], best_cost[improved] = elite[improved, 0], top.values[improved, 0]
        if step:
            trace[:, step - 1] = (best_cost if cfg.return_best else cost[:, 0]).cpu()
        mu, sigma, kept = elite.mean(1), elite.std(1), elite[:, :cfg.keep_elites]
    final = _cost(model, context, goal, _held(mu, fs), objective)
    if cfg.return_best:
        final, mu = torch.minimum(final, best_cost), torch.where((final <= best_cost)[:, None, None], mu, best)
    trace[:, -1] = final.cpu()
    return Plan(_held(mu, fs), trace, final.cpu())


def gd(model: WorldModel, context: Latents, goal: Latents, horizon: int, objective: Objective,
       gens: list[torch.Generator], cfg: GDConfig, init: torch.Tensor | None = None) -> Plan:
    """SGD on the actions with small exploration noise after each step, from ``init`` (E, horizon, A)
    plus ``init_std`` noise (zeros by default)."""
    dev = context.visual.device
    shape = (horizon, model.cfg.planner_action_dim)
    start = cfg.init_std * _randn(gens, shape, dev)
    actions = (start if init is None else start + init.to(dev, torch.float32)).requires_grad_(True)
    opt = torch.optim.SGD([actions], lr=cfg.lr)
    trace = torch.empty(len(gens), cfg.opt_steps)
    with torch.enable_grad():
        for step in range(cfg.opt_steps):
            cost = _cost(model, context, goal, actions, objective)
            opt.zero_grad(set_to_none=True)
            cost.sum().backward()
            opt.step()
            with torch.no_grad():
                actions += cfg.action_noise * _randn(gens, shape, dev)
            if step:
                trace[:, step - 1] = cost.detach().cpu()
    with torch.inference_mode():
        final = _cost(model, context, goal, actions.detach(), objective)
    trace[:, -1] = final.cpu()
    return Plan(actions.detach(), trace, final.cpu())


def _baseline(make: Callable[[WorldModel, list[torch.Generator], tuple[int, int], torch.device], torch.Tensor]):
    @torch.inference_mode()
    def plan(model: WorldModel, context: Latents, goal: Latents, horizon: int, objective: Objective,
             gens: list[torch.Generator], cfg: DoNothingConfig | RandomConfig, init: torch.Tensor | None = None) -> Plan:
        """Baselines ignore ``init``."""
        actions = make(model, gens, (horizon, model.cfg.planner_action_dim), context.visual.device)
        return Plan(actions, torch.empty(len(gens), 0), _cost(model, context, goal, actions, objective).cpu())

    return plan


def _zeros(model: WorldModel, gens: list[torch.Generator], shape: tuple[int, int], dev: torch.device) -> torch.Tensor:
    zero_env = torch.zeros(len(gens), shape[0], model.cfg.frameskip, model.cfg.action_dim, device=dev)
    return model.normalize_actions(zero_env)


OPTIMIZERS: dict[type, Callable[..., Plan]] = {
    CEMConfig: cem,
    GDConfig: gd,
    DoNothingConfig: _baseline(_zeros),
    RandomConfig: _baseline(lambda model, gens, shape, dev: _randn(gens, shape, dev)),
}


def optimize(model: WorldModel, context: Latents, goal: Latents, horizon: int, objective: Objective,
             gens: list[torch.Generator], cfg: OptimizerConfig, init: torch.Tensor | None = None) -> Plan:
    """Dispatch on the config's type (see ``OPTIMIZERS``); ``init`` (E, horizon, A) warm-starts CEM / GD."""
    return OPTIMIZERS[type(cfg)](model, context, goal, horizon, objective, gens, cfg, init)
