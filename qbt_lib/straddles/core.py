"""The straddle row layout and the vectorized Black-76 valuation (NumPy; CuPy reuses it).

Valuation of a straddle on day k of its life (k = 0 entry .. T = tenor, expiry), with
S = price, sigma = vol that day, K = price at entry, tau = (T - k) / 252, D = exp(-r tau),
sq = sigma sqrt(tau) (Black-76: the underlying is the forward, discounted at r):

    d1 = (log S - log K + 0.5 sq^2) / sq,   d2 = d1 - sq
    call = D (S N(d1) - K N(d2)),        put = D (K N(-d2) - S N(-d1)),   value = call + put
    delta = D (N(d1) - N(-d1)),          gamma = 2 D phi(d1) / (S sq)
    vega = 2 D S phi(d1) sqrt(tau)       (per 1.00 of vol)
    theta = (r value - D S phi(d1) sigma / sqrt(tau)) / 365   (per calendar day)

At expiry (tau = 0) the value is |S - K|, delta is sign(S - K), gamma = vega = theta = 0.
N(-|d|) is computed directly (erfc / ndtr of the tail) and N(|d|) = 1 - N(-|d|), so the put
of a deep in-the-money call keeps its digits. Every implementation evaluates these
expressions in this order; they differ only in their log/exp/normal-tail functions: the
reference uses the C library's (``math``), NumPy its SIMD log/exp and SciPy's Cephes
``ndtr``, Numba its own branch-free (vectorizable) exp and Cephes tail, CUDA its libdevice
functions. Those agree to a few ulp, so the rows agree within ``RTOL`` (measured: <= 1e-15
relative for values and greeks with |d| < 5, up to ~5e-14 for gamma deep in the tail,
where the argument's own rounding dominates). The plain-C form of the CUDA kernel, built
against the C library, equals the reference bit for bit (tested).

P&L per row (side = +1 long, -1 short): pnl_k = side (value_k - value_{k-1}),
hedge_pnl_k = -delta_{k-1} (S_k - S_{k-1}) side (a daily delta hedge in the underlying),
both 0 on the entry day; cum_pnl is the running sum of pnl (plus hedge_pnl when hedged).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa

TRADING_DAYS = 252.0
CALENDAR_DAYS = 365.0
INV_SQRT2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
ACTIONS = ("entry", "hold", "exit")
SIDES = {"long": 1.0, "short": -1.0}

# Fast paths vs the reference (see the module docstring): every float column within
# RTOL x (|reference| + scale), scale = the strike for columns in money units (a P&L is a
# small difference of two values), 1 for delta, 0 otherwise (see ``compare_rows``).
RTOL = 1e-12
TINY = 1e-300

# (name, numpy dtype) of the row columns in order; ``asset`` and ``action`` are categorical
ROW_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("asset", np.int32), ("year", np.int16), ("month", np.int8), ("i", np.int8),
    ("straddle_id", np.int64), ("date", "datetime64[ns]"), ("day", np.int16),
    ("S", np.float64), ("K", np.float64), ("vol", np.float64), ("tau", np.float64),
    ("call", np.float64), ("put", np.float64), ("value", np.float64),
    ("delta", np.float64), ("gamma", np.float64), ("vega", np.float64),
    ("theta", np.float64), ("action", np.int8), ("pnl", np.float64),
    ("hedge_pnl", np.float64), ("cum_pnl", np.float64))
FLOAT_COLUMNS = tuple(n for n, t in ROW_COLUMNS if t is np.float64)
ROW_BYTES = sum(np.dtype(t).itemsize for _, t in ROW_COLUMNS)  # bytes written per row
DATE_COLUMNS = ("date", "entry_date", "exit_date")   # int64 ns in the arrays, timestamps


@functools.lru_cache(maxsize=64)
def day_tables(tenor: int, rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``tau, sqrt(tau), exp(-rate tau)`` for days 0..tenor, computed once with ``math`` so
    every implementation (and the reference, which evaluates the same expressions inline)
    uses identical numbers. Cached: shared by every chunk (callers must not modify them)."""
    tau = [(tenor - k) / TRADING_DAYS for k in range(tenor + 1)]
    return (np.array(tau), np.array([math.sqrt(t) for t in tau]),
            np.array([math.exp(-rate * t) for t in tau]))


