"""``python -m qbt_lib.bench walkforward [--quick]``: in one run,

1. the feature kernels against TA-Lib (when installed) and pandas on one long series;
2. reference vs numba for the seed's three workloads (ridge): the numba path on a cold cache
   (an empty cache folder) and a warm one, with ``n_jobs=1`` and all cores;
3. the parallel efficiency of the (fold, asset) tasks from 1 to all workers, with random
   forests (ridge tasks take ~1 ms, too little to measure a pool with).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..parallel import available_cores
from . import nb
from .api import fresh_cache_dir
from .api import run as wf_run
from .reference import _wilder
from .results import agreement, same_answers

KERNELS = ("sma", "ema", "rsi", "stddev", "zscore", "momentum", "volume_ratio", "atr")
#: the figures asv tracks (``benchmarks/benchmarks.py``): key -> unit
TRACKED = {
    "fast_vs_reference": "x",
    "fast_fold_assets_per_s_1core": "fold-assets/s",
    "random_forest_parallel_efficiency": "fraction",
    **{f"kernel_{k}_vs_talib": "x" for k in KERNELS},
}
#: which tracked figure is each column of the README/report summary
SUMMARY = {"throughput": "fast_fold_assets_per_s_1core", "speedup_vs_reference": "fast_vs_reference",
           "parallel_efficiency": "random_forest_parallel_efficiency"}

WORKLOADS = {  # the seed's sizes (params/walkforward/*.yaml)
    "tiny": dict(start="2019-01-01", end="2020-12-31", assets=2),
    "small": dict(start="2018-01-01", end="2020-12-31"),
    "medium": dict(start="2015-01-01", end="2020-12-31"),
    "large": dict(start="2010-01-01", end="2020-12-31"),
}
BASE = dict(assets=5, fold_length=252, step_size=126, test_length=126, model="ridge",
            source="synthetic", progress=False)


def _pandas_kernels(n: int):
    """pandas versions of each indicator (the same definitions, pandas operations)."""
    def ema(s):
        seed = s.copy()
        seed.iloc[:n - 1] = np.nan
        seed.iloc[n - 1] = s.iloc[:n].mean()
        return seed.ewm(span=n, adjust=False).mean()

    def rsi(s):
        d = s.diff()
        g, lo = _wilder(d.clip(lower=0), 14, 14), _wilder((-d).clip(lower=0), 14, 14)
        return 100 * g / (g + lo)

    def atr(h, lo, c):
        pc = c.shift(1)
        tr = (pd.concat([h, pc], axis=1).max(axis=1, skipna=False)
              - pd.concat([lo, pc], axis=1).min(axis=1, skipna=False))
        return _wilder(tr, 14, 14)

    return {"sma": lambda s: s.rolling(n).mean(), "ema": ema, "rsi": rsi,
            "stddev": lambda s: s.rolling(n).std(ddof=0),
            "zscore": lambda s: (s - s.rolling(n).mean()) / s.rolling(n).std(ddof=0),
            "momentum": lambda s: s.diff(5), "volume_ratio": lambda s: s / s.rolling(n).mean(),
            "atr": atr}


def bench_kernels(bench, n_bars: int) -> None:
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.standard_normal(n_bars) * 0.01))
    high, low = close * (1 + 0.005 * rng.random(n_bars)), close * (1 - 0.005 * rng.random(n_bars))
    volume = np.exp(13 + 0.3 * rng.standard_normal(n_bars)).round()
    ret = np.r_[np.nan, close[1:] / close[:-1] - 1]
    inputs = {"sma": close, "ema": close, "rsi": close, "stddev": ret, "zscore": close,
              "momentum": close, "volume_ratio": volume}
    windows = {"rsi": 14, "momentum": 5}
    ours = {"sma": nb.sma_nb, "ema": nb.ema_nb, "rsi": nb.rsi_nb, "stddev": nb.stddev_nb,
            "zscore": nb.zscore_nb, "momentum": nb.momentum_nb,
            "volume_ratio": nb.volume_ratio_nb}
    try:
        import talib
    except ImportError:
        talib = None
        bench.note("talib", "TA-Lib not installed: kernels compared with pandas only")
    pand = _pandas_kernels(20)
    kw = dict(size=n_bars, unit="bars", nbytes=16.0 * n_bars, repeats=5 if bench.quick else 9,
              warmup=1)
    for name in [*ours, "atr"]:
        n = windows.get(name, 20)
        if name == "atr":
            fn = lambda: nb.atr_nb(high, low, close, 14, np.empty_like(close))  # noqa: E731
            ta = (lambda: talib.ATR(high, low, close, 14)) if talib else None
            pd_fn = lambda: pand["atr"](*(pd.Series(a) for a in (high, low, close)))  # noqa
        else:
            x = inputs[name]
            fn = lambda x=x, n=n, k=ours[name]: k(x, n, np.empty_like(x))  # noqa: E731
            ta = None
            if talib is not None:
                ta = {"sma": lambda: talib.SMA(x, n), "ema": lambda: talib.EMA(x, n),
                      "rsi": lambda: talib.RSI(x, n), "stddev": lambda: talib.STDDEV(x, n),
                      "zscore": lambda: (x - talib.SMA(x, n)) / talib.STDDEV(x, n),
                      "momentum": lambda: talib.MOM(x, n),
                      "volume_ratio": lambda: x / talib.SMA(x, n)}[name]
            s = pd.Series(x)
            pd_fn = lambda s=s, f=pand[name]: f(s)  # noqa: E731
        c_ours = bench.measure(f"kernel {name} numba", fn, impl="numba", **kw)
        c_pd = bench.measure(f"kernel {name} pandas", pd_fn, impl="pandas", **kw)
        bench.ratio(f"kernel {name}: numba vs pandas", c_ours, c_pd,
                    same=f"{n_bars:,} bars, one core")
        if ta is not None:
            c_ta = bench.measure(f"kernel {name} talib", ta, impl="talib", **kw)
            # >= 0.667: within 1.5x of TA-Lib's speed (the target)
            bench.ratio(f"kernel {name}: numba vs talib", c_ours, c_ta, target=1 / 1.5,
                        same=f"{n_bars:,} bars, one core, output array",
                        key=f"kernel_{name}_vs_talib")


def bench_workloads(bench, sizes, repeats: int, headline: str | None = None) -> dict:
    cores = available_cores()
    heads = {}
    # first calls import scikit-learn and initialise Numba: keep that out of both timings
    tiny = {**BASE, "assets": 1, "start": "2019-01-01", "end": "2020-06-30",
            "fold_length": 120, "step_size": 60, "test_length": 60}
    wf_run(impl="reference", **tiny)
    wf_run(impl="numba", **tiny)
    for size in sizes:
        kw = {**BASE, **WORKLOADS[size]}
        res = wf_run(impl="numba", **kw)                  # fills the cache; checks the layout
        n_tasks = len(res.fold_metrics)
        unit = dict(size=n_tasks, unit="fold-assets")
        ref = bench.measure(f"{size} ridge reference", lambda: wf_run(impl="reference", **kw),
                            impl="reference", warmup=0, n_folds=res.n_folds, **unit)

        def cold():
            with fresh_cache_dir():
                return wf_run(impl="numba", n_jobs=1, **kw)

        c_cold = bench.measure(f"{size} ridge numba cold cache n_jobs=1", cold, impl="numba",
                               repeats=repeats, warmup=0, cache="cold", **unit)
        warm = {}
        for nj in sorted({1, cores}):
            warm[nj] = bench.measure(
                f"{size} ridge numba warm n_jobs={nj}",
                lambda nj=nj: wf_run(impl="numba", n_jobs=nj, backend="loky", **kw),
                impl="numba", n_jobs=nj, backend="loky" if nj > 1 else "sequential",
                repeats=repeats + 1, warmup=1, cache="warm", **unit)
        agree = agreement(ref["_result"], warm[1]["_result"])
        bench.note(f"{size} reference vs numba", agree)
        bench.same_answers(f"{size}: numba vs reference (positions, metrics within 1e-9)",
                           same_answers(ref["_result"], warm[1]["_result"]), agree)
        target = 10.0 if size == "large" else None
        same = f"ridge, {n_tasks} fold-assets, same results"
        for nj, c in warm.items():
            # the headline (one named case): the largest seed size run, numba on one core
            # (warm cache) against the one-core reference
            main = size == headline and nj == 1
            heads[(size, nj)] = bench.ratio(
                f"{size}: numba warm n_jobs={nj} vs reference", c, ref, target=target,
                same=same + (", one core" if nj == 1 else f"; {nj} workers vs one core"),
                key="fast_vs_reference" if main else None, headline=main)
        bench.ratio(f"{size}: numba cold vs reference", c_cold, ref, same=same + ", one core")
        bench.ratio(f"{size}: warm vs cold cache (n_jobs=1)", warm[1], c_cold,
                    same=same + ", one core")
        heads[(size, "throughput")] = warm[1]["throughput"]
    return heads


def bench_parallel(bench, size: str, n_estimators: int, repeats: int) -> float:
    """Random-forest tasks with 1 worker and with all cores (loky, pool started first)."""
    cores = available_cores()
    kw = {**BASE, **WORKLOADS[size], "model": "random_forest", "n_estimators": n_estimators}
    wf_run(impl="numba", n_jobs=cores, backend="loky", **{**kw, "n_estimators": 2})  # start pool
    res = wf_run(impl="numba", n_jobs=1, **{**kw, "n_estimators": 2})
    unit = dict(size=len(res.fold_metrics), unit="fold-assets")
    one = bench.measure(f"{size} random_forest({n_estimators}) numba n_jobs=1",
                        lambda: wf_run(impl="numba", n_jobs=1, **kw), impl="numba", n_jobs=1,
                        repeats=repeats, warmup=0, **unit)
    many = bench.measure(f"{size} random_forest({n_estimators}) numba n_jobs={cores}",
                         lambda: wf_run(impl="numba", n_jobs=cores, backend="loky", **kw),
                         impl="numba", n_jobs=cores, backend="loky", repeats=repeats,
                         warmup=0, **unit)
    same = agreement(one["_result"], many["_result"])
    bench.note(f"random_forest n_jobs=1 vs {cores}", same)
    bench.same_answers(f"random_forest: n_jobs=1 vs {cores}",
                       same_answers(one["_result"], many["_result"]), same)
    # the speed-up is the efficiency times the workers: one figure, re-measured when above
    # 100% (a separate speed-up ratio could keep a superlinear first measurement)
    eff = bench.efficiency(f"random_forest tasks, 1 -> {cores} workers ({unit['size']} "
                           "fold-assets, pool started before timing)", many, one, cores,
                           target=0.8 if size != "tiny" else None,
                           key="random_forest_parallel_efficiency")
    # why an efficiency is low: busy workers whose tasks get less than a core each are
    # starved by other processes on the machine, not held up by the pool
    t1, tn = one["_result"].timings, many["_result"].timings
    diag = {"workers": cores, "efficiency": eff, "target": 0.8,
            "worker_busy_fraction": tn["task_wall_s"] / (cores * tn["tasks_s"]),
            "core_share_per_task_parallel": tn["task_cpu_s"] / tn["task_wall_s"],
            "core_share_per_task_sequential": t1["task_cpu_s"] / t1["task_wall_s"],
            "load_average": _loadavg()}
    bench.note("parallel_efficiency", diag)
    print("  parallel diagnostics: " + ", ".join(
        f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in diag.items()))
    return eff


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def run(bench) -> None:
    quick, tiny = bench.quick, getattr(bench, "tiny", False)
    cores = available_cores()
    bench.note("machine_cores", cores)
    bench.note("16_core_curve", "not measured: no 16-core machine in this session; run "
               "python -m qbt_lib.bench walkforward --tag c16 on one")
    bench_kernels(bench, (10_000 if tiny else 100_000) if quick else 1_000_000)
    sizes = (["tiny"] if tiny else ["small"]) if quick else ["small", "medium", "large"]
    top = sizes[-1]
    heads = bench_workloads(bench, sizes, repeats=5, headline=top)
    # random forests on the small workload (20 tasks of ~0.3 s at 100 trees: enough to
    # measure a pool with, and 2 x 5 repeats fit the full run's budget)
    eff = bench_parallel(bench, "tiny" if tiny else "small",
                         (5 if tiny else 20) if quick else 100, repeats=5)
    bench.figure("fast_fold_assets_per_s_1core", heads[(top, "throughput")], "fold-assets/s",
                 f"{top}, ridge, warm cache, one core")
    bench.headline.update({
        "throughput": f"{heads[(top, 'throughput')]:.0f} fold-assets/s ({top}, ridge, warm, "
                      "one core)",
        "speedup_vs_reference": f"{heads[(top, 1)]:.1f}x ({top}, ridge, one core both sides)",
        "parallel_efficiency": ("not printed: above 100% on re-measurement" if eff is None
                                else f"{100 * eff:.0f}% (random_forest, 1->{cores} workers)"),
        "gpu": "n/a (CPU workload)"})

