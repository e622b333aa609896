"""Sweeps: a grid of run options, each point one cached experiment, handed to an executor.

The executor is the seam for scaling out: ``LocalExecutor`` runs configs one after another in this
process; a cluster executor only has to implement ``Executor.run`` (configs in, results or errors
out, in any order). Finished experiments live in the results cache, so an interrupted sweep loses
nothing and a restart skips what is done.
"""
from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from quantwm.cache import ResultsCache
from quantwm.experiment.config import ExperimentConfig
from quantwm.experiment.options import RunOptions, parse_value
from quantwm.experiment.run import ExperimentResult, cached_result, run_experiment


def parse_grid(assignments: Iterable[str]) -> dict[str, list[Any]]:
    """``["w_bits=2,3,4", "modules=encoder,predictor+encoder"]`` -> {name: values} (in a value, ``+``
    joins modules or blocks that are quantized together)."""
    grid: dict[str, list[Any]] = {}
    for text in assignments:
        name, sep, values = text.partition("=")
        if not sep or not values:
            raise ValueError(f"--set takes NAME=V1,V2,..., got {text!r}")
        name = name.strip().replace("-", "_")
        grid[name] = [parse_value(name, v.strip()) for v in values.split(",")]
    return grid


def expand(base: RunOptions, grid: dict[str, list[Any]]) -> list[RunOptions]:
    """Every combination of the grid's values over ``base`` (validated before any work)."""
    names = list(grid)
    points = [base.with_values(**dict(zip(names, combo))) for combo in itertools.product(*(grid[n] for n in names))]
    for p in points:
        p.config()
    return points


Outcome = tuple[ExperimentConfig, "ExperimentResult | Exception"]


class Executor(Protocol):
    """Runs experiments; yields (config, result or the exception it raised) as each finishes."""

    def run(self, configs: list[ExperimentConfig], progress: Callable[[ExperimentConfig, str, int, int], None]) -> Iterator[Outcome]:
        ...


class LocalExecutor:
    """In this process, one config after another, each through ``run_experiment`` and ``cache``
    (default: the results cache)."""

    def __init__(self, cache: ResultsCache | None = None) -> None:
        self.cache = cache

    def run(self, configs: list[ExperimentConfig], progress: Callable[[ExperimentConfig, str, int, int], None]) -> Iterator[Outcome]:
        for config in configs:
            try:
                yield config, run_experiment(config, lambda stage, done, total, c=config: progress(c, stage, done, total),
                                             cache=self.cache)
            except ValueError as err:  # a config the model rejects; the others still run
                yield config, err


@dataclass
class SweepRow:
    """One grid point's outcome, as a CSV row."""

    values: dict[str, Any]

    @staticmethod
    def of(options: RunOptions, outcome: "ExperimentResult | Exception | None") -> "SweepRow":
        row: dict[str, Any] = {"env": options.env, "method": options.method, "w_bits": options.w_bits,
                               "w_granularity": options.w_granularity, "group_size": options.group_size,
                               "a_bits": options.a_bits, "a_granularity": options.a_granularity,
                               "modules": "+".join(options.modules), "blocks": "+".join(options.blocks),
                               "planner": options.planner, "preset": options.preset, "episodes": options.episodes,
                               "seed": options.seed}
        if isinstance(outcome, Exception):
            return SweepRow(row | {"status": "error", "error": str(outcome)})
        if outcome is None:
            return SweepRow(row | {"status": "pending"})
        v = outcome.value
        errors = v["latent_error"]
        row |= {"status": "cached" if outcome.cached else "done", "label": v["label"],
                "fp_success": v["fp"]["summary"]["success_rate"], "quant_success": v["quant"]["summary"]["success_rate"],
                "fp_state_distance": v["fp"]["summary"]["mean_state_distance"],
                "quant_state_distance": v["quant"]["summary"]["mean_state_distance"],
                "latent_error_last": errors["quant_vs_fp"]["mean"][-1] if "quant_vs_fp" in errors else None,
                "fp_auroc": v["alignment"]["fp"]["auroc_objective_success"],
                "quant_auroc": v["alignment"]["quant"]["auroc_objective_success"],
                "effective_bits": v["model"]["effective_bits"], "key": v["key"]}
        return SweepRow(row)


def run_sweep(points: list[RunOptions], *, executor: Executor | None = None, csv_path: Path | None = None,
              progress: Callable[[int, int, str], None] | None = None, cache: ResultsCache | None = None) -> list[SweepRow]:
    """Run every point not already in ``cache`` (default: the results cache) with ``executor``
    (default: local, on the same cache); the CSV (one row per point, in grid order) is rewritten
    after each finished point, so an interrupted sweep leaves a true partial table."""
    cache = cache or ResultsCache()
    executor = executor or LocalExecutor(cache)
    configs = [p.config() for p in points]
    outcomes: dict[int, ExperimentResult | Exception | None] = {i: cached_result(c, cache) for i, c in enumerate(configs)}
    todo = [c for i, c in enumerate(configs) if outcomes[i] is None]
    index = {id(c): i for i, c in enumerate(configs)}
    done = len(configs) - len(todo)
    report = progress or (lambda d, t, what: None)
    report(done, len(configs), "cached" if done else "start")

    def write() -> list[SweepRow]:
        rows = [SweepRow.of(p, outcomes[i]) for i, p in enumerate(points)]
        if csv_path is not None:
            _write_csv(csv_path, rows)
        return rows

    try:
        for config, outcome in executor.run(todo, lambda c, stage, d, t: report(done, len(configs), f"{c.label()}: {stage} {d}/{t}")):
            outcomes[index[id(config)]] = outcome
            done += 1
            report(done, len(configs), f"{config.label()}: done")
            write()
    finally:
        rows = write()
    return rows


def _write_csv(path: Path, rows: list[SweepRow]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r.values))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(r.values for r in rows)
    tmp.replace(path)
