"""``python -m qbt_lib.bench straddles [--quick]``: the seed's workload and the large one.

1. The seed's workload, one core: 2,304 straddles of one asset (24 years x 12 months x 8),
   the reference vs NumPy vs Numba, each from the price data to the rows delivered as a
   table (the reference's native output: one Python list per row, as the original).
2. The valuation kernel alone, for its bandwidth (bytes of rows written per second vs the
   measured copy bandwidth).
3. In memory, rows kept as an Arrow table (100,000 straddles, 6.4M rows: what a user gets
   from ``backtest``) against the same straddles valued with only the summary kept
   (``output="summary"``: each block's rows valued into a reused buffer and overwritten),
   both labelled, n_jobs 1 vs all cores; then >= 1,000,000 straddles summary-only (threads
   and loky), labelled as such.
4. The same straddles streamed to a Parquet dataset vs pyarrow's raw write of the same
   chunk tables: the same number of writers (one thread per part file), the same part
   files (one per chunk of ``DEFAULT_CHUNK`` straddles), the same writer settings; the
   chunks are computed untimed before the raw write. Then the normalized layout
   (``layout="normalized"``, ``dataset.py``: the day columns per row, the rest once per
   straddle or per asset-day) on the same straddles, against the row layout streamed
   (both valued, written and readable as the same rows), and, full size, the issue's
   1,002,240 straddles (64M straddle-days) in one run (target >= 10M straddle-days/s).
5. The seed's pitfall: a process pool handed the pickled prices dict vs one thread.
6. On a GPU: the CuPy kernels in device memory vs the CPU rows.
"""
from __future__ import annotations

import gc
import multiprocessing as mp
import os
import pickle
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from .. import paths
from ..device import gpu_available
from ..machine import peak_rss_mb, peak_rss_reset
from ..parallel import available_cores, chunk_bounds
from . import core, reference
from .api import backtest, reference_tables
from .dataset import PARQUET_OPTIONS
from .gpu import device_throughput, value_chunk_gpu
from .market import load_market
from .nb import value_chunk_numba
from .params import DEFAULT_CHUNK
from .schedule import asset_days, build_schedule

SEED_STRADDLES = 2304          # 24 years x 12 months x 8 per month, one asset
SEED_SINGLE_S = 0.73           # what the original measured single-threaded
SEED_2WORKERS_S = 9.38         # ... and with a 2-process pool
KEPT_STRADDLES = 100_000       # rows kept as an Arrow table: the target size
TENOR, PER_MONTH = 63, 8       # the seed's straddles: 63 trading days, 8 entries a month

#: the figures asv tracks (``benchmarks/benchmarks.py``): key -> unit
TRACKED = {
    "seed_numba_vs_reference": "x",
    "rows_kept_straddle_days_per_s": "straddle-days/s",
    "summary_only_straddle_days_per_s": "straddle-days/s",
    "rows_kept_vs_summary_only": "x",
    "rows_kept_parallel_efficiency": "fraction",
    "parquet_streamed_vs_raw_write": "x",
    "parquet_normalized_straddle_days_per_s": "straddle-days/s",
}
#: which tracked figure is each column of the README/report summary
SUMMARY = {"throughput": "rows_kept_straddle_days_per_s", "speedup_vs_reference": "seed_numba_vs_reference",
           "parallel_efficiency": "rows_kept_parallel_efficiency"}


def _scratch_dir(expected_bytes: float) -> Path:
    """Where the Parquet cases write: ``QBT_BENCH_TMP``, else tmpfs (``/dev/shm``) when it
    and the free memory hold the dataset with room to spare, else ``outputs/bench-tmp``.
    On tmpfs the comparison measures the encoder (what the target is about), not how fast
    a shared disk absorbs 5 GB of dirty pages."""
    env = os.environ.get("QBT_BENCH_TMP")
    root = Path(env) if env else paths.OUTPUTS / "bench-tmp"
    shm = Path("/dev/shm")
    if not env and shm.is_dir():
        free = min(shutil.disk_usage(shm).free, psutil.virtual_memory().available)
        if free > 3 * expected_bytes:
            root = shm / "qbt-bench"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="straddles-", dir=root))


