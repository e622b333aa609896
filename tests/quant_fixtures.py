"""Tiny DINO-WM world models and calibration data shared by the quantization tests, and the
autouse ``one_thread`` fixture every quantization test module imports."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from quantwm.models import DecoderConfig, PredictorConfig, ViTConfig, WorldModel, WorldModelConfig
from quantwm.quant import Calibration

NUM_HIST = 2


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Run each test on one torch thread and restore the count after. Float reduction order
    depends on the thread count, so a module-level ``set_num_threads`` is not enough: a test
    that calls ``configure_runtime`` (the CLI's) would reset it for every test that follows."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_world_model(seed: int = 0, outlier_channels: int = 2) -> WorldModel:
    """A 16-patch world model (encoder width 32, predictor width 52 = 32 + 10 + 10, heads of 16)
    made to look trained: heavy-tailed Linear weights (Student t, 5 dof; PyTorch's uniform init is
    the easiest case for min-max RTN) and LayerNorm gains boosted on a few channels so that
    activations have outlier channels. Seeded in a forked global RNG: the caller's RNG state is
    left as it was."""
    cfg = WorldModelConfig(
        env="test", image_size=32, num_hist=NUM_HIST, frameskip=1, action_dim=2, proprio_dim=2,
        encoder=ViTConfig(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, layerscale_init=0.1),
        predictor=PredictorConfig(depth=2, heads=2, dim_head=16, mlp_dim=64, dropout=0.0, emb_dropout=0.0),
        decoder=DecoderConfig(channel=8, n_res_block=1, n_res_channel=4, upsample_stride=2, dec_stride=2),
        action_mean=(0.0, 0.0), action_std=(1.0, 1.0), proprio_mean=(0.0, 0.0), proprio_std=(1.0, 1.0),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make_trained_like(WorldModel(cfg).eval(), outlier_channels)


@torch.no_grad()
def make_trained_like(model: torch.nn.Module, outlier_channels: int = 2) -> torch.nn.Module:
    """Heavy-tailed Linear weights (Student t, 5 dof, std 1 / sqrt(in)) and LayerNorm gains x8 on
    the first ``outlier_channels`` channels (random biases), in place; returns the model."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            t = torch.distributions.StudentT(5.0).sample(module.weight.shape)
            module.weight.copy_(t / t.std() / module.in_features**0.5)
        if isinstance(module, torch.nn.LayerNorm):
            module.weight[:outlier_channels] *= 8.0
            module.bias.normal_(0, 0.1)
    return model


def calibration_for(model: WorldModel, samples: int = 16, seed: int = 1) -> Calibration:
    """Random inputs for every group (pixels, tokens of NUM_HIST frames, actions, proprio, latents)."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    p, d, e = cfg.encoder.num_patches, cfg.token_dim, cfg.visual_dim
    return Calibration.from_tensors(
        encoder=torch.rand(samples, 3, 32, 32, generator=g) * 2 - 1,
        predictor=torch.randn(samples, NUM_HIST * p, d, generator=g),
        action_encoder=torch.randn(samples, NUM_HIST, cfg.planner_action_dim, generator=g),
        proprio_encoder=torch.randn(samples, NUM_HIST, cfg.proprio_dim, generator=g),
        decoder=torch.randn(samples, 1, p, e, generator=g),
    )
