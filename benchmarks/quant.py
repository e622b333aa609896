"""Quantization engine benchmark, everything measured in one run.

Prints: (1) mean layer-output SQNR of RTN / OMSE / GPTQ on the predictor's Linears at 3 and 4
bits, per-channel and group 32 (rows not a multiple of 32 end in a partial group); (2) max abs
output error of every FP-equivalent transform with quantization disabled; (3) GPTQ W4 g32 and RTN
quantize times; (4) real int8 predictor forward at batch 300 versus fp32: speed ratio, SQNR,
weight bytes; (5) where int8 could pay at all: every distinct predictor Linear shape alone, at the
batch-300 row count, torch.ao dynamic int8 versus fp32 under each quantized engine this torch has.

Default: the shipped model of ``--env`` (pusht), calibrated on its own FP MPC planning on
calibration-split episodes (``experiment.calibrate``). ``--synthetic`` uses instead a predictor of
the shipped PushT width with trained-like weights (heavy tails, outlier LayerNorm channels) and
random tokens, the worst case for RTN.
Usage: python benchmarks/quant.py [--env pusht|wall | --synthetic] [--threads N]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.planning import median_time  # noqa: E402
from quantwm.experiment import calibrate, load_model  # noqa: E402
from quantwm.models import PredictorConfig, ViTConfig, WorldModel, WorldModelConfig  # noqa: E402
from quantwm.quant import (  # noqa: E402
    ActQuant, Calibration, GroupQuant, QuantConfig, WeightQuant, quantize, sqnr_db,
)
from quantwm.quant.real import RealQuantConfig, realize  # noqa: E402
from quantwm.runtime import configure_runtime  # noqa: E402
from tests.quant_fixtures import make_trained_like  # noqa: E402


def shipped_size_model() -> WorldModel:
    torch.manual_seed(0)
    cfg = WorldModelConfig(
        env="pusht", image_size=128, num_hist=3, frameskip=5, action_dim=2, proprio_dim=4,
        encoder=ViTConfig(img_size=128, patch_size=32, embed_dim=128, depth=4, num_heads=4),
        predictor=PredictorConfig(depth=6, heads=4, dim_head=32, mlp_dim=512, dropout=0.0, emb_dropout=0.0),
        decoder=None, action_mean=(0.0,) * 2, action_std=(1.0,) * 2, proprio_mean=(0.0,) * 4, proprio_std=(1.0,) * 4,
    )
    return make_trained_like(WorldModel(cfg).eval(), outlier_channels=4)


def predictor_tokens(model: WorldModel, batch: int, seed: int) -> torch.Tensor:
    p = model.cfg.encoder.num_patches * model.cfg.num_hist
    return torch.randn(batch, p, model.cfg.token_dim, generator=torch.Generator().manual_seed(seed))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="pusht", choices=["pusht", "wall"])
    parser.add_argument("--synthetic", action="store_true", help="trained-like synthetic predictor, random tokens")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    configure_runtime(args.threads)
    if args.synthetic:
        model = shipped_size_model()
        cal = Calibration.from_tensors(predictor=predictor_tokens(model, 32, seed=1))
        example = Calibration.from_tensors(predictor=predictor_tokens(model, 300, seed=2))
        source = "synthetic trained-like predictor, random tokens"
    else:
        model = load_model(args.env)
        start = time.perf_counter()
        planned = calibrate(model, args.env, ("predictor",), size=800, seed=0, episodes=4, budget=3)
        longest = max(b[0].shape[1] for b in planned.inputs["predictor"])  # full history windows
        tokens = torch.cat([b[0] for b in planned.inputs["predictor"] if b[0].shape[1] == longest])
        cal, example = Calibration.from_tensors(predictor=tokens[:32]), Calibration.from_tensors(predictor=tokens[32:332])
        source = f"shipped {args.env} model, inputs captured from FP MPC planning ({time.perf_counter() - start:.0f} s)"
    print(f"predictor: token dim {model.cfg.token_dim}, {sum(p.numel() for p in model.predictor.parameters())} params, "
          f"{torch.get_num_threads()} threads; {source}")

    print("\n(1) mean layer-output SQNR (dB) on calibration inputs, predictor Linears")
    print(f"{'setting':<18}{'rtn':>8}{'omse':>8}{'gptq':>8}")
    for bits in (3, 4):
        for spec in (WeightQuant(bits), WeightQuant(bits, granularity="group", group_size=32)):
            sqnr = {m: quantize(model, QuantConfig(predictor=GroupQuant(spec), method=m), cal).quantization.report["sqnr_db"].mean()
                    for m in ("rtn", "omse", "gptq")}
            print(f"W{bits} {spec.describe():<15}{sqnr['rtn']:8.2f}{sqnr['omse']:8.2f}{sqnr['gptq']:8.2f}")

    print("\n(2) transforms with quantization disabled: max |output - FP| of the predictor")
    x = cal.inputs["predictor"][0][0]
    with torch.no_grad():
        fp_out = model.predictor(x)
        for method, act in (("smoothquant", 8), ("awq", 16), ("rotation", 4), ("omniquant", 8)):
            settings = GroupQuant(WeightQuant(4, granularity="group", group_size=32), ActQuant(act))
            transformed = quantize(model, QuantConfig(predictor=settings, method=method), cal, apply_quantization=False)
            print(f"{method:<12} {(transformed.predictor(x) - fp_out).abs().max().item():.2e}")

    print("\n(3) quantize time, whole predictor (calibration 32 sequences; after the warm-up runs above)")
    for method in ("rtn", "gptq"):
        start = time.perf_counter()
        quantize(model, QuantConfig(predictor=GroupQuant(WeightQuant(4, granularity="group", group_size=32)), method=method), cal)
        print(f"{method:<5} W4 g32: {time.perf_counter() - start:.2f} s")

    print("\n(3b) W4A4 predictor output SQNR (dB): rtn vs rotation")
    with torch.no_grad():
        for method in ("rtn", "rotation"):
            q = quantize(model, QuantConfig(predictor=GroupQuant(WeightQuant(4), ActQuant(4)), method=method), cal)
            print(f"{method:<9} {sqnr_db(fp_out, q.predictor(x)):.2f}")

    print("\n(4) real int8, predictor forward at batch 300")
    for mode in ("w8a8", "w8a16"):
        result = realize(model, RealQuantConfig(mode=mode, repeats=5), example)
        print(result.timings[["path", "seconds", "speedup", "sqnr_db", "error"]].to_string(index=False))
        print(f"  kernels used: {dict(result.report['kernel'].value_counts())}")
        print(f"  int8 / fp32 weight bytes: {result.int8_weight_bytes / result.fp_weight_bytes:.3f}")

    print(f"\n(5) torch.ao dynamic int8 vs fp32 per Linear shape, {example.inputs['predictor'][0][0].shape[:2].numel()} rows")
    rows = example.inputs["predictor"][0][0].flatten(0, 1)
    shapes = sorted({(m.in_features, m.out_features) for m in model.predictor.modules() if isinstance(m, nn.Linear)})
    for engine in [e for e in torch.backends.quantized.supported_engines if e != "none"]:
        torch.backends.quantized.engine = engine
        ratios = []
        for fan_in, fan_out in shapes:
            lin = nn.Linear(fan_in, fan_out)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                q = torch.ao.quantization.quantize_dynamic(nn.Sequential(lin), {nn.Linear}, dtype=torch.qint8)
            x = torch.randn(rows.shape[0], fan_in)
            with torch.inference_mode():
                ratio = median_time(lambda: lin(x), 15, "cpu") / median_time(lambda: q(x), 15, "cpu")  # noqa: B023
            ratios.append(f"{fan_in}->{fan_out}: {ratio:.2f}x")
        print(f"{engine:<8}" + "  ".join(ratios))


if __name__ == "__main__":
    main()
