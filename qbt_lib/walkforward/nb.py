"""Numba kernels of walkforward: the indicators (single pass, TA-Lib's definitions) and a fold's
positions, pnl and metrics in one pass (:func:`backtest_nb`). Arrays in, arrays out.

Each ``*_nb`` kernel reads 1-D float64 arrays and fills a preallocated ``out`` of the same
length (and returns it), NaN where the indicator is not yet defined (its look-back), exactly
like TA-Lib: leading NaNs are skipped (the indicator starts at the first finite value), later
NaNs propagate.

Definitions (``n`` is the window, ``b`` the first non-NaN index):

- ``sma_nb``: mean of the last ``n`` values, first at ``b+n-1``. TA-Lib's running sum, same
  order of operations (so it equals ``talib.SMA`` bit for bit).
- ``ema_nb``: seeded with the SMA of the first ``n`` values at ``b+n-1``, then
  ``e = e * (1 - k) + x * k`` with ``k = 2 / (n + 1)`` (TA-Lib's default, not pandas' ``ewm``).
- ``rsi_nb``: Wilder's RSI, first at ``b+n``: average gain/loss seeded with the mean of the
  first ``n`` changes, then ``avg = avg * (n - 1) / n + change / n``;
  ``100 * gain / (gain + loss)``, 0 where ``gain + loss`` is below TA-Lib's epsilon 1e-14.
- ``stddev_nb``: population standard deviation over ``n`` values (TA-Lib's STDDEV with
  ``nbdev=1``). TA-Lib keeps running sums of ``x`` and ``x**2`` over the whole series, so on
  price levels it computes a small difference of large numbers and keeps the rounding error
  of the largest prices it has seen; pandas' rolling std (Welford with removals) drifts the
  same way. Measured against exact rational arithmetic on a 5,000-bar path falling from 109
  to 0.4: TA-Lib 1.6e-11, pandas 2.1e-7, this kernel 1.4e-14 (relative). It keeps running
  sums of ``x - K`` around a shift ``K`` re-anchored to the window mean every ``n`` bars.
- ``zscore_nb``: ``(x - mean) / std`` over ``n`` values (population std; 0 where std is 0).
- ``momentum_nb``: ``x[t] - x[t-n]`` (TA-Lib's MOM).
- ``volume_ratio_nb``: ``v / SMA(v, n)`` (1 where the mean volume is 0: no information).
- ``atr_nb``: Wilder's average true range; true range from ``b+1``, first ATR at ``b+n`` is
  the mean of the first ``n`` true ranges, then ``atr * (n - 1) / n + tr / n`` (TA-Lib's ATR).

TA-Lib equality: SMA, MOM and the volume ratio are bit-for-bit equal to TA-Lib; EMA, RSI and
ATR agree to ~1e-15 (the same recursions, written with one multiply-add per step); the std
and z-score agree wherever TA-Lib's own rounding allows (1e-13 on returns).

The pandas-facing wrappers (``sma``, ``ema``, ...) and the feature set are in
:mod:`qbt_lib.walkforward.features`; ``feature_matrix_nb`` fills that set's columns in its order.
"""
from __future__ import annotations

import numpy as np
from numba import njit

TA_EPSILON = 1e-14  # TA-Lib >= 0.6 TA_IS_ZERO threshold (the RSI zero test)
BARS_PER_YEAR = 252.0
N_METRICS = 8  # the order of config.METRICS


# --------------------------------------------------------------------------- kernels
# Kernels write into a preallocated ``out`` (numpy allocates large arrays on huge pages; an
# allocation inside Numba would pay a page fault per 4 KiB on every call) and return it.
# Recurrences are written as ``prev * a + x * b`` so the loop-carried dependency is a single
# multiply-add: that, not the arithmetic, bounds the speed of EMA, RSI and ATR.

@njit(cache=True)
def first_valid_nb(x):
    """Index of the first non-NaN value (``len(x)`` when there is none)."""
    for i in range(x.shape[0]):
        if x[i] == x[i]:
            return i
    return x.shape[0]


@njit(cache=True)
def _nan_head_nb(out, stop):
    for i in range(min(stop, out.shape[0])):
        out[i] = np.nan


