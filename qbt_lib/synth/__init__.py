"""synth: synthetic training samples for a trading agent, at 1e7-1e10 scale.

The original system, its published figures and the exact semantics: ``docs/synth.md``.

A **sample** is a decision bar ``idx`` of a symbol (uniform in ``[lookback, T - horizon]``)
with a random trade state (``equity`` ~ U[1e4, 1e6], ``position`` ~ U[-1, 1]), a random
``action`` (0 hold, 1 buy, 2 sell), the **window** of the ``lookback`` bars before ``idx``
(OHLC divided by the window's last close, volume by the window's mean volume, float32) and
the label ``forward_return = log(close[idx-1+horizon] / close[idx-1])``.

With n far above the number of bars, windows repeat: a window depends only on (symbol,
idx). The default **normalized** dataset stores a ~41-byte row per sample plus one window per
distinct (symbol, idx), and a :class:`BatchLoader` materializes batches on read (NumPy, or
CuPy into device memory). ``materialize=True`` streams fully materialized rows instead.

Implementations (``impl``): ``reference`` (one Python iteration per sample), ``numpy``
(vectorized, array-module generic), ``numba`` (fused gather+scale), ``cupy`` (the GPU gathers
and scales). All draw their random numbers on the CPU from fixed blocks of 65536 samples
seeded by block index (``parallel.chunk_rng``), so every implementation, ``n_jobs``,
backend and ``chunk_size`` gives bitwise the same samples.

Entry points: :func:`run` (the notebook's), :func:`generate` (in memory),
:func:`write_dataset` (to disk), :func:`open_dataset` / :class:`BatchLoader` (reading).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import data as _data
from .. import parallel, paths
from ..device import DEVICES, resolve_device
from ..params import as_bool, as_float, as_int, one_of
from .space import (ACTIONS, BLOCK, FIELDS, DrawConfig, Draws, SampleSpace)
from .store import (FORMATS, Batch, BatchLoader, PartStats, PartTask,
                    SynthDataset, write_part)
from .xp import SAMPLE_COLUMNS

log = logging.getLogger("qbt")

__all__ = ["run", "check_params", "market", "sample_space", "generate", "write_dataset",
           "open_dataset", "dataset_digest", "build_samples", "SampleSpace", "SampleSet",
           "SynthDataset", "BatchLoader", "Batch", "DrawConfig", "RunResult", "IMPLS",
           "DEFAULTS", "BLOCK", "time_reference", "before_after", "headline", "resolve_impl"]

IMPLS = ("auto", "reference", "numpy", "numba", "cupy")
N_MAX = 10**10
N_BARS = 5000          # synthetic history per symbol: ~20 years, like the S&P 500 sample
SYMBOLS_SYNTHETIC = 10
DEFAULTS = dict(n=10_000_000, lookback=64, horizon=1, seed=0, source="synthetic",
                symbols=None, start=None, end=None, adjust=True, n_jobs=-1, backend="threads", device="auto", impl="auto",
                materialize=False, chunk_size=None, output_dir="outputs/synth",
                file_format="parquet")


# --------------------------------------------------------------------------- parameters
def check_params(**params: Any) -> dict:
    """Validate the notebook parameters (missing ones take :data:`DEFAULTS`); return them
    normalized. Every bad value raises a ``ValueError`` naming the parameter."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    out = {
        "n": as_int("n", p["n"], min=1, max=N_MAX),
        "lookback": as_int("lookback", p["lookback"], min=1, max=4096),
        "horizon": as_int("horizon", p["horizon"], min=1, max=100_000),
        "seed": as_int("seed", p["seed"], min=0, max=2**63 - 1),
        "source": _data.check_source(p["source"]),
        "symbols": _check_symbols(p["symbols"]),
        "start": _date_text("start", p["start"]),
        "end": _date_text("end", p["end"]),
        "adjust": as_bool("adjust", p["adjust"]),
        "n_jobs": as_int("n_jobs", p["n_jobs"], min=-64, max=1024),
        "backend": one_of("backend", p["backend"], parallel.BACKENDS),
        "device": one_of("device", p["device"], DEVICES),
        "impl": one_of("impl", p["impl"], IMPLS),
        "materialize": as_bool("materialize", p["materialize"]),
        "chunk_size": (default_chunk_size(p["backend"]) if p["chunk_size"] is None else
                       as_int("chunk_size", p["chunk_size"], min=1, max=1 << 30)),
        "output_dir": _check_output_dir(p["output_dir"]),
        "file_format": one_of("file_format", p["file_format"], FORMATS),
    }
    parallel.resolve_n_jobs(out["n_jobs"])  # n_jobs=0 is rejected there, by name
    if out["impl"] == "cupy" and out["device"] == "cpu":
        raise ValueError("impl='cupy' runs on the GPU: use device='gpu' or 'auto' "
                         "(got device='cpu')")
    if out["device"] == "gpu" and out["impl"] not in ("auto", "cupy"):
        raise ValueError(f"device='gpu' runs impl 'cupy' (or 'auto'); impl={out['impl']!r} "
                         "runs on the CPU")
    return out


