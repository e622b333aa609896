"""Figures (``quantwm.viz.figures``, Plotly) and videos (``quantwm.viz.video``, H.264 mp4): pure
functions over analysis and planning records, in one colour-blind-safe palette (FP_COLOR, QUANT_COLOR)."""
