"""Numba kernels of the marketsim workload: arrays and explicit keys in, preallocated arrays out.

Every kernel is ``@njit(nogil=True, cache=True)``: the GIL is released while it runs, so one
thread per symbol really runs in parallel and all threads share the same compiled code (the
seed's "one model shared by the threads"), and the compiled code is cached on disk so a fresh
process loads it instead of compiling (``warmup()`` in ``__init__`` compiles/loads them all).

Layout of one symbol (the last ``context + simulations + eval_days`` bars of its history):

* ``y``: ``(3, n_bars)`` returns of close, high, low vs the previous close; ``y[:, 0]`` is NaN.
* forecast day ``di`` (``0 .. n_days-1``) is bar ``first_day + di``; simulation ``k``, window
  position ``j`` forecasts ``di = n_days - 1 - k - (eval_days - 1) + j`` from the ``context``
  returns before that bar only (no look-ahead).
* The AR fit of a day does not depend on the simulation, so it is done once per (series, day)
  (the reference refits for every simulation); the bootstrap draws do depend on the
  simulation: their indices come from a counter-based generator keyed by
  (seed, symbol, simulation, day, series, sample), the same integers as
  ``models.bootstrap_indices`` computes with NumPy/CuPy, so every engine uses identical draws.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# SplitMix64 constants (all uint64 so Numba never promotes to float).
_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S32 = np.uint64(32)

# strategy ids (enums.STRATEGIES order)
SIMPLE, ALL_SIGNALS, BUY_HOLD, UNPROFIT_SHUTDOWN, ENTRY_TAKEPROFIT, HIGHLOW, MAXDIFF = range(7)
N_METRICS = 5


# --------------------------------------------------------------------------- bootstrap indices
@njit(nogil=True, cache=True)
def mix64_nb(z):
    """SplitMix64 finaliser (a bijective avalanche of a uint64)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(nogil=True, cache=True)
def stream_key_nb(symbol_key, sim, day, series):
    """The generator stream of one (symbol, simulation, day-in-window, series)."""
    z = mix64_nb(symbol_key + np.uint64(sim + 1) * _G)
    z = mix64_nb(z + np.uint64(day + 1) * _G)
    return mix64_nb(z + np.uint64(series + 1) * _G)


@njit(nogil=True, cache=True)
def bootstrap_index_nb(stream, sample, m):
    """Index ``sample`` of a stream, uniform on ``[0, m)`` (multiply-shift, m < 2**32)."""
    u = mix64_nb(stream + np.uint64(sample + 1) * _G)
    return np.int64(((u >> _S32) * np.uint64(m)) >> _S32)


@njit(nogil=True, cache=True)
def bootstrap_indices_nb(streams, num_samples, m, out):
    """``out[b, i]`` = index ``i`` of stream ``streams[b]`` (tests compare it with NumPy's)."""
    for b in range(streams.shape[0]):
        for i in range(num_samples):
            out[b, i] = bootstrap_index_nb(streams[b], i, m)
    return out


