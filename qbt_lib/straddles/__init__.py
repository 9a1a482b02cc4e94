"""straddles: value monthly option straddles day by day over many assets (seed 004).

The original system, its published figures and the exact semantics: ``docs/straddles.md``.

The story in four calls::

    from qbt_lib import straddles
    store, assets = straddles.load_market("synthetic", assets=8)  # "sp500", a path, frames
    sched = straddles.build_schedule(store, assets, 2001, 2024, per_month=8, tenor=63)
    bt = straddles.backtest(store, sched, impl="numba", n_jobs=-1)   # rows + summary
    bt.rows            # pyarrow.Table, one row per straddle-day (numeric + categorical)
    bt.summary         # DataFrame, one row per straddle: entry/exit, pnl, hedged pnl, return

or all at once: ``straddles.run(source="synthetic", assets=8, ...)``.

Implementations (``impl``), all giving the same rows for the same inputs:

- ``reference``: the original's shape (``reference.py``): a dict keyed
  ``asset|field|YYYY-MM-DD``, a Python loop per straddle and per day, ``math``.
- ``numpy``: all straddle-days of a chunk at once: index arithmetic + gathers from the
  asset's price/vol arrays + one vectorized Black-76 pass (``core.value_rows_xp``).
- ``numba``: blocks of rows, one SIMD-vectorized loop per quantity with branch-free exp
  and normal tail (``nb.py``), ~15-20 ns per straddle-day on one core.
- ``cupy``: on a GPU, two small fused kernels per chunk (``gpu.py``). ``device="auto"``
  without a GPU falls back to the NumPy code (the same xp-generic function).

The fast paths use different log/exp/normal-CDF implementations (C library, NumPy SIMD,
Cephes, CUDA), so their rows equal the reference's within ``core.RTOL`` = 1e-12 (money
columns relative to the strike; measured <= 1e-13), not bit for bit; see ``core``.

Straddles are cut into fixed-size chunks (``chunk_size``, independent of ``n_jobs``) that
run over ``sequential``/``threads``/``loky``/``dask`` workers; each worker reads only the
assets its chunk needs from the memory-mapped price store, never a pickled copy of the
prices (the original's pitfall). Chunk results are placed in straddle order, so the output
is bitwise identical for any ``n_jobs`` and backend. ``output="parquet"`` streams the chunks
to a Parquet dataset (workers write their own part files into a temp directory that is
renamed when complete), with memory bounded by ``n_jobs x chunk_size``;
``layout="normalized"`` writes only the day columns (``dataset.py``) and reads back the
same rows.

Beyond the seed's straddle (issue #16, ``docs/straddles.md``): ``structure`` (strangle by
delta or moneyness, call, put), ``spread`` and ``hedge_cost_bps``, ``exit`` before expiry
(``spec.py``, valued by ``structures.py``), and the book of all open positions netted by
date, ``Backtest.portfolio(normalize)`` (``portfolio.py``).
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import data, parallel, paths
from ..device import resolve_device
from ..params import as_bool, as_float, as_int, one_of
from . import core, dataset, portfolio, structures, structures_ref
from .core import ROW_COLUMNS, SIDES, compare_rows, day_tables, rows_table, summary_table
from .dataset import LAYOUTS, open_dataset
from .layout import row_offsets
from .market import (build_store, check_store, clean_frames, data_years, load_market,
                     market_frames,
                     select_assets, sp500_frames, synthetic_frames)
from .schedule import Schedule, asset_days, build_schedule
from .spec import EXIT_REASONS, SEED, STRUCTURES, Spec
from .spec import parse as parse_spec

__all__ = ["IMPLS", "OUTPUTS", "Backtest", "Schedule", "backtest", "build_schedule",
           "build_store", "clean_frames", "compare_rows", "market_frames", "load_market",
           "data_years",
           "reference_backtest", "run", "select_assets", "sp500_frames", "synthetic_frames",
           "value_path", "warm_up", "compare_impls", "Spec", "STRUCTURES", "EXIT_REASONS",
           "LAYOUTS", "open_dataset", "parse_spec", "portfolio"]

IMPLS = ("reference", "numpy", "numba", "cupy")
OUTPUTS = ("table", "summary", "parquet")
DEFAULT_CHUNK = 4096
SCRATCH_STRADDLES = 512  # output="summary": 32k rows (4.8 MB) per buffer, stays in cache
PARQUET_ROW_GROUP_STRADDLES = 4096  # output="parquet": 262k rows per row group (measured: fewer,
# larger row groups encode faster than cache-sized ones)
# Parquet settings used for the streamed dataset (and for the raw-write comparison in the
# benchmark): dictionary-encode only the columns that repeat; the unique floats would build
# a dictionary just to throw it away.
PARQUET_DICT_COLUMNS = ["asset", "year", "month", "i", "straddle_id", "date", "day", "S",
                        "K", "vol", "tau", "action"]
PARQUET_OPTIONS: dict[str, Any] = {"compression": "snappy",
                                   "use_dictionary": PARQUET_DICT_COLUMNS}


# --------------------------------------------------------------------------- results
@dataclass
class Backtest:
    """What :func:`backtest` returns: the rows (in memory, or a Parquet dataset) and the
    per-straddle summary."""

    schedule: Schedule
    params: dict
    rows: pa.Table | None = None
    path: Path | None = None
    seconds: float = 0.0
    _summary: pa.Table | None = field(default=None, repr=False)
    spec: Spec = SEED               # structure, costs, exit (``spec.py``)
    layout: str = "rows"            # output="parquet": "rows" | "normalized" (``dataset.py``)
    dates: np.ndarray | None = field(default=None, repr=False)  # the store's days (int64 ns)
    _n_rows: int | None = field(default=None, repr=False)

    @property
    def n_straddles(self) -> int:
        return len(self.schedule)

    @property
    def n_rows(self) -> int:
        """Straddle-days valued and kept (fewer than the schedule's when exits close
        straddles before expiry)."""
        return self.schedule.straddle_days if self._n_rows is None else self._n_rows

    def dataset(self) -> dataset.Dataset:
        """The Parquet dataset of ``output="parquet"`` (either layout), for reading back."""
        if self.path is None:
            raise ValueError("no dataset: output='parquet' writes one")
        return open_dataset(self.path)

    def portfolio(self, normalize: str = "premium") -> pd.DataFrame:
        """The daily mark-to-market book of all open positions (``portfolio.daily_book``):
        P&L netted by date, normalized per straddle by its premium or its notional."""
        if self.rows is not None:
            parts = [self.rows]
        elif self.path is not None:
            parts = self.dataset().iter_parts()
        else:
            raise ValueError("the daily book needs the rows: output='table' or 'parquet' "
                             "(output='summary' keeps only one row per straddle)")
        return portfolio.daily_book(parts, self.dates, hedge=self.params["hedge"],
                                    normalize=normalize)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per straddle: entry/exit dates and values, pnl, hedged pnl, returns."""
        if self._summary is None and self.path is not None:
            self._summary = pq.read_table(self.path / "summary")
        return self._summary.to_pandas()

    @property
    def skipped(self) -> pd.DataFrame:
        """The straddles that could not be valued, with the reason."""
        return self.schedule.skipped

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (reads the dataset back when they were streamed)."""
        if self.rows is not None:
            return self.rows.to_pandas()
        if self.path is not None:
            return self.dataset().read().to_pandas()
        raise ValueError("the rows were not kept (output='summary')")

    def straddle(self, straddle_id: int) -> pd.DataFrame:
        """The rows of one straddle: its greeks and P&L through its life."""
        sid = as_int("straddle_id", straddle_id, min=0)
        pos = np.searchsorted(self.schedule.straddle_id, sid)
        if pos >= len(self.schedule) or self.schedule.straddle_id[pos] != sid:
            raise ValueError(f"straddle_id {sid} was not valued (skipped or not scheduled)")
        n1 = self.schedule.days
        if self.rows is not None and not self.spec.is_seed:  # rows up to each exit day
            off = row_offsets(self._summary["exit_day"].to_numpy(), len(self.schedule),
                              self.schedule.tenor, True)
            return self.rows.slice(int(off[pos]), int(off[pos + 1] - off[pos])).to_pandas()
        if self.rows is not None:
            return self.rows.slice(pos * n1, n1).to_pandas()
        if self.path is None:
            raise ValueError("the rows were not kept (output='summary')")
        if self.layout == "normalized":
            return self.dataset().straddle(sid)
        import pyarrow.dataset as ds
        t = ds.dataset(self.path / "rows", format="parquet").to_table(
            filter=ds.field("straddle_id") == sid)
        return t.to_pandas()


# --------------------------------------------------------------------------- chunk work
@dataclass
class _Job:
    """One chunk task. The store is not in it: it is handed to :func:`_run_job` once per
    run (``parallel.imap(shared=...)``; on Dask scattered in memory to every worker)."""

    store: data.PriceStore | None
    sched: Schedule
    chunk: int
    impl: str
    device: str
    rate: float
    side: float
    hedge: bool
    mode: str                       # "into" | "scratch" | "return" | "parquet"
    out: dict | None = None         # "into": views of the caller's row arrays
    tmpdir: str | None = None       # "parquet": where to write the part files
    summ_out: dict | None = None    # in-process workers: views of the summary arrays
    layout: str = "rows"            # "parquet": full rows, or the normalized day columns


_local = threading.local()


def _scratch(n_rows: int) -> dict:
    """Row buffers reused by every chunk a thread/process values (output='summary')."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf["S"].shape[0] < n_rows:
        buf = core.empty_rows(n_rows)
        _local.buf = buf
    return {k: v[:n_rows] for k, v in buf.items()}


