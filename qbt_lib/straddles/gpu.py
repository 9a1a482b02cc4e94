"""CuPy path: two small fused kernels per chunk, data kept in device memory.

1. ``straddle_value`` (one thread per straddle-day): gathers S, K, vol from the assets'
   trading days and evaluates the Black-76 value and greeks (the expressions of ``core``,
   term by term; ``--fmad=false`` so no multiply-add is contracted, as on the CPU).
2. ``straddle_pnl`` (one thread per straddle): the day-by-day P&L, hedge P&L and their
   running sums, in day order (a parallel scan would add in another order).

CUDA's ``log``/``exp``/``erfc`` are not the C library's, so the rows equal the CPU's within
1e-12 relative (money columns relative to the strike, see ``core.compare_rows``), not bit
for bit. The kernel bodies are plain C: ``c_source()`` wraps the very same text in a C loop
so the test suite compiles it with the system C compiler and checks it against the
reference rows, bit for bit (both on the C library's log/exp/erfc), on machines without a
GPU. Without a GPU, ``impl="cupy"`` falls back to the
xp-generic NumPy code (``core.value_rows_xp``), which also runs here with ``xp=cupy``.
"""
from __future__ import annotations

import functools
import time

import numpy as np

from ..pinned import to_device, to_host_into
from .core import (CALENDAR_DAYS, FLOAT_COLUMNS, INV_SQRT2, INV_SQRT_2PI, day_tables,
                   fill_meta_np, value_rows_xp)

PREAMBLE = (f"#define INV_SQRT2 {INV_SQRT2!r}\n#define INV_SQRT_2PI {INV_SQRT_2PI!r}\n"
            f"#define CALENDAR_DAYS {CALENDAR_DAYS!r}\n")

# in: raw price, raw vol_days, raw start, raw tau_tab, raw sqrt_tab, raw disc_tab, tenor, rate
# out: Sd, Kd, vold, taud, call, put, value, delta, gamma, vega, theta (one per straddle-day)
VALUE_BODY = r"""
const long long n1 = tenor + 1;
const long long s = i / n1;
const long long k = i - s * n1;
const long long b = start[s];
const double S_ = price[b + k];
const double K_ = price[b];
const double v_ = vol_days[b + k];
double c_, p_, val_, dl_, g_, vg_, th_;
if (k < tenor) {
    const double st = sqrt_tab[k];
    const double disc = disc_tab[k];
    const double sq = v_ * st;
    const double d1 = (log(S_) - log(K_) + 0.5 * sq * sq) / sq;
    const double d2 = d1 - sq;
    const double a1 = 0.5 * erfc(fabs(d1) * INV_SQRT2);
    const double a2 = 0.5 * erfc(fabs(d2) * INV_SQRT2);
    const double nd1 = d1 >= 0 ? 1.0 - a1 : a1;
    const double nm1 = d1 >= 0 ? a1 : 1.0 - a1;
    const double nd2 = d2 >= 0 ? 1.0 - a2 : a2;
    const double nm2 = d2 >= 0 ? a2 : 1.0 - a2;
    const double pdf = exp(-0.5 * d1 * d1) * INV_SQRT_2PI;
    c_ = disc * (S_ * nd1 - K_ * nd2);
    p_ = disc * (K_ * nm2 - S_ * nm1);
    val_ = c_ + p_;
    dl_ = disc * (nd1 - nm1);
    g_ = 2.0 * disc * pdf / (S_ * sq);
    vg_ = 2.0 * disc * S_ * pdf * st;
    th_ = (rate * val_ - disc * S_ * pdf * v_ / st) / CALENDAR_DAYS;
} else {
    c_ = S_ - K_ > 0.0 ? S_ - K_ : 0.0;
    p_ = K_ - S_ > 0.0 ? K_ - S_ : 0.0;
    val_ = c_ + p_;
    dl_ = S_ > K_ ? 1.0 : (S_ < K_ ? -1.0 : 0.0);
    g_ = 0.0;
    vg_ = 0.0;
    th_ = 0.0;
}
Sd = S_; Kd = K_; vold = v_; taud = tau_tab[k];
call = c_; put = p_; value = val_; delta = dl_; gamma = g_; vega = vg_; theta = th_;
"""
VALUE_IN = ("raw float64 price, raw float64 vol_days, raw int64 start, raw float64 tau_tab, "
            "raw float64 sqrt_tab, raw float64 disc_tab, int64 tenor, float64 rate")
