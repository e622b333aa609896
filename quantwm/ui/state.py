"""The dashboard's state as run options: control values <-> ``RunOptions`` <-> URL query string.

A link holds every option that differs from the defaults, so it survives a server restart (the
state lives in the URL, not on the server) and stays short.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any
from urllib.parse import parse_qsl, urlencode

from quantwm.experiment.options import RunOptions, parse_value

# the options the Explore tab shows, in control order (model source and device come from the server)
CONTROL_FIELDS: tuple[str, ...] = (
    "env", "modules", "blocks", "attention_matmuls", "method", "w_bits", "w_granularity", "group_size", "a_bits",
    "a_granularity", "planner", "preset", "episodes", "seed",
)
DEFAULTS = RunOptions()
ENV_LABELS = {"pusht": "PushT", "wall": "Wall"}  # how the page names environments


def to_query(options: RunOptions) -> str:
    """The query string of the controls that differ from the defaults (sequences joined by ',')."""
    pairs = []
    for name in CONTROL_FIELDS:
        value = getattr(options, name)
        if value != getattr(DEFAULTS, name):
            text = ",".join(value) if isinstance(value, tuple) else "none" if value is None else str(value).lower() \
                if isinstance(value, bool) else str(value)
            pairs.append((name, text))
    return urlencode(pairs)


def from_query(query: str | dict[str, str], base: RunOptions = DEFAULTS) -> RunOptions:
    """Run options from a query string or mapping; unknown keys are ignored (links from other
    versions still open), bad values raise ValueError naming the valid choices."""
    items = parse_qsl(query.lstrip("?")) if isinstance(query, str) else list(query.items())
    known = {k: v for k, v in items if k in CONTROL_FIELDS}
    return base.with_values(**{k: parse_value(k, v) for k, v in known.items()})


def to_values(options: RunOptions) -> list[Any]:
    """Control values in CONTROL_FIELDS order (sequences as lists, for multiselect controls)."""
    return [list(v) if isinstance(v, tuple) else v for v in (getattr(options, n) for n in CONTROL_FIELDS)]


def from_values(values: list[Any], base: RunOptions = DEFAULTS) -> RunOptions:
    """Run options from control values in CONTROL_FIELDS order (ValueError on a bad combination)."""
    if len(values) != len(CONTROL_FIELDS):
        raise ValueError(f"expected {len(CONTROL_FIELDS)} control values, got {len(values)}")
    kinds = {f.name: f.type for f in fields(RunOptions)}
    parsed = {}
    for name, value in zip(CONTROL_FIELDS, values):
        if isinstance(value, float) and "int" in str(kinds[name]):
            value = int(value)
        parsed[name] = tuple(value) if isinstance(value, list) else value
    return base.with_values(**parsed)