def value_chunk(impl: str, device: str, price, vol, dates_ns, start, sched: Schedule,
                rate: float, side: float, hedge: bool, out: dict, discard: bool = False):
    """Value one chunk's rows into ``out``; returns per straddle the P&L sums and the entry
    and exit values. ``discard`` (Numba only): ``out`` holds one kernel block
    (``nb.block_rows``), overwritten block after block."""
    tables = day_tables(sched.tenor, rate)
    if impl == "numba":
        from .nb import value_chunk_numba
        return value_chunk_numba(price, vol, dates_ns, start, sched, rate, side, hedge,
                                 tables, out, discard)
    if discard:
        raise ValueError("discard=True is a Numba kernel mode")
    if impl == "cupy" and resolve_device(device) == "gpu":
        from .gpu import value_chunk_gpu
        s_pnl, s_hedge = value_chunk_gpu(price, vol, dates_ns, start, sched, rate, side,
                                         hedge, tables, out)
    else:  # numpy, and cupy's CPU fallback (the same xp-generic code with xp=numpy)
        s_pnl, s_hedge = core.value_chunk_numpy(price, vol, dates_ns, start, sched, rate,
                                                side, hedge, tables, out)
    n1 = sched.days
    return s_pnl, s_hedge, out["value"][::n1].copy(), out["value"][n1 - 1::n1].copy()


