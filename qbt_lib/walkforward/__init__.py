"""Walk-forward ML backtests, parallel and exact (seed 001, ``docs/walkforward.md``).

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

from . import features, guard
from .config import FEATURES, IMPLS, METRICS, MODELS, WalkForwardConfig, make_config
from .portfolio import Portfolio
from .results import OUTPUT_FILES, WalkForwardResult, agreement, assemble
from .splitter import WalkForwardSplit

__all__ = ["run", "before_after", "agreement", "headline", "fresh_cache_dir", "make_config",
           "warm_up", "features", "WalkForwardResult", "WalkForwardConfig", "FEATURES", "METRICS",
           "MODELS", "IMPLS", "OUTPUT_FILES", "WalkForwardSplit", "Portfolio"]


def run(symbols: Any = None, start: Any = None, end: Any = None,
        fold_length: Any = 252, step_size: Any = 126, test_length: Any = None, gap: Any = 0,
        anchored: Any = False, model: Any = "ridge", threshold: Any = 0.0,
        long_only: Any = False, cost_bps: Any = 1.0, source: Any = "synthetic",
        impl: Any = "fast", n_jobs: Any = 1, backend: Any = "loky",
        output_dir: Any = None, *, scheduler: Any = "local", seed: Any = 0,
        n_estimators: Any = 100, alpha: Any = 1.0, adjust: Any = True, assets: Any = None,
        progress: bool | None = None, features: Any = None,
        pool: Any = False) -> WalkForwardResult:
    """Run a walk-forward backtest and return its tables (see :class:`WalkForwardResult`).

    symbols (older name: assets): None (5), a count (the source's first N assets), names or
    "all"; start/end: the backtest range (the 250 bars before start are feature warm-up;
    end=None: the assets' last common date, start=None: 3 years before end); fold_length/step_size/test_length/gap: fold
    layout in trading days (test_length defaults to step_size); anchored: expanding
    training window; model: ridge (alpha, closed form), random_forest (n_estimators trees,
    depth 10), hist_gb (n_estimators boosting rounds) or any scikit-learn estimator or
    Pipeline (cloned per task, random_state from (seed, fold, asset): :mod:`.estimators`);
    features: None (the ten built-ins) or a list of built-in names and functions
    f(open, high, low, close, volume) -> array (:mod:`.featureset`), every one checked by the
    look-ahead guard first (:mod:`.guard`); pool: also fit one model per fold on every
    asset's rows (``res.pooled``); threshold: |prediction| needed to
    take a position; long_only: no shorts; cost_bps: cost per unit of position change;
    source: anything qbt_lib.data.load takes ("synthetic", "sp500", a CSV/Parquet file or
    folder, a Hive-partitioned dataset, a DataFrame, a dict of frames); adjust: apply an
    adjusted-close column; impl: fast or reference; n_jobs,
    backend, scheduler: the parallel layer's (fast path only; the reference is sequential);
    seed: the folds' random_state seed; output_dir: if given, the per-fold Parquet files
    are written there when the run completes.
    """
    cfg = make_config(symbols=symbols, assets=assets, start=start, end=end,
                      fold_length=fold_length,
                      step_size=step_size, test_length=test_length, gap=gap,
                      anchored=anchored, model=model, threshold=threshold,
                      long_only=long_only, cost_bps=cost_bps, source=source, impl=impl,
                      n_jobs=n_jobs, backend=backend, scheduler=scheduler, seed=seed,
                      n_estimators=n_estimators, alpha=alpha, adjust=adjust,
                      features=features, pool=pool)
    t0 = time.perf_counter()
    checked = guard.check(cfg.features, cfg.frames[cfg.assets[0]],
                          guard.builtin_pandas if cfg.impl == "reference" else guard.builtin_numba)
    if cfg.impl == "reference":
        from .reference import run_reference
        outcome = run_reference(cfg)
        timings = {"n_tasks": len(outcome["results"])}
    else:
        from .fast import run_fast
        outcome, timings = run_fast(cfg, progress=progress)
    timings["guard_s"] = checked["seconds"]
    t1 = time.perf_counter()
    res = assemble(outcome, cfg, timings)
    timings["assemble_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    if output_dir is not None:
        res.save(output_dir)
    return res


def warm_up() -> float:
    """Load (or compile, the first time on a machine) the fast path's Numba kernels (features,
    backtest) and its model imports on a toy series; returns the seconds it took. Call it
    before a timed :func:`run` so the run measures the work, not the JIT, and report it apart.
    (loky workers load the compiled kernels from Numba's on-disk cache.)"""
    t = time.perf_counter()
    import numpy as np

    from . import fast  # noqa: F401  (the models and the parallel layer: slow first imports)
    from . import portfolio
    from .nb import backtest_nb
    n = 64
    x = 100.0 + np.cumsum(np.random.default_rng(0).standard_normal(n))
    features.feature_matrix_nb(x + 1.0, x - 1.0, x, np.full(n, 1e6),
                               np.empty((n, len(FEATURES))), np.empty(n))
    z = np.zeros(8)
    backtest_nb(z, z.copy(), 0.0, False, 0.0, 0.0, np.empty(8), np.empty(8),
                np.empty(len(METRICS)))
    portfolio.curve_metrics_fast(z + 0.01)
    pos = np.array([0.0, 1.0, 1.0, -1.0])
    portfolio.run_growth_nb(pos, pos, np.array([1]), np.array([2]), 1, np.empty(1))
    portfolio.runs_nb(pos, np.empty(4, np.int64), np.empty(4, np.int64))
    return time.perf_counter() - t


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
    ``n_jobs=1`` (sequential: no pool on either side, like the reference) and with the given
    ``n_jobs`` and backend (its pool's or cluster's start-up included, said in ``note``).
    Warm times are the best of ``repeats``. Returns the timing table, the reference result
    and the fast result."""
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
    seq = dict(n_jobs=1, backend="sequential")
    with fresh_cache_dir():
        t_cold, _ = timed(1, impl="fast", **seq)
    timed(1, impl="fast", **seq)                                # make sure the cache is warm
    rows = [("reference (sequential)", 1, "sequential", t_ref, "one core"),
            ("fast, cold cache", 1, "sequential", t_cold, "one core, cache filled")]
    t_one, fast = timed(repeats, impl="fast", **seq)
    rows.append(("fast, warm cache", 1, "sequential", t_one, "one core, like the reference"))
    if cfg.n_jobs > 1 or cfg.backend == "dask":
        t_all, fast = timed(repeats, impl="fast")
        rows.append(("fast, warm cache", cfg.n_jobs, cfg.backend, t_all,
                     f"{cfg.backend} pool start-up included"))
    n_tasks = len(ref.metrics)
    table = pd.DataFrame([{"run": r, "n_jobs": n, "backend": b, "seconds": t,
                           "speedup": t_ref / t, "fold-assets/s": n_tasks / t, "note": note}
                          for r, n, b, t, note in rows])
    return table, ref, fast


def headline(table: pd.DataFrame, workload: str = "walkforward") -> dict:
    """The report's headline figures from a :func:`before_after` table (the parallel
    efficiency comes from the benchmark JSON, where random-forest tasks measure it)."""
    from .. import paths

    # one named case: the fast path on one core (warm cache) against the one-core reference
    warm = table[table["run"] == "fast, warm cache"]
    fast = warm[warm["n_jobs"] == 1].iloc[0] if (warm["n_jobs"] == 1).any() else warm.iloc[0]
    eff = "run python -m qbt_lib.bench walkforward"
    try:
        bench = json.loads((paths.BENCH_DIR / f"{workload}.json").read_text())
        eff = bench.get("headline", {}).get("parallel_efficiency", eff)
    except (OSError, ValueError):
        pass
    return {"throughput": f"{fast['fold-assets/s']:.0f} fold-assets/s (warm cache, "
                          f"n_jobs={fast['n_jobs']})",
            "speedup_vs_reference": f"{fast['speedup']:.1f}x (n_jobs={fast['n_jobs']}, one "
                                    "core both sides)",
            "parallel_efficiency": eff, "gpu": "n/a (CPU workload)"}
