"""Training: runs end to end on a tiny dataset, and an interrupted run resumes to identical weights."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import numpy as np

from quantwm.cli import main
from quantwm.envs.dataset import DEFAULT_DATASETS, generate_dataset, load_split
from quantwm.models import load_checkpoint
from quantwm.training import presets as presets_module
from quantwm.training.trainer import TrainConfig, Trainer, train


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def wall_data(tmp_path_factory) -> Path:
    cfg = replace(DEFAULT_DATASETS["wall"], n_episodes=12, episode_len=40)
    return generate_dataset(cfg, tmp_path_factory.mktemp("data") / "wall")


def _cfg(data: Path, root: Path) -> TrainConfig:
    return TrainConfig(env="wall", data_dir=data, run_dir=root / "run", out=root / "model", steps_scale=0.002,
                       save_every_s=0.0, eval_every=10, eval_windows=16, command="quantwm train --env wall")


def test_interrupted_training_resumes_to_identical_weights(wall_data: Path, tmp_path: Path, monkeypatch) -> None:
    straight = load_checkpoint(train(_cfg(wall_data, tmp_path / "a"), echo=lambda s: None))

    calls = {"n": 0}
    real = Trainer._predictor_loss

    def flaky(self, gen):
        calls["n"] += 1
        if calls["n"] == 7:
            raise Interrupt  # stop in the middle of the predictor phase
        return real(self, gen)

    monkeypatch.setattr(Trainer, "_predictor_loss", flaky)
    with pytest.raises(Interrupt):
        train(_cfg(wall_data, tmp_path / "b"), echo=lambda s: None)
    state = torch.load(tmp_path / "b" / "run" / "state.pt", weights_only=False)["state"]
    assert state["phase"] == "predictor" and state["step"] == 6
    resumed_path = train(_cfg(wall_data, tmp_path / "b"), echo=lambda s: None)
    resumed = load_checkpoint(resumed_path)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name

    meta = json.loads(resumed_path.read_text())["training"]
    assert meta["command"] == "quantwm train --env wall" and meta["seed"] == 0
    assert meta["data"]["train_episodes"] == 10 and meta["wall_time_s"] > 0
    assert set(meta["steps"]) == {"encoder", "predictor", "decoder"} and set(meta["relevance"]) >= {"cost_true", "cost_random"}
    quality = meta["quality"]  # latent quality on validation windows of the relevance check's horizon
    assert len(quality["visual_mse"]) == len(quality["copy_mse"]) == len(quality["pred_psnr"]) == 5
    assert quality["final_cost"] > 0 and quality["recon_psnr"] > 0
    assert (tmp_path / "b" / "model.loss.png").stat().st_size > 1000
    assert (tmp_path / "b" / "model.log.jsonl").read_text().count("\n") >= 3


def test_training_rejects_data_of_the_wrong_resolution(wall_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(presets_module.PRESETS, "wall", replace(presets_module.PRESETS["wall"], image_size=32))
    with pytest.raises(ValueError, match="has 64-px frames, the wall preset needs 32"):
        Trainer(_cfg(wall_data, tmp_path))


def test_plans_of_an_eval_record_replay_from_their_start_states_into_training(wall_data: Path, tmp_path: Path) -> None:
    """`quantwm data --plans` turns every MPC plan of an eval record into env actions replayed from the
    state it was planned from (the first executed planner step reproduces the episode's own states),
    and training adds those replays to the scripted episodes but keeps the scripted action statistics."""
    data = shutil.copytree(wall_data, tmp_path / "wall")
    train(replace(_cfg(data, tmp_path), data_dir=data), echo=lambda s: None)  # a finished run on scripted data
    record = tmp_path / "mpc.json"
    assert main(["eval", "--env", "wall", "--planner", "mpc", "--episodes", "2", "--samples", "8", "--topk", "2",
                 "--opt-steps", "1", "--budget", "3", "--quiet", "--json", str(record)]) == 0
    assert main(["data", "--env", "wall", "--plans", str(record), "--checkpoint", "assets/wall.json", "--out", str(data)]) == 0
    episodes = json.loads(record.read_text())["results"][0]["episodes"]
    plans = load_split(data, "plans")
    assert plans.n_episodes == sum(len(ep["planned_actions"]) for ep in episodes)
    skip = 5
    for e, ep in enumerate(episodes):  # the first plan of each episode
        first = plans.episode(sum(len(x["planned_actions"]) for x in episodes[:e]))
        assert np.allclose(plans.states[first][: skip + 1], np.array(ep["states"][: skip + 1]))
        last = plans.episode(sum(len(x["planned_actions"]) for x in episodes[: e + 1]) - 1)
        assert np.allclose(plans.states[last][0], ep["states"][ep["plan_starts"][-1]])

    with pytest.raises(ValueError, match="holds a run on 10 training episodes.*pass a new --run-dir"):
        train(replace(_cfg(data, tmp_path), data_dir=data), echo=lambda s: None)  # resuming it would ignore the replays
    path = train(replace(_cfg(data, tmp_path), data_dir=data, run_dir=tmp_path / "run2"), echo=lambda s: None)
    meta = json.loads(path.read_text())
    assert meta["training"]["data"]["train_episodes"] == 10 + plans.n_episodes
    assert meta["training"]["data"]["plan_replays"]["source"]["eval_files"] == [str(record)]
    scripted = load_split(data, "train", frames=False)
    assert np.allclose(meta["config"]["action_std"], scripted.actions.std(0) + 1e-6)


def test_preset_overrides_change_the_model_and_are_checked_on_resume(wall_data: Path, tmp_path: Path, monkeypatch) -> None:
    wide = presets_module.get_preset("wall", ("predictor.depth=2", "predictor_lr=2e-3", "proprio_loss_weight=1"))
    base = presets_module.PRESETS["wall"]
    assert (wide.predictor.depth, wide.predictor_lr, wide.proprio_loss_weight) == (2, 2e-3, 1.0)
    assert wide.predictor.heads == base.predictor.heads and base.predictor.depth == 4  # the registry is untouched
    for bad, message in (("predictor.width=3", "no field 'width' in PredictorConfig; valid: depth, heads"),
                         ("predictor=3", "name one"), ("predictor_lr", "not FIELD=VALUE"),
                         ("predictor.depth=deep", "depth must be an int, got 'deep'"), ("num_hist.x=1", "has no fields")):
        with pytest.raises(ValueError, match=message):
            presets_module.get_preset("wall", (bad,))

    cfg = replace(_cfg(wall_data, tmp_path), preset_overrides=("predictor.depth=2",))
    meta = json.loads(train(cfg, echo=lambda s: None).read_text())
    assert meta["config"]["predictor"]["depth"] == 2 and meta["training"]["preset_overrides"] == ["predictor.depth=2"]
    with pytest.raises(ValueError, match=r"another training preset \(predictor.depth: run 2 -> now 4\)"):
        Trainer(_cfg(wall_data, tmp_path))
    Trainer(replace(cfg, preset_overrides=("predictor.depth=02",)))  # the same preset, spelt otherwise, resumes
    # a preset edited between sittings is caught too (the overrides alone would match)
    monkeypatch.setitem(presets_module.PRESETS, "wall", replace(presets_module.PRESETS["wall"], predictor_lr=1e-3))
    with pytest.raises(ValueError, match=r"predictor_lr: run 0.002 -> now 0.001"):
        Trainer(cfg)
    # states saved before the resolved preset was stored are checked by their overrides
    state = torch.load(cfg.run_dir / "state.pt", weights_only=False)
    del state["state"]["preset"]
    torch.save(state, cfg.run_dir / "state.pt")
    with pytest.raises(ValueError, match=r"holds a run with preset overrides \['predictor.depth=2'\], not \[\]"):
        Trainer(_cfg(wall_data, tmp_path))
