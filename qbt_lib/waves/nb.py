"""Numba kernels of the impulse scan: the same patterns as the reference, found by a
depth-first search over the skip-tuple tree.

Why it is exact and fast (see ``docs/waves.md``):

* A tuple's outcome depends only on its leading skips, and wave k depends only on where wave
  k-1 ended and on its own skip. So the tuples form a tree: a node at depth k is a chain of k
  monowaves, its children are wave k+1 for skips 0, 1, 2, ... built *incrementally* (skip x+1
  is one more step from skip x). A skip of 0 forces 0s after it, so its child is searched
  with skip 0 only ("not free").
* Skips past a stall (the top stays where it was) give the same monowave again: the search
  stops there; a stall at skip 1 merges skip 0 into skip 1's free subtree. A monowave that
  has no end makes every larger skip end-less too. Distinct children thus have strictly
  increasing end bars, so every pattern is met once and in sorted order.
* Checks prune whole subtrees: a rule that fails rejects every tuple below. Some failures
  persist for every larger skip of the same wave (``dead``): wave 2's bottom only deepens
  (``w2_1``), wave 4's too (``w4_1``, the wave-4 chain check), wave 5's top only rises
  (``w5_2``, ``w3_1``, the wave-5 chain check, diagonal ``d5_2``); the skip loop stops there.
* A monowave step is O(1) with per-bar lookup tables of the series: the end of the run of
  strictly higher highs (``rise``), the next bar with a high >= / > this one (``nge_h`` /
  ``ng_h``) and the mirrored tables on the lows. A window just ends the data earlier: any
  table answer at or past the window end means "no end in the data".

Down impulses use the very same kernels on the reflected chart (``lo, hi = -high, -low``).

Every kernel has an explicit signature (writeable C-contiguous float64/int64 arrays): one
compilation each, cached on disk, and no silent re-specialization for read-only inputs (which
pandas 3 and memory maps hand out; :func:`search` copies those).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .enums import (CHAIN_W4, CHAIN_W5, D4_1, D5_1, D5_2, D_SLOPE, DIAGONAL, N_CHECKS,
                    NO_WAVE1, W2_1, W2_2, W2_3, W3_1, W3_2, W3_3, W3_4, W3_5, W4_1, W4_2,
                    W5_1, W5_2)


# --------------------------------------------------------------------------- lookup tables
@njit("UniTuple(int64[::1], 6)(float64[::1], float64[::1])", cache=True, nogil=True)
def tables_nb(lo, hi):
    """Per-bar tables of one series; index ``n`` (= len) means "none".

    rise[t]  last bar of the run of strictly higher highs that starts at t
    fall[t]  last bar of the run of strictly lower lows that starts at t
    nge_h[t] first u > t with hi[u] >= hi[t];  ng_h[t]: hi[u] > hi[t]
    nle_l[t] first u > t with lo[u] <= lo[t];  nl_l[t]: lo[u] < lo[t]
    """
    n = lo.shape[0]
    rise = np.empty(n, np.int64)
    fall = np.empty(n, np.int64)
    nge_h = np.empty(n, np.int64)
    ng_h = np.empty(n, np.int64)
    nle_l = np.empty(n, np.int64)
    nl_l = np.empty(n, np.int64)
    if n == 0:
        return rise, fall, nge_h, ng_h, nle_l, nl_l
    rise[n - 1] = n - 1
    fall[n - 1] = n - 1
    for t in range(n - 2, -1, -1):
        rise[t] = rise[t + 1] if hi[t + 1] > hi[t] else t
        fall[t] = fall[t + 1] if lo[t + 1] < lo[t] else t
    # Monotonic stacks scanned from the right: each keeps the candidates for "next".
    s1 = np.empty(n, np.int64)
    s2 = np.empty(n, np.int64)
    s3 = np.empty(n, np.int64)
    s4 = np.empty(n, np.int64)
    k1 = k2 = k3 = k4 = 0
    for t in range(n - 1, -1, -1):
        h = hi[t]
        v = lo[t]
        while k1 > 0 and hi[s1[k1 - 1]] < h:
            k1 -= 1
        nge_h[t] = s1[k1 - 1] if k1 > 0 else n
        s1[k1] = t
        k1 += 1
        while k2 > 0 and hi[s2[k2 - 1]] <= h:
            k2 -= 1
        ng_h[t] = s2[k2 - 1] if k2 > 0 else n
        s2[k2] = t
        k2 += 1
        while k3 > 0 and lo[s3[k3 - 1]] > v:
            k3 -= 1
        nle_l[t] = s3[k3 - 1] if k3 > 0 else n
        s3[k3] = t
        k3 += 1
        while k4 > 0 and lo[s4[k4 - 1]] >= v:
            k4 -= 1
        nl_l[t] = s4[k4 - 1] if k4 > 0 else n
        s4[k4] = t
        k4 += 1
    return rise, fall, nge_h, ng_h, nle_l, nl_l


# --------------------------------------------------------------------------- monowaves
@njit("int64(float64[::1], float64[::1], int64[::1], int64, int64)", cache=True, nogil=True)
def _up_first(lo, hi, rise, b, w_end):
    """End bar of the up monowave from ``b`` with skip 0 (the run of higher highs)."""
    n = b + 1
    if n < w_end and hi[n] > lo[b]:
        e = rise[n]
        return e if e < w_end else w_end - 1   # running off the end just stops
    return b


@njit("int64(float64[::1], float64[::1], int64[::1], int64[::1], int64, int64, int64)", cache=True, nogil=True)
def _up_step(lo, hi, rise, nge_h, b, e, w_end):
    """One more skip of the up monowave from ``b`` whose top is at ``e``: the new end
    (> e), ``e`` itself for a stall (the top stays), or -1 when it has no end in the data."""
    if e > b:
        top = hi[e]
        u = nge_h[e]
    else:  # the first top did not move: the top is the start's low
        top = lo[b]
        u = b + 1
        while u < w_end and hi[u] < top:   # bars below hi[u] cannot reach the top
            u = nge_h[u]
    if u >= w_end:
        return -1
    if not hi[u] > top:            # a bar equal to the top
        if lo[e] >= top:           # ...ends the step at once: the top stays
            return e
        u = nge_h[u]               # ...is taken as candidate; the next bar >= top decides
        if u >= w_end:
            return -1
        if not hi[u] > top:
            return e
    r = rise[u]                    # the run of higher highs that crossed the top
    if r + 1 >= w_end:             # the run is still rising when the data ends
        return -1
    return r


@njit("int64(float64[::1], float64[::1], int64[::1], int64, int64)", cache=True, nogil=True)
def _down_first(lo, hi, fall, b, w_end):
    n = b + 1
    if n < w_end and lo[n] < hi[b]:
        e = fall[n]
        return e if e < w_end else w_end - 1
    return b


@njit("int64(float64[::1], float64[::1], int64[::1], int64[::1], int64[::1], int64, int64, int64)", cache=True, nogil=True)
def _down_step(lo, hi, fall, nle_l, ng_h, b, e, w_end):
    """Mirror of :func:`_up_step` on the lows, plus the down monowave's own invalidation:
    a bottom moved past a bar higher than the start's high (``max(hi[b:r]) > hi[b]``)."""
    if e > b:
        bottom = lo[e]
        u = nle_l[e]
    else:
        bottom = hi[b]
        u = b + 1
        while u < w_end and lo[u] > bottom:
            u = nle_l[u]
    if u >= w_end:
        return -1
    if not lo[u] < bottom:
        if hi[e] <= bottom:
            return e
        u = nle_l[u]
        if u >= w_end:
            return -1
        if not lo[u] < bottom:
            return e
    r = fall[u]
    if r + 1 >= w_end:
        return -1
    if ng_h[b] < r:
        return -1
    return r


