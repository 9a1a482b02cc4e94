"""``features=``: the built-in names and your own functions.

``features=None`` is the ten built-ins (``FEATURES``). Otherwise a list whose entries are

- a built-in name (``"rsi_14"``);
- a function ``f(open, high, low, close, volume) -> array`` of one value per bar, plain NumPy
  or a Numba ``@njit`` function, named by its ``__name__``;
- or a dict ``{name: function or built-in name}`` (to name a lambda or a ``partial``).

A function gets fresh float64 NumPy arrays of the asset's bars (the 250 warm-up bars before
``start`` through ``end``) and returns one float per bar, NaN while it is undefined (its
warm-up: training rows with a NaN are dropped; a NaN in a test row is an error naming the
feature). Row ``t`` must use bars ``<= t`` only: every feature passes the look-ahead guard
(:mod:`.guard`) before a run. The model sees the columns in the order given here.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from .features import FEATURES


@dataclasses.dataclass(frozen=True)
class Feature:
    """One column of the feature matrix: a built-in (``func`` None) or a user function."""
    name: str
    func: Callable | None = None

    @property
    def builtin(self) -> bool:
        return self.func is None


BUILTIN = tuple(Feature(n) for n in FEATURES)


def _entry(name: str | None, value: Any) -> Feature:
    if isinstance(value, str):
        if value not in FEATURES:
            raise ValueError(f"features: unknown feature {value!r}; the built-ins are "
                             f"{list(FEATURES)}, or give a function f(open, high, low, close, "
                             "volume) -> array")
        if name is not None and name != value:
            raise ValueError(f"features: the built-in {value!r} cannot be renamed {name!r}")
        return Feature(value)
    if callable(value):
        if name is None:
            name = getattr(value, "__name__", None)
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"features: {value!r} has no usable name; give it one with "
                                 "a dict, features={'my_feature': f}")
        if name in FEATURES:
            raise ValueError(f"features: {name!r} is a built-in's name; name your function "
                             "differently")
        return Feature(str(name), value)
    raise ValueError(f"features: each entry must be a built-in name or a function "
                     f"f(open, high, low, close, volume) -> array, got {value!r}")


def resolve(features: Any) -> tuple[Feature, ...]:
    """The run's feature columns from what the user typed (``ValueError`` naming the entry)."""
    if features is None:
        return BUILTIN
    if isinstance(features, (str, dict)) or callable(features):
        features = [features]
    if isinstance(features, np.ndarray):
        features = features.tolist()
    if not isinstance(features, (list, tuple)):
        raise ValueError(f"features must be None, a list of built-in names and functions or a "
                         f"dict, got {type(features).__name__}")
    out: list[Feature] = []
    for item in features:
        if isinstance(item, dict):
            out.extend(_entry(str(k), v) for k, v in item.items())
        else:
            out.append(_entry(None, item))
    if not out:
        raise ValueError("features: give at least one feature (None: the ten built-ins)")
    names = [f.name for f in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"features: {dup} given more than once")
    return tuple(out)


def call(feature: Feature, open_, high, low, close, volume) -> np.ndarray:
    """A user feature's values over one asset's bars, checked (``ValueError`` naming it)."""
    n = close.shape[0]
    args = [np.array(a, dtype=np.float64, copy=True) for a in (open_, high, low, close, volume)]
    try:
        out = feature.func(*args)
    except Exception as e:  # noqa: BLE001  (the user's code: say which feature failed)
        raise ValueError(f"feature {feature.name!r} failed on {n} bars: "
                         f"{type(e).__name__}: {e}") from e
    try:
        v = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"feature {feature.name!r} must return numbers, got "
                         f"{type(out).__name__}") from None
    if v.shape != (n,):
        raise ValueError(f"feature {feature.name!r} returned shape {v.shape}; it must return "
                         f"one value per bar, shape ({n},)")
    return np.ascontiguousarray(v)