def _run_job(job: _Job, store: data.PriceStore | None = None):
    sched = job.sched
    price, vol, dates_ns, start = asset_days(store if store is not None else job.store, sched)
    args = (job.impl, job.device, price, vol, dates_ns)
    params = (job.rate, job.side, job.hedge)
    if job.mode == "scratch" and job.impl == "numba":
        # every row is valued into a one-block buffer (L2-sized) that the next block
        # overwrites, inside the kernel; only the per-straddle results come back
        from .nb import block_rows
        out = _scratch(block_rows(sched.tenor))
        res = value_chunk(*args, start, sched, *params, out, discard=True)
        return _place(job, core.summary_arrays(sched, dates_ns, price, start, res[2], res[3],
                                               res[0], res[1]))
    if job.mode in ("scratch", "parquet"):
        # through a buffer of a sub-chunk, reused: only the summary is kept ("scratch"), or
        # each sub-chunk becomes a row group of this chunk's part file ("parquet")
        step = SCRATCH_STRADDLES if job.mode == "scratch" else PARQUET_ROW_GROUP_STRADDLES
        writer = None
        parts = []
        try:
            for lo in range(0, len(sched), step):
                sub = sched.take(lo, min(len(sched), lo + step))
                st = start[lo:lo + len(sub)]
                out = _scratch(sub.straddle_days)
                s_pnl, s_hedge, ev, xv = value_chunk(*args, st, sub, *params, out)
                parts.append(core.summary_arrays(sub, dates_ns, price, st, ev, xv, s_pnl,
                                                 s_hedge))
                if job.mode == "parquet":
                    normalized = job.layout == "normalized"
                    table = (dataset.day_table(out) if normalized else
                             rows_table(out, sched.assets))
                    if writer is None:
                        # a temp name, renamed to the chunk's fixed name when complete: a
                        # chunk recomputed after its worker was lost is harmless
                        final = Path(job.tmpdir) / f"part-{job.chunk:06d}.parquet"
                        part_tmp = final.with_name(
                            f"{final.name}.{os.getpid()}-{threading.get_ident()}.tmp")
                        writer = pq.ParquetWriter(part_tmp, table.schema,
                                                  **(dataset.DAY_PARQUET_OPTIONS if normalized
                                                     else PARQUET_OPTIONS))
                    writer.write_table(table)
            if writer is not None:
                writer.close()
                writer = None
                os.replace(part_tmp, final)
        finally:
            if writer is not None:
                writer.close()
                part_tmp.unlink(missing_ok=True)
        summ = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return (sched.straddle_days, summ) if job.mode == "parquet" else _place(job, summ)
    out = job.out if job.mode == "into" else core.empty_rows(sched.straddle_days)
    s_pnl, s_hedge, ev, xv = value_chunk(*args, start, sched, *params, out)
    summ = core.summary_arrays(sched, dates_ns, price, start, ev, xv, s_pnl, s_hedge)
    if job.mode == "return":
        return out, summ
    return _place(job, summ)


