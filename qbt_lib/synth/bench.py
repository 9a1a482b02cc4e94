"""``python -m qbt_lib.bench synth [--quick]``: every synth path timed in one run.

Cases (full size; ``--quick`` shrinks each so the whole run takes < 60 s):
  * before: the reference per-sample loop, and the seed's own vectorized "after"
    (re-implemented faithfully in ``reference.seed_vectorized``), on subsamples;
  * materialized in memory: NumPy, and Numba on one core through the product path
    (``engines.numba_range``: draws + columns + windows into a fresh array, as ``generate``
    does), and the fused Numba kernel alone on 1 and 2 threads (keys drawn beforehand, into
    one reused buffer), with the bytes written so the table shows the fraction of the
    measured copy bandwidth;
  * normalized to Parquet: n = 1e8 samples (1e7 quick) on 2 cores and on 1, each in a fresh
    process so its peak RSS is its own;
  * materialized to disk, Parquet and Arrow IPC: pyarrow writing the already-built table
    alone ("raw") against the whole pipeline (generation overlapped with writing), 1 and 2
    writers; plus an encoding study (bytes per row and encode CPU per row);
  * the batch loader: normalized store (gather) vs reading materialized rows; the training
    loader (shuffled per epoch, prefetched) in GB/s against the copy bandwidth;
  * GPU (only where a usable GPU is found): the gather+scale kernel into device memory,
    its array-generic fallback, and the loader feeding device batches.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import paths
from ..bench import Bench
from ..device import gpu_available
from ..parallel import available_cores
from . import gpu, reference
from .api import draw_config, market, sample_space
from .dataset import open_dataset, write_dataset
from .engines import build_samples, numba_range
from .loader import loader as train_loader
from .nb import gather_scale_par_nb
from .space import Draws
from .store import PartWriter, parquet_options, rows_per_batch, rows_schema, to_record_batch

LOOKBACK = 64
SYMBOLS = 10

#: the figures asv tracks (``benchmarks/benchmarks.py``): key -> unit
TRACKED = {
    "materialized_vs_reference": "x",
    "materialized_vs_seed_vectorized": "x",
    "materialized_samples_per_s_1core": "samples/s",
    "parquet_e2e_vs_raw_write": "x",
    "ipc_e2e_vs_raw_write": "x",
    "kernel_parallel_efficiency": "fraction",
}
#: which tracked figure is each column of the README/report summary
SUMMARY = {"throughput": "materialized_samples_per_s_1core", "speedup_vs_reference": "materialized_vs_reference",
           "parallel_efficiency": "kernel_parallel_efficiency"}

_SUBPROCESS_SCRIPT = r"""
import json, sys, time
from qbt_lib import synth
from qbt_lib.machine import peak_rss_mb
n, jobs, out, materialize, fmt = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                  sys.argv[4] == "1", sys.argv[5])
space = synth.sample_space("synthetic", %(symbols)d, seed=0, lookback=%(lookback)d, horizon=1)
cfg = synth.draw_config(0)
synth.warm_up("numba", space, cfg, "threads", jobs)
t = time.perf_counter()
w = synth.write_dataset(out, n, space, cfg, impl="numba", materialize=materialize, fmt=fmt,
                        chunk_size=1 << 19, n_jobs=jobs, backend="threads", progress=False)
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak_rss_mb": peak_rss_mb(), "file_bytes": w.file_bytes,
                  "arrow_bytes": w.nbytes, "n_windows": w.n_windows}))