CHUNK = 1 << 19          # samples per chunk (one part file each): ~0.1 s of work per task
DASK_CHUNK = 1 << 21     # on Dask: ~0.3 s tasks keep the scheduler and result traffic small
                         # (1e9 on 2 workers: 0.78 of the threads backend with 512k-sample
                         # chunks, 0.80 with 2M; the samples are the same either way)


def default_chunk_size(backend: Any) -> int:
    """``chunk_size=None``: :data:`DASK_CHUNK` samples on Dask, else :data:`CHUNK`."""
    return DASK_CHUNK if str(backend).strip().lower() == "dask" else CHUNK


def _date_text(name: str, value: Any) -> str | None:
    ts = _data.as_date(name, value)
    return None if ts is None else ts.strftime("%Y-%m-%d")


def _check_symbols(symbols: Any) -> int | list[str] | None:
    """``None``/``"all"`` -> ``None`` (all; 10 synthetic), a count, or names."""
    s = _data.generator_symbols(symbols, default=0)
    return None if s == 0 else s


def _check_output_dir(output_dir: Any) -> str:
    if not isinstance(output_dir, (str, os.PathLike)) or not str(output_dir).strip():
        raise ValueError(f"output_dir must be a non-empty path, got {output_dir!r}")
    return str(output_dir)


def resolve_impl(impl: str, device: str) -> tuple[str, str]:
    """The implementation and device that will run: ``auto`` picks CuPy on a usable GPU,
    else Numba; ``impl='cupy'`` with ``device='auto'`` and no GPU falls back to the same
    array code on NumPy (``numpy``), with one logged reason."""
    impl = one_of("impl", impl, IMPLS)
    dev = resolve_device(device)
    if impl == "auto":
        return ("cupy" if dev == "gpu" else "numba"), dev
    if impl == "cupy":
        if dev != "gpu":
            log.info("impl='cupy' without a usable GPU runs its array code on NumPy")
            return "numpy", "cpu"
        return "cupy", "gpu"
    return impl, "cpu"


# --------------------------------------------------------------------------- market
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
        names = _data.symbol_names(_data.generator_symbols(sy, SYMBOLS_SYNTHETIC))
        return _data.synthetic_market(names, n_bars=n_bars, seed=seed)

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
    eq_lo = as_float("equity_min", equity_min)
    eq_hi = as_float("equity_max", equity_max)
    if eq_hi <= eq_lo:
        raise ValueError(f"equity_max must be > equity_min, got {eq_hi} <= {eq_lo}")
    pos_lo = as_float("position_min", position_min)
    pos_hi = as_float("position_max", position_max)
    if pos_hi <= pos_lo:
        raise ValueError(f"position_max must be > position_min, got {pos_hi} <= {pos_lo}")
    return DrawConfig(as_int("seed", seed, min=0), eq_lo, eq_hi, pos_lo, pos_hi)


