"""World-model classes: DINOv2 layout, frame-causal predictor, rollout semantics, checkpoints."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from quantwm.models import (
    CheckpointError, DecoderConfig, PredictorConfig, ViTConfig, WorldModel, WorldModelConfig,
    frame_causal_mask, load_checkpoint, save_checkpoint,
)
from quantwm.models.predictor import ViTPredictor
from quantwm.models.vit import DinoVisionTransformer


def tiny_config(num_hist: int = 3) -> WorldModelConfig:
    return WorldModelConfig(
        env="pusht", image_size=32, num_hist=num_hist, frameskip=5, action_dim=2, proprio_dim=4,
        encoder=ViTConfig(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2),
        predictor=PredictorConfig(depth=2, heads=2, dim_head=8, mlp_dim=32, dropout=0.0, emb_dropout=0.0),
        decoder=DecoderConfig(channel=8, n_res_block=1, n_res_channel=4, upsample_stride=2, dec_stride=4),
        action_mean=(0.1, -0.2), action_std=(2.0, 0.5), proprio_mean=(1.0, 2.0, 3.0, 4.0), proprio_std=(1.0, 2.0, 3.0, 4.0),
    )


def official_dinov2_vits14_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of the official dinov2_vits14_pretrain.pth, written out from DINOv2's layout."""
    d, hidden = 384, 1536
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, d), "pos_embed": (1, 1 + 37 * 37, d), "mask_token": (1, d),
        "patch_embed.proj.weight": (d, 3, 14, 14), "patch_embed.proj.bias": (d,),
        "norm.weight": (d,), "norm.bias": (d,),
    }
    for i in range(12):
        b = f"blocks.{i}."
        shapes |= {
            b + "norm1.weight": (d,), b + "norm1.bias": (d,),
            b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
            b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,), b + "ls1.gamma": (d,),
            b + "norm2.weight": (d,), b + "norm2.bias": (d,),
            b + "mlp.fc1.weight": (hidden, d), b + "mlp.fc1.bias": (hidden,),
            b + "mlp.fc2.weight": (d, hidden), b + "mlp.fc2.bias": (d,), b + "ls2.gamma": (d,),
        }
    return shapes


def test_dinov2_vits14_state_dict_loads_strictly() -> None:
    state = {k: torch.randn(s) * 0.02 for k, s in official_dinov2_vits14_shapes().items()}
    vit = DinoVisionTransformer(ViTConfig.dinov2_vits14())
    vit.load_state_dict(state, strict=True)
    out = vit(torch.zeros(1, 3, 196, 196))
    assert out.shape == (1, 196, 384)  # 14 x 14 patch tokens, CLS dropped


def test_pos_embed_resampled_dinov2_style() -> None:
    vit = DinoVisionTransformer(ViTConfig(img_size=56, patch_size=14, embed_dim=8, depth=1, num_heads=2, pos_grid=6))
    pos = vit.interpolate_pos_encoding(4)
    assert pos.shape == (1, 17, 8)
    assert torch.equal(pos[:, 0], vit.pos_embed[:, 0])
    grid = vit.pos_embed[:, 1:].reshape(1, 6, 6, 8).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, scale_factor=(4.1 / 6, 4.1 / 6), mode="bicubic")
    torch.testing.assert_close(pos[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 16, 8))


def test_frame_causal_mask_shape() -> None:
    m = frame_causal_mask(3, 2)
    expected = torch.tensor([[1, 1, 0, 0, 0, 0]] * 2 + [[1, 1, 1, 1, 0, 0]] * 2 + [[1] * 6] * 2, dtype=torch.bool)
    assert torch.equal(m, expected)


def test_future_frames_never_change_earlier_outputs() -> None:
    torch.manual_seed(0)
    pred = ViTPredictor(num_patches=4, num_frames=3, dim=12, cfg=PredictorConfig(depth=2, heads=2, dim_head=6, mlp_dim=16)).eval()
    x = torch.randn(2, 12, 12)
    y = x.clone()
    y[:, 8:] = torch.randn(2, 4, 12) * 5  # change the last frame only
    out_x, out_y = pred(x), pred(y)
    torch.testing.assert_close(out_x[:, :8], out_y[:, :8], rtol=0, atol=1e-6)
    assert not torch.allclose(out_x[:, 8:], out_y[:, 8:])
    z = x.clone()
    z[:, 4:8] += torch.randn(2, 4, 12)  # change the middle frame: the first frame's outputs stay
    torch.testing.assert_close(pred(z)[:, :4], out_x[:, :4], rtol=0, atol=1e-6)
    assert not torch.allclose(pred(z)[:, 8:], out_x[:, 8:])