"""


def _subprocess_run(n: int, jobs: int, out: Path, materialize: bool = False,
                    fmt: str = "parquet") -> dict:
    """One write_dataset in a fresh process (its peak RSS is then its own)."""
    script = _SUBPROCESS_SCRIPT % {"symbols": SYMBOLS, "lookback": LOOKBACK}
    r = subprocess.run([sys.executable, "-c", script, str(n), str(jobs), str(out),
                        "1" if materialize else "0", fmt],
                       capture_output=True, text=True, cwd=str(paths.PROJ_ROOT),
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    shutil.rmtree(out, ignore_errors=True)
    if r.returncode != 0:
        raise RuntimeError(f"write_dataset subprocess failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _space():
    return sample_space("synthetic", SYMBOLS, seed=0, lookback=LOOKBACK, horizon=1)


def run(bench: Bench) -> None:
    q = bench.quick
    space = _space()
    cfg = draw_config(0)
    tmp_root = paths.cache_dir() / "bench-synth"
    tmp_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=tmp_root))
    bench.note("market", f"synthetic, {SYMBOLS} symbols x 5000 bars, lookback {LOOKBACK}, "
                         f"horizon 1: {space.n_keys:,} distinct windows")
    bench.note("machine_state", "shared 2-core box, other jobs running: timings are noisy")
    try:
        _before(bench, space, cfg)
        _in_memory(bench, space, cfg)
        _normalized(bench, tmp)
        _to_disk(bench, space, cfg, tmp)
        _loader(bench, space, cfg, tmp)
        if gpu_available():
            _gpu(bench, space, cfg, tmp)
        else:
            bench.note("gpu", "no usable GPU here: GPU cases skipped")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- before
def _before(bench: Bench, space, cfg) -> None:
    q, tiny = bench.quick, bench.tiny
    n_ref = (100 if tiny else 500) if q else 3000
    bench._ref = bench.measure(
        "reference: per-sample loop, draws + columns + windows (materialized)",
        lambda: build_samples("reference", space, Draws(cfg, space.n_keys).take(0, n_ref), True),
        impl="reference", size=n_ref, unit="samples", warmup=0 if q else 1)
    df = market("synthetic", 1, seed=0)["SYM000"]
    n_seed = (1000 if tiny else 3000) if q else 20000
    bench._seed = bench.measure(
        "seed's vectorized 'after' (1 symbol, windows built)",
        lambda: reference.seed_vectorized(df, n_seed, LOOKBACK, 1, np.random.default_rng(0)),
        impl="seed-after", size=n_seed, unit="samples", warmup=0 if q else 1)
    n_iloc = (100 if tiny else 500) if q else 2000
    bench.measure(
        "seed's 'after' as written (df[col].iloc per row)",
        lambda: reference.seed_vectorized(df, n_iloc, LOOKBACK, 1, np.random.default_rng(0),
                                          iloc=True),
        impl="seed-iloc", size=n_iloc, unit="samples", warmup=0)


# --------------------------------------------------------------------------- in memory
def _in_memory(bench: Bench, space, cfg) -> None:
    q, tiny = bench.quick, bench.tiny
    row_bytes = 5 * LOOKBACK * 4
    col_bytes = 4 + 4 + 8 + 8 + 8 + 1 + 8
    n_np = (5_000 if tiny else 50_000) if q else 200_000
    c_np = bench.measure(
        "numpy: draws + columns + windows in memory (fresh arrays)", lambda: build_samples(
            "numpy", space, Draws(cfg, space.n_keys).take(0, n_np), True),
        impl="numpy", size=n_np, unit="samples", nbytes=n_np * (row_bytes + col_bytes),
        repeats=3)
    n = (20_000 if tiny else 200_000) if q else 1_000_000
    # the product path (generate's whole-range engine): a fresh windows array per call
    c1 = bench.measure(
        "numba: draws + columns + windows in memory, 1 core (engines.numba_range, fresh "
        "arrays)", lambda: numba_range(space, cfg, 0, n, 1), impl="numba", size=n,
        unit="samples", nbytes=n * (row_bytes + col_bytes), repeats=5)
    keys = Draws(cfg, space.n_keys).take(0, n)["key"]
    t = space.tables()
    out = np.empty((5, n, LOOKBACK), np.float32)
    kern = {}
    for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
        def fn(threads=threads):
            numba.set_num_threads(threads)
            gather_scale_par_nb(t["prices"], t["key_start"], t["key_scale"], keys, out)
        kern[threads] = bench.measure(
            f"numba: gather+scale kernel alone, {threads} thread(s) (keys drawn before, "
            "one reused buffer)", fn, impl="numba", size=n,
            unit="samples", n_jobs=threads, backend="numba-threads",
            nbytes=n * row_bytes, repeats=5)
    if 2 in kern:  # before the buffer is freed: a figure above 100% is re-measured
        # kept above 100% only after re-measurement, and then with this reason
        bench.efficiency(
            "gather+scale kernel into the same buffer, 1 -> 2 threads", kern[2], kern[1], 2,
            key="kernel_parallel_efficiency",
            reason="write-mostly kernel: one core cannot saturate the memory's store "
                   "bandwidth, a second core adds its own store buffers and caches (compare "
                   "copy_GBps with copy_GBps_all in this JSON)")
    del out
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    # the headline (the workload's main job at its reference size): materialized samples in
    # memory, one core, against the reference doing the same work inside its timer
    mat = ("draws, columns and windows built (materialized) into fresh arrays inside the "
           "timer, one core")
    bench.ratio("numba in memory (1 core) vs reference", c1, bench._ref, same=mat,
                key="materialized_vs_reference", headline=True)
    bench.ratio("numba in memory (1 core) vs seed's vectorized", c1, bench._seed,
                target=None if tiny else 30,
                same="draws and windows built inside the timer (the seed: one symbol, its "
                     "own columns), one core",
                key="materialized_vs_seed_vectorized")
    bench.ratio("numpy in memory vs reference", c_np, bench._ref, same=mat)
    bench.figure("materialized_samples_per_s_1core", c1["throughput"], "samples/s",
                 "numba through engines.numba_range (generate's path): draws + columns + "
                 "windows into fresh arrays, one core", case=c1)
    bw = kern[1].get("bw_fraction")
    bench.headline["numba_kernel_bw_fraction_1core"] = bw
    bench.headline["numba_in_memory_bw_fraction_1core"] = c1.get("bw_fraction")
    bench.headline["numba_in_memory_samples_per_s_1core"] = c1["throughput"]
    bench.headline["bw_target_0.5_ok"] = bool(bw is not None and bw >= 0.5)


# --------------------------------------------------------------------------- normalized
def _normalized(bench: Bench, tmp: Path) -> None:
    """Each run in a fresh process (its peak RSS is its own). The 2-core vs 1-core ratio is
    the median of repeated runs at a size that takes seconds; the target size (1e8 samples,
    full only) is one run, a target check, not a ratio."""
    tiny = bench.tiny
    reps = bench.min_repeats
    if tiny:  # the golden notebook: one normalized run, no ratio
        n = 1 << 18
        res = _subprocess_run(n, 2, tmp / "normalized-2")
        bench.add_case(f"normalized to Parquet, n={n:,}, 2 core(s)", res["seconds"],
                       impl="numba", size=n, unit="samples", n_jobs=2, backend="threads",
                       peak_rss_mb=res["peak_rss_mb"], file_bytes=res["file_bytes"],
                       n_windows=res["n_windows"])
        return
    n_r = 2_000_000 if bench.quick else 5_000_000
    results = {}
    for jobs in (2, 1):
        runs = [_subprocess_run(n_r, jobs, tmp / f"normalized-{jobs}") for _ in range(reps)]
        results[jobs] = bench.add_case(
            f"normalized to Parquet, n={n_r:.0e}, {jobs} core(s)", [r["seconds"] for r in runs],
            impl="numba", size=n_r, unit="samples", n_jobs=jobs,
            backend="threads" if jobs > 1 else "sequential",
            peak_rss_mb=max(r["peak_rss_mb"] for r in runs), file_bytes=runs[0]["file_bytes"],
            bytes_per_sample_on_disk=runs[0]["file_bytes"] / n_r,
            n_windows=runs[0]["n_windows"], fresh_process=True)
    bench.ratio("normalized 2 cores vs 1 (of 2x)", results[2], results[1],
                same=f"{n_r:,} samples written, normalized layout")
    if not bench.quick:
        n = 100_000_000
        res = _subprocess_run(n, 2, tmp / "normalized-target")
        c2 = bench.add_case(
            f"normalized to Parquet, n={n:.0e}, 2 core(s) (target check, one run)",
            res["seconds"], impl="numba", size=n, unit="samples", n_jobs=2, backend="threads",
            peak_rss_mb=res["peak_rss_mb"], file_bytes=res["file_bytes"],
            bytes_per_sample_on_disk=res["file_bytes"] / n, n_windows=res["n_windows"],
            fresh_process=True)
        print(f"    peak RSS {res['peak_rss_mb']:.0f} MB, {res['file_bytes'] / n:.1f} B/sample "
              f"on disk", flush=True)
        bench.headline["normalized_n"] = n
        bench.headline["normalized_seconds_2cores"] = c2["seconds"]
        bench.headline["normalized_peak_rss_mb_2cores"] = c2["peak_rss_mb"]
        bench.headline["normalized_target_ok"] = bool(
            c2["seconds"] <= 60 and c2["peak_rss_mb"] <= 2048)
    # materialized rows stream too: peak RSS does not grow with n
    for n_mat in ((1 << 19,) if bench.quick else (1 << 19, 1 << 21)):
        res = _subprocess_run(n_mat, 2, tmp / "materialized", materialize=True, fmt="ipc")
        bench.add_case(f"materialized to IPC, n={n_mat:,}, 2 cores (memory check, one run)",
                       res["seconds"], impl="numba", size=n_mat, unit="samples", n_jobs=2,
                       backend="threads", peak_rss_mb=res["peak_rss_mb"],
                       file_bytes=res["file_bytes"], fresh_process=True)
        print(f"    peak RSS {res['peak_rss_mb']:.0f} MB for {res['file_bytes'] / 1e9:.2f} GB "
              f"written", flush=True)


# --------------------------------------------------------------------------- to disk
def _raw_batches(space, cfg, n: int, table: str = "rows", keep: int | None = 2) -> list:
    """The record batches of the first ``n`` materialized samples, of the size the pipeline
    writes (``rows_per_batch``); only the first ``keep`` are built (the raw write cycles
    them, as the pipeline alternates two reused buffers)."""
    step = rows_per_batch(table, space.lookback)
    draws = Draws(cfg, space.n_keys)
    sym = pa.array(space.symbols)
    out = []
    for a in range(0, n, step):
        if keep is not None and len(out) >= keep:
            break
        cols, ohlcv = build_samples("numba", space, draws.take(a, min(n, a + step)), True)
        out.append(to_record_batch(cols, ohlcv, sym, rows_schema(space.lookback)))
    return out


def _batch_plan(n: int, step: int, k: int) -> list[list[tuple[int, int]]]:
    """Per writer (file) the (batch index, rows) it writes: writer i gets the i-th of ``k``
    equal chunks of ``n`` samples (as ``write_dataset(chunk_size=ceil(n / k))``), cut into
    batches of ``step`` rows."""
    per = -(-n // k)
    plan = []
    for i in range(k):
        lo, hi = i * per, min(n, (i + 1) * per)
        plan.append([(j, min(step, hi - a)) for j, a in enumerate(range(lo, hi, step))])
    return plan


def _raw_write(batches: list, paths_: list[Path], fmt: str, n: int) -> None:
    """pyarrow alone: the same writers (one thread per file, as many files as the pipeline's
    parts), the same batch size and the same writer settings as ``write_dataset``; the
    prebuilt batches are cycled (the pipeline reuses two buffers), sliced to the pipeline's
    row counts, so both sides write the same number of rows in the same batches."""
    k = len(paths_)
    plan = _batch_plan(n, batches[0].num_rows, k)

    def one(i: int) -> None:
        w = PartWriter(paths_[i], batches[0].schema, fmt)
        for j, rows in plan[i]:
            b = batches[j % len(batches)]
            w.write(b if rows == b.num_rows else b.slice(0, rows))
        w.close()
    if k == 1:
        one(0)
    else:
        with ThreadPoolExecutor(k) as ex:
            list(ex.map(one, range(k)))


def _to_disk(bench: Bench, space, cfg, tmp: Path) -> None:
    q, tiny = bench.quick, bench.tiny
    n = ((1 << 15) if tiny else (1 << 17)) if q else (1 << 18)
    batches = _raw_batches(space, cfg, n)
    row_b = batches[0].nbytes / batches[0].num_rows
    nbytes = int(row_b * n)
    bench.note("materialized_row_bytes", row_b)
    _encoding_study(bench, batches[0])
    jobs_list = (1,) if q else (1, min(2, available_cores()))
    for fmt in ("parquet", "ipc"):
        for jobs in sorted(set(jobs_list)):
            files = [tmp / f"raw-{fmt}-{jobs}-{i}" for i in range(jobs)]
            target = tmp / f"e2e-{fmt}-{jobs}"

            def raw_fn(files=files, fmt=fmt) -> int:
                _raw_write(batches, files, fmt, n)
                return sum(f.stat().st_size for f in files)

            def e2e_fn(target=target, fmt=fmt, jobs=jobs) -> int:
                return write_dataset(target, n, space, cfg, impl="numba", materialize=True,
                                     fmt=fmt, chunk_size=-(-n // jobs), n_jobs=jobs,
                                     backend="threads", progress=False).file_bytes
            raw, e2e = _paired(
                bench, (f"{fmt}: pyarrow alone writes the table, {jobs} file(s)", raw_fn,
                        "pyarrow"),
                (f"{fmt}: materialized end to end, n_jobs={jobs}", e2e_fn, "numba"),
                size=n, nbytes=nbytes, n_jobs=jobs, repeats=bench.min_repeats)
            # The target needs a spare core for the generation to overlap the writing: with
            # one writer on 2 cores it has one; with 2 writers both cores also generate.
            # The tracked figure is the one-writer case, which every size runs (it means
            # the same at tiny, quick and full).
            bench.ratio(f"{fmt} end-to-end vs pyarrow alone, {jobs} writer(s)", e2e, raw,
                        target=0.8 if jobs == 1 and not tiny else None,
                        same=f"{n:,} materialized rows, {jobs} writer(s), batches of "
                        f"{batches[0].num_rows:,} rows, writer settings",
                        key=f"{fmt}_e2e_vs_raw_write" if jobs == 1 else None)
            for f in files:
                f.unlink(missing_ok=True)
            shutil.rmtree(target, ignore_errors=True)
    del batches


def _paired(bench: Bench, a: tuple, b: tuple, *, size: int, nbytes: int, n_jobs: int,
            repeats: int) -> tuple[dict, dict]:
    """Time two ways of doing the same work alternately (a, b, a, b, ... after one warm-up
    each), so a change in the machine's load hits both: medians recorded as two cases."""
    times: dict[int, list[float]] = {0: [], 1: []}
    out: dict[int, int] = {}
    for r in range(repeats + 1):
        for i, (_, fn, _) in enumerate((a, b)):
            t = time.perf_counter()
            out[i] = fn()
            if r:
                times[i].append(time.perf_counter() - t)
    cases = []
    for i, (name, _, impl) in enumerate((a, b)):
        med = statistics.median(times[i])
        c = bench.add_case(name, times[i], impl=impl, size=size, unit="samples", n_jobs=n_jobs,
                           backend="threads" if n_jobs > 1 else "sequential",
                           file_bytes=out[i],
                           GBps=nbytes / med / 1e9)
        if bench.bw_fraction(c["GBps"], n_jobs) is not None:
            c["bw_fraction"] = bench.bw_fraction(c["GBps"], n_jobs)
        cases.append(c)
    return cases[0], cases[1]


