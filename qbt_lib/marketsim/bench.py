"""``python -m qbt_lib.bench marketsim [--quick]``: the seed's timing table in one run.

* cold start / cached start: fresh processes (``marketsim.startup_times``) -- an empty
  ``NUMBA_CACHE_DIR`` (every kernel compiled), then the same directory again (loaded);
* analysis: the reference (Python/pandas) on a subset of the symbols -- its cost is linear in
  symbols x simulations, so it is compared per symbol-simulation (``Bench.ratio`` compares
  throughputs) and the 30-symbol figure is an extrapolation, said so in the notes --, and the
  fast path sequential, in threads, in processes (loky) and on a Dask cluster, plus the GPU
  (500 symbols) when one is usable.
"""
from __future__ import annotations

import logging
import os
import time

from .. import marketsim as ms
from ..device import gpu_available, gpu_name
from ..parallel import available_cores

#: the figures asv tracks (``benchmarks/benchmarks.py``): key -> unit
TRACKED = {
    "fast_sequential_vs_reference": "x",
    "threads_vs_one_thread": "x",
    "fast_symbol_sims_per_s_1core": "symbol-sims/s",
}
#: which tracked figure is each column of the README/report summary
SUMMARY = {"throughput": "fast_symbol_sims_per_s_1core", "speedup_vs_reference": "fast_sequential_vs_reference"}


