"""Analyses of experiment records: pure functions, JSON-compatible records in and out.

``latent``: imagination-probe error curves with bootstrap bands; ``alignment``: does the planner's
objective track success (FP vs quantized, matched episodes); ``failures``: objective / model /
search split of failed episodes; ``optimisation``: success and objectives against optimiser steps;
``layers``: per-layer SQNR tables and group summaries.
"""
from quantwm.analysis.alignment import alignment, auroc, compare_alignment, spearman
from quantwm.analysis.failures import failure_split
from quantwm.analysis.latent import bootstrap_mean_ci, final_step_error, latent_error_curves
from quantwm.analysis.layers import group_summary, layer_table, worst_layers
from quantwm.analysis.optimisation import opt_steps_table, opt_steps_verdict

__all__ = [
    "alignment", "auroc", "bootstrap_mean_ci", "compare_alignment", "failure_split", "final_step_error", "group_summary",
    "latent_error_curves", "layer_table", "opt_steps_table", "opt_steps_verdict", "spearman", "worst_layers",
]
