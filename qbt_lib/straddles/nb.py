"""Numba kernels: the valuation of a chunk of straddles, SIMD-vectorized.

Arrays and scalars only; outputs preallocated by the caller (``core.empty_rows``); only
small block scratch is allocated inside. ``nogil=True`` so chunk tasks run in parallel on
threads.

Why not simply call ``math.erfc``/``math.exp`` per row (as the reference does)? Those are
scalar C-library calls (~8-25 ns each, branchy); the loop around them cannot be vectorized
and that kernel ran at ~43 ns per straddle-day. Here the normal tail and the exponential
are branch-free inline code (Cephes ``ndtr`` coefficients, a degree-13 exp with exact
range reduction, 2**n built from its bits), which LLVM turns into AVX-512/AVX2 code: the
rows are computed in blocks, one simple loop per quantity (one store stream each, on
array views, so that every loop vectorizes), at ~15-20 ns per straddle-day on one core.
One exponential serves both tails: exp(-d2^2/2) = exp(-d1^2/2) S/K. The only fastmath
flag is ``contract`` (fused multiply-add, ~10% faster): no reassociation, no approximate
functions. The vector width never changes a row; FMA support can change its last bits
between two CPUs, never between chunkings, ``n_jobs`` or backends on one machine (tested).

Accuracy: ``exp_nonpos`` is within 1 ulp of the C library's exp, ``ncdf_tail`` within a few
ulp of ``0.5 * erfc(x / sqrt 2)`` for |x| < 5 and within ~x^2 ulp beyond (that is the
conditioning of the tail itself: the rounding of x^2 moves exp(-x^2/2) as much, in the
reference too). The rows equal the reference's within ``core.RTOL`` (measured <= 1e-14);
they are bitwise identical for any chunking, ``n_jobs`` and backend (each row depends only
on its own inputs).
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .core import CALENDAR_DAYS, INV_SQRT_2PI

BLOCK_ROWS = 2048  # rows per block: the block scratch stays in L2

# ------------------------------------------------------------------ vectorizable math
LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that n * LN2_HI is exact
LN2_LO = 1.90821492927058770002e-10
SQRTH = 7.07106781186547524401e-01   # 1 / sqrt(2)
EXP_MIN = -746.0                     # exp(y) rounds to 0 below -745.13
_F = [1.0 / math.factorial(k) for k in range(14)]
E2, E3, E4, E5, E6, E7, E8, E9, E10, E11, E12, E13 = _F[2:]

# Cephes ndtr/erfc (S. L. Moshier), as in SciPy: erf on |z| < 1, erfc = exp(-z^2) P/Q on
# 1 <= z < 8 and exp(-z^2) R/S beyond (Q, S, U have an implied leading 1).
NDTR_P = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
          4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
          9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)
NDTR_Q = (1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
          9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
          1.65666309194161350182e3, 5.57535340817727675546e2)
NDTR_R = (5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
          6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0)
NDTR_S = (2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
          1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0)
NDTR_T = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
          7.00332514112805075473e3, 5.55923013010394962768e4)
NDTR_U = (3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
          2.26290000613890934246e4, 4.92673942608635921086e4)
P0, P1, P2, P3, P4, P5, P6, P7, P8 = NDTR_P
Q0, Q1, Q2, Q3, Q4, Q5, Q6, Q7 = NDTR_Q
R0, R1, R2, R3, R4, R5 = NDTR_R
S0, S1, S2, S3, S4, S5 = NDTR_S
T0, T1, T2, T3, T4 = NDTR_T
U0, U1, U2, U3, U4 = NDTR_U


@intrinsic
def _bits_to_f64(typingctx, bits):
    """Reinterpret an int64 as a float64 (how 2**n is built; vectorizes, unlike ldexp)."""
    if isinstance(bits, types.Integer) and bits.bitwidth == 64:
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.DoubleType())
        return types.float64(bits), codegen
    return None


@njit(inline="always", error_model="numpy")
def exp_nonpos(y):
    """``exp(y)`` for ``y <= 0`` within 1 ulp (subnormal results too), branch-free."""
    yy = max(y, EXP_MIN)
    n = np.floor(yy * LOG2E + 0.5)
    r = (yy - n * LN2_HI) - n * LN2_LO          # |r| <= ln2 / 2, exact reduction
    p = ((((((((((((E13 * r + E12) * r + E11) * r + E10) * r + E9) * r + E8) * r + E7) * r
               + E6) * r + E5) * r + E4) * r + E3) * r + E2) * r + 1.0) * r + 1.0
    # 2**n as two normal factors, so results down to the subnormal range come out right
    n1 = np.int64(n) >> 1
    n2 = np.int64(n) - n1
    return (p * _bits_to_f64((n1 + 1023) << 52)) * _bits_to_f64((n2 + 1023) << 52)


@njit(inline="always", error_model="numpy")
def ncdf_tail(x, e):
    """``N(-x)`` for ``0 <= x < 8 sqrt(2)`` given ``e = exp(-x*x/2)`` (Cephes ndtr,
    branch-free); beyond, ``ncdf_far_tail``."""
    z = x * SQRTH
    zz = z * z
    t = (((T0 * zz + T1) * zz + T2) * zz + T3) * zz + T4
    u = ((((zz + U0) * zz + U1) * zz + U2) * zz + U3) * zz + U4
    num = (((((((P0 * z + P1) * z + P2) * z + P3) * z + P4) * z + P5) * z + P6) * z + P7) * z + P8
    den = ((((((((z + Q0) * z + Q1) * z + Q2) * z + Q3) * z + Q4) * z + Q5) * z + Q6) * z
           + Q7)
    small = z < 1.0                              # N(-x) = (1 - erf(z)) / 2
    top = (0.5 * u - 0.5 * (z * t)) if small else (0.5 * e) * num
    return top / (u if small else den)


@njit(inline="always", error_model="numpy")
def ncdf_far_tail(x, e):
    """``N(-x)`` for ``x >= 8 sqrt(2)`` (|d| > 11.3: N < 1e-29; rare, done apart so that
    the vectorized loop does not evaluate a third rational function for every row)."""
    z = x * SQRTH
    num = ((((R0 * z + R1) * z + R2) * z + R3) * z + R4) * z + R5
    den = (((((z + S0) * z + S1) * z + S2) * z + S3) * z + S4) * z + S5
    return (0.5 * e) * num / den


FAR_TAIL = 8.0 / SQRTH


# ------------------------------------------------------------------ the kernel
@njit(cache=True, nogil=True, error_model="numpy")
def log_prices_nb(price):
    """``log`` of every price: once per asset-day, not once per straddle-day."""
    out = np.empty_like(price)
    for j in range(price.shape[0]):
        out[j] = math.log(price[j])
    return out


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def value_straddles_nb(price, log_price, vol_days, dates_ns, start, asset, year, month, idx_i,
                       sid, tenor, rate, side, hedge, tau_tab, sqrt_tab, disc_tab,
                       o_asset, o_year, o_month, o_i, o_sid, o_date, o_day, o_S, o_K, o_vol,
                       o_tau, o_call, o_put, o_value, o_delta, o_gamma, o_vega, o_theta,
                       o_action, o_pnl, o_hedge, o_cum, s_pnl, s_hedge, s_entry, s_exit,
                       discard):
    """Value straddle-days ``start[s] + k`` (k = 0..tenor) of every straddle s.

    ``price, log_price, vol_days, dates_ns``: the chunk's assets' trading days
    (``asset_days``, ``log_prices_nb``); ``tau_tab, sqrt_tab, disc_tab``:
    ``core.day_tables``; ``o_*``: the row columns (``n * (tenor + 1)`` rows,
    straddle-major); ``s_pnl, s_hedge, s_entry, s_exit``: per straddle, the P&L sums and
    the entry and exit values. ``discard``: the ``o_*`` arrays hold one block
    (``block_rows(tenor)`` rows), each block overwrites the previous one and only the
    per-straddle results are kept (the rows never leave the cache).
    """
    n1 = tenor + 1
    n = start.shape[0]
    per = max(1, BLOCK_ROWS // n1)
    m_max = per * n1
    lnm = np.empty(m_max)      # log(S / K)
    d1 = np.empty(m_max)
    d2 = np.empty(m_max)
    e1 = np.empty(m_max)       # exp(-d1^2 / 2)
    q1 = np.empty(m_max)       # N(-|d1|)
    q2 = np.empty(m_max)       # N(-|d2|)
    # the day tables tiled over a block: the same for every block
    st = np.empty(m_max)       # sqrt(tau); 1 on expiry rows (redone below), no 0/0
    dc = np.empty(m_max)       # discount
    tb = np.empty(m_max)       # tau
    for s in range(per):
        for k in range(n1):
            st[s * n1 + k] = sqrt_tab[k] if k < tenor else 1.0
            dc[s * n1 + k] = disc_tab[k]
            tb[s * n1 + k] = tau_tab[k]
    for s0 in range(0, n, per):
        s1 = min(n, s0 + per)
        b0 = 0 if discard else s0 * n1  # where the block's rows go
        m = (s1 - s0) * n1
        # 1. each straddle's days are contiguous in the asset's arrays: short copy loops,
        #    one store stream each, on views (an offset index ``r0 + k`` could be negative
        #    as far as the compiler knows, and its wrap-around check blocks vectorizing)
        for s in range(s0, s1):
            b = start[s]
            j0 = (s - s0) * n1
            r0 = b0 + j0
            K = price[b]
            lnK = log_price[b]
            src_p, src_v, src_l = price[b:b + n1], vol_days[b:b + n1], log_price[b:b + n1]
            src_d = dates_ns[b:b + n1]
            d_S, d_vol, d_date = o_S[r0:r0 + n1], o_vol[r0:r0 + n1], o_date[r0:r0 + n1]
            d_lnm, d_K, d_day = lnm[j0:j0 + n1], o_K[r0:r0 + n1], o_day[r0:r0 + n1]
            d_act, d_asset, d_year = o_action[r0:r0 + n1], o_asset[r0:r0 + n1], o_year[r0:r0 + n1]
            d_month, d_i, d_sid = o_month[r0:r0 + n1], o_i[r0:r0 + n1], o_sid[r0:r0 + n1]
            a_code, a_year, a_month, a_i, a_sid = asset[s], year[s], month[s], idx_i[s], sid[s]
            for k in range(n1):
                d_S[k] = src_p[k]
            for k in range(n1):
                d_vol[k] = src_v[k]
            for k in range(n1):
                d_date[k] = src_d[k]
            for k in range(n1):
                d_lnm[k] = src_l[k] - lnK
            for k in range(n1):
                d_K[k] = K
            for k in range(n1):
                d_day[k] = k
            for k in range(n1):
                d_act[k] = 1
            d_act[0] = 0
            d_act[tenor] = 2
            for k in range(n1):
                d_asset[k] = a_code
            for k in range(n1):
                d_year[k] = a_year
            for k in range(n1):
                d_month[k] = a_month
            for k in range(n1):
                d_i[k] = a_i
            for k in range(n1):
                d_sid[k] = a_sid
        S_ = o_S[b0:b0 + m]
        K_ = o_K[b0:b0 + m]
        vol = o_vol[b0:b0 + m]
        tau = o_tau[b0:b0 + m]
        call, put, value = o_call[b0:b0 + m], o_put[b0:b0 + m], o_value[b0:b0 + m]
        delta, gamma, vega = o_delta[b0:b0 + m], o_gamma[b0:b0 + m], o_vega[b0:b0 + m]
        theta, pnl, hpnl = o_theta[b0:b0 + m], o_pnl[b0:b0 + m], o_hedge[b0:b0 + m]
        for j in range(m):
            tau[j] = tb[j]
        # 2. Black-76, one vectorized loop per quantity over the block
        for j in range(m):
            sq = vol[j] * st[j]
            d1[j] = (lnm[j] + 0.5 * sq * sq) / sq
        for j in range(m):
            d2[j] = d1[j] - vol[j] * st[j]
        for j in range(m):
            e1[j] = exp_nonpos(-0.5 * d1[j] * d1[j])
        for j in range(m):
            q1[j] = ncdf_tail(abs(d1[j]), e1[j])
        for j in range(m):
            # exp(-d2^2/2) = exp(-d1^2/2) S / K, since d1^2 - d2^2 = 2 log(S/K)
            q2[j] = ncdf_tail(abs(d2[j]), e1[j] * S_[j] / K_[j])
        for j in range(m):  # rare (|d| > 11.3): a scalar fix-up
            if abs(d1[j]) >= FAR_TAIL:
                q1[j] = ncdf_far_tail(abs(d1[j]), e1[j])
            if abs(d2[j]) >= FAR_TAIL:
                q2[j] = ncdf_far_tail(abs(d2[j]), e1[j] * S_[j] / K_[j])
        for j in range(m):
            a1, a2 = q1[j], q2[j]
            nd1 = 1.0 - a1 if d1[j] >= 0 else a1
            nd2 = 1.0 - a2 if d2[j] >= 0 else a2
            call[j] = dc[j] * (S_[j] * nd1 - K_[j] * nd2)
        for j in range(m):
            a1, a2 = q1[j], q2[j]
            nm1 = a1 if d1[j] >= 0 else 1.0 - a1
            nm2 = a2 if d2[j] >= 0 else 1.0 - a2
            put[j] = dc[j] * (K_[j] * nm2 - S_[j] * nm1)
        for j in range(m):
            value[j] = call[j] + put[j]
        for j in range(m):
            a1 = q1[j]
            b1 = 1.0 - a1
            delta[j] = dc[j] * ((b1 - a1) if d1[j] >= 0 else (a1 - b1))
        for j in range(m):
            gamma[j] = 2.0 * dc[j] * (e1[j] * INV_SQRT_2PI) / (S_[j] * (vol[j] * st[j]))
        for j in range(m):
            vega[j] = 2.0 * dc[j] * S_[j] * (e1[j] * INV_SQRT_2PI) * st[j]
        for j in range(m):
            theta[j] = (rate * value[j] - dc[j] * S_[j] * (e1[j] * INV_SQRT_2PI) * vol[j]
                        / st[j]) / CALENDAR_DAYS
        # 3. expiry rows: intrinsic value, no time value left
        for s in range(s0, s1):
            j = (s - s0) * n1 + tenor
            S, K = S_[j], K_[j]
            call[j] = max(S - K, 0.0)
            put[j] = max(K - S, 0.0)
            value[j] = call[j] + put[j]
            delta[j] = 1.0 if S > K else (-1.0 if S < K else 0.0)
            gamma[j] = 0.0
            vega[j] = 0.0
            theta[j] = 0.0
        # 4. P&L: day-over-day changes (vectorized), then running sums in day order
        for j in range(1, m):
            pnl[j] = side * (value[j] - value[j - 1])
        for j in range(1, m):
            hpnl[j] = -delta[j - 1] * (S_[j] - S_[j - 1]) * side
        cum = o_cum[b0:b0 + m]
        for s in range(s0, s1):
            j0 = (s - s0) * n1
            pnl[j0] = 0.0
            hpnl[j0] = 0.0
            cum_plain = 0.0
            cum_hedge = 0.0
            for j in range(j0, j0 + n1):
                cum_plain += pnl[j]
                cum_hedge += hpnl[j]
                cum[j] = cum_plain + cum_hedge if hedge else cum_plain
            s_pnl[s] = cum_plain
            s_hedge[s] = cum_hedge
            s_entry[s] = value[j0]
            s_exit[s] = value[j0 + tenor]


def _plain(a: np.ndarray) -> np.ndarray:
    """A writeable C-contiguous array: a read-only memory map would be a new type for Numba
    and cost a second compilation of the kernel."""
    return a if a.flags.c_contiguous and a.flags.writeable else np.array(a)


def block_rows(tenor: int) -> int:
    """Rows of one kernel block: the size of the ``out`` arrays when ``discard=True``."""
    return max(1, BLOCK_ROWS // (tenor + 1)) * (tenor + 1)


def value_chunk_numba(price, vol, dates_ns, start, sched, rate, side, hedge, tables, out,
                      discard=False):
    """The Numba implementation of one chunk: writes the rows into ``out`` (or, with
    ``discard``, through ``out`` of ``block_rows`` rows); returns the per-straddle P&L
    sums and entry/exit values."""
    # only the window of days these straddles touch (a sub-chunk needs a few hundred)
    lo, hi = int(start.min()), int(start.max()) + int(sched.tenor) + 1
    price, vol, dates_ns = _plain(price[lo:hi]), _plain(vol[lo:hi]), _plain(dates_ns[lo:hi])
    start = start - lo
    n = len(sched)
    s_pnl, s_hedge, s_entry, s_exit = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    tau_t, sqrt_t, disc_t = tables
    value_straddles_nb(price, log_prices_nb(price), vol, dates_ns, start, _plain(sched.asset),
                       _plain(sched.year), _plain(sched.month), _plain(sched.i),
                       _plain(sched.straddle_id), int(sched.tenor), float(rate), float(side),
                       bool(hedge), tau_t, sqrt_t, disc_t, out["asset"], out["year"],
                       out["month"], out["i"], out["straddle_id"], out["date"], out["day"],
                       out["S"], out["K"], out["vol"], out["tau"], out["call"], out["put"],
                       out["value"], out["delta"], out["gamma"], out["vega"], out["theta"],
                       out["action"], out["pnl"], out["hedge_pnl"], out["cum_pnl"], s_pnl,
                       s_hedge, s_entry, s_exit, bool(discard))
    return s_pnl, s_hedge, s_entry, s_exit
