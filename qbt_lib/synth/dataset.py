"""synth datasets on disk: :func:`write_dataset` streams samples into a dataset directory,
:func:`open_dataset` opens one for reading, :func:`dataset_digest` hashes its contents.

The layout and the part writer are :mod:`qbt_lib.synth.store`'s; this module runs the parts
over the parallel layer (one task per chunk of samples, then the windows of the keys drawn),
adds up their statistics and writes ``meta.json``. The directory appears only when complete.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import parallel, paths
from ..machine import peak_rss_mb
from ..params import as_int, one_of
from . import store
from .engines import ENGINES, resolve_impl
from .labels import DEFAULT as DEFAULT_LABEL
from .labels import LabelSpec
from .params import FORMATS, N_MAX
from .space import ACTIONS, FIELDS, DrawConfig, SampleSpace
from .store import PartStats, PartTask, SynthDataset, write_part


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


def write_dataset(path: str | os.PathLike, n: int, space: SampleSpace, cfg: DrawConfig, *,
                  impl: str = "numba", materialize: bool = False, fmt: str = "parquet",
                  chunk_size: int = 1 << 19, n_jobs: int = 1, backend: str = "sequential",
                  scheduler: str | None = "local", progress: bool | None = None,
                  compression: str | None = None, label: LabelSpec = DEFAULT_LABEL
                  ) -> WriteResult:
    """Stream n samples to a dataset directory at ``path`` (see :mod:`qbt_lib.synth.store`).

    Chunk c (samples ``[c*chunk_size, (c+1)*chunk_size)``) becomes part file c, written by
    one task of the parallel layer; normalized datasets then get the windows of every
    (symbol, idx) drawn. The directory appears only when complete (temp dir + rename).
    ``label``: a class label (:mod:`.labels`) adds an int8 ``label`` column to the samples.
    """
    n = as_int("n", n, min=1, max=N_MAX)
    chunk_size = as_int("chunk_size", chunk_size, min=1)
    fmt = one_of("file_format", fmt, FORMATS)
    if impl not in ENGINES:
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
        tasks = [PartTask(None, cfg, impl, table, c, a, b, str(tmp / table), fmt, compression,
                          label=label)
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
        if label.has_column:  # (absent for the default: today's meta.json, byte for byte)
            meta["label"] = label.as_dict()
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if client is not None:
            with contextlib.suppress(Exception):
                worker_rss = client.run(peak_rss_mb)   # on each worker
    return WriteResult(path=Path(path), kind=meta["kind"], fmt=fmt, n=n,
                       seconds=time.perf_counter() - t0, nbytes=acc["nbytes"],
                       file_bytes=acc["file_bytes"],
                       n_windows=n_windows if not materialize else int((counts > 0).sum()),
                       key_counts=counts, action_counts=np.asarray(acc["actions"]),
                       equity_hist=np.asarray(acc["eq_h"]),
                       position_hist=np.asarray(acc["pos_h"]), equity_mean=acc["eq"] / n,
                       position_mean=acc["pos"] / n, backend=eff_backend, n_jobs=eff_jobs,
                       worker_peak_rss_mb=worker_rss, client_peak_rss_mb=peak_rss_mb())


def _encoding(fmt: str, compression: str | None, materialize: bool) -> dict:
    """The writer settings, recorded in meta.json."""
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
