"""The labels a sample can carry (``label=``), per key, in each implementation.

* ``"forward_return"`` (the default, today's): ``log(close[idx-1+horizon] / close[idx-1])``,
  the ``forward_return`` column; no ``label`` column is added.
* ``"sign"``: the forward return's sign with a dead zone, ``+1`` if ``fr > label_threshold``,
  ``-1`` if ``fr < -label_threshold``, else ``0`` (``label_threshold`` in log-return units).
* ``"triple_barrier"`` (López de Prado, *Advances in Financial Machine Learning*, ch. 3):
  from the entry close ``close[idx-1]``, an upper barrier at ``+take_profit * sigma`` and a
  lower one at ``-stop_loss * sigma`` on the simple return ``close[t]/close[idx-1] - 1``,
  and a time barrier ``horizon`` bars on: ``+1`` if the upper is touched first, ``-1`` the
  lower, ``0`` the time barrier. ``sigma`` is the sample standard deviation of the last
  ``vol_window`` daily simple returns *inside the window* (the book's ``getDailyVol`` uses
  simple returns too), so the label uses only information the sample's input holds. A
  multiplier of 0 disables that barrier, as in the book's ``pt_sl``.

Both class labels are an ``int8`` column ``label`` next to ``forward_return``. A label depends
only on the key (symbol, idx), so it is computed once per key -- by the Numba kernels
(:mod:`.nb`), the array code below (NumPy, or CuPy on the device) or the per-sample reference
(:mod:`.reference`) -- and gathered per sample like every per-key column. Only divisions,
subtractions, products, ``sqrt`` and comparisons (all correctly rounded IEEE operations, in
one fixed order) enter the class labels, so every implementation gives bitwise the same.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .nb import sign_label_nb, triple_barrier_nb

LABELS = ("forward_return", "sign", "triple_barrier")


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """What a sample's label is (see the module docstring)."""
    kind: str = "forward_return"
    threshold: float = 0.0       # sign: the dead zone, in log-return units
    take_profit: float = 1.0     # triple_barrier: upper barrier, in units of sigma (0: none)
    stop_loss: float = 1.0       # triple_barrier: lower barrier, in units of sigma (0: none)
    vol_window: int = 20         # triple_barrier: daily returns in sigma (<= lookback - 1)

    @property
    def has_column(self) -> bool:
        """Whether samples carry a ``label`` column (the class labels do)."""
        return self.kind != "forward_return"

    def as_dict(self) -> dict:
        if self.kind == "sign":
            return {"kind": "sign", "threshold": self.threshold}
        if self.kind == "triple_barrier":
            return {"kind": "triple_barrier", "take_profit": self.take_profit,
                    "stop_loss": self.stop_loss, "vol_window": self.vol_window}
        return {"kind": self.kind}


DEFAULT = LabelSpec()


def label_spec(kind: str = "forward_return", threshold: float = 0.0, take_profit: float = 1.0,
               stop_loss: float = 1.0, vol_window: int = 20, lookback: int | None = None
               ) -> LabelSpec:
    """A checked :class:`LabelSpec`; errors name the notebook parameter."""
    if kind not in LABELS:
        raise ValueError(f"label must be one of {list(LABELS)}, got {kind!r}")
    for name, v in (("label_threshold", threshold), ("take_profit", take_profit),
                    ("stop_loss", stop_loss)):
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if kind == "triple_barrier":
        if vol_window < 2:
            raise ValueError(f"vol_window must be >= 2 (a standard deviation), got {vol_window}")
        if lookback is not None and vol_window > lookback - 1:
            raise ValueError(f"vol_window={vol_window} needs lookback >= vol_window + 1 (the "
                             f"returns are taken inside the window; lookback={lookback})")
        if take_profit == 0 and stop_loss == 0:
            raise ValueError("take_profit and stop_loss are both 0: every label would be 0 "
                             "(the time barrier); set one > 0")
    return LabelSpec(kind, float(threshold), float(take_profit), float(stop_loss),
                     int(vol_window))


# --------------------------------------------------------------------------- per key
def classes_numba(close: np.ndarray, bar: np.ndarray, forward_return: np.ndarray,
                  horizon: int, spec: LabelSpec) -> np.ndarray:
    out = np.empty(len(bar), np.int8)
    if spec.kind == "sign":
        return sign_label_nb(forward_return, spec.threshold, out)
    return triple_barrier_nb(close, bar, horizon, spec.vol_window, spec.take_profit,
                             spec.stop_loss, out)


