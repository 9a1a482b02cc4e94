"""The chunked valuation: the kernels' dispatch table, one chunk's work, and the two ways a
run's chunks come back (placed in memory, or streamed to a Parquet dataset).

Straddles are cut into fixed-size chunks (``chunk_size``, independent of ``n_jobs``); a
chunk task carries only its slice of the schedule, and its worker reads the assets it needs
from the memory-mapped price store (handed to :func:`_run_job` once per run, never a
pickled copy of the prices). Results are placed in straddle order, so the output is bitwise
identical for any ``n_jobs``, backend and chunk size.

A workload-specific module beside the anatomy's files (``api.py`` calls it): the streaming
and placement are what make the workload fit in bounded memory, and they are the same for
every kernel.
"""
from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from .. import data, parallel, paths
from ..device import dispatch
from . import core, dataset
from .core import day_tables, rows_table, summary_table
from .gpu import summary_chunk_gpu, value_chunk_gpu
from .nb import block_rows, value_chunk_numba
from .params import AUTO_GPU, WHY_CPU, WORKLOAD
from .schedule import Schedule, asset_days

SCRATCH_STRADDLES = 512  # output="summary": 32k rows (4.8 MB) per buffer, stays in cache
PARQUET_ROW_GROUP_STRADDLES = 4096  # output="parquet": 262k rows per row group (measured: fewer,
# larger row groups encode faster than cache-sized ones)


# --------------------------------------------------------------------------- the kernels
# Each values one chunk's rows into ``out`` and returns per straddle the P&L sums and the
# entry and exit values. ``discard`` (Numba only): ``out`` holds one kernel block
# (``nb.block_rows``), overwritten block after block.
def _numpy(price, vol, dates_ns, start, sched, rate, side, hedge, tables, out, discard):
    if discard:
        raise ValueError("discard=True is a Numba kernel mode")
    s_pnl, s_hedge = core.value_chunk_numpy(price, vol, dates_ns, start, sched, rate, side,
                                            hedge, tables, out)
    return s_pnl, s_hedge, *_entry_exit(out, sched)


def _numba(price, vol, dates_ns, start, sched, rate, side, hedge, tables, out, discard):
    return value_chunk_numba(price, vol, dates_ns, start, sched, rate, side, hedge, tables,
                             out, discard)


def _cupy(price, vol, dates_ns, start, sched, rate, side, hedge, tables, out, discard):
    if discard:   # the rows stay in device memory; only the per-straddle results return
        return summary_chunk_gpu(price, vol, start, sched, rate, side, hedge, tables)
    s_pnl, s_hedge = value_chunk_gpu(price, vol, dates_ns, start, sched, rate, side, hedge,
                                     tables, out)
    return s_pnl, s_hedge, *_entry_exit(out, sched)


def _entry_exit(out: dict, sched: Schedule) -> tuple[np.ndarray, np.ndarray]:
    n1 = sched.days
    return out["value"][::n1].copy(), out["value"][n1 - 1::n1].copy()


#: The dispatch table of the chunk kernels (:func:`qbt_lib.device.dispatch` resolves
#: ``impl`` x ``device``; ``cupy`` without a GPU runs the same xp-generic array code on
#: NumPy). The reference is not a chunk kernel: it values whole schedules in one piece
#: (``api.ENGINES``).
KERNELS = {"numpy": _numpy, "numba": _numba, "cupy": _cupy}
#: kernels that value every row without handing the rows back and keep only the
#: per-straddle results (numba: through a one-block buffer; cupy: in device memory)
IN_KERNEL_SUMMARY = frozenset({"numba", "cupy"})


def value_chunk(impl: str, device: str, price, vol, dates_ns, start, sched: Schedule,
                rate: float, side: float, hedge: bool, out: dict, discard: bool = False):
    """Value one chunk's rows into ``out`` with the kernel ``impl`` on ``device``; returns
    per straddle the P&L sums and the entry and exit values."""
    _, _, kernel = dispatch(WORKLOAD, KERNELS, impl, device, auto_gpu=AUTO_GPU,
                            why_cpu=WHY_CPU)
    return kernel(price, vol, dates_ns, start, sched, rate, side, hedge,
                  day_tables(sched.tenor, rate), out, discard)


# --------------------------------------------------------------------------- one chunk
@dataclass
class _Job:
    """One chunk task. The store is not in it: it is handed to :func:`_run_job` once per
    run (``parallel.imap(shared=...)``; on Dask scattered in memory to every worker)."""

    store: data.PriceStore | None
    sched: Schedule
    chunk: int
    impl: str                       # resolved: numpy | numba | cupy
    device: str                     # resolved: cpu | gpu
    rate: float
    side: float
    hedge: bool
    mode: str                       # "into" | "scratch" | "return" | "parquet"
    out: dict | None = None         # "into": views of the caller's row arrays
    tmpdir: str | None = None       # "parquet": where to write the part files
    summ_out: dict | None = None    # in-process workers: views of the summary arrays
    layout: str = "rows"            # "parquet": every column, or the day columns (dataset.py)


