"""Value conversions shared by the analyses: JSON records in (None or NaN: missing), JSON out."""
from __future__ import annotations

import math
from typing import Any


def number(x: Any) -> float:
    """``x`` as a float, NaN when missing (None)."""
    return math.nan if x is None else float(x)


def json_float(x: Any) -> float | None:
    """A plain float (numpy scalars converted), or None where undefined (None, NaN or infinite)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