@njit(cache=True, error_model="numpy")
def sma_nb(x, n, out):
    N = x.shape[0]
    b = first_valid_nb(x)
    start = b + n - 1
    _nan_head_nb(out, start)
    if start >= N:
        return out
    total = 0.0
    for i in range(b, start):
        total += x[i]
    trailing = b
    for i in range(start, N):
        # TA-Lib's INT_SMA: add the new value, read the sum, drop the oldest
        total += x[i]
        tmp = total
        total -= x[trailing]
        trailing += 1
        out[i] = tmp / n
    return out


@njit(cache=True, error_model="numpy")
def ema_nb(x, n, out):
    N = x.shape[0]
    b = first_valid_nb(x)
    start = b + n - 1
    _nan_head_nb(out, start)
    if start >= N:
        return out
    k = 2.0 / (n + 1)
    keep = 1.0 - k
    total = 0.0
    for i in range(b, start + 1):
        total += x[i]
    prev = total / n
    out[start] = prev
    for i in range(start + 1, N):
        prev = prev * keep + x[i] * k
        out[i] = prev
    return out


@njit(cache=True, error_model="numpy")
def rsi_nb(x, n, out):
    N = x.shape[0]
    b = first_valid_nb(x)
    start = b + n
    _nan_head_nb(out, start)
    if start >= N:
        return out
    gain = 0.0
    loss = 0.0
    for i in range(b + 1, start + 1):
        d = x[i] - x[i - 1]
        if d < 0:
            loss -= d
        else:
            gain += d
    loss /= n
    gain /= n
    s = gain + loss
    out[start] = 100.0 * (gain / s) if not (-TA_EPSILON < s < TA_EPSILON) else 0.0
    keep = (n - 1) / n
    w = 1.0 / n
    for i in range(start + 1, N):
        d = x[i] - x[i - 1]
        # branch-free: a falling bar adds 0 to the gain and -d to the loss
        gain = gain * keep + max(d, 0.0) * w
        loss = loss * keep + max(-d, 0.0) * w
        s = gain + loss
        out[i] = 100.0 * (gain / s) if not (-TA_EPSILON < s < TA_EPSILON) else 0.0
    return out


@njit(cache=True, error_model="numpy")
def _rolling_moments_nb(x, n, want_z, out):
    """Population std (or z-score when ``want_z``) over ``n`` values in one pass.

    Running sums of ``d = x - K`` and ``d**2`` where the shift ``K`` is re-anchored to the
    window mean every ``n`` outputs: rounding error never accumulates over more than ``n``
    updates and the variance comes from deviations of the size of the std (no cancellation
    between ``E[x**2]`` and ``E[x]**2`` as in TA-Lib's STDDEV)."""
    N = x.shape[0]
    b = first_valid_nb(x)
    start = b + n - 1
    _nan_head_nb(out, start)
    if start >= N:
        return out
    inv = 1.0 / n
    # views so that every index below is a non-negative loop counter (no wraparound code):
    # output ow[k] = out[start + k] is the window xw[k : k + n] = x[b + k : b + k + n]
    xw = x[b:]
    ow = out[start:]
    M = ow.shape[0]
    k = 0
    while k < M:
        total = 0.0
        for j in range(k, k + n):
            total += xw[j]
        shift = total / n
        s1 = 0.0
        s2 = 0.0
        for j in range(k, k + n):
            d = xw[j] - shift
            s1 += d
            s2 += d * d
        stop = min(k + n, M)
        for q in range(k, stop):
            if q > k:
                dn = xw[q + n - 1] - shift
                do = xw[q - 1] - shift
                s1 += dn - do
                s2 += dn * dn - do * do
            m = s1 * inv
            var = s2 * inv - m * m
            sd = np.sqrt(var) if var > 0.0 else 0.0
            if want_z:
                ow[q] = (xw[q + n - 1] - shift - m) / sd if sd > 0.0 else 0.0
            else:
                ow[q] = sd
        k = stop
    return out


@njit(cache=True, error_model="numpy")
def stddev_nb(x, n, out):
    return _rolling_moments_nb(x, n, False, out)


