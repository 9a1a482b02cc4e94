"""Walk-forward ML backtests, parallel and exact (issue #4; spec ``walkforward.md``).

>>> from qbt_lib import walkforward as wf
>>> res = wf.run(assets=5, start="2018-01-01", end="2020-12-31", model="ridge", n_jobs=-1)
>>> res.metrics, res.aggregate, res.equity            # doctest: +SKIP

``impl="reference"`` is the seed's pipeline (sequential, re-reads the CSV files and
recomputes pandas features every fold); ``impl="fast"`` reads the data once through a
content-hash Parquet cache into a columnar store, computes the features with Numba kernels
(:mod:`.features`) and runs the (fold, asset) tasks through :func:`qbt_lib.parallel.pmap`.
Both give the same positions and metrics (within 1e-9); the fast path gives bitwise
identical results for every ``n_jobs`` and backend.

Ctrl-C stops the workers (joblib terminates them) and re-raises ``KeyboardInterrupt``;
nothing is written until the run has finished (``output_dir``), and caches are written to a
temp folder and renamed, so no partial output is left behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from typing import Any

import pandas as pd

from . import features
from .config import FEATURES, IMPLS, METRICS, MODELS, WalkForwardConfig, make_config
from .results import OUTPUT_FILES, WalkForwardResult, agreement, assemble

__all__ = ["run", "before_after", "agreement", "headline", "fresh_cache_dir", "make_config",
           "features", "WalkForwardResult", "WalkForwardConfig", "FEATURES", "METRICS",
           "MODELS", "IMPLS", "OUTPUT_FILES"]


def run(assets: Any = 5, start: Any = "2018-01-01", end: Any = "2020-12-31",
        fold_length: Any = 252, step_size: Any = 126, test_length: Any = None, gap: Any = 0,
        anchored: Any = False, model: Any = "ridge", threshold: Any = 0.0,
        long_only: Any = False, cost_bps: Any = 1.0, source: Any = "synthetic",
        impl: Any = "fast", n_jobs: Any = 1, backend: Any = "loky",
        output_dir: Any = None, *, scheduler: Any = "local", seed: Any = 0,
        n_estimators: Any = 100, alpha: Any = 1.0,
        progress: bool | None = None) -> WalkForwardResult:
    """Run a walk-forward backtest and return its tables (see :class:`WalkForwardResult`).

    assets: a count (the source's first N assets) or names; start/end: the backtest range
    (earlier bars are feature warm-up only); fold_length/step_size/test_length/gap: fold
    layout in trading days (test_length defaults to step_size); anchored: expanding
    training window; model: ridge (alpha, closed form), random_forest (n_estimators trees,
    depth 10) or hist_gb (n_estimators boosting rounds); threshold: |prediction| needed to
    take a position; long_only: no shorts; cost_bps: cost per unit of position change;
    source: "synthetic" or a folder of <asset>.csv files; impl: fast or reference; n_jobs,
    backend, scheduler: the parallel layer's (fast path only; the reference is sequential);
    seed: the folds' random_state seed; output_dir: if given, the per-fold Parquet files
    are written there when the run completes.
    """
    cfg = make_config(assets=assets, start=start, end=end, fold_length=fold_length,
                      step_size=step_size, test_length=test_length, gap=gap,
                      anchored=anchored, model=model, threshold=threshold,
                      long_only=long_only, cost_bps=cost_bps, source=source, impl=impl,
                      n_jobs=n_jobs, backend=backend, scheduler=scheduler, seed=seed,
                      n_estimators=n_estimators, alpha=alpha)
    t0 = time.perf_counter()
    if cfg.impl == "reference":
        from .reference import run_reference
        results = run_reference(cfg)
        timings = {"n_tasks": len(results)}
    else:
        from .fast import run_fast
        results, timings = run_fast(cfg, progress=progress)
    timings["total_s"] = time.perf_counter() - t0
    res = assemble(results, cfg, timings)
    if output_dir is not None:
        res.save(output_dir)
    return res


@contextlib.contextmanager
def fresh_cache_dir():
    """A temporary, empty ``QBT_CACHE_DIR`` (a cold cache), removed afterwards."""
    old = os.environ.get("QBT_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="qbt-cold-") as d:
        os.environ["QBT_CACHE_DIR"] = d
        try:
            yield d
        finally:
            if old is None:
                os.environ.pop("QBT_CACHE_DIR", None)
            else:
                os.environ["QBT_CACHE_DIR"] = old


def before_after(repeats: int = 3, **params: Any
                 ) -> tuple[pd.DataFrame, WalkForwardResult, WalkForwardResult]:
    """Time the reference and the fast path on the same parameters: the reference, the fast
    path on a cold cache (an empty temporary cache folder) and on a warm cache, with
    ``n_jobs=1`` and the given ``n_jobs``. Warm times are the best of ``repeats``.
    Returns the timing table, the reference result and the fast result."""
    params = {k: v for k, v in params.items() if k not in ("impl", "output_dir")}
    params.setdefault("progress", False)

    def timed(n: int, **kw) -> tuple[float, WalkForwardResult]:
        best, res = float("inf"), None
        for _ in range(n):
            t = time.perf_counter()
            res = run(**{**params, **kw})
            best = min(best, time.perf_counter() - t)
        return best, res

    cfg = make_config(**{k: v for k, v in params.items() if k != "progress"})
    t_ref, ref = timed(max(1, repeats - 1), impl="reference")
    with fresh_cache_dir():
        # n_jobs=1 rows run in this process: what n_jobs=1 means for every backend but
        # Dask, where the cluster's own overhead would be timed instead of one core's work
        t_cold, _ = timed(1, impl="fast", n_jobs=1, backend="sequential")
    timed(1, impl="fast")                                       # make sure the cache is warm
    rows = [("reference (sequential)", 1, t_ref), ("fast, cold cache", 1, t_cold)]
    t_one, fast = timed(repeats, impl="fast", n_jobs=1, backend="sequential")
    rows.append(("fast, warm cache", 1, t_one))
    if cfg.n_jobs > 1:
        t_all, fast = timed(repeats, impl="fast")
        rows.append(("fast, warm cache", cfg.n_jobs, t_all))
    n_tasks = len(ref.metrics)
    table = pd.DataFrame([{"run": r, "n_jobs": n, "seconds": t, "speedup": t_ref / t,
                           "fold-assets/s": n_tasks / t} for r, n, t in rows])
    return table, ref, fast


def headline(table: pd.DataFrame, workload: str = "walkforward") -> dict:
    """The report's headline figures from a :func:`before_after` table (the parallel
    efficiency comes from the benchmark JSON, where random-forest tasks measure it)."""
    from .. import paths

    fast = table[table["run"] == "fast, warm cache"].sort_values("seconds").iloc[0]
    eff = "run python -m qbt_lib.bench walkforward"
    try:
        bench = json.loads((paths.BENCH_DIR / f"{workload}.json").read_text())
        eff = bench.get("headline", {}).get("parallel_efficiency", eff)
    except (OSError, ValueError):
        pass
    return {"throughput": f"{fast['fold-assets/s']:.0f} fold-assets/s (warm cache)",
            "speedup_vs_reference": f"{fast['speedup']:.1f}x (n_jobs={fast['n_jobs']})",
            "parallel_efficiency": eff, "gpu": "n/a (CPU workload)"}
