"""Calibration inputs: captured from full-precision planning, replayed to reach every layer.

``capture_calibration`` hooks the module groups of a world model, runs the caller's planning
function (full precision, on the calibration split, never the evaluation episodes) and keeps a
seeded uniform random subset of ``size`` samples per group (reservoir sampling over the batch
rows of every call). It draws from its own seeded generator, never from the global RNG, so
planning that follows is unaffected. ``Calibration.split`` holds out a seeded subset of the
samples (to measure a method on inputs it was not fitted on). Per-layer inputs are obtained by
replaying the stored group inputs through the (possibly transformed) model with
forward-pre-hooks; the subsets kept of them are seeded and drawn from every call.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from quantwm.quant.config import GROUPS
from quantwm.quant.modules import channel_dim_of, channels_last, heads_last

Batch = tuple[torch.Tensor, ...]


@dataclass
class Calibration:
    """Calibration inputs: group name -> list of batches, each the tuple of positional tensors of
    one group call (e.g. predictor: ((N, T*P, D),); encoder: ((N, 3, H, W),))."""

    inputs: dict[str, list[Batch]]

    def __post_init__(self) -> None:
        for group, batches in self.inputs.items():
            if group not in GROUPS:
                raise ValueError(f"calibration group {group!r} is invalid; valid: {', '.join(GROUPS)}")
            if not batches or not all(isinstance(b, tuple) and b and all(isinstance(t, torch.Tensor) for t in b) for b in batches):
                raise ValueError(f"calibration of {group!r} needs at least one batch, each a non-empty tuple of tensors")

    @staticmethod
    def from_tensors(**groups: torch.Tensor | Batch) -> "Calibration":
        """One batch per group: ``Calibration.from_tensors(predictor=tokens, encoder=pixels)``."""
        return Calibration({g: [x if isinstance(x, tuple) else (x,)] for g, x in groups.items()})

    def size(self, group: str) -> int:
        return sum(b[0].shape[0] for b in self.inputs[group])

    def split(self, holdout: int, seed: int) -> tuple["Calibration", "Calibration"]:
        """(fit, held_out): per group a seeded random ``holdout`` samples (batch rows) go to
        ``held_out`` and the rest to ``fit``, e.g. to fit a method on one and measure it on the
        other. Each batch is split by rows, so batches keep their shape grouping and at most their
        size. Draws from its own generator (groups in ``GROUPS`` order): same arguments, same split.

        Samples of one capture come from the same episodes (consecutive planning steps), so this
        measures new samples of those episodes; inputs of other episodes (another capture) can be
        further away (PushT GPTQ W3: as in-sample on the split, 2.4 dB below on other episodes;
        benchmarks/calibration_holdout.py)."""
        if isinstance(holdout, bool) or not isinstance(holdout, int) or holdout < 1:
            raise ValueError(f"holdout must be an integer >= 1, got {holdout!r}")
        generator = torch.Generator().manual_seed(seed)
        fit: dict[str, list[Batch]] = {}
        held: dict[str, list[Batch]] = {}
        for group in (g for g in GROUPS if g in self.inputs):
            n = self.size(group)
            if n <= holdout:
                raise ValueError(f"calibration of {group!r} has {n} samples; holding out {holdout} needs more than {holdout}")
            held_rows = torch.zeros(n, dtype=torch.bool)
            held_rows[torch.randperm(n, generator=generator)[:holdout]] = True
            fit[group], held[group] = [], []
            for batch, mask in zip(self.inputs[group], held_rows.split([b[0].shape[0] for b in self.inputs[group]])):
                for part, rows in ((fit[group], ~mask), (held[group], mask)):
                    if rows.any():
                        part.append(tuple(t[rows] for t in batch))
        return Calibration(fit), Calibration(held)


def capture_calibration(
    world_model: nn.Module, groups: Iterable[str], run_fn: Callable[[], object], size: int, seed: int,
    batch_size: int = 64,
) -> Calibration:
    """Run ``run_fn()`` with hooks on ``groups`` and keep a seeded random subset of ``size`` input
    samples per group (stacked in batches of at most ``batch_size`` samples of equal shape)."""
    groups = list(groups)
    for g in groups:
        if g not in GROUPS or not isinstance(getattr(world_model, g, None), nn.Module):
            raise ValueError(f"cannot calibrate group {g!r}; valid: {', '.join(x for x in GROUPS if isinstance(getattr(world_model, x, None), nn.Module))}")
    if size < 1 or batch_size < 1:
        raise ValueError(f"size and batch_size must be >= 1, got {size}, {batch_size}")
    rng = random.Random(seed)
    kept: dict[str, list[tuple[int, Batch]]] = {g: [] for g in groups}
    seen = dict.fromkeys(groups, 0)

    def hook_for(group: str) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if not args or not all(isinstance(a, torch.Tensor) for a in args) or any(isinstance(v, torch.Tensor) for v in kwargs.values()):
                raise ValueError(f"calibration of {group!r} supports positional tensor inputs only (non-tensor flags are dropped)")
            for row in range(args[0].shape[0]):
                slot = seen[group] if seen[group] < size else rng.randrange(seen[group] + 1)
                if slot < size:
                    sample = (seen[group], tuple(a[row].detach().clone() for a in args))
                    if slot < len(kept[group]):
                        kept[group][slot] = sample
                    else:
                        kept[group].append(sample)
                seen[group] += 1
        return hook

    handles = [getattr(world_model, g).register_forward_pre_hook(hook_for(g), with_kwargs=True) for g in groups]
    try:
        run_fn()
    finally:
        for h in handles:
            h.remove()
    missing = [g for g in groups if not kept[g]]
    if missing:
        raise ValueError(f"run_fn never called {', '.join(missing)}; nothing to calibrate them on")
    inputs: dict[str, list[Batch]] = {}
    for g in groups:
        by_shape: dict[tuple, list[Batch]] = {}
        for _, sample in sorted(kept[g], key=lambda s: s[0]):
            by_shape.setdefault(tuple(t.shape for t in sample), []).append(sample)
        inputs[g] = [
            tuple(torch.stack(parts) for parts in zip(*samples[i : i + batch_size]))
            for samples in by_shape.values() for i in range(0, len(samples), batch_size)
        ]
    return Calibration(inputs)


@torch.no_grad()
def replay(model: nn.Module, calibration: Calibration, groups: Iterable[str], hooks: dict[nn.Module, Callable]) -> None:
    """Run every calibration batch of ``groups`` through the model with ``hooks`` (module ->
    ``fn(args, kwargs)``) installed as forward-pre-hooks."""
    handles = [m.register_forward_pre_hook(lambda _m, a, k, fn=fn: fn(a, k), with_kwargs=True) for m, fn in hooks.items()]
    try:
        wanted = set(groups)
        for group in (g for g in GROUPS if g in wanted):  # fixed order: row subsets are seeded
            module = getattr(model, group)
            for batch in calibration.inputs[group]:
                module(*batch)
    finally:
        for h in handles:
            h.remove()


Call = tuple[tuple, dict]  # the (args, kwargs) of one module call


@dataclass
class LayerInputs:
    """What a layer saw: ``rows`` a seeded random subset of its channel-last inputs (n, C), the
    per-channel ``lo`` / ``hi`` over all of them (C,), and for layers that are not Linear
    (convolutions: no row form) ``calls``, a seeded random subset of the samples of all its calls
    (``sample_calls``), to re-run it on."""

    rows: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    calls: list[Call]


def _positions(args: tuple) -> int:
    """Channel-last rows one sample of a raw layer input (N, C, *spatial) makes: prod(spatial)."""
    return args[0][0, 0].numel()


class _CallSampler:
    """A seeded random subset of the samples a module received over all its calls, about
    ``max_rows`` rows in all (at least one sample): the first ``batched`` arguments are sliced
    along their batch axis (every call keeps a random subset, then their union is subsampled), the
    other arguments and keyword arguments are kept as they are; ``rows_per_sample(args)`` says
    how many rows one sample counts for."""

    def __init__(self, max_rows: int, generator: torch.Generator, batched: int, rows_per_sample: Callable[[tuple], int]) -> None:
        self.max_rows, self.generator, self.batched, self.rows_per_sample = max_rows, generator, batched, rows_per_sample
        self.parts: list[tuple[Call, int]] = []  # (call restricted to its kept samples, rows per sample)

    def add(self, args: tuple, kwargs: dict) -> None:
        rows = self.rows_per_sample(args)
        keep = torch.randperm(args[0].shape[0], generator=self.generator)[: max(1, self.max_rows // rows)]
        self.parts.append((((*(a[keep] for a in args[: self.batched]), *args[self.batched :]), kwargs), rows))

    def result(self) -> list[Call]:
        samples = [(i, j) for i, ((args, _), _) in enumerate(self.parts) for j in range(args[0].shape[0])]
        chosen: dict[int, list[int]] = {}
        total = 0
        for k in torch.randperm(len(samples), generator=self.generator).tolist():
            i, j = samples[k]
            rows = self.parts[i][1]
            if chosen and total + rows > self.max_rows:
                continue
            chosen.setdefault(i, []).append(j)
            total += rows
        calls = []
        for i, kept in sorted(chosen.items()):
            (args, kwargs), _ = self.parts[i]
            index = torch.tensor(sorted(kept))
            calls.append(((*(a[index] for a in args[: self.batched]), *args[self.batched :]), kwargs))
        return calls


def sample_calls(calls: list[Call], max_rows: int, generator: torch.Generator) -> list[Call]:
    """A seeded random subset of the samples of a layer's raw-input ``calls`` ((N, C, *spatial),
    prod(spatial) rows a sample), about ``max_rows`` rows in all."""
    sampler = _CallSampler(max_rows, generator, 1, _positions)
    for args, kwargs in calls:
        sampler.add(args, kwargs)
    return sampler.result()


class _RowCollector:
    """Running per-channel range and a seeded random subset of at most ``max_rows`` rows; with a
    ``call_generator`` (layers that are not Linear) also a subset of the raw calls, about
    ``max_rows`` rows' worth, drawn from that generator so that row subsets do not depend on it."""

    def __init__(self, max_rows: int, generator: torch.Generator, call_generator: torch.Generator | None) -> None:
        self.max_rows, self.generator = max_rows, generator
        self.parts: list[torch.Tensor] = []
        self.lo = self.hi = None
        self.calls = _CallSampler(max_rows, call_generator, 1, _positions) if call_generator is not None else None

    def _subset(self, rows: torch.Tensor) -> torch.Tensor:
        if rows.shape[0] <= self.max_rows:
            return rows
        return rows[torch.randperm(rows.shape[0], generator=self.generator)[: self.max_rows]]

    def add(self, rows: torch.Tensor, raw: torch.Tensor) -> None:
        lo, hi = rows.amin(0), rows.amax(0)
        self.lo = lo if self.lo is None else torch.minimum(self.lo, lo)
        self.hi = hi if self.hi is None else torch.maximum(self.hi, hi)
        self.parts.append(self._subset(rows).clone())
        if self.calls is not None:
            self.calls.add((raw,), {})

    def result(self) -> LayerInputs:
        calls = self.calls.result() if self.calls is not None else []
        return LayerInputs(self._subset(torch.cat(self.parts)), self.lo, self.hi, calls)