# --------------------------------------------------------------------------- AR(p) fit
@njit(nogil=True, cache=True)
def _solve_normal_nb(A, b, beta, L):
    """Solve the SPD system ``A beta = b`` by Cholesky (reads only the lower triangle of
    ``A``; ``A`` and ``b`` are left unchanged); a column whose pivot vanishes
    (collinear regressor, e.g. a constant context) gets a zero coefficient."""
    q = A.shape[0]
    for j in range(q):
        s = A[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if s <= 1e-12 * A[j, j] or s <= 0.0:
            L[j, j] = 0.0
            for i in range(j + 1, q):
                L[i, j] = 0.0
            continue
        d = np.sqrt(s)
        L[j, j] = d
        for i in range(j + 1, q):
            t = A[i, j]
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / d
    # forward: L z = b ; backward: L' beta = z (zero pivots give zero coefficients)
    for i in range(q):
        if L[i, i] == 0.0:
            beta[i] = 0.0
            continue
        t = b[i]
        for k in range(i):
            t -= L[i, k] * beta[k]
        beta[i] = t / L[i, i]
    for i in range(q - 1, -1, -1):
        if L[i, i] == 0.0:
            beta[i] = 0.0
            continue
        t = beta[i]
        for k in range(i + 1, q):
            t -= L[k, i] * beta[k]
        beta[i] = t / L[i, i]


@njit(nogil=True, cache=True)
def _accumulate_nb(y, c0, context, order, A, b, x):
    """Normal equations ``A = X'X`` (lower triangle), ``b = X'y`` of one context."""
    q = order + 1
    A[:, :] = 0.0
    b[:] = 0.0
    x[0] = 1.0
    for t in range(order, context):
        for i in range(1, q):
            x[i] = y[c0 + t - i]
        yt = y[c0 + t]
        for i in range(q):
            b[i] += x[i] * yt
            for k in range(i + 1):
                A[i, k] += x[i] * x[k]


@njit(nogil=True, cache=True)
def _slide_nb(y, c0, context, order, A, b, x):
    """Move the normal equations of the context starting at ``c0 - 1`` to the one starting
    at ``c0``: drop its oldest regression row, add the newest (O(p^2) instead of O(n p^2))."""
    q = order + 1
    x[0] = 1.0
    t = c0 - 1 + order  # the row leaving
    for i in range(1, q):
        x[i] = y[t - i]
    yt = y[t]
    for i in range(q):
        b[i] -= x[i] * yt
        for k in range(i + 1):
            A[i, k] -= x[i] * x[k]
    t = c0 + context - 1  # the row entering
    for i in range(1, q):
        x[i] = y[t - i]
    yt = y[t]
    for i in range(q):
        b[i] += x[i] * yt
        for k in range(i + 1):
            A[i, k] += x[i] * x[k]


@njit(nogil=True, cache=True)
def _finish_fit_nb(y, c0, context, order, A, L, b, beta, resid_out):
    """Solve the normal equations; residuals into ``resid_out``; return the next-value
    forecast ``b0 + sum_k b_k y[c0 + context - k]``."""
    q = order + 1
    _solve_normal_nb(A, b, beta, L)
    for t in range(order, context):
        f = beta[0]
        for i in range(1, q):
            f += beta[i] * y[c0 + t - i]
        resid_out[t - order] = y[c0 + t] - f
    f = beta[0]
    for i in range(1, q):
        f += beta[i] * y[c0 + context - i]
    return f


@njit(nogil=True, cache=True)
def ar_fit_nb(y, first_day, context, order, mean_out, resid_out):
    """Least-squares AR(order) with intercept on the ``context`` returns before each day.

    ``y``: ``(n_series, n_bars)``; ``mean_out[s, di]``: the one-step forecast of series ``s``
    for bar ``first_day + di``; ``resid_out[s, di, :]``: its ``context - order`` in-sample
    residuals (the bootstrap pool; the caller sorts it). Consecutive days share all but one
    regression row, so the normal equations slide from day to day.
    A batch of independent contexts ``(B, n)`` is fitted with ``first_day = context = n``
    and one day (the generic ``ARBootstrap.sample``).
    """
    n_series, n_days = mean_out.shape
    q = order + 1
    A = np.empty((q, q))
    L = np.empty((q, q))
    b = np.empty(q)
    x = np.empty(q)
    beta = np.empty(q)
    for s in range(n_series):
        ys = y[s]
        for di in range(n_days):
            c0 = first_day + di - context
            if di == 0:
                _accumulate_nb(ys, c0, context, order, A, b, x)
            else:
                _slide_nb(ys, c0, context, order, A, b, x)
            mean_out[s, di] = _finish_fit_nb(ys, c0, context, order, A, L, b, beta,
                                             resid_out[s, di])
    return mean_out


# --------------------------------------------------------------------------- draw summaries
@njit(nogil=True, cache=True)
def _quantile_sorted_nb(a, q):
    """``np.quantile(a, q)`` (method 'linear') of a sorted 1-d array, NumPy's exact formula."""
    n = a.shape[0]
    g = n * q + (1.0 - q) - 1.0
    lo = np.floor(g)
    gamma = g - lo
    i = int(lo)
    if i < 0:
        i = 0
    if i > n - 1:
        i = n - 1
    j = i + 1 if i + 1 < n else n - 1
    x0 = a[i]
    x1 = a[j]
    diff = x1 - x0
    if gamma >= 0.5:
        return x1 - diff * (1.0 - gamma)
    return x0 + diff * gamma


@njit(nogil=True, cache=True)
def summarize_sorted_nb(a, trim, q_lo, q_hi):
    """Point forecast (``trim``-trimmed mean) and band quantiles of sorted draws ``a``."""
    n = a.shape[0]
    cut = int(trim * n)
    s = 0.0
    for i in range(cut, n - cut):
        s += a[i]
    return s / (n - 2 * cut), _quantile_sorted_nb(a, q_lo), _quantile_sorted_nb(a, q_hi)


@njit(nogil=True, cache=True)
def summarize_sorted_rows_nb(sorted_draws, trim, q_lo, q_hi, point_out, lo_out, hi_out):
    """Row-wise summaries of a ``(B, num_samples)`` matrix of sorted draws (plug-ins)."""
    for r in range(sorted_draws.shape[0]):
        point_out[r], lo_out[r], hi_out[r] = summarize_sorted_nb(sorted_draws[r], trim, q_lo,
                                                                 q_hi)
    return point_out


@njit(nogil=True, cache=True)
def ar_bootstrap_windows_nb(mean, pool, symbol_key, eval_days, num_samples, trim, q_lo, q_hi,
                            point_out, lo_out, hi_out):
    """Residual-bootstrap forecasts of every (simulation, window day, series) of one symbol.

    ``pool[s, di]``: the sorted residuals of the fit of (series, day); draw ``i`` is
    ``mean[s, di] + pool[s, di, idx_i]`` with ``idx_i`` from the (symbol, simulation, day,
    series) stream. Outputs ``(simulations, eval_days, 3)``.

    Because the pool is sorted, counting how often each index is drawn and walking the pool
    in order yields the sorted draws without a sort (O(S + m) instead of O(S log S)); it is
    the same sequence ``np.sort(draws)`` gives, so the summaries match the reference's.
    """
    n_sims = point_out.shape[0]
    n_series, n_days = mean.shape
    m = pool.shape[2]
    buf = np.empty(num_samples)
    counts = np.empty(m, np.int64)
    for k in range(n_sims):
        for j in range(eval_days):
            di = n_days - 1 - k - (eval_days - 1) + j
            for s in range(n_series):
                stream = stream_key_nb(symbol_key, k, j, s)
                counts[:] = 0
                for i in range(num_samples):
                    counts[bootstrap_index_nb(stream, i, m)] += 1
                mu = mean[s, di]
                p = 0
                for r in range(m):
                    v = mu + pool[s, di, r]
                    for _ in range(counts[r]):
                        buf[p] = v
                        p += 1
                point_out[k, j, s], lo_out[k, j, s], hi_out[k, j, s] = summarize_sorted_nb(
                    buf, trim, q_lo, q_hi)
    return point_out


# --------------------------------------------------------------------------- strategies
@njit(nogil=True, cache=True)
def _sign(x):
    return 1 if x > 0.0 else (-1 if x < 0.0 else 0)


@njit(nogil=True, cache=True)
def maxdiff_day_nb(h, l, r, H, L, m_h, m_l, long_only):
    """(position, gross return) of one maxdiff day: long when |h| > |l|, entering at
    ``l + m_l`` if the low reaches it and exiting at ``h + m_h`` if the high reaches it, else
    at the close; short mirrors (enter at ``h + m_h``, cover at ``l + m_l``)."""
    if abs(h) > abs(l):
        e = l + m_l
        if L <= e and 1.0 + e > 0.0:
            x = h + m_h
            if H >= x:
                return 1, (1.0 + x) / (1.0 + e) - 1.0
            return 1, (1.0 + r) / (1.0 + e) - 1.0
        return 0, 0.0
    if long_only:
        return 0, 0.0
    e = h + m_h
    if H >= e and 1.0 + e > 0.0:
        x = l + m_l
        if L <= x:
            return -1, 1.0 - (1.0 + x) / (1.0 + e)
        return -1, 1.0 - (1.0 + r) / (1.0 + e)
    return 0, 0.0


@njit(nogil=True, cache=True)
def strategy_day_nb(sid, c, h, l, r, H, L, long_only, prev_wrong, m_h, m_l):
    """(position, gross return) of strategy ``sid`` on one day.

    ``c, h, l``: forecast close/high/low returns; ``r, H, L``: actual ones (vs the previous
    close); ``prev_wrong``: yesterday's simple call had the wrong sign (unprofit_shutdown).
    """
    if sid == SIMPLE or sid == UNPROFIT_SHUTDOWN:
        pos = _sign(c)
        if long_only and pos < 0:
            pos = 0
        if sid == UNPROFIT_SHUTDOWN and prev_wrong:
            pos = 0
        return pos, pos * r
    if sid == ALL_SIGNALS:
        pos = 0
        if c > 0.0 and h > 0.0 and l > 0.0:
            pos = 1
        elif c < 0.0 and h < 0.0 and l < 0.0:
            pos = -1
        if long_only and pos < 0:
            pos = 0
        return pos, pos * r
    if sid == BUY_HOLD:
        return 1, r
    if sid == ENTRY_TAKEPROFIT:
        if c > 0.0:
            return 1, (h if H >= h else r)
        if c < 0.0 and not long_only:
            return -1, (-l if L <= l else -r)
        return 0, 0.0
    if sid == HIGHLOW:
        if c > 0.0:
            if L <= l and 1.0 + l > 0.0:
                return 1, (1.0 + r) / (1.0 + l) - 1.0
            return 0, 0.0
        if c < 0.0 and not long_only:
            if H >= h and 1.0 + h > 0.0:
                return -1, 1.0 - (1.0 + r) / (1.0 + h)
            return 0, 0.0
        return 0, 0.0
    return maxdiff_day_nb(h, l, r, H, L, m_h, m_l, long_only)


@njit(nogil=True, cache=True)
def strategy_window_nb(sid, pred, act, fee, long_only, m_h, m_l, pos_out, net_out):
    """Positions and net daily returns of one strategy over a window of traded days.

    ``pred``/``act``: ``(days, 3)`` forecast and actual (close, high, low) returns. The fee
    is charged on every change of position: ``fee * |pos[d] - pos[d-1]|`` (flat before the
    window, so a long-to-short flip pays twice). Returns the window's pnl (sum of net).
    """
    prev_pos = 0
    prev_wrong = False
    total = 0.0
    for d in range(pred.shape[0]):
        r = act[d, 0]
        pos, gross = strategy_day_nb(sid, pred[d, 0], pred[d, 1], pred[d, 2], r, act[d, 1],
                                     act[d, 2], long_only, prev_wrong, m_h, m_l)
        net = gross - fee * abs(pos - prev_pos)
        pos_out[d] = pos
        net_out[d] = net
        total += net
        prev_pos = pos
        call = _sign(pred[d, 0])
        if long_only and call < 0:
            call = 0
        prev_wrong = call * r < 0.0
    return total


@njit(nogil=True, cache=True)
def _maxdiff_pnl_nb(pred, act, fee, long_only, m_h, m_l):
    prev_pos = 0
    total = 0.0
    for d in range(pred.shape[0]):
        pos, gross = maxdiff_day_nb(pred[d, 1], pred[d, 2], act[d, 0], act[d, 1], act[d, 2],
                                    m_h, m_l, long_only)
        total += gross - fee * abs(pos - prev_pos)
        prev_pos = pos
    return total


@njit(nogil=True, cache=True)
def maxdiff_grid_nb(pred, act, fee, long_only, half_width, shrink, points):
    """Coarse-to-fine grid over the (m_h, m_l) offsets maximising the window's pnl.

    Stage ``g`` evaluates ``points[g]**2`` offsets ``centre + w * (2 i / (n - 1) - 1)`` with
    ``w = half_width * shrink**g`` around the best so far; a point replaces the best only if
    strictly better (ties keep the earlier: coarser stage, then m_h-major order).
    """
    best_h = 0.0
    best_l = 0.0
    best = -np.inf
    c_h = 0.0
    c_l = 0.0
    w = half_width
    for g in range(points.shape[0]):
        n = points[g]
        for ih in range(n):
            m_h = c_h + w * (2.0 * ih / (n - 1) - 1.0)
            for il in range(n):
                m_l = c_l + w * (2.0 * il / (n - 1) - 1.0)
                v = _maxdiff_pnl_nb(pred, act, fee, long_only, m_h, m_l)
                if v > best:
                    best = v
                    best_h = m_h
                    best_l = m_l
        c_h = best_h
        c_l = best_l
        w = w * shrink
    return best_h, best_l


@njit(nogil=True, cache=True)
def window_metrics_nb(pos, net, ann, min_std, out):
    """total return, mean, Sharpe (mean/std(ddof=1)*ann), hit rate, position changes."""
    n = net.shape[0]
    growth = 1.0
    s = 0.0
    for d in range(n):
        growth *= 1.0 + net[d]
        s += net[d]
    mean = s / n
    var = 0.0
    for d in range(n):
        var += (net[d] - mean) * (net[d] - mean)
    std = np.sqrt(var / (n - 1)) if n > 1 else 0.0
    held = 0
    hits = 0
    trades = 0
    prev = 0
    for d in range(n):
        if pos[d] != 0:
            held += 1
            if net[d] > 0.0:
                hits += 1
        if pos[d] != prev:
            trades += 1
        prev = pos[d]
    out[0] = growth - 1.0
    out[1] = mean
    out[2] = mean / std * ann if std > min_std else 0.0
    out[3] = hits / held if held > 0 else 0.0
    out[4] = trades
    return out


@njit(nogil=True, cache=True)
def evaluate_windows_nb(pred, act, strategy_ids, fee, ann, long_only, half_width, shrink,
                        points, min_std, metrics_out, pos_out, net_out, mult_out):
    """Every strategy on every simulation window of one symbol.

    ``pred``/``act``: ``(simulations, traded_days, 3)``; outputs ``metrics_out (sims, K, 5)``,
    ``pos_out``/``net_out (sims, K, traded_days)``, ``mult_out (sims, 2)`` (maxdiff m_h, m_l).
    """
    n_sims = pred.shape[0]
    for k in range(n_sims):
        mult_out[k, 0] = 0.0
        mult_out[k, 1] = 0.0
        for a in range(strategy_ids.shape[0]):
            sid = strategy_ids[a]
            m_h = 0.0
            m_l = 0.0
            if sid == MAXDIFF:
                m_h, m_l = maxdiff_grid_nb(pred[k], act[k], fee, long_only, half_width, shrink,
                                           points)
                mult_out[k, 0] = m_h
                mult_out[k, 1] = m_l
            strategy_window_nb(sid, pred[k], act[k], fee, long_only, m_h, m_l, pos_out[k, a],
                               net_out[k, a])
            window_metrics_nb(pos_out[k, a], net_out[k, a], ann, min_std, metrics_out[k, a])
    return metrics_out
