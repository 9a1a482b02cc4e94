"""Datasets on disk: the normalized store, materialized rows, and the batch loader.

Layout of a dataset directory (written under a temp name, renamed when complete)::

    meta.json                  what it holds (kind, n, lookback, symbols, key offsets, schema)
    samples/part-00000.parquet normalized: one row per sample, ~41 B (symbol, idx, date,
                               equity, position, action, forward_return)
    windows/part-00000.parquet normalized: one scaled window per distinct (symbol, idx) used
    rows/part-00000.parquet    materialized: samples columns + open/high/low/close/volume as
                               FixedSizeList<float32>[lookback]

(``.arrow`` instead of ``.parquet`` for the Arrow IPC file format.) Part c holds chunk c of
the samples; each part is written by one task in sub-batches (one row group / record batch
each) whose next sub-batch is generated in a helper thread while the current one is encoded,
so memory is bounded by the sub-batch size whatever n and chunk_size are.
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..device import resolve_device
from ..params import as_bool, as_int
from . import gpu
from .batch import Batch, batch_columns, list_values
from .engines import build_samples
from .labels import DEFAULT as DEFAULT_LABEL
from .labels import LabelSpec
from .nb import gather_rows_par_nb, tally_nb
from .space import BLOCK, FIELDS, N_ACTIONS, Draws, DrawConfig, SampleSpace

SUFFIX = {"parquet": ".parquet", "ipc": ".arrow"}
DATASET_VERSION = 1

# Sub-batch sizes: a sub-batch is generated, converted to Arrow without copies and written as
# one row group (Parquet) or record batch (IPC). Materialized rows / windows aim at ~16 MiB a
# sub-batch (16384 rows at lookback 64): big enough for the encoder, small enough that two in
# flight per worker stay far below the memory budget. Samples rows are ~41 B: 2**18 of them.
ROW_BATCH_BYTES = 16 << 20
SAMPLE_BATCH_ROWS = 1 << 18

# Encoder settings, measured on this workload (bench.py's encoding study): the Parquet
# encoder's cost is dominated by the list levels (~0.35 GB/s/core for materialized rows with
# or without compression), so fewer bytes win: BYTE_STREAM_SPLIT puts the float32 windows'
# near-constant exponent bytes together and ZSTD level 1 then cuts the rows ~30% (1332 ->
# ~940 B at lookback 64) at the same speed; LZ4 gains ~25%, snappy ~25%, none 0%. The
# samples table's per-bar columns (symbol, idx, date, label; action) are dictionary-encoded
# (a few bits each: ~22 B a row on disk instead of 41). Arrow IPC stays uncompressed: its
# point is a memory-mappable, zero-copy file written at disk speed (~5 GB/s/core to encode);
# IPC has no byte-stream split, and ZSTD would cost 8x the encode time for 17%.
PARQUET_COMPRESSION = "zstd"
PARQUET_COMPRESSION_LEVEL = 1
IPC_COMPRESSION = None


# --------------------------------------------------------------------------- schemas
def _symbol_type() -> pa.DataType:
    return pa.dictionary(pa.int32(), pa.string())


def samples_schema(label: bool = False) -> pa.Schema:
    """The samples columns; ``label=True`` adds the int8 class ``label`` (:mod:`.labels`)."""
    return pa.schema([("symbol", _symbol_type()), ("idx", pa.int32()),
                      ("date", pa.timestamp("ns")), ("equity", pa.float64()),
                      ("position", pa.float64()), ("action", pa.int8()),
                      ("forward_return", pa.float64()),
                      *([("label", pa.int8())] if label else [])])


def rows_schema(lookback: int, label: bool = False) -> pa.Schema:
    return pa.schema([*samples_schema(label),
                      *[(f, pa.list_(pa.float32(), lookback)) for f in FIELDS]])


def windows_schema(lookback: int) -> pa.Schema:
    return pa.schema([("key", pa.int64()), ("symbol", _symbol_type()), ("idx", pa.int32()),
                      ("date", pa.timestamp("ns")),
                      *[(f, pa.list_(pa.float32(), lookback)) for f in FIELDS]])


def to_record_batch(cols: dict, ohlcv: np.ndarray | None, symbols: pa.Array,
                    schema: pa.Schema) -> pa.RecordBatch:
    """Columns + (5, m, L) windows as an Arrow batch, without copying the arrays."""
    arrays = []
    for field in schema:
        name = field.name
        if name == "symbol":
            arrays.append(pa.DictionaryArray.from_arrays(
                pa.array(np.asarray(cols["symbol"], np.int32)), symbols))
        elif name == "date":
            arrays.append(pa.array(np.asarray(cols["date"]).view("datetime64[ns]")))
        elif name in FIELDS:
            f = FIELDS.index(name)
            arrays.append(pa.FixedSizeListArray.from_arrays(
                pa.array(ohlcv[f].reshape(-1)), ohlcv.shape[2]))
        else:
            arrays.append(pa.array(np.asarray(cols[name]), type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# --------------------------------------------------------------------------- writers
def parquet_options(schema: pa.Schema, compression: str | None = None) -> dict:
    """ParquetWriter settings: dictionary for the per-bar columns, BYTE_STREAM_SPLIT for
    every other float (equity, position, the window lists), no min/max statistics on the
    window lists (noise, and they cost encode time)."""
    comp = PARQUET_COMPRESSION if compression is None else compression
    names = schema.names
    dict_cols = [c for c in ("symbol", "idx", "date", "action", "forward_return", "label",
                             "key")
                 if c in names]
    lists = [c for c in FIELDS if c in names]
    return {"compression": comp or "none",
            "compression_level": PARQUET_COMPRESSION_LEVEL if comp == "zstd" else None,
            "use_dictionary": dict_cols, "use_byte_stream_split": True,
            "write_statistics": [c for c in names if c not in lists]}


class PartWriter:
    """One part file, Parquet or Arrow IPC, written batch by batch."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: str,
                 compression: str | None = None):
        self.fmt = fmt
        if fmt == "parquet":
            self._w = pq.ParquetWriter(str(path), schema,
                                       **parquet_options(schema, compression))
        else:
            comp = IPC_COMPRESSION if compression is None else compression
            self._sink = pa.OSFile(str(path), "wb")
            self._w = ipc.new_file(self._sink, schema,
                                   options=ipc.IpcWriteOptions(compression=comp or None))

    def write(self, batch: pa.RecordBatch) -> None:
        self._w.write_batch(batch)

    def close(self) -> None:
        self._w.close()
        if self.fmt == "ipc":
            self._sink.close()