def _write_parts(tables: list, files: list) -> None:
    """pyarrow alone: each table to its own Parquet file, one writer thread per file."""
    if len(tables) == 1:
        pq.write_table(tables[0], files[0], **PARQUET_OPTIONS)
        return
    with ThreadPoolExecutor(len(tables)) as ex:
        list(ex.map(lambda tf: pq.write_table(tf[0], tf[1], **PARQUET_OPTIONS),
                    zip(tables, files)))


def _per_straddle(case: dict, straddles: int) -> dict:
    case["straddles"] = straddles
    case["straddles_per_s"] = straddles / case["seconds"] if case["seconds"] > 0 else None
    return case


# --------------------------------------------------------------------------- the pitfall
_W: dict = {}


def _pitfall_init(prices: dict) -> None:
    """The original's ``init_worker``: every worker process receives the whole dict."""
    _W["prices"] = prices
    _W["cal"] = {}


def _pitfall_task(task):
    asset, y, m, i, sid, tenor = task
    prices = _W["prices"]
    if asset not in _W["cal"]:
        cal = reference.asset_calendar(prices, asset)
        md: dict = {}
        for pos, d in enumerate(cal):
            md.setdefault((int(d[:4]), int(d[5:7])), []).append(pos)
        _W["cal"][asset] = (cal, md)
    cal, md = _W["cal"][asset]
    rows, _, _ = reference.straddle_rows(prices, asset, y, m, i, sid, cal, md, tenor, 0.0,
                                         1.0, True)
    return rows or []


def _pitfall_pool(prices: dict, tasks: list, workers: int) -> int:
    # spawn: the start method of macOS/Windows (and forkserver, Linux's default from Python
    # 3.14, pickles initargs the same way); fork would share the dict copy-on-write
    ctx = mp.get_context("spawn")
    n = 0
    with ctx.Pool(workers, initializer=_pitfall_init, initargs=(prices,)) as pool:
        for rows in pool.imap_unordered(_pitfall_task, tasks):
            n += len(rows)
    return n


def _pitfall_one_thread(prices: dict, tasks: list) -> int:
    _pitfall_init(prices)
    return sum(len(_pitfall_task(t)) for t in tasks)


def _pitfall(bench, big_store, big_assets, tenor: int, per_month: int, quick: bool) -> None:
    n_dict = 16 if quick else 128
    years = (2024, 2024) if quick else (2001, 2024)
    pit_prices = reference.build_prices_dict(big_store, big_assets[:n_dict])
    tasks = [(big_assets[0], y, m, i, 0, tenor) for y in range(years[0], years[1] + 1)
             for m in range(1, 13) for i in range(per_month)]
    dict_mb = len(pickle.dumps(pit_prices, protocol=pickle.HIGHEST_PROTOCOL)) / 2**20
    one = bench.measure(f"pitfall: one thread, {len(tasks)} straddles",
                        lambda: _pitfall_one_thread(pit_prices, tasks), impl="pitfall",
                        size=len(tasks), unit="straddles", warmup=0)
    one.pop("_result", None)
    workers = max(2, available_cores())
    pool = bench.measure(f"pitfall: {workers}-process pool, pickled dict",
                         lambda: _pitfall_pool(pit_prices, tasks, workers), impl="pitfall",
                         size=len(tasks), unit="straddles", n_jobs=workers,
                         backend="mp-spawn", warmup=0,
                         dict_entries=len(pit_prices), dict_pickle_mb=dict_mb)
    pool.pop("_result", None)
    bench.ratio("pitfall: one thread / process pool (original: 12.8x)", one, pool,
                same="straddles valued")
    bench.note("pitfall_dict", {"entries": len(pit_prices), "pickle_MiB": round(dict_mb, 1),
                                "original": "8M entries, 392 MB; 0.73 s one thread vs "
                                            "9.38 s with 2 workers"})
    del pit_prices