def _place(job: _Job, summ: dict):
    """Write a chunk's summary into the caller's arrays (in-process workers), or return it."""
    if job.summ_out is None:
        return summ
    for k, v in job.summ_out.items():
        v[...] = summ[k]
    return None


def _check_params(rate, side, hedge, impl, device, n_jobs, backend, chunk_size, output):
    rate = as_float("rate", rate, min=-1.0, max=1.0)
    side_name = one_of("side", side, tuple(SIDES))
    hedge = as_bool("hedge", hedge)
    impl = one_of("impl", impl, IMPLS)
    device = one_of("device", device, ("auto", "cpu", "gpu"))
    if device == "gpu" and impl != "cupy":
        raise ValueError(f"device='gpu' needs impl='cupy' (impl={impl!r} runs on the CPU)")
    n_jobs = parallel.resolve_n_jobs(n_jobs)
    backend = one_of("backend", backend, parallel.BACKENDS)
    chunk_size = as_int("chunk_size", chunk_size, min=1, max=10_000_000)
    output = one_of("output", output, OUTPUTS)
    return rate, side_name, hedge, impl, device, n_jobs, backend, chunk_size, output


def backtest(store: data.PriceStore, schedule: Schedule, *, rate: float = 0.0,
             side: str = "long", hedge: bool = True, impl: str = "numba",
             device: str = "auto", n_jobs: int = 1, backend: str = "threads",
             scheduler: str | None = "local", chunk_size: int = DEFAULT_CHUNK,
             output: str = "table", path: str | os.PathLike | None = None,
             progress: bool | None = None, structure: str = "straddle", wing: Any = None,
             spread: Any = None, hedge_cost_bps: float = 0.0, exit: str = "expiry",
             layout: str = "rows") -> Backtest:
    """Value every straddle of ``schedule`` on every day of its life.

    ``output``: ``"table"`` keeps all rows in memory (``Backtest.rows``, an Arrow table);
    ``"summary"`` values every row but keeps only the per-straddle summary (memory bounded
    by the chunk size); ``"parquet"`` streams the rows to a Parquet dataset at ``path``
    (``rows/`` and ``summary/`` part files, written to a temp dir renamed when complete;
    ``layout="normalized"``: ``days/`` with only the day columns, ``market/`` once, see
    ``dataset.py``; read back with ``Backtest.frame()``/``open_dataset``).
    ``impl="reference"`` always runs in one piece, sequentially: it is the "before".

    ``structure``, ``wing``, ``spread``, ``hedge_cost_bps``, ``exit``: what is traded and
    how it is closed (``spec.py``); their defaults are the seed's straddle, whose rows they
    leave unchanged.
    """
    (rate, side_name, hedge, impl, device, n_jobs, backend, chunk_size,
     output) = _check_params(rate, side, hedge, impl, device, n_jobs, backend, chunk_size,
                             output)
    spec = parse_spec(structure, wing, spread, hedge_cost_bps, exit)
    layout = one_of("layout", layout, LAYOUTS)
    check_store(store)
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    side_v = SIDES[side_name]
    if impl == "cupy":
        resolve_device(device)  # device='gpu' without a GPU raises here, once
    params = {"rate": rate, "side": side_name, "hedge": hedge, "impl": impl, "device": device,
              "n_jobs": n_jobs, "backend": backend, "chunk_size": chunk_size,
              "output": output, "tenor": schedule.tenor, **spec.params()}
    if output == "parquet":
        params["layout"] = layout
    t0 = time.perf_counter()
    done = dict(spec=spec, layout=layout, dates=store.dates.asi8)
    if not spec.is_seed:  # structures, costs, exits: structures.py
        rows, summ, n_rows, final = structures.run(
            store, schedule, spec, rate=rate, side=side_v, hedge=hedge, impl=impl,
            device=device, n_jobs=n_jobs, backend=backend, scheduler=scheduler,
            chunk_size=chunk_size, output=output, path=path, layout=layout,
            progress=progress, params=params)
        return Backtest(schedule, params, rows=rows, path=final,
                        seconds=time.perf_counter() - t0, _summary=summ, _n_rows=n_rows,
                        **done)
    if impl == "reference":
        if output == "parquet":
            raise ValueError("output='parquet' streams chunks; the reference runs in one "
                             "piece: use impl='numpy' or 'numba' to stream")
        rows, summ = reference_backtest(store, schedule, rate=rate, side=side_name, hedge=hedge)
        return Backtest(schedule, params, rows=rows if output == "table" else None,
                        seconds=time.perf_counter() - t0, _summary=summ, **done)
    bounds = parallel.chunk_bounds(len(schedule), chunk_size)
    eff_backend, _ = parallel.effective_backend(backend, n_jobs, len(bounds))
    in_process = eff_backend in ("sequential", "threads")
    kw = dict(backend=backend, n_jobs=n_jobs, scheduler=scheduler, progress=progress,
              desc="straddles", unit="chunk", shared=(store,))

    def jobs(mode, out=None, tmpdir=None):
        for c, (lo, hi) in enumerate(bounds):
            n1 = schedule.days
            views = ({k: v[lo * n1:hi * n1] for k, v in out.items()} if out is not None
                     else None)
            yield _Job(None, schedule.take(lo, hi), c, impl, device, rate, side_v, hedge,
                       mode, views, tmpdir, layout=layout)

    if output == "parquet":
        if path is None:
            raise ValueError("output='parquet' needs path= (the dataset directory)")
        local = paths.local_path(path, "path")  # a path or a file:// URI
        final = paths.resolve_output_dir(local.parent) / local.name
        sub = "days" if layout == "normalized" else "rows"
        with paths.atomic_dir(final, replace=True) as tmp:
            (tmp / sub).mkdir()
            (tmp / "summary").mkdir()
            n = 0
            summary_writer = None
            tasks = list(jobs("parquet", tmpdir=str(tmp / sub)))
            try:  # workers write the rows; the summary (1/64 of it) is written here, in order
                for n_rows, summ in parallel.imap(_run_job, tasks, **kw):
                    n += n_rows
                    t = summary_table(summ, schedule.assets)
                    if summary_writer is None:
                        summary_writer = pq.ParquetWriter(
                            tmp / "summary" / "part-000000.parquet", t.schema)
                    summary_writer.write_table(t)
            finally:
                if summary_writer is not None:
                    summary_writer.close()
            for stray in (tmp / sub).glob("*.tmp"):  # from a chunk whose worker was lost
                stray.unlink(missing_ok=True)
            if layout == "normalized":
                dataset.write_market(tmp, store, schedule)
            (tmp / "meta.json").write_text(json.dumps(
                {**params, "n_straddles": len(schedule), "n_rows": n,
                 "assets": schedule.assets, "skipped": len(schedule.skipped),
                 "layout": layout, "parts": [[lo, hi] for lo, hi in bounds],
                 "day_columns": list(dataset.DAY_COLUMNS) if layout == "normalized"
                 else None}))
        return Backtest(schedule, params, path=final, seconds=time.perf_counter() - t0,
                        **done)

    # the summary goes straight into its final arrays: workers in this process write their
    # slice; results from worker processes are placed as they arrive
    summ = core.empty_summary(len(schedule))
    out = core.empty_rows(schedule.straddle_days) if output == "table" else None
    mode = "scratch" if output == "summary" else ("into" if in_process else "return")
    tasks = list(jobs(mode, out=out if mode == "into" else None))
    if in_process:
        for job, (lo, hi) in zip(tasks, bounds):
            job.summ_out = {k: v[lo:hi] for k, v in summ.items()}
        if len(tasks) == 1:  # one chunk (the seed's 2,304 straddles): no pool, no bar
            _run_job(tasks[0], store)
        else:
            parallel.pmap(_run_job, tasks, **kw)
    else:
        n1 = schedule.days
        for (lo, hi), res in zip(bounds, parallel.imap(_run_job, tasks, **kw)):
            rows, part = res if mode == "return" else (None, res)
            for k, v in summ.items():
                v[lo:hi] = part[k]
            if rows is not None:
                for k, v in out.items():
                    v[lo * n1:hi * n1] = rows[k]
    return Backtest(schedule, params,
                    rows=rows_table(out, schedule.assets) if out is not None else None,
                    seconds=time.perf_counter() - t0,
                    _summary=summary_table(summ, schedule.assets), **done)