def test_mask_is_a_registered_buffer() -> None:
    pred = ViTPredictor(num_patches=4, num_frames=3, dim=12, cfg=PredictorConfig(depth=1, heads=2, dim_head=6, mlp_dim=16))
    assert "frame_causal_mask" in dict(pred.named_buffers())


def test_rollout_matches_manual_steps() -> None:
    torch.manual_seed(1)
    cfg = tiny_config(num_hist=3)
    m = WorldModel(cfg).eval()
    frames = torch.randint(0, 256, (2, 1, 32, 32, 3), dtype=torch.uint8)
    lat = m.encode_obs(frames, torch.randn(2, 1, 4))
    actions = torch.randn(2, 5, cfg.planner_action_dim)
    z = m.rollout(lat, actions)
    assert z.shape == (2, 6, cfg.encoder.num_patches, cfg.token_dim)
    # manual: tokens of the context with action 0, then predict / overwrite actions / append
    emb = m.encode_actions(actions)
    seq = m.tokens(lat, emb[:, :1])
    e = cfg.visual_dim + cfg.proprio_emb_dim
    for t in range(1, 6):
        newest = m.predict(seq[:, -3:])[:, -1:]
        if t < 5:
            newest[..., e:] = emb[:, t : t + 1, None, :]
        seq = torch.cat([seq, newest], 1)
    torch.testing.assert_close(z, seq)
    # the last frame depends on the last action
    actions2 = actions.clone()
    actions2[:, -1] += 1
    assert not torch.allclose(m.rollout(lat, actions2)[:, -1], z[:, -1])


def test_action_normalisation_round_trip() -> None:
    m = WorldModel(tiny_config())
    env_actions = torch.randn(3, 4, 5, 2)
    planner = m.normalize_actions(env_actions)
    assert planner.shape == (3, 4, 10)
    torch.testing.assert_close(m.denormalize_actions(planner), env_actions)


def test_decode_shape_and_dtype() -> None:
    m = WorldModel(tiny_config()).eval()
    out = m.decode(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 3, 32, 32, 3) and out.dtype == torch.uint8


def test_checkpoint_round_trip(tmp_path) -> None:
    torch.manual_seed(2)
    m = WorldModel(tiny_config()).eval()
    path = save_checkpoint(m, tmp_path / "model", training={"command": "test"})
    loaded = load_checkpoint(path)
    assert loaded.cfg == m.cfg
    for (k, a), (_, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.randn(1, 2 * 16, m.cfg.token_dim)
    torch.testing.assert_close(loaded.predictor(x), m.predictor(x))


def test_checkpoint_config_weight_mismatch_is_one_line_error(tmp_path) -> None:
    m = WorldModel(tiny_config())
    path = save_checkpoint(m, tmp_path / "model")
    meta = json.loads(path.read_text())
    meta["config"]["predictor"]["depth"] = 3
    path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"do not match config.*missing: predictor\.transformer\.layers\.2"):
        load_checkpoint(path)


def test_missing_checkpoint_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.json")


def test_config_rejects_wrong_stat_sizes() -> None:
    with pytest.raises(ValueError, match="action_std has 1 values, expected 2"):
        WorldModelConfig.from_dict({**tiny_config().to_dict(), "action_std": [1.0]})


def test_newest_only_equals_full_forward_last_frame():
    """The fast path (final layer restricted to the newest frame's queries) is exact."""
    torch.manual_seed(0)
    pred = ViTPredictor(4, 3, 24, PredictorConfig(depth=3, heads=2, dim_head=8, mlp_dim=32, dropout=0.0, emb_dropout=0.0)).eval()
    for frames in (1, 2, 3):
        x = torch.randn(5, frames * 4, 24)
        full = pred(x)[:, -4:]
        fast = pred(x, newest_only=True)
        assert fast.shape == (5, 4, 24)
        assert (fast - full).abs().max().item() < 1e-5


