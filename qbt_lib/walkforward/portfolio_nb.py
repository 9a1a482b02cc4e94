"""Numba kernels of the portfolio results (the fast path; :mod:`.portfolio` holds the pandas
reference of each and the definitions)."""
from __future__ import annotations

import numpy as np
from numba import njit

BARS_PER_YEAR = 252.0
N_CURVE = 8  # the order of portfolio.CURVE_METRICS


@njit(cache=True, error_model="numpy")
def curve_stats_nb(r, out):
    """Metrics of a curve of per-bar returns ``r`` in one pass: total return, annualised
    return, annualised vol, Sharpe, Sortino, Calmar, max drawdown, longest drawdown in bars
    (bars under a previous peak, the start at 1 counting as a peak)."""
    T = r.shape[0]
    growth = 1.0
    peak = 1.0
    mdd = 0.0
    run = 0
    longest = 0
    total = 0.0
    down = 0.0
    for i in range(T):
        x = r[i]
        total += x
        if x < 0.0:
            down += x * x
        growth *= 1.0 + x
        if growth >= peak:
            peak = growth
            run = 0
        else:
            run += 1
            if run > longest:
                longest = run
            dd = growth / peak - 1.0
            if dd < mdd:
                mdd = dd
    mean = total / T
    ss = 0.0
    for i in range(T):
        ss += (r[i] - mean) ** 2
    sd = np.sqrt(ss / (T - 1)) if T > 1 else 0.0
    dsd = np.sqrt(down / T)
    ann = growth ** (BARS_PER_YEAR / T) - 1.0 if growth > 0.0 else -1.0
    out[0] = growth - 1.0
    out[1] = ann
    out[2] = sd * np.sqrt(BARS_PER_YEAR)
    out[3] = mean / sd * np.sqrt(BARS_PER_YEAR) if sd > 0.0 else 0.0
    out[4] = mean / dsd * np.sqrt(BARS_PER_YEAR) if dsd > 0.0 else np.nan
    out[5] = ann / -mdd if mdd < 0.0 else np.nan
    out[6] = mdd
    out[7] = longest
    return out


@njit(cache=True)
def runs_nb(position, starts, ends):
    """Maximal runs of one non-zero position: fills ``starts``/``ends`` (inclusive bar
    indices) and returns how many there are."""
    k = 0
    T = position.shape[0]
    i = 0
    while i < T:
        p = position[i]
        if p == 0.0:
            i += 1
            continue
        j = i
        while j + 1 < T and position[j + 1] == p:
            j += 1
        starts[k] = i
        ends[k] = j
        k += 1
        i = j + 1
    return k


@njit(cache=True, error_model="numpy")
def run_growth_nb(position, ret, starts, ends, n, out):
    """Gross growth ``prod(1 + position * ret)`` over each run."""
    for k in range(n):
        g = 1.0
        for i in range(starts[k], ends[k] + 1):
            g *= 1.0 + position[i] * ret[i]
        out[k] = g
    return out
