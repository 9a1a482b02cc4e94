"""Numba kernels for structures, costs and exits (``spec.py``): one straddle at a time.

Per straddle the Black-76 part runs as one loop per quantity over its days (vectorized, the
seed kernel's branch-free exp and normal tail from ``nb.py``, per leg), then one loop in day
order books the costs, the P&L, the running sums and the exit rule, and writes the rows up to
the exit day. No fast-math flags at all (not even ``contract``): each P&L column is then the
exact IEEE result of its expression, so the normalized dataset's reader re-derives
``value``, ``pnl``, ``hedge_pnl`` and ``cum_pnl`` from the stored columns bit for bit.
The rows equal the reference's (``structures_ref.py``) within ``core.RTOL``, the same
agreement as the seed kernel's, and are bitwise identical for any chunking, ``n_jobs`` and
backend (each straddle depends only on its own inputs).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .core import CALENDAR_DAYS, INV_SQRT_2PI
from .nb import FAR_TAIL, exp_nonpos, ncdf_far_tail, ncdf_tail

#: float row columns the kernel writes (rows of ``F``), in this order
F_COLUMNS = ("S", "K", "K_call", "K_put", "vol", "tau", "call", "put", "value", "delta",
             "gamma", "vega", "theta", "pnl", "hedge_pnl", "cost", "hedge_cost", "cum_pnl")
#: per-straddle float results (rows of ``SF``)
SF_COLUMNS = ("entry_value", "exit_value", "exit_price", "pnl", "hedge_pnl", "cost",
              "hedge_cost")
SPREAD_CODES = {"none": 0, "vol": 1, "premium": 2}


@njit(inline="always", error_model="numpy")
def _crossing(kind, half, value, vega):
    if kind == 1:
        return half * vega
    if kind == 2:
        return half * value
    return 0.0


@njit(inline="always", error_model="numpy")
def _leg(n, lx, lnK, K, Sx, sq, d1, d2, e1, q1, q2):
    """d1, d2, exp(-d1^2/2), N(-|d1|), N(-|d2|) of one leg over n days."""
    for k in range(n):
        d1[k] = (lx[k] - lnK + 0.5 * sq[k] * sq[k]) / sq[k]
    for k in range(n):
        d2[k] = d1[k] - sq[k]
    for k in range(n):
        e1[k] = exp_nonpos(-0.5 * d1[k] * d1[k])
    for k in range(n):
        q1[k] = ncdf_tail(abs(d1[k]), e1[k])
    for k in range(n):
        # exp(-d2^2/2) = exp(-d1^2/2) S / K, since d1^2 - d2^2 = 2 log(S/K)
        q2[k] = ncdf_tail(abs(d2[k]), e1[k] * Sx[k] / K)
    for k in range(n):  # rare (|d| > 11.3): a scalar fix-up
        if abs(d1[k]) >= FAR_TAIL:
            q1[k] = ncdf_far_tail(abs(d1[k]), e1[k])
        if abs(d2[k]) >= FAR_TAIL:
            q2[k] = ncdf_far_tail(abs(d2[k]), e1[k] * Sx[k] / K)


@njit(inline="always")
def _copy(dst, src, m):
    for k in range(m):
        dst[k] = src[k]


@njit(inline="always")
def _fill(dst, v, m):
    for k in range(m):
        dst[k] = v


@njit(cache=True, nogil=True, error_model="numpy")
def value_structures_nb(price, log_price, vol_days, dates_ns, start, asset, year, month,
                        idx_i, sid, kc, kp, tenor, rate, side, hedge, has_call, has_put,
                        spread_kind, half_spread, hedge_cost, exit_days, exit_profit,
                        exit_loss, tau_tab, sqrt_tab, disc_tab, keep, F, o_asset, o_year,
                        o_month, o_i, o_sid, o_date, o_day, o_action, SF, s_exit_date,
                        s_exit_day, s_reason):
    """Value, cost and close every straddle ``s`` (days ``start[s] + k``); write its rows
    ``k = 0 .. exit day`` one after the other (when ``keep``) and its summary. Returns the
    number of rows written."""
    T = tenor
    n1 = T + 1
    Sx, vx, lx = np.empty(n1), np.empty(n1), np.empty(n1)
    sq = np.empty(n1)
    d1, d2, e1, q1, q2 = np.empty(n1), np.empty(n1), np.empty(n1), np.empty(n1), np.empty(n1)
    # a leg the structure lacks stays 0 (the structure is the same for every straddle)
    call, put, value = np.zeros(n1), np.zeros(n1), np.empty(n1)
    dlc, dlp, pc, pp = np.zeros(n1), np.zeros(n1), np.zeros(n1), np.zeros(n1)
    delta, gamma, vega, theta = np.empty(n1), np.empty(n1), np.empty(n1), np.empty(n1)
    pnl, hpnl, cost, hcost, cum = (np.empty(n1), np.empty(n1), np.empty(n1), np.empty(n1),
                                   np.empty(n1))
    pos = 0
    for s in range(start.shape[0]):
        b = start[s]
        Kc, Kp = kc[s], kp[s]
        lnKc, lnKp = math.log(Kc), math.log(Kp)
        for k in range(n1):
            Sx[k] = price[b + k]
        for k in range(n1):
            vx[k] = vol_days[b + k]
        for k in range(n1):
            lx[k] = log_price[b + k]
        for k in range(T):
            sq[k] = vx[k] * sqrt_tab[k]
        # 1. Black-76 per leg (days 0 .. T-1)
        if has_call:
            _leg(T, lx, lnKc, Kc, Sx, sq, d1, d2, e1, q1, q2)
            for k in range(T):
                nd1 = 1.0 - q1[k] if d1[k] >= 0 else q1[k]
                nd2 = 1.0 - q2[k] if d2[k] >= 0 else q2[k]
                call[k] = disc_tab[k] * (Sx[k] * nd1 - Kc * nd2)
                dlc[k] = nd1
                pc[k] = e1[k] * INV_SQRT_2PI
        if has_put:
            _leg(T, lx, lnKp, Kp, Sx, sq, d1, d2, e1, q1, q2)
            for k in range(T):
                nm1 = q1[k] if d1[k] >= 0 else 1.0 - q1[k]
                nm2 = q2[k] if d2[k] >= 0 else 1.0 - q2[k]
                put[k] = disc_tab[k] * (Kp * nm2 - Sx[k] * nm1)
                dlp[k] = nm1
                pp[k] = e1[k] * INV_SQRT_2PI
        for k in range(T):
            dc, st = disc_tab[k], sqrt_tab[k]
            value[k] = call[k] + put[k]
            psum = pc[k] + pp[k]
            delta[k] = dc * (dlc[k] - dlp[k])
            gamma[k] = dc * psum / (Sx[k] * sq[k])
            vega[k] = dc * Sx[k] * psum * st
            theta[k] = (rate * value[k] - dc * Sx[k] * psum * vx[k] / (2.0 * st)) / CALENDAR_DAYS
        # expiry: intrinsic values
        S = Sx[T]
        call[T] = max(S - Kc, 0.0) if has_call else 0.0
        put[T] = max(Kp - S, 0.0) if has_put else 0.0
        value[T] = call[T] + put[T]
        delta[T] = ((1.0 if has_call and S > Kc else 0.0)
                    + (-1.0 if has_put and S < Kp else 0.0))
        gamma[T] = 0.0
        vega[T] = 0.0
        theta[T] = 0.0
        # 2. costs, P&L and the exit rule, close by close
        premium = value[0]
        cost[0] = _crossing(spread_kind, half_spread, value[0], vega[0])
        hcost[0] = hedge_cost * Sx[0] * abs(delta[0])
        pnl[0] = 0.0 - cost[0]
        hpnl[0] = 0.0 - hcost[0]
        cp = 0.0 + pnl[0]
        ch = 0.0 + hpnl[0]
        csum = 0.0 + cost[0]
        hsum = 0.0 + hcost[0]
        cum[0] = cp + ch if hedge else cp
        e = T
        reason = 0
        for k in range(1, n1):
            g = side * (value[k] - value[k - 1])
            hg = -delta[k - 1] * (Sx[k] - Sx[k - 1]) * side
            mark = (cp + g) + (ch + hg) if hedge else cp + g
            done = True
            if k == T:
                reason = 0
            elif mark >= exit_profit * premium:
                reason = 2
            elif mark <= -(exit_loss * premium):
                reason = 3
            elif k == exit_days:
                reason = 1
            else:
                done = False
            if done:
                cost[k] = _crossing(spread_kind, half_spread, value[k], vega[k]) if k < T else 0.0
                hcost[k] = hedge_cost * Sx[k] * abs(delta[k - 1])
            else:
                cost[k] = 0.0
                hcost[k] = hedge_cost * Sx[k] * abs(delta[k] - delta[k - 1])
            pnl[k] = g - cost[k]
            hpnl[k] = hg - hcost[k]
            cp += pnl[k]
            ch += hpnl[k]
            csum += cost[k]
            hsum += hcost[k]
            cum[k] = cp + ch if hedge else cp
            if done:
                e = k
                break
        # 3. rows 0 .. e and the summary
        if keep:   # one short copy loop per column (one store stream each, vectorized)
            m = e + 1
            r0, r1 = pos, pos + m
            _copy(F[0, r0:r1], Sx, m)
            _fill(F[1, r0:r1], Sx[0], m)
            _fill(F[2, r0:r1], Kc, m)
            _fill(F[3, r0:r1], Kp, m)
            _copy(F[4, r0:r1], vx, m)
            _copy(F[5, r0:r1], tau_tab, m)
            _copy(F[6, r0:r1], call, m)
            _copy(F[7, r0:r1], put, m)
            _copy(F[8, r0:r1], value, m)
            _copy(F[9, r0:r1], delta, m)
            _copy(F[10, r0:r1], gamma, m)
            _copy(F[11, r0:r1], vega, m)
            _copy(F[12, r0:r1], theta, m)
            _copy(F[13, r0:r1], pnl, m)
            _copy(F[14, r0:r1], hpnl, m)
            _copy(F[15, r0:r1], cost, m)
            _copy(F[16, r0:r1], hcost, m)
            _copy(F[17, r0:r1], cum, m)
            _fill(o_asset[r0:r1], asset[s], m)
            _fill(o_year[r0:r1], year[s], m)
            _fill(o_month[r0:r1], month[s], m)
            _fill(o_i[r0:r1], idx_i[s], m)
            _fill(o_sid[r0:r1], sid[s], m)
            _copy(o_date[r0:r1], dates_ns[b:b + m], m)
            d_day = o_day[r0:r1]
            for k in range(m):
                d_day[k] = k
            _fill(o_action[r0:r1], 1, m)
            o_action[r0] = 0
            o_action[r1 - 1] = 2
            pos = r1
        SF[0, s] = premium
        SF[1, s] = value[e]
        SF[2, s] = Sx[e]
        SF[3, s] = cp
        SF[4, s] = ch
        SF[5, s] = csum
        SF[6, s] = hsum
        s_exit_date[s] = dates_ns[b + e]
        s_exit_day[s] = e
        s_reason[s] = reason
    return pos


@njit(cache=True, nogil=True, error_model="numpy")
def running_sums_nb(pnl, hpnl, counts, hedge, out):
    """``cum_pnl`` of rows laid out straddle after straddle (``counts`` rows each): the
    running sums of ``pnl`` and ``hedge_pnl`` in day order, as the kernels add them."""
    r = 0
    for s in range(counts.shape[0]):
        cp = 0.0
        ch = 0.0
        for _ in range(counts[s]):
            cp += pnl[r]
            ch += hpnl[r]
            out[r] = cp + ch if hedge else cp
            r += 1
    return out
