"""The one rule for typed values given as text (``--set NAME=VALUE`` of data, train and the planner
benchmarks) or as parsed JSON (planner overrides): a value must match the kind of the setting's
default, where an int is a valid float and a bool is no number."""
from __future__ import annotations

import ast
from typing import Any

# A setting's kind: a scalar type (int, float, bool, str) or a default tuple, whose length and
# element types a value must match.
Kind = type | tuple


def kind_of(default: Any) -> Kind:
    """The kind a setting with this default value takes."""
    return default if isinstance(default, tuple) else type(default)


def split_assignment(item: str, form: str = "NAME=VALUE") -> tuple[str, str]:
    """``"name=value"`` -> ("name", "value"); ValueError naming ``form`` when there is no ``=``."""
    name, sep, text = item.partition("=")
    if not sep or not name:
        raise ValueError(f"{item!r} is not {form}")
    return name, text


def is_number(value: Any, kind: type) -> bool:
    """Whether ``value`` may stand for a ``kind`` (int or float) setting."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and kind in (int, float) and (kind is float or isinstance(value, int)))


def describe(kind: Kind) -> str:
    """``kind`` in words for an error message: "an int", "a tuple of 2 integers like (6, 26)"."""
    if isinstance(kind, tuple):
        items = "integers" if all(isinstance(d, int) for d in kind) else "numbers"
        return f"a tuple of {len(kind)} {items} like {kind}"
    return f"a{'n' if kind is int else ''} {kind.__name__}"


def conform(value: Any, kind: Kind) -> Any:
    """``value`` as ``kind`` (ints widened to float, tuple elements to their defaults' types);
    ValueError "must be <kind>, got <value>" otherwise."""
    if isinstance(kind, tuple):
        if (isinstance(value, tuple) and len(value) == len(kind)
                and all(is_number(v, type(d)) for v, d in zip(value, kind))):
            return tuple(type(d)(v) for v, d in zip(value, kind))
    elif is_number(value, kind):
        return kind(value)
    elif kind in (bool, str) and isinstance(value, kind):
        return value
    raise ValueError(f"must be {describe(kind)}, got {value!r}")


def parse(text: str, kind: Kind) -> Any:
    """``text`` as a value of ``kind``: a str setting takes the text as it is, a bool one true or
    false (any case), a number one what int() or float() reads ("12", "02", "2e-3"), a tuple one a
    Python literal ("(6, 26)")."""
    word = text.strip()
    if kind is str:
        return text
    if kind is bool and word.lower() in ("true", "false"):
        return word.lower() == "true"
    try:
        if isinstance(kind, tuple):
            return conform(ast.literal_eval(word), kind)
        if kind in (int, float):
            return kind(word)
    except (ValueError, SyntaxError):
        pass
    raise ValueError(f"must be {describe(kind) if kind is not bool else 'true or false'}, got {text!r}")