# --------------------------------------------------------------------------- reference
def reference_backtest(store: data.PriceStore, schedule: Schedule, *, rate: float = 0.0,
                       side: str = "long", hedge: bool = True,
                       prices: dict | None = None) -> tuple[pa.Table, pa.Table]:
    """Run the reference over the schedule's assets and years and return its rows and
    summary as tables (the same layout as the fast paths)."""
    from . import reference
    if prices is None:
        prices = reference.build_prices_dict(store, schedule.assets)
    res = reference.run(prices, schedule.assets, schedule.start_year, schedule.end_year,
                        schedule.per_month, schedule.tenor, rate, SIDES[side], hedge)
    return reference_tables(res, schedule.assets)


def reference_tables(res: dict, assets: list[str]) -> tuple[pa.Table, pa.Table]:
    """The reference's list-of-lists rows and summary as Arrow tables."""
    code = {a: k for k, a in enumerate(assets)}
    cols: dict[str, np.ndarray] = {}
    rows = res["rows"]
    for j, (name, dt) in enumerate(ROW_COLUMNS):
        vals = [r[j] for r in rows]
        if name == "asset":
            cols[name] = np.array([code[v] for v in vals], np.int32)
        elif name == "action":
            cols[name] = np.array([core.ACTIONS.index(v) for v in vals], np.int8)
        elif name == "date":
            cols[name] = np.array(vals, "datetime64[D]").astype("datetime64[ns]").view(np.int64)
        else:
            cols[name] = np.array(vals, dtype=dt)
    summ = {}
    srows = res["summary"]
    for j, name in enumerate(res["summary_columns"]):
        vals = [r[j] for r in srows]
        if name == "asset":
            summ[name] = np.array([code[v] for v in vals], np.int32)
        elif name in ("entry_date", "exit_date"):
            summ[name] = np.array(vals, "datetime64[D]").astype("datetime64[ns]").view(np.int64)
        elif name in ("year", "month", "i"):
            summ[name] = np.array(vals, {"year": np.int16}.get(name, np.int8))
        elif name == "straddle_id":
            summ[name] = np.array(vals, np.int64)
        else:
            summ[name] = np.array(vals, np.float64)
    return rows_table(cols, assets), summary_table(summ, assets)