@dataclasses.dataclass
class PartTask:
    """Write part ``part`` of table ``table`` ("samples", "rows" or "windows") into ``dir``.

    samples/rows: the samples ``[start, stop)``; windows: the given ``keys``."""
    space: SampleSpace
    cfg: DrawConfig
    impl: str
    table: str
    part: int
    start: int
    stop: int
    dir: str
    fmt: str
    compression: str | None = None
    keys: np.ndarray | None = None
    label: LabelSpec = DEFAULT_LABEL


@dataclasses.dataclass
class PartStats:
    """What a part task reports back (small): exact per-key counts and histograms, so the
    run's summary statistics need no second pass over the data."""
    rows: int
    nbytes: int                       # bytes of the Arrow data handed to the writer
    file_bytes: int
    key_counts: np.ndarray | None     # (K,) int64: samples per key
    action_counts: np.ndarray | None  # (3,)
    equity_hist: np.ndarray | None    # (HIST_BINS,) over [equity_min, equity_max]
    position_hist: np.ndarray | None
    equity_sum: float = 0.0
    position_sum: float = 0.0


HIST_BINS = 50


class _BufferPool:
    """Window buffers kept between part tasks of this process, so a run of many parts (and
    a benchmark's repeats) fills memory already mapped instead of faulting in ~40 MB of
    fresh pages per part. Holds at most ``keep`` buffers."""

    def __init__(self, keep: int = 8):
        self.keep = keep
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, shape: tuple) -> np.ndarray:
        with self._lock:
            for i, b in enumerate(self._free):
                if b.shape == shape:
                    return self._free.pop(i)
        return np.empty(shape, np.float32)

    def give(self, buf: np.ndarray) -> None:
        with self._lock:
            self._free.append(buf)
            del self._free[:-self.keep]


