"""Gradio dashboard (thin: calls ``quantwm.experiment``, ``quantwm.cache`` and ``quantwm.viz``).

Tabs: Explore (one experiment: controls, progress, summary, videos, charts), Findings (the study's
findings on the shipped models, from ``assets/findings/``), Compare (every cached experiment).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gradio as gr

from quantwm.cache import ResultsCache

if TYPE_CHECKING:
    from quantwm.models import OfficialCheckpoint


@dataclass
class UIContext:
    """What every tab shares: the model source the server was started with, the device, the cache
    and how many experiments may compute at once (cached answers never wait)."""

    official: OfficialCheckpoint | None = None
    device: str = "cpu"
    cache: ResultsCache = field(default_factory=ResultsCache)
    concurrency: int = 1


@dataclass
class ExploreHandles:
    """What other tabs may drive on the Explore tab: its controls (keyed and ordered as
    ``quantwm.ui.state.CONTROL_FIELDS``) and the outputs that show a result."""

    controls: dict[str, gr.components.Component]
    show_outputs: list[gr.components.Component]


def launch_options() -> dict[str, str]:
    """The dashboard's CSS and page script (Gradio 6 takes them in ``launch``)."""
    from quantwm.ui.explore import CSS, JS

    return {"css": CSS, "js": JS}


def build_app(official: OfficialCheckpoint | None = None, device: str = "cpu", concurrency: int = 1,
              cache: ResultsCache | None = None) -> gr.Blocks:
    """The dashboard; ``official`` serves that DINO-WM model instead of the shipped ones, ``cache``
    another results store (default: ``ResultsCache()``, which honours ``$QUANTWM_RESULTS_DIR``)."""
    from quantwm.ui.compare import build_compare
    from quantwm.ui.explore import build_explore
    from quantwm.ui.findings import build_findings

    ctx = UIContext(official, device, cache or ResultsCache(), concurrency)
    # Gradio copies every video it serves into its temp dir; copies older than a day are deleted hourly
    # (the results cache keeps the originals).
    with gr.Blocks(title="quantwm", delete_cache=(3600, 86400)) as app:
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Explore", id="explore", elem_id="tab-explore"):
                explore = build_explore(ctx)
            with gr.Tab("Findings", id="findings", elem_id="tab-findings"):
                build_findings(ctx, explore, tabs)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare"):
                build_compare(ctx)
    return app