# --------------------------------------------------------------------------- 1. the seed
def _seed_workload(bench, store, assets, tiny: bool) -> tuple[dict, dict, int]:
    """The seed's workload on one core: the reference (rows as lists) vs NumPy/Numba (and
    CuPy on a GPU) delivering an Arrow table; the headline ratio. Returns (reference case,
    fast cases by impl, straddles)."""
    # tiny (the profiling golden notebook, seconds): the seed's asset over its last 2 years
    y0 = 2023 if tiny else 2001
    a0 = assets[:1]
    sched1 = build_schedule(store, a0, y0, 2024, PER_MONTH, TENOR)
    n1, rows1 = len(sched1), sched1.straddle_days
    assert tiny or n1 == SEED_STRADDLES
    prices = reference.build_prices_dict(store, a0)
    seed = f"seed {n1:,}"
    ref = bench.measure(
        f"{seed}: reference (rows as lists)",
        lambda: reference.run(prices, a0, y0, 2024, PER_MONTH, TENOR, 0.0, 1.0, True),
        impl="reference", size=rows1, unit="straddle-days", warmup=0)
    _per_straddle(ref, n1)
    ref_rows = ref.pop("_result")
    conv = bench.measure(f"{seed}: reference lists -> table",
                         lambda: reference_tables(ref_rows, a0), impl="reference",
                         size=rows1, unit="straddle-days", warmup=0)
    conv.pop("_result", None)
    del ref_rows
    fast = {}
    for impl in ("numpy", "numba") + (("cupy",) if gpu_available() else ()):
        c = bench.measure(
            f"{seed}: {impl} -> Arrow table",
            lambda impl=impl: backtest(store, build_schedule(store, a0, y0, 2024,
                                                             PER_MONTH, TENOR),
                                       impl=impl, n_jobs=1, progress=False),
            impl=impl, size=rows1, unit="straddle-days", repeats=20 if impl == "numba" else 5,
            warmup=2, nbytes=rows1 * core.ROW_BYTES)
        c.pop("_result", None)
        fast[impl] = _per_straddle(c, n1)
    # the headline (the workload's main job at its reference size): the seed's straddles on
    # one core, every row kept on both sides (the reference's lists, our Arrow table)
    bench.ratio(f"{seed} one core: numba / reference", fast["numba"], ref,
                target=None if tiny else 100, same="rows kept, one core",
                key="seed_numba_vs_reference", headline=True)
    bench.ratio(f"{seed} one core: numpy / reference", fast["numpy"], ref,
                same="rows kept, one core")
    bench.note("seed_reference_seconds_original", SEED_SINGLE_S)
    return ref, fast, n1


# --------------------------------------------------------------------------- 2. the kernel
def _kernel_bandwidth(bench, store, assets, tiny: bool) -> None:
    """The valuation kernel alone, for its bandwidth (bytes of rows written per second vs
    the measured copy bandwidth)."""
    sched8 = build_schedule(store, assets, 2001, 2024, PER_MONTH, TENOR)
    if tiny:
        sched8 = sched8.take(0, 2_000)
    price, vol, dates_ns, start = asset_days(store, sched8)
    out = core.empty_rows(sched8.straddle_days)
    tables = core.day_tables(TENOR, 0.0)
    kern = bench.measure(
        f"kernel: numba, {len(sched8):,} straddles, 1 core",
        lambda: value_chunk_numba(price, vol, dates_ns, start, sched8, 0.0, 1.0, True, tables,
                                  out),
        impl="numba", size=sched8.straddle_days, unit="straddle-days", repeats=5, warmup=1,
        nbytes=sched8.straddle_days * core.ROW_BYTES, bytes_per_row=core.ROW_BYTES)
    kern.pop("_result", None)
    _per_straddle(kern, len(sched8))


# --------------------------------------------------------------------------- 3. in memory
def _big_market(quick: bool, tiny: bool):
    """The large market: 435 assets x 2,304 = 1,002,240 straddles (44 quick, 3 tiny)."""
    n_assets = (3 if tiny else 44) if quick else 435
    big_store, big_assets = load_market("synthetic", assets=n_assets, start_year=2001,
                                        end_year=2024, tenor=TENOR)
    big = build_schedule(big_store, big_assets, 2001, 2024, PER_MONTH, TENOR)
    return big_store, big_assets, big


