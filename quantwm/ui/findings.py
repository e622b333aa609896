"""Findings tab (teaching): one card per finding of the study with its claim, a short explanation,
the verdict on the shipped models per environment and its charts.

Everything comes from the JSON records in ``assets/findings/`` (written by ``quantwm findings``):
nothing is computed and no model is loaded, so the tab is instant on a fresh install. "Open in
Explore" puts a finding's main experiment into the Explore tab's controls.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import plotly.graph_objects as go

from quantwm.envs import ENV_NAMES
from quantwm.experiment.findings import FINDINGS, FINDINGS_DIR, Finding, findings_options, load_findings
from quantwm.ui.compare import distinct_names, latent_curves, latent_overlay_figure
from quantwm.ui.state import CONTROL_FIELDS, ENV_LABELS, to_values
from quantwm.viz.figures import latent_error_figure, objective_success_figure, opt_steps_figure, success_bits_figure

if TYPE_CHECKING:
    from quantwm.ui import ExploreHandles, UIContext

SHA_CHARS = 12
MISSING = ("**No findings computed yet.** The cards of this tab read `assets/findings/*.json`. Compute them "
           "with `quantwm findings` (every experiment of the study on both environments, then the verdicts), "
           "then restart the app.")

# the experiment "Open in Explore" loads, per finding (a role of quantwm.experiment.findings.EXPERIMENTS)
MAIN_ROLE = {"group_wise": "pred W3 group", "act_granularity": "pred W8A4 per_token",
             "encoder_sensitivity": "enc W3 per_channel", "misalignment": "pred W3 per_channel",
             "drift_vs_collapse": "pred W3 per_channel"}

# for a teacher: what the experiment does and how to read its chart
EXPLANATIONS = {
    "group_wise": (
        "Only the predictor's weights are rounded to 4 or 3 bits, either with one scale per output channel or with "
        "one scale per group of 32 weights, which follows the weights' local range more closely. The full-precision "
        "(FP) model and the quantized one plan the same episodes from the same starts. In the chart, each blue (FP) "
        "and orange (quantized) pair is one setting: a group-wise orange bar as tall as its blue neighbour means the "
        "rescue works."),
    "act_granularity": (
        "The predictor's weights stay at 8 bits while its activations (the inputs of every linear layer) are rounded "
        "to 6 or 4 bits, with one scale for the whole tensor or one per token. The chart feeds identical action "
        "sequences to the FP and the quantized model and shows how far their imagined latents drift apart, step by "
        "step (mean over episodes, shaded 95 % band): lower is better. The study found that neither choice wins "
        "consistently."),
    "encoder_sensitivity": (
        "The image encoder (what the model sees) and the predictor (how it imagines the future) are quantized one at "
        "a time, at 4 and 3 bits. An encoder error corrupts every latent, the goal's included, so the study expects "
        "it to hurt far more. Compare the orange (quantized) bars of the encoder and the predictor at the same "
        "bit-width; blue is FP on the same episodes."),
    "misalignment": (
        "The planner searches for actions that minimise an objective: the distance between the imagined final "
        "latent and the goal's. First chart: each episode's final objective against how far the real state ended "
        "from the goal (green = success); if quantized successes and failures are mixed along the x axis, the "
        "objective no longer tells good plans from bad (AUROC 1 = it separates them perfectly, 0.5 = chance). "
        "Second chart: open-loop planning with 1 to 50 optimiser steps; quantized success staying flat while its "
        "imagined objective keeps falling means more search only exploits the model's errors."),
    "drift_vs_collapse": (
        "The imagination probe feeds the same action sequences to the FP and the 3-bit model and measures, step by "
        "step, how far their latents are apart and how far each is from the latents of the real frames. Error that "
        "starts small and grows along the rollout is drift: the model is right at first and wanders off. Error that "
        "is already large at step 1 is collapse: the representation itself is broken. Compare the shape of the "
        "orange curves between the two environments."),
}

TO_TOP = "() => { window.scrollTo({top: 0}); }"  # the Explore tab opens at its top, not at the card's height
_WORDS = {"fp": "FP", "auroc": "AUROC", "quant": "quantized", "pusht": "PushT", "wall": "Wall"}


@dataclass
class EnvPanel:
    """One environment's part of a card: markdown (verdict, numbers, provenance), its charts and
    the label of the experiment "Open in Explore" loads."""

    env: str
    text: str
    figures: list[go.Figure]
    main_label: str


@dataclass
class Card:
    """One finding: markdown (title, claim, explanation, a cross-environment verdict) and a panel per env."""

    finding: Finding
    text: str
    panels: list[EnvPanel]


# ---- text -------------------------------------------------------------------------------------
def _label(key: str) -> str:
    return " ".join(_WORDS.get(w, w) for w in key.split("_")).replace("per channel", "per-channel") \
        .replace("per tensor", "per-tensor").replace("per token", "per-token")


def _number(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.0%}" if "success" in key else f"{value:.3g}"
    return str(value)


def describe_numbers(numbers: Mapping[str, Any]) -> str:
    """A verdict's numbers as markdown bullets: one per entry, a nested group on one line (a group
    holding a ``summary`` sentence, like the optimiser-steps verdict, shows that sentence)."""
    lines = []
    for key, value in numbers.items():
        if isinstance(value, Mapping) and "summary" in value:
            text = str(value["summary"])
        elif isinstance(value, Mapping):
            text = ", ".join(f"{_label(k)} {_number(k, v)}" for k, v in value.items() if not isinstance(v, Mapping))
        else:
            text = _number(key, value)
        lines.append(f"- {_label(key)}: {text}")
    return "\n".join(lines)


def verdict_markdown(verdict: Mapping[str, Any] | None, where: str) -> str:
    """The verdict word, the rule it applied (``why``) and its numbers, as markdown."""
    if verdict is None:
        return f"**Verdict on {where}:** not computed yet: run `quantwm findings`."
    return (f"**Verdict on {where}: {verdict['verdict']}** (rule: {verdict['why']})\n\n"
            f"{describe_numbers(verdict.get('numbers', {}))}")


def provenance(record: Mapping[str, Any]) -> str:
    """Which checkpoint and how many episodes the record was computed with."""
    return (f"Model weights sha256 `{record['weights_sha256'][:SHA_CHARS]}` · {record['episodes']} episodes per "
            f"experiment · seed {record['seed']}")


# ---- figures ----------------------------------------------------------------------------------
def short_labels(record: Mapping[str, Any], roles: tuple[str, ...]) -> list[str]:
    """The experiment labels of ``roles`` without the words they all share ('RTN W4 group32
    predictor', 'RTN W3 group32 predictor' -> 'W4', 'W3'): short enough for axis ticks and legends."""
    return distinct_names([record["results"][role]["label"].split() for role in roles])[0]


def _success_rows(record: Mapping[str, Any], roles: tuple[str, ...]) -> list[dict[str, Any]]:
    """success_bits_figure rows of ``roles``."""
    return [{"label": label, "w_bits": findings_options(record["env"], role).w_bits,
             "fp_success": record["results"][role]["fp"]["success_rate"],
             "quant_success": record["results"][role]["quant"]["success_rate"]}
            for role, label in zip(roles, short_labels(record, roles))]


def _overlay(record: Mapping[str, Any], roles: tuple[str, ...]) -> go.Figure:
    """The quantized-vs-FP latent error of ``roles``, one curve each."""
    names, shared = distinct_names([record["results"][role]["label"].split() for role in roles])
    return latent_overlay_figure([(n, record["results"][role]["latent_error"]) for n, role in zip(names, roles)],
                                 shared=shared)


def _alignment_points(result: Mapping[str, Any]) -> dict[str, Any]:
    return {side: result["alignment"][side]["points"] for side in ("fp", "quant")}


FIGURES: dict[str, Callable[[Finding, Mapping[str, Any]], list[go.Figure]]] = {
    "group_wise": lambda f, rec: [success_bits_figure(_success_rows(rec, f.roles))],
    "act_granularity": lambda f, rec: [_overlay(rec, f.roles)],
    "encoder_sensitivity": lambda f, rec: [success_bits_figure(_success_rows(rec, f.roles))],
    "misalignment": lambda f, rec: [objective_success_figure(_alignment_points(rec["results"][f.roles[0]])),
                                    opt_steps_figure(rec["opt_steps"]["rows"])],
    "drift_vs_collapse": lambda f, rec: [latent_error_figure(latent_curves(rec["results"][f.roles[0]]["latent_error"]))],
}


def env_panel(finding: Finding, record: Mapping[str, Any]) -> EnvPanel:
    """The panel of one environment's record; a record lacking this finding's data says so instead."""
    env = record["env"]
    title = ENV_LABELS.get(env, env)
    try:
        figures = FIGURES[finding.id](finding, record)
        main_label = record["results"][MAIN_ROLE[finding.id]]["label"]
    except (KeyError, TypeError, ValueError) as err:
        return EnvPanel(env, f"#### {title}\nThis record (`assets/findings/{env}.json`) lacks the data of this finding "
                             f"({err!r}); recompute it with `quantwm findings --env {env}`.", [], "")
    verdict = "" if finding.cross_env else verdict_markdown(record.get("verdicts", {}).get(finding.id), title) + "\n\n"
    return EnvPanel(env, f"#### {title}\n{verdict}{provenance(record)}", figures, main_label)


def finding_cards(findings_dir: Path = FINDINGS_DIR) -> list[Card]:
    """A card per finding (FINDINGS order) from the records in ``findings_dir``; [] when none is there."""
    found = load_findings(findings_dir)
    records = [found[env] for env in ENV_NAMES if env in found]
    if not records:
        return []
    cross = found.get("summary", {}).get("cross_env", {})
    cards = []
    for n, finding in enumerate(FINDINGS, 1):
        text = f"### {n}. {finding.title}\n> *The study:* {finding.claim}\n\n{EXPLANATIONS[finding.id]}"
        if finding.cross_env:
            text += "\n\n" + verdict_markdown(cross.get(finding.id), "both environments")
        cards.append(Card(finding, text, [env_panel(finding, record) for record in records]))
    return cards


# ---- the tab ----------------------------------------------------------------------------------
def open_in_explore(env: str, role: str) -> list[Any]:
    """The Explore controls' values (CONTROL_FIELDS order) for a finding's experiment, then the tab switch."""
    return [*to_values(findings_options(env, role)), gr.Tabs(selected="explore")]


def build_findings(ctx: UIContext, explore: ExploreHandles, tabs: gr.Tabs, findings_dir: Path = FINDINGS_DIR) -> None:
    """The Findings tab, built once from ``findings_dir`` when the app is built."""
    gr.Markdown("## Findings: what quantization does to planning\nEach card tests one finding of the study on our "
                "shipped Wall and PushT models: full precision against round-to-nearest (RTN) quantization on the "
                "same episodes, with the quick MPC planner. A verdict is *reproduced*, *not reproduced* or *mixed* "
                "(the rule's votes disagree); a success difference below 10 points counts as none. *Drift* is how "
                "far the quantized model's imagined latent lies from the FP model's after the last probe step "
                "(RMS, latent units).")
    try:
        cards = finding_cards(findings_dir)
    except (OSError, ValueError) as err:  # unreadable or malformed JSON: say so, keep the app up
        gr.Markdown(f"**The findings in `{findings_dir}` could not be read** ({err}). Recompute them with "
                    "`quantwm findings`.")
        return
    if not cards:
        gr.Markdown(MISSING, elem_id="findings-missing")
        return
    controls = [explore.controls[name] for name in CONTROL_FIELDS]
    for card in cards:
        with gr.Column(variant="panel", elem_classes=["finding-card"]):
            gr.Markdown(card.text)
            with gr.Row(equal_height=False):
                for panel in card.panels:
                    with gr.Column(min_width=460):
                        gr.Markdown(panel.text)
                        for figure in panel.figures:
                            gr.Plot(figure, show_label=False)
                        if panel.figures:
                            button = gr.Button(f"Open in Explore: {ENV_LABELS.get(panel.env, panel.env)}, "
                                               f"{panel.main_label}", size="sm")
                            button.click(partial(open_in_explore, panel.env, MAIN_ROLE[card.finding.id]),
                                         outputs=[*controls, tabs], api_visibility="private", js=TO_TOP)