def _encoding_study(bench: Bench, rb) -> None:
    """Bytes per materialized row and encode CPU per row for a few Parquet settings."""
    study = {}
    for comp, bss in (("none", False), ("lz4", False), ("lz4", True), ("zstd", False),
                      ("zstd", True)):
        opts = parquet_options(rb.schema, comp)
        opts["use_byte_stream_split"] = bss
        if comp != "zstd":
            opts["compression_level"] = None

        def w() -> int:
            buf = pa.BufferOutputStream()
            wr = pq.ParquetWriter(buf, rb.schema, **opts)
            wr.write_batch(rb)
            wr.close()
            return buf.getvalue().size
        size = w()
        t = time.process_time()
        for _ in range(2):
            w()
        cpu = (time.process_time() - t) / 2
        study[f"{comp}{'+bss' if bss else ''}"] = {
            "bytes_per_row": round(size / rb.num_rows, 1),
            "encode_GBps_per_core": round(rb.nbytes / cpu / 1e9, 3)}
    bench.note("parquet_encoding_study", study)
    print("  parquet encoding study (materialized rows):", flush=True)
    for k, v in study.items():
        print(f"    {k:<10s} {v['bytes_per_row']:7.1f} B/row  {v['encode_GBps_per_core']:.2f} "
              f"GB/s/core (CPU time)", flush=True)


