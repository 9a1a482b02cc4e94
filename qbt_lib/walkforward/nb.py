"""Numba kernels of the fast path: a fold's positions, pnl and metrics in one pass.

The indicator kernels live in :mod:`qbt_lib.walkforward.features`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

BARS_PER_YEAR = 252.0
N_METRICS = 8  # the order of config.METRICS


@njit(cache=True, error_model="numpy")
def backtest_nb(prediction, ret, threshold, long_only, cost, start, position, pnl, metrics):
    """Trade one fold's test window.

    ``prediction[i]`` is made at the close of the bar before test bar ``i``; ``ret[i]`` is
    test bar ``i``'s return. Position: +1 above ``threshold``, -1 below ``-threshold`` (0 when
    ``long_only``), else 0; ``pnl = position * ret - cost * |position change|``, the fold
    starting from position ``start`` (what the stitched curve held on the bar before: the
    position carries across fold boundaries). Fills ``position``, ``pnl`` and ``metrics`` (total return, annualised
    return, annualised vol, Sharpe, max drawdown, hit rate, trades, turnover)."""
    T = prediction.shape[0]
    prev = start
    growth = 1.0
    peak = 1.0
    mdd = 0.0
    total = 0.0
    hits = 0
    exposed = 0
    trades = 0
    turnover = 0.0
    for i in range(T):
        p = 0.0
        if prediction[i] > threshold:
            p = 1.0
        elif prediction[i] < -threshold and not long_only:
            p = -1.0
        dp = abs(p - prev)
        x = p * ret[i] - cost * dp
        position[i] = p
        pnl[i] = x
        total += x
        growth *= 1.0 + x
        if growth > peak:
            peak = growth
        dd = growth / peak - 1.0
        if dd < mdd:
            mdd = dd
        if p != 0.0:
            exposed += 1
            if p * ret[i] > 0.0:
                hits += 1
        if dp != 0.0:
            trades += 1
        turnover += dp
        prev = p
    mean = total / T
    ss = 0.0
    for i in range(T):
        ss += (pnl[i] - mean) ** 2
    sd = np.sqrt(ss / (T - 1)) if T > 1 else 0.0
    metrics[0] = growth - 1.0
    metrics[1] = growth ** (BARS_PER_YEAR / T) - 1.0 if growth > 0.0 else -1.0
    metrics[2] = sd * np.sqrt(BARS_PER_YEAR)
    metrics[3] = mean / sd * np.sqrt(BARS_PER_YEAR) if sd > 0.0 else 0.0
    metrics[4] = mdd
    metrics[5] = hits / exposed if exposed > 0 else np.nan
    metrics[6] = trades
    metrics[7] = turnover
    return metrics