def collect_layer_inputs(
    model: nn.Module, calibration: Calibration, layers: dict[str, tuple[str, nn.Module]], max_rows: int, seed: int,
    rotations: dict[str, torch.Tensor] | None = None,
) -> dict[str, LayerInputs]:
    """Inputs of each layer (name -> (group, module)) under calibration replay, channel-last and
    multiplied by the layer's pending online rotation (name -> (C, C)) if any; at most
    ``max_rows`` rows a layer, drawn from every call (all samples, frames and tokens)."""
    rotations = rotations or {}
    generator, call_generator = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    collectors = {name: _RowCollector(max_rows, generator, call_generator if channel_dim_of(m) != -1 else None)
                  for name, (_, m) in layers.items()}

    def hook_for(name: str, module: nn.Module) -> Callable:
        channel_dim = channel_dim_of(module)

        def hook(args: tuple, kwargs: dict) -> None:
            x = args[0]
            rows = channels_last(x, channel_dim).reshape(-1, x.shape[channel_dim])
            if name in rotations:
                rows = rows @ rotations[name]
            collectors[name].add(rows, x)
        return hook

    replay(model, calibration, {g for g, _ in layers.values()}, {m: hook_for(n, m) for n, (_, m) in layers.items()})
    return {name: c.result() for name, c in collectors.items()}