# --------------------------------------------------------------------------- dispatch
def build_samples(impl: str, space: SampleSpace, draws: dict, with_windows: bool = True,
                  out: np.ndarray | None = None) -> tuple[dict, np.ndarray | None]:
    """Samples columns and (5, m, lookback) float32 windows of ``draws`` with ``impl``
    (a resolved implementation: reference, numpy, numba or cupy). ``draws`` holds at least
    ``key``; without equity/position/action (the windows table) only the per-key columns
    are built. ``out``: a preallocated (5, >= m, lookback) float32 buffer to fill (its
    first m rows are returned), so a streaming writer reuses memory instead of faulting in
    fresh pages for every batch."""
    if impl == "reference":
        from . import reference
        return reference.build_samples(space, draws, with_windows)
    if impl == "cupy":
        from . import gpu
        return gpu.build_samples(space, draws, with_windows)
    from . import xp as xpk
    tables = space.tables()
    key = np.asarray(draws["key"], np.int64)
    cols = xpk.sample_columns(np, tables, draws)
    ohlcv = None
    if with_windows:
        m = len(key)
        ohlcv = (out[:, :m] if out is not None and out.shape[1] >= m
                 else np.empty((5, m, space.lookback), np.float32))
        if impl == "numba":
            from .nb import gather_scale_nb
            gather_scale_nb(tables["prices"], tables["key_start"], tables["key_scale"], key,
                            ohlcv)
        elif impl == "numpy":
            xpk.gather_scale(np, tables["prices"], tables["key_start"], tables["key_scale"],
                             key, ohlcv)
        else:
            raise ValueError(f"impl must be one of {IMPLS[1:]}, got {impl!r}")
    return cols, ohlcv


# --------------------------------------------------------------------------- in memory
@dataclasses.dataclass
class SampleSet:
    """Samples in memory: columns (NumPy arrays; ``symbol`` codes into ``symbols``, ``date``
    int64 ns) and either the materialized ``ohlcv`` (5, n, L) or the normalized form:
    ``windows`` (W, 5, L), one row per distinct ``window_keys``, and each sample's
    ``window_row``."""
    columns: dict
    symbols: list[str]
    lookback: int
    ohlcv: np.ndarray | None = None
    windows: np.ndarray | None = None
    window_keys: np.ndarray | None = None
    window_row: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.columns["idx"])

    def samples(self) -> pd.DataFrame:
        """The samples table as a DataFrame (symbol categorical, date datetime64[ns])."""
        return samples_frame(self.columns, self.symbols)

    def materialized(self) -> np.ndarray:
        """The (5, n, L) float32 windows of every sample (gathered when normalized)."""
        if self.ohlcv is not None:
            return self.ohlcv
        return np.ascontiguousarray(
            np.take(self.windows, self.window_row, axis=0).transpose(1, 0, 2))


def samples_frame(cols: dict, symbols: list[str]) -> pd.DataFrame:
    df = pd.DataFrame({
        "symbol": pd.Categorical.from_codes(np.asarray(cols["symbol"]), categories=symbols),
        "idx": cols["idx"], "date": np.asarray(cols["date"]).view("datetime64[ns]"),
        **{c: cols[c] for c in SAMPLE_COLUMNS[3:] if c in cols}})
    return df


def _chunk_samples(args: tuple, space: SampleSpace) -> tuple[dict, np.ndarray | None]:
    cfg, impl, start, stop, with_windows = args
    return build_samples(impl, space, Draws(cfg, space.n_keys).take(start, stop), with_windows)


