"""``python -m qbt_lib.bench waves [--quick]``: the impulse scan, before and after.

Cases (all ``up_to=15``, compat rules, up impulses):

1. One start bar - the unit the original was measured in. Real S&P 500 daily bars (the
   ``arch`` sample), the last 500-bar window, start = the lowest low of its first half. The
   reference tries all 579,195 tuples (full run: to the end, so its patterns can be compared;
   ``--quick``: stopped after a few seconds, its tuples/s counts the tuples it tried). The
   fast path's throughput counts the same 579,195 tuples per start bar, as the original did.
   The original's own figure (~25 thousand tuples/s on one core, ``docs/waves.md``) is recorded
   as an unmeasured case for the >= 10,000x target.
2. Every start bar of one ~5,000-bar series (S&P 500, 5,031 bars), n_jobs 1 vs all.
3. Every start bar of a synthetic universe (500 symbols x 2,000 bars; ``--quick``: 20), CPU
   n_jobs 1 vs all, and the GPU when one is usable.
"""
from __future__ import annotations

import os
import time

import numpy as np

from ..device import gpu_available, gpu_status
from ..parallel import available_cores
from .api import run as scan
from .enums import COMPAT
from .nb import search, tables_nb
from .prices import as_store, load_source
from .reference import find_impulses, n_tuples
from .results import ORIGINAL_TUPLES_PER_S

UP_TO = 15

#: the figures asv tracks (``benchmarks/benchmarks.py``): key -> unit
TRACKED = {
    "one_start_bar_vs_reference": "x",
    "one_start_bar_tuples_per_s": "tuples/s",
    "universe_parallel_efficiency": "fraction",
}
#: which tracked figure is each column of the README/report summary
SUMMARY = {"throughput": "one_start_bar_tuples_per_s", "speedup_vs_reference": "one_start_bar_vs_reference",
           "parallel_efficiency": "universe_parallel_efficiency"}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _measure(bench, name, fn, **kw) -> dict:
    """``bench.measure`` plus the process CPU seconds per call (all threads): on a busy
    shared machine the wall time says little, the CPU time says what the work costs."""
    c0 = _cpu()
    case = bench.measure(name, fn, **kw)
    calls = len(case["times"]) + kw.get("warmup", 1)
    case["cpu_seconds"] = (_cpu() - c0) / calls
    return case


def run(bench) -> None:
    """The three cases, in this order, and the headline."""
    bench.note("load_average_at_start", os.getloadavg())
    bench.note("up_to", UP_TO)
    bench.note("tuples_per_start_bar", n_tuples(UP_TO))
    spx = load_source("sp500")["SP500"]
    one = one_start_bar(bench, spx)
    series = every_start_bar_of_a_series(bench, spx)
    uni = universe(bench)
    bench.note("load_average_at_end", os.getloadavg())
    bench.note("universe_cpu_seconds", {n: round(c["cpu_seconds"], 2)
                                        for n, c in uni["cases"].items()})
    headline(bench, one, series, uni)


# --------------------------------------------------------------------------- 1. one start bar
def one_start_bar(bench, spx) -> dict:
    """Case 1: the reference, the original's figure and the fast path on one start bar;
    the headline ratio. Returns what the headline needs."""
    lo_w = np.array(spx["low"].to_numpy()[-500:])     # own writeable copies for Numba
    hi_w = np.array(spx["high"].to_numpy()[-500:])
    s0 = int(np.argmin(lo_w[:250]))
    bench.note("one_start_bar", f"S&P 500 last 500 bars ({spx.index[-500]:%Y-%m-%d} .. "
                                f"{spx.index[-1]:%Y-%m-%d}), start bar {s0} of the window")
    ref_case, ref_found, complete = _reference_one_start_bar(bench, lo_w, hi_w, s0)
    orig_case = bench.add_case("original (spec figure, not measured)",
                               n_tuples(UP_TO) / ORIGINAL_TUPLES_PER_S, impl="original",
                               size=n_tuples(UP_TO), unit="tuples", measured=False)
    fast_case, same = _fast_one_start_bar(bench, lo_w, hi_w, s0, ref_found, complete)
    mean_case = _fast_every_start_bar_of_the_window(bench, lo_w, hi_w)
    r_orig = bench.ratio("one start bar vs original 25k tuples/s", fast_case, orig_case,
                         target=10_000)
    # the headline (one named case): one start bar, one core, both sides counting the same
    # 579,195 tuples
    r_ref = bench.ratio("one start bar vs reference (measured)", fast_case, ref_case,
                        same="start bar, tuples, rules, one core",
                        key="one_start_bar_vs_reference", headline=True)
    bench.ratio("window mean vs reference (measured)", mean_case, ref_case,
                same="tuples per start bar, one core")
    bench.figure("one_start_bar_tuples_per_s", fast_case["throughput"], "tuples/s",
                 "fast path, one start bar (tables included), one core", case=fast_case)
    return dict(fast=fast_case, r_ref=r_ref, r_orig=r_orig, same=same)


