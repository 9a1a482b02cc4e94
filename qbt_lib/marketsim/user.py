"""Own strategies: a user function over forecasts, bands and history that returns positions,
run beside the seven built-ins with the same fee, metric and ranking code.

A strategy is any function (plain Python/NumPy, or a Numba ``@njit`` function)::

    def my_strategy(forecast, band, history) -> positions

over one series of ``n`` consecutive trading days (a simulation's traded days, or the days of
the out-of-sample walk):

* ``forecast``: ``(n, 3)`` float64, the point forecasts of each day's close, high and low
  returns vs the previous close (made from the bars before that day only);
* ``band``: ``(n, 3)`` float64, the 40th-60th percentile width of each forecast's draws;
* ``history``: ``(n, 3)`` float64, the actual close, high and low returns of each day --
  row ``t`` is known only after day ``t``'s close (NaN for a day not yet traded);
* returns ``n`` positions in ``{-1, 0, 1}``: position ``t`` is held from the previous close
  to day ``t``'s close, so it may use ``forecast[:t+1]``, ``band[:t+1]`` and
  ``history[:t]`` only.

Day ``t`` earns ``pos[t] * history[t, 0]`` less ``fee * |pos[t] - pos[t-1]|`` (the series
starts flat), scored by the metric kernel of the built-ins; a short on a long-only (crypto)
symbol is taken flat, as for the built-ins. A Numba function is called as compiled code (one
call per series, ~1 us); a plain function is called from Python.

**Look-ahead guard.** Before a run every user strategy is called on a seeded 64-day sample
and again with the data after each day ``t`` perturbed (forecasts and bands of days after
``t``, outcomes of days ``t`` on; once with fresh draws, once sign-flipped): a position at
or before ``t`` that changes is a ``ValueError`` naming the strategy and the first such day.

Registering: ``marketsim.analyze(..., user_strategies={"name": fn})`` (or a list of
functions, named after them, or ``"module:function"`` import paths, which a papermill
parameter can carry). They follow the built-ins in the selection order (ties go to the
earlier strategy).
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
from numba.extending import is_jitted

from . import oos_nb
from .enums import SHARPE_MIN_STD, STRATEGIES

GUARD_DAYS = 64
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class UserStrategy:
    """A registered user strategy: its name in the tables and the function."""
    name: str
    fn: Callable

    @property
    def numba(self) -> bool:
        """Whether the function is a Numba-compiled (``@njit``) function."""
        return bool(is_jitted(self.fn))

    def __repr__(self) -> str:
        kind = "njit" if self.numba else "python"
        return f"UserStrategy({self.name!r}, {kind})"


def _load(spec: str) -> Callable:
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        raise ValueError(f"user_strategies: {spec!r} is not a 'module:function' import path")
    try:
        obj = importlib.import_module(mod.strip())
        for part in attr.strip().split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"user_strategies: cannot import {spec!r}: {e}") from None
    return obj


def _fn_name(fn: Any) -> str:
    f = getattr(fn, "py_func", fn)
    return getattr(f, "__name__", type(fn).__name__)


def resolve(spec: Any) -> tuple[UserStrategy, ...]:
    """``user_strategies`` -> a tuple of :class:`UserStrategy`: ``None``; a function; an
    import path ``"module:function"`` (several comma-separated); a list of those; or a dict
    ``{name: function or path}``. Names must be identifiers, unique and not a built-in's."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none")):
        return ()
    if isinstance(spec, str):
        spec = [s for s in (p.strip() for p in spec.split(",")) if s]
    if isinstance(spec, Mapping):
        items = [(str(k), v) for k, v in spec.items()]
    elif callable(spec):
        items = [(None, spec)]
    elif isinstance(spec, (list, tuple)):
        items = [(None, v) for v in spec]
    else:
        raise ValueError(f"user_strategies must be a function, a 'module:function' path, a list "
                         f"or a dict {{name: function}}, got {spec!r}")
    out: list[UserStrategy] = []
    for name, fn in items:
        if isinstance(fn, str):
            fn = _load(fn)
        if not callable(fn):
            raise ValueError(f"user_strategies: {fn!r} is not callable")
        name = _fn_name(fn) if name is None else name
        if not _NAME.match(name):
            raise ValueError(f"user_strategies: name {name!r} must be an identifier")
        if name in STRATEGIES:
            raise ValueError(f"user_strategies: {name!r} is a built-in strategy's name")
        if any(s.name == name for s in out):
            raise ValueError(f"user_strategies: {name!r} is given twice")
        out.append(UserStrategy(name, fn))
    return tuple(out)


# --------------------------------------------------------------------------- calling
def _call(s: UserStrategy, forecast, band, history) -> np.ndarray:
    try:
        out = s.fn(forecast, band, history)
    except Exception as e:  # noqa: BLE001 -- any failure of user code, named
        raise ValueError(f"user strategy {s.name!r} failed: {type(e).__name__}: {e}") from e
    return np.asarray(out)