# --------------------------------------------------------------------------- checks
@njit("int64(float64[::1], int64[::1], int64, int64, float64)", cache=True, nogil=True)
def _first_below(lo, nl_l, a, stop, v):
    """First bar u in [a, stop) with lo[u] < v, or ``stop``."""
    u = a
    while u < stop and lo[u] >= v:
        u = nl_l[u]               # bars before nl_l[u] are >= lo[u] >= v
    return u if u < stop else stop


@njit("Tuple((int64, boolean))(int64, int64[::1], float64[::1], float64[::1], int64[::1], int64)", cache=True, nogil=True)
def _check_nb(level, piv, lo, hi, nl_l, rule_set):
    """First failing check of the chain ``piv[0..level]`` at wave ``level`` (-1: passes) and
    whether that failure persists for every larger skip of this wave (``dead``)."""
    if level == 1:
        return -1, False
    e0 = piv[0]
    e1 = piv[1]
    e2 = piv[2]
    p0 = lo[e0]
    p1 = hi[e1] if e1 > e0 else lo[e0]
    p2 = lo[e2] if e2 > e1 else hi[e1]
    len1 = p1 - p0
    len2 = hi[e1] - p2
    dur1 = e1 - e0
    if level == 2:
        if not p2 > p0:
            return W2_1, True
        if not len2 >= 0.2 * len1:
            return W2_2, False
        if not 9 * (e2 - e1) > dur1:
            return W2_3, False
        return -1, False
    e3 = piv[3]
    p3 = hi[e3] if e3 > e2 else lo[e2]
    len3 = p3 - lo[e2]
    if level == 3:
        if not p3 > p1:
            return W3_2, False
        if not len3 >= len1 / 3.0:
            return W3_3, False
        if not len3 > len2:
            return W3_4, False
        if not 7 * (e3 - e2) > dur1:
            return W3_5, False
        return -1, False
    e4 = piv[4]
    p4 = lo[e4] if e4 > e3 else hi[e3]
    len4 = hi[e3] - p4
    if level == 4:
        if e4 == e2:    # empty slice: the original crashes; a reject (unreachable past w3_5)
            return CHAIN_W4, False
        if _first_below(lo, nl_l, e2, e4, p2) < e4:
            return CHAIN_W4, True
        if rule_set == DIAGONAL:
            if not len4 > len2 / 3.0:
                return W4_2, False
            if not p4 < p1:
                return D4_1, False
        else:
            if not p4 > p1:
                return W4_1, True
            if not len4 > len2 / 3.0:
                return W4_2, False
        return -1, False
    e5 = piv[5]
    p5 = hi[e5] if e5 > e4 else lo[e4]
    len5 = p5 - lo[e4]
    # lows[end4:end5] "has a non-zero value" = is non-empty (prices are validated non-zero)
    if e5 > e4 and _first_below(lo, nl_l, e4, e5, p4) < e5:
        return CHAIN_W5, True
    if len3 < len5 and len3 < len1:
        return W3_1, True
    if not len5 < 2.0 * len1:
        return W5_2, True
    if rule_set == DIAGONAL:
        if not len5 < len3:
            return D5_2, True
    if not p5 > p3:
        return W5_1, False
    if rule_set == DIAGONAL:
        if not len5 > 0.70 * len1:
            return D5_1, False
        slope_lower = (p4 - p2) / (e4 - e2)   # both spans >= 1 bar here (w3_5 holds)
        slope_upper = (p3 - p1) / (e3 - e1)
        if not (slope_lower > slope_upper and slope_upper > 0):
            return D_SLOPE, False
    return -1, False