def _reference_one_start_bar(bench, lo_w, hi_w, s0) -> tuple[dict, list, bool]:
    """The reference tries all 579,195 tuples (full run: to the end, so its patterns can be
    compared; ``--quick``: stopped after a few seconds, its rate from the tuples it tried)."""
    tuples = n_tuples(UP_TO)
    cap = (0.3 if getattr(bench, "tiny", False) else 3.0) if bench.quick else None
    # repeats: the first run goes to the end at full size (its patterns are compared with
    # the fast path's); every run's time is scaled to all the tuples from the tuples it
    # tried (the reference's rate), so the capped runs give a median of repeats too
    reps = getattr(bench, "min_repeats", 5)
    runs = []
    for r in range(reps):
        t = time.perf_counter()
        found, tr = find_impulses(lo_w, hi_w, s0, UP_TO,
                                  max_seconds=cap if (cap or r == 0) else 3.0)
        runs.append((time.perf_counter() - t, tr))
        if r == 0:
            ref_found, tried = found, tr
    complete = tried == tuples
    ref_case = bench.add_case(
        f"reference one start bar ({'all' if complete else 'capped'}; rate of {reps} runs)",
        [dt * tuples / max(tr, 1) for dt, tr in runs], impl="reference", size=tuples,
        unit="tuples", complete=complete, patterns=len(ref_found),
        tuples_tried=[tr for _, tr in runs],
        call_seconds=sorted(dt for dt, _ in runs[1:] or runs)[len(runs[1:] or runs) // 2])
    # profiled like every reference (the profiling notebook's ProfilingBench): one capped call
    bench.after_measure(ref_case, lambda: find_impulses(lo_w, hi_w, s0, UP_TO,
                                                        max_seconds=cap or 3.0))
    return ref_case, ref_found, complete


def _fast_one_start_bar(bench, lo_w, hi_w, s0, ref_found, complete) -> tuple[dict, bool]:
    """The Numba search on the same start bar, lookup tables included (the whole cost of a
    lone start bar); its patterns against the reference's."""
    tuples = n_tuples(UP_TO)
    st1 = np.array([s0], np.int64)
    en1 = np.array([len(lo_w)], np.int64)
    reps = 20 if getattr(bench, "tiny", False) else 200

    def one_start_bar():
        for _ in range(reps):   # tables included: the whole cost of a lone start bar
            _, piv, _ = search(lo_w, hi_w, st1, en1, UP_TO, COMPAT, tables=tables_nb(lo_w, hi_w))
        return piv

    fast_case = bench.measure("fast one start bar", one_start_bar, impl="numba",
                              size=reps * tuples, unit="tuples", repeats=5)
    fast = {tuple(r) for r in fast_case["_result"].tolist()}
    same = (set(ref_found) == fast) if complete else set(ref_found) <= fast
    fast_case["same_results"] = same
    bench.same_answers("one start bar: fast vs reference patterns", same,
                       f"{len(ref_found)} vs {len(fast)} patterns")
    fast_case["patterns"] = len(fast)
    bench.note("one_start_bar_same_results",
               f"{same} ({'complete' if complete else 'the capped reference found a subset'};"
               f" {len(ref_found)} vs {len(fast)} patterns)")
    return fast_case, same


def _fast_every_start_bar_of_the_window(bench, lo_w, hi_w) -> dict:
    st_w = np.arange(len(lo_w), dtype=np.int64)
    en_w = np.full(len(lo_w), len(lo_w), np.int64)
    return bench.measure("fast every start bar of the 500-bar window",
                         lambda: search(lo_w, hi_w, st_w, en_w, UP_TO, COMPAT),
                         impl="numba", size=len(lo_w) * n_tuples(UP_TO), unit="tuples",
                         repeats=5)


# --------------------------------------------------------------------------- 2. 5,000-bar series
def every_start_bar_of_a_series(bench, spx) -> dict:
    """Case 2: every start bar of the S&P 500 series (5,031 bars), n_jobs 1 vs all."""
    n_all = available_cores()
    series = {"SP500": spx.iloc[-600:] if getattr(bench, "tiny", False) else spx}
    n_bars = len(series["SP500"])
    cases = {}
    for n_jobs in (1, n_all):
        cases[n_jobs] = _measure(
            bench, f"every start bar, {n_bars}-bar series, n_jobs={n_jobs}",
            lambda n_jobs=n_jobs: scan(series, up_to=UP_TO, n_jobs=n_jobs, backend="threads",
                                       progress=False),
            impl="numba", size=n_bars, unit="start bars", n_jobs=n_jobs,
            backend="threads" if n_jobs > 1 else "sequential", target_s=10.0)
        cases[n_jobs]["tuples_per_s"] = n_bars * n_tuples(UP_TO) / cases[n_jobs]["seconds"]
    t_series = cases[n_all]["seconds"]
    if n_all > 1:
        bench.efficiency(f"{n_bars}-bar series, 1 -> {n_all} workers (threads)", cases[n_all],
                         cases[1], n_all)
    bench.note("series_target", f"every start bar of {n_bars} bars in {t_series:.2f} s on "
                                f"{n_all} cores (target <= 10 s): "
                                f"{'ok' if t_series <= 10 else 'MISSED'}")
    return dict(n_bars=n_bars, seconds=t_series)


# --------------------------------------------------------------------------- 3. universe
def universe(bench) -> dict:
    """Case 3: every start bar of a synthetic universe (500 symbols x 2,000 bars;
    ``--quick``: 20), CPU n_jobs 1 vs all, and the GPU when one is usable."""
    tiny = getattr(bench, "tiny", False)
    n_all = available_cores()
    n_sym = (2 if tiny else 20) if bench.quick else 500
    store = as_store(load_source("synthetic", n_sym, 2000, 0))
    size = n_sym * 2000
    uni = {}
    for n_jobs in (1, n_all):
        uni[n_jobs] = _measure(
            bench, f"every start bar, {n_sym} x 2000 universe, n_jobs={n_jobs}",
            lambda n_jobs=n_jobs: scan(store, up_to=UP_TO, top_k=10, n_jobs=n_jobs,
                                       backend="threads", progress=False),
            impl="numba", size=size, unit="start bars", n_jobs=n_jobs,
            backend="threads" if n_jobs > 1 else "sequential", warmup=1 if tiny else 0)
        uni[n_jobs]["tuples_per_s"] = size * n_tuples(UP_TO) / uni[n_jobs]["seconds"]
    eff = (bench.efficiency(f"universe, 1 -> {n_all} workers (threads, {n_sym} x 2000 start "
                            "bars)", uni[n_all], uni[1], n_all,
                            key="universe_parallel_efficiency") if n_all > 1 else None)
    gpu_text = _universe_gpu(bench, store, n_sym, uni[n_all])
    return dict(cases=uni, n_sym=n_sym, eff=eff, n_all=n_all, gpu_text=gpu_text)


def _universe_gpu(bench, store, n_sym, cpu_case) -> str:
    gpu_text = "not measured: " + gpu_status()[1]
    if gpu_available():
        g = bench.measure(f"every start bar, {n_sym} x 2000 universe, GPU",
                          lambda: scan(store, up_to=UP_TO, top_k=10, device="gpu",
                                       progress=False),
                          impl="cupy", size=n_sym * 2000, unit="start bars", device="gpu",
                          warmup=1, target_s=60.0)
        bench.ratio("universe: GPU vs CPU all cores", g, cpu_case)
        gpu_text = f"{g['seconds']:.1f} s for {n_sym} x 2000 (target <= 60 s)"
    bench.note("gpu", gpu_text)
    return gpu_text


# --------------------------------------------------------------------------- headline
def headline(bench, one: dict, series: dict, uni: dict) -> None:
    n_all, n_sym, eff = uni["n_all"], uni["n_sym"], uni["eff"]
    bench.headline.update({
        "throughput": f"{one['fast']['throughput'] / 1e9:.2f}G tuples/s per start bar "
                      f"(1 core); {series['n_bars']}-bar series every start bar in "
                      f"{series['seconds']:.2f} s",
        "speedup_vs_reference": f"{one['r_ref']:,.0f}x vs reference, {one['r_orig']:,.0f}x "
                                f"vs original 25k tuples/s (same results: {one['same']})",
        "parallel_efficiency": ("n/a (1 core)" if n_all < 2 else
                                "not printed: above 100% on re-measurement" if eff is None
                                else f"{eff:.0%} ({n_sym} x 2000 universe, 1->{n_all} "
                                     f"workers: {uni['cases'][n_all]['seconds']:.1f} s)"),
        "gpu": uni["gpu_text"],
    })