def _checked(s: UserStrategy, pos: np.ndarray, n: int, where: str) -> np.ndarray:
    """Positions as int8 after checking shape and values (-1, 0, 1)."""
    if pos.shape != (n,):
        raise ValueError(f"user strategy {s.name!r} returned positions of shape {pos.shape} "
                         f"{where}, expected ({n},)")
    ok = (pos == -1) | (pos == 0) | (pos == 1)
    if not ok.all():
        t = int(np.argmin(ok))
        raise ValueError(f"user strategy {s.name!r}: positions must be -1, 0 or 1; day {t} "
                         f"{where} is {pos[t]!r}")
    return pos.astype(np.int8)


def positions(s: UserStrategy, forecast, band, history, long_only: bool,
              where: str = "") -> np.ndarray:
    """Checked int8 positions of one series (shorts flat when ``long_only``)."""
    p = _checked(s, _call(s, forecast, band, history), forecast.shape[0], where)
    if long_only:
        p[p < 0] = 0
    return p


def window_positions(s: UserStrategy, pred, band, act, long_only: bool) -> np.ndarray:
    """``(N, D)`` int8 positions of every window (``pred``/``band``/``act``: ``(N, D, 3)``)."""
    N, D = pred.shape[:2]
    out = np.empty((N, D), dtype=np.float64)
    for k in range(N):
        p = _call(s, pred[k], band[k], act[k])
        if p.shape != (D,):
            _checked(s, p, D, f"in simulation {k}")
        out[k] = p
    bad = ~((out == -1) | (out == 0) | (out == 1))
    if bad.any():
        k, t = np.argwhere(bad)[0]
        _checked(s, out[k], D, f"in simulation {k}")
    p = out.astype(np.int8)
    if long_only:
        p[p < 0] = 0
    return p


# --------------------------------------------------------------------------- look-ahead guard
def _guard_sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """Plausible daily forecasts/bands/outcomes (close inside [low, high])."""
    def ohl(scale):
        c = rng.normal(0.0, scale, n)
        h = np.maximum(c, 0.0) + np.abs(rng.normal(0.0, scale / 2, n))
        l = np.minimum(c, 0.0) - np.abs(rng.normal(0.0, scale / 2, n))
        return np.column_stack([c, h, l])
    return ohl(0.006), np.abs(rng.normal(0.0, 0.004, (n, 3))), ohl(0.015)


def check_lookahead(s: UserStrategy, days: int = GUARD_DAYS, seed: int = 0) -> None:
    """Raise ``ValueError`` naming ``s`` and the first day whose position changed when the
    data after it was perturbed (see the module docstring). Checks every cut point of a
    seeded ``days``-day sample, twice (fresh draws, then sign-flipped and scaled)."""
    rng = np.random.default_rng([seed, 1515])
    f, b, h = _guard_sample(rng, days)
    base = positions(s, f, b, h, False, "on the look-ahead guard's sample")
    for t in range(days):
        fresh = _guard_sample(rng, days)
        for variant in range(2):
            f2, b2, h2 = f.copy(), b.copy(), h.copy()
            if variant == 0:
                f2[t + 1:], b2[t + 1:], h2[t:] = fresh[0][t + 1:], fresh[1][t + 1:], fresh[2][t:]
            else:
                f2[t + 1:] *= -1.7
                b2[t + 1:] *= 2.3
                h2[t:] *= -1.7
            p = positions(s, f2, b2, h2, False, "on the look-ahead guard's sample")
            changed = np.nonzero(p[:t + 1] != base[:t + 1])[0]
            if changed.size:
                d = int(changed[0])
                raise ValueError(
                    f"user strategy {s.name!r} looks ahead: its position on day {d} (of the "
                    f"guard's {days}-day sample) changed when data after day {d} was "
                    f"perturbed (forecasts and bands of later days, outcomes from day {d} "
                    f"on); position t may use forecast[:t+1], band[:t+1], history[:t] only")


# --------------------------------------------------------------------------- windows
def evaluate_windows(strategies, pred, band, act, fee: float, ann: float, long_only: bool
                     ) -> dict:
    """User strategies on every window of one symbol (fast path): positions by the user's
    function, net returns and metrics by a Numba kernel. ``pred/band/act``: ``(N, D, 3)``.
    Returns ``metrics (N, KU, 5)``, ``pos``/``net (N, KU, D)``."""
    N, D = pred.shape[:2]
    KU = len(strategies)
    pos = np.empty((N, KU, D), dtype=np.int8)
    for a, s in enumerate(strategies):
        pos[:, a] = window_positions(s, pred, band, act, long_only)
    metrics = np.empty((N, KU, 5))
    net = np.empty((N, KU, D))
    oos_nb.close_to_close_windows_nb(pos, np.ascontiguousarray(act[:, :, 0]), float(fee),
                                     float(ann), SHARPE_MIN_STD, metrics, net)
    return {"metrics": metrics, "pos": pos, "net": net}


def append(arrays: dict, extra: dict) -> dict:
    """The built-ins' arrays with the user strategies' appended on the strategy axis."""
    out = dict(arrays)
    for k in ("metrics", "pos", "net"):
        out[k] = np.concatenate([arrays[k], extra[k]], axis=1)  # (N, K, ...) per symbol
    return out