@njit("Tuple((int64, boolean))(int64, int64, boolean, int64[::1], float64[::1], float64[::1], int64[::1], int64, int64[:, ::1], boolean[:, ::1], int64, int64[::1], int64[::1])", cache=True, nogil=True)
def _keep_nb(level, e, free, piv, lo, hi, nl_l, rule_set, buf_e, buf_f, cnt, rejects, kept):
    """Check child ``e`` of wave ``level``; store it when it passes. Returns (count, dead)."""
    piv[level] = e
    code, dead = _check_nb(level, piv, lo, hi, nl_l, rule_set)
    if code < 0:
        buf_e[level, cnt] = e
        buf_f[level, cnt] = free
        kept[level - 1] += 1
        return cnt + 1, False
    rejects[code] += 1
    return cnt, dead


@njit("int64(int64, int64, boolean, int64, int64, int64[::1], float64[::1], float64[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64, int64[:, ::1], boolean[:, ::1], int64[::1], int64[::1], int64[::1])", cache=True, nogil=True)
def _children_nb(level, b, free, w_end, up_to, piv, lo, hi, rise, fall, nge_h, ng_h, nle_l,
                 nl_l, rule_set, buf_e, buf_f, rejects, built, kept):
    """Wave ``level`` (1..5; odd = up) from bar ``b`` for skips 0, 1, ...: the children that
    pass the checks, into ``buf_e[level]`` (end bars) and ``buf_f[level]`` (free flags)."""
    up = (level % 2) == 1
    e = _up_first(lo, hi, rise, b, w_end) if up else _down_first(lo, hi, fall, b, w_end)
    built[level - 1] += 1
    cnt = 0
    if not free or up_to == 1:
        cnt, dead = _keep_nb(level, e, False, piv, lo, hi, nl_l, rule_set, buf_e, buf_f, cnt,
                             rejects, kept)
        return cnt
    cur = (_up_step(lo, hi, rise, nge_h, b, e, w_end) if up
           else _down_step(lo, hi, fall, nle_l, ng_h, b, e, w_end))
    built[level - 1] += 1
    if cur == e:   # stall at skip 1: skip 0's chain is part of skip 1's free subtree
        cnt, dead = _keep_nb(level, e, True, piv, lo, hi, nl_l, rule_set, buf_e, buf_f, cnt,
                             rejects, kept)
        return cnt
    cnt, dead = _keep_nb(level, e, False, piv, lo, hi, nl_l, rule_set, buf_e, buf_f, cnt,
                         rejects, kept)
    if dead:
        return cnt
    x = 1
    while True:
        if cur < 0:
            rejects[NO_WAVE1 + level - 1] += 1
            return cnt
        cnt, dead = _keep_nb(level, cur, True, piv, lo, hi, nl_l, rule_set, buf_e, buf_f,
                             cnt, rejects, kept)
        if dead:
            return cnt
        x += 1
        if x >= up_to:
            return cnt
        nxt = (_up_step(lo, hi, rise, nge_h, b, cur, w_end) if up
               else _down_step(lo, hi, fall, nle_l, ng_h, b, cur, w_end))
        built[level - 1] += 1
        if nxt == cur:   # stall: every larger skip repeats this monowave
            return cnt
        cur = nxt