_BUFFERS = _BufferPool()


def rows_per_batch(table: str, lookback: int) -> int:
    if table == "samples":
        return SAMPLE_BATCH_ROWS
    row_bytes = 5 * 4 * lookback + 48
    r = 1 << int(np.log2(max(1, ROW_BATCH_BYTES // row_bytes)))
    return int(min(BLOCK, max(256, r)))


def write_part(task: PartTask) -> PartStats:
    """Generate and write one part (see :class:`PartTask`) with implementation ``task.impl``."""
    space, cfg = task.space, task.cfg
    lookback, K = space.lookback, space.n_keys
    symbols = pa.array(space.symbols, pa.string())
    with_label = task.label.has_column
    schema = {"samples": samples_schema(with_label), "rows": rows_schema(lookback, with_label),
              "windows": windows_schema(lookback)}[task.table]
    step = rows_per_batch(task.table, lookback)
    ranges = [(a, min(a + step, task.stop)) for a in range(task.start, task.stop, step)]
    draws = Draws(cfg, K)
    sampled = task.table != "windows"
    counts = np.zeros(K, np.int64) if sampled else None
    actions = np.zeros(N_ACTIONS, np.int64) if sampled else None
    eq_h = np.zeros(HIST_BINS, np.int64) if sampled else None
    pos_h = np.zeros(HIST_BINS, np.int64) if sampled else None
    eq_sum = pos_sum = 0.0
    nbytes = 0

    # Two window buffers, alternating: sub-batch i+1 is built into one while sub-batch i,
    # in the other, is being written (write() is synchronous, so i-1's buffer is free).
    buffers = ([_BUFFERS.take((5, step, lookback)) for _ in range(2)]
               if task.table != "samples" else [None, None])

    def make(i: int) -> tuple[dict, pa.RecordBatch]:
        a, b = ranges[i]
        if sampled:
            d = draws.take(a, b)
            cols, ohlcv = build_samples(task.impl, space, d, task.table == "rows",
                                        out=buffers[i % 2], label=task.label)
            cols["_key"] = d["key"]
        else:
            keys = task.keys[a - task.start:b - task.start]
            cols, ohlcv = build_samples(task.impl, space, {"key": keys}, True,
                                        out=buffers[i % 2])
            cols["key"] = keys
        return cols, to_record_batch(cols, ohlcv, symbols, schema)

    # Written under a temp name and renamed to its fixed name when complete: a task run
    # twice (its worker lost mid-run, the scheduler recomputing it) writes the same bytes
    # and never leaves a torn part behind.
    path = Path(task.dir) / f"part-{task.part:05d}{SUFFIX[task.fmt]}"
    tmp_path = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    writer = PartWriter(tmp_path, schema, task.fmt, task.compression)
    ok = False
    try:
        with ThreadPoolExecutor(1) as ex:  # build sub-batch i+1 while sub-batch i is encoded
            fut = ex.submit(make, 0) if ranges else None
            for i in range(len(ranges)):
                cols, batch = fut.result()
                if i + 1 < len(ranges):
                    fut = ex.submit(make, i + 1)
                writer.write(batch)
                nbytes += batch.nbytes
                if sampled:
                    es, ps = tally_nb(cols["_key"], cols["action"], cols["equity"],
                                      cols["position"], cfg.equity_min, cfg.equity_max,
                                      cfg.position_min, cfg.position_max, counts, actions,
                                      eq_h, pos_h)
                    eq_sum += es
                    pos_sum += ps
                del cols, batch
        ok = True
    finally:
        writer.close()
        for buf in buffers:
            if buf is not None:
                _BUFFERS.give(buf)
        if ok:
            os.replace(tmp_path, path)
        else:
            tmp_path.unlink(missing_ok=True)
    return PartStats(rows=task.stop - task.start, nbytes=nbytes,
                     file_bytes=path.stat().st_size, key_counts=counts,
                     action_counts=actions, equity_hist=eq_h, position_hist=pos_h,
                     equity_sum=eq_sum, position_sum=pos_sum)


# --------------------------------------------------------------------------- reading
def _read_part(path: Path, fmt: str) -> Iterator[pa.RecordBatch]:
    if fmt == "parquet":
        f = pq.ParquetFile(str(path))
        for i in range(f.num_row_groups):
            yield from f.read_row_group(i).to_batches()
    else:
        with pa.memory_map(str(path)) as src:
            r = ipc.open_file(src)
            for i in range(r.num_record_batches):
                yield r.get_batch(i)


class SynthDataset:
    """A synth dataset directory (normalized or materialized), opened for reading."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        mf = self.path / "meta.json"
        if not mf.exists():
            raise FileNotFoundError(f"no synth dataset at {self.path} (missing meta.json)")
        self.meta = json.loads(mf.read_text())
        self.kind: str = self.meta["kind"]
        self.fmt: str = self.meta["format"]
        self.n: int = int(self.meta["n"])
        self.lookback: int = int(self.meta["lookback"])
        self.symbols: list[str] = list(self.meta["symbols"])
        self.key_offsets = np.asarray(self.meta["key_offsets"], np.int64)
        #: the label the samples carry (``meta["label"]``; absent: forward_return only)
        self.label: dict = dict(self.meta.get("label", {"kind": "forward_return"}))
        self.has_label = self.label["kind"] != "forward_return"
        self._windows: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        return (f"SynthDataset({self.kind}, n={self.n:,}, lookback={self.lookback}, "
                f"{len(self.symbols)} symbols, {self.fmt})")

    def parts(self, table: str) -> list[Path]:
        return sorted((self.path / table).glob(f"part-*{SUFFIX[self.fmt]}"))

    def batches(self, table: str | None = None) -> Iterator[pa.RecordBatch]:
        """The record batches of the samples (normalized) or rows (materialized) table."""
        table = table or ("samples" if self.kind == "normalized" else "rows")
        for p in self.parts(table):
            yield from _read_part(p, self.fmt)

    def read_table(self, table: str | None = None) -> pa.Table:
        table = table or ("samples" if self.kind == "normalized" else "rows")
        bs = list(self.batches(table))
        schema = (samples_schema(self.has_label) if table == "samples" else
                  rows_schema(self.lookback, self.has_label) if table == "rows"
                  else windows_schema(self.lookback))
        return pa.Table.from_batches(bs, schema=schema) if bs else schema.empty_table()

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalized datasets: (keys (W,), windows (W, 5, lookback) float32), loaded once.

        One row per window, its 5 fields contiguous (1.3 kB at lookback 64): the loader's
        random-row gather then reads one contiguous run per sample, which the hardware
        prefetcher streams (~1.5x faster than 5 runs from a field-major table)."""
        if self.kind != "normalized":
            raise ValueError("only a normalized dataset has a windows table")
        if self._windows is None:
            t = self.read_table("windows")
            keys = t.column("key").to_numpy()
            w = np.empty((len(keys), 5, self.lookback), np.float32)
            for f, name in enumerate(FIELDS):
                w[:, f] = list_values(t.column(name), self.lookback)
            self._windows = (keys, w)
        return self._windows

    def window_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalized datasets: (windows (W, 5, lookback), row_of_key): the row of each
        key's window in the windows table (-1 for a key without one), so a sample's window
        is ``windows[row_of_key[key]]`` (every loader gathers batches this way)."""
        keys, windows = self.windows()
        row_of_key = np.full(int(self.key_offsets[-1]), -1, np.int64)
        row_of_key[keys] = np.arange(len(keys))
        return windows, row_of_key

    def loader(self, batch_size: int = 65536, device: str = "cpu", drop_last: bool = False,
               reuse_buffers: bool = False) -> "BatchLoader":
        return BatchLoader(self, batch_size=batch_size, device=device, drop_last=drop_last,
                           reuse_buffers=reuse_buffers)


class BatchLoader:
    """Iterate a dataset in batches of ``batch_size`` materialized samples.

    Normalized datasets gather each batch's windows from the windows table (loaded once; on
    the GPU uploaded once into device memory) by the samples' (symbol, idx); materialized
    datasets read the rows as stored. The samples were drawn i.i.d., so file order is already
    a random order. ``device="gpu"`` returns CuPy arrays in device memory, copied through
    pinned host buffers (never a pageable device copy).

    ``reuse_buffers=True`` (CPU) fills two preallocated window buffers in turn instead of a
    fresh array per batch: a batch's ``ohlcv`` is then overwritten two batches later, and
    the loader skips the page faults of fresh memory (~2x faster at 84 MB a batch)."""

    def __init__(self, dataset: SynthDataset, batch_size: int = 65536, device: str = "cpu",
                 drop_last: bool = False, reuse_buffers: bool = False):
        self.ds = dataset
        self.batch_size = as_int("batch_size", batch_size, min=1)
        self.device = resolve_device(device)
        self.drop_last = as_bool("drop_last", drop_last)
        self.reuse_buffers = as_bool("reuse_buffers", reuse_buffers)
        self._gpu = None
        if self.device == "gpu":
            self._gpu = gpu.DeviceLoader(dataset)

    def __len__(self) -> int:
        full, rest = divmod(self.ds.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _arrow_batches(self) -> Iterator[pa.RecordBatch]:
        """Record batches of exactly batch_size rows (the last may be short)."""
        buf: list[pa.RecordBatch] = []
        have = 0
        for b in self.ds.batches():
            while b.num_rows:
                take = min(b.num_rows, self.batch_size - have)
                buf.append(b.slice(0, take))
                have += take
                b = b.slice(take)
                if have == self.batch_size:
                    yield pa.Table.from_batches(buf).combine_chunks().to_batches()[0]
                    buf, have = [], 0
        if have and not self.drop_last:
            yield pa.Table.from_batches(buf).combine_chunks().to_batches()[0]

    def __iter__(self) -> Iterator[Batch]:
        ds = self.ds
        row_of_key = windows = None
        if ds.kind == "normalized" and self._gpu is None:
            windows, row_of_key = ds.window_rows()
        shape = (5, self.batch_size, ds.lookback)
        ring = ([np.empty(shape, np.float32) for _ in range(2)]
                if self.reuse_buffers and self._gpu is None else None)
        for i, rb in enumerate(self._arrow_batches()):
            cols = batch_columns(rb, ds.symbols)
            m = rb.num_rows
            if self._gpu is not None:
                yield self._gpu.batch(rb, cols)
                continue
            ohlcv = (ring[i % 2] if ring is not None and m == self.batch_size
                     else np.empty((5, m, ds.lookback), np.float32))
            if ds.kind == "normalized":
                k = ds.key_offsets[cols["symbol"]] + cols["idx"].astype(np.int64) - ds.lookback
                gather_rows_par_nb(windows, row_of_key[k], ohlcv)
            else:
                for f, name in enumerate(FIELDS):
                    ohlcv[f] = list_values(rb.column(name), ds.lookback)
            yield Batch(cols, ohlcv, ds.symbols)
