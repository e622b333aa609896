"""Gradio layout and callbacks (thin: calls ``quantwm.experiment`` and ``quantwm.viz``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from quantwm.envs import ENV_NAMES
from quantwm.experiment import episode_video, load_model
from quantwm.runtime import CACHE

if TYPE_CHECKING:
    from quantwm.models import OfficialCheckpoint, WorldModel

UI_PLANNERS = ("mpc", "cem", "gd")


def build_app(official: OfficialCheckpoint | None = None, device: str = "cpu") -> gr.Blocks:
    """A minimal page: plan one full-precision episode and show its video.

    Default: the shipped model of the chosen environment. With ``official``, that DINO-WM model is
    loaded once here (errors surface at start-up) and its environment is the only choice.
    """
    fixed: WorldModel | None = load_model(None, device=device, official=official) if official is not None else None
    envs = [fixed.cfg.env] if fixed is not None else list(ENV_NAMES)
    what = (f"the official DINO-WM model {official.name}" if official is not None
            else "the shipped full-precision DINO-WM-architecture model")

    def run_episode(env: str, planner: str, episode: float, seed: float) -> tuple[str | None, str]:
        try:
            model = fixed if fixed is not None else load_model(env, device=device)
            path, rec = episode_video(model, env, planner, int(episode), int(seed), CACHE / "media")
        except (ValueError, FileNotFoundError) as e:
            return None, f"**Error:** {e}"
        verdict = "reached the goal" if rec.success else "did not reach the goal"
        return str(path), (
            f"**{env} / {planner}, episode {int(episode)} (seed {int(seed)}):** {verdict}; final state distance "
            f"{rec.state_distance:.2f}; planner objective {rec.final_objective:.4f}; {len(rec.plan_objectives)} plan(s); "
            f"{rec.wall_time_s:.1f} s."
        )

    with gr.Blocks(title="quantwm") as app:
        gr.Markdown(f"# quantwm\nPlan one episode with {what}. "
                    "Left: the real frames as the plan is executed; right: the goal.")
        with gr.Row():
            env = gr.Dropdown(envs, value="wall" if "wall" in envs else envs[0], label="environment", elem_id="env")
            planner = gr.Dropdown(list(UI_PLANNERS), value="mpc", label="planner", elem_id="planner")
            episode = gr.Number(0, precision=0, minimum=0, label="episode", elem_id="episode")
            seed = gr.Number(99, precision=0, label="seed", elem_id="seed")
        run = gr.Button("Plan episode", variant="primary", elem_id="run")
        video = gr.Video(label="executed episode | goal", elem_id="video", autoplay=True)
        summary = gr.Markdown(elem_id="summary")
        run.click(run_episode, [env, planner, episode, seed], [video, summary])
    return app