@njit(cache=True, error_model="numpy")
def zscore_nb(x, n, out):
    return _rolling_moments_nb(x, n, True, out)


@njit(cache=True, error_model="numpy")
def momentum_nb(x, n, out):
    N = x.shape[0]
    b = first_valid_nb(x)
    _nan_head_nb(out, b + n)
    if b + n >= N:
        return out
    # slices instead of x[i - n]: no negative-index check, so the loop vectorizes
    new = x[b + n:]
    old = x[b:N - n]
    o = out[b + n:]
    for i in range(new.shape[0]):
        o[i] = new[i] - old[i]
    return out


@njit(cache=True, error_model="numpy")
def volume_ratio_nb(v, n, out):
    sma_nb(v, n, out)
    for i in range(v.shape[0]):
        m = out[i]
        if m == m:
            out[i] = v[i] / m if m != 0.0 else 1.0
    return out


@njit(cache=True, error_model="numpy")
def _true_range(high, low, close, i):
    """TA-Lib's TRANGE at bar ``i >= 1``: ``max(high, prev close) - min(low, prev close)``."""
    h = high[i]
    lo = low[i]
    c = close[i - 1]
    return (h if h > c else c) - (lo if lo < c else c)


@njit(cache=True, error_model="numpy")
def atr_nb(high, low, close, n, out):
    N = close.shape[0]
    b = max(first_valid_nb(high), first_valid_nb(low), first_valid_nb(close))
    start = b + n
    _nan_head_nb(out, start)
    if start >= N:
        return out
    total = 0.0
    for i in range(b + 1, start + 1):
        total += _true_range(high, low, close, i)
    prev = total / n
    out[start] = prev
    keep = (n - 1) / n
    w = 1.0 / n
    for i in range(start + 1, N):
        prev = prev * keep + _true_range(high, low, close, i) * w
        out[i] = prev
    return out


@njit(cache=True, error_model="numpy")
def feature_matrix_nb(high, low, close, volume, F, target):
    """Fill ``F`` (``n_bars x len(FEATURES)``) with the walk-forward features of one asset
    and ``target`` with the next-bar return (NaN on the last bar). Row ``t`` uses bars
    ``<= t`` only."""
    N = close.shape[0]
    ret1 = np.empty(N)
    for i in range(N):
        ret1[i] = close[i] / close[i - 1] - 1.0 if i >= 1 else np.nan
        F[i, 0] = ret1[i]
        F[i, 1] = close[i] / close[i - 5] - 1.0 if i >= 5 else np.nan
        target[i] = close[i + 1] / close[i] - 1.0 if i + 1 < N else np.nan
    a = np.empty(N)
    c = np.empty(N)
    sma_nb(close, 20, a)
    sma_nb(close, 50, c)
    for i in range(N):
        F[i, 2] = a[i] / c[i] - 1.0
    F[:, 3] = rsi_nb(close, 14, a)
    F[:, 4] = stddev_nb(ret1, 20, a)
    F[:, 5] = zscore_nb(close, 20, a)
    F[:, 6] = momentum_nb(close, 5, a)
    F[:, 7] = momentum_nb(close, 20, a)
    F[:, 8] = volume_ratio_nb(volume, 20, a)
    atr_nb(high, low, close, 14, a)
    for i in range(N):
        F[i, 9] = a[i] / close[i]
    return F, target


# --------------------------------------------------------------------------- backtest
@njit(cache=True, error_model="numpy")
def backtest_nb(prediction, ret, threshold, long_only, cost, position, pnl, metrics):
    """Trade one fold's test window.

    ``prediction[i]`` is made at the close of the bar before test bar ``i``; ``ret[i]`` is
    test bar ``i``'s return. Position: +1 above ``threshold``, -1 below ``-threshold`` (0 when
    ``long_only``), else 0; ``pnl = position * ret - cost * |position change|``, the fold
    starting flat. Fills ``position``, ``pnl`` and ``metrics`` (total return, annualised
    return, annualised vol, Sharpe, max drawdown, hit rate, trades, turnover)."""
    T = prediction.shape[0]
    prev = 0.0
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
