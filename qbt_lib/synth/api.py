"""synth's entry points: :func:`run` (the notebook's: validate -> load -> dispatch -> write ->
:class:`~.results.RunResult`), :func:`warm_up`, :func:`compare_impls` (the implementations
timed on the same samples) and :func:`before_after` (the notebook's reference-vs-this-run
table, built on :func:`compare_impls`); also the pieces a caller composes: :func:`market`,
:func:`sample_space`, :func:`draw_config` and :func:`generate` (samples in memory).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import bench as _bench
from .. import data as _data
from .. import parallel, paths
from ..device import gpu_available, gpu_name
from ..params import as_float, as_int
from .dataset import write_dataset
from .engines import ENGINES, WHOLE_RANGE, build_samples, resolve_impl
from .labels import DEFAULT as DEFAULT_LABEL
from .labels import LabelSpec
from .nb import gather_rows_par_nb
from .params import N_BARS, N_MAX, SYMBOLS_SYNTHETIC, check_params, label_of
from .results import RunResult, SampleSet
from .space import Draws, DrawConfig, SampleSpace
from .splits import allocate, split_frames, split_seed


# --------------------------------------------------------------------------- the market
def market(source: Any = "synthetic", symbols: Any = None, seed: int = 0,
           n_bars: int = N_BARS, start: Any = None, end: Any = None,
           adjust: bool = True) -> dict[str, pd.DataFrame]:
    """The price histories to sample, ``{symbol: OHLCV frame}``, from ``qbt_lib.data.load``.

    ``source``: ``"synthetic"`` (GARCH(1,1) with Student-t shocks, ``n_bars`` bars per
    symbol, seeded by ``seed``), ``"sp500"`` (the real S&P 500 1999-2018 shipped with
    ``arch``, one symbol ``SP500``), a CSV/Parquet file, a directory, a Hive-partitioned
    dataset, a DataFrame or a dict of frames. ``symbols``: a count (synthetic: how many to
    make, default 10; else the first k), a list of names, or ``None``/``"all"``.
    ``start``/``end`` cut the bars sampled; ``adjust`` applies an adjusted-close column.
    """
    def generate(sy: Any) -> dict[str, pd.DataFrame]:
        return _data.synthetic_market(_data.generator_symbols(sy, SYMBOLS_SYNTHETIC),
                                      n_bars=n_bars, seed=seed)

    return _data.load(source, symbols, start=start, end=end, adjust=adjust,
                      synthetic=generate)


def sample_space(source: Any = "synthetic", symbols: Any = None, seed: int = 0,
                 lookback: int = 64, horizon: int = 1, n_bars: int = N_BARS, start: Any = None,
                 end: Any = None, adjust: bool = True) -> SampleSpace:
    """The :class:`SampleSpace` of a market (cached on disk by content)."""
    lookback = as_int("lookback", lookback, min=1, max=4096)
    horizon = as_int("horizon", horizon, min=1, max=100_000)
    frames = market(source, symbols, seed=seed, n_bars=n_bars, start=start, end=end,
                    adjust=adjust)
    return SampleSpace.build(frames, lookback, horizon)


def draw_config(seed: int, equity_min: float = 1e4, equity_max: float = 1e6,
                position_min: float = -1.0, position_max: float = 1.0) -> DrawConfig:
    """What the random draws depend on: the seed and the equity/position ranges."""
    eq_lo = as_float("equity_min", equity_min)
    eq_hi = as_float("equity_max", equity_max)
    if eq_hi <= eq_lo:
        raise ValueError(f"equity_max must be > equity_min, got {eq_hi} <= {eq_lo}")
    pos_lo = as_float("position_min", position_min)
    pos_hi = as_float("position_max", position_max)
    if pos_hi <= pos_lo:
        raise ValueError(f"position_max must be > position_min, got {pos_hi} <= {pos_lo}")
    return DrawConfig(as_int("seed", seed, min=0), eq_lo, eq_hi, pos_lo, pos_hi)


# --------------------------------------------------------------------------- in memory
def _chunk_samples(args: tuple, space: SampleSpace) -> tuple[dict, np.ndarray | None]:
    cfg, impl, start, stop, with_windows, label = args
    return build_samples(impl, space, Draws(cfg, space.n_keys).take(start, stop), with_windows,
                         label=label)


def generate(n: int, space: SampleSpace, seed: int = 0, *, impl: str = "auto",
             device: str = "auto", materialize: bool = True, n_jobs: int = 1,
             backend: str = "sequential", chunk_size: int = 1 << 19,
             scheduler: str | None = "local", start: int = 0,
             cfg: DrawConfig | None = None, label: LabelSpec = DEFAULT_LABEL) -> SampleSet:
    """Samples ``start .. start+n-1`` in memory (for tests, plots and moderate n).

    Chunks of ``chunk_size`` samples are built by ``impl`` over the parallel layer; an
    implementation with a whole-range engine (``numba``: the fused ``prange`` kernel) under
    the sequential/threads backend builds all samples at once with ``n_jobs`` threads instead.
    """
    n = as_int("n", n, min=1, max=N_MAX)
    start = as_int("start", start, min=0)
    chunk_size = as_int("chunk_size", chunk_size, min=1)
    impl, device = resolve_impl(impl, device)
    cfg = cfg or draw_config(seed)
    whole = WHOLE_RANGE.get(impl) if backend in ("sequential", "threads") else None
    if whole is not None:
        cols, ohlcv = whole(space, cfg, start, start + n, parallel.resolve_n_jobs(n_jobs),
                            label)
    else:
        tasks = [(cfg, impl, start + a, start + b, True, label)
                 for a, b in parallel.chunk_bounds(n, chunk_size)]
        parts = parallel.pmap(_chunk_samples, tasks, backend=backend, n_jobs=n_jobs,
                              scheduler=scheduler, progress=False, shared=(space,))
        cols = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
        ohlcv = np.concatenate([p[1] for p in parts], axis=1)
    if materialize:
        return SampleSet(cols, space.symbols, space.lookback, ohlcv=ohlcv)
    keys = space.keys_of(cols["symbol"], cols["idx"])
    wkeys, first, row = np.unique(keys, return_index=True, return_inverse=True)
    windows = np.ascontiguousarray(ohlcv[:, first].transpose(1, 0, 2))
    return SampleSet(cols, space.symbols, space.lookback, windows=windows,
                     window_keys=wkeys, window_row=row.astype(np.int64))


# --------------------------------------------------------------------------- the notebook's run
def run(progress: bool | None = None, scheduler: str | None = "local", n_bars: int = N_BARS,
        **params: Any) -> RunResult:
    """The notebook's entry: validate, build the market's sample space, write the dataset
    (normalized or materialized) to ``output_dir/dataset``; with ``splits``, one dataset per
    split at ``output_dir/<split>`` (:mod:`.splits`; the result's figures are the first
    split's, ``result.splits`` holds each)."""
    p = check_params(**params)
    scheduler = parallel.check_scheduler(scheduler)
    impl, device = resolve_impl(p["impl"], p["device"])
    if p["splits"] is not None:
        return _run_splits(p, impl, device, progress, scheduler, n_bars)
    t0 = time.perf_counter()
    space = sample_space(p["source"], p["symbols"], p["seed"], p["lookback"], p["horizon"],
                         n_bars=n_bars, start=p["start"], end=p["end"], adjust=p["adjust"])
    t_market = time.perf_counter() - t0
    cfg = draw_config(p["seed"])
    t0 = time.perf_counter()
    out = paths.resolve_output_dir(p["output_dir"])
    warm_up(impl, space, cfg, p["backend"], p["n_jobs"], root=out, scheduler=scheduler)
    t_warm = time.perf_counter() - t0
    w = write_dataset(out / "dataset", p["n"], space, cfg, impl=impl,
                      materialize=p["materialize"], fmt=p["file_format"],
                      chunk_size=p["chunk_size"], n_jobs=p["n_jobs"], backend=p["backend"],
                      scheduler=scheduler, progress=progress, label=label_of(p))
    return RunResult(params=p, impl=impl, device=device, space=space, cfg=cfg, write=w,
                     market_seconds=t_market, warm_up_seconds=t_warm)


def _run_splits(p: dict, impl: str, device: str, progress: bool | None,
                scheduler: str | None, n_bars: int) -> RunResult:
    """:func:`run` with ``splits``: a space per split (:func:`.splits.split_frames`), ``n``
    shared by keys, each split written under one temp folder and moved into place only when
    every split is complete (a failed run leaves no split and keeps the previous ones)."""
    t0 = time.perf_counter()
    frames = market(p["source"], p["symbols"], seed=p["seed"], n_bars=n_bars, start=p["start"],
                    end=p["end"], adjust=p["adjust"])
    parts, table = split_frames(frames, p["splits"], p["lookback"], p["horizon"], p["embargo"])
    spaces = {s: SampleSpace.build(f, p["lookback"], p["horizon"]) for s, f in parts.items()}
    t_market = time.perf_counter() - t0
    ns = allocate(p["n"], {s: sp.n_keys for s, sp in spaces.items()})
    out = paths.resolve_output_dir(p["output_dir"])
    label = label_of(p)
    results: dict[str, RunResult] = {}
    first = next(iter(spaces))
    t0 = time.perf_counter()
    warm_up(impl, spaces[first], draw_config(p["seed"]), p["backend"], p["n_jobs"], root=out,
            scheduler=scheduler)
    t_warm = time.perf_counter() - t0
    with paths.atomic_dir(out / ".splits", replace=True) as tmp:
        for s, sp in spaces.items():
            cfg = draw_config(split_seed(p["seed"], s))
            w = write_dataset(tmp / s, ns[s], sp, cfg, impl=impl, materialize=p["materialize"],
                              fmt=p["file_format"], chunk_size=p["chunk_size"],
                              n_jobs=p["n_jobs"], backend=p["backend"], scheduler=scheduler,
                              progress=progress, label=label)
            results[s] = RunResult(params={**p, "n": ns[s]}, impl=impl, device=device,
                                   space=sp, cfg=cfg, write=w, market_seconds=t_market,
                                   warm_up_seconds=t_warm)
        for s in results:  # every split is complete: move each into place
            with paths.atomic_dir(out / s, replace=True) as dst:
                os.rmdir(dst)
                os.rename(tmp / s, dst)
            results[s].write.path = out / s
    shutil.rmtree(out / ".splits", ignore_errors=True)
    head = results[first]
    return dataclasses.replace(head, params=p, splits=results, split_table=table)


def warm_up(impl: str, space: SampleSpace, cfg: DrawConfig, backend: str = "sequential",
            n_jobs: int = 1, root: str | os.PathLike | None = None,
            scheduler: str | None = "local") -> None:
    """Load (or compile) every kernel a run uses and start the worker pool on a few
    samples, so the timed run measures the steady state; the one-off cost is reported on
    its own. On an existing Dask cluster (an address or scheduler file) the workers load
    their kernels too; a LocalCluster (``"local"``) is started by the run itself."""
    impl = resolve_impl(impl)[0] if impl not in ENGINES else impl
    d = Draws(cfg, space.n_keys).take(0, 8)
    _, ohlcv = build_samples(impl, space, d, True)
    gather_rows_par_nb(np.ascontiguousarray(ohlcv.transpose(1, 0, 2)), np.zeros(2, np.int64),
                       np.empty((5, 2, space.lookback), np.float32))
    with tempfile.TemporaryDirectory(dir=root, prefix=".synth-warm-") as tmp:
        for materialize in (False, True):
            write_dataset(Path(tmp) / f"w{materialize}", 16, space, cfg, impl=impl,
                          materialize=materialize, chunk_size=8, progress=False,
                          backend="sequential" if backend == "dask" else backend,
                          n_jobs=n_jobs)
        if backend == "dask" and scheduler not in (None, "local"):
            for materialize in (False, True):
                write_dataset(Path(tmp) / f"d{materialize}", 256, space, cfg, impl=impl,
                              materialize=materialize, chunk_size=16, progress=False,
                              backend="dask", scheduler=scheduler, n_jobs=n_jobs)


# --------------------------------------------------------------------------- comparisons
def _in_memory(space: SampleSpace, cfg: DrawConfig, n: int, impl: str, n_jobs: int,
               windows: bool, device: str, keep: bool) -> Any:
    """Samples 0..n-1 in memory by ``impl`` (draws included): materialized windows by
    :func:`generate` on ``n_jobs`` threads, or (``windows=False``) the samples columns only,
    what a normalized dataset's samples table holds, in one call."""
    if windows:
        got = generate(n, space, cfg=cfg, impl=impl, device=device, n_jobs=n_jobs,
                       backend="threads")
        got = (got.columns, got.ohlcv)
    else:
        got = build_samples(impl, space, Draws(cfg, space.n_keys).take(0, n), False)
    return got if keep else None


def _same_samples(a: tuple, b: tuple) -> bool:
    if a[0].keys() != b[0].keys():
        return False
    same = all(np.array_equal(a[0][k], b[0][k]) for k in a[0])
    return same and (a[1] is None) == (b[1] is None) and (
        a[1] is None or np.array_equal(a[1], b[1]))


def compare_impls(space: SampleSpace | None = None, cfg: DrawConfig | None = None,
                  n: int = 20_000, impls: Sequence[str] | None = None, *,
                  n_jobs: int | Sequence[int] = 1, windows: bool = True, device: str = "auto",
                  repeats: int = 3, warmup: int = 1, check: bool = True) -> pd.DataFrame:
    """synth's implementations timed **on the same work**, in one run: building samples
    ``0 .. n-1`` of ``cfg``'s draws (default seed 0) over ``space`` (default: the synthetic
    market, 10 symbols, lookback 64) in memory, draws included.

    ``impls``: default every one this machine runs (``reference``, ``numpy``, ``numba``,
    and ``cupy`` on a usable GPU); ``n_jobs``: one count, or several (a row per impl and
    count, labelled ``"numba, n_jobs=2"``); ``windows=False`` builds the samples columns
    only. One row per run (:func:`qbt_lib.bench.compare_impls`: median seconds of
    ``repeats`` after ``warmup``, min, max, samples/s, speed-up over the first row) and,
    with ``check``, ``same_answers``: bitwise equal to the first row's samples (each run's
    samples are then kept until the end: mind ``n``)."""
    space = space if space is not None else sample_space()
    cfg = cfg if cfg is not None else draw_config(0)
    n = as_int("n", n, min=1, max=N_MAX)
    if impls is None:
        impls = ["reference", "numpy", "numba"] + (["cupy"] if gpu_available() else [])
    jobs = [n_jobs] if np.isscalar(n_jobs) else list(n_jobs)
    runs = {}
    for impl in impls:
        impl, dev = resolve_impl(impl, device)
        for j in jobs:
            j = parallel.resolve_n_jobs(j)
            label = impl if np.isscalar(n_jobs) else f"{impl}, n_jobs={j}"
            runs[label] = (lambda impl=impl, j=j, dev=dev: _in_memory(
                space, cfg, n, impl, j, windows, dev, check))
    return _bench.compare_impls(runs, size=n, unit="samples",
                                same=_same_samples if check else None, repeats=repeats,
                                warmup=warmup)


def before_after(result: RunResult, reference_n: int = 2000, fast_n: int = 200_000
                 ) -> pd.DataFrame:
    """Before/after, timed in this run on this machine (:func:`compare_impls`): the
    reference (per-sample loop, windows materialized in memory) on a subsample; the run's
    implementation on a larger subsample in memory on one core and on ``n_jobs`` cores; and
    the run itself (all n samples, to disk). Speed-ups are per sample, each against the
    reference building the same layout (column ``against``): the in-memory rows build
    windows (materialized), like the reference's first row; a normalized run is compared
    with the reference building the normalized columns only (no windows), timed too.
    The table is kept on ``result`` (``result.before_after``) for its headline and metrics."""
    w, space, cfg = result.write, result.space, result.cfg
    rows = []

    def add(path: str, impl: str, n_jobs: int, samples: int, seconds: float,
            against: str) -> None:
        rows.append({"path": path, "impl": impl, "n_jobs": n_jobs, "samples": samples,
                     "seconds": seconds, "against": against})

    m = max(1, min(reference_n, w.n))
    mat_ref = run_ref = "reference: per-sample Python loop, in memory"
    once = dict(repeats=1, warmup=0, check=False)
    t = compare_impls(space, cfg, m, ["reference"], **once)
    add(mat_ref, "reference", 1, m, float(t["seconds"].iloc[0]), mat_ref)
    if w.kind != "materialized":
        run_ref = "reference: per-sample Python loop, normalized (no windows)"
        t = compare_impls(space, cfg, m, ["reference"], windows=False, **once)
        add(run_ref, "reference", 1, m, float(t["seconds"].iloc[0]), run_ref)
    fast = max(1, min(fast_n, w.n))
    if result.impl != "reference":
        jobs = sorted({1, parallel.resolve_n_jobs(result.params["n_jobs"])})
        t = compare_impls(space, cfg, fast, [result.impl], n_jobs=jobs, device=result.device,
                          repeats=1, warmup=1, check=False)   # warm-up: JIT, caches
        for j in jobs:
            add(f"{result.impl}: in memory, n_jobs={j}", result.impl, j, fast,
                float(t.loc[f"{result.impl}, n_jobs={j}", "seconds"]), mat_ref)
    add(f"this run: {w.kind} dataset to {w.fmt}", result.impl, w.n_jobs, w.n, result.seconds,
        run_ref)
    df = pd.DataFrame(rows).set_index("path")
    df["samples_per_s"] = df["samples"] / df["seconds"]
    df["speedup"] = df["samples_per_s"] / df["against"].map(df["samples_per_s"])
    df.attrs["gpu"] = gpu_name()
    result.before_after = df
    return df
