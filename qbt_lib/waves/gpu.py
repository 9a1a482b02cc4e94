"""The impulse search batched across start bars x symbols, written against an array module.

``search_batch(xp, ...)`` runs with ``xp=cupy`` on the GPU and with ``xp=numpy`` on the CPU
(the tests run it that way, so the device code is exercised without a device). It visits the
same tree as the Numba depth-first search of ``nb.py`` (same children, same checks, same
``dead`` stops, same counters) but level by level: the frontier holds every live chain of
every start bar of every symbol in the batch, and each skip step is a handful of gathers over
the whole frontier. The end result is sorted by (job, pivots), exactly the order of
``nb.search_nb``.

All series of a batch are concatenated into one flat array (plus one pad bar); the per-bar
lookup tables (built on the host by ``nb.tables_nb``, O(n) each) are shifted to flat
positions, so "none" for a series is the first bar of the next one, which is never inside a
job's data (``>= end``). Float expressions are the kernels' exact expressions, evaluated one
IEEE operation per array op, so the GPU answers equal the CPU's bit for bit.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..device import is_cupy, items_in_free_memory
from .enums import (CHAIN_W4, CHAIN_W5, D4_1, D5_1, D5_2, D_SLOPE, DIAGONAL, N_CHECKS,
                    NO_WAVE1, W2_1, W2_2, W2_3, W3_1, W3_2, W3_3, W3_4, W3_5, W4_1, W4_2,
                    W5_1, W5_2)
from .nb import tables_nb
from .score import score_patterns, top_k_rows

#: start bars per device batch; ``None``: as many as a quarter of the free device memory
#: holds at :data:`BYTES_PER_JOB` each (every batch costs the same ~150 launches per level
#: and skip whatever its size, so on a large GPU one batch is fastest: measured on an H200,
#: 500 x 2,000 start bars in 8 batches of 2^17 took 8.0 s against 0.46 s for one batch of
#: 100,000)
DEFAULT_BATCH_JOBS: int | None = None
#: device bytes per start bar at the frontier's peak (measured with NumPy: 4-9 KB)
BYTES_PER_JOB = 8 << 10
MIN_BATCH_JOBS, MAX_BATCH_JOBS = 1 << 15, 1 << 21


def batch_jobs_for(xp) -> int:
    """The start bars per batch that fit a quarter of the free device memory."""
    return items_in_free_memory(xp, BYTES_PER_JOB, default=1 << 17, lo=MIN_BATCH_JOBS,
                                hi=MAX_BATCH_JOBS)


@functools.lru_cache(maxsize=None)
def _walk_kernels():
    """Two ElementwiseKernels for the pointer-chasing walks (one thread per chain walks its
    own chain: no shrinking frontier with a host sync per step). Same comparisons as the
    array code below, in the same order; the NaN cases stop the walk in both."""
    import cupy as cp
    chain = cp.ElementwiseKernel(
        "int64 u0, int64 stop, float64 cond, raw int64 nxt, raw float64 val, bool below",
        "int64 u",
        "long long x = u0;\n"
        "while (x < stop && (below ? (val[x] < cond) : (val[x] > cond))) x = nxt[x];\n"
        "u = x;", "qbt_waves_chain_until")
    first_below = cp.ElementwiseKernel(
        "int64 a, int64 stop, float64 v, raw float64 lo, raw int64 nl", "int64 r",
        "long long x = a;\n"
        "while (x < stop && lo[x] >= v) x = nl[x];\n"
        "r = x < stop ? x : stop;", "qbt_waves_first_below")
    return chain, first_below


@dataclass
class FlatSeries:
    """Many series as flat device arrays with their lookup tables (flat positions)."""
    lo: Any
    hi: Any
    rise: Any
    fall: Any
    nge_h: Any
    ng_h: Any
    nle_l: Any
    nl_l: Any
    offsets: np.ndarray      # host: start of each series in the flat arrays
    lengths: np.ndarray      # host


def flatten(xp, series: Sequence[tuple[np.ndarray, np.ndarray]]) -> FlatSeries:
    """Concatenate ``[(lo, hi), ...]`` and their tables, shifted to flat positions."""
    lengths = np.array([len(lo) for lo, _ in series], dtype=np.int64)
    offsets = np.zeros(len(series), dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)[:-1]
    total = int(lengths.sum())
    lo_f = np.empty(total + 1)
    hi_f = np.empty(total + 1)
    tabs = [np.empty(total + 1, dtype=np.int64) for _ in range(6)]
    for (lo, hi), off, n in zip(series, offsets, lengths):
        lo = np.require(lo, np.float64, ("C", "W"))
        hi = np.require(hi, np.float64, ("C", "W"))
        lo_f[off:off + n] = lo
        hi_f[off:off + n] = hi
        for dst, t in zip(tabs, tables_nb(lo, hi)):
            dst[off:off + n] = t + off
    lo_f[total] = hi_f[total] = 1.0   # the pad bar: a valid index for "none", never used
    for t in tabs:
        t[total] = total
    dev = [xp.asarray(a) for a in (lo_f, hi_f, *tabs)]
    return FlatSeries(*dev, offsets=offsets, lengths=lengths)


# --------------------------------------------------------------------------- monowaves
def _chain_until(xp, nxt, val, u, stop, cond_val, below: bool):
    """Follow ``nxt`` from ``u`` while ``u < stop`` and ``val[u] < cond_val`` (``below``) or
    ``val[u] > cond_val``; the subset still walking shrinks every round (on the GPU: one
    thread per chain, :func:`_walk_kernels`)."""
    if is_cupy(xp):
        return _walk_kernels()[0](u, stop, cond_val, nxt, val, np.bool_(below))
    act = xp.arange(u.shape[0])
    while act.shape[0]:
        ua = u[act]
        va = val[ua]
        walk = (ua < stop[act]) & ((va < cond_val[act]) if below else (va > cond_val[act]))
        act = act[walk]
        if act.shape[0]:
            u[act] = nxt[u[act]]
    return u


def _up_first(xp, F: FlatSeries, b, w_end):
    n = b + 1
    ok = n < w_end
    nc = xp.where(ok, n, b)
    adv = ok & (F.hi[nc] > F.lo[b])
    e = xp.minimum(F.rise[nc], w_end - 1)
    return xp.where(adv, e, b)


def _down_first(xp, F: FlatSeries, b, w_end):
    n = b + 1
    ok = n < w_end
    nc = xp.where(ok, n, b)
    adv = ok & (F.lo[nc] < F.hi[b])
    e = xp.minimum(F.fall[nc], w_end - 1)
    return xp.where(adv, e, b)


def _step(xp, F: FlatSeries, b, e, w_end, up: bool):
    """One more skip for every element: new end, ``e`` (stall) or -1 (no end in the data).
    The down branch is the exact mirror (lows, ``nle_l``, ``fall``) plus the invalidation."""
    if up:
        val, other, nxt, run = F.hi, F.lo, F.nge_h, F.rise
    else:
        val, other, nxt, run = F.lo, F.hi, F.nle_l, F.fall
    moved = e > b
    ref = xp.where(moved, val[e], other[b])            # the current top / bottom
    u = xp.where(moved, nxt[e], b + 1)
    start_idx = xp.nonzero(~moved)[0]
    if start_idx.shape[0]:                            # rare: the first top did not move
        u[start_idx] = _chain_until(xp, nxt, val, u[start_idx], w_end[start_idx],
                                    ref[start_idx], below=up)
    none = u >= w_end
    beyond = (val[u] > ref) if up else (val[u] < ref)
    eq = ~none & ~beyond
    # an equal bar ends the step at once when the candidate starts at the top
    stall = eq & ((other[e] >= ref) if up else (other[e] <= ref))
    again = eq & ~stall
    u = xp.where(again, nxt[u], u)
    none2 = again & (u >= w_end)
    beyond2 = (val[u] > ref) if up else (val[u] < ref)
    stall = stall | (again & ~none2 & ~beyond2)
    r = run[u]
    res = xp.where(stall, e, r)
    dead = none | none2 | (~stall & (r + 1 >= w_end))
    if not up:
        dead = dead | (~stall & (F.ng_h[b] < r))
    res[dead] = -1
    return res


# --------------------------------------------------------------------------- checks
def _first_below(xp, F: FlatSeries, a, stop, v):
    if is_cupy(xp):
        return _walk_kernels()[1](a, stop, v, F.lo, F.nl_l)
    u = a.copy()
    act = xp.arange(u.shape[0])
    while act.shape[0]:
        ua = u[act]
        walk = (ua < stop[act]) & (F.lo[ua] >= v[act])
        act = act[walk]
        if act.shape[0]:
            u[act] = F.nl_l[u[act]]
    return xp.minimum(u, stop)


def _checks(xp, F: FlatSeries, level: int, piv, rule_set: int):
    """(code, dead) per chain: the first failing check at wave ``level`` (-1: passes), in the
    order of ``nb._check_nb``, and whether the failure persists for larger skips."""
    m = piv.shape[0]
    code = xp.full(m, -1, dtype=np.int64)
    if level == 1:
        return code, xp.zeros(m, dtype=bool)
    lo, hi = F.lo, F.hi
    fails: list[tuple[int, Any, bool]] = []   # (check, fail mask, dead)
    e0, e1, e2 = piv[:, 0], piv[:, 1], piv[:, 2]
    p0 = lo[e0]
    p1 = xp.where(e1 > e0, hi[e1], lo[e0])
    p2 = xp.where(e2 > e1, lo[e2], hi[e1])
    len1 = p1 - p0
    len2 = hi[e1] - p2
    dur1 = e1 - e0
    if level == 2:
        fails += [(W2_1, ~(p2 > p0), True), (W2_2, ~(len2 >= 0.2 * len1), False),
                  (W2_3, ~(9 * (e2 - e1) > dur1), False)]
    else:
        e3 = piv[:, 3]
        p3 = xp.where(e3 > e2, hi[e3], lo[e2])
        len3 = p3 - lo[e2]
        if level == 3:
            fails += [(W3_2, ~(p3 > p1), False), (W3_3, ~(len3 >= len1 / 3.0), False),
                      (W3_4, ~(len3 > len2), False), (W3_5, ~(7 * (e3 - e2) > dur1), False)]
        else:
            e4 = piv[:, 4]
            p4 = xp.where(e4 > e3, lo[e4], hi[e3])
            len4 = hi[e3] - p4
            if level == 4:
                empty = e4 == e2
                below = _first_below(xp, F, e2, e4, p2) < e4
                fails += [(CHAIN_W4, empty, False), (CHAIN_W4, below, True)]
                if rule_set == DIAGONAL:
                    fails += [(W4_2, ~(len4 > len2 / 3.0), False), (D4_1, ~(p4 < p1), False)]
                else:
                    fails += [(W4_1, ~(p4 > p1), True), (W4_2, ~(len4 > len2 / 3.0), False)]
            else:
                e5 = piv[:, 5]
                p5 = xp.where(e5 > e4, hi[e5], lo[e4])
                len5 = p5 - lo[e4]
                chain5 = (e5 > e4) & (_first_below(xp, F, e4, e5, p4) < e5)
                fails += [(CHAIN_W5, chain5, True), (W3_1, (len3 < len5) & (len3 < len1), True),
                          (W5_2, ~(len5 < 2.0 * len1), True)]
                if rule_set == DIAGONAL:
                    fails += [(D5_2, ~(len5 < len3), True)]
                fails += [(W5_1, ~(p5 > p3), False)]
                if rule_set == DIAGONAL:
                    slope_lower = (p4 - p2) / xp.maximum(e4 - e2, 1)
                    slope_upper = (p3 - p1) / xp.maximum(e3 - e1, 1)
                    fails += [(D5_1, ~(len5 > 0.70 * len1), False),
                              (D_SLOPE, ~((slope_lower > slope_upper) & (slope_upper > 0)),
                               False)]
    dead = xp.zeros(m, dtype=bool)
    for k, fail, is_dead in reversed(fails):   # the first failing check wins
        code[fail] = k
        dead[fail] = is_dead
    return code, dead


# --------------------------------------------------------------------------- the search
class _Counters:
    def __init__(self, xp, n_groups: int):
        self.xp = xp
        self.n = n_groups
        self.rejects = xp.zeros(n_groups * N_CHECKS, dtype=np.int64)
        self.built = xp.zeros((5, n_groups), dtype=np.int64)
        self.kept = xp.zeros((5, n_groups), dtype=np.int64)

    def add(self, arr, level, groups):
        if groups.shape[0]:
            arr[level - 1] += self.xp.bincount(groups, minlength=self.n)

    def reject(self, groups, codes):
        if groups.shape[0]:
            self.rejects += self.xp.bincount(groups * N_CHECKS + codes,
                                             minlength=self.n * N_CHECKS)


def _children(xp, F, level, job, piv, free, grp, w_end, up_to, rule_set, cnt: _Counters):
    """Expand every chain of the frontier by wave ``level``; returns the kept children as
    (parent index, end bar, free flag)."""
    up = level % 2 == 1
    m = job.shape[0]
    b = piv[:, level - 1]
    g = grp[job]
    w = w_end[job]
    e0 = (_up_first if up else _down_first)(xp, F, b, w)
    cnt.add(cnt.built, level, g)
    out_p, out_e, out_f = [], [], []

    def keep(parent, e, flag):
        child = piv[parent].copy()
        child[:, level] = e
        code, dead = _checks(xp, F, level, child, rule_set)
        ok = code < 0
        cnt.add(cnt.kept, level, g[parent[ok]])
        bad = ~ok
        cnt.reject(g[parent[bad]], code[bad])
        out_p.append(parent[ok])
        out_e.append(e[ok])
        out_f.append(flag[ok])
        return dead

    parents = xp.arange(m)
    if up_to == 1:
        keep(parents, e0, xp.zeros(m, dtype=bool))
    else:
        fi = xp.nonzero(free)[0]
        cur = _step(xp, F, b[fi], e0[fi], w[fi], up)
        cnt.add(cnt.built, level, g[fi])
        stall1 = cur == e0[fi]
        flag0 = xp.zeros(m, dtype=bool)
        flag0[fi[stall1]] = True          # a stall at skip 1 merges skip 0 into its subtree
        dead0 = keep(parents, e0, flag0)
        go = ~stall1 & ~dead0[fi]
        act, cur = fi[go], cur[go]
        x = 1
        while act.shape[0]:
            none = cur < 0
            cnt.reject(g[act[none]], NO_WAVE1 + level - 1)   # a scalar code: no sync
            act, cur = act[~none], cur[~none]
            if not act.shape[0]:
                break
            dead = keep(act, cur, xp.ones(act.shape[0], dtype=bool))
            act, cur = act[~dead], cur[~dead]
            x += 1
            if x >= up_to or not act.shape[0]:
                break
            nxt = _step(xp, F, b[act], cur, w[act], up)
            cnt.add(cnt.built, level, g[act])
            moving = nxt != cur
            act, cur = act[moving], nxt[moving]
    return xp.concatenate(out_p), xp.concatenate(out_e), xp.concatenate(out_f)


def search_batch(xp, F: FlatSeries, starts, ends, groups, up_to: int, rule_set: int,
                 cnt: _Counters):
    """Every impulse of the jobs (flat start bar, flat data end, counter group). Returns
    ``(job, pivots)`` on the device, sorted by job then pivots (flat positions)."""
    n = starts.shape[0]
    job = xp.arange(n, dtype=np.int64)
    piv = xp.zeros((n, 6), dtype=np.int64)
    piv[:, 0] = starts
    free = xp.ones(n, dtype=bool)
    for level in range(1, 6):
        if not job.shape[0]:
            break
        parent, e, flag = _children(xp, F, level, job, piv, free, groups, ends, up_to,
                                    rule_set, cnt)
        job = job[parent]
        piv = piv[parent]
        piv[:, level] = e
        free = flag
    if job.shape[0] > 1:
        order = xp.lexsort(xp.stack([piv[:, 5], piv[:, 4], piv[:, 3], piv[:, 2], piv[:, 1],
                                     job]))
        job, piv = job[order], piv[order]
    return job, piv


def search(series: Sequence[tuple[np.ndarray, np.ndarray]], jobs: Sequence[tuple],
           up_to: int, rule_set: int, xp=None, batch_jobs: int | None = DEFAULT_BATCH_JOBS,
           windows: Sequence[np.ndarray] | None = None, top_k: int = 0):
    """The batched search over many series.

    ``series``: ``[(lo, hi), ...]``; ``jobs``: per series ``(starts, ends)`` local arrays.
    With ``windows`` (per series, each job's window index) and ``top_k``, every batch keeps
    only the ``top_k`` best-scored patterns of each window on the device (``score.py`` run
    with ``xp``), as the CPU workers do per chunk: the final top-k of a window is the top-k
    of its batches' top-k, and only those come back to the host.
    Returns, on the host, ``(series_index, job_index, pivots, rejects, built, kept)`` with
    ``job_index`` local to its series' job list, ``pivots`` local bar positions, ``rejects``
    of shape ``(n_series, N_CHECKS)`` and ``built``/``kept`` of shape ``(n_series, 5)``.
    """
    if xp is None:
        import cupy as xp  # noqa: F811
    F = flatten(xp, series)
    n_series = len(series)
    starts = np.concatenate([np.asarray(s, np.int64) + off
                             for (s, _), off in zip(jobs, F.offsets)]) if jobs else \
        np.empty(0, np.int64)
    ends = np.concatenate([np.asarray(e, np.int64) + off
                           for (_, e), off in zip(jobs, F.offsets)]) if jobs else \
        np.empty(0, np.int64)
    sid = np.concatenate([np.full(len(s), i, np.int64) for i, (s, _) in enumerate(jobs)]) \
        if jobs else np.empty(0, np.int64)
    first_job = np.zeros(n_series + 1, np.int64)
    first_job[1:] = np.cumsum([len(s) for s, _ in jobs])
    cnt = _Counters(xp, n_series)
    sid_d = xp.asarray(sid)
    win_d = None
    if top_k and windows is not None and len(starts):
        n_win = max(int(np.max(w)) + 1 if len(w) else 1 for w in windows)
        win_d = xp.asarray(np.concatenate([np.asarray(w, np.int64) for w in windows])
                           + sid * n_win)        # a window id unique across series
    out_job, out_piv = [], []
    if batch_jobs is None:
        batch_jobs = batch_jobs_for(xp)
    for a in range(0, len(starts), batch_jobs):
        z = slice(a, a + batch_jobs)
        job, piv = search_batch(xp, F, xp.asarray(starts[z]), xp.asarray(ends[z]),
                                sid_d[z], int(up_to), int(rule_set), cnt)
        if win_d is not None and job.shape[0]:
            keep = top_k_rows(win_d[z][job], score_patterns(F.lo, F.hi, piv, xp), piv,
                              int(top_k), xp)
            job, piv = job[keep], piv[keep]
        out_job.append(_host(job) + a)
        out_piv.append(_host(piv))
    job = np.concatenate(out_job) if out_job else np.empty(0, np.int64)
    piv = np.concatenate(out_piv) if out_piv else np.empty((0, 6), np.int64)
    s_of = sid[job]
    piv = piv - F.offsets[s_of][:, None]
    local_job = job - first_job[s_of]
    rejects = _host(cnt.rejects).reshape(n_series, N_CHECKS)
    return s_of, local_job, piv, rejects, _host(cnt.built).T.copy(), _host(cnt.kept).T.copy()


def _host(a) -> np.ndarray:
    get = getattr(a, "get", None)
    return get() if get is not None else np.asarray(a)