# --------------------------------------------------------------------------- loader
def _loader(bench: Bench, space, cfg, tmp: Path) -> None:
    n = ((1 << 15) if bench.tiny else (1 << 17)) if bench.quick else (1 << 20)
    row_bytes = 5 * LOOKBACK * 4
    write_dataset(tmp / "ld-norm", n, space, cfg, impl="numba", progress=False)
    for fmt in ("parquet", "ipc"):
        write_dataset(tmp / f"ld-mat-{fmt}", n, space, cfg, impl="numba", materialize=True,
                      fmt=fmt, progress=False)
    cases = [("ld-norm", False, "normalized store, fresh batch arrays"),
             ("ld-norm", True, "normalized store, reused batch buffers"),
             ("ld-mat-parquet", False, "materialized Parquet rows"),
             ("ld-mat-ipc", False, "materialized Arrow IPC rows")]
    for name, reuse, label in cases:
        ds = open_dataset(tmp / name)

        def it(ds=ds, reuse=reuse) -> int:
            return sum(len(b) for b in ds.loader(batch_size=65536, reuse_buffers=reuse))
        bench.measure(f"loader: {label}", it, impl="numba", size=n, unit="samples",
                      nbytes=n * row_bytes)
    # the training loader (issue #16): a new permutation per epoch, batch-first windows and
    # the columns as fresh DLPack-ready arrays, built in a background thread; its bytes
    # delivered per second against the machine's copy bandwidth (bw_fraction)
    col_bytes = 4 + 4 + 8 + 8 + 8 + 1 + 8
    for name, label in (("ld-norm", "normalized store"), ("ld-mat-ipc", "materialized IPC")):
        tl = train_loader(open_dataset(tmp / name), batch_size=65536, seed=0)
        tl.batch(np.arange(8))  # tables loaded once, outside the timing

        def it(tl=tl) -> int:
            tl.set_epoch(tl.epoch + 1)
            return sum(len(b["window"]) for b in tl)
        c = bench.measure(f"train loader: {label}, shuffled, prefetch 2", it, impl="numpy",
                          size=n, unit="samples", nbytes=n * (row_bytes + col_bytes),
                          note="bytes of the batches delivered / s vs the copy bandwidth")
        if name == "ld-norm":
            bench.headline["train_loader_GBps"] = c.get("GBps")
            bench.headline["train_loader_bw_fraction"] = c.get("bw_fraction")


