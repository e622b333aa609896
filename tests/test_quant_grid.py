"""The integer grid: hand-computed cases for every granularity, grid properties, scale rule."""
from __future__ import annotations

import pytest
import torch

from quantwm.quant import ActQuant, WeightQuant
from quantwm.quant.modules import ActivationQuantizer
from quantwm.quant.quantizer import fake_quantize, integer_range, minmax_qparams, quantize_weight, search_clip, to_groups
from tests.quant_fixtures import one_thread  # noqa: F401  (autouse: one torch thread per test)


def test_symmetric_per_tensor_hand_case():
    # max|w| = 1.4 -> scale 1.4 / 7 = 0.2; levels -8..7
    w = torch.tensor([[1.4, -0.5, 0.31], [0.0, -1.4, 0.09]])
    q = quantize_weight(w, WeightQuant(4, granularity="per_tensor"))
    expected = torch.tensor([[1.4, -0.6, 0.4], [0.0, -1.4, 0.0]])  # -0.5/0.2 = -2.5 rounds to -2 (half to even)
    expected[0, 1] = -0.4
    assert torch.allclose(q.dequant, expected, atol=1e-6)
    assert q.scale.shape == (1, 1) and torch.isclose(q.scale, torch.tensor(0.2)).all()


@pytest.mark.parametrize("symmetric", [True, False])
def test_in_place_fake_quantize_equals_the_gradient_path_and_leaves_its_input_alone(symmetric):
    # without gradients fake_quantize works in place on x / scale; with them it builds the graph
    x = torch.randn(64, 48, generator=torch.Generator().manual_seed(0)) * 3
    scale, zero = minmax_qparams(x.amin(-1, keepdim=True), x.amax(-1, keepdim=True), 4, symmetric)
    kept = x.clone()
    fast = fake_quantize(x, scale, zero, 4, symmetric)
    graph = fake_quantize(x.clone().requires_grad_(), scale, zero, 4, symmetric)
    assert torch.equal(x, kept)
    assert torch.equal(fast, graph.detach())
    assert graph.grad_fn is not None


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("symmetric", [True, False])
def test_own_range_skips_only_clamps_that_cannot_bind(symmetric, bits):
    # dynamic ranges (the grid made from x's own min / max) skip the clamps that cannot bind; the
    # values must equal the fully clamped grid's, including tokens whose maximum float rounding
    # puts one level above qmax (about 1 in 200,000 8-bit tokens: this seed holds one)
    x = torch.randn(200_000, 8, generator=torch.Generator().manual_seed(0)) * torch.rand(200_000, 1, generator=torch.Generator().manual_seed(1)) * 5
    scale, zero = minmax_qparams(x.amin(-1, keepdim=True), x.amax(-1, keepdim=True), bits, symmetric)
    full = fake_quantize(x, scale, zero, bits, symmetric)
    assert torch.equal(fake_quantize(x, scale, zero, bits, symmetric, own_range=True), full)
    if bits == 8 and not symmetric:
        assert ((x / scale).round() + zero > 255).any()  # the one clamp kept does bind here


def test_asymmetric_per_channel_hand_case():
    # row 0 in [0, 3]: 2 bits -> scale 1, zero 0; row 1 in [-1, 2] -> scale 1, zero 1
    w = torch.tensor([[0.0, 1.2, 3.0, 2.6], [-1.0, 0.4, 2.0, 0.6]])
    q = quantize_weight(w, WeightQuant(2, symmetric=False, granularity="per_channel"))
    assert torch.allclose(q.dequant, torch.tensor([[0.0, 1.0, 3.0, 3.0], [-1.0, 0.0, 2.0, 1.0]]))
    assert torch.equal(q.zero.flatten(), torch.tensor([0.0, 1.0]))


def test_group_partial_last_group_stays_in_its_row():
    # C = 5, g = 2: groups [0,1], [2,3], [4] per row; a huge value in row 1 must not touch row 0
    w = torch.tensor([[1.0, 0.5, 0.25, 0.125, 0.07], [100.0, 0.5, 0.25, 0.125, 0.07]])
    q = quantize_weight(w, WeightQuant(8, granularity="group", group_size=2))
    assert q.scale.shape == (2, 3)
    assert torch.allclose(q.scale[:, 2], torch.tensor([0.07, 0.07]) / 127)
    assert torch.allclose(q.dequant[0], w[0], atol=1e-2)
    assert torch.isclose(q.dequant[0, 4], torch.tensor(0.07))  # the lone last column is its group's max


def test_group_view_pads_by_repeating_row_end():
    w = torch.arange(10.0).reshape(2, 5)
    v = to_groups(w, WeightQuant(4, granularity="group", group_size=3))
    assert v.shape == (2, 2, 3)
    assert torch.equal(v[1, 1], torch.tensor([8.0, 9.0, 9.0]))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("spec_kw", [{"granularity": "per_tensor"}, {"granularity": "per_channel"}, {"granularity": "group", "group_size": 7}])
