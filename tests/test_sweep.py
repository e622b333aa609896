"""Sweeps: grid parsing, interruption keeps finished points, restart skips them; the cache CLI."""
from __future__ import annotations

import csv

import pytest

from quantwm import cli
from quantwm.cache import ResultsCache
from quantwm.experiment.options import RunOptions
from quantwm.experiment.sweep import LocalExecutor, expand, parse_grid, run_sweep

# tiny Wall experiments: 1 episode of CEM with one optimiser step, 2 probe steps, no videos
BASE = RunOptions(env="wall", planner="cem", episodes=1, seed=3, probe_steps=2, videos=0, calibration_episodes=1,
                  calibration_size=16)


def test_grid_parses_values_and_joins_modules() -> None:
    grid = parse_grid(["w_bits=2,3", "modules=encoder,encoder+predictor", "a-granularity=per_tensor"])
    assert grid == {"w_bits": [2, 3], "modules": [("encoder",), ("encoder", "predictor")], "a_granularity": ["per_tensor"]}
    points = expand(BASE, grid)
    assert len(points) == 4 and points[-1].modules == ("encoder", "predictor") and points[-1].w_bits == 3
    with pytest.raises(ValueError, match="unknown option 'bits'"):
        parse_grid(["bits=2"])
    with pytest.raises(ValueError, match="weight bits 9 is invalid"):
        expand(BASE, parse_grid(["w_bits=4,9"]))  # every point checked before any work


class InterruptAfterFirst(LocalExecutor):
    """Ctrl-C after the first finished experiment."""

    def run(self, configs, progress):
        for n, outcome in enumerate(super().run(configs, progress)):
            yield outcome
            if n == 0:
                raise KeyboardInterrupt


def test_interrupted_sweep_keeps_finished_points_and_restart_skips_them(tmp_path) -> None:
    cache = ResultsCache(tmp_path / "results")
    points = expand(BASE.with_values(planner="cem"), parse_grid(["w_bits=3,4"]))
    table = tmp_path / "sweep.csv"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(points, executor=InterruptAfterFirst(cache), csv_path=table, cache=cache)
    rows = list(csv.DictReader(table.open()))
    assert [r["status"] for r in rows] == ["done", "pending"]
    assert len(cache.list("experiment")) == 1
    done = run_sweep(points, csv_path=table, cache=cache)
    assert [r.values["status"] for r in done] == ["cached", "done"]
    rows = list(csv.DictReader(table.open()))
    assert [r["w_bits"] for r in rows] == ["3", "4"] and all(0 <= float(r["quant_success"]) <= 1 for r in rows)


def test_cache_cli_lists_shows_and_clears(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("QUANTWM_RESULTS_DIR", str(tmp_path / "results"))
    cache = ResultsCache()
    cache.put("a" * 64, "fp", {"summary": {}}, meta={"label": "FP mpc quick"})
    assert cli.main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "aaaaaaaaaaaaaaaa" in out and "FP mpc quick" in out
    assert cli.main(["cache", "show", "aaaa"]) == 0 and '"kind": "fp"' in capsys.readouterr().out
    assert cli.main(["cache", "show", "zz"]) == 2 and "matching one entry" in capsys.readouterr().err
    assert cli.main(["cache", "clear"]) == 0 and "removed 1 entries" in capsys.readouterr().out
    assert cache.list() == []
