"""Numba kernels of marketsim's research paths (own strategies, the out-of-sample walk).

They reuse the built-ins' day rule (``nb.strategy_day_nb``) and metric kernel
(``nb.window_metrics_nb``), so a user strategy and a walk are charged and scored by the same
code as the seed's windows. ``@njit(nogil=True, cache=True)`` like ``nb.py``; the plain
Python twins are in ``reference_research.py``.
"""
from __future__ import annotations

from numba import njit

from .nb import _sign, strategy_day_nb, window_metrics_nb


@njit(nogil=True, cache=True)
def close_to_close_windows_nb(pos, r, fee, ann, min_std, metrics_out, net_out):
    """Net returns and metrics of given positions held close to close.

    ``pos``: ``(N, K, D)`` int8 positions of ``K`` strategies on ``N`` windows of ``D`` days;
    ``r``: ``(N, D)`` actual close returns. ``net = pos * r - fee * |pos - prev|`` (each
    window starts flat), metrics as ``nb.window_metrics_nb``.
    """
    N, K, D = pos.shape
    for k in range(N):
        for a in range(K):
            prev = 0
            for d in range(D):
                p = pos[k, a, d]
                net_out[k, a, d] = p * r[k, d] - fee * abs(p - prev)
                prev = p
            window_metrics_nb(pos[k, a], net_out[k, a], ann, min_std, metrics_out[k, a])
    return metrics_out


@njit(nogil=True, cache=True)
def walk_builtin_nb(sids, fc, act, mult, prev_call, prev_r, long_only, pos_out, gross_out):
    """Positions and gross returns of built-in strategies on the days of a walk.

    ``fc``/``act``: ``(W, 3)`` the forecast (made before the day) and actual close/high/low
    returns of each walk day; ``mult``: ``(W, 2)`` the maxdiff offsets to use on each day;
    ``prev_call``/``prev_r``: the direction call and close return of the day before the walk
    (``0``, ``0.0`` when unknown) for unprofit_shutdown. Outputs ``(len(sids), W)``.
    """
    W = fc.shape[0]
    for a in range(sids.shape[0]):
        sid = sids[a]
        call = prev_call
        r_prev = prev_r
        for w in range(W):
            prev_wrong = call * r_prev < 0.0
            p, g = strategy_day_nb(sid, fc[w, 0], fc[w, 1], fc[w, 2], act[w, 0], act[w, 1],
                                   act[w, 2], long_only, prev_wrong, mult[w, 0], mult[w, 1])
            pos_out[a, w] = p
            gross_out[a, w] = g
            call = _sign(fc[w, 0])
            if long_only and call < 0:
                call = 0
            r_prev = act[w, 0]
    return pos_out


@njit(nogil=True, cache=True)
def curves_net_nb(pos, gross, fee, net_out):
    """``net = gross - fee * |pos - prev|`` of ``(C, W)`` curves, each starting flat."""
    C, W = pos.shape
    for c in range(C):
        prev = 0
        for w in range(W):
            p = pos[c, w]
            net_out[c, w] = gross[c, w] - fee * abs(p - prev)
            prev = p
    return net_out


@njit(nogil=True, cache=True)
def max_drawdown_nb(net):
    """Largest fall of ``prod(1 + net)`` from its running peak (the start counts as 1)."""
    eq = 1.0
    peak = 1.0
    worst = 0.0
    for w in range(net.shape[0]):
        eq *= 1.0 + net[w]
        if eq > peak:
            peak = eq
        dd = 1.0 - eq / peak
        if dd > worst:
            worst = dd
    return worst


@njit(nogil=True, cache=True)
def curves_metrics_nb(pos, net, ann, min_std, out):
    """``(C, 6)``: the five window metrics of each curve, then its max drawdown."""
    for c in range(pos.shape[0]):
        window_metrics_nb(pos[c], net[c], ann, min_std, out[c, :5])
        out[c, 5] = max_drawdown_nb(net[c])
    return out


@njit(nogil=True, cache=True)
def rolling_mean_nb(x, n, out):
    """``out[i] = mean(x[i:i+n], axis=0)`` summed in row order (as ``ndarray.mean`` over the
    simulations axis sums them), for ``i = 0 .. out.shape[0] - 1``."""
    K = out.shape[1]
    for i in range(out.shape[0]):
        for a in range(K):
            s = x[i, a]
            for j in range(1, n):
                s += x[i + j, a]
            out[i, a] = s / n
    return out