def test_grid_properties(bits, symmetric, spec_kw):
    w = torch.randn(6, 30, generator=torch.Generator().manual_seed(bits)) * torch.linspace(0.1, 3, 30)
    spec = WeightQuant(bits, symmetric=symmetric, **spec_kw)
    q = quantize_weight(w, spec)
    groups = to_groups(q.dequant, spec)
    if spec.granularity == "per_tensor":
        groups = groups.reshape(1, 1, -1)
    for g in groups.reshape(-1, groups.shape[-1]):
        assert g.unique().numel() <= 2**bits
    # every value is (integer - zero) * scale with the integer in range
    levels = to_groups(q.dequant, spec) / q.scale.unsqueeze(-1) + q.zero.unsqueeze(-1)
    qmin, qmax = integer_range(bits, symmetric)
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    assert levels.min() >= qmin - 1e-3 and levels.max() <= qmax + 1e-3
    # nothing is off by more than half a step: min-max never clips
    err = (to_groups(w, spec) - to_groups(q.dequant, spec)).abs()
    assert (err <= q.scale.unsqueeze(-1) / 2 + 1e-5).all()
    if symmetric:
        assert quantize_weight(torch.zeros(2, 30), spec).dequant.eq(0).all()
        zero_in = w.clone()
        zero_in[0, 0] = 0.0
        assert quantize_weight(zero_in, spec).dequant[0, 0] == 0


@pytest.mark.parametrize("bits", [3, 4, 8])
def test_rtn_keeps_the_largest_weight_exactly(bits):
    # the study's symmetric scale max|w| / 7.5 clipped the max to level 7 at 4 bits; ours maps it to qmax exactly
    w = torch.tensor([[0.3, -0.2, 1.5, 0.7]])
    q = quantize_weight(w, WeightQuant(bits, granularity="per_channel"))
    assert torch.isclose(q.dequant[0, 2], torch.tensor(1.5))
    assert torch.isclose(q.scale[0, 0], torch.tensor(1.5 / (2 ** (bits - 1) - 1)))


def test_asymmetric_zero_point_is_exact_zero():
    scale, zero = minmax_qparams(torch.tensor([-0.3]), torch.tensor([2.0]), 4, False)
    assert zero.item() == round(0.3 / scale.item())


def test_search_clip_lowers_weight_error_and_respects_output_weighting():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 64, generator=g)
    w[:, 0] *= 6  # an outlier column
    spec = WeightQuant(3, granularity="per_channel")
    clip = search_clip(w, spec, torch.linspace(0.5, 1, 26))
    clipped = quantize_weight(w, spec, "omse", clip, clip).dequant
    assert (w - clipped).pow(2).sum() < (w - quantize_weight(w, spec).dequant).pow(2).sum()
    # output-error weighting (AWQ): the chosen ratios minimise dW H dW^T, beating both no clipping and OMSE's choice
    x = torch.randn(256, 64, generator=g) @ torch.randn(64, 64, generator=g)
    h = x.T @ x
    weighted = search_clip(w, spec, torch.linspace(0.5, 1, 26), h)

    def output_error(c):
        d = w - quantize_weight(w, spec, "x", c, c).dequant
        return torch.einsum("ri,ij,rj->", d, h, d)

    assert output_error(weighted) <= output_error(clip) + 1e-3
    assert output_error(weighted) <= output_error(1.0) + 1e-3


def test_activation_quantizer_granularities_hand_cases():
    x = torch.tensor([[[0.0, 1.0, 3.0], [-2.0, 0.0, 1.0]]])  # (1, 2 tokens, 3 channels)
    # per-token dynamic, 2 bits asymmetric: token 0 in [0, 3] -> exact ints; token 1 in [-2, 1] -> exact
    per_token = ActivationQuantizer(ActQuant(2, granularity="per_token"))
    assert torch.allclose(per_token(x), x)
    # per-tensor static from ranges [-2, 3]: scale 5/3, zero round(1.2) = 1
    lo, hi = torch.tensor([-2.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 3.0])
    per_tensor = ActivationQuantizer(ActQuant(2, granularity="per_tensor"), (lo, hi))
    s = 5 / 3
    expected = (torch.clamp(torch.round(x / s) + 1, 0, 3) - 1) * s
    assert torch.allclose(per_tensor(x), expected)
    # per-channel static, 8 bits symmetric: channel 2 range 3 -> scale 3 / 127
    per_channel = ActivationQuantizer(ActQuant(8, symmetric=True, granularity="per_channel"), (lo, hi))
    assert torch.allclose(per_channel.scale, torch.tensor([2.0, 1.0, 3.0]) / 127)
    assert torch.allclose(per_channel(x), x, atol=3 / 254 + 1e-6)
    # static ranges are fixed: an out-of-range input is clamped to the calibrated grid
    assert per_channel(torch.tensor([[10.0, 10.0, 10.0]])).max() <= 3.0 + 1e-6