def run(bench) -> None:
    quick, tiny = bench.quick, getattr(bench, "tiny", False)
    n_sym, sims = ((2, 10) if tiny else (6, 20)) if quick else (30, 70)
    n_ref = 1 if quick else 3
    cores = max(2, min(available_cores(), 2)) if available_cores() >= 2 else 1
    size = n_sym * sims
    unit = "symbol-sims"
    params = dict(simulations=sims)

    bench.note("load_average_1min_at_start", os.getloadavg()[0])
    if tiny:  # a cold start compiles every kernel in a fresh process: tens of seconds
        st = None
        bench.note("startup", "not measured at size tiny")
    else:
        print("  start-up in fresh processes (cold: empty Numba cache) ...", flush=True)
        st = ms.startup_times()
        cold = bench.add_case("cold start (fresh process, compile)", st["cold"]["warmup_s"],
                              impl="startup", size=1, unit="start",
                              process_s=st["cold"]["process_s"],
                              import_s=st["cold"]["import_s"])
        cached = bench.add_case("cached start (fresh process, cache)",
                                st["cached"]["warmup_s"], impl="startup", size=1,
                                unit="start", process_s=st["cached"]["process_s"],
                                import_s=st["cached"]["import_s"])
        bench.note("cold_compile_s", st["cold"]["warmup_s"])
        bench.note("cached_start_s", st["cached"]["warmup_s"])
        bench.note("cached_start_target", "<= 2 s: " + (
            "ok" if st["cached"]["warmup_s"] <= 2.0 else "MISSED"))
        bench.note("startup_detail", st)

    frames = ms.synthetic_universe(n_sym)
    names = list(frames)
    ref_names = names[:n_ref - 1] + names[-1:] if n_ref > 1 else names[:1]  # incl. a crypto
    ref_frames = {s: frames[s] for s in ref_names}
    ms.warmup()

    ref = bench.measure(f"reference {len(ref_frames)} sym x {sims} sims", lambda: ms.analyze(
        ref_frames, impl="reference", progress=False, **params), impl="reference",
        size=len(ref_frames) * sims, unit=unit, warmup=0)
    bench.note("reference_subset", f"the reference ran on {ref_names} ({len(ref_frames)} of "
                                   f"{n_sym} symbols); its {n_sym}-symbol time is extrapolated "
                                   f"linearly: {ref['seconds'] * n_sym / len(ref_frames):.1f} s")

    cpu_use: dict[str, list[float]] = {}

    def fast(backend, n_jobs, **kw):
        # also record this process's CPU seconds per call: on a busy shared machine
        # CPU/wall shows how much of the cores the run really got
        log = cpu_use.setdefault(f"{backend}-{n_jobs}", [])

        def call():
            c = time.process_time()
            w = time.perf_counter()
            r = ms.analyze(frames, impl="fast", backend=backend, n_jobs=n_jobs, device="cpu",
                           warmup=False, progress=False, **params, **kw)
            log.append((time.process_time() - c) / (time.perf_counter() - w))
            return r
        return call

    seq = bench.measure(f"fast sequential {n_sym}x{sims}", fast("sequential", 1), impl="fast",
                        size=size, unit=unit, repeats=5, warmup=1)
    thr = bench.measure(f"fast threads {n_sym}x{sims}", fast("threads", cores), impl="fast",
                        size=size, unit=unit, n_jobs=cores, backend="threads", repeats=5,
                        warmup=1)
    loky = bench.measure(f"fast processes (loky) {n_sym}x{sims}", fast("loky", cores),
                         impl="fast", size=size, unit=unit, n_jobs=cores, backend="loky",
                         repeats=3, warmup=1)
    cases = {"sequential": seq, f"threads ({cores})": thr, f"processes (loky, {cores})": loky}
    try:
        if tiny:  # a LocalCluster's start-up costs seconds: not at the golden's size
            raise ImportError
        from dask.distributed import LocalCluster
        with LocalCluster(n_workers=cores, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster:
            dask = bench.measure(f"fast dask ({cores} workers) {n_sym}x{sims}",
                                 fast("dask", cores, scheduler=cluster.scheduler_address),
                                 impl="fast", size=size, unit=unit, n_jobs=cores,
                                 backend="dask", repeats=3, warmup=1)
            cases[f"dask ({cores} workers)"] = dask
    except ImportError:
        dask = None

    gpu_case = None
    if gpu_available():
        n_gpu = 60 if quick else 500
        gframes = ms.synthetic_universe(n_gpu)
        from . import gpu
        bench.note("gpu_warmup_s", gpu.warmup())
        gpu_case = bench.measure(f"fast gpu {n_gpu}x{sims}", lambda: ms.analyze(
            gframes, impl="fast", device="gpu", warmup=False, progress=False, **params),
            impl="gpu", size=n_gpu * sims, unit=unit, device="gpu", repeats=3, warmup=1)
        cases["gpu (cupy)"] = gpu_case

    # the research paths (#15), one core: the same analysis plus an option; what each adds
    oos_d = 20 if quick else 70
    ms.warmup(research=True)
    walk = bench.measure(f"fast sequential {n_sym}x{sims} + oos walk {oos_d} days + next session",
                         fast("sequential", 1, oos_days=oos_d, forecast_next=True), impl="fast",
                         size=size, unit=unit, repeats=3, warmup=1)
    own = bench.measure(f"fast sequential {n_sym}x{sims} + own strategies (njit + NumPy)",
                        fast("sequential", 1, user_strategies=[
                            "qbt_lib.marketsim.examples:confident",
                            "qbt_lib.marketsim.examples:follow_hits"]),
                        impl="fast", size=size, unit=unit, repeats=3, warmup=1)
    bench.note("research_added_s", {
        f"oos_days={oos_d} + forecast_next": round(walk["seconds"] - seq["seconds"], 4),
        "2 own strategies (guard included)": round(own["seconds"] - seq["seconds"], 4),
        "vs the analysis alone": round(seq["seconds"], 4)})
    bench.note("cpu_per_wall", {k: round(sorted(v)[len(v) // 2], 2) for k, v in cpu_use.items()})
    bench.note("load_average_1min", os.getloadavg()[0])
    # the headline (one named case): the fast path on one core against the reference on
    # one core, per symbol-simulation (the reference runs on a subset of the symbols)
    one = "symbol-simulations analysed, one core"
    r_seq = bench.ratio("fast sequential vs reference", seq, ref, same=one,
                        key="fast_sequential_vs_reference", headline=True)
    bench.ratio(f"fast threads ({cores}) vs reference", thr, ref, target=None if quick else 50,
                same=f"symbol-simulations analysed; {cores} threads vs one core")
    # the 1.7x target is for the full size; --quick is too small to amortise a pool
    same_work = f"{n_sym} symbols x {sims} simulations"
    bench.ratio(f"threads ({cores}) vs one thread", thr, seq, target=None if quick else 1.7,
                same=same_work, key="threads_vs_one_thread")
    bench.ratio(f"loky ({cores}) vs one thread", loky, seq,
                same=same_work + " (pool started in the warm-up)")
    if dask is not None:
        bench.ratio(f"dask ({cores}) vs one thread", dask, seq,
                    same=same_work + " (cluster started before timing)")
    bench.figure("fast_symbol_sims_per_s_1core", seq["throughput"], "symbol-sims/s",
                 f"fast path, one core, {n_sym} symbols x {sims} simulations", case=seq)
    if gpu_case is not None:
        bench.ratio("gpu vs fast sequential", gpu_case, seq)
        bench.note("gpu_target", f"500 symbols x 70 sims <= 5 s: {gpu_case['seconds']:.2f} s "
                                 f"on {gpu_name()}")

    # the seed's table: start-up + analysis = first run / subsequent run
    ref_full = ref["seconds"] * n_sym / len(ref_frames)
    if st is not None:
        analysis = {k: c["seconds"] * (size / c["size"]) for k, c in cases.items()}
        table = ms.timing_table(st, analysis, reference_s=ref_full)
        print(f"\n  timing table, {n_sym} symbols x {sims} simulations (reference extrapolated "
              f"from {len(ref_frames)} symbols"
              f"{'; GPU row rescaled from its size' if gpu_case else ''}):")
        print(table.round(3).to_string())
        bench.note("timing_table", table.round(4).reset_index().to_dict(orient="records"))
    bench.headline.update({
        "throughput": f"{seq['throughput']:.0f} symbol-sims/s on one core ({n_sym}x{sims} in "
                      f"{seq['seconds']:.2f} s); {thr['throughput']:.0f} on {cores} threads",
        "speedup_vs_reference": f"{r_seq:.0f}x (one core both sides, per symbol-simulation)",
        "parallel_efficiency": f"threads {thr['throughput'] / seq['throughput']:.2f}x on "
                               f"{cores} cores",
        "gpu": (f"{gpu_case['seconds']:.2f} s for {gpu_case['size'] // sims} symbols"
                if gpu_case else "not measured (no GPU)"),
    })
    if st is not None:
        bench.headline.update({"cold_compile_s": round(cold["seconds"], 2),
                               "cached_start_s": round(cached["seconds"], 2)})
