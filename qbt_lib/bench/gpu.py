"""``python -m qbt_lib.bench.gpu [--tag h200] [--out DIR] [--size full|tiny] [--only W,..]``

The device run of a GPU machine's short lease, in one process: every workload's GPU path
against the CPU path **of the same machine on all its cores**, on the same work, with the
answers compared, plus the CPU scaling curve (1, 2, 4, 8, 16 workers) of each workload's fast
path. One ``<workload>-<tag>.json`` per workload (``Bench``'s schema), so the report and the
README pick the GPU figures up beside the CPU ones.

The sizes are the targets' (``full``): synth's gather+scale over 2^23 samples in device
memory, straddles' 1,002,240 straddles (64M straddle-days), waves' 500 symbols x 2,000 bars
(every start bar), marketsim's 500 symbols x 70 simulations. ``--size tiny`` runs the same
code in seconds (the CPU test of this script before a lease; GPU cases are skipped without a
GPU). Each workload runs in its own ``try``: one failing path is logged with its traceback
and the others still run (the lease is short).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from .. import marketsim as ms
from .. import paths
from .. import walkforward as wf
from ..device import gpu_available, gpu_status
from ..marketsim import gpu as mgpu
from ..parallel import available_cores
from ..straddles import backtest, build_schedule, core, load_market
from ..straddles.gpu import device_throughput
from ..straddles.schedule import asset_days
from ..synth import draw_config, sample_space
from ..synth import bench as synth_bench
from ..synth.bench import LOOKBACK, SYMBOLS
from ..synth.nb import gather_scale_par_nb
from ..waves import as_store, load_source, scan
from ..waves import gpu as wgpu
from . import Bench

WORKLOADS = ("synth", "straddles", "marketsim", "waves", "walkforward")


def worker_counts(cores: int) -> list[int]:
    """1, 2, 4, ... up to ``cores`` (and ``cores`` itself)."""
    out, k = [], 1
    while k < cores:
        out.append(k)
        k *= 2
    return out + [cores]


def _curve(b: Bench, name: str, make, *, size: float, unit: str, backend: str,
           counts: list[int], repeats: int = 3) -> dict[int, dict]:
    """The same work timed at each worker count. Each count's parallel efficiency over one
    worker goes through :meth:`Bench.efficiency` (a value above 100% is re-measured and,
    still above, dropped: a curve states no reason for it); the note keeps the seconds and
    the efficiency kept (None where dropped)."""
    cases = {}
    for k in counts:
        cases[k] = b.measure(f"{name}, {k} worker(s)", make(k), impl="numba", size=size,
                             unit=unit, n_jobs=k, backend=backend if k > 1 else "sequential",
                             repeats=repeats, curve=name)
        cases[k].pop("_result", None)
    one = cases[counts[0]]
    eff = {k: b.efficiency(f"{name}: {k} workers vs 1", c, one, k)
           for k, c in cases.items() if k > counts[0]}
    b.note(f"scaling: {name}", {k: {"seconds": round(c["seconds"], 4),
                                    "efficiency": None if eff.get(k, 1.0) is None
                                    else round(eff.get(k, 1.0), 3)}
                                for k, c in cases.items()})
    return cases


def no_gpu(b: Bench) -> bool:
    """True (and the reason noted) when no usable GPU is here: the GPU cases are skipped."""
    usable, why = gpu_status()
    if not usable:
        b.note("gpu", "not measured: " + why)
    return not usable


def stage_times(module, names: list[str], fn) -> dict[str, float]:
    """Seconds spent in each of ``module``'s functions ``names`` during one ``fn()`` call
    (each wrapped with a device synchronize before and after, so the GPU work lands in the
    stage that queued it; the extra syncs make the total a little slower than untimed)."""
    import cupy as cp
    spent = dict.fromkeys(names, 0.0)
    orig = {n: getattr(module, n) for n in names}

    def wrap(n):
        def timed(*a, **k):
            cp.cuda.Device().synchronize()
            t = time.perf_counter()
            r = orig[n](*a, **k)
            cp.cuda.Device().synchronize()
            spent[n] += time.perf_counter() - t
            return r
        return timed
    try:
        for n in names:
            setattr(module, n, wrap(n))
        t = time.perf_counter()
        fn()
        spent["total"] = time.perf_counter() - t
    except Exception as e:  # a breakdown is a note: never lose the section's figures to it
        return {"error": repr(e)}
    finally:
        for n, f in orig.items():
            setattr(module, n, f)
    return {k: round(v, 4) for k, v in spent.items()}


# --------------------------------------------------------------------------- synth
def synth(b: Bench, counts: list[int]) -> None:
    import numba

    tiny = b.tiny
    space = sample_space("synthetic", SYMBOLS, seed=0, lookback=LOOKBACK, horizon=1)
    cfg = draw_config(0)
    m = (1 << 16) if tiny else (1 << 23)
    row_bytes = 5 * LOOKBACK * 4
    keys = synth_bench.gpu_keys(space, cfg, m)
    t = space.tables()
    out = np.empty((5, m, LOOKBACK), np.float32)
    cores = counts[-1]

    def cpu_kernel(k):
        def fn():
            numba.set_num_threads(k)
            gather_scale_par_nb(t["prices"], t["key_start"], t["key_scale"], keys, out)
        return fn
    curve = _curve(b, f"numba gather+scale, {m:,} samples", cpu_kernel, size=m,
                   unit="samples", backend="numba-threads", counts=counts, repeats=5)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    cpu = curve[cores]
    if no_gpu(b):
        return
    import cupy as cp

    def same_windows(dev_out) -> None:
        # every 4th sample's windows (a full copy back would cost seconds of the lease)
        b.same_answers(f"gather+scale: GPU windows vs {cores}-thread CPU windows (every 4th "
                       f"of {m:,} samples, bitwise)",
                       bool(np.array_equal(cp.asnumpy(dev_out[:, ::4]), out[:, ::4])))
    tmp = Path(tempfile.mkdtemp(dir=paths.cache_dir()))
    try:
        n = (1 << 16) if tiny else (1 << 21)
        cases = synth_bench.gpu_cases(b, space, cfg, keys, tmp, loader_samples=n,
                                      check_windows=same_windows)
        del out
        g, h2d, lg, dsn = (cases[k] for k in ("kernel", "h2d", "loader", "dataset"))
        b.ratio(f"gather+scale, GPU vs {cores} CPU threads", g, cpu,
                same=f"{m:,} samples gathered and scaled into memory of the device that "
                     "runs it")
        lc = b.measure("loader: normalized -> host batches",
                       lambda: sum(len(x) for x in dsn.loader(batch_size=1 << 18)),
                       impl="numba", size=n, unit="samples", nbytes=n * row_bytes, repeats=3)
        b.ratio("loader: device batches vs host batches", lg, lc,
                same=f"{n:,} samples read and windows built, batches of 2^18")
        b.same_answers("loader: device batches vs host batches", all(
            np.array_equal(x.ohlcv, cp.asnumpy(y.ohlcv)) for x, y in
            zip(dsn.loader(batch_size=1 << 18), dsn.loader(batch_size=1 << 18, device="gpu"))))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    b.headline.update({
        "gpu": f"{g['throughput'] / 1e6:,.0f}M samples/s gather+scale on {gpu_status()[1]} "
               f"({g['GBps']:.0f} GB/s written; target 500M) vs {cpu['throughput'] / 1e6:,.0f}M"
               f" on {cores} CPU threads; pinned host->device {h2d['GBps']:.1f} GB/s "
               f"(target 10)",
        "gpu_samples_per_s": g["throughput"], "gpu_target_500M_ok": g["throughput"] >= 5e8,
        "h2d_GBps": h2d["GBps"], "h2d_target_10GBps_ok": h2d["GBps"] >= 10})


# --------------------------------------------------------------------------- straddles
def straddles(b: Bench, counts: list[int]) -> None:
    tiny = b.tiny
    tenor, per_month = 63, 8
    n_assets = 3 if tiny else 435      # 435 x 2,304 = 1,002,240 straddles
    store, assets = load_market("synthetic", assets=n_assets, start_year=2001, end_year=2024,
                                tenor=tenor)
    big = build_schedule(store, assets, 2001, 2024, per_month, tenor)
    cores = counts[-1]
    sub = big.take(0, min(len(big), 2_000 if tiny else 200_000))

    def summ(k):
        return lambda: backtest(store, sub, impl="numba", n_jobs=k, backend="threads",
                                output="summary", progress=False)
    _curve(b, f"numba valuation, summary only, {len(sub):,} straddles", summ,
           size=sub.straddle_days, unit="straddle-days", backend="threads", counts=counts)
    rows = big.straddle_days
    cpu = b.measure(f"numba, rows kept as a table, {len(big):,} straddles, {cores} threads",
                    lambda: backtest(store, big, impl="numba", n_jobs=cores,
                                     backend="threads", output="table", progress=False),
                    impl="numba", size=rows, unit="straddle-days", n_jobs=cores,
                    backend="threads", repeats=3, nbytes=rows * core.ROW_BYTES)
    cpu_rows = cpu.pop("_result").rows
    cs = b.measure(f"numba, summary only, {len(big):,} straddles, {cores} threads",
                   lambda: backtest(store, big, impl="numba", n_jobs=cores, backend="threads",
                                    output="summary", progress=False),
                   impl="numba", size=rows, unit="straddle-days", n_jobs=cores,
                   backend="threads", repeats=3)
    if no_gpu(b):
        return
    p, v, _, s = asset_days(store, big)
    r = device_throughput(p, v, s, tenor)
    dk = b.add_case(f"cupy kernels, rows in device memory, {len(big):,} straddles",
                    r["value_seconds"], impl="cupy", size=r["rows"], unit="straddle-days",
                    device="gpu", with_pnl_seconds=r["all_seconds"],
                    GBps=r["bytes_written_value"] / r["value_seconds"] / 1e9,
                    timed="CUDA events, median of 5")
    g = b.measure(f"cupy, rows kept as a table (host), {len(big):,} straddles",
                  lambda: backtest(store, big, impl="cupy", device="gpu", output="table",
                                   progress=False),
                  impl="cupy", size=rows, unit="straddle-days", device="gpu", repeats=3,
                  nbytes=rows * core.ROW_BYTES)
    g_rows = g.pop("_result").rows
    k = min(rows, 1_000_000)   # head, middle and tail (pandas copies of all rows: seconds)
    ok, detail = True, f"rtol 1e-12, rows 0, {rows // 2:,} and {rows - k:,} (+{k:,} each)"
    for a in sorted({0, rows // 2, rows - k}):
        try:
            core.compare_rows(g_rows.slice(a, k), cpu_rows.slice(a, k), rtol=1e-12)
        except AssertionError as e:
            ok, detail = False, f"rows {a:,}+: {str(e)[:500]}"
            break
    b.same_answers(f"GPU rows vs {cores}-thread CPU rows ({rows:,} straddle-days)", ok, detail)
    del g_rows, cpu_rows
    b.ratio(f"rows kept as a host table: GPU vs {cores} CPU threads", g, cpu,
            same=f"{len(big):,} straddles valued with greeks and hedge, every row kept as an "
                 "Arrow table in host memory")
    gs = b.measure(f"cupy, summary only, {len(big):,} straddles",
                   lambda: backtest(store, big, impl="cupy", device="gpu", output="summary",
                                    progress=False),
                   impl="cupy", size=rows, unit="straddle-days", device="gpu", repeats=3)
    sa, sb = cs.pop("_result").summary, gs.pop("_result").summary
    try:
        core.compare_rows(sb, sa, rtol=1e-12)
        ok = True
    except AssertionError as e:
        ok = False
        b.note("summary_diff", str(e)[:500])
    b.same_answers(f"GPU summary vs {cores}-thread CPU summary", ok)
    b.ratio(f"summary only: GPU vs {cores} CPU threads", gs, cs,
            same=f"{len(big):,} straddles valued with greeks and hedge, per-straddle summary "
                 "kept in host memory")
    b.headline.update({
        "gpu": f"{dk['throughput'] / 1e9:.2f}G straddle-days/s kept in device memory (target "
               f"1G) on {gpu_status()[1]}; end to end into a host table "
               f"{g['throughput'] / 1e6:,.0f}M/s vs {cpu['throughput'] / 1e6:,.0f}M/s on "
               f"{cores} CPU threads",
        "gpu_straddle_days_per_s": dk["throughput"],
        "gpu_target_1G_ok": dk["throughput"] >= 1e9})


# --------------------------------------------------------------------------- waves
def waves(b: Bench, counts: list[int]) -> None:
    import pandas as pd

    tiny = b.tiny
    bars = 2000
    n_sym = 4 if tiny else 500
    store = as_store(load_source("synthetic", n_sym, bars, 0))
    cores = counts[-1]
    n_curve = 2 if tiny else 48
    cstore = as_store(load_source("synthetic", n_curve, bars, 0))

    def sc(k):
        return lambda: scan(cstore, up_to=15, top_k=10, n_jobs=k, backend="threads",
                            progress=False)
    _curve(b, f"every start bar, {n_curve} x {bars}", sc, size=n_curve * bars,
           unit="start bars", backend="threads", counts=counts)
    cpu = b.measure(f"every start bar, {n_sym} x {bars}, {cores} threads",
                    lambda: scan(store, up_to=15, top_k=10, n_jobs=cores, backend="threads",
                                 progress=False),
                    impl="numba", size=n_sym * bars, unit="start bars", n_jobs=cores,
                    backend="threads", repeats=3)
    if no_gpu(b):
        return
    # a probe on a tenth of the symbols first (it also compiles): a GPU path slower than
    # projected 40 s for the whole universe is measured on the probe's size only
    n_probe = max(1, n_sym // 10)
    pstore = as_store(load_source("synthetic", n_probe, bars, 0))
    scan(pstore, up_to=15, top_k=10, device="gpu", progress=False)
    t = time.perf_counter()
    scan(pstore, up_to=15, top_k=10, device="gpu", progress=False)
    probe = time.perf_counter() - t
    b.note("gpu_probe", f"{n_probe} x {bars} in {probe:.2f} s")
    if probe * n_sym / n_probe > 40:
        b.add_case(f"every start bar, {n_probe} x {bars}, GPU (probe)", probe, impl="cupy",
                   size=n_probe * bars, unit="start bars", device="gpu")
        b.headline["gpu"] = (f"{n_sym} x {bars} not run on the GPU: the {n_probe}-symbol "
                             f"probe took {probe:.1f} s")
        return
    g = b.measure(f"every start bar, {n_sym} x {bars}, GPU", lambda: scan(
        store, up_to=15, top_k=10, device="gpu", progress=False), impl="cupy",
        size=n_sym * bars, unit="start bars", device="gpu", repeats=3, max_seconds=30)
    b.note("gpu_stages_s", stage_times(wgpu, ["flatten", "search_batch"], lambda: scan(
        store, up_to=15, top_k=10, device="gpu", progress=False)))
    a, d = cpu.pop("_result"), g.pop("_result")
    try:
        pd.testing.assert_frame_equal(a.patterns, d.patterns)
        pd.testing.assert_frame_equal(a.rejects, d.rejects)
        ok, detail = True, f"{len(a.patterns):,} patterns, rejects equal"
    except AssertionError as e:
        ok, detail = False, str(e)[:500]
    b.same_answers(f"{n_sym} x {bars} scan: GPU vs {cores} CPU threads", ok, detail)
    b.ratio(f"{n_sym} x {bars} every start bar: GPU vs {cores} CPU threads", g, cpu,
            same=f"{n_sym} symbols x {bars} bars, every start bar, up_to 15, top 10 kept")
    b.headline.update({
        "gpu": f"{n_sym} x {bars} every start bar in {g['seconds']:.2f} s on "
               f"{gpu_status()[1]} vs {cpu['seconds']:.2f} s on {cores} CPU threads "
               f"(same patterns: {ok})",
        "gpu_seconds": g["seconds"], "cpu_all_cores_seconds": cpu["seconds"]})


# --------------------------------------------------------------------------- marketsim
def marketsim(b: Bench, counts: list[int]) -> None:
    tiny = b.tiny
    sims = 10 if tiny else 70
    n_sym = 4 if tiny else 500
    n_curve = 4 if tiny else 128
    cores = counts[-1]
    ms.warm_up()
    cframes = ms.synthetic_universe(n_curve)

    def run(k):
        return lambda: ms.run(cframes, impl="numba", backend="threads", n_jobs=k,
                              device="cpu", warm_up=False, progress=False, simulations=sims)
    _curve(b, f"{n_curve} symbols x {sims} sims", run, size=n_curve * sims,
           unit="symbol-sims", backend="threads", counts=counts)
    frames = ms.synthetic_universe(n_sym)
    cpu = b.measure(f"{n_sym} symbols x {sims} sims, {cores} threads", lambda: ms.run(
        frames, impl="numba", backend="threads", n_jobs=cores, device="cpu", warm_up=False,
        progress=False, simulations=sims), impl="numba", size=n_sym * sims,
        unit="symbol-sims", n_jobs=cores, backend="threads", repeats=3)
    if no_gpu(b):
        return
    b.note("gpu_warmup_s", mgpu.warmup())
    g = b.measure(f"{n_sym} symbols x {sims} sims, GPU", lambda: ms.run(
        frames, impl="cupy", device="gpu", warm_up=False, progress=False, simulations=sims),
        impl="cupy", size=n_sym * sims, unit="symbol-sims", device="gpu", repeats=3,
        max_seconds=30)
    b.note("gpu_stages_s", stage_times(mgpu, ["percent_changes", "ar_fit",
                                             "bootstrap_forecasts", "evaluate_windows"],
                                       lambda: ms.run(frames, impl="cupy", device="gpu",
                                                      warm_up=False, progress=False,
                                                      simulations=sims)))
    a, d = cpu.pop("_result"), g.pop("_result")
    worst, ok = 0.0, list(a.picks["strategy"]) == list(d.picks["strategy"])
    for k, x in a.arrays.items():
        y = d.arrays[k]
        if not np.allclose(x, y, rtol=ms.RTOL, atol=ms.ATOL, equal_nan=True):
            ok = False
        with np.errstate(all="ignore"):
            rel = np.abs(np.asarray(x, float) - np.asarray(y, float)) / np.maximum(
                np.abs(np.asarray(x, float)), 1e-300)
        if np.isfinite(rel).any():
            worst = max(worst, float(np.nanmax(np.where(np.isfinite(rel), rel, 0))))
    b.same_answers(f"{n_sym} x {sims}: GPU vs {cores} CPU threads (picks equal, arrays within "
                   f"rtol {ms.RTOL:g}/atol {ms.ATOL:g})", ok, f"max rel diff {worst:.2e}")
    b.ratio(f"{n_sym} x {sims}: GPU vs {cores} CPU threads", g, cpu,
            same=f"{n_sym} symbols x {sims} simulations analysed, the seven strategies")
    b.headline.update({
        "gpu": f"{n_sym} x {sims} in {g['seconds']:.2f} s on {gpu_status()[1]} vs "
               f"{cpu['seconds']:.2f} s on {cores} CPU threads (max rel diff {worst:.1e})",
        "gpu_seconds": g["seconds"], "cpu_all_cores_seconds": cpu["seconds"]})


# --------------------------------------------------------------------------- walkforward
def walkforward(b: Bench, counts: list[int]) -> None:
    n = 4 if b.tiny else 10     # the synthetic source's 10 assets
    kw = dict(model="random_forest", n_estimators=5 if b.tiny else 30, progress=False)

    def run(k):   # processes: scikit-learn's forest fits hold the GIL (threads: flat)
        return lambda: wf.run(symbols=n, n_jobs=k, backend="loky", **kw)
    wf.run(symbols=2, **kw)   # compile outside the timings
    _curve(b, f"{n} assets, default folds, random forest of {kw['n_estimators']} "
              f"(features cached; loky pool started in the warm-up)", run, size=n,
           unit="assets", backend="loky", counts=counts)
    b.note("gpu", "no GPU path (scikit-learn fits on the CPU)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qbt_lib.bench.gpu", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tag", default=None, help="JSON name suffix (default: gpu, else cpu)")
    ap.add_argument("--out", default=None, help="output folder (default outputs/bench)")
    ap.add_argument("--size", choices=("tiny", "full"), default="full")
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads")
    args = ap.parse_args(argv)
    tag = args.tag or ("gpu" if gpu_available() else "cpu")
    counts = worker_counts(available_cores())
    print(f"GPU: {gpu_status()}; cores {available_cores()}; worker counts {counts}", flush=True)
    failed = []
    for name in [w.strip() for w in args.only.split(",") if w.strip()]:
        if name not in WORKLOADS:
            ap.error(f"--only: unknown workload {name!r} (one of {', '.join(WORKLOADS)})")
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        b = Bench(name, size=args.size, tag=tag, out_dir=args.out, min_repeats=3,
                  fill_seconds=0.3)
        b.note("run", "python -m qbt_lib.bench.gpu: GPU vs this machine's CPU cores, scaling")
        try:
            globals()[name](b, counts)
        except Exception:  # keep the lease's other workloads running; the JSON says why
            failed.append(name)
            tb = traceback.format_exc()
            print(tb, flush=True)
            b.note("error", tb[-4000:])
        b.note("section_seconds", time.perf_counter() - t0)
        b.finish()
    print("failed: " + (", ".join(failed) or "none"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