@njit("Tuple((int64[::1], int64[:, ::1]))(float64[::1], float64[::1], int64[::1], int64[::1], "
      "int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64, int64, "
      "int64[::1], int64[::1], int64[::1])", cache=True, nogil=True)
def search_nb(lo, hi, rise, fall, nge_h, ng_h, nle_l, nl_l, starts, ends, up_to, rule_set,
              rejects, built, kept):
    """Every impulse of every job ``j`` (start bar ``starts[j]``, data ending before bar
    ``ends[j]``). Returns ``(job, pivots)``: job index and the six pivot bars of each pattern,
    ordered by job then pivots. ``rejects`` (N_CHECKS), ``built`` and ``kept`` (5: monowaves
    built / chains kept per wave) are accumulated in place."""
    n_jobs = starts.shape[0]
    cap = max(64, 2 * n_jobs)
    out_job = np.empty(cap, np.int64)
    out_piv = np.empty((cap, 6), np.int64)
    n_out = 0
    buf_e = np.empty((6, up_to), np.int64)
    buf_f = np.empty((6, up_to), np.bool_)
    cnt = np.zeros(6, np.int64)
    pos = np.zeros(6, np.int64)
    piv = np.zeros(6, np.int64)
    for j in range(n_jobs):
        s0 = starts[j]
        w_end = ends[j]
        piv[0] = s0
        cnt[1] = _children_nb(1, s0, True, w_end, up_to, piv, lo, hi, rise, fall, nge_h, ng_h,
                              nle_l, nl_l, rule_set, buf_e, buf_f, rejects, built, kept)
        pos[1] = 0
        level = 1
        while level >= 1:
            if pos[level] >= cnt[level]:
                level -= 1
                continue
            a = pos[level]
            pos[level] += 1
            piv[level] = buf_e[level, a]
            if level == 5:
                if n_out == cap:
                    cap *= 2
                    nj = np.empty(cap, np.int64)
                    nj[:n_out] = out_job[:n_out]
                    npv = np.empty((cap, 6), np.int64)
                    npv[:n_out] = out_piv[:n_out]
                    out_job = nj
                    out_piv = npv
                out_job[n_out] = j
                for k in range(6):
                    out_piv[n_out, k] = piv[k]
                n_out += 1
                continue
            nxt = level + 1
            cnt[nxt] = _children_nb(nxt, piv[level], buf_f[level, a], w_end, up_to, piv, lo,
                                    hi, rise, fall, nge_h, ng_h, nle_l, nl_l, rule_set, buf_e,
                                    buf_f, rejects, built, kept)
            pos[nxt] = 0
            level = nxt
    return out_job[:n_out].copy(), out_piv[:n_out].copy()


def new_counters():
    """Fresh ``(rejects, built, kept)`` accumulators for :func:`search_nb`."""
    return (np.zeros(N_CHECKS, np.int64), np.zeros(5, np.int64), np.zeros(5, np.int64))


def search(lo, hi, starts, ends, up_to, rule_set, tables=None, counters=None):
    """Convenience wrapper: tables + :func:`search_nb` for one series (float64 arrays)."""
    # writeable C arrays: one compiled signature (pandas 3 and memory maps hand out
    # read-only arrays, which Numba types differently)
    lo = np.require(lo, np.float64, ("C", "W"))
    hi = np.require(hi, np.float64, ("C", "W"))
    if tables is None:
        tables = tables_nb(lo, hi)
    if counters is None:
        counters = new_counters()
    starts = np.require(starts, np.int64, ("C", "W"))
    ends = np.require(ends, np.int64, ("C", "W"))
    job, piv = search_nb(lo, hi, *tables, starts, ends, int(up_to), int(rule_set), *counters)
    return job, piv, counters
