"""The GPU engine: one batched pass over symbols x simulations x days, written against an array
module ``xp`` (CuPy on the GPU; NumPy runs the very same code in the tests).

Per chunk of symbols (``chunk`` bounds the device memory):

1. the AR fits of every (symbol, series, day) at once: the lagged design matrices are gathered
   from the return matrix, ``X'X`` and ``X'y`` come from one batched ``matmul`` and are solved
   by a batched ``linalg.solve``; residuals are sorted into the bootstrap pools;
2. the bootstrap indices of every (symbol, simulation, day, series, sample) are computed on the
   device with the counter-based generator of ``models.bootstrap_indices`` -- the same
   integers as the CPU kernels use (bitwise), without copying them from the host --, the draws
   are gathered and sorted, and summarised (trimmed mean, 40th/60th percentile);
3. the strategies run over days in a short Python loop, vectorised over symbols x simulations;
   the maxdiff grid is evaluated for all (symbol, simulation, m_h, m_l) points of a stage at
   once, then refined around each window's own best point.

Same picks as the CPU engines; forecasts and metrics agree to ``marketsim.RTOL/ATOL`` (sums
are reduced in a different order and the normal equations are not slid from day to day).
The strategy step alone is bitwise equal to the Numba kernel on equal forecasts (tested).
A context whose regressors are exactly collinear (a constant price) makes ``solve`` fail;
the CPU engines drop the collinear column instead.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from ..device import items_in_free_memory, to_host
from .enums import (BAND_QUANTILES, MAXDIFF_HALF_WIDTH, MAXDIFF_POINTS, MAXDIFF_SHRINK,
                    SHARPE_MIN_STD, STRATEGIES, TRIM)
from .models import ARBootstrap, bootstrap_indices, stream_keys, symbol_key

(SIMPLE, ALL_SIGNALS, BUY_HOLD, UNPROFIT_SHUTDOWN, ENTRY_TAKEPROFIT, HIGHLOW,
 MAXDIFF) = range(len(STRATEGIES))


def _cupy():
    import cupy
    return cupy


# --------------------------------------------------------------------------- forecasts
def percent_changes(xp: Any, prices):
    """``(..., 3, n)`` close/high/low -> returns vs the previous close (column 0 is NaN)."""
    y = xp.empty_like(prices)
    y[..., 0] = xp.nan
    y[..., 1:] = prices[..., 1:] / prices[..., :1, :-1] - 1.0
    return y


def ar_fit(xp: Any, y, first_day: int, n_days: int, context: int, order: int):
    """Means ``(C, 3, n_days)`` and sorted residual pools ``(C, 3, n_days, m)`` of the AR fits
    of every symbol, series and forecast day, in one batch."""
    m = context - order
    days = first_day + xp.arange(n_days)
    ctx = y[:, :, days[:, None] - context + xp.arange(context)[None, :]]  # (C, 3, nD, ctx)
    target = ctx[..., order:]
    cols = [xp.ones_like(target)] + [ctx[..., order - i:context - i] for i in range(1, order + 1)]
    X = xp.stack(cols, axis=-1)  # (C, 3, nD, m, q)
    Xt = xp.swapaxes(X, -1, -2)
    A = xp.matmul(Xt, X)
    b = xp.matmul(Xt, target[..., None])
    beta = xp.linalg.solve(A, b)  # (C, 3, nD, q, 1)
    resid = target - xp.matmul(X, beta)[..., 0]
    nxt = xp.concatenate([xp.ones(ctx.shape[:-1] + (1,), dtype=ctx.dtype),
                          ctx[..., ::-1][..., :order]], axis=-1)  # [1, y[d-1], ..., y[d-p]]
    mean = (nxt * beta[..., 0]).sum(axis=-1)
    return mean, xp.sort(resid, axis=-1)


def _quantile_sorted(xp: Any, a, q: float):
    """NumPy's 'linear' quantile of sorted draws along the last axis (same formula as
    ``nb._quantile_sorted_nb``)."""
    n = a.shape[-1]
    g = n * q + (1.0 - q) - 1.0
    lo = float(np.floor(g))
    gamma = g - lo
    i = min(max(int(lo), 0), n - 1)
    j = min(i + 1, n - 1)
    x0, x1 = a[..., i], a[..., j]
    diff = x1 - x0
    return x1 - diff * (1.0 - gamma) if gamma >= 0.5 else x0 + diff * gamma


def bootstrap_forecasts(xp: Any, mean, pool, symbol_keys, simulations: int, eval_days: int,
                        num_samples: int):
    """Point, band-low, band-high ``(C, N, E, 3)`` from the pools, all draws in one batch."""
    C, n_series, n_days, m = pool.shape
    N, E = simulations, eval_days
    k = xp.arange(N)[:, None]
    j = xp.arange(E)[None, :]
    di = n_days - 1 - k - (E - 1) + j  # (N, E)
    streams = stream_keys(xp.asarray(symbol_keys, dtype=xp.uint64)[:, None, None, None],
                          k[None, :, :, None], j[None, :, :, None],
                          xp.arange(n_series)[None, None, None, :], xp=xp)  # (C, N, E, 3)
    idx = bootstrap_indices(streams, num_samples, m, xp=xp)  # (C, N, E, 3, S)
    c = xp.arange(C)[:, None, None, None]
    s = xp.arange(n_series)[None, None, None, :]
    row = (c * n_series + s) * n_days + di[None, :, :, None]  # (C, N, E, 3)
    draws = xp.take(pool.reshape(-1), row[..., None] * m + idx)
    draws += xp.take(mean.reshape(-1), row)[..., None]
    draws = xp.sort(draws, axis=-1)
    cut = int(TRIM * num_samples)
    point = draws[..., cut:num_samples - cut].sum(axis=-1) / (num_samples - 2 * cut)
    q_lo, q_hi = BAND_QUANTILES
    return point, _quantile_sorted(xp, draws, q_lo), _quantile_sorted(xp, draws, q_hi)


# --------------------------------------------------------------------------- strategies
def _sign(xp: Any, x):
    return (x > 0).astype(xp.int8) - (x < 0).astype(xp.int8)


def maxdiff_day(xp: Any, h, l, r, H, L, m_h, m_l, long_only):
    """Vectorised ``nb.maxdiff_day_nb`` (arrays broadcast together)."""
    long = xp.abs(h) > xp.abs(l)
    e_l = l + m_l
    x_l = h + m_h
    fill_l = (L <= e_l) & (1.0 + e_l > 0.0)
    g_l = xp.where(H >= x_l, (1.0 + x_l) / (1.0 + e_l) - 1.0, (1.0 + r) / (1.0 + e_l) - 1.0)
    e_s = h + m_h
    x_s = l + m_l
    fill_s = (H >= e_s) & (1.0 + e_s > 0.0) & ~long_only
    g_s = xp.where(L <= x_s, 1.0 - (1.0 + x_s) / (1.0 + e_s), 1.0 - (1.0 + r) / (1.0 + e_s))
    pos = xp.where(long, fill_l.astype(xp.int8), -fill_s.astype(xp.int8))
    gross = xp.where(long, xp.where(fill_l, g_l, 0.0), xp.where(fill_s, g_s, 0.0))
    return pos, gross


def strategy_day(xp: Any, sid: int, c, h, l, r, H, L, long_only, prev_wrong, m_h=0.0, m_l=0.0):
    """Vectorised ``nb.strategy_day_nb``: (position int8, gross return) arrays."""
    i8 = xp.int8
    if sid in (SIMPLE, UNPROFIT_SHUTDOWN):
        pos = _sign(xp, c)
        pos = xp.where(long_only & (pos < 0), i8(0), pos)
        if sid == UNPROFIT_SHUTDOWN:
            pos = xp.where(prev_wrong, i8(0), pos)
        return pos, pos * r
    if sid == ALL_SIGNALS:
        up = (c > 0.0) & (h > 0.0) & (l > 0.0)
        down = (c < 0.0) & (h < 0.0) & (l < 0.0) & ~long_only
        pos = up.astype(i8) - down.astype(i8)
        return pos, pos * r
    if sid == BUY_HOLD:
        return xp.ones(r.shape, dtype=i8), r + 0.0
    if sid == ENTRY_TAKEPROFIT:
        lo = (c > 0.0)
        sh = (c < 0.0) & ~long_only
        pos = lo.astype(i8) - sh.astype(i8)
        gross = xp.where(lo, xp.where(H >= h, h, r), xp.where(sh, xp.where(L <= l, -l, -r), 0.0))
        return pos, gross
    if sid == HIGHLOW:
        lo = (c > 0.0) & (L <= l) & (1.0 + l > 0.0)
        sh = (c < 0.0) & ~long_only & (H >= h) & (1.0 + h > 0.0)
        pos = lo.astype(i8) - sh.astype(i8)
        gross = xp.where(lo, (1.0 + r) / (1.0 + l) - 1.0,
                         xp.where(sh, 1.0 - (1.0 + r) / (1.0 + h), 0.0))
        return pos, gross
    return maxdiff_day(xp, h, l, r, H, L, m_h, m_l, long_only)


def strategy_window(xp: Any, sid: int, pred, act, fee, long_only, m_h=0.0, m_l=0.0):
    """Positions ``(B, D)`` int8 and net returns ``(B, D)`` of one strategy on ``B`` windows
    (``pred``/``act``: ``(B, D, 3)``; ``fee``/``long_only``: ``(B,)``)."""
    B, D = pred.shape[:2]
    pos = xp.empty((B, D), dtype=xp.int8)
    net = xp.empty((B, D))
    prev_pos = xp.zeros(B, dtype=xp.int8)
    prev_wrong = xp.zeros(B, dtype=bool)
    for d in range(D):
        c, h, l = pred[:, d, 0], pred[:, d, 1], pred[:, d, 2]
        r, H, L = act[:, d, 0], act[:, d, 1], act[:, d, 2]
        p, g = strategy_day(xp, sid, c, h, l, r, H, L, long_only, prev_wrong, m_h, m_l)
        pos[:, d] = p
        net[:, d] = g - fee * xp.abs(p.astype(xp.int64) - prev_pos)
        prev_pos = p
        call = _sign(xp, c)
        call = xp.where(long_only & (call < 0), xp.int8(0), call)
        prev_wrong = call * r < 0.0
    return pos, net


def maxdiff_offsets(xp: Any, pred, act, fee, long_only):
    """Coarse-to-fine grid of ``nb.maxdiff_grid_nb`` for ``B`` windows at once -> (B,) m_h,
    m_l (first best point of a stage; a stage replaces the best only if strictly better)."""
    B, D = pred.shape[:2]
    best = xp.full(B, -np.inf)
    best_h = xp.zeros(B)
    best_l = xp.zeros(B)
    c_h = xp.zeros(B)
    c_l = xp.zeros(B)
    w = MAXDIFF_HALF_WIDTH
    f3 = fee[:, None, None]
    lo3 = long_only[:, None, None]
    for n in MAXDIFF_POINTS:
        steps = 2.0 * xp.arange(n) / (n - 1) - 1.0
        m_h = c_h[:, None] + w * steps[None, :]  # (B, n)
        m_l = c_l[:, None] + w * steps[None, :]
        total = xp.zeros((B, n, n))
        prev_pos = xp.zeros((B, n, n), dtype=xp.int8)
        for d in range(D):
            h, l = pred[:, d, 1][:, None, None], pred[:, d, 2][:, None, None]
            r, H, L = (act[:, d, i][:, None, None] for i in range(3))
            p, g = maxdiff_day(xp, h, l, r, H, L, m_h[:, :, None], m_l[:, None, :], lo3)
            total += g - f3 * xp.abs(p.astype(xp.int64) - prev_pos)
            prev_pos = p
        flat = total.reshape(B, n * n)
        vmax = flat.max(axis=1)
        first = xp.where(flat == vmax[:, None], xp.arange(n * n)[None, :], n * n).min(axis=1)
        better = vmax > best
        rows = xp.arange(B)
        best = xp.where(better, vmax, best)
        best_h = xp.where(better, m_h[rows, first // n], best_h)
        best_l = xp.where(better, m_l[rows, first % n], best_l)
        c_h, c_l = best_h, best_l
        w = w * MAXDIFF_SHRINK
    return best_h, best_l


def window_metrics(xp: Any, pos, net, ann):
    """``(B, 5)`` metrics of ``nb.window_metrics_nb`` (days summed left to right)."""
    B, D = net.shape
    growth = xp.ones(B)
    s = xp.zeros(B)
    for d in range(D):
        growth *= 1.0 + net[:, d]
        s += net[:, d]
    mean = s / D
    var = xp.zeros(B)
    for d in range(D):
        var += (net[:, d] - mean) * (net[:, d] - mean)
    std = xp.sqrt(var / (D - 1)) if D > 1 else xp.zeros(B)
    held = pos != 0
    n_held = held.sum(axis=1)
    hits = (held & (net > 0.0)).sum(axis=1)
    prev = xp.concatenate([xp.zeros((B, 1), dtype=pos.dtype), pos[:, :-1]], axis=1)
    trades = (pos != prev).sum(axis=1)
    safe = xp.where(std > SHARPE_MIN_STD, std, 1.0)
    out = xp.empty((B, 5))
    out[:, 0] = growth - 1.0
    out[:, 1] = mean
    out[:, 2] = xp.where(std > SHARPE_MIN_STD, mean / safe * ann, 0.0)
    out[:, 3] = xp.where(n_held > 0, hits / xp.maximum(n_held, 1), 0.0)
    out[:, 4] = trades
    return out


def evaluate_windows(xp: Any, pred, act, strategy_ids: Sequence[int], fee, ann, long_only):
    """Every strategy on ``B`` windows: metrics ``(B, K, 5)``, pos/net ``(B, K, D)``,
    maxdiff offsets ``(B, 2)``."""
    B, D = pred.shape[:2]
    K = len(strategy_ids)
    metrics = xp.empty((B, K, 5))
    pos = xp.empty((B, K, D), dtype=xp.int8)
    net = xp.empty((B, K, D))
    mult = xp.zeros((B, 2))
    for a, sid in enumerate(strategy_ids):
        m_h = m_l = 0.0
        if sid == MAXDIFF:
            m_h, m_l = maxdiff_offsets(xp, pred, act, fee, long_only)
            mult[:, 0], mult[:, 1] = m_h, m_l
        p, x = strategy_window(xp, int(sid), pred, act, fee, long_only, m_h, m_l)
        pos[:, a], net[:, a] = p, x
        metrics[:, a] = window_metrics(xp, p, x, ann)
    return metrics, pos, net, mult


# --------------------------------------------------------------------------- driver
def analyze_chunk(xp: Any, prices, symbol_keys, fee, ann, long_only, *, simulations: int,
                  eval_days: int, context: int, order: int, num_samples: int,
                  strategy_ids: Sequence[int]) -> dict:
    """One chunk of symbols: ``prices (C, 3, context + simulations + eval_days)``."""
    C = prices.shape[0]
    N, E = simulations, eval_days
    n_days = N + E - 1
    y = percent_changes(xp, prices)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mean, pool = ar_fit(xp, y, y.shape[-1] - n_days, n_days, context, order)
        point, lo, hi = bootstrap_forecasts(xp, mean, pool, symbol_keys, N, E, num_samples)
        days = y.shape[-1] - n_days + (n_days - 1 - xp.arange(N)[:, None] - (E - 1)
                                       + xp.arange(E)[None, :])
        actual = xp.moveaxis(y[:, :, days], 1, -1)  # (C, N, E, 3)
        rep = lambda v: xp.repeat(xp.asarray(v), N)  # noqa: E731 -- per symbol -> per window
        pred_w = xp.ascontiguousarray(point[:, :, :E - 1]).reshape(C * N, E - 1, 3)
        act_w = xp.ascontiguousarray(actual[:, :, :E - 1]).reshape(C * N, E - 1, 3)
        metrics, pos, net, mult = evaluate_windows(xp, pred_w, act_w, strategy_ids, rep(fee),
                                                   rep(ann), rep(long_only))
    K, D = len(strategy_ids), E - 1
    return {"point": point, "lo": lo, "hi": hi, "actual": actual,
            "metrics": metrics.reshape(C, N, K, 5), "pos": pos.reshape(C, N, K, D),
            "net": net.reshape(C, N, K, D), "mult": mult.reshape(C, N, 2)}


def bytes_per_symbol(simulations: int, eval_days: int, context: int, order: int,
                     num_samples: int) -> int:
    """Device bytes one symbol of a chunk needs at the peak (the AR design matrices and the
    bootstrap draws, float64, three series); measured with NumPy: 10.9 MB at the defaults,
    this gives 12.6 MB."""
    days = simulations + eval_days
    return 8 * 3 * (days * context * (order + 2) + simulations * eval_days * num_samples * 2)


def chunk_for(xp: Any, n_symbols: int, per_symbol: int) -> int:
    """Symbols per chunk: all of them when a quarter of the free device memory holds them
    (every chunk runs the same per-day Python loop, so fewer chunks are faster: on an H200,
    500 symbols in 4 chunks of 128 took 0.69 s), else as many as fit; 64 without CuPy."""
    return items_in_free_memory(xp, per_symbol, default=64, hi=max(1, n_symbols))


def analyze_batch(tasks: Sequence[dict], chunk: int | None = None, xp: Any = None) -> dict:
    """All symbols (the per-symbol task dicts of ``marketsim``) in chunks of ``chunk``
    symbols (``None``: :func:`chunk_for`, from the free device memory); returns host NumPy
    arrays in the CPU engines' layout."""
    xp = _cupy() if xp is None else xp
    t0 = tasks[0]
    if type(t0["forecaster"]) is not ARBootstrap:
        raise ValueError("the GPU engine runs the built-in AR forecaster only")
    kw = dict(simulations=t0["simulations"], eval_days=t0["eval_days"],
              context=t0["context"], order=t0["forecaster"].order,
              num_samples=t0["num_samples"], strategy_ids=[int(s) for s in t0["strategy_ids"]])
    if chunk is None:
        chunk = chunk_for(xp, len(tasks), bytes_per_symbol(
            kw["simulations"], kw["eval_days"], kw["context"], kw["order"],
            kw["num_samples"]))
    parts: list[dict] = []
    for start in range(0, len(tasks), max(1, int(chunk))):
        ts = tasks[start:start + chunk]
        prices = xp.asarray(np.stack([t["prices"] for t in ts]))
        keys = np.array([t["symbol_key"] for t in ts], dtype=np.uint64)
        out = analyze_chunk(xp, prices, xp.asarray(keys),
                            xp.asarray([t["fee"] for t in ts], dtype=xp.float64),
                            xp.asarray([t["ann"] for t in ts], dtype=xp.float64),
                            xp.asarray([bool(t["long_only"]) for t in ts]), **kw)
        parts.append({k: to_host(v) for k, v in out.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def warmup() -> float:
    """Run the GPU pass once on a tiny batch so CuPy compiles (or loads from its kernel
    cache) every kernel before the timed loop. Returns the seconds it took."""
    t = time.perf_counter()
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (2, 21)), axis=1))
    prices = np.stack([close, close * 1.01, close * 0.99], axis=1)
    tasks = [dict(prices=prices[i], symbol_key=symbol_key(0, f"W{i}"), simulations=2,
                  eval_days=3, context=16, num_samples=16,
                  strategy_ids=np.arange(len(STRATEGIES)), fee=0.001, ann=15.87,
                  long_only=bool(i), forecaster=ARBootstrap(2)) for i in range(2)]
    analyze_batch(tasks)
    _cupy().cuda.Device().synchronize()
    return time.perf_counter() - t
