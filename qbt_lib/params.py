"""Parameter checks in one place, with uniform messages that name the parameter.

Papermill passes ``-p n 1e7`` as the float ``1e7``: integral floats are accepted as integers,
anything else (``1.5``, ``"abc"``, ``True``, NaN) is rejected with a ``ValueError`` naming it.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence


def as_int(name: str, value: Any, *, min: int | None = None, max: int | None = None) -> int:
    """Return ``value`` as an ``int``; accept integral floats and integer strings (``"1e7"``)."""
    v = value
    if isinstance(v, str):
        s = v.strip().replace("_", "")
        try:
            v = int(s)
        except ValueError:
            try:
                v = float(s)
            except ValueError:
                raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(v, numbers.Integral):
        out = int(v)
    else:
        f = float(v)
        if not math.isfinite(f) or f != math.floor(f):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        out = int(f)
    if min is not None and out < min:
        raise ValueError(f"{name} must be >= {min}, got {value!r}")
    if max is not None and out > max:
        raise ValueError(f"{name} must be <= {max:,}, got {value!r}")
    return out


def as_float(name: str, value: Any, *, min: float | None = None, max: float | None = None,
             min_inclusive: bool = True, max_inclusive: bool = True) -> float:
    """Return ``value`` as a finite float within the given bounds."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if min is not None and (f < min or (not min_inclusive and f == min)):
        op = ">=" if min_inclusive else ">"
        raise ValueError(f"{name} must be {op} {min}, got {value!r}")
    if max is not None and (f > max or (not max_inclusive and f == max)):
        op = "<=" if max_inclusive else "<"
        raise ValueError(f"{name} must be {op} {max}, got {value!r}")
    return f


def one_of(name: str, value: Any, options: Sequence[Any]) -> Any:
    """Check ``value`` is one of ``options`` (strings compared case-insensitively)."""
    if isinstance(value, str):
        low = value.strip().lower()
        for o in options:
            if isinstance(o, str) and o.lower() == low:
                return o
    elif value in options:
        return value
    raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise ValueError(f"{name} must be true or false, got {value!r}")


def as_list(name: str, value: Any, options: Sequence[str] | None = None) -> list:
    """A list parameter: accepts a list/tuple or a comma-separated string."""
    if isinstance(value, str):
        items = [s.strip() for s in value.split(",") if s.strip()]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise ValueError(f"{name} must be a list, got {value!r}")
    if not items:
        raise ValueError(f"{name} must not be empty")
    if options is not None:
        items = [one_of(name, v, options) for v in items]
    return items
