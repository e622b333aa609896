"""Process-wide settings shared by the app, the CLI and the tests."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

import torch

CACHE = Path(__file__).resolve().parents[1] / "cache"
DEVICES = ("cpu", "cuda")

# glibc mallopt parameters (malloc.h): keep freed tensor memory in the heap instead of returning it
# to the kernel after every forward, so repeated rollouts do not page-fault their buffers back in.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_ALLOCATOR = {_M_TRIM_THRESHOLD: 2 << 30, _M_TOP_PAD: 1 << 30, _M_MMAP_THRESHOLD: 32 << 20}  # 32 MiB: glibc's maximum


def tune_allocator() -> bool:
    """Apply the glibc allocator settings above (what ``MALLOC_TOP_PAD_`` etc. would set at start-up);
    False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in _ALLOCATOR.items())


def configure_runtime(threads: int | None = None) -> None:
    """No telemetry, Gradio temp files under cache/, the allocator tuned, torch using every core
    (or ``threads``)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_TEMP_DIR", str(CACHE / "gradio"))
    tune_allocator()
    torch.set_num_threads(threads or os.cpu_count() or 1)


def check_device(device: str) -> torch.device:
    """``device`` as a torch.device; ValueError naming DEVICES for an unknown one or a missing GPU."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; valid: {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return torch.device(device)
