"""Structures, costs and exits (issue #16): the rows, the NumPy and Numba paths, the run.

A backtest whose :class:`~qbt_lib.straddles.spec.Spec` is not the seed's (a strangle, a
single call or put, a spread, hedge costs, an exit before expiry) runs here; the seed's
straddle keeps its own kernels (``core``, ``nb``, ``gpu``) and rows, unchanged.

Rows (``layout.X_ROW_COLUMNS``): the seed's columns plus ``K_call``, ``K_put`` (the legs' strikes;
``K`` stays the entry price, the at-the-money strike), ``cost`` (the spread paid that day)
and ``hedge_cost`` (the hedge trades' cost that day); ``pnl`` and ``hedge_pnl`` are net of
them. A straddle closed early has rows up to its exit day only (``action`` "exit" on it), so
rows per straddle vary; the summary (``layout.X_SUMMARY_COLUMNS``) adds the strikes, the costs, the
exit day and the exit reason (``expiry``/``days``/``profit``/``loss``).

Implementations: ``reference`` (``structures_ref.py``, one straddle at a time, ``math``),
``numpy`` (all straddles of a chunk at once, one loop over the days for the P&L and the exit
rule), ``numba`` (``structures_nb.py``). They agree within ``core.RTOL`` (the seed's
agreement: their exp/normal tails differ in the last bits); each is bitwise identical for
any ``chunk_size``, ``n_jobs`` and backend. (A profit/loss mark within rounding of its
threshold could close a straddle a day apart between two implementations; the marks agree
to ~1e-15 of the premium, so it needs a mark equal to the threshold to ~15 digits.)
``impl="cupy"`` runs the NumPy code on the CPU
when no GPU is used (``device="auto"`` without one, or ``device="cpu"``); on a GPU these
options are refused with an error (the CUDA kernels value the seed's straddle only).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import data, parallel
from ..device import resolve_device
from . import core, dataset
from .chunks import PARQUET_ROW_GROUP_STRADDLES, pool_kw, stream_parquet
from .layout import empty_rows, empty_summary, rows_table, summary_arrays, summary_table
from .schedule import Schedule, asset_days
from .nb import _plain, log_prices_nb
from .spec import Spec, wing_z
from .structures_nb import SF_COLUMNS, SPREAD_CODES, value_structures_nb

# --------------------------------------------------------------------------- strikes
def strikes(spec: Spec, S0: np.ndarray, vol0: np.ndarray, sqrt_tau0: float,
            disc0: float) -> tuple[np.ndarray, np.ndarray]:
    """``(K_call, K_put)`` per straddle, solved on the entry day (``spec.strikes_scalar``
    vectorized; the fast paths share it)."""
    if spec.wing_kind == "atm":
        kc, kp = S0.copy(), S0.copy()
    elif spec.wing_kind == "moneyness":
        kc, kp = S0 * (1.0 + spec.wing), S0 * (1.0 - spec.wing)
    else:
        z = wing_z(spec, disc0)
        sq = vol0 * sqrt_tau0
        kc = S0 * np.exp(0.5 * sq * sq - z * sq)
        kp = S0 * np.exp(0.5 * sq * sq + z * sq)
    if not spec.has_put:
        kp = kc.copy()
    if not spec.has_call:
        kc = kp.copy()
    return kc, kp


# --------------------------------------------------------------------------- NumPy
def value_chunk_numpy(price, vol_days, dates_ns, start, sched: Schedule, rate: float,
                      side: float, hedge: bool, spec: Spec, tables, keep: bool = True):
    """All straddles of a chunk at once: returns ``(rows or None, summary)``; rows up to
    each straddle's exit day, straddle after straddle."""
    from scipy.special import ndtr

    T = sched.tenor
    n1, n = T + 1, len(sched)
    tau_t, sqrt_t, disc_t = tables
    idx = start[:, None] + np.arange(n1)[None, :]
    S = price[idx]
    vol = vol_days[idx]
    S0 = S[:, 0]
    kc, kp = strikes(spec, S0, vol[:, 0], sqrt_t[0], disc_t[0])
    Sl, dc, st = S[:, :T], disc_t[:T], sqrt_t[:T]
    sq = vol[:, :T] * st
    lnS = np.log(S[:, :T])
    shape = S.shape
    call, put, value = np.zeros(shape), np.zeros(shape), np.empty(shape)
    delta, gamma, vega, theta = (np.empty(shape) for _ in range(4))
    zero = np.zeros((n, T))
    dlc = dlp = pc = pp = zero

    def leg(K):
        d1 = (lnS - np.log(K)[:, None] + 0.5 * sq * sq) / sq
        d2 = d1 - sq
        a1, a2 = ndtr(-np.abs(d1)), ndtr(-np.abs(d2))
        return d1, d2, a1, a2

    if spec.has_call:
        d1, d2, a1, a2 = leg(kc)
        nd1 = np.where(d1 >= 0, 1.0 - a1, a1)
        nd2 = np.where(d2 >= 0, 1.0 - a2, a2)
        call[:, :T] = dc * (Sl * nd1 - kc[:, None] * nd2)
        dlc, pc = nd1, np.exp(-0.5 * d1 * d1) * core.INV_SQRT_2PI
    if spec.has_put:
        d1, d2, a1, a2 = leg(kp)
        nm1 = np.where(d1 >= 0, a1, 1.0 - a1)
        nm2 = np.where(d2 >= 0, a2, 1.0 - a2)
        put[:, :T] = dc * (kp[:, None] * nm2 - Sl * nm1)
        dlp, pp = nm1, np.exp(-0.5 * d1 * d1) * core.INV_SQRT_2PI
    value[:, :T] = call[:, :T] + put[:, :T]
    psum = pc + pp
    delta[:, :T] = dc * (dlc - dlp)
    gamma[:, :T] = dc * psum / (Sl * sq)
    vega[:, :T] = dc * Sl * psum * st
    theta[:, :T] = (rate * value[:, :T] - dc * Sl * psum * vol[:, :T] / (2.0 * st)) \
        / core.CALENDAR_DAYS
    ST = S[:, T]
    call[:, T] = np.maximum(ST - kc, 0.0) if spec.has_call else 0.0
    put[:, T] = np.maximum(kp - ST, 0.0) if spec.has_put else 0.0
    value[:, T] = call[:, T] + put[:, T]
    delta[:, T] = ((np.where(ST > kc, 1.0, 0.0) if spec.has_call else 0.0)
                   + (np.where(ST < kp, -1.0, 0.0) if spec.has_put else 0.0))
    gamma[:, T] = vega[:, T] = theta[:, T] = 0.0

    # costs, P&L and the exit rule, close by close (vectorized over the straddles)
    h, c = spec.half_spread, spec.hedge_cost
    cross = (h * vega if spec.spread_kind == "vol" else
             h * value if spec.spread_kind == "premium" else np.zeros(shape))
    pnl, hpnl, cost, hcost, cum = (np.empty(shape) for _ in range(5))
    cost[:, 0] = cross[:, 0]
    hcost[:, 0] = c * S[:, 0] * np.abs(delta[:, 0])
    pnl[:, 0] = 0.0 - cost[:, 0]
    hpnl[:, 0] = 0.0 - hcost[:, 0]
    cp, ch = 0.0 + pnl[:, 0], 0.0 + hpnl[:, 0]
    csum, hsum = 0.0 + cost[:, 0], 0.0 + hcost[:, 0]
    cum[:, 0] = cp + ch if hedge else cp
    premium = value[:, 0]
    e = np.full(n, T, np.int16)
    reason = np.zeros(n, np.int8)
    alive = np.ones(n, bool)
    for k in range(1, n1):
        g = side * (value[:, k] - value[:, k - 1])
        hg = -delta[:, k - 1] * (S[:, k] - S[:, k - 1]) * side
        mark = (cp + g) + (ch + hg) if hedge else cp + g
        if k == T:
            done, why = alive, np.zeros(n, np.int8)
        else:
            prof = mark >= spec.exit_profit * premium
            loss = ~prof & (mark <= -(spec.exit_loss * premium))
            done = alive & (prof | loss | (k == spec.exit_days))
            why = np.where(prof, 2, np.where(loss, 3, 1)).astype(np.int8)
        cost[:, k] = np.where(done, cross[:, k], 0.0) if k < T else 0.0
        hcost[:, k] = np.where(done, c * S[:, k] * np.abs(delta[:, k - 1]),
                               c * S[:, k] * np.abs(delta[:, k] - delta[:, k - 1]))
        pnl[:, k] = g - cost[:, k]
        hpnl[:, k] = hg - hcost[:, k]
        cp = np.where(alive, cp + pnl[:, k], cp)
        ch = np.where(alive, ch + hpnl[:, k], ch)
        csum = np.where(alive, csum + cost[:, k], csum)
        hsum = np.where(alive, hsum + hcost[:, k], hsum)
        cum[:, k] = cp + ch if hedge else cp
        e[done] = k
        reason[done] = why[done]
        alive &= ~done
    rows_ix = np.arange(n)
    SF = np.stack([premium, value[rows_ix, e], S[rows_ix, e], cp, ch, csum, hsum])
    summ = summary_arrays(sched, dates_ns, price, start, kc, kp, SF, dates_ns[start + e], e,
                          reason)
    if not keep:
        return None, summ
    mask = np.arange(n1)[None, :] <= e[:, None]
    counts = e.astype(np.int64) + 1
    out = {"S": S[mask], "K": np.repeat(S0, counts), "K_call": np.repeat(kc, counts),
           "K_put": np.repeat(kp, counts), "vol": vol[mask],
           "tau": np.broadcast_to(tau_t, shape)[mask]}
    for name, a in (("call", call), ("put", put), ("value", value), ("delta", delta),
                    ("gamma", gamma), ("vega", vega), ("theta", theta), ("pnl", pnl),
                    ("hedge_pnl", hpnl), ("cost", cost), ("hedge_cost", hcost),
                    ("cum_pnl", cum)):
        out[name] = a[mask]
    day = np.broadcast_to(np.arange(n1, dtype=np.int16), shape)[mask]
    out.update(_identity(sched, counts, day, dates_ns[idx[mask]]))
    return out, summ


