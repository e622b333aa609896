"""Explore tab: pick one experiment (what to quantize, how, which planner), run it, and see why it
fails - the summary of both sides, the two videos of an episode, latent-error curves, the
objective-vs-success scatter, per-layer SQNR and, on request, success against optimiser steps.

Thin: the controls are ``RunOptions`` (``quantwm.ui.state``), results come from
``quantwm.experiment`` (cache first), figures from ``quantwm.viz``. Every action is a named API
endpoint whose parameters are the control names (``CONTROL_FIELDS``), so ``gradio_client`` calls
read like the CLI: ``Client(url).predict(w_bits=3, episodes=4, api_name="/run")``.

Runs enter Gradio's queue without a limit and look the cache up first, so a cached configuration
answers at once; only computing waits for one of ``UIContext.concurrency`` slots. Cancelling an
event (the Cancel button, or a client's ``job.cancel()``) stops its computation at the next
progress report.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from quantwm import analysis
from quantwm.envs import ENV_NAMES
from quantwm.experiment.config import ExperimentConfig, PlannerChoice
from quantwm.experiment.options import RunOptions
from quantwm.experiment.run import STAGES, cached_result, check_config, loaded_model, run_experiment, run_opt_steps
from quantwm.planning.presets import PRESETS
from quantwm.quant import GROUPS, METHODS
from quantwm.quant.config import ACT_GRANULARITIES, VALID_BITS, WEIGHT_GRANULARITIES
from quantwm.ui.state import CONTROL_FIELDS, ENV_LABELS, from_query, from_values, to_query, to_values
from quantwm.viz.figures import latent_error_figure, layer_bars_figure, objective_success_figure, opt_steps_figure

if TYPE_CHECKING:
    from quantwm.experiment.run import ExperimentResult
    from quantwm.ui import ExploreHandles, UIContext

log = logging.getLogger("quantwm.ui")

FIRST_CLICK = {"w_bits": 3}  # the dashboard's default differs from the CLI's: RTN W3 per-channel visibly fails
_BITS = [(str(b), b) for b in VALID_BITS if b < 16] + [("16 (off)", 16)]
# (label, value) choices of the controls that offer a fixed set; a link naming another value is refused
CHOICES: dict[str, list[tuple[str, Any]]] = {
    "env": [(ENV_LABELS.get(e, e), e) for e in ENV_NAMES],
    "method": [(m, m) for m in sorted(METHODS)],
    "w_bits": _BITS, "a_bits": _BITS,
    "w_granularity": [(g, g) for g in WEIGHT_GRANULARITIES],
    "a_granularity": [(g, g) for g in ACT_GRANULARITIES],
    "planner": [("MPC (replans)", "mpc"), ("CEM (open loop)", "cem"), ("GD (open loop)", "gd")],
    "preset": [(p.capitalize(), p) for p in PRESETS],
}
GROUP_SIZES = [8, 16, 32, 64, 128]
GROUP_SIZE = 32  # set when the weight granularity becomes "group"
BLOCK_CHOICES = ["predictor.blocks[:2]", "predictor.blocks[2:]", "predictor.blocks[0]", "predictor.blocks[-1]",
                 "encoder.blocks[:2]", "encoder.blocks[2:]"]
MAX_EPISODES = 50
CHART_MIN_WIDTH = 620  # px: narrower and a chart row wraps to one chart per line
SUMMARY_COLUMNS = ["side", "success", "mean state distance", "mean final objective", "latent error, last step",
                   "failures: objective / model / search", "size (MB)", "bits / weight", "quantize (s)",
                   "plan (s / episode)"]
SUMMARY_WIDTHS = ["9%", "10%", "10%", "10%", "10%", "13%", "8%", "8%", "10%", "12%"]  # summary_table's columns

SUMMARY_NOTE = (
    "Both sides plan the same episodes (same starts, goals and sampler noise). Latent error: RMS distance between "
    "the side's imagined latents and the real frames' (FP encoder) at the last step of the imagination probe. A failed "
    "episode is blamed on the **objective** (the plan it chose really scores as well as a known solution), the "
    "**model** (it imagined a plan as good as the solution, reality disagreed) or the **search** (it found none).")
CAPTIONS = {
    "imagination": "Same actions through the real environment and both models. Panels, left to right: real frames, "
                   "FP imagination, quantized imagination, their difference, the goal. Where the quantized panel "
                   "departs from the FP one, quantization changed what the model predicts.",
    "planning": "The FP (left) and quantized (right) episode from the same start towards the same goal, with each "
                "plan's imagined end frame and objective.",
    "latent": "Mean RMS distance between latents at each step of an open-loop rollout with identical actions "
              "(shaded: 95 % bootstrap band over episodes). Orange above the blue floor is error quantization adds: "
              "growing along the rollout is drift, already high at step 1 is collapse.",
    "scatter": "One marker per episode and side: x is the planner's final objective (what it believed), y how far "
               "the real state ended from the goal; green = success. If quantized successes and failures are mixed "
               "along x, the objective no longer tells good plans from bad.",
    "layers": "Signal-to-quantization-noise ratio of each quantized layer's output on held-out inputs "
              "(10 dB: noise at a tenth of the signal power, each 6 dB about one bit). The shortest bars show where "
              "the error enters.",
    "opt_steps": "Open-loop CEM with 1 to 50 optimiser steps on the same episodes. If quantized success stays flat "
                 "while its imagined objective (solid) keeps falling and the true one (dashed) does not, more search "
                 "only exploits the model's errors.",
}

# the address bar (and the link box) show the configuration: keeps ?__theme=..., copies on request
_LINK_JS = """(query) => {{
  const url = new URL(window.location.href);
  if (!query) return url.href;
  const theme = url.searchParams.get("__theme");
  url.search = query;
  if (theme) url.searchParams.set("__theme", theme);
  window.history.replaceState(null, "", url);
  {copy}
  return url.href;
}}"""
PUBLISH_JS = _LINK_JS.format(copy="")
COPY_JS = _LINK_JS.format(copy="navigator.clipboard?.writeText(url.href).catch(() => {});")

# Chromium autoplays only muted videos, and Gradio's player unmutes its video whenever it updates it:
# keep ours muted (they have no sound) and start each new source
JS = """() => {
  const keepMuted = (event) => {
    const video = event.target;
    if (!(video instanceof HTMLVideoElement) || !video.closest(".natural-video")) return;
    const wasPlaying = !video.paused;
    video.muted = true;
    if (event.type === "loadeddata" || wasPlaying) video.play().catch(() => {});
  };
  document.addEventListener("loadeddata", keepMuted, true);
  document.addEventListener("volumechange", keepMuted, true);
}"""

CSS = """
.gradio-container { overflow: clip !important; }  /* clips like Gradio's 'hidden' without blocking sticky */
/* the check, Run and progress stay at the window's bottom while the controls scroll; above Gradio's labels (z 40) */
#explore-actions { position: sticky; bottom: 0; z-index: 50; padding: 8px 0 4px;
                   background: var(--background-fill-primary); border-top: 1px solid var(--border-color-primary); }
