"""``python -m qbt_lib.bench marketsim [--quick]``: the seed's timing table in one run.

* cold start / cached start: fresh processes (``marketsim.startup_times``: import + warm-up)
  -- an empty ``NUMBA_CACHE_DIR`` (every kernel compiled), then the same directory again
  (loaded);
* analysis: the reference (Python/pandas) on a subset of the symbols -- its cost is linear in
  symbols x simulations, so it is compared per symbol-simulation (``Bench.ratio`` compares
  throughputs) and the 30-symbol figure is an extrapolation, said so in the notes --, and
  numba sequential, in threads, in processes (loky) and on a Dask cluster, plus CuPy on the
  GPU (500 symbols) when one is usable.

One small function per case; :func:`run` calls them in order.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

from ..device import gpu_available, gpu_name
from ..parallel import available_cores
from . import gpu
from .api import run as analyze
from .api import startup_times, warm_up
from .market import synthetic_universe
from .results import timing_table

#: the figures asv tracks (``benchmarks/benchmarks.py``): key -> unit
TRACKED = {
    "fast_sequential_vs_reference": "x",
    "threads_vs_one_thread": "x",
    "fast_symbol_sims_per_s_1core": "symbol-sims/s",
}
#: which tracked figure is each column of the README/report summary
SUMMARY = {"throughput": "fast_symbol_sims_per_s_1core",
           "speedup_vs_reference": "fast_sequential_vs_reference"}
UNIT = "symbol-sims"


def sizes(bench) -> dict:
    """Symbols, simulations, reference symbols and cores of this run's size."""
    quick, tiny = bench.quick, getattr(bench, "tiny", False)
    n_sym, sims = ((2, 10) if tiny else (6, 20)) if quick else (30, 70)
    cores = min(available_cores(), 2)
    return dict(n_sym=n_sym, sims=sims, n_ref=1 if quick else 3, cores=cores, tiny=tiny,
                quick=quick)


def startup_cases(bench, tiny: bool) -> dict | None:
    """Cold and cached start in fresh processes (not at size tiny: tens of seconds)."""
    if tiny:
        bench.note("startup", "not measured at size tiny")
        return None
    print("  start-up in fresh processes (cold: empty Numba cache) ...", flush=True)
    st = startup_times()
    for label, name in (("cold", "cold start (fresh process, import + compile)"),
                        ("cached", "cached start (fresh process, import + cache)")):
        bench.add_case(name, st[label]["total_s"], impl="startup", size=1, unit="start",
                       process_s=st[label]["process_s"], import_s=st[label]["import_s"],
                       warm_up_s=st[label]["warm_up_s"])
    bench.note("cold_compile_s", st["cold"]["total_s"])
    bench.note("cached_start_s", st["cached"]["total_s"])
    bench.note("cached_start_target", "<= 2 s: " + (
        "ok" if st["cached"]["total_s"] <= 2.0 else "MISSED"))
    bench.note("startup_detail", st)
    return st


def reference_case(bench, frames: dict, n_ref: int, sims: int) -> tuple[dict, dict]:
    """The reference on a subset of the symbols, a crypto one included."""
    names = list(frames)
    ref_names = names[:n_ref - 1] + names[-1:] if n_ref > 1 else names[:1]
    ref_frames = {s: frames[s] for s in ref_names}
    ref = bench.measure(f"reference {len(ref_frames)} sym x {sims} sims", lambda: analyze(
        ref_frames, impl="reference", progress=False, simulations=sims), impl="reference",
        size=len(ref_frames) * sims, unit=UNIT, warmup=0)
    bench.note("reference_subset", f"the reference ran on {ref_names} ({len(ref_frames)} of "
                                   f"{len(frames)} symbols); its {len(frames)}-symbol time is "
                                   f"extrapolated linearly: "
                                   f"{ref['seconds'] * len(frames) / len(ref_frames):.1f} s")
    return ref, ref_frames


def numba_call(frames: dict, sims: int, backend: str, n_jobs: int, cpu_use: dict, **kw):
    """One analysis on the Numba path, recording this process's CPU seconds per wall
    second (on a busy shared machine: how much of the cores the run really got)."""
    log = cpu_use.setdefault(f"{backend}-{n_jobs}", [])

    def call():
        c = time.process_time()
        w = time.perf_counter()
        r = analyze(frames, impl="numba", backend=backend, n_jobs=n_jobs, device="cpu",
                    warm_up=False, progress=False, simulations=sims, **kw)
        log.append((time.process_time() - c) / (time.perf_counter() - w))
        return r
    return call


