"""Command line: bad input gives one readable line naming the valid choices, never a traceback."""
from __future__ import annotations

import json

import pytest

from quantwm.cli import main
from quantwm.models import WorldModel, save_checkpoint
from tests.test_models import tiny_config


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


@pytest.mark.parametrize("argv, message", [
    (["eval", "--env", "cartpole"], "invalid choice: 'cartpole' (choose from 'pusht', 'wall')"),
    (["eval", "--env", "wall", "--planner", "ilqr"], "invalid choice: 'ilqr' (choose from 'cem', 'mpc', 'gd', 'do_nothing', 'random')"),
    (["eval", "--env", "wall", "--episodes", "0"], "expected a positive integer, got 0"),
    (["eval", "--env", "wall", "--samples", "-3"], "expected a positive integer, got -3"),
    (["eval", "--env", "wall", "--checkpoint", "/nonexistent/model.json"], "checkpoint config /nonexistent/model.json not found"),
    (["eval", "--env", "wall", "--device", "tpu"], "unknown device 'tpu'; valid: cpu, cuda"),
    (["train", "--env", "maze"], "invalid choice: 'maze' (choose from 'pusht', 'wall')"),
    (["train", "--env", "wall", "--device", "tpu"], "unknown device 'tpu'; valid: cpu, cuda"),
    (["data", "--env", "wall", "--plans", "mpc.json"], "--plans needs --checkpoint: the model that planned them"),
    (["data", "--env", "wall", "--plans", "/nonexistent/mpc.json", "--checkpoint", "assets/wall.json"],
     "/nonexistent/mpc.json is not a `quantwm eval --json` record"),
    (["data", "--env", "wall", "--set", "charge_rate=0.2", "--out", "/nonexistent/wall"],
     "unknown wall data policy setting 'charge_rate'; valid: charge_noise, charge_prob, charge_speed"),
    (["data", "--env", "pusht", "--set", "push_steps=(6.5, 20)", "--out", "/nonexistent/pusht"],
     "pusht data policy setting push_steps must be a tuple of 2 integers like (6, 26), got '(6.5, 20)'"),
    (["data", "--env", "wall", "--plans", "mpc.json", "--checkpoint", "assets/wall.json", "--set", "charge_prob=0.2"],
     "--set changes the scripted data policy"),
])
def test_bad_input_is_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, last = run(argv, capsys)
    assert code == 2
    assert message in last


def test_checkpoint_of_the_wrong_env_or_shape(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_checkpoint(WorldModel(tiny_config()), tmp_path / "pusht_model")
    code, last = run(["eval", "--env", "wall", "--checkpoint", str(path)], capsys)
    assert code == 2 and "is a 'pusht' model, not 'wall'" in last
    meta = json.loads(path.read_text())
    meta["config"]["encoder"]["embed_dim"] = 24
    path.write_text(json.dumps(meta))
    code, last = run(["eval", "--env", "pusht", "--checkpoint", str(path)], capsys)
    assert code == 2 and "do not match config" in last and "wrong shape" in last
