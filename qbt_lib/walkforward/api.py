"""walkforward's entry points: :func:`run`, :func:`warm_up`, :func:`compare_impls` and the
seed's before/after table (:func:`before_after`, cold and warm cache).

``run`` checks the parameters once (``params.check_params``), loads the run's bars once
(``params.config_from``), picks the engine from one dispatch table through
:func:`qbt_lib.device.dispatch`, runs the (fold, asset) tasks and assembles a
:class:`~.results.WalkForwardResult`.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd

from ..bench import compare_impls as time_impls
from ..device import dispatch
from . import guard
from .config import FEATURES, METRICS, WalkForwardConfig
from .fast import run_fast
from .nb import backtest_nb, feature_matrix_nb, run_growth_nb, runs_nb
from .params import check_params, config_from
from .portfolio import curve_metrics_fast
from .reference import run_reference
from .results import WalkForwardResult, assemble, same_answers


def _reference(cfg: WalkForwardConfig, progress: bool | None) -> tuple[dict, dict]:
    """The seed's pipeline, sequential: re-reads the data and recomputes pandas features
    every fold."""
    outcome = run_reference(cfg)
    return outcome, {"n_tasks": len(outcome["results"])}


def _numba(cfg: WalkForwardConfig, progress: bool | None) -> tuple[dict, dict]:
    """Load once through the Parquet cache, Numba features, tasks through ``pmap``."""
    return run_fast(cfg, progress=progress)


#: the dispatch table: impl -> engine ``(config, progress) -> (outcome, timings)``: the
#: outcome holds the (fold, asset) results, each asset's stitched timeline and, with
#: ``pool``, the pooled model's (see :func:`.results.assemble`)
ENGINES = {"reference": _reference, "numba": _numba}
#: the built-in features each engine's look-ahead guard checks (its own code)
GUARDED = {"reference": guard.builtin_pandas, "numba": guard.builtin_numba}


def run(**params: Any) -> WalkForwardResult:
    """Run a walk-forward backtest and return its tables (see :class:`WalkForwardResult`).

    symbols (older name: assets): None (5), a count (the source's first N assets), names or
    "all"; start/end: the backtest range (the 250 bars before start are feature warm-up;
    end=None: the assets' last common date, start=None: 3 years before end);
    fold_length/step_size/test_length/gap: fold layout in trading days (test_length
    defaults to step_size); anchored: expanding training window; model: ridge (alpha,
    closed form), random_forest (n_estimators trees, depth 10) or hist_gb (n_estimators
    boosting rounds) or any scikit-learn estimator or Pipeline (cloned per task,
    random_state from (seed, fold, asset): :mod:`.estimators`); features: None (the ten
    built-ins) or a list of built-in names and functions f(open, high, low, close, volume)
    -> array (:mod:`.featureset`), each checked by the look-ahead guard (:mod:`.guard`)
    before the run; pool: also one model per fold trained on every asset's rows
    (``res.pooled``); threshold: |prediction| needed to take a position; long_only: no
    shorts; cost_bps: cost per unit of position change; source: anything
    qbt_lib.data.load takes ("synthetic", "sp500", a CSV/Parquet file or folder, a
    Hive-partitioned dataset, a DataFrame, a dict of frames); adjust: apply an
    adjusted-close column; impl: auto (= numba), numba or reference ("fast": numba);
    n_jobs, backend, scheduler: the parallel layer's (numba only; the reference is
    sequential); seed: the folds' random_state seed; output_dir: if given, the per-fold
    Parquet files are written there when the run completes. Every parameter and its
    default: :data:`~.params.DEFAULTS`.
    """
    p = check_params(**params)          # every parameter, progress and output_dir included
    impl, _, engine = dispatch("walkforward", ENGINES, p["impl"], "cpu")
    cfg = config_from({**p, "impl": impl})
    t0 = time.perf_counter()
    checked = guard.check(cfg.features, cfg.frames[cfg.assets[0]], GUARDED[impl])
    outcome, timings = engine(cfg, p["progress"])
    timings["guard_s"] = checked["seconds"]
    t1 = time.perf_counter()
    res = assemble(outcome, cfg, timings)
    timings["assemble_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    if p["output_dir"] is not None:
        res.save(p["output_dir"])
    return res


def warm_up() -> float:
    """Load (or compile, the first time on a machine) the Numba kernels (features,
    backtest, portfolio) on a toy series; returns the seconds it took. Call it before a timed
    :func:`run` so the run measures the work, not the JIT, and report it apart. (loky
    workers load the compiled kernels from Numba's on-disk cache.)"""
    t = time.perf_counter()
    n = 64
    x = 100.0 + np.cumsum(np.random.default_rng(0).standard_normal(n))
    feature_matrix_nb(x + 1.0, x - 1.0, x, np.full(n, 1e6), np.empty((n, len(FEATURES))),
                      np.empty(n))
    z = np.zeros(8)
    backtest_nb(z, z.copy(), 0.0, False, 0.0, 0.0, np.empty(8), np.empty(8),
                np.empty(len(METRICS)))
    curve_metrics_fast(z + 0.01)
    pos = np.array([0.0, 1.0, 1.0, -1.0])
    run_growth_nb(pos, pos, np.array([1]), np.array([2]), 1, np.empty(1))
    runs_nb(pos, np.empty(4, np.int64), np.empty(4, np.int64))
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


def _run_params(params: dict) -> dict:
    out = {k: v for k, v in params.items() if k not in ("impl", "output_dir")}
    out.setdefault("progress", False)
    return out


def compare_impls(repeats: int = 3, **params: Any) -> pd.DataFrame:
    """Time the engines on the same backtest (warm cache, kernels loaded, a pool started by
    an untimed first call): the reference, numba on one core (``n_jobs=1``, no pool: like
    the reference) and, when ``n_jobs``/``backend`` ask for more, numba on them. Returns the
    :func:`qbt_lib.bench.compare_impls` table (median/min/max seconds of ``repeats``,
    fold-assets/s, speed-up over the reference, same answers: identical positions and
    metrics within 1e-9)."""
    params = _run_params(params)
    p = check_params(**params)
    runs = {"reference": lambda: run(**{**params, "impl": "reference"}),
            "numba, one core": lambda: run(**{**params, "impl": "numba", "n_jobs": 1,
                                              "backend": "sequential"})}
    if p["n_jobs"] > 1 or p["backend"] == "dask":
        runs[f"numba, {p['backend']} ({p['n_jobs']})"] = lambda: run(**{**params,
                                                                      "impl": "numba"})
    n_tasks = len(run(**{**params, "impl": "numba", "n_jobs": 1,
                         "backend": "sequential"}).fold_metrics)   # fills the cache
    return time_impls(runs, size=n_tasks, unit="fold-assets", same=same_answers,
                      repeats=repeats)


def before_after(repeats: int = 3, **params: Any
                 ) -> tuple[pd.DataFrame, WalkForwardResult, WalkForwardResult]:
    """Time the reference and the numba path on the same parameters: the reference, numba
    on a cold cache (an empty temporary cache folder) and on a warm cache, with
    ``n_jobs=1`` (sequential: no pool on either side, like the reference) and with the given
    ``n_jobs`` and backend (its pool's or cluster's start-up included, said in ``note``).
    Warm times are the best of ``repeats``. Returns the timing table, the reference result
    and the numba result."""
    params = _run_params(params)

    def timed(n: int, **kw) -> tuple[float, WalkForwardResult]:
        best, res = float("inf"), None
        for _ in range(n):
            t = time.perf_counter()
            res = run(**{**params, **kw})
            best = min(best, time.perf_counter() - t)
        return best, res

    p = check_params(**params)
    t_ref, ref = timed(max(1, repeats - 1), impl="reference")
    seq = dict(n_jobs=1, backend="sequential")
    with fresh_cache_dir():
        t_cold, _ = timed(1, impl="numba", **seq)
    timed(1, impl="numba", **seq)                               # make sure the cache is warm
    rows = [("reference (sequential)", 1, "sequential", t_ref, "one core"),
            ("numba, cold cache", 1, "sequential", t_cold, "one core, cache filled")]
    t_one, fast = timed(repeats, impl="numba", **seq)
    rows.append(("numba, warm cache", 1, "sequential", t_one, "one core, like the reference"))
    if p["n_jobs"] > 1 or p["backend"] == "dask":
        t_all, fast = timed(repeats, impl="numba")
        rows.append(("numba, warm cache", p["n_jobs"], p["backend"], t_all,
                     f"{p['backend']} pool start-up included"))
    n_tasks = len(ref.fold_metrics)
    table = pd.DataFrame([{"run": r, "n_jobs": n, "backend": b, "seconds": t,
                           "speedup": t_ref / t, "fold-assets/s": n_tasks / t, "note": note}
                          for r, n, b, t, note in rows])
    return table, ref, fast