def _rows_kept_vs_summary(bench, big_store, big, cores: int, tiny: bool):
    """Rows kept as an Arrow table (100,000 straddles: what a user gets from ``backtest``)
    against the same straddles with only the summary kept, both labelled, n_jobs 1 vs all
    cores. Returns (table cases, summary cases by n_jobs, efficiency, straddles)."""
    nb_ = len(big)
    kept = big.take(0, min(nb_, 5_000 if tiny else KEPT_STRADDLES))
    nk, rows_k = len(kept), kept.straddle_days
    print(f"  rows kept: {nk:,} straddles, {rows_k:,} straddle-days; summary only: "
          f"{nb_:,} straddles, {big.straddle_days:,} straddle-days", flush=True)
    table, summ = {}, {}
    for nj in sorted({1, cores}):
        for output, store_ in (("table", table), ("summary", summ)):
            label = "rows kept as an Arrow table" if output == "table" else "summary only"
            c = bench.measure(
                f"in memory, {label}: numba {nk:,} straddles, n_jobs={nj}",
                lambda nj=nj, output=output: backtest(big_store, kept, impl="numba",
                                                      n_jobs=nj, backend="threads",
                                                      output=output, progress=False),
                impl="numba", size=rows_k, unit="straddle-days", n_jobs=nj,
                backend="threads" if nj > 1 else "sequential", warmup=1,
                nbytes=rows_k * core.ROW_BYTES, output=output,
                baseline=f"in memory, {label}: numba {nk:,} straddles, n_jobs=1")
            c.pop("_result", None)
            store_[nj] = _per_straddle(c, nk)
    bench.ratio(f"in memory, {nk:,} straddles, n_jobs={cores}: rows kept / summary only",
                table[cores], summ[cores], same=f"straddles valued with all greeks, "
                f"{cores} workers; differs only in the rows kept",
                key="rows_kept_vs_summary_only")
    eff = None
    if cores >= 2:
        eff = bench.efficiency(f"rows kept, 1 -> {cores} workers (numba, threads)",
                               table[cores], table[1], cores,
                               target=None if tiny else 0.8,
                               key="rows_kept_parallel_efficiency",
                               reason=None)
    bench.figure("rows_kept_straddle_days_per_s", table[cores]["throughput"],
                 "straddle-days/s", f"rows kept as an Arrow table, {nk:,} straddles, "
                 f"{cores} workers", case=table[cores])
    bench.figure("summary_only_straddle_days_per_s", summ[cores]["throughput"],
                 "straddle-days/s", f"summary only (rows valued, not kept), {nk:,} "
                 f"straddles, {cores} workers", case=summ[cores])
    bench.note("rows_kept_target", f"{table[cores]['throughput'] / 1e6:.1f}M straddle-days/s "
               f"with rows kept, {nk:,} straddles, {cores} cores (target >= 30M at 100,000 "
               f"straddles on 2 cores)")
    return table, summ, eff, nk


def _summary_only_large(bench, big_store, big, cores: int, tiny: bool) -> None:
    """>= 1M straddles, summary only (the rows of 1M straddles do not fit in memory), over
    n_jobs 1 .. all cores on threads, and loky at all cores."""
    nb_, rows_b = len(big), big.straddle_days
    jobs = sorted({1, cores} | {j for j in (2, 4, 8, 16) if j <= cores})
    curve = {}
    for nj in jobs:
        c = bench.measure(
            f"in memory, summary only: numba {nb_:,} straddles, n_jobs={nj}",
            lambda nj=nj: backtest(big_store, big, impl="numba", n_jobs=nj,
                                   backend="threads", output="summary", progress=False),
            impl="numba", size=rows_b, unit="straddle-days", n_jobs=nj,
            backend="threads" if nj > 1 else "sequential", warmup=1,
            nbytes=rows_b * core.ROW_BYTES, output="summary",
            baseline=f"in memory, summary only: numba {nb_:,} straddles, n_jobs=1")
        c.pop("_result", None)
        curve[nj] = _per_straddle(c, nb_)
    if not tiny:
        c = bench.measure(
            f"in memory, summary only: numba {nb_:,} straddles, loky n_jobs={cores}",
            lambda: backtest(big_store, big, impl="numba", n_jobs=cores, backend="loky",
                             output="summary", progress=False),
            impl="numba", size=rows_b, unit="straddle-days", n_jobs=cores, backend="loky",
            warmup=1, output="summary",
            baseline=f"in memory, summary only: numba {nb_:,} straddles, n_jobs=1")
        c.pop("_result", None)
        _per_straddle(c, nb_)
    bench.note("large_summary_only_straddle_days_per_s", curve[cores]["throughput"])