VALUE_OUT = ("float64 Sd, float64 Kd, float64 vold, float64 taud, float64 call, float64 put, "
             "float64 value, float64 delta, float64 gamma, float64 vega, float64 theta")

# one thread per straddle i: rows i*(tenor+1) .. i*(tenor+1)+tenor, in day order
PNL_BODY = r"""
const long long n1 = tenor + 1;
const long long r0 = i * n1;
double cp = 0.0;
double ch = 0.0;
for (long long k = 0; k < n1; ++k) {
    const long long r = r0 + k;
    double pl = 0.0;
    double hp = 0.0;
    if (k > 0) {
        pl = side * (value[r] - value[r - 1]);
        hp = -delta[r - 1] * (Sd[r] - Sd[r - 1]) * side;
    }
    cp += pl;
    ch += hp;
    pnl[r] = pl;
    hedge_pnl[r] = hp;
    cum_pnl[r] = hedge ? cp + ch : cp;
}
sum_pnl = cp;
sum_hedge = ch;
"""
PNL_IN = ("raw float64 value, raw float64 delta, raw float64 Sd, int64 tenor, float64 side, "
          "bool hedge")
PNL_OUT = ("raw float64 pnl, raw float64 hedge_pnl, raw float64 cum_pnl, float64 sum_pnl, "
           "float64 sum_hedge")

_VALUE_NAMES = ("S", "K", "vol", "tau", "call", "put", "value", "delta", "gamma", "vega",
                "theta")


@functools.lru_cache(maxsize=1)
def kernels():
    """The two CuPy ElementwiseKernels (compiled on first use)."""
    import cupy as cp
    opts = ("--fmad=false",)
    value = cp.ElementwiseKernel(VALUE_IN, VALUE_OUT, VALUE_BODY, "straddle_value",
                                 preamble=PREAMBLE, options=opts)
    pnl = cp.ElementwiseKernel(PNL_IN, PNL_OUT, PNL_BODY, "straddle_pnl", options=opts)
    return value, pnl


def value_rows_device(price, vol_days, start, tenor: int, rate: float, side: float,
                      hedge: bool, tables) -> dict:
    """All float row columns (flat, straddle-major) and the per-straddle sums, as CuPy
    arrays; inputs are CuPy arrays already on the device."""
    import cupy as cp
    value_k, pnl_k = kernels()
    n = int(start.shape[0])
    n_rows = n * (tenor + 1)
    tau_t, sqrt_t, disc_t = (cp.asarray(t) for t in tables)
    cols = {name: cp.empty(n_rows, dtype=cp.float64) for name in _VALUE_NAMES}
    value_k(price, vol_days, start, tau_t, sqrt_t, disc_t, np.int64(tenor), np.float64(rate),
            *(cols[name] for name in _VALUE_NAMES))
    for name in ("pnl", "hedge_pnl", "cum_pnl"):
        cols[name] = cp.empty(n_rows, dtype=cp.float64)
    cols["sum_pnl"] = cp.empty(n, dtype=cp.float64)
    cols["sum_hedge"] = cp.empty(n, dtype=cp.float64)
    pnl_k(cols["value"], cols["delta"], cols["S"], np.int64(tenor), np.float64(side),
          np.bool_(hedge), cols["pnl"], cols["hedge_pnl"], cols["cum_pnl"], cols["sum_pnl"],
          cols["sum_hedge"])
    return cols


def value_chunk_gpu(price, vol, dates_ns, start, sched, rate, side, hedge, tables, out):
    """``impl="cupy"`` on a GPU for one chunk: rows into the host arrays ``out``."""
    cols = value_rows_device(to_device(price), to_device(vol), to_device(start),
                             sched.tenor, rate, side, hedge, tables)
    for name in FLOAT_COLUMNS:   # pinned-staged: a pageable .get() ran at ~3 GB/s
        to_host_into(cols[name], out[name])
    fill_meta_np(out, sched, dates_ns, start)
    return cols["sum_pnl"].get(), cols["sum_hedge"].get()


def summary_chunk_gpu(price, vol, start, sched, rate, side, hedge, tables):
    """``impl="cupy"``, output="summary": every row valued in device memory and only the
    per-straddle results copied back (P&L sums, entry and exit values: 4 floats per
    straddle instead of 11 columns per straddle-day). The H200 run of the row-by-row
    sub-chunk path took 5.9 s for what 16 CPU cores did in 0.2 s."""
    cols = value_rows_device(to_device(price), to_device(vol), to_device(start),
                             sched.tenor, rate, side, hedge, tables)
    n1 = sched.days
    value = cols["value"]
    return (cols["sum_pnl"].get(), cols["sum_hedge"].get(), value[::n1].get(),
            value[n1 - 1::n1].get())