def _identity(sched: Schedule, counts: np.ndarray, day: np.ndarray, date: np.ndarray) -> dict:
    act = np.where(day == 0, 0, 1).astype(np.int8)
    ends = np.cumsum(counts) - 1
    act[ends] = 2
    return {"asset": np.repeat(sched.asset, counts), "year": np.repeat(sched.year, counts),
            "month": np.repeat(sched.month, counts), "i": np.repeat(sched.i, counts),
            "straddle_id": np.repeat(sched.straddle_id, counts), "date": date, "day": day,
            "action": act}


# --------------------------------------------------------------------------- Numba
def value_chunk_numba(price, vol_days, dates_ns, start, sched: Schedule, rate: float,
                      side: float, hedge: bool, spec: Spec, tables, keep: bool = True):
    """The Numba kernel over a chunk: ``(rows or None, summary)`` as
    :func:`value_chunk_numpy`."""
    T = int(sched.tenor)
    lo, hi = int(start.min()), int(start.max()) + T + 1
    price, vol_days, dates_ns = _plain(price[lo:hi]), _plain(vol_days[lo:hi]), \
        _plain(dates_ns[lo:hi])
    start = start - lo
    tau_t, sqrt_t, disc_t = tables
    kc, kp = strikes(spec, price[start], vol_days[start], sqrt_t[0], disc_t[0])
    n = len(sched)
    rows = empty_rows(n * (T + 1) if keep else 1)
    SF = np.empty((len(SF_COLUMNS), n))
    exit_date, exit_day, reason = np.empty(n, np.int64), np.empty(n, np.int16), \
        np.empty(n, np.int8)
    n_rows = value_structures_nb(
        price, log_prices_nb(price), vol_days, dates_ns, start, _plain(sched.asset),
        _plain(sched.year), _plain(sched.month), _plain(sched.i), _plain(sched.straddle_id),
        kc, kp, T, float(rate), float(side), bool(hedge), spec.has_call, spec.has_put,
        SPREAD_CODES[spec.spread_kind], float(spec.half_spread), float(spec.hedge_cost),
        int(spec.exit_days), float(spec.exit_profit), float(spec.exit_loss), tau_t, sqrt_t,
        disc_t, bool(keep), rows["_F"], rows["asset"], rows["year"], rows["month"],
        rows["i"], rows["straddle_id"], rows["date"], rows["day"], rows["action"], SF,
        exit_date, exit_day, reason)
    summ = summary_arrays(sched, dates_ns, price, start, kc, kp, SF, exit_date, exit_day,
                          reason)
    if not keep:
        return None, summ
    return {k: v[:n_rows] for k, v in rows.items() if k != "_F"}, summ