def collect_attention_ranges(
    model: nn.Module, calibration: Calibration, attends: dict[str, tuple[str, nn.Module]]
) -> dict[str, tuple[tuple[torch.Tensor, torch.Tensor], ...]]:
    """Per-channel (heads * dh) min / max of q, k and v of each ``attend`` under replay."""
    ranges: dict[str, list] = {name: [None, None, None] for name in attends}

    def hook_for(name: str) -> Callable:
        def hook(args: tuple, kwargs: dict) -> None:
            for i, t in enumerate(args[:3]):
                flat = heads_last(t).reshape(-1, t.shape[1] * t.shape[3])
                lo, hi = flat.amin(0), flat.amax(0)
                old = ranges[name][i]
                ranges[name][i] = (lo, hi) if old is None else (torch.minimum(old[0], lo), torch.maximum(old[1], hi))
        return hook

    replay(model, calibration, {g for g, _ in attends.values()}, {m: hook_for(n) for n, (_, m) in attends.items()})
    return {name: tuple(r) for name, r in ranges.items()}


def collect_module_calls(
    model: nn.Module, calibration: Calibration, modules: dict[str, tuple[str, nn.Module]]
) -> dict[str, list[Call]]:
    """Every (args, kwargs) each module (name -> (group, module)) receives under replay."""
    calls: dict[str, list[Call]] = {name: [] for name in modules}
    hooks = {m: (lambda a, k, n=n: calls[n].append((a, k))) for n, (_, m) in modules.items()}
    replay(model, calibration, {g for g, _ in modules.values()}, hooks)
    return calls


def collect_attention_samples(
    model: nn.Module, calibration: Calibration, attends: dict[str, tuple[str, nn.Module]], max_rows: int, seed: int,
) -> dict[str, list[Call]]:
    """Calls of each ``attend`` (name -> (group, module)) under replay, restricted to a seeded
    random subset of their samples (q, k, v (B, heads, N, dh) sliced along B, the mask kept):
    about ``max_rows`` query tokens in all, drawn from every call."""
    generator = torch.Generator().manual_seed(seed)
    samplers = {name: _CallSampler(max_rows, generator, 3, lambda args: args[0].shape[2]) for name in attends}
    replay(model, calibration, {g for g, _ in attends.values()}, {m: samplers[n].add for n, (_, m) in attends.items()})
    return {name: s.result() for name, s in samplers.items()}