def generate(n: int, space: SampleSpace, seed: int = 0, *, impl: str = "auto",
             device: str = "auto", materialize: bool = True, n_jobs: int = 1,
             backend: str = "sequential", chunk_size: int = 1 << 19,
             scheduler: str | None = "local", start: int = 0,
             cfg: DrawConfig | None = None) -> SampleSet:
    """Samples ``start .. start+n-1`` in memory (for tests, plots and moderate n).

    Chunks of ``chunk_size`` samples are built by ``impl`` over the parallel layer; the
    ``numba`` implementation with the sequential/threads backend runs the fused ``prange``
    kernel over all samples at once with ``n_jobs`` threads instead.
    """
    n = as_int("n", n, min=1, max=N_MAX)
    start = as_int("start", start, min=0)
    chunk_size = as_int("chunk_size", chunk_size, min=1)
    impl, device = resolve_impl(impl, device)
    cfg = cfg or draw_config(seed)
    with_windows = True
    if impl == "numba" and backend in ("sequential", "threads"):
        cols, ohlcv = _numba_all(space, cfg, start, start + n, parallel.resolve_n_jobs(n_jobs))
    else:
        tasks = [(cfg, impl, start + a, start + b, with_windows)
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


def _numba_all(space: SampleSpace, cfg: DrawConfig, start: int, stop: int,
               threads: int) -> tuple[dict, np.ndarray]:
    import numba

    from .nb import gather_scale_par_nb
    from .xp import sample_columns
    draws = Draws(cfg, space.n_keys).take(start, stop)
    tables = space.tables()
    cols = sample_columns(np, tables, draws)
    ohlcv = np.empty((5, stop - start, space.lookback), np.float32)
    prev = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        gather_scale_par_nb(tables["prices"], tables["key_start"], tables["key_scale"],
                            draws["key"], ohlcv)
    finally:
        numba.set_num_threads(prev)
    return cols, ohlcv


# --------------------------------------------------------------------------- to disk
@dataclasses.dataclass
class WriteResult:
    path: Path
    kind: str
    fmt: str
    n: int
    seconds: float
    nbytes: int           # Arrow bytes handed to the writers (samples + windows / rows)
    file_bytes: int
    n_windows: int
    key_counts: np.ndarray
    action_counts: np.ndarray
    equity_hist: np.ndarray
    position_hist: np.ndarray
    equity_mean: float
    position_mean: float
    backend: str
    n_jobs: int
    worker_peak_rss_mb: dict | None = None  # backend dask: each worker process's peak RSS
    client_peak_rss_mb: float | None = None  # this process's peak RSS when the write ended


def _peak_rss_mb() -> float | None:  # runs on a Dask worker
    from ..machine import peak_rss_mb
    return peak_rss_mb()


def write_dataset(path: str | os.PathLike, n: int, space: SampleSpace, cfg: DrawConfig, *,
                  impl: str = "numba", materialize: bool = False, fmt: str = "parquet",
                  chunk_size: int = 1 << 19, n_jobs: int = 1, backend: str = "sequential",
                  scheduler: str | None = "local", progress: bool | None = None,
                  compression: str | None = None) -> WriteResult:
    """Stream n samples to a dataset directory at ``path`` (see :mod:`qbt_lib.synth.store`).

    Chunk c (samples ``[c*chunk_size, (c+1)*chunk_size)``) becomes part file c, written by
    one task of the parallel layer; normalized datasets then get the windows of every
    (symbol, idx) drawn. The directory appears only when complete (temp dir + rename).
    """
    n = as_int("n", n, min=1, max=N_MAX)
    chunk_size = as_int("chunk_size", chunk_size, min=1)
    fmt = one_of("file_format", fmt, FORMATS)
    if impl not in IMPLS[1:]:
        impl = resolve_impl(impl, "auto")[0]
    t0 = time.perf_counter()
    table = "rows" if materialize else "samples"
    chunks = parallel.chunk_bounds(n, chunk_size)
    eff_backend, eff_jobs = parallel.effective_backend(backend, n_jobs, len(chunks))
    K = space.n_keys
    counts = np.zeros(K, np.int64)
    acc = {"actions": 0, "eq_h": 0, "pos_h": 0, "eq": 0.0, "pos": 0.0, "nbytes": 0,
           "file_bytes": 0}
    n_windows = 0
    worker_rss = client = None

    def add(st: PartStats) -> None:
        acc["nbytes"] += st.nbytes
        acc["file_bytes"] += st.file_bytes
        if st.key_counts is not None:
            counts[:] += st.key_counts
            acc["actions"] = acc["actions"] + st.action_counts
            acc["eq_h"] = acc["eq_h"] + st.equity_hist
            acc["pos_h"] = acc["pos_h"] + st.position_hist
            acc["eq"] += st.equity_sum
            acc["pos"] += st.position_sum

    with contextlib.ExitStack() as stack:
        if eff_backend == "dask" and scheduler is not None:
            # one cluster (or connection) for both phases, not one per parallel map
            client = stack.enter_context(parallel.dask_client(scheduler, n_workers=eff_jobs))
            scheduler = None
        # the dataset appears at ``path`` (replacing an old one) only when complete
        tmp = stack.enter_context(paths.atomic_dir(path, replace=True))
        (tmp / table).mkdir()
        # tasks carry no space: it travels once per run (``shared``: on Dask, scattered to
        # every worker in memory, so workers need not see this machine's cache)
        tasks = [PartTask(None, cfg, impl, table, c, a, b, str(tmp / table), fmt, compression)
                 for c, (a, b) in enumerate(chunks)]
        for st in parallel.imap(_write_part_task, tasks, backend=backend, n_jobs=n_jobs,
                                scheduler=scheduler, progress=progress,
                                desc=f"synth {table}", unit="chunk", shared=(space,)):
            add(st)
        if not materialize:
            (tmp / "windows").mkdir()
            used = np.flatnonzero(counts)
            n_windows = len(used)
            wtasks = [PartTask(None, cfg, impl, "windows", c, a, b, str(tmp / "windows"),
                               fmt, compression, keys=used[a:b])
                      for c, (a, b) in enumerate(parallel.chunk_bounds(len(used), chunk_size))]
            for st in parallel.imap(_write_part_task, wtasks, backend=backend, n_jobs=n_jobs,
                                    scheduler=scheduler, progress=progress,
                                    desc="synth windows", unit="chunk", shared=(space,)):
                add(st)
        # a part whose task was recomputed (its worker lost) may have left a temp file
        for stray in tmp.glob("*/*.tmp"):
            stray.unlink(missing_ok=True)
        meta = {
            "dataset": "qbt.synth", "version": 1,
            "kind": "materialized" if materialize else "normalized", "format": fmt,
            "encoding": _encoding(fmt, compression, materialize), "n": n,
            "chunk_size": chunk_size,
            "lookback": space.lookback, "horizon": space.horizon, "seed": cfg.seed,
            "draws": dataclasses.asdict(cfg), "symbols": space.symbols,
            "bars": list(space.bars().values()),
            "key_offsets": [int(v) for v in space.key_offsets], "n_keys": K,
            "n_windows": n_windows if not materialize else None,
            "space_key": space.key, "fields": list(FIELDS), "actions": list(ACTIONS),
            "tables": ["samples", "windows"] if not materialize else ["rows"],
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if client is not None:
            with contextlib.suppress(Exception):
                worker_rss = client.run(_peak_rss_mb)
    return WriteResult(path=Path(path), kind=meta["kind"], fmt=fmt, n=n,
                       seconds=time.perf_counter() - t0, nbytes=acc["nbytes"],
                       file_bytes=acc["file_bytes"],
                       n_windows=n_windows if not materialize else int((counts > 0).sum()),
                       key_counts=counts, action_counts=np.asarray(acc["actions"]),
                       equity_hist=np.asarray(acc["eq_h"]),
                       position_hist=np.asarray(acc["pos_h"]), equity_mean=acc["eq"] / n,
                       position_mean=acc["pos"] / n, backend=eff_backend, n_jobs=eff_jobs,
                       worker_peak_rss_mb=worker_rss, client_peak_rss_mb=_peak_rss_mb())


def _encoding(fmt: str, compression: str | None, materialize: bool) -> dict:
    """The writer settings, recorded in meta.json."""
    from . import store
    if fmt == "ipc":
        return {"compression": compression or store.IPC_COMPRESSION}
    schema = store.rows_schema(1) if materialize else store.samples_schema()
    opts = store.parquet_options(schema, compression)
    return {k: opts[k] for k in ("compression", "compression_level", "use_dictionary",
                                 "use_byte_stream_split")}


def _write_part_task(task: PartTask, space: SampleSpace | None = None) -> PartStats:
    # A module-level indirection, so a test can make one part fail midway.
    if space is not None:
        task = dataclasses.replace(task, space=space)
    return write_part(task)


def open_dataset(path: str | os.PathLike) -> SynthDataset:
    return SynthDataset(paths.resolve_input_path(path))


def dataset_digest(path: str | os.PathLike, columns: Sequence[str] | None = None,
                   limit: int | None = None) -> str:
    """A SHA-256 of a dataset's contents (table values in row order, not the file bytes),
    so datasets written with different chunk sizes compare equal when their samples do.

    ``columns`` restricts it to some columns of the samples/rows table, e.g. the ones that
    are exact on every machine (symbol, idx, date, equity, position, action: integers and
    the draws' IEEE arithmetic; windows and labels go through ``exp``/``log`` of the market,
    whose last bit may differ between CPU instruction sets).

    ``limit``: the first ``limit`` samples only (samples/rows table), so a prefix of a big
    run can be compared with a smaller run of the same seed (the draws do not depend on n)."""
    ds = open_dataset(path)
    h = hashlib.sha256()
    head = [ds.kind, ds.n, ds.lookback, ds.symbols]
    if limit is not None:
        limit = as_int("limit", limit, min=1)
        if limit > ds.n:
            raise ValueError(f"limit={limit} but the dataset has {ds.n} samples")
        head = [ds.kind, limit, ds.lookback, ds.symbols]
    h.update(json.dumps(head).encode())
    tables = ["samples", "windows"] if ds.kind == "normalized" else ["rows"]
    if columns is not None or limit is not None:
        tables = tables[:1]

    def batches(t):
        left = limit
        for rb in ds.batches(t):
            if left is not None:
                if left <= 0:
                    return
                rb = rb.slice(0, left)
                left -= rb.num_rows
            yield rb

    for t in tables:
        cols: dict[str, Any] = {}  # one hash per column, fed in row order across batches
        for rb in batches(t):
            for name in rb.schema.names:
                if columns is not None and name not in columns:
                    continue
                col = rb.column(name)
                hc = cols.setdefault(name, hashlib.sha256())
                if name == "symbol":
                    syms = np.asarray(col.dictionary.to_pylist(), dtype=object)
                    hc.update("".join(s + "\0" for s in
                                      syms[col.indices.to_numpy()].tolist()).encode())
                elif name in FIELDS:
                    hc.update(col.flatten().to_numpy().tobytes())
                else:
                    hc.update(col.to_numpy(zero_copy_only=False).tobytes())
        for name, hc in cols.items():
            h.update(f"{t}.{name}:{hc.hexdigest()}".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- the notebook's run
@dataclasses.dataclass
class RunResult:
    params: dict
    impl: str
    device: str
    space: SampleSpace
    cfg: DrawConfig
    write: WriteResult
    market_seconds: float
    warm_up_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return self.write.seconds

    @property
    def samples_per_s(self) -> float:
        return self.write.n / self.write.seconds

    @property
    def path(self) -> Path:
        return self.write.path

    def dataset(self) -> SynthDataset:
        return SynthDataset(self.write.path)

    def summary(self) -> pd.DataFrame:
        """Deterministic summary statistics (exact counts; means rounded)."""
        w, sp = self.write, self.space
        counts = w.key_counts
        labels = np.asarray(sp.key_label)
        lab_mean = float(counts @ labels) / w.n
        lab_std = float(np.sqrt(max(0.0, float(counts @ (labels - lab_mean) ** 2) / w.n)))
        per_sym = np.bincount(np.asarray(sp.key_symbol), weights=counts,
                              minlength=len(sp.symbols))
        rows = [
            ("samples", f"{w.n:,}"),
            ("symbols", f"{len(sp.symbols)}"),
            ("bars (all symbols)", f"{sp.n_bars_total:,}"),
            ("valid (symbol, idx) pairs", f"{sp.n_keys:,}"),
            ("distinct windows drawn", f"{w.n_windows:,}"),
            ("samples per window", f"{w.n / max(1, w.n_windows):,.1f}"),
            ("samples per symbol (min .. max)",
             f"{int(per_sym.min()):,} .. {int(per_sym.max()):,}"),
            *[(f"action {a}", f"{int(c):,} ({c / w.n:.2%})")
              for a, c in zip(ACTIONS, w.action_counts)],
            ("equity mean", f"{w.equity_mean:,.0f}"),
            ("position mean", f"{w.position_mean:+.3f}"),
            ("forward_return mean", f"{lab_mean:+.2e}"),
            ("forward_return std", f"{lab_std:.3e}"),
        ]
        return pd.DataFrame(rows, columns=["statistic", "value"]).set_index("statistic")

    def label_histogram(self, bins: int = 60) -> tuple[np.ndarray, np.ndarray]:
        """Histogram of forward_return over all samples, exact (per-key counts x labels)."""
        c = self.write.key_counts
        lab = np.asarray(self.space.key_label)
        used = c > 0
        return np.histogram(lab[used], bins=bins, weights=c[used])

    def metrics(self) -> dict:
        w = self.write
        return {"wall_seconds": w.seconds, "samples_per_s": self.samples_per_s,
                "impl": self.impl, "n_jobs": w.n_jobs, "backend": w.backend,
                "device": self.device, "kind": w.kind, "format": w.fmt,
                "n_windows": w.n_windows, "arrow_bytes": w.nbytes, "file_bytes": w.file_bytes,
                "market_seconds": self.market_seconds,
                "warm_up_seconds": self.warm_up_seconds,
                "client_peak_rss_mb": w.client_peak_rss_mb,
                **({"worker_peak_rss_mb": w.worker_peak_rss_mb} if w.backend == "dask" else {})}


def run(progress: bool | None = None, scheduler: str | None = "local", n_bars: int = N_BARS,
        **params: Any) -> RunResult:
    """The notebook's entry: validate, build the market's sample space, write the dataset
    (normalized or materialized) to ``output_dir/dataset``."""
    p = check_params(**params)
    scheduler = parallel.check_scheduler(scheduler)
    impl, device = resolve_impl(p["impl"], p["device"])
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
                      scheduler=scheduler, progress=progress)
    return RunResult(params=p, impl=impl, device=device, space=space, cfg=cfg, write=w,
                     market_seconds=t_market, warm_up_seconds=t_warm)


def warm_up(impl: str, space: SampleSpace, cfg: DrawConfig, backend: str = "sequential",
            n_jobs: int = 1, root: str | os.PathLike | None = None,
            scheduler: str | None = "local") -> None:
    """Load (or compile) every kernel a run uses and start the worker pool on a few
    samples, so the timed run measures the steady state; the one-off cost is reported on
    its own. On an existing Dask cluster (an address or scheduler file) the workers load
    their kernels too; a LocalCluster (``"local"``) is started by the run itself."""
    import tempfile

    from .nb import gather_rows_par_nb
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


def time_reference(space: SampleSpace, cfg: DrawConfig, n: int, impl: str = "reference",
                   materialize: bool = True) -> float:
    """Seconds ``impl`` takes to build samples 0..n-1 in memory (draws included)."""
    t = time.perf_counter()
    build_samples(impl, space, Draws(cfg, space.n_keys).take(0, n), materialize)
    return time.perf_counter() - t


def before_after(result: RunResult, reference_n: int = 2000, fast_n: int = 200_000
                 ) -> pd.DataFrame:
    """Before/after, timed in this run on this machine: the reference (per-sample loop,
    windows materialized in memory) on a subsample; the run's implementation on a larger
    subsample in memory on one core and on ``n_jobs`` cores; and the run itself (all n
    samples, to disk). Speed-ups are per sample, each against the reference building the same
    layout (column ``against``): the in-memory rows build windows (materialized), like the
    reference's first row; a normalized run is compared with the reference building the
    normalized columns only (no windows), timed too."""
    from ..device import gpu_name
    w = result.write
    m = max(1, min(reference_n, w.n))
    t_ref = time_reference(result.space, result.cfg, m)
    mat_ref = "reference: per-sample Python loop, in memory"
    rows = [{"path": mat_ref, "impl": "reference", "n_jobs": 1, "samples": m,
             "seconds": t_ref, "against": mat_ref}]
    run_ref = mat_ref
    if w.kind != "materialized":
        run_ref = "reference: per-sample Python loop, normalized (no windows)"
        rows.append({"path": run_ref, "impl": "reference", "n_jobs": 1, "samples": m,
                     "seconds": time_reference(result.space, result.cfg, m,
                                               materialize=False), "against": run_ref})
    fast = max(1, min(fast_n, w.n))
    if result.impl != "reference":
        jobs = parallel.resolve_n_jobs(result.params["n_jobs"])
        for j in sorted({1, jobs}):
            generate(fast, result.space, cfg=result.cfg, impl=result.impl, n_jobs=j,
                     backend="threads", device=result.device)  # warm (JIT, caches)
            t = time.perf_counter()
            generate(fast, result.space, cfg=result.cfg, impl=result.impl, n_jobs=j,
                     backend="threads", device=result.device)
            rows.append({"path": f"{result.impl}: in memory, n_jobs={j}", "impl": result.impl,
                         "n_jobs": j, "samples": fast, "seconds": time.perf_counter() - t,
                         "against": mat_ref})
    rows.append({"path": f"this run: {w.kind} dataset to {w.fmt}", "impl": result.impl,
                 "n_jobs": w.n_jobs, "samples": w.n, "seconds": result.seconds,
                 "against": run_ref})
    df = pd.DataFrame(rows).set_index("path")
    df["samples_per_s"] = df["samples"] / df["seconds"]
    df["speedup"] = df["samples_per_s"] / df["against"].map(df["samples_per_s"])
    df.attrs["gpu"] = gpu_name()
    return df


def headline(result: RunResult, before_after_table: pd.DataFrame) -> dict:
    """The report's summary strings (+ numeric wall_seconds) for metrics.json."""
    ba = before_after_table
    eff = "n/a"
    mem = ba[ba.index.str.contains("in memory, n_jobs")]
    if len(mem) == 2 and mem["n_jobs"].iloc[1] > 1:
        jobs = int(mem["n_jobs"].iloc[1])
        speedup = mem["samples_per_s"].iloc[1] / mem["samples_per_s"].iloc[0]
        eff = f"{speedup / jobs:.0%} ({jobs} cores, in memory)"
    one = ba[ba.index.str.contains("in memory, n_jobs=1")]
    in_memory = one["speedup"].iloc[0] if len(one) else math.nan
    w = result.write
    return {"throughput": f"{result.samples_per_s / 1e6:.2f}M samples/s ({w.kind}, {w.fmt}, "
                          f"n={w.n:,})",
            "speedup_vs_reference": f"{ba['speedup'].iloc[-1]:.0f}x end to end ({w.kind} on "
                                    f"both sides), {in_memory:.0f}x in memory (materialized, "
                                    "one core both sides)",
            "parallel_efficiency": eff,
            "gpu": (f"{result.impl} on {ba.attrs.get('gpu')}" if result.device == "gpu"
                    else "none (CPU run)"),
            "wall_seconds": result.seconds}