# --------------------------------------------------------------------------- chunks
IMPLS = {"numpy": value_chunk_numpy, "numba": value_chunk_numba}


def value_chunk(impl: str, price, vol_days, dates_ns, start, sched, rate, side, hedge,
                spec, tables, keep=True):
    """One chunk with ``impl`` ("numpy" or "numba")."""
    return IMPLS[impl](price, vol_days, dates_ns, start, sched, rate, side, hedge, spec,
                       tables, keep)


@dataclass
class XJob:
    """One chunk task (the store travels apart: ``parallel.imap(shared=...)``)."""

    sched: Schedule
    chunk: int
    impl: str
    rate: float
    side: float
    hedge: bool
    spec: Spec
    mode: str                   # "table" | "summary" | "parquet"
    layout: str = "rows"        # parquet: "rows" | "normalized"
    tmpdir: str | None = None


def run_job(job: XJob, store: data.PriceStore):
    """Value one chunk: ``(rows, summary)`` ("table"), ``summary`` ("summary") or
    ``(n_rows, summary)`` after writing the chunk's part file ("parquet")."""
    sched = job.sched
    price, vol, dates_ns, start = asset_days(store, sched)
    tables = core.day_tables(sched.tenor, job.rate)
    args = (job.rate, job.side, job.hedge, job.spec, tables)
    if job.mode == "table":
        return value_chunk(job.impl, price, vol, dates_ns, start, sched, *args)
    if job.mode == "summary":
        return value_chunk(job.impl, price, vol, dates_ns, start, sched, *args, keep=False)[1]
    parts, n = [], 0
    final = Path(job.tmpdir) / f"part-{job.chunk:06d}.parquet"
    with dataset.PartFile(final) as part:
        for lo in range(0, len(sched), PARQUET_ROW_GROUP_STRADDLES):
            sub = sched.take(lo, min(len(sched), lo + PARQUET_ROW_GROUP_STRADDLES))
            rows, summ = value_chunk(job.impl, price, vol, dates_ns, start[lo:lo + len(sub)],
                                     sub, *args)
            parts.append(summ)
            n += len(rows["S"])
            if job.layout == "normalized":
                part.write(dataset.day_table(rows, dataset.day_columns(job.spec)),
                           dataset.DAY_PARQUET_OPTIONS)
            else:
                part.write(rows_table(rows, sched.assets), dataset.X_ROWS_PARQUET_OPTIONS)
    return n, {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def check_device(impl: str, device: str) -> str:
    """The CPU implementation that runs these options for ``impl``/``device``."""
    if impl == "cupy":
        if resolve_device(device) == "gpu":
            raise ValueError("structure/wing/spread/hedge_cost_bps/exit other than the "
                             "seed's straddle are not on the GPU: the CUDA kernels value the "
                             "seed's at-the-money straddle held to expiry; use impl='numba' "
                             "(or device='cpu')")
        return "numpy"
    return impl


# --------------------------------------------------------------------------- the run
def run(store: data.PriceStore, schedule: Schedule, spec: Spec, *, rate: float, side: float,
        hedge: bool, impl: str, device: str, n_jobs: int, backend: str,
        scheduler: str | None, chunk_size: int, output: str, path, layout: str,
        progress: bool | None, params: dict):
    """Run a backtest with a non-seed spec on the chunk kernels (the reference runs in
    ``api.backtest``): ``(rows table | None, summary table | None, n_rows, dataset path |
    None)``."""
    impl = check_device(impl, device)

    def tasks(bounds, part_dir=None) -> list:
        return [XJob(schedule.take(lo, hi), c, impl, rate, side, hedge, spec, output, layout,
                     part_dir) for c, (lo, hi) in enumerate(bounds)]

    pool = dict(n_jobs=n_jobs, backend=backend, scheduler=scheduler, progress=progress)
    if output == "parquet":
        final, n = stream_parquet(store, schedule, path, {**params, "spec": spec.to_json()},
                                  tasks, worker=run_job, summary=summary_table,
                                  day_columns=dataset.day_columns(spec), layout=layout,
                                  chunk_size=chunk_size, **pool)
        return None, None, n, final

    bounds = parallel.chunk_bounds(len(schedule), chunk_size)
    rows_parts, summ = [], empty_summary(len(schedule))
    for c, res in enumerate(parallel.imap(run_job, tasks(bounds), **pool_kw(store, **pool))):
        lo, hi = bounds[c]
        part = res[1] if output == "table" else res
        for k, v in summ.items():
            v[lo:hi] = part[k]
        if output == "table":
            rows_parts.append(res[0])
    n = int(np.sum(summ["exit_day"].astype(np.int64) + 1))
    # the chunks' tables side by side (no copy: one Arrow chunk per chunk of straddles)
    rows = (pa.concat_tables([rows_table(p, schedule.assets) for p in rows_parts])
            if output == "table" else None)
    return rows, summary_table(summ, schedule.assets), n, None

