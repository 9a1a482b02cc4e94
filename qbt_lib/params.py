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


# --------------------------------------------------------------------------- declared constraints
# scikit-learn's ``_parameter_constraints`` idea: each workload's ``params.py`` declares
# ``DEFAULTS`` and ``CONSTRAINTS`` ({name: constraint}), and ``check`` validates a call's
# parameters against them in one place, naming the parameter the user typed.
class Constraint:
    """A declared parameter constraint: ``constraint(name, value)`` returns the normalized
    value or raises ``ValueError`` naming ``name``."""

    def __call__(self, name: str, value: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


class Interval(Constraint):
    """A number in ``[left, right]`` (``closed``: "both", "left", "right", "neither"; a bound
    of ``None`` is open-ended). ``kind`` is ``int`` (integral floats such as papermill's
    ``1e7`` and strings like ``"1e7"`` accepted) or ``float``."""

    def __init__(self, kind: type, left: float | None = None, right: float | None = None,
                 closed: str = "both"):
        if kind not in (int, float):
            raise TypeError("Interval kind must be int or float")
        self.kind, self.left, self.right = kind, left, right
        self.closed = one_of("closed", closed, ("both", "left", "right", "neither"))

    def __call__(self, name: str, value: Any) -> Any:
        lo_in = self.closed in ("both", "left")
        hi_in = self.closed in ("both", "right")
        if self.kind is int:
            v = as_int(name, value)
            if self.left is not None and (v < self.left or (not lo_in and v == self.left)):
                raise ValueError(f"{name} must be {'>=' if lo_in else '>'} {self.left:,}, "
                                 f"got {value!r}")
            if self.right is not None and (v > self.right or (not hi_in and v == self.right)):
                raise ValueError(f"{name} must be {'<=' if hi_in else '<'} {self.right:,}, "
                                 f"got {value!r}")
            return v
        return as_float(name, value, min=self.left, max=self.right, min_inclusive=lo_in,
                        max_inclusive=hi_in)

    def __repr__(self) -> str:
        lb = "[" if self.closed in ("both", "left") else "("
        rb = "]" if self.closed in ("both", "right") else ")"
        return (f"{self.kind.__name__} in {lb}{'-inf' if self.left is None else self.left}, "
                f"{'inf' if self.right is None else self.right}{rb}")


class Options(Constraint):
    """One of a set of values (strings case-insensitive; the canonical spelling returned).
    ``aliases``: old names still accepted, ``{old: value}``; the value is returned."""

    def __init__(self, *values: Any, aliases: dict[str, Any] | None = None):
        self.values = tuple(values[0]) if len(values) == 1 and isinstance(
            values[0], (tuple, list, set, frozenset)) else values
        self.aliases = dict(aliases or {})

    def __call__(self, name: str, value: Any) -> Any:
        v = one_of(name, value, self.values + tuple(self.aliases))
        return self.aliases.get(v, v)

    def __repr__(self) -> str:
        old = ", ".join(f"old name {k!r}: {v!r}" for k, v in self.aliases.items())
        return f"one of {list(self.values)}" + (f" ({old})" if old else "")


class Boolean(Constraint):
    """``True``/``False`` (also ``1``/``0`` and ``"true"``/``"false"`` from papermill)."""

    def __call__(self, name: str, value: Any) -> bool:
        return as_bool(name, value)

    def __repr__(self) -> str:
        return "a boolean"


class Check(Constraint):
    """A constraint written as a function ``fn(name, value) -> normalized value`` (for the
    few parameters a declarative constraint cannot express, e.g. a data source)."""

    def __init__(self, fn: Any, doc: str = ""):
        self.fn, self.doc = fn, doc or getattr(fn, "__doc__", "") or fn.__name__

    def __call__(self, name: str, value: Any) -> Any:
        return self.fn(name, value)

    def __repr__(self) -> str:
        return self.doc


class AnyOf(Constraint):
    """The first of several constraints that accepts the value (``None`` means "may be
    None"); the error lists what each would have accepted."""

    def __init__(self, *constraints: Any):
        self.constraints = constraints

    def __call__(self, name: str, value: Any) -> Any:
        errors = []
        for c in self.constraints:
            if c is None:
                if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
                    return None
                errors.append("None")
                continue
            try:
                return c(name, value)
            except ValueError as e:
                errors.append(str(e).removeprefix(f"{name} must be "))
        raise ValueError(f"{name} must be " + ", or ".join(dict.fromkeys(errors)))

    def __repr__(self) -> str:
        return " or ".join("None" if c is None else repr(c) for c in self.constraints)


def check(params: dict, constraints: dict[str, Any], defaults: dict | None = None, *,
          workload: str = "") -> dict:
    """Validate ``params`` against declared ``constraints`` and return the full, normalized
    parameter dict (``defaults`` filled in for what was not given).

    An unknown name raises ``ValueError`` listing the known ones (a typo in a papermill
    ``-p`` is caught, not ignored); a constraint of ``None`` takes the value as given."""
    known = dict(defaults or {})
    unknown = [k for k in params if k not in constraints and k not in known]
    if unknown:
        where = f" for {workload}" if workload else ""
        raise ValueError(f"unknown parameter{'s' if len(unknown) > 1 else ''}{where}: "
                         f"{', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(sorted(set(constraints) | set(known)))}")
    out = {**known, **params}
    for name, c in constraints.items():
        if name in out and c is not None:
            out[name] = c(name, out[name])
    return out
