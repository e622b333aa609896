"""Figures and videos: pure functions over planning records."""