def numba_cases(bench, frames: dict, sims: int, cores: int, cpu_use: dict) -> dict:
    """Numba sequential, in threads and in processes (loky) on the whole universe."""
    size = len(frames) * sims
    tag = f"{len(frames)}x{sims}"
    seq = bench.measure(f"numba sequential {tag}", numba_call(frames, sims, "sequential", 1,
                                                              cpu_use),
                        impl="numba", size=size, unit=UNIT, repeats=5, warmup=1)
    thr = bench.measure(f"numba threads {tag}", numba_call(frames, sims, "threads", cores,
                                                           cpu_use),
                        impl="numba", size=size, unit=UNIT, n_jobs=cores, backend="threads",
                        repeats=5, warmup=1)
    loky = bench.measure(f"numba processes (loky) {tag}",
                         numba_call(frames, sims, "loky", cores, cpu_use), impl="numba",
                         size=size, unit=UNIT, n_jobs=cores, backend="loky", repeats=3,
                         warmup=1)
    return {"sequential": seq, f"threads ({cores})": thr, f"processes (loky, {cores})": loky}


def dask_case(bench, frames: dict, sims: int, cores: int, cpu_use: dict,
              tiny: bool) -> dict | None:
    """Numba on a local Dask cluster (not at size tiny: a LocalCluster starts in seconds)."""
    if tiny:
        return None
    try:
        from dask.distributed import LocalCluster
    except ImportError:
        return None
    with LocalCluster(n_workers=cores, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        return bench.measure(f"numba dask ({cores} workers) {len(frames)}x{sims}",
                             numba_call(frames, sims, "dask", cores, cpu_use,
                                        scheduler=cluster.scheduler_address),
                             impl="numba", size=len(frames) * sims, unit=UNIT, n_jobs=cores,
                             backend="dask", repeats=3, warmup=1)


def gpu_case(bench, sims: int, quick: bool) -> dict | None:
    """CuPy on the GPU (500 symbols, 60 with --quick) when one is usable."""
    if not gpu_available():
        return None
    n_gpu = 60 if quick else 500
    gframes = synthetic_universe(n_gpu)
    bench.note("gpu_warmup_s", gpu.warmup())
    return bench.measure(f"cupy gpu {n_gpu}x{sims}", lambda: analyze(
        gframes, impl="cupy", device="gpu", warm_up=False, progress=False, simulations=sims),
        impl="cupy", size=n_gpu * sims, unit=UNIT, device="gpu", repeats=3, warmup=1)


def research_cases(bench, frames: dict, sims: int, quick: bool, seq: dict,
                   cpu_use: dict) -> None:
    """What the research options (#15) add to the same analysis on one core: the
    out-of-sample walk with tomorrow's signal, and two own strategies (guard included).
    Recorded as cases and as seconds added (no ratio: the two sides do different work)."""
    days = 20 if quick else 70
    warm_up(research=True)
    walk = bench.measure(f"numba sequential {len(frames)}x{sims} + oos walk {days} days + "
                         f"next session", numba_call(frames, sims, "sequential", 1, cpu_use,
                                                     oos_days=days, forecast_next=True),
                         impl="numba", size=len(frames) * sims, unit=UNIT, repeats=3,
                         warmup=1)
    own = bench.measure(f"numba sequential {len(frames)}x{sims} + own strategies (njit, NumPy)",
                        numba_call(frames, sims, "sequential", 1, cpu_use, user_strategies=[
                            "qbt_lib.marketsim.examples:confident",
                            "qbt_lib.marketsim.examples:follow_hits"]),
                        impl="numba", size=len(frames) * sims, unit=UNIT, repeats=3, warmup=1)
    bench.note("research_added_s", {
        f"oos_days={days} + forecast_next": round(walk["seconds"] - seq["seconds"], 4),
        "2 own strategies (guard included)": round(own["seconds"] - seq["seconds"], 4),
        "the analysis alone": round(seq["seconds"], 4)})


def ratios(bench, s: dict, ref: dict, cases: dict, dask: dict | None,
           gpu_run: dict | None) -> float:
    """The claimed speed-ups; the headline is one named case: numba on one core against the
    reference on one core, per symbol-simulation (the reference runs on a subset)."""
    seq, thr = cases["sequential"], cases[f"threads ({s['cores']})"]
    loky = cases[f"processes (loky, {s['cores']})"]
    quick, cores = s["quick"], s["cores"]
    one = "symbol-simulations analysed, one core"
    r_seq = bench.ratio("numba sequential vs reference", seq, ref, same=one,
                        key="fast_sequential_vs_reference", headline=True)
    bench.ratio(f"numba threads ({cores}) vs reference", thr, ref,
                target=None if quick else 50,
                same=f"symbol-simulations analysed; {cores} threads vs one core")
    # the 1.7x target is for the full size; --quick is too small to amortise a pool
    same_work = f"{s['n_sym']} symbols x {s['sims']} simulations"
    bench.ratio(f"threads ({cores}) vs one thread", thr, seq, target=None if quick else 1.7,
                same=same_work, key="threads_vs_one_thread")
    bench.ratio(f"loky ({cores}) vs one thread", loky, seq,
                same=same_work + " (pool started in the warm-up)")
    if dask is not None:
        bench.ratio(f"dask ({cores}) vs one thread", dask, seq,
                    same=same_work + " (cluster started before timing)")
    bench.figure("fast_symbol_sims_per_s_1core", seq["throughput"], "symbol-sims/s",
                 f"numba, one core, {s['n_sym']} symbols x {s['sims']} simulations", case=seq)
    if gpu_run is not None:
        # no ratio: the GPU case analyses other symbols than the numba cases; the like-for-
        # like GPU figure (the same 500 x 70 on both sides) is python -m qbt_lib.bench.gpu's
        bench.note("gpu_target", f"500 symbols x 70 sims <= 5 s: {gpu_run['seconds']:.2f} s "
                                 f"for {gpu_run['size'] // s['sims']} x {s['sims']} on "
                                 f"{gpu_name()}")
    return r_seq


def seed_table(bench, s: dict, st: dict | None, ref: dict, n_ref: int, cases: dict) -> None:
    """The seed's table: start-up + analysis = first run / subsequent run (the numba cases,
    all on the same symbols; the GPU case runs on others and has no row)."""
    if st is None:
        return
    analysis = {f"numba {k}": c["seconds"] for k, c in cases.items()}
    table = timing_table(st, analysis, reference_s=ref["seconds"] * s["n_sym"] / n_ref)
    print(f"\n  timing table, {s['n_sym']} symbols x {s['sims']} simulations (reference "
          f"extrapolated from {n_ref} symbols):")
    print(table.round(3).to_string())
    bench.note("timing_table", table.round(4).reset_index().to_dict(orient="records"))


def headline(bench, s: dict, st: dict | None, cases: dict, r_seq: float,
             gpu_run: dict | None) -> None:
    seq, thr = cases["sequential"], cases[f"threads ({s['cores']})"]
    bench.headline.update({
        "throughput": f"{seq['throughput']:.0f} symbol-sims/s on one core ({s['n_sym']}x"
                      f"{s['sims']} in {seq['seconds']:.2f} s); {thr['throughput']:.0f} on "
                      f"{s['cores']} threads",
        "speedup_vs_reference": f"{r_seq:.0f}x (one core both sides, per symbol-simulation)",
        "parallel_efficiency": f"threads {thr['throughput'] / seq['throughput']:.2f}x on "
                               f"{s['cores']} cores",
        "gpu": (f"{gpu_run['seconds']:.2f} s for {gpu_run['size'] // s['sims']} symbols"
                if gpu_run else "not measured (no GPU)"),
    })
    if st is not None:
        bench.headline.update({"cold_compile_s": round(st["cold"]["total_s"], 2),
                               "cached_start_s": round(st["cached"]["total_s"], 2)})


def run(bench: Any) -> None:
    s = sizes(bench)
    bench.note("load_average_1min_at_start", os.getloadavg()[0])
    st = startup_cases(bench, s["tiny"])
    frames = synthetic_universe(s["n_sym"])
    warm_up()
    ref, ref_frames = reference_case(bench, frames, s["n_ref"], s["sims"])
    cpu_use: dict[str, list[float]] = {}
    cases = numba_cases(bench, frames, s["sims"], s["cores"], cpu_use)
    dask = dask_case(bench, frames, s["sims"], s["cores"], cpu_use, s["tiny"])
    if dask is not None:
        cases[f"dask ({s['cores']} workers)"] = dask
    gpu_run = gpu_case(bench, s["sims"], s["quick"])
    research_cases(bench, frames, s["sims"], s["quick"], cases["sequential"], cpu_use)
    bench.note("cpu_per_wall", {k: round(sorted(v)[len(v) // 2], 2) for k, v in cpu_use.items()})
    bench.note("load_average_1min", os.getloadavg()[0])
    r_seq = ratios(bench, s, ref, cases, dask, gpu_run)
    seed_table(bench, s, st, ref, len(ref_frames), cases)
    headline(bench, s, st, cases, r_seq, gpu_run)