# --------------------------------------------------------------------------- 4. Parquet
def _raw_write(bench, big_store, n_pq, bounds, raw_dir: Path, nj: int, reps: int) -> dict:
    """pyarrow's raw write: ``nj`` writer threads, one part file per chunk (as the stream
    writes), the chunks of each group computed first (untimed), each group's write timed
    ``reps`` times, so the raw case is a median of repeats too; the previous repeat's files
    are removed before the clock, as the streamed cases' (:func:`_stream_times`)."""
    raw_dir.mkdir()
    times = [0.0] * reps
    nbytes_in = 0
    for g in range(0, len(bounds), nj):
        group = bounds[g:g + nj]
        tabs = [backtest(big_store, n_pq.take(lo, hi), impl="numba", progress=False).rows
                for lo, hi in group]
        nbytes_in += sum(t.nbytes for t in tabs)
        files = [raw_dir / f"part-{g + i:06d}.parquet" for i in range(len(tabs))]
        for r in range(reps):
            for f in files:
                f.unlink(missing_ok=True)
            gc.collect()
            t0 = time.perf_counter()
            _write_parts(tabs, files)
            times[r] += time.perf_counter() - t0
        del tabs
    size_on_disk = sum(f.stat().st_size for f in raw_dir.iterdir())
    shutil.rmtree(raw_dir)
    os.sync()
    raw = bench.add_case(
        f"parquet: pyarrow raw write, {nj} writer(s) ({len(n_pq):,} straddles)",
        times, impl="pyarrow", size=n_pq.straddle_days, unit="straddle-days", n_jobs=nj,
        backend="threads" if nj > 1 else "sequential",
        GBps=nbytes_in / statistics.median(times) / 1e9, table_bytes=nbytes_in,
        file_bytes=size_on_disk, writers=nj, part_straddles=DEFAULT_CHUNK)
    return _per_straddle(raw, len(n_pq))


def _stream_times(store, sched, target: Path, n_jobs: int, reps: int,
                  layout: str) -> list[float]:
    """``reps`` timed streams of ``sched`` to a Parquet dataset at ``target`` by
    ``backtest`` (numba, threads), each into a fresh directory: the previous dataset is
    removed before the clock, so every Parquet case times the same work (valuing, encoding
    and writing; never deleting the last repeat's files)."""
    times = []
    for _ in range(reps):
        shutil.rmtree(target, ignore_errors=True)
        gc.collect()
        t0 = time.perf_counter()
        backtest(store, sched, impl="numba", n_jobs=n_jobs, backend="threads",
                 output="parquet", layout=layout, path=target, progress=False)
        times.append(time.perf_counter() - t0)
    return times


def _streamed(bench, big_store, n_pq, target: Path, nj: int, nbytes_in: int,
              reps: int) -> dict:
    """The same straddles streamed to a Parquet dataset by ``backtest`` (row layout)."""
    peak_rss_reset()
    times = _stream_times(big_store, n_pq, target, nj, reps, "rows")
    gbps = nbytes_in / statistics.median(times) / 1e9
    frac = bench.bw_fraction(gbps, nj)
    c = bench.add_case(
        f"parquet: streamed, numba n_jobs={nj}", times, impl="numba",
        size=n_pq.straddle_days, unit="straddle-days", n_jobs=nj,
        backend="threads" if nj > 1 else "sequential", peak_rss_mb=peak_rss_mb(),
        GBps=gbps, **({"bw_fraction": frac} if frac is not None else {}), writers=nj,
        part_straddles=DEFAULT_CHUNK, table_bytes=nbytes_in)
    bench.after_measure(c, lambda: backtest(big_store, n_pq, impl="numba", n_jobs=nj,
                                            backend="threads", output="parquet",
                                            path=target, progress=False))
    shutil.rmtree(target, ignore_errors=True)
    os.sync()
    return _per_straddle(c, len(n_pq))