def value_path(price, vol, *, rate: float = 0.0, side: str = "long", hedge: bool = True,
               impl: str = "numba", **options) -> pd.DataFrame:
    """The rows of one straddle over a given life: ``price[0]`` is the entry (and the
    strike), ``price[tenor]`` the expiry; ``vol`` the implied vol of each day. For checks
    (put-call parity, finite differences of the greeks) and what-ifs. ``options``:
    ``structure``, ``wing``, ``spread``, ``hedge_cost_bps``, ``exit`` (``spec.py``)."""
    price = np.ascontiguousarray(price, dtype=np.float64)
    vol = np.ascontiguousarray(vol, dtype=np.float64)
    if price.ndim != 1 or price.shape != vol.shape or price.shape[0] < 2:
        raise ValueError("price and vol must be 1-d arrays of the same length >= 2")
    if not (np.isfinite(price).all() and (price > 0).all()):
        raise ValueError("price must be finite and > 0")
    if not (np.isfinite(vol).all() and (vol > 0).all()):
        raise ValueError("vol must be finite and > 0")
    rate, side_name, hedge, impl, *_ = _check_params(rate, side, hedge, impl, "auto", 1,
                                                      "sequential", 1, "table")
    unknown = set(options) - {"structure", "wing", "spread", "hedge_cost_bps", "exit"}
    if unknown:
        raise ValueError(f"value_path: unknown option(s) {sorted(unknown)}")
    spec = parse_spec(**options)
    tenor = price.shape[0] - 1
    one = lambda v, t: np.array([v], t)  # noqa: E731
    sched = Schedule(["path"], np.array([0]), 2000, 2000, 1, tenor, one(0, np.int32),
                     one(2000, np.int16), one(1, np.int8), one(0, np.int8), one(0, np.int64),
                     one(0, np.int64))
    dates = pd.bdate_range("2000-01-03", periods=tenor + 1).as_unit("ns").asi8
    start = np.array([0], np.int64)
    if not spec.is_seed:
        if impl == "reference":
            days = [str(d.date()) for d in pd.DatetimeIndex(dates)]
            prices = {f"path|price|{d}": float(p) for d, p in zip(days, price)}
            prices.update({f"path|vol|{d}": float(v) for d, v in zip(days, vol)})
            res = structures_ref.run(prices, ["path"], 2000, 2000, 1, tenor, rate,
                                     SIDES[side_name], hedge, spec)
            return structures.reference_tables(res, ["path"])[0].to_pandas()
        rows, _ = structures.value_chunk(structures.check_device(impl, "auto"), price, vol,
                                         dates, start, sched, rate, SIDES[side_name], hedge,
                                         spec, day_tables(tenor, rate))
        return structures.rows_table(rows, ["path"]).to_pandas()
    if impl == "reference":
        from . import reference
        days = [str(d.date()) for d in pd.DatetimeIndex(dates)]
        prices = {f"path|price|{d}": float(p) for d, p in zip(days, price)}
        prices.update({f"path|vol|{d}": float(v) for d, v in zip(days, vol)})
        rows, _ = reference_tables(reference.run(prices, ["path"], 2000, 2000, 1, tenor, rate,
                                                 SIDES[side_name], hedge), ["path"])
        return rows.to_pandas()
    out = core.empty_rows(tenor + 1)
    value_chunk(impl, "auto", price, vol, dates, start, sched, rate, SIDES[side_name], hedge,
                out)
    return rows_table(out, ["path"]).to_pandas()


