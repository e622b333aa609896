"""Test-wide runtime settings: no telemetry, Gradio temp files under cache/."""
from quantwm.runtime import configure_runtime

configure_runtime()
