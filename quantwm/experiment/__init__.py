"""The one place that wires environments, models, quantization and planners together.

``evaluation``: full-precision evaluation (``evaluate``, ``calibrate``, ``load_model``);
``config``: ``ExperimentConfig``; ``run``: ``run_experiment`` - FP vs quantized planning on
identical episodes, the imagination probe, analyses and media, cached.
"""
from quantwm.experiment.config import CalibrationSpec, ExperimentConfig, ModelSource, PlannerChoice
from quantwm.experiment.evaluation import (
    EvalResult, calibrate, check_env, evaluate, load_model, plan_replays,
)

__all__ = [
    "CalibrationSpec", "EvalResult", "ExperimentConfig", "ModelSource", "PlannerChoice", "calibrate", "check_env",
    "evaluate", "load_model", "plan_replays",
]