def warm_up(impl: str = "numba", device: str = "auto", **options) -> None:
    """Load (or compile, the first time on a machine) the kernels of ``impl`` on a toy
    straddle, so that a timed run that follows measures the valuation, not the JIT.
    ``options`` (``structure``, ``wing``, ``spread``, ``hedge_cost_bps``, ``exit``): the
    run's; other than the seed's, the kernel of ``structures_nb`` is loaded too."""
    impl = one_of("impl", impl, IMPLS)
    spec = parse_spec(**options)
    import tqdm.auto  # noqa: F401  (the parallel layer's progress bar: a slow first import)
    if impl in ("numba", "cupy"):
        p = np.array([100.0, 101.0, 99.0])
        if impl == "numba":
            value_path(p, np.full(3, 0.2), impl="numba")
            if not spec.is_seed:
                value_path(p, np.full(3, 0.2), impl="numba", **spec.params())
        elif resolve_device(device) == "gpu":
            from .gpu import kernels
            kernels()


# --------------------------------------------------------------------------- timings
def compare_impls(store: data.PriceStore, schedule: Schedule, impls=("reference", "numpy",
                  "numba"), n_jobs=(1,), repeats: int = 3, rate: float = 0.0,
                  side: str = "long", hedge: bool = True, backend: str = "threads",
                  output: str = "table", **options) -> pd.DataFrame:
    """Best-of-``repeats`` wall time of each implementation on the same straddles, from the
    price store to the rows delivered (the reference: its Python row lists, as the
    original; the fast paths: an Arrow table), with the speed-up over the reference.
    The reference's price dict is built once, outside the timing (the original loaded it
    before its backtest too). ``output="summary"`` values every row but keeps only the
    summary (for schedules too large to hold as a table). ``options``: ``structure``,
    ``wing``, ``spread``, ``hedge_cost_bps``, ``exit`` (``spec.py``), the same on every
    side."""
    from . import reference
    repeats = as_int("repeats", repeats, min=1)
    spec = parse_spec(**options)
    rows = []
    prices = None
    for impl in impls:
        impl = one_of("impl", impl, IMPLS)
        for nj in ((1,) if impl == "reference" else n_jobs):
            if impl == "reference":
                prices = prices or reference.build_prices_dict(store, schedule.assets)
                grid = (prices, schedule.assets, schedule.start_year, schedule.end_year,
                        schedule.per_month, schedule.tenor, rate, SIDES[side], hedge)
                fn = ((lambda: reference.run(*grid)) if spec.is_seed  # noqa: E731
                      else (lambda: structures_ref.run(*grid, spec)))
            else:
                fn = lambda impl=impl, nj=nj: backtest(  # noqa: E731
                    store, schedule, rate=rate, side=side, hedge=hedge, impl=impl,
                    n_jobs=nj, backend=backend, output=output, progress=False,
                    **spec.params())
                fn()  # warm up (JIT cache load, thread pool)
            best = float("inf")
            for _ in range(1 if impl == "reference" else repeats):
                t = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t)
            rows.append({"impl": impl, "n_jobs": parallel.resolve_n_jobs(nj),
                         "straddles": len(schedule), "seconds": best,
                         "straddles_per_s": len(schedule) / best,
                         "straddle_days_per_s": schedule.straddle_days / best})
    df = pd.DataFrame(rows)
    if "reference" in set(df["impl"]):
        ref = df.loc[df["impl"] == "reference", "seconds"].iloc[0]
        df["speedup"] = ref / df["seconds"]
    return df


