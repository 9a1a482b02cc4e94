"""The walk-forward feature set and the pandas-facing indicator functions.

``sma``, ``ema``, ``rsi``, ``stddev``, ``zscore``, ``momentum``, ``volume_ratio`` and ``atr``
accept a Series or array and return the same kind; :func:`feature_matrix` builds the feature
set of one asset. The Numba kernels they call, and their exact definitions (TA-Lib's), are in
:mod:`qbt_lib.walkforward.nb`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..params import as_int
from .nb import (atr_nb, ema_nb, feature_matrix_nb, momentum_nb, rsi_nb, sma_nb, stddev_nb,
                 volume_ratio_nb, zscore_nb)

# The walk-forward feature set (spec: 1- and 5-day returns, SMA20/SMA50 - 1, RSI14, 20-day
# volatility of returns, 20-day z-score of close, momentum 5 and 20, 20-day volume ratio,
# ATR14 / close). Momentum is TA-Lib's MOM: a price difference, standardized per fold.
FEATURES = ("ret_1", "ret_5", "sma_20_50", "rsi_14", "vol_20", "zscore_20", "mom_5",
            "mom_20", "volume_ratio_20", "atr_14_close")
LOOKBACK = 50  # bars of history before the first row where every feature is defined


# --------------------------------------------------------------------------- wrappers
def _as_1d(x, name: str = "x") -> tuple[np.ndarray, pd.Index | None]:
    index = x.index if isinstance(x, pd.Series) else None
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    return a, index


def _wrap(out: np.ndarray, index: pd.Index | None, name: str):
    return pd.Series(out, index=index, name=name) if index is not None else out


def _window(n) -> int:
    return as_int("window", n, min=1)


def sma(x, window: int = 20):
    """Simple moving average (TA-Lib SMA)."""
    a, idx = _as_1d(x)
    return _wrap(sma_nb(a, _window(window), np.empty_like(a)), idx, f"sma_{window}")


def ema(x, window: int = 20):
    """Exponential moving average seeded with the SMA (TA-Lib EMA)."""
    a, idx = _as_1d(x)
    return _wrap(ema_nb(a, _window(window), np.empty_like(a)), idx, f"ema_{window}")


def rsi(x, window: int = 14):
    """Wilder's relative strength index (TA-Lib RSI)."""
    a, idx = _as_1d(x)
    return _wrap(rsi_nb(a, _window(window), np.empty_like(a)), idx, f"rsi_{window}")


def stddev(x, window: int = 20):
    """Rolling population standard deviation (TA-Lib STDDEV, nbdev=1)."""
    a, idx = _as_1d(x)
    return _wrap(stddev_nb(a, _window(window), np.empty_like(a)), idx, f"stddev_{window}")


def zscore(x, window: int = 20):
    """``(x - rolling mean) / rolling population std``."""
    a, idx = _as_1d(x)
    return _wrap(zscore_nb(a, _window(window), np.empty_like(a)), idx, f"zscore_{window}")


def momentum(x, window: int = 10):
    """``x[t] - x[t - window]`` (TA-Lib MOM)."""
    a, idx = _as_1d(x)
    return _wrap(momentum_nb(a, _window(window), np.empty_like(a)), idx, f"mom_{window}")


def volume_ratio(volume, window: int = 20):
    """Volume over its ``window``-bar simple moving average."""
    a, idx = _as_1d(volume, "volume")
    out = volume_ratio_nb(a, _window(window), np.empty_like(a))
    return _wrap(out, idx, f"volume_ratio_{window}")


def atr(high, low, close, window: int = 14):
    """Wilder's average true range (TA-Lib ATR)."""
    h, idx = _as_1d(high, "high")
    lo, _ = _as_1d(low, "low")
    c, _ = _as_1d(close, "close")
    if not (h.shape == lo.shape == c.shape):
        raise ValueError(f"high, low and close must have the same length, got "
                         f"{h.shape[0]}, {lo.shape[0]}, {c.shape[0]}")
    return _wrap(atr_nb(h, lo, c, _window(window), np.empty_like(c)), idx, f"atr_{window}")


def feature_matrix(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The walk-forward features and target (next-bar return) of one OHLCV frame."""
    cols = {c: np.ascontiguousarray(frame[c].to_numpy(dtype=np.float64))
            for c in ("high", "low", "close", "volume")}
    n = len(frame)
    F, y = feature_matrix_nb(cols["high"], cols["low"], cols["close"], cols["volume"],
                             np.empty((n, len(FEATURES))), np.empty(n))
    return (pd.DataFrame(F, index=frame.index, columns=list(FEATURES)),
            pd.Series(y, index=frame.index, name="target"))