#explore-check { font-size: 0.92em; }
#explore-status { min-height: 3.2em; }
#explore-status .wrap.translucent { background: var(--background-fill-primary); opacity: 1; }
#explore-status .progress-text { display: none; }  /* the stage text below says it all */
#explore-check p { margin: 0; }
#explore-summary table, #explore-summary span { font-family: var(--font) !important; }
#explore-summary th span { font-size: 0.85em; font-weight: 600; }
.natural-video video { width: auto !important; max-width: 100%; height: auto !important; margin: 0 auto; }
.natural-video .wrap, .natural-video [data-testid="video"] { height: auto !important; }
.chart-note { font-size: 0.92em; opacity: 0.85; }
"""


# ---- options -----------------------------------------------------------------------------------
def base_options(ctx: UIContext) -> RunOptions:
    """The options the controls do not show (device, model source); the link format's defaults."""
    official = tuple((k, str(v) if isinstance(v, Path) else v) for k, v in asdict(ctx.official).items()) \
        if ctx.official else ()
    return RunOptions(device=ctx.device, official=official)


def options_from(controls: dict[str, Any], base: RunOptions) -> RunOptions:
    """Run options of control values keyed by CONTROL_FIELDS (ValueError naming valid choices); the
    group size, disabled unless the weight granularity is 'group', is ignored then."""
    missing = [name for name in CONTROL_FIELDS if name not in controls]
    if missing:
        raise ValueError(f"missing controls: {', '.join(missing)}")
    values = {**controls, "group_size": controls["group_size"] if controls["w_granularity"] == "group" else None}
    return from_values([values[name] for name in CONTROL_FIELDS], base)