def test_cached_prefix_extension_equals_full_forward():
    """Frames appended one at a time with a cache give the full forward's outputs (exact)."""
    from quantwm.models.predictor import PredictorCache

    torch.manual_seed(1)
    pred = ViTPredictor(4, 3, 24, PredictorConfig(depth=3, heads=2, dim_head=8, mlp_dim=32, dropout=0.0, emb_dropout=0.0)).eval()
    x = torch.randn(5, 12, 24)
    full = pred(x)
    cache = PredictorCache()
    assert (pred(x[:, :4], cache=cache) - full[:, :4]).abs().max().item() < 1e-5
    assert (pred(x[:, :8], cache=cache) - full[:, 4:8]).abs().max().item() < 1e-5
    assert (pred(x, newest_only=True, cache=cache) - full[:, 8:]).abs().max().item() < 1e-5
    assert cache.tokens == 12
    with pytest.raises(ValueError, match="already holds 12 tokens"):
        pred(x, cache=cache)


def test_a_float64_copy_encodes_frames_in_float64() -> None:
    """Frames follow the model's dtype (benchmarks/planning.py measures float32 rounding against a float64 copy)."""
    torch.manual_seed(0)
    model = WorldModel(tiny_config()).eval()
    frames = torch.randint(0, 256, (2, 1, 32, 32, 3), dtype=torch.uint8)
    proprio = torch.randn(2, 1, model.cfg.proprio_dim)
    with torch.inference_mode():
        lat32 = model.encode_obs(frames, proprio)
        lat64 = copy.deepcopy(model).double().encode_obs(frames, proprio.double())
    assert lat64.visual.dtype == torch.float64
    torch.testing.assert_close(lat64.visual.float(), lat32.visual, atol=1e-5, rtol=1e-5)


def test_inference_batches_run_in_cache_blocks_with_the_same_outputs(monkeypatch):
    """Over the block budget an inference batch runs in equal blocks of samples: the outputs equal
    one-block outputs (with and without a key / value cache, and through a whole rollout), and
    hooks on the predictor (calibration capture) still see one call."""
    import quantwm.models.predictor as predictor_module
    from quantwm.models.predictor import PredictorCache

    torch.manual_seed(2)
    pred = ViTPredictor(4, 3, 24, PredictorConfig(depth=3, heads=2, dim_head=8, mlp_dim=32, dropout=0.0, emb_dropout=0.0)).eval()
    x = torch.randn(10, 12, 24)
    with torch.no_grad():
        whole = pred(x)
        blocks, calls = [], []
        run = pred.run
        monkeypatch.setattr(pred, "run", lambda b, *a: blocks.append(b.shape[0]) or run(b, *a))
        pred.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
        monkeypatch.setitem(predictor_module.BLOCK_VALUES, "cpu", 3 * 12 * 24)  # 3 samples of a full window
        assert (pred(x, newest_only=True) - whole[:, 8:]).abs().max().item() < 1e-6
        assert blocks == [3, 3, 3, 1] and calls == [10]
        cache = PredictorCache()  # blocks sized by the full window: every call splits the batch alike
        for t in (4, 8, 12):
            assert (pred(x[:, :t], cache=cache) - whole[:, t - 4 : t]).abs().max().item() < 1e-6
        assert blocks[4:] == [3, 3, 3, 1] * 3 and len(cache.blocks) == 4 and not cache.layers and cache.tokens == 12
        with pytest.raises(ValueError, match="already holds 12 tokens"):
            pred(x, cache=cache)
        with pytest.raises(ValueError, match="filled in 4 block"):
            pred(x[:4, :8], cache=cache)  # another batch
    assert ViTPredictor.block_rows(pred, torch.empty(10, 12, 24, device="meta")) == 10  # devices without a budget: one block
    blocks.clear()
    pred(x, newest_only=True)  # with gradients (training): one block
    assert blocks == [10]

    cfg = tiny_config(num_hist=3)
    m = WorldModel(cfg).eval()
    lat = m.encode_obs(torch.randint(0, 256, (5, 1, 32, 32, 3), dtype=torch.uint8), torch.randn(5, 1, 4))
    actions = torch.randn(5, 5, cfg.planner_action_dim)
    with torch.no_grad():
        one = m.rollout(lat, actions)
        monkeypatch.setitem(predictor_module.BLOCK_VALUES, "cpu", 2 * 3 * cfg.encoder.num_patches * cfg.token_dim)
        assert (m.rollout(lat, actions) - one).abs().max().item() < 1e-6