# the normalized layout (issue #16)
def _normalized(bench, store, big, n_pq, scratch: Path, cores: int, reps: int,
                streamed: dict, quick: bool, tiny: bool) -> None:
    rows_pq = n_pq.straddle_days
    norm = {}
    for nj in sorted({1, cores}):
        target = scratch / f"normalized-{nj}"
        times = _stream_times(store, n_pq, target, nj, reps, "normalized")
        size = sum(f.stat().st_size for f in target.rglob("*.parquet"))
        day_bytes = sum(f.stat().st_size for f in (target / "days").iterdir())
        shutil.rmtree(target, ignore_errors=True)
        c = bench.add_case(
            f"parquet: normalized layout, numba n_jobs={nj} ({len(n_pq):,} straddles)",
            times, impl="numba", size=rows_pq, unit="straddle-days", n_jobs=nj,
            backend="threads" if nj > 1 else "sequential", writers=nj, file_bytes=size,
            day_bytes_per_row=day_bytes / rows_pq, part_straddles=DEFAULT_CHUNK)
        norm[nj] = _per_straddle(c, len(n_pq))
    bench.ratio(f"parquet: normalized / row layout, streamed, {cores} writer(s)", norm[cores],
                streamed[cores], same=f"{len(n_pq):,} straddles valued and written, read back "
                "as the same rows")
    bench.figure("parquet_normalized_straddle_days_per_s", norm[cores]["throughput"],
                 "straddle-days/s", f"normalized layout streamed to Parquet, {len(n_pq):,} "
                 f"straddles, {cores} workers (target >= 10M on 2 cores)", case=norm[cores])
    if quick:
        return
    # the size, once: 1,002,240 straddles, 64M straddle-days
    need = big.straddle_days * 52
    if shutil.disk_usage(scratch).free < 2 * need:
        bench.note("parquet_normalized_1M", f"not run: {need / 1e9:.1f} GB needed in {scratch}")
        return
    target = scratch / "normalized-1M"
    times = _stream_times(store, big, target, cores, 1, "normalized")
    shutil.rmtree(target, ignore_errors=True)
    c = bench.add_case(f"parquet: normalized layout, numba n_jobs={cores} ({len(big):,} "
                       "straddles, one run)", times, impl="numba", size=big.straddle_days,
                       unit="straddle-days", n_jobs=cores, backend="threads", writers=cores)
    _per_straddle(c, len(big))
    bench.note("parquet_normalized_1M", f"{c['throughput'] / 1e6:.1f}M straddle-days/s, "
               f"{len(big):,} straddles on {cores} cores (target >= 10M on 2 cores)")


def _parquet_stream(bench, big_store, big, cores: int, quick: bool, tiny: bool) -> None:
    """Streaming to Parquet vs pyarrow's raw write of the same chunk tables: the same number
    of writers, the same part files (one per chunk of ``DEFAULT_CHUNK`` straddles), the
    same writer settings. Full: 250,000 straddles (16M rows), enough for the writers to
    reach steady state and small enough to repeat both sides 5 times."""
    nb_ = len(big)
    n_pq = big.take(0, min(nb_, (4 * DEFAULT_CHUNK if tiny else 50_000) if quick else 250_000))
    bounds = chunk_bounds(len(n_pq), DEFAULT_CHUNK)
    scratch = _scratch_dir(n_pq.straddle_days * 90)   # ~83 bytes per row on disk
    bench.note("parquet_dir", "tmpfs" if str(scratch).startswith("/dev/shm") else "disk")
    reps = max(getattr(bench, "min_repeats", 5), 1)
    streamed = {}
    try:
        for nj in sorted({1, cores}):
            raw = _raw_write(bench, big_store, n_pq, bounds, scratch / f"raw-{nj}", nj, reps)
            c = _streamed(bench, big_store, n_pq, scratch / f"stream-{nj}", nj,
                          raw["table_bytes"], reps)
            streamed[nj] = c
            bench.ratio(f"parquet streamed / raw pyarrow write, {nj} writer(s)", c, raw,
                        target=None if tiny else 0.8, same=f"{nj} writer(s), part files of "
                        f"{DEFAULT_CHUNK:,} straddles, writer settings",
                        key="parquet_streamed_vs_raw_write" if nj == cores else None)
        bench.note("parquet_settings", {k: str(v) for k, v in PARQUET_OPTIONS.items()})
        _normalized(bench, big_store, big, n_pq, scratch, cores, reps, streamed, quick, tiny)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            scratch.parent.rmdir()  # the tmpfs/outputs root, when nothing else is in it
        except OSError:
            pass


