"""Registry of PTQ methods: name -> (frozen config class, transform, settings check).

A transform ``fn(session, method_config)`` rewrites the model copy in ``session`` FP-equivalently
if the method needs to (smoothing, rotation) and stores one ``QuantizedWeight`` per
weight-quantized layer in ``session.weights``. ``check(config)`` raises ValueError for settings
the method does not support, before any work.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from quantwm.quant.config import QuantConfig
    from quantwm.quant.engine import QuantSession


def _accept_all(config: "QuantConfig") -> None:
    """Default check: the method supports every valid setting."""


class MethodEntry(NamedTuple):
    config_cls: type
    transform: Callable[["QuantSession", Any], None]
    check: Callable[["QuantConfig"], None] = _accept_all


METHODS: dict[str, MethodEntry] = {}


def register(name: str, config_cls: type, check: Callable[["QuantConfig"], None] = _accept_all) -> Callable:
    """Decorator registering ``transform`` under ``name`` with its config class."""
    def wrap(transform: Callable[["QuantSession", Any], None]) -> Callable:
        METHODS[name] = MethodEntry(config_cls, transform, check)
        return transform
    return wrap


from quantwm.quant.methods import awq, gptq, omniquant, omse, rotation, rtn, smoothquant  # noqa: E402,F401  (registers)