def link_query(options: RunOptions) -> str:
    """The query string of ``options``; never empty, as an empty query means the dashboard's defaults."""
    return to_query(options) or f"env={options.env}"


def options_from_query(params: dict[str, str], base: RunOptions) -> RunOptions:
    """The options a link names; a link naming none gives the dashboard's defaults. ValueError for
    a value no control can show (a combination that cannot run is shown, with the reason)."""
    if not any(name in params for name in CONTROL_FIELDS):
        return base.with_values(**FIRST_CLICK)
    options = from_query(dict(params), base)
    for name, choices in CHOICES.items():
        if (value := getattr(options, name)) not in (v for _, v in choices):
            raise ValueError(f"{name} {value!r} is invalid; valid: {', '.join(str(v) for _, v in choices)}")
    if not 1 <= options.episodes <= MAX_EPISODES:
        raise ValueError(f"episodes must be 1..{MAX_EPISODES} here, got {options.episodes}")
    return options


def checked_config(options: RunOptions) -> ExperimentConfig:
    """The experiment of ``options`` after every check that needs no computation (model-dependent
    ones included: block ranges, a decoder to quantize); ValueError otherwise."""
    config = options.config()
    check_config(config, loaded_model(config.model, config.device)[0])
    return config


def check_text(options: RunOptions) -> str:
    """What these options will run; ValueError when they cannot."""
    return f"✓ {checked_config(options).label()}"


# ---- formatting --------------------------------------------------------------------------------
def describe_planner(env: str, name: str, preset: str) -> str:
    """One line of a planner's main knobs under a preset on an environment."""
    spec = PlannerChoice(name, preset).spec(env)
    opt = spec.optimizer
    search = (f"CEM {opt.samples} samples, top {opt.topk}, {opt.opt_steps} steps" if hasattr(opt, "samples")
              else f"gradient descent, {opt.opt_steps} steps, lr {opt.lr:g}")
    if name != "mpc":
        return f"{search}; horizon {spec.horizon}; the plan is executed open loop"
    replan = f" ({spec.replan_opt_steps} on warm-started replans)" if spec.replan_opt_steps else ""
    return (f"{search}{replan}; horizon {spec.horizon}; replans every {spec.replan_every} step(s) within a budget "
            f"of {spec.max_steps}")


def _percent(rate: float, n: int) -> str:
    return f"{rate:.0%} ({round(rate * n)}/{n})"


