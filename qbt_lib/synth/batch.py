"""A batch of materialized samples, and the Arrow -> array conversions of one.

Below both readers: :class:`qbt_lib.synth.store.BatchLoader` (CPU) and
:class:`qbt_lib.synth.gpu.DeviceLoader` (GPU) build :class:`Batch` objects from Arrow
record batches with these helpers, so neither imports the other's module for them.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa

from .xp import SAMPLE_COLUMNS


@dataclasses.dataclass
class Batch:
    """One batch of materialized samples: columns (``symbol`` as codes into ``symbols``,
    ``date`` as int64 ns) and ``ohlcv`` (5, m, lookback) float32 (NumPy or CuPy arrays)."""
    columns: dict
    ohlcv: Any
    symbols: list[str]

    def __len__(self) -> int:
        return int(self.ohlcv.shape[1])


def list_values(col: pa.Array | pa.ChunkedArray, lookback: int) -> np.ndarray:
    """A FixedSizeList<float32> column as an (m, lookback) array (no copy when possible)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, lookback)


def batch_columns(rb: pa.RecordBatch | pa.Table, symbols: list[str]) -> dict:
    """Samples columns of an Arrow batch as NumPy arrays (symbol as codes into ``symbols``)."""
    out = {}
    for name in SAMPLE_COLUMNS:
        col = rb.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if name == "symbol":
            pos = {s: i for i, s in enumerate(symbols)}
            dict_codes = np.array([pos[s] for s in col.dictionary.to_pylist()], dtype=np.int32)
            out[name] = dict_codes[col.indices.to_numpy(zero_copy_only=False)] \
                if len(dict_codes) else np.zeros(len(col), np.int32)
        elif name == "date":
            out[name] = col.to_numpy(zero_copy_only=False).view(np.int64)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out
