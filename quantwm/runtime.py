"""Process-wide settings shared by the app, the CLI and the tests."""
from __future__ import annotations

import os
from pathlib import Path

import torch

CACHE = Path(__file__).resolve().parents[1] / "cache"


def configure_runtime(threads: int | None = None) -> None:
    """No telemetry, Gradio temp files under cache/, torch using every core (or ``threads``)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_TEMP_DIR", str(CACHE / "gradio"))
    torch.set_num_threads(threads or os.cpu_count() or 1)
