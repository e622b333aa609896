"""Findings: verdict rules on hand-made results, and the shipped findings match the shipped models."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from quantwm.analysis import findings as v
from quantwm.experiment import ExperimentConfig, ModelSource
from quantwm.experiment.findings import EXPERIMENTS, FINDINGS, findings_options, load_findings
from quantwm.experiment.run import experiment_key, loaded_model


def result(success: float, drift: list[float], *, fp: float = 0.9, true_err: float = 0.1, encoder: float = 0.0,
           fp_auroc: float | None = 0.9, q_auroc: float | None = 0.9) -> dict:
    steps = len(drift)
    return {"fp": {"success_rate": fp}, "quant": {"success_rate": success},
            "latent_error": {"quant_vs_fp": {"mean": drift}, "quant_vs_true": {"mean": [true_err] * steps},
                             "encoder": {"mean": [encoder] * steps}},
            "alignment": {"fp": {"auroc_objective_success": fp_auroc}, "quant": {"auroc_objective_success": q_auroc}}}


def test_group_wise_rescue_votes_per_bit_width() -> None:
    base = {"pred W4 per_channel": result(0.6, [0, 0.2]), "pred W4 group": result(0.9, [0, 0.1]),
            "pred W3 per_channel": result(0.2, [0, 0.5]), "pred W3 group": result(0.5, [0, 0.3])}
    assert v.group_wise_rescue(base)["verdict"] == "reproduced"
    worse = base | {"pred W3 group": result(0.0, [0, 0.6])}
    assert v.group_wise_rescue(worse)["verdict"] == "mixed"
    tie_by_drift = base | {"pred W3 group": result(0.25, [0, 0.9])}  # success within 0.1: drift decides
    assert v.group_wise_rescue(tie_by_drift)["verdict"] == "mixed"


def test_activation_granularity_is_reproduced_only_when_inconsistent() -> None:
    consistent = {"pred W8A6 per_tensor": result(0.5, [0, 0.3]), "pred W8A6 per_token": result(0.9, [0, 0.1]),
                  "pred W8A4 per_tensor": result(0.1, [0, 0.8]), "pred W8A4 per_token": result(0.6, [0, 0.4])}
    assert v.activation_granularity(consistent)["verdict"] == "not reproduced"
    flipped = consistent | {"pred W8A4 per_token": result(0.0, [0, 0.9])}
    assert v.activation_granularity(flipped)["verdict"] == "reproduced"


def test_a_success_gap_of_exactly_min_gap_counts_for_every_pair_of_rates() -> None:
    """One episode in ten is a gap of 0.1 whichever rates differ by it (0.6 - 0.5 is 0.0999... in floats)."""
    for tensor in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        token = round(tensor + v.MIN_GAP, 1)
        rows = {"pred W8A6 per_tensor": result(tensor, [0, 0.3]), "pred W8A6 per_token": result(token, [0, 0.1]),
                "pred W8A4 per_tensor": result(tensor, [0, 0.8]), "pred W8A4 per_token": result(token, [0, 0.4])}
        assert v.activation_granularity(rows)["verdict"] == "not reproduced", (tensor, token)
        lower = rows | {"pred W8A4 per_token": result(round(tensor - v.MIN_GAP, 1), [0, 0.4])}
        assert v.activation_granularity(lower)["verdict"] == "reproduced", (tensor, token)


def test_encoder_sensitivity_and_misalignment_rules() -> None:
    robust_encoder = {"enc W4 per_channel": result(0.9, [0, 0.1]), "pred W4 per_channel": result(0.6, [0, 0.2]),
                      "enc W3 per_channel": result(0.9, [0, 0.1]), "pred W3 per_channel": result(0.2, [0, 0.5])}
    assert v.encoder_sensitivity(robust_encoder)["verdict"] == "not reproduced"
    fragile = {k: result(0.9 if k.startswith("pred") else 0.1, [0, 0.1]) for k in robust_encoder}
    assert v.encoder_sensitivity(fragile)["verdict"] == "reproduced"
    def side(falls: bool, rises: bool, imagined: float, true: float) -> dict:
        return {"objective_falls": falls, "success_rises": rises, "objective_to": imagined, "true_objective_to": true}

    opt = {"verdict": {"fp": side(True, True, 0.3, 0.35), "quant": side(True, False, 0.2, 0.6)}}
    broken = {"pred W3 per_channel": result(0.2, [0, 0.5], fp_auroc=0.95, q_auroc=0.5)}
    assert v.objective_misalignment(broken, opt)["verdict"] == "reproduced"
    aligned = {"pred W3 per_channel": result(0.2, [0, 0.5], fp_auroc=0.9, q_auroc=0.88)}
    helped = {"verdict": {"fp": side(True, True, 0.3, 0.35), "quant": side(True, True, 0.2, 0.3)}}
    assert v.objective_misalignment(aligned, helped)["verdict"] == "not reproduced"
    alike = {"verdict": {"fp": side(True, False, 0.3, 0.5), "quant": side(True, False, 0.3, 0.45)}}
    assert v.objective_misalignment(broken, alike)["verdict"] == "mixed"  # more steps fail in FP too


def test_drift_vs_collapse_compares_error_growth() -> None:
    drifting = {"pred W3 per_channel": result(0.2, [0, 0.1, 0.5])}
    flat = {"pred W3 per_channel": result(0.2, [0, 0.3, 0.33])}
    assert v.drift_vs_collapse({"pusht": drifting, "wall": flat})["verdict"] == "reproduced"
    assert v.drift_vs_collapse({"pusht": flat, "wall": drifting})["verdict"] == "not reproduced"


def test_every_finding_reads_defined_experiments() -> None:
    for f in FINDINGS:
        assert set(f.roles) <= set(EXPERIMENTS), f.id
    for role in EXPERIMENTS:
        findings_options("wall", role).config()  # valid on both envs' option space


def test_shipped_findings_were_computed_with_the_shipped_checkpoints() -> None:
    shipped = {k: r for k, r in load_findings().items() if k in ("wall", "pusht")}
    assert shipped, "assets/findings/ holds no findings: run `quantwm findings`"
    for env, record in shipped.items():
        _, sha = loaded_model(ModelSource(env))
        stale = f"assets/findings/{env}.json is stale: rerun `quantwm findings --env {env}`"
        assert record["weights_sha256"] == sha, stale
        assert set(record["results"]) == set(EXPERIMENTS)
        for result in record["results"].values():  # the key holds today's planner presets and result layout
            assert result["key"] == experiment_key(ExperimentConfig.from_dict(result["config"]), sha), stale
        assert {f.id for f in FINDINGS if not f.cross_env} == set(record["verdicts"])


def test_findings_doc_tables_are_the_stored_findings() -> None:
    """docs/findings.md's result tables are exactly what benchmarks/findings_tables.py renders from assets/findings/."""
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("findings_tables", root / "benchmarks" / "findings_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    doc = (root / "docs" / "findings.md").read_text()
    for env, record in load_findings().items():
        if env in ("wall", "pusht"):
            assert tables.env_section(record) in doc, f"docs/findings.md's {env} tables are stale: paste `python benchmarks/findings_tables.py --env {env}`"
