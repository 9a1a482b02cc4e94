"""The look-ahead guard: every feature, built-in or yours, is checked before a run.

A feature's value at bar ``t`` may use bars ``<= t`` only. The guard computes every feature
over the first asset's bars (the run's own data: warm-up through ``end``), then, for each of
``CUTS`` cut points spread over those bars, perturbs every bar after the cut (open, high, low
and close multiplied by a random walk of factors, which keeps each bar valid, and volume by
random factors) and recomputes: the values at bars ``<= cut`` must not change (to
``RTOL``/``ATOL``: a causal filter computed by FFT may round differently). A feature that
fails is a ``ValueError`` naming it and the first bar where it looked ahead.

The cut points are fixed (spread evenly), and so are the perturbations (a fixed seed): the
guard gives the same verdict on every run. It costs ``CUTS + 1`` evaluations of the feature
set on one asset, each impl checking its own built-in code (the fast path its Numba kernels,
the reference its pandas features); ``res.timings["guard_s"]`` says what it took.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .features import FEATURES
from .featureset import Feature, call
from .nb import feature_matrix_nb
from .reference import features_pandas

CUTS = 8           # cut points checked per run
RTOL = 1e-9        # relative change allowed at bars <= the cut (rounding, not information)
ATOL = 1e-12
SEED = 20240917    # the perturbations' generator (fixed: the same verdict every run)

Block = tuple[list[str], Callable[..., np.ndarray]]   # (column names, f(o,h,l,c,v) -> (n, k))


def builtin_numba(open_, high, low, close, volume) -> np.ndarray:
    """The fast path's built-in features (``n x len(FEATURES)``)."""
    n = close.shape[0]
    F = np.empty((n, len(FEATURES)))
    feature_matrix_nb(high, low, close, volume, F, np.empty(n))
    return F


def builtin_pandas(open_, high, low, close, volume) -> np.ndarray:
    """The reference path's built-in features (its pandas code)."""
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                       "volume": volume})
    X, _ = features_pandas(df)
    return X.to_numpy(np.float64)


def blocks_of(features: Sequence[Feature], builtin: Callable[..., np.ndarray]) -> list[Block]:
    """The guard's work: one block for the selected built-ins (one call computes them all),
    one per user function."""
    out: list[Block] = []
    names = [f.name for f in features if f.builtin]
    if names:
        idx = [FEATURES.index(n) for n in names]
        out.append((names, lambda *a: builtin(*a)[:, idx]))
    for f in features:
        if not f.builtin:
            out.append(([f.name], lambda *a, f=f: call(f, *a)[:, None]))
    return out


def cut_points(n: int, cuts: int = CUTS) -> np.ndarray:
    """``cuts`` bars spread evenly over the series (the last possible cut is ``n - 2``)."""
    if n < 3:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.linspace(max(1, n // 10), n - 2, cuts).round().astype(np.int64))


def perturb(arrays: Sequence[np.ndarray], cut: int, rng: np.random.Generator
            ) -> list[np.ndarray]:
    """Copies of (open, high, low, close, volume) with every bar after ``cut`` changed."""
    o, h, lo, c, v = (np.array(a, dtype=np.float64, copy=True) for a in arrays)
    m = o.shape[0] - cut - 1
    if m > 0:
        walk = 1.05 * np.exp(np.cumsum(0.03 * rng.standard_normal(m)))
        for a in (o, h, lo, c):
            a[cut + 1:] *= walk
        v[cut + 1:] *= np.exp(0.5 * rng.standard_normal(m))
    return [o, h, lo, c, v]


def _first_change(base: np.ndarray, new: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first value that changed, else None (NaN == NaN)."""
    both_nan = np.isnan(base) & np.isnan(new)
    close = np.abs(base - new) <= ATOL + RTOL * np.abs(base)
    bad = ~(both_nan | close)
    if not bad.any():
        return None
    rows = np.flatnonzero(bad.any(axis=1))
    r = int(rows[0])
    return r, int(np.flatnonzero(bad[r])[0])


def check(features: Sequence[Feature], frame: pd.DataFrame,
          builtin: Callable[..., np.ndarray] = builtin_numba, cuts: int = CUTS) -> dict:
    """Raise ``ValueError`` if a feature looks ahead on ``frame`` (one asset's OHLCV bars);
    return what was checked (features, cut points, seconds)."""
    t0 = time.perf_counter()
    arrays = [np.ascontiguousarray(frame[c].to_numpy(np.float64))
              for c in ("open", "high", "low", "close", "volume")]
    n = arrays[0].shape[0]
    points = cut_points(n, cuts)
    failures: dict[str, tuple[int, int]] = {}       # name -> (first bar, cut)
    for names, fn in blocks_of(features, builtin):
        base = np.asarray(fn(*arrays), dtype=np.float64)
        for i, cut in enumerate(points):
            rng = np.random.default_rng([SEED, int(cut)])
            new = np.asarray(fn(*perturb(arrays, int(cut), rng)), dtype=np.float64)
            hit = _first_change(base[:cut + 1], new[:cut + 1])
            if hit is not None:
                bar, col = hit
                name = names[col]
                if name not in failures or bar < failures[name][0]:
                    failures[name] = (bar, int(cut))
    if failures:
        dates = frame.index

        def when(i: int) -> str:
            try:
                return f" ({pd.Timestamp(dates[i]):%Y-%m-%d})"
            except (TypeError, ValueError):
                return ""

        order = sorted(failures, key=lambda k: failures[k])
        parts = [f"{k!r} changed at bar {failures[k][0]}{when(failures[k][0])}, when the bars after "
                 f"bar {failures[k][1]}{when(failures[k][1])} were perturbed" for k in order]
        raise ValueError(
            f"features: {order[0]!r} looks ahead (the look-ahead guard: a feature's value at "
            f"bar t may use bars <= t only): " + "; ".join(parts))
    return {"features": [f.name for f in features], "cuts": points.tolist(), "bars": n,
            "seconds": time.perf_counter() - t0}
