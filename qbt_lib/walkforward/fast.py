"""The fast walk-forward path.

1. Load once: the data layer loads and validates the run's bars (``WalkForwardConfig.frames``,
   the warm-up bars before ``start`` through ``end``); the features are computed by the Numba
   kernels over them, and both are written to a Parquet cache keyed by a content hash of the
   loaded bars (``cache_dir()/walkforward/<key>/{ohlcv,features}.parquet``; written to a
   temp folder and renamed, so an interrupted run leaves no partial cache).
2. Columnar store: OHLCV, features and target go into a :class:`~qbt_lib.data.PriceStore`
   (``dates x assets`` matrices, memory-mapped); a task pickles only its path. The cache
   folder records the store, so a warm run hashes the loaded bars and maps the store
   (rebuilding it from the Parquet files if it was deleted): no features recomputed.
3. (fold, asset) tasks through :func:`qbt_lib.parallel.pmap` (sequential, threads, loky or
   Dask) with one BLAS/OpenMP thread per worker. A task reads its rows from the store, fits
   and predicts, and trades the test window with ``nb.backtest_nb``. Ridge tasks take about
   a millisecond, less than a pool needs to ship one, so they travel in chunks (a few per
   worker); forests and boosting go one task at a time for load balance. Every task computes
   the same thing wherever it runs and results come back in task order, so they are bitwise
   identical for any ``n_jobs``, chunking and backend.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paths
from ..data import OHLCV, PriceStore
from ..parallel import pmap
from .config import (FEATURES, METRICS, WalkForwardConfig, check_history, check_train_rows,
                     fold_rows, fold_seed, fold_windows, n_folds_of)
from .models import fit_predict, limit_threads_in_worker
from .nb import backtest_nb, feature_matrix_nb

FEATURE_VERSION = "wf-features-2"   # bump when a feature definition changes
STORE_FIELDS = (*OHLCV, *FEATURES, "target", "bar")   # bar: 1 where the asset has a bar


@dataclasses.dataclass
class Panel:
    """What the tasks need: the store plus each asset's bar dates and store rows."""
    store: PriceStore
    dates: dict[str, pd.DatetimeIndex]
    rows: dict[str, np.ndarray]
    ohlcv: dict[str, pd.DataFrame]
    cache_hit: bool


def source_key(frames: dict[str, pd.DataFrame]) -> str:
    """Content hash of the loaded bars (dates and OHLCV), the asset names and the feature
    version: the same data from any kind of source shares one cache entry."""
    h = hashlib.blake2b(digest_size=16)
    h.update(FEATURE_VERSION.encode())
    for asset, f in frames.items():
        h.update(f"\0{asset}\0".encode())
        h.update(f.index.asi8.tobytes())
        for c in OHLCV:
            h.update(np.ascontiguousarray(f[c].to_numpy(np.float64)).tobytes())
    return h.hexdigest()


def _to_long(frames: dict[str, pd.DataFrame], cols) -> pd.DataFrame:
    parts = []
    for asset, f in frames.items():
        part = f[list(cols)].copy()
        part.insert(0, "asset", asset)
        parts.append(part)
    return pd.concat(parts).reset_index(names="date")


def _from_long(df: pd.DataFrame, assets, cols) -> dict[str, pd.DataFrame]:
    out = {}
    for asset, g in df.groupby("asset", sort=False):
        g = g.set_index(pd.DatetimeIndex(g["date"]).astype("datetime64[ns]"))
        out[str(asset)] = g[list(cols)].rename_axis("date")
    return {a: out[a] for a in assets}


def _compute(cfg: WalkForwardConfig) -> dict[str, pd.DataFrame]:
    """Compute every asset's features over the bars the run loaded (warm-up included)."""
    out = {}
    for asset in cfg.assets:
        df = cfg.frames[asset][list(OHLCV)]
        n = len(df)
        F, y = feature_matrix_nb(*(np.ascontiguousarray(df[c].to_numpy(np.float64))
                                   for c in ("high", "low", "close", "volume")),
                                 np.empty((n, len(FEATURES))), np.empty(n))
        fr = df.copy()
        fr[list(FEATURES)] = F
        fr["target"] = y
        fr["bar"] = 1.0
        out[asset] = fr
    return out


