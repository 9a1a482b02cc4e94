"""Numbers and paths for people: the formatting the profiling tables and the report share.

``human(7.69e6) == "7.69M"``, ``times(44.4) == "44.4x"``, ``span(1e3, 2e3) == "1,000-2,000"``,
``rel(path)`` a path relative to the project root (as every table and page names its files).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from . import paths


def _finite(x: Any) -> float | None:
    """``x`` as a finite float, or None (missing, text, NaN, inf: shown as ``-``)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def human(x: Any) -> str:
    """A number for people: 2,304 / 3.16k / 7.69M / 0.73 (3 significant digits)."""
    x = _finite(x)
    if x is None:
        return "-"
    a = abs(x)
    if x == int(x) and a < 1e4:
        return f"{int(x):,}"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def times(x: Any) -> str:
    """A speed-up for people: 3,077x / 44.4x / 1.71x / 0.075x."""
    x = _finite(x)
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}x"
    return f"{x:.3g}x"


def span(lo: float, hi: float) -> str:
    """A range for people: one number when both ends agree, else ``lo-hi``."""
    return human(lo) if math.isclose(lo, hi, rel_tol=1e-9) else f"{human(lo)}-{human(hi)}"


def rel(p: Path | str | None) -> str:
    """``p`` relative to the project root when it is inside it (else as given); ``-`` for
    None."""
    if p is None:
        return "-"
    try:
        return str(Path(p).resolve().relative_to(paths.PROJ_ROOT))
    except ValueError:
        return str(p)


__all__ = ["human", "times", "span", "rel"]