_local = threading.local()


def _scratch(n_rows: int) -> dict:
    """Row buffers reused by every chunk a thread/process values (output='summary')."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf["S"].shape[0] < n_rows:
        buf = core.empty_rows(n_rows)
        _local.buf = buf
    return {k: v[:n_rows] for k, v in buf.items()}


def _run_job(job: _Job, store: data.PriceStore | None = None):
    sched = job.sched
    price, vol, dates_ns, start = asset_days(store if store is not None else job.store, sched)
    if job.mode == "scratch" and job.impl in IN_KERNEL_SUMMARY:
        return _place(job, _summary_in_kernel(job, price, vol, dates_ns, start))
    if job.mode in ("scratch", "parquet"):
        return _through_buffer(job, price, vol, dates_ns, start)
    out = job.out if job.mode == "into" else core.empty_rows(sched.straddle_days)
    s_pnl, s_hedge, ev, xv = value_chunk(job.impl, job.device, price, vol, dates_ns, start,
                                         sched, job.rate, job.side, job.hedge, out)
    summ = core.summary_arrays(sched, dates_ns, price, start, ev, xv, s_pnl, s_hedge)
    if job.mode == "return":
        return out, summ
    return _place(job, summ)


def _summary_in_kernel(job: _Job, price, vol, dates_ns, start) -> dict:
    """Every row valued into a one-block buffer (L2-sized) that the next block overwrites,
    inside the kernel; only the per-straddle results come back."""
    sched = job.sched
    out = _scratch(block_rows(sched.tenor))
    s_pnl, s_hedge, ev, xv = value_chunk(job.impl, job.device, price, vol, dates_ns, start,
                                         sched, job.rate, job.side, job.hedge, out,
                                         discard=True)
    return core.summary_arrays(sched, dates_ns, price, start, ev, xv, s_pnl, s_hedge)


def _through_buffer(job: _Job, price, vol, dates_ns, start):
    """Through a buffer of a sub-chunk, reused: only the summary is kept ("scratch"), or
    each sub-chunk becomes a row group of this chunk's part file ("parquet")."""
    sched = job.sched
    step = SCRATCH_STRADDLES if job.mode == "scratch" else PARQUET_ROW_GROUP_STRADDLES
    parts = []
    part = (dataset.PartFile(Path(job.tmpdir) / f"part-{job.chunk:06d}.parquet")
            if job.mode == "parquet" else contextlib.nullcontext())
    with part:
        for lo in range(0, len(sched), step):
            sub = sched.take(lo, min(len(sched), lo + step))
            st = start[lo:lo + len(sub)]
            out = _scratch(sub.straddle_days)
            s_pnl, s_hedge, ev, xv = value_chunk(job.impl, job.device, price, vol, dates_ns,
                                                 st, sub, job.rate, job.side, job.hedge, out)
            parts.append(core.summary_arrays(sub, dates_ns, price, st, ev, xv, s_pnl, s_hedge))
            if job.mode == "parquet":
                if job.layout == "normalized":
                    part.write(dataset.day_table(out), dataset.DAY_PARQUET_OPTIONS)
                else:
                    part.write(rows_table(out, sched.assets), dataset.PARQUET_OPTIONS)
    summ = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return (sched.straddle_days, summ) if job.mode == "parquet" else _place(job, summ)


def _place(job: _Job, summ: dict):
    """Write a chunk's summary into the caller's arrays (in-process workers), or return it."""
    if job.summ_out is None:
        return summ
    for k, v in job.summ_out.items():
        v[...] = summ[k]
    return None


# --------------------------------------------------------------------------- a run's chunks
def _jobs(schedule: Schedule, bounds, impl, device, rate, side, hedge, mode, out=None,
          tmpdir=None, layout="rows"):
    n1 = schedule.days
    for c, (lo, hi) in enumerate(bounds):
        views = ({k: v[lo * n1:hi * n1] for k, v in out.items()} if out is not None
                 else None)
        yield _Job(None, schedule.take(lo, hi), c, impl, device, rate, side, hedge, mode,
                   views, tmpdir, layout=layout)


def pool_kw(store, backend, n_jobs, scheduler, progress) -> dict:
    """``parallel.imap``/``pmap``'s arguments for a run's chunks (the store shared once)."""
    return dict(backend=backend, n_jobs=n_jobs, scheduler=scheduler, progress=progress,
                desc="straddles", unit="chunk", shared=(store,))