def value_rows_xp_gpu(price, vol_days, start, tenor, rate, side, hedge, tables) -> dict:
    """The xp-generic NumPy code run with CuPy (unfused; a cross-check of the kernels)."""
    import cupy as cp
    from cupyx.scipy.special import ndtr

    return value_rows_xp(cp, ndtr, price, vol_days, start, tenor, rate, side, hedge, tables)


def device_throughput(price: np.ndarray, vol: np.ndarray, start: np.ndarray, tenor: int,
                      rate: float = 0.0, side: float = 1.0, hedge: bool = True,
                      repeats: int = 5) -> dict:
    """Time the two kernels on data already in device memory (CUDA events).

    Returns seconds (median) for the valuation kernel alone and with the P&L kernel, and
    straddle-day valuations per second."""
    import cupy as cp
    tables = day_tables(tenor, rate)
    p, v, s = cp.asarray(price), cp.asarray(vol), cp.asarray(start)
    value_rows_device(p, v, s, tenor, rate, side, hedge, tables)  # compile + warm up
    cp.cuda.Device().synchronize()
    value_k, _ = kernels()
    n_rows = int(s.shape[0]) * (tenor + 1)
    tau_t, sqrt_t, disc_t = (cp.asarray(t) for t in tables)
    outs = [cp.empty(n_rows, dtype=cp.float64) for _ in _VALUE_NAMES]
    times_v, times_all = [], []
    for _ in range(repeats):
        e0, e1, e2 = cp.cuda.Event(), cp.cuda.Event(), cp.cuda.Event()
        e0.record()
        value_k(p, v, s, tau_t, sqrt_t, disc_t, np.int64(tenor), np.float64(rate), *outs)
        e1.record()
        value_rows_device(p, v, s, tenor, rate, side, hedge, tables)
        e2.record()
        e2.synchronize()
        times_v.append(cp.cuda.get_elapsed_time(e0, e1) / 1e3)
        times_all.append(cp.cuda.get_elapsed_time(e1, e2) / 1e3)
    tv, ta = float(np.median(times_v)), float(np.median(times_all))
    return {"rows": n_rows, "value_seconds": tv, "all_seconds": ta,
            "valuations_per_s": n_rows / tv, "rows_per_s_with_pnl": n_rows / ta,
            "bytes_written_value": n_rows * 8 * len(_VALUE_NAMES), "wall": time.time()}


def c_source() -> str:
    """The kernel bodies wrapped in plain C loops (for the CPU test of the GPU code)."""
    value_params = ", ".join(f"double *o_{n}" for n in ("Sd", "Kd", "vold", "taud", "call",
                                                        "put", "value", "delta", "gamma",
                                                        "vega", "theta"))
    return (
        "#include <math.h>\n" + PREAMBLE +
        "void straddle_value(long long n, const double *price, const double *vol_days, "
        "const long long *start, const double *tau_tab, const double *sqrt_tab, "
        "const double *disc_tab, long long tenor, double rate, " + value_params + ") {\n"
        "  for (long long i = 0; i < n; ++i) {\n"
        "    double Sd, Kd, vold, taud, call, put, value, delta, gamma, vega, theta;\n"
        + VALUE_BODY +
        "    o_Sd[i] = Sd; o_Kd[i] = Kd; o_vold[i] = vold; o_taud[i] = taud;\n"
        "    o_call[i] = call; o_put[i] = put; o_value[i] = value; o_delta[i] = delta;\n"
        "    o_gamma[i] = gamma; o_vega[i] = vega; o_theta[i] = theta;\n"
        "  }\n}\n"
        "void straddle_pnl(long long n, const double *value, const double *delta, "
        "const double *Sd, long long tenor, double side, int hedge, double *pnl, "
        "double *hedge_pnl, double *cum_pnl, double *o_sum_pnl, double *o_sum_hedge) {\n"
        "  for (long long i = 0; i < n; ++i) {\n"
        "    double sum_pnl, sum_hedge;\n"
        + PNL_BODY +
        "    o_sum_pnl[i] = sum_pnl; o_sum_hedge[i] = sum_hedge;\n"
        "  }\n}\n")