# --------------------------------------------------------------------------- 6. GPU
def _gpu(bench, big_store, big) -> str:
    """On a GPU: the CuPy kernels in device memory, and their rows vs the CPU's; the
    headline's GPU line."""
    if not gpu_available():
        return "n/a (no GPU on this machine)"
    p, v, _, s = asset_days(big_store, big)
    r = device_throughput(p, v, s, TENOR)
    bench.add_case(f"gpu: cupy kernels in device memory ({len(big):,} straddles)",
                   r["value_seconds"], impl="cupy", size=r["rows"], unit="straddle-days",
                   device="gpu", with_pnl_seconds=r["all_seconds"],
                   GBps=r["bytes_written_value"] / r["value_seconds"] / 1e9)
    part = big.take(0, min(len(big), 20_000))
    pp, vv, dd, ss = asset_days(big_store, part)
    tab = core.day_tables(TENOR, 0.0)
    o_gpu, o_cpu = core.empty_rows(part.straddle_days), core.empty_rows(part.straddle_days)
    value_chunk_gpu(pp, vv, dd, ss, part, 0.0, 1.0, True, tab, o_gpu)
    value_chunk_numba(pp, vv, dd, ss, part, 0.0, 1.0, True, tab, o_cpu)
    worst = core.max_rel_diff(o_gpu, o_cpu)
    bench.note("gpu_vs_cpu_max_rel_diff", worst)
    bench.note("gpu_valuations_per_s", r["valuations_per_s"])
    return (f"{r['valuations_per_s'] / 1e9:.2f}G straddle-day valuations/s in device "
            f"memory (target 1G); max rel diff vs CPU {worst:.1e} (target 1e-12)")


# --------------------------------------------------------------------------- the run
def _headline(bench, ref, fast, table, summ, eff, n1: int, nk: int, cores: int,
              gpu_line: str) -> None:
    speed = fast["numba"]["throughput"] / ref["throughput"]
    bench.headline.update({
        "throughput": f"{table[cores]['throughput'] / 1e6:.1f}M straddle-days/s with rows kept "
                      f"as an Arrow table ({nk:,} straddles, {cores} workers); summary only "
                      f"{summ[cores]['throughput'] / 1e6:.1f}M",
        "speedup_vs_reference": f"{speed:.0f}x at {n1:,} straddles, one core, rows kept",
        "parallel_efficiency": ("n/a (1 core)" if cores < 2 else
                                "not printed: above 100% on re-measurement" if eff is None
                                else f"{eff:.0%} 1->{cores} workers, rows kept"),
        "gpu": gpu_line,
    })


def _print_straddles_per_s(bench) -> None:
    print("\n  straddles/s:")
    for c in bench.cases:
        if c.get("straddles_per_s"):
            print(f"    {c['name']:<52s} {c['straddles_per_s']:>14,.0f} straddles/s"
                  f"  {c['throughput']:>14,.0f} {c['unit']}/s")


def run(bench) -> None:
    quick, tiny = bench.quick, getattr(bench, "tiny", False)
    cores = available_cores()
    print(f"  cores: {cores}; size: {getattr(bench, 'size', 'quick' if quick else 'full')}",
          flush=True)
    store, assets = load_market("synthetic", assets=8, start_year=2001, end_year=2024,
                                tenor=TENOR)
    ref, fast, n1 = _seed_workload(bench, store, assets, tiny)               # 1.
    _kernel_bandwidth(bench, store, assets, tiny)                            # 2.
    big_store, big_assets, big = _big_market(quick, tiny)                    # 3.
    table, summ, eff, nk = _rows_kept_vs_summary(bench, big_store, big, cores, tiny)
    _summary_only_large(bench, big_store, big, cores, tiny)
    _parquet_stream(bench, big_store, big, cores, quick, tiny)               # 4.
    if tiny:  # a spawned process pool costs seconds per start: not at the golden's size
        bench.note("pitfall", "not measured at size tiny")
    else:                                                                    # 5.
        _pitfall(bench, big_store, big_assets, TENOR, PER_MONTH, quick)
    gpu_line = _gpu(bench, big_store, big)                                   # 6.
    bench.note("gpu", gpu_line)
    _headline(bench, ref, fast, table, summ, eff, n1, nk, cores, gpu_line)
    _print_straddles_per_s(bench)