def value_in_memory(store: data.PriceStore, schedule: Schedule, *, impl: str, device: str,
                    rate: float, side: float, hedge: bool, n_jobs: int, backend: str,
                    scheduler, chunk_size: int, keep_rows: bool,
                    progress) -> tuple[pa.Table | None, pa.Table]:
    """``(rows, summary)`` as Arrow tables (``rows`` None unless ``keep_rows``). The summary
    goes straight into its final arrays: workers in this process write their slice; results
    from worker processes are placed as they arrive."""
    bounds = parallel.chunk_bounds(len(schedule), chunk_size)
    eff_backend, _ = parallel.effective_backend(backend, n_jobs, len(bounds))
    in_process = eff_backend in ("sequential", "threads")
    kw = pool_kw(store, backend, n_jobs, scheduler, progress)
    summ = core.empty_summary(len(schedule))
    out = core.empty_rows(schedule.straddle_days) if keep_rows else None
    mode = "into" if keep_rows and in_process else "return" if keep_rows else "scratch"
    tasks = list(_jobs(schedule, bounds, impl, device, rate, side, hedge, mode,
                       out=out if mode == "into" else None))
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
    return (rows_table(out, schedule.assets) if out is not None else None,
            summary_table(summ, schedule.assets))


def value_to_parquet(store: data.PriceStore, schedule: Schedule, path, meta: dict, *,
                     impl: str, device: str, rate: float, side: float, hedge: bool,
                     n_jobs: int, backend: str, scheduler, chunk_size: int, progress,
                     layout: str = "rows") -> Path:
    """Stream the seed's rows to a Parquet dataset at ``path`` (:func:`stream_parquet` with
    this module's chunk tasks); the dataset's path."""
    def tasks(bounds, part_dir: str) -> list:
        return list(_jobs(schedule, bounds, impl, device, rate, side, hedge, "parquet",
                          tmpdir=part_dir, layout=layout))
    return stream_parquet(store, schedule, path, meta, tasks, layout=layout,
                          n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                          chunk_size=chunk_size, progress=progress)[0]


def stream_parquet(store: data.PriceStore, schedule: Schedule, path, meta: dict,
                   tasks: Callable[[list, str], list], *, worker: Callable = _run_job,
                   summary: Callable = summary_table,
                   day_columns: tuple[str, ...] = dataset.DAY_COLUMNS, layout: str = "rows",
                   n_jobs: int, backend: str, scheduler, chunk_size: int,
                   progress) -> tuple[Path, int]:
    """Stream a run's rows to a Parquet dataset at ``path`` (``rows/`` part files written by
    the workers, ``summary/`` written here in order, ``meta.json``) inside a temp directory
    renamed when complete; ``layout="normalized"``: ``days/`` part files with the day
    columns only (``day_columns``), and ``market/`` (``dataset.py``). ``(path, n_rows)``.

    ``tasks(bounds, part_dir)``: the chunk tasks of the straddle ranges ``bounds``;
    ``worker(task, store)`` values one and writes its part file in ``part_dir``, returning
    ``(n_rows, summary arrays)``; ``summary(arrays, assets)``: the summary's table; ``meta``:
    the run's parameters (and what else the dataset records) for ``meta.json``. The seed's
    chunks are the defaults; ``structures.run`` passes its own."""
    if path is None:
        raise ValueError("output='parquet' needs path= (the dataset directory)")
    local = paths.local_path(path, "path")  # a path or a file:// URI
    final = paths.resolve_output_dir(local.parent) / local.name
    bounds = parallel.chunk_bounds(len(schedule), chunk_size)
    kw = pool_kw(store, backend, n_jobs, scheduler, progress)
    sub = "days" if layout == "normalized" else "rows"
    with paths.atomic_dir(final, replace=True) as tmp:
        (tmp / sub).mkdir()
        (tmp / "summary").mkdir()
        n = 0
        # workers write the rows; the summary (1/64 of it) is written here, in order
        with dataset.PartFile(tmp / "summary" / "part-000000.parquet") as summary_file:
            for n_rows, summ in parallel.imap(worker, tasks(bounds, str(tmp / sub)), **kw):
                n += n_rows
                summary_file.write(summary(summ, schedule.assets))
        for stray in (tmp / sub).glob("*.tmp"):  # from a chunk whose worker was lost
            stray.unlink(missing_ok=True)
        if layout == "normalized":
            dataset.write_market(tmp, store, schedule)
        (tmp / "meta.json").write_text(json.dumps(
            {**meta, "n_straddles": len(schedule), "n_rows": n,
             "assets": schedule.assets, "skipped": len(schedule.skipped), "layout": layout,
             "parts": [[lo, hi] for lo, hi in bounds],
             "day_columns": list(day_columns) if layout == "normalized" else None}))
    return final, n