def _write_cache(final: Path, frames: dict[str, pd.DataFrame]) -> None:
    with paths.atomic_dir(final) as tmp:
        if tmp is not None:  # None: another run cached the same source first
            _to_long(frames, OHLCV).to_parquet(tmp / "ohlcv.parquet", index=False)
            _to_long(frames, (*FEATURES, "target")).to_parquet(tmp / "features.parquet",
                                                                index=False)


def _read_cache(final: Path, assets) -> dict[str, pd.DataFrame]:
    ohlcv = _from_long(pd.read_parquet(final / "ohlcv.parquet"), assets, OHLCV)
    feats = _from_long(pd.read_parquet(final / "features.parquet"), assets,
                       (*FEATURES, "target"))
    return {a: pd.concat([ohlcv[a], feats[a]], axis=1).assign(bar=1.0) for a in assets}


def _open_recorded_store(final: Path) -> PriceStore | None:
    try:
        store = PriceStore((final / "store.txt").read_text().strip())
    except (OSError, ValueError, KeyError):
        return None
    return store if store.fields == STORE_FIELDS else None


def load_panel(cfg: WalkForwardConfig) -> Panel:
    """The run's data as a memory-mapped store, through the content-hash cache."""
    key = source_key(cfg.frames)
    root = paths.cache_dir() / "walkforward"
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    hit = (final / "features.parquet").exists()
    store = _open_recorded_store(final) if hit else None
    if store is None:
        frames = _read_cache(final, cfg.assets) if hit else _compute(cfg)
        if not hit:
            _write_cache(final, frames)
        store = PriceStore.build(frames, fields=STORE_FIELDS)
        tmp = final / f".store.txt.{os.getpid()}"
        tmp.write_text(str(store.path))
        os.replace(tmp, final / "store.txt")
    rows, ohlcv = {}, {}
    bar = store["bar"]
    for j, a in enumerate(cfg.assets):
        r = np.flatnonzero(bar[:, j] == 1.0)     # NaN prices stay in, for check_history
        rows[a] = r
        ohlcv[a] = pd.DataFrame({f: store[f][r, j] for f in OHLCV}, index=store.dates[r])
    dates = {a: ohlcv[a].index for a in cfg.assets}
    return Panel(store=store, dates=dates, rows=rows, ohlcv=ohlcv, cache_hit=hit)


@dataclasses.dataclass(frozen=True)
class Task:
    fold: int
    asset: str
    column: int
    train_rows: np.ndarray      # store rows of the training decisions
    test_rows: np.ndarray       # store rows of the test decisions
    dates: np.ndarray           # int64 ns of the traded test bars
    window_dates: tuple[int, int, int, int]
    seed: int


def make_tasks(cfg: WalkForwardConfig, panel: Panel) -> list[Task]:
    windows = {}
    for a in cfg.assets:
        windows[a] = fold_windows(*check_history(panel.ohlcv[a], a, cfg), cfg)
    tasks = []
    for k in range(n_folds_of(windows)):
        for j, a in enumerate(cfg.assets):
            w = windows[a][k]
            train, test = fold_rows(w)
            rows, d = panel.rows[a], panel.dates[a].asi8
            tr_lo, tr_hi, te_lo, te_hi = w
            tasks.append(Task(fold=k, asset=a, column=j, train_rows=rows[train],
                              test_rows=rows[test], dates=d[te_lo:te_hi].copy(),
                              window_dates=(int(d[tr_lo]), int(d[tr_hi - 1]), int(d[te_lo]),
                                            int(d[te_hi - 1])),
                              seed=fold_seed(cfg.seed, k)))
    return tasks


_OPEN_STORES: dict[str, PriceStore] = {}


def _reuse(store: PriceStore) -> PriceStore:
    """A worker unpickles a fresh store per task; keep the first one (and its maps) instead."""
    if store.path is None:  # Dask: the in-memory copy scattered to this worker once per run
        return store
    return _OPEN_STORES.setdefault(str(store.path), store)