# --------------------------------------------------------------------------- GPU
def gpu_keys(space, cfg, m: int) -> np.ndarray:
    """The keys of samples ``[0, m)`` (drawn in blocks of 2^22), the GPU cases' input."""
    return np.concatenate([Draws(cfg, space.n_keys).take(a, min(m, a + (1 << 22)))["key"]
                           for a in range(0, m, 1 << 22)])


def gpu_cases(bench: Bench, space, cfg, keys: np.ndarray, tmp: Path, *, loader_samples: int,
              check_windows: Any = None) -> dict:
    """synth's GPU cases, timed into ``bench`` (this bench's ``_gpu`` and the device run,
    :mod:`qbt_lib.bench.gpu`, both call it): the gather+scale kernel of ``keys`` into device
    memory (``check_windows(device windows)`` runs right after it), its array-generic
    fallback, CPU draws + pinned upload + device gather+scale, pinned-staged copies of 256 MiB
    each way, and the loader feeding device batches from a normalized dataset of
    ``loader_samples`` written under ``tmp``. Returns the ``kernel``, ``h2d`` and ``loader``
    cases and the ``dataset``."""
    import cupy as cp
    m = len(keys)
    row_bytes = 5 * LOOKBACK * 4
    ds = gpu.device_space(space)
    key_dev = gpu.to_device(keys)
    out = cp.empty((5, m, LOOKBACK), cp.float32)

    def on_device(fn):
        def timed() -> None:
            fn()
            cp.cuda.get_current_stream().synchronize()
        return timed
    k = bench.measure(f"cupy gather+scale kernel, {m:,} samples (device memory)",
                      on_device(lambda: gpu.gather_scale_device(ds, key_dev, out)),
                      impl="cupy", size=m, unit="samples", device="gpu",
                      nbytes=m * row_bytes, repeats=10)
    if check_windows is not None:
        check_windows(out)
    bench.measure("cupy array-generic gather+scale (device)",
                  on_device(lambda: gpu.gather_scale_device(ds, key_dev, out,
                                                            use_kernel=False)),
                  impl="cupy-xp", size=m, unit="samples", device="gpu", nbytes=m * row_bytes,
                  repeats=3)
    del out
    m2 = min(m, 1 << 22)
    bench.measure("cupy: CPU draws + pinned upload + device gather+scale",
                  on_device(lambda: gpu.materialize_device(space, cfg, 0, m2)), impl="cupy",
                  size=m2, unit="samples", device="gpu", nbytes=m2 * row_bytes, repeats=3)
    host = np.ones(1 << 28, np.uint8)
    h2d = bench.measure("pinned-staged host->device copy (256 MiB)",
                        lambda: gpu.to_device(host), impl="cupy", size=host.nbytes,
                        unit="bytes", device="gpu", nbytes=host.nbytes, repeats=5)
    h2d.pop("_result", None)
    dev = gpu.to_device(host)
    d2h = bench.measure("pinned-staged device->host copy (256 MiB)", lambda: gpu.to_host(dev),
                        impl="cupy", size=host.nbytes, unit="bytes", device="gpu",
                        nbytes=host.nbytes, repeats=5)
    d2h.pop("_result", None)
    del dev, host
    n = loader_samples
    write_dataset(tmp / "gpu-norm", n, space, cfg, impl="cupy", progress=False)
    dsn = open_dataset(tmp / "gpu-norm")
    lg = bench.measure("loader: normalized -> device batches (pinned)",
                       lambda: sum(len(x) for x in dsn.loader(batch_size=1 << 18,
                                                              device="gpu")),
                       impl="cupy", size=n, unit="samples", device="gpu",
                       nbytes=n * row_bytes, repeats=3)
    return {"kernel": k, "h2d": h2d, "loader": lg, "dataset": dsn}


def _gpu(bench: Bench, space, cfg, tmp: Path) -> None:
    m = (1 << 22) if bench.quick else (1 << 24)
    k = gpu_cases(bench, space, cfg, gpu_keys(space, cfg, m), tmp,
                  loader_samples=1 << 21)["kernel"]
    bench.headline["gpu_samples_per_s"] = k["throughput"]
    bench.headline["gpu_target_500M_ok"] = bool(k["throughput"] >= 5e8)