def _number(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def summary_table(value: dict[str, Any]) -> pd.DataFrame:
    """FP and quantized rows of a result JSON: success, distances, objective, latent error at the
    last probe step, failure split, model size and bits, quantization and planning time."""
    latent, model, timing = value["latent_error"], value["model"], value["timing"]
    rows = []
    for side, label, curve in (("fp", "FP", "fp_vs_true"), ("quant", "quantized", "quant_vs_true")):
        s = value[side]["summary"]
        split = ("n/a" if "failures_objective_prefers_own_plan" not in s else
                 f"{s['failures_objective_prefers_own_plan']} / {s['failures_model_prefers_own_plan']} / "
                 f"{s['failures_search_missed_reference']}")
        quantized = side == "quant"
        rows.append({
            "side": label,
            "success": _percent(s["success_rate"], s["episodes"]),
            "mean state distance": _number(s["mean_state_distance"]),
            "mean final objective": _number(s["mean_final_objective"]),
            "latent error, last step": _number(latent[curve]["mean"][-1]) if curve in latent else "n/a",
            "failures: objective / model / search": split,
            "size (MB)": f"{model['quantized_mb' if quantized else 'fp_mb']:.2f}",
            "bits / weight": f"{model['effective_bits']:.2f}" if quantized else "32",
            "quantize (s)": f"{timing['quantization_s']:.2g}" if quantized else "-",
            "plan (s / episode)": f"{timing['quant_s_per_episode' if quantized else 'fp_s_per_episode']:.1f}",
        })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def video_episodes(value: dict[str, Any]) -> list[int]:
    """Episodes that have videos (the first ``videos`` ones)."""
    return sorted({int(name.rsplit("_", 1)[1].removesuffix(".mp4")) for name in value.get("videos", [])})


def episode_choices(value: dict[str, Any]) -> list[tuple[str, int]]:
    """Picker entries 'episode 3 - FP ✓ / quantized ✗' of the episodes with videos."""
    def mark(side: str, episode: int) -> str:
        ok = next(e["success"] for e in value[side]["episodes"] if e["index"] == episode)
        return "✓" if ok else "✗"
    return [(f"episode {i} - FP {mark('fp', i)} / quantized {mark('quant', i)}", i) for i in video_episodes(value)]


def result_title(value: dict[str, Any], how: str) -> str:
    """The heading naming the experiment shown (controls may have moved on since)."""
    c = ExperimentConfig.from_dict(value["config"])
    fp, q = value["fp"]["summary"]["success_rate"], value["quant"]["summary"]["success_rate"]
    return (f"### {value['label']} on {ENV_LABELS.get(c.env, c.env)}\n"
            f"{c.planner.name.upper()} {c.planner.preset} · {c.episodes} episodes (seed {c.seed}) · success "
            f"**FP {fp:.0%}** vs **quantized {q:.0%}** · {how}")


def result_digest(value: dict[str, Any]) -> dict[str, Any]:
    """The result JSON without per-episode records, probe records and scatter points (for the page and API)."""
    alignment = {side: {k: v for k, v in a.items() if k != "points"} for side, a in value["alignment"].items()}
    return {"label": value["label"], "key": value["key"], "config": value["config"],
            "fp": value["fp"]["summary"], "quant": value["quant"]["summary"], "alignment": alignment,
            "latent_error": value["latent_error"], "model": value["model"], "timing": value["timing"]}


def latent_figure(value: dict[str, Any], log_y: bool, per_episode: bool) -> go.Figure | None:
    """Latent-error curves of a result (None when it has no probe records)."""
    if not value.get("probe"):
        return None
    return latent_error_figure(analysis.latent_error_curves(value["probe"]), log_y=log_y, show_episodes=per_episode)


def episode_videos(shown: dict[str, Any] | None, episode: int | None) -> tuple[str | None, str | None]:
    """(imagination, planning) video paths of ``episode`` of the shown result."""
    if not shown or episode is None:
        return None, None
    media = shown["media"]
    return media.get(f"imagination_{episode}.mp4"), media.get(f"planning_{episode}.mp4")


def show_result(result: ExperimentResult, how: str, query: str, log_y: bool, per_episode: bool) -> list[Any]:
    """Values of the show outputs (SHOW order) for a result; the videos start on the first episode
    whose outcome quantization changed, where there is one."""
    value = result.value
    shown = {"value": value, "media": {name: str(path) for name, path in result.media.items()}}
    choices = episode_choices(value)
    first = next((i for label, i in choices if label.count("✓") == 1), choices[0][1] if choices else None)
    imagination, planning = episode_videos(shown, first)
    return [
        result_title(value, how), summary_table(value),
        gr.Dropdown(choices=choices, value=first, interactive=bool(choices)), imagination, planning,
        latent_figure(value, log_y, per_episode),
        objective_success_figure({side: value["alignment"][side]["points"] for side in ("fp", "quant")}),
        layer_bars_figure(value["layers"]) if value["layers"] else None,
        None, "", result_digest(value), shown, query,
    ]


# ---- computing -----------------------------------------------------------------------------------
class RunCancelled(Exception):
    """The event that asked for this computation was cancelled."""


class RunSlots:
    """At most ``limit`` computations at once across all users (cached answers never wait)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"concurrency must be >= 1, got {limit}")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    @contextlib.contextmanager
    def hold(self, cancel: threading.Event, waiting: Callable[[], None]) -> Iterator[None]:
        """Wait for a slot (calling ``waiting`` now and then), hold it for the block."""
        while not self._slots.acquire(timeout=0.5):
            if cancel.is_set():
                raise RunCancelled()
            waiting()
        try:
            yield
        finally:
            self._slots.release()


def queued(progress: gr.Progress) -> Callable[[], None]:
    """What a run waiting for a slot shows."""
    return lambda: progress(0, desc="queued: other runs are computing")


def reporter(progress: gr.Progress, cancel: threading.Event) -> Callable[[str, int, int], None]:
    """An experiment progress callback that drives the page's progress bar and stops a cancelled run."""
    def report(stage: str, done: int, total: int) -> None:
        if cancel.is_set():
            raise RunCancelled()
        where = f", stage {STAGES.index(stage) + 1} of {len(STAGES)}" if stage in STAGES else ""
        progress(done / total if total else 0.0, desc=f"{stage} {done}/{total}{where}")
    return report


async def in_worker(fn: Callable[[threading.Event], Any]) -> Any:
    """``fn(cancel)`` in a worker thread; cancelling the awaiting event sets ``cancel``."""
    cancel = threading.Event()
    try:
        return await anyio.to_thread.run_sync(fn, cancel, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        cancel.set()
        raise


def failure_message(err: Exception) -> str:
    """A readable one-liner for the page (the traceback goes to the server log only)."""
    if isinstance(err, ValueError):
        return f"⚠️ **Not run:** {err}"
    log.exception("explore run failed")
    return f"⚠️ **Run failed:** {type(err).__name__}: {err}"


# ---- the tab -------------------------------------------------------------------------------------
@dataclass
class Explore:
    """The tab's callbacks over one UI context (``slots`` shared by every user of the server)."""

    ctx: UIContext
    slots: RunSlots

    @property
    def base(self) -> RunOptions:
        return base_options(self.ctx)

    def check(self, **controls: Any) -> str:
        """Why these settings cannot run, or what will run; nothing is computed."""
        try:
            return check_text(options_from(controls, self.base))
        except ValueError as err:
            return f"⚠️ {err}"

    def restore(self, request: gr.Request) -> list[Any]:
        """Control values (CONTROL_FIELDS order) from the page's query string, a message and the check
        (a link whose settings cannot run still shows them, with the reason)."""
        try:
            values = to_values(options_from_query(dict(request.query_params), self.base))
        except ValueError as err:
            keep = [gr.update()] * len(CONTROL_FIELDS)
            return [*keep, f"⚠️ This link's settings are invalid: {err}", gr.update()]
        return [*values, "", self.check(**dict(zip(CONTROL_FIELDS, values)))]

    def cached(self, log_y: bool = False, per_episode: bool = False, **controls: Any) -> list[Any]:
        """The stored result of these settings, or a message; never computes."""
        try:
            options = options_from(controls, self.base)
            result = cached_result(checked_config(options), self.ctx.cache)
        except ValueError:  # settings that cannot run: the check under the controls (and /check) says why
            return ["", *[gr.update()] * len(SHOW)]
        except Exception as err:  # noqa: BLE001 - the page shows a message, never a traceback
            return [failure_message(err), *[gr.update()] * len(SHOW)]
        if result is None:
            return ["Not computed yet for these settings: press **Run**.", *[gr.update()] * len(SHOW)]
        return ["", *show_result(result, "from the cache", link_query(options), log_y, per_episode)]

    async def run(self, log_y: bool = False, per_episode: bool = False, progress: gr.Progress = gr.Progress(),
                  **controls: Any) -> list[Any]:
        """Run these settings (the cache answers at once when it can); a failure leaves the shown result."""
        try:
            options = options_from(controls, self.base)
            config = options.config()

            def work(cancel: threading.Event) -> ExperimentResult:
                found = cached_result(config, self.ctx.cache)
                if found is not None:
                    return found
                with self.slots.hold(cancel, queued(progress)):
                    return run_experiment(config, reporter(progress, cancel), cache=self.ctx.cache)

            start = time.monotonic()
            result = await in_worker(work)
        except Exception as err:  # noqa: BLE001 - the page shows a message, never a traceback
            return [failure_message(err), *[gr.update()] * len(SHOW)]
        how = "from the cache" if result.cached else f"computed in {time.monotonic() - start:.0f} s"
        return ["", *show_result(result, how, link_query(options), log_y, per_episode)]

    async def opt_steps(self, progress: gr.Progress = gr.Progress(), **controls: Any) -> list[Any]:
        """Success and objectives against optimiser steps for these settings (costs several runs)."""
        try:
            config = options_from(controls, self.base).config()

            def work(cancel: threading.Event) -> dict[str, Any]:
                with self.slots.hold(cancel, queued(progress)):
                    return run_opt_steps(config, progress=reporter(progress, cancel), cache=self.ctx.cache)

            value = await in_worker(work)
        except Exception as err:  # noqa: BLE001 - the page shows a message, never a traceback
            return [failure_message(err), gr.update(), gr.update()]
        note = f"**{value['label']}**: {value['verdict']['summary']}"
        return ["", opt_steps_figure(value["rows"]), note]

    def link(self, **controls: Any) -> list[str]:
        """(message, query string) of the settings, for a shareable link."""
        try:
            return ["", link_query(options_from(controls, self.base))]
        except ValueError as err:
            return [f"⚠️ {err}", gr.update()]


# output order of a shown result (after the message)
SHOW: list[str] = ["title", "summary", "episode", "imagination", "planning", "latent", "scatter", "layers",
                   "opt_plot", "opt_note", "digest", "shown", "query"]


def _controls(options: RunOptions) -> tuple[dict[str, gr.components.Component], gr.Markdown]:
    """The control components showing ``options`` (keyed and ordered as CONTROL_FIELDS) and, under
    the preset, a note of the planner's knobs."""
    v = dict(zip(CONTROL_FIELDS, to_values(options)))

    def pick(name: str, label: str, **kwargs: Any) -> gr.Dropdown:
        return gr.Dropdown(CHOICES[name], value=v[name], label=label, **kwargs)

    c: dict[str, gr.components.Component] = {}
    gr.Markdown("#### What to quantize")
    c["env"] = pick("env", "environment")
    c["modules"] = gr.Dropdown(list(GROUPS), value=v["modules"], multiselect=True, label="modules")
    c["blocks"] = gr.Dropdown(BLOCK_CHOICES, value=v["blocks"], multiselect=True, allow_custom_value=True,
                              label="only these blocks (empty: all)",
                              info="type another range like predictor.blocks[1:3] and press Enter")
    gr.Markdown("#### How")
    c["method"] = pick("method", "method")
    with gr.Row():
        c["w_bits"] = pick("w_bits", "weight bits", min_width=120)
        c["w_granularity"] = pick("w_granularity", "weight granularity", min_width=120)
    c["group_size"] = gr.Dropdown(GROUP_SIZES, value=v["group_size"] or GROUP_SIZE, allow_custom_value=True,
                                  label="group size (granularity 'group')", interactive=v["w_granularity"] == "group",
                                  info="weights per scale, along a layer's inputs")
    with gr.Row():
        c["a_bits"] = pick("a_bits", "activation bits", min_width=120)
        c["a_granularity"] = pick("a_granularity", "activation granularity", min_width=120,
                                  interactive=v["a_bits"] < 16)
    c["attention_matmuls"] = gr.Checkbox(v["attention_matmuls"], label="attention matmuls too (q, k, v, softmax)",
                                         info="at the activation bit-width", interactive=v["a_bits"] < 16)
    gr.Markdown("#### Planning")
    c["planner"] = gr.Radio(CHOICES["planner"], value=v["planner"], label="planner")
    c["preset"] = gr.Radio(CHOICES["preset"], value=v["preset"], label="preset",
                           info="Quick: sized for 2 CPU cores; Paper: DINO-WM's settings (slower)")
    note = gr.Markdown(describe_planner(v["env"], v["planner"], v["preset"]), elem_classes=["chart-note"],
                       elem_id="explore-planner-note")
    c["episodes"] = gr.Slider(1, MAX_EPISODES, value=v["episodes"], step=1, label="episodes")
    c["seed"] = gr.Number(v["seed"], precision=0, label="seed")
    for name, component in c.items():
        component.elem_id = f"explore-{name}"  # read when the page config is built: tests and CSS find them
    return {name: c[name] for name in CONTROL_FIELDS}, note


def dependent_controls(w_bits: int, w_granularity: str, group_size: int | None, a_bits: int,
                       attention_matmuls: bool) -> list[Any]:
    """Enable what the settings can take: granularity with weight bits < 16, a group size only
    with granularity 'group', activation granularity and attention matmuls with activation bits < 16."""
    grouped = w_granularity == "group"
    acts = a_bits is not None and a_bits < 16
    return [gr.update(interactive=w_bits is not None and w_bits < 16),
            gr.update(interactive=grouped, value=group_size or GROUP_SIZE),
            gr.update(interactive=acts),
            gr.update(interactive=acts, value=attention_matmuls and acts)]


def _note(text: str) -> gr.Markdown:
    return gr.Markdown(text, elem_classes=["chart-note"])


def build_explore(ctx: UIContext) -> ExploreHandles:
    """The Explore tab inside the current Blocks; returns its controls and result outputs."""
    from quantwm.ui import ExploreHandles

    tab = Explore(ctx, RunSlots(ctx.concurrency))
    first = tab.base.with_values(**FIRST_CLICK)
    out: dict[str, gr.components.Component] = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=340, elem_id="explore-controls"):
            controls, planner_note = _controls(first)
            with gr.Column(elem_id="explore-actions"):
                check = gr.Markdown(elem_id="explore-check")
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="explore-run")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="explore-cancel")
                status = gr.Markdown(elem_id="explore-status")
            share = gr.Button("Copy link to these settings", size="sm", elem_id="explore-copy-link")
            link = gr.Textbox(label="link", interactive=False, buttons=["copy"], elem_id="explore-link")
        with gr.Column(scale=3, min_width=480, elem_id="explore-results"):
            out["title"] = gr.Markdown("### No result yet\nPick settings on the left and press **Run**: the defaults "
                                       "(Wall, RTN W3 per-channel on the predictor) visibly fail.",
                                       elem_id="explore-title")
            out["summary"] = gr.Dataframe(pd.DataFrame(columns=SUMMARY_COLUMNS), label="summary", interactive=False,
                                          wrap=True, elem_id="explore-summary", column_widths=SUMMARY_WIDTHS)
            _note(SUMMARY_NOTE)
            out["episode"] = gr.Dropdown(label="episode (videos of the first episodes)", choices=[], interactive=False,
                                         elem_id="explore-episode")
            for kind, title in (("imagination", "Imagination: same actions, real vs FP vs quantized"),
                                ("planning", "Planning: the FP episode and the quantized one")):
                gr.Markdown(f"#### {title}")
                out[kind] = gr.Video(label=title, show_label=False, autoplay=True, loop=True, interactive=False,
                                     elem_id=f"explore-{kind}", elem_classes=["natural-video"])
                _note(CAPTIONS[kind])
            with gr.Row(equal_height=False):  # two charts a row on wide screens, one below the other otherwise
                with gr.Column(min_width=CHART_MIN_WIDTH):
                    out["latent"] = gr.Plot(label="latent error along the rollout", elem_id="explore-latent")
                    with gr.Row():
                        log_y = gr.Checkbox(False, label="log axis", elem_id="explore-log")
                        per_episode = gr.Checkbox(False, label="each episode's curve", elem_id="explore-per-episode")
                    _note(CAPTIONS["latent"])
                with gr.Column(min_width=CHART_MIN_WIDTH):
                    out["scatter"] = gr.Plot(label="does the objective predict success?", elem_id="explore-scatter")
                    _note(CAPTIONS["scatter"])
            with gr.Row(equal_height=False):
                with gr.Column(min_width=CHART_MIN_WIDTH):
                    out["layers"] = gr.Plot(label="per-layer SQNR", elem_id="explore-layers")
                    _note(CAPTIONS["layers"])
                with gr.Column(min_width=CHART_MIN_WIDTH):
                    opt_button = gr.Button("Compute success vs optimiser steps (slow: 14 planning runs)", size="sm",
                                           elem_id="explore-opt-steps")
                    out["opt_plot"] = gr.Plot(label="success and objective vs optimiser steps",
                                              elem_id="explore-opt-plot")
                    out["opt_note"] = _note("")
                    _note(CAPTIONS["opt_steps"])
            with gr.Accordion("result JSON (summary; the API's answer)", open=False):
                out["digest"] = gr.JSON(elem_id="explore-digest")
            out["shown"] = gr.State(None)
            out["query"] = gr.Textbox(visible=False)
    show = [out[name] for name in SHOW]
    views = {"log_y": log_y, "per_episode": per_episode}

    gr.on([controls[n].change for n in CONTROL_FIELDS], tab.check, inputs_kwargs=controls, outputs=check,
          api_name="check", trigger_mode="always_last", show_progress="hidden", concurrency_limit=None)
    gr.on([controls[n].change for n in ("env", "planner", "preset")], describe_planner,
          inputs=[controls[n] for n in ("env", "planner", "preset")], outputs=planner_note, api_visibility="private",
          show_progress="hidden", queue=False)
    gr.on([controls[n].change for n in ("w_bits", "w_granularity", "a_bits")], dependent_controls,
          inputs=[controls[n] for n in ("w_bits", "w_granularity", "group_size", "a_bits", "attention_matmuls")],
          outputs=[controls[n] for n in ("w_granularity", "group_size", "a_granularity", "attention_matmuls")],
          api_visibility="private", show_progress="hidden", queue=False)

    publish = {"fn": None, "inputs": out["query"], "outputs": link, "js": PUBLISH_JS}
    running = run.click(tab.run, inputs_kwargs={**controls, **views}, outputs=[status, *show], api_name="run",
                        concurrency_limit=None, show_progress_on=[status])
    running.then(**publish)
    optimising = opt_button.click(tab.opt_steps, inputs_kwargs=controls,
                                  outputs=[status, out["opt_plot"], out["opt_note"]], api_name="opt_steps",
                                  concurrency_limit=None, show_progress_on=[status])
    cancel.click(None, cancels=[running, optimising], api_visibility="private")
    share.click(tab.link, inputs_kwargs=controls, outputs=[status, out["query"]], api_name="link") \
        .then(None, inputs=out["query"], outputs=link, js=COPY_JS)
    out["episode"].change(episode_videos, inputs=[out["shown"], out["episode"]],
                          outputs=[out["imagination"], out["planning"]], api_visibility="private",
                          show_progress="hidden")
    gr.on([log_y.change, per_episode.change],
          lambda shown, log, each: latent_figure(shown["value"], log, each) if shown else None,
          inputs=[out["shown"], log_y, per_episode], outputs=out["latent"], api_visibility="private")

    gr.on(None, tab.restore, outputs=[*controls.values(), status, check], api_visibility="private") \
        .then(tab.cached, inputs_kwargs={**controls, **views}, outputs=[status, *show], api_name="cached",
              concurrency_limit=None, show_progress_on=[status]) \
        .then(**publish)
    return ExploreHandles(controls, show)