def classes_xp(xp: Any, close: Any, bar: Any, forward_return: Any, horizon: int,
               spec: LabelSpec) -> Any:
    """The class label of every key, vectorized over keys (NumPy or CuPy), the arithmetic
    of :func:`.nb.triple_barrier_nb` in the same order (loops over the few bars only)."""
    if spec.kind == "sign":
        one = xp.ones(forward_return.shape, xp.int8)
        return xp.where(forward_return > spec.threshold, one,
                        xp.where(forward_return < -spec.threshold, -one, 0 * one))
    e = bar - 1
    w = spec.vol_window
    s = xp.zeros(e.shape, xp.float64)
    for t in range(-w + 1, 1):
        s += close[e + t] / close[e + t - 1] - 1.0
    mean = s / w
    ss = xp.zeros(e.shape, xp.float64)
    for t in range(-w + 1, 1):
        d = (close[e + t] / close[e + t - 1] - 1.0) - mean
        ss += d * d
    sigma = xp.sqrt(ss / (w - 1))
    upper = spec.take_profit * sigma
    lower = -(spec.stop_loss * sigma)
    lab = xp.zeros(e.shape, xp.int8)
    open_ = xp.ones(e.shape, bool)          # no barrier touched yet
    c0 = close[e]
    for j in range(1, horizon + 1):
        ret = close[e + j] / c0 - 1.0
        up = open_ & (ret > 0.0) & (ret >= upper) if spec.take_profit > 0 else xp.zeros_like(open_)
        dn = (open_ & ~up & (ret < 0.0) & (ret <= lower) if spec.stop_loss > 0
              else xp.zeros_like(open_))
        lab[up] = 1
        lab[dn] = -1
        open_ &= ~(up | dn)
        if not bool(open_.any()):
            break
    return lab


def key_classes(space: Any, spec: LabelSpec, impl: str) -> np.ndarray:
    """The (K,) int8 class label of every key of ``space`` computed by ``impl``'s kernel
    (``numba``; ``numpy``; ``cupy``: the array code on the device, copied back;
    ``reference``: one Python iteration per key), cached on the space object."""
    cache = space.__dict__.setdefault("_label_cache", {})
    kernel = {"reference": "reference", "numba": "numba", "cupy": "cupy"}.get(impl, "numpy")
    got = cache.get((spec, kernel))
    if got is not None:
        return got
    close = np.asarray(space.prices)[3]
    bar = np.asarray(space.key_start) + space.lookback
    fr = np.asarray(space.key_label)
    if kernel == "numba":
        got = classes_numba(close, bar, fr, space.horizon, spec)
    elif kernel == "cupy":
        import cupy as cp
        got = cp.asnumpy(classes_xp(cp, cp.asarray(close), cp.asarray(bar), cp.asarray(fr),
                                    space.horizon, spec))
    elif kernel == "reference":
        got = np.array([label_one(close, int(b), space.horizon, spec) for b in bar], np.int8)
    else:
        got = classes_xp(np, close, bar, fr, space.horizon, spec)
    got.setflags(write=False)
    cache[(spec, kernel)] = got
    return got


# --------------------------------------------------------------------------- the reference
def label_one(close: Any, bar: int, horizon: int, spec: LabelSpec) -> int:
    """One sample's class label from the raw closes, plainly (the reference)."""
    e = bar - 1
    if spec.kind == "sign":
        fr = float(np.log(close[e + horizon] / close[e]))
        return 1 if fr > spec.threshold else (-1 if fr < -spec.threshold else 0)
    rets = [float(close[t]) / float(close[t - 1]) - 1.0
            for t in range(e - spec.vol_window + 1, e + 1)]
    mean = 0.0
    for r in rets:
        mean += r
    mean /= spec.vol_window
    ss = 0.0
    for r in rets:
        ss += (r - mean) * (r - mean)
    sigma = float(np.sqrt(ss / (spec.vol_window - 1)))
    for j in range(1, horizon + 1):
        ret = float(close[e + j]) / float(close[e]) - 1.0
        if spec.take_profit > 0 and ret > 0 and ret >= spec.take_profit * sigma:
            return 1
        if spec.stop_loss > 0 and ret < 0 and ret <= -(spec.stop_loss * sigma):
            return -1
    return 0
