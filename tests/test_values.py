"""The one typed-value rule behind every NAME=VALUE of the CLI and the planner overrides."""
from __future__ import annotations

import pytest

from quantwm.values import conform, kind_of, parse, split_assignment


@pytest.mark.parametrize("text, kind, value", [
    ("12", int, 12), ("02", int, 2), ("2e-3", float, 2e-3), ("3", float, 3.0), ("TRUE", bool, True),
    ("false", bool, False), ("last", str, "last"), ("(6, 26)", (1, 2), (6, 26)), ("(1, 4)", (0.15, 2.5), (1.0, 4.0)),
])
def test_parse_reads_each_kind(text: str, kind, value) -> None:
    parsed = parse(text, kind)
    assert parsed == value and type(parsed) is type(value)
    if isinstance(value, tuple):
        assert [type(v) for v in parsed] == [type(v) for v in kind]


@pytest.mark.parametrize("text, kind, message", [
    ("deep", int, "must be an int, got 'deep'"), ("2.5", int, "must be an int, got '2.5'"),
    ("yes", bool, "must be true or false, got 'yes'"), ("(6.5, 20)", (6, 26), "must be a tuple of 2 integers like (6, 26)"),
    ("(1, 2, 3)", (0.1, 2.5), "must be a tuple of 2 numbers"), ("x", float, "must be a float, got 'x'"),
])
def test_parse_rejects_other_kinds(text: str, kind, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text, kind)


def test_conform_widens_ints_and_refuses_bools_as_numbers() -> None:
    assert conform(3, float) == 3.0 and type(conform(3, float)) is float
    for value, kind in ((True, int), (True, float), (2.5, int), ("3", int), (1, bool)):
        with pytest.raises(ValueError, match="must be"):
            conform(value, kind)
    assert kind_of((6, 26)) == (6, 26) and kind_of(0.5) is float


def test_split_assignment_names_the_form() -> None:
    assert split_assignment("a=b=c") == ("a", "b=c")
    for bad in ("a", "=3"):
        with pytest.raises(ValueError, match="is not FIELD=VALUE"):
            split_assignment(bad, "FIELD=VALUE")