def _row_dtype(name: str, dt: Any) -> np.dtype:
    return np.dtype(np.int64 if name == "date" else dt)


def empty_rows(n_rows: int, xp: Any = np) -> dict[str, Any]:
    """Preallocated row columns (the kernels write into these).

    On the CPU all columns are cut from one buffer, each starting 64 bytes + 192 x column
    further along a 4 KiB page than the previous one: separate allocations of equal size
    all start at the same page offset, and a loop writing 22 such streams thrashes the
    same L1 sets (measured: 4.8 ms vs 1.0 ms to fill 147k rows)."""
    if xp is not np:
        return {name: xp.empty(n_rows, dtype=_row_dtype(name, dt)) for name, dt in ROW_COLUMNS}
    sizes = [n_rows * _row_dtype(name, dt).itemsize for name, dt in ROW_COLUMNS]
    offsets, at = [], 0
    for j, size in enumerate(sizes):
        at = -(-at // 4096) * 4096 + 64 + 192 * j  # next page + a stagger per column
        offsets.append(at)
        at += size
    buf = np.empty(at + 64, np.uint8)
    base = (-buf.ctypes.data) % 64  # 64-byte aligned, as Arrow likes its buffers
    out = {}
    for (name, dt), off, size in zip(ROW_COLUMNS, offsets, sizes):
        out[name] = buf[base + off:base + off + size].view(_row_dtype(name, dt))
    return out


# --------------------------------------------------------------------------- NumPy / xp
def value_rows_xp(xp: Any, ndtr: Callable, price: Any, vol_days: Any, start: Any,
                  tenor: int, rate: float, side: float, hedge: bool,
                  tables: tuple) -> dict[str, Any]:
    """Black-76 values, greeks and P&L of all straddle-days of a chunk at once.

    Written against an array module ``xp`` (NumPy here, CuPy on a GPU) and its normal CDF
    ``ndtr``. Returns the float columns as ``(n_straddles, tenor + 1)`` arrays and the
    per-straddle sums ``sum_pnl``, ``sum_hedge``.
    """
    T = tenor
    n1 = T + 1
    tau_t, sqrt_t, disc_t = (xp.asarray(t) for t in tables)
    idx = start[:, None] + xp.arange(n1, dtype=xp.int64)[None, :]
    S = xp.take(price, idx)
    vol = xp.take(vol_days, idx)
    K = S[:, :1]
    Sl, disc, st = S[:, :T], disc_t[:T], sqrt_t[:T]
    sq = vol[:, :T] * st
    lnS = xp.log(S)
    d1 = (lnS[:, :T] - lnS[:, :1] + 0.5 * sq * sq) / sq
    d2 = d1 - sq
    a1 = ndtr(-xp.abs(d1))                     # N(-|d1|): the accurate tail
    a2 = ndtr(-xp.abs(d2))
    pos1, pos2 = d1 >= 0, d2 >= 0
    nd1, nm1 = xp.where(pos1, 1.0 - a1, a1), xp.where(pos1, a1, 1.0 - a1)
    nd2, nm2 = xp.where(pos2, 1.0 - a2, a2), xp.where(pos2, a2, 1.0 - a2)
    pdf = xp.exp(-0.5 * d1 * d1) * INV_SQRT_2PI

    shape = S.shape
    call, put, value = xp.empty(shape), xp.empty(shape), xp.empty(shape)
    delta, gamma, vega, theta = xp.empty(shape), xp.empty(shape), xp.empty(shape), xp.empty(shape)
    call[:, :T] = disc * (Sl * nd1 - K * nd2)
    put[:, :T] = disc * (K * nm2 - Sl * nm1)
    value[:, :T] = call[:, :T] + put[:, :T]
    delta[:, :T] = disc * (nd1 - nm1)
    gamma[:, :T] = 2.0 * disc * pdf / (Sl * sq)
    vega[:, :T] = 2.0 * disc * Sl * pdf * st
    theta[:, :T] = (rate * value[:, :T] - disc * Sl * pdf * vol[:, :T] / st) / CALENDAR_DAYS
    # expiry: intrinsic value, no time value left
    ST, K0 = S[:, T], K[:, 0]
    call[:, T] = xp.maximum(ST - K0, 0.0)
    put[:, T] = xp.maximum(K0 - ST, 0.0)
    value[:, T] = call[:, T] + put[:, T]
    delta[:, T] = xp.where(ST > K0, 1.0, xp.where(ST < K0, -1.0, 0.0))
    gamma[:, T] = 0.0
    vega[:, T] = 0.0
    theta[:, T] = 0.0

    pnl, hedge_pnl = xp.empty(shape), xp.empty(shape)
    pnl[:, 0] = 0.0
    hedge_pnl[:, 0] = 0.0
    pnl[:, 1:] = side * (value[:, 1:] - value[:, :-1])
    hedge_pnl[:, 1:] = -delta[:, :-1] * (S[:, 1:] - S[:, :-1]) * side
    cum_plain = xp.cumsum(pnl, axis=1)     # sequential along the day axis on the CPU
    cum_hedge = xp.cumsum(hedge_pnl, axis=1)
    cum = cum_plain + cum_hedge if hedge else cum_plain
    return {"S": S, "K": xp.broadcast_to(K, shape), "vol": vol,
            "tau": xp.broadcast_to(tau_t[None, :], shape), "call": call, "put": put,
            "value": value, "delta": delta, "gamma": gamma, "vega": vega, "theta": theta,
            "pnl": pnl, "hedge_pnl": hedge_pnl, "cum_pnl": cum,
            "sum_pnl": cum_plain[:, T], "sum_hedge": cum_hedge[:, T]}


def fill_meta_np(out: dict, sched, dates_ns: np.ndarray, start: np.ndarray) -> None:
    """The per-row identity columns (asset .. day, action) of a chunk, with NumPy."""
    n1 = sched.tenor + 1
    n = len(sched)
    for name in ("asset", "year", "month", "i", "straddle_id"):
        out[name][...] = np.repeat(getattr(sched, name), n1)
    idx = start[:, None] + np.arange(n1)[None, :]
    np.take(dates_ns, idx.ravel(), out=out["date"], mode="clip")
    day = np.arange(n1, dtype=np.int16)
    out["day"].reshape(n, n1)[...] = day
    act = np.full(n1, 1, np.int8)
    act[0], act[-1] = 0, 2
    out["action"].reshape(n, n1)[...] = act


def value_chunk_numpy(price: np.ndarray, vol: np.ndarray, dates_ns: np.ndarray,
                      start: np.ndarray, sched, rate: float, side: float, hedge: bool,
                      tables: tuple, out: dict) -> tuple[np.ndarray, np.ndarray]:
    """The NumPy implementation of one chunk: writes the rows into ``out``."""
    from scipy.special import ndtr

    cols = value_rows_xp(np, ndtr, price, vol, start, sched.tenor, rate, side, hedge, tables)
    for name in FLOAT_COLUMNS:
        out[name][...] = cols[name].reshape(-1)
    fill_meta_np(out, sched, dates_ns, start)
    return cols["sum_pnl"], cols["sum_hedge"]


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow row/summary table as a DataFrame (categoricals stay categorical)."""
    return table.to_pandas()


SUMMARY_COLUMNS = ("asset", "year", "month", "i", "straddle_id", "entry_date", "exit_date",
                   "K", "entry_value", "exit_value", "exit_price", "pnl", "hedge_pnl",
                   "hedged_pnl", "return", "hedged_return")


SUMMARY_DTYPES = {"asset": np.int32, "year": np.int16, "month": np.int8, "i": np.int8,
                  "straddle_id": np.int64, "entry_date": np.int64, "exit_date": np.int64}


def summary_arrays(sched, dates_ns: np.ndarray, price: np.ndarray, start: np.ndarray,
                   entry_value: np.ndarray, exit_value: np.ndarray, sum_pnl: np.ndarray,
                   sum_hedge: np.ndarray) -> dict[str, np.ndarray]:
    """The per-straddle summary of a chunk from its entry/exit rows and P&L sums."""
    T = sched.tenor
    hedged = sum_pnl + sum_hedge
    return {"asset": sched.asset, "year": sched.year, "month": sched.month, "i": sched.i,
            "straddle_id": sched.straddle_id, "entry_date": dates_ns[start],
            "exit_date": dates_ns[start + T], "K": price[start],
            "entry_value": entry_value, "exit_value": exit_value,
            "exit_price": price[start + T], "pnl": sum_pnl, "hedge_pnl": sum_hedge,
            "hedged_pnl": hedged, "return": sum_pnl / entry_value,
            "hedged_return": hedged / entry_value}


def reference_columns(res: dict, assets: list[str], row_columns, summary_dtypes: dict,
                      labels: dict | None = None) -> tuple[dict, dict]:
    """The reference's list-of-lists rows and summary (``res``) as column arrays in the fast
    paths' dtypes: ``asset``, ``action`` (and the columns of ``labels``, ``{name: labels}``)
    as integer codes, dates as int64 nanoseconds."""
    code = {a: k for k, a in enumerate(assets)}
    cats = {"asset": code.__getitem__, "action": ACTIONS.index,
            **{k: list(v).index for k, v in (labels or {}).items()}}

    def column(vals: list, name: str, dt) -> np.ndarray:
        if name in cats:
            return np.array([cats[name](v) for v in vals], dt)
        if name in DATE_COLUMNS:
            return np.array(vals, "datetime64[D]").astype("datetime64[ns]").view(np.int64)
        return np.array(vals, dt)
    cols = {name: column([r[j] for r in res["rows"]], name, dt)
            for j, (name, dt) in enumerate(row_columns)}
    summ = {name: column([r[j] for r in res["summary"]], name,
                         summary_dtypes.get(name, np.float64))
            for j, name in enumerate(res["summary_columns"])}
    return cols, summ


# --------------------------------------------------------------------------- tables
# The builders take the layout's columns: the seed's by default, the structures' from
# ``layout.py`` (its ``X_*`` columns and the ``exit_reason`` labels).
_ACTION_DICT = pa.array(ACTIONS, type=pa.string())


def _arrays(cols: dict, names, assets: list[str], labels: dict | None) -> list[pa.Array]:
    """The columns ``names`` of ``cols`` as Arrow arrays without copying the numeric
    buffers: ``asset``, ``action`` and the columns of ``labels`` (``{name: labels}``, int8
    codes) as dictionary (categorical) columns, the dates as timestamps."""
    dicts = {"asset": (pa.int32(), pa.array(list(assets), type=pa.string())),
             "action": (pa.int8(), _ACTION_DICT),
             **{k: (pa.int8(), pa.array(list(v), type=pa.string()))
                for k, v in (labels or {}).items()}}
    out = []
    for name in names:
        a = cols[name]
        if name in dicts:
            t, d = dicts[name]
            # safe=False: the kernels write only valid codes; checking them costs 0.1 ms
            out.append(pa.DictionaryArray.from_arrays(pa.array(a, type=t), d, safe=False))
        elif name in DATE_COLUMNS:  # int64 ns -> timestamp without a copy
            out.append(pa.array(np.asarray(a).view(np.int64)).view(pa.timestamp("ns")))
        else:
            out.append(pa.array(a))
    return out


def rows_table(cols: dict[str, np.ndarray], assets: list[str], columns=ROW_COLUMNS,
               labels: dict | None = None) -> pa.Table:
    """The row columns (``columns``: ``(name, dtype)`` pairs) as an Arrow table without
    copying the numeric buffers; ``asset`` and ``action`` become dictionary (categorical)
    columns, ``date`` a timestamp."""
    names = [name for name, _ in columns]
    return pa.Table.from_arrays(_arrays(cols, names, assets, labels), names=names)


def summary_table(cols: dict[str, np.ndarray], assets: list[str], columns=SUMMARY_COLUMNS,
                  labels: dict | None = None) -> pa.Table:
    """The summary columns (``columns``: names) as an Arrow table, as :func:`rows_table`."""
    return pa.Table.from_arrays(_arrays(cols, columns, assets, labels), names=list(columns))


def empty_summary(n: int, columns=SUMMARY_COLUMNS,
                  dtypes: dict = SUMMARY_DTYPES) -> dict[str, np.ndarray]:
    """Preallocated per-straddle summary columns (floats unless ``dtypes`` says)."""
    return {k: np.empty(n, dtypes.get(k, np.float64)) for k in columns}


def reference_tables(res: dict, assets: list[str], row_columns=ROW_COLUMNS,
                     summary_columns=SUMMARY_COLUMNS, summary_dtypes: dict = SUMMARY_DTYPES,
                     labels: dict | None = None) -> tuple[pa.Table, pa.Table]:
    """The reference's list rows and summary as Arrow tables (the fast paths' layout)."""
    cols, summ = reference_columns(res, assets, row_columns, summary_dtypes, labels)
    return (rows_table(cols, assets, row_columns, labels),
            summary_table(summ, assets, summary_columns, labels))


def compare_rows(got: pa.Table | pd.DataFrame, want: pa.Table | pd.DataFrame,
                 rtol: float = 0.0) -> None:
    """Assert two row (or summary) tables are equal: exactly when ``rtol == 0``, else every
    float column within ``rtol x (|want| + scale)``, where scale is the strike for columns
    in money units (so a P&L that is a small difference of two values is not held to a
    relative bound it cannot meet), 1 for delta, 1/strike for gamma (per unit of price: a
    far-from-the-money gamma of 1e-32 is exp() of a large negative number, whose last digits
    differ between CUDA's and the C library's exp) and 0 otherwise."""
    g = got.to_pandas() if isinstance(got, pa.Table) else got
    w = want.to_pandas() if isinstance(want, pa.Table) else want
    if list(g.columns) != list(w.columns) or len(g) != len(w):
        raise AssertionError(f"shape/columns differ: {g.shape} {list(g.columns)} vs "
                             f"{w.shape} {list(w.columns)}")
    strike = np.abs(w["K"].to_numpy()) if "K" in w.columns else 1.0
    for c in g.columns:
        a, b = g[c], w[c]
        if rtol > 0 and a.dtype == np.float64:
            x, y = a.to_numpy(), b.to_numpy()
            scale = (strike if c in MONEY_COLUMNS else 1.0 if c == "delta" else
                     1.0 / strike if c == "gamma" else
                     strike / np.abs(w["entry_value"].to_numpy()) if c in RETURN_COLUMNS
                     else 0.0)  # a return is a P&L over the premium
            err = np.abs(x - y)
            bound = rtol * (np.abs(y) + scale) + TINY  # subnormals carry no relative digits
            bad = ~(err <= bound)
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise AssertionError(f"column {c!r} row {k}: {x[k]!r} vs {y[k]!r} "
                                     f"(|diff| {err[k]:.3g} > {np.broadcast_to(bound, err.shape)[k]:.3g})")
        else:
            pd.testing.assert_series_equal(a, b, check_exact=True, obj=f"column {c!r}")


RETURN_COLUMNS = ("return", "hedged_return")
MONEY_COLUMNS = ("S", "K", "call", "put", "value", "vega", "theta", "pnl", "hedge_pnl",
                 "cum_pnl", "entry_value", "exit_value", "exit_price", "hedged_pnl",
                 "K_call", "K_put", "cost", "hedge_cost")  # the last four: structures


def max_rel_diff(got: dict, want: dict, names=FLOAT_COLUMNS) -> float:
    """Largest ``|got - want| / (|want| + scale)`` over the float columns (GPU vs CPU), the
    scale of :func:`compare_rows` (strike for money columns, 1 for delta, 1/strike for
    gamma)."""
    strike = np.abs(np.asarray(want["K"]))
    worst = 0.0
    for c in names:
        x, y = np.asarray(got[c]), np.asarray(want[c])
        scale = (strike if c in MONEY_COLUMNS else 1.0 if c == "delta" else
                 1.0 / np.maximum(strike, 1e-300) if c == "gamma" else 0.0)
        d = np.abs(x - y) / np.maximum(np.abs(y) + scale, 1e-300)
        worst = max(worst, float(d.max()) if d.size else 0.0)
    return worst