# --------------------------------------------------------------------------- all at once
def run(source: Any = "synthetic", assets: Any = None, start_year: Any = None,
        end_year: Any = None,
        per_month: int = 8, tenor: int = 63, side: str = "long", rate: float = 0.0,
        hedge: bool = True, impl: str = "numba", n_jobs: int = 1, backend: str = "threads",
        device: str = "auto", seed: int = 0, vol_premium: float = 0.02,
        vol: Any = "column", adjust: bool = True, output: str = "table",
        output_path: str | None = None,
        chunk_size: int = DEFAULT_CHUNK, scheduler: str | None = "local",
        progress: bool | None = None, structure: str = "straddle", wing: Any = None,
        spread: Any = None, hedge_cost_bps: float = 0.0, exit: str = "expiry",
        layout: str = "rows") -> Backtest:
    """Load the market, build the schedule and run the backtest (the notebook's one call).
    ``start_year``/``end_year=None``: 2001-2024 on the synthetic market, else the years the
    data covers. ``structure`` .. ``exit``: see ``spec.py``; ``layout``: ``output="parquet"``'s
    (``dataset.py``)."""
    store, names = load_market(source, assets, start_year, end_year, tenor, seed,
                               vol_premium, vol, adjust)
    y0, y1 = data_years(store, names, start_year, end_year, source)
    sched = build_schedule(store, names, y0, y1, per_month, tenor)
    return backtest(store, sched, rate=rate, side=side, hedge=hedge, impl=impl, device=device,
                    n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                    chunk_size=chunk_size, output=output, path=output_path, progress=progress,
                    structure=structure, wing=wing, spread=spread,
                    hedge_cost_bps=hedge_cost_bps, exit=exit, layout=layout)