def _gather(store: PriceStore, rows: np.ndarray, column: int) -> tuple[np.ndarray, np.ndarray]:
    X = np.empty((rows.shape[0], len(FEATURES)))
    for i, f in enumerate(FEATURES):
        X[:, i] = store[f][rows, column]
    return X, store["target"][rows, column]


def run_task(task: Task, *, store: PriceStore, model: str, n_estimators: int, alpha: float,
             threshold: float, long_only: bool, cost: float, main_pid: int) -> dict:
    """One (fold, asset): fit on the training rows, predict and trade the test window."""
    wall, cpu = time.perf_counter(), time.process_time()
    limit_threads_in_worker(main_pid)
    store = _reuse(store)
    X_train, y_train = _gather(store, task.train_rows, task.column)
    keep = np.isfinite(X_train).all(axis=1)       # drop the feature warm-up rows
    X_train, y_train = X_train[keep], y_train[keep]
    check_train_rows(X_train.shape[0], task.fold, task.asset)
    X_test, ret = _gather(store, task.test_rows, task.column)
    pred, importance = fit_predict(model, X_train, y_train, X_test, seed=task.seed,
                                   n_estimators=n_estimators, alpha=alpha)
    T = pred.shape[0]
    position, pnl, m = np.empty(T), np.empty(T), np.empty(len(METRICS))
    backtest_nb(pred, ret, threshold, long_only, cost, position, pnl, m)
    tr0, tr1, te0, te1 = (pd.Timestamp(v) for v in task.window_dates)
    return {"fold": task.fold, "asset": task.asset, "train_start": tr0, "train_end": tr1,
            "test_start": te0, "test_end": te1, "n_train": int(X_train.shape[0]),
            "dates": task.dates, "prediction": pred, "position": position.astype(np.int8),
            "ret": ret, "pnl": pnl, "metrics": dict(zip(METRICS, m.tolist())),
            "importance": importance, "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu}


def run_chunk(chunk: list[Task], store: PriceStore, **kw) -> list[dict]:
    return [run_task(t, store=store, **kw) for t in chunk]


def chunk_tasks(tasks: list[Task], model: str, n_workers: int) -> list[list[Task]]:
    """Light tasks (ridge) in about four chunks per worker, heavy ones one by one."""
    size = 1 if model != "ridge" or n_workers <= 1 else -(-len(tasks) // (4 * n_workers))
    return [tasks[i:i + size] for i in range(0, len(tasks), size)]


def run_fast(cfg: WalkForwardConfig, progress: bool | None = None) -> tuple[list[dict], dict]:
    """All (fold, asset) results in task order, and the phase timings."""
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    panel = load_panel(cfg)
    tasks = make_tasks(cfg, panel)
    t1 = time.perf_counter()
    # the store travels once per run (``shared``): on Dask scattered in memory to every
    # worker, which need not see this machine's cache
    func = functools.partial(run_chunk, model=cfg.model,
                             n_estimators=cfg.n_estimators, alpha=cfg.alpha,
                             threshold=cfg.threshold, long_only=cfg.long_only, cost=cfg.cost,
                             main_pid=os.getpid())
    # one BLAS/OpenMP thread in this process too (sequential and threads backends), so every
    # backend runs the very same single-threaded arithmetic
    chunks = chunk_tasks(tasks, cfg.model, 1 if cfg.backend == "sequential" else cfg.n_jobs)
    with threadpool_limits(1):
        done = pmap(func, chunks, backend=cfg.backend, n_jobs=cfg.n_jobs,
                    scheduler=cfg.scheduler, progress=progress, desc="walk-forward",
                    unit="chunk", shared=(panel.store,))
    results = [r for chunk in done for r in chunk]
    t2 = time.perf_counter()
    # task_wall_s / (workers * tasks_s): how busy the workers were; task_cpu_s / task_wall_s:
    # the share of a core each task got (below 1 when other processes compete for the cores)
    return results, {"load_s": t1 - t0, "tasks_s": t2 - t1, "cache_hit": panel.cache_hit,
                     "n_tasks": len(tasks), "task_wall_s": sum(r["wall_s"] for r in results),
                     "task_cpu_s": sum(r["cpu_s"] for r in results)}
