"""Array-module generic (NumPy or CuPy) versions of the synth kernels.

The very same code is the ``numpy`` implementation (``xp=numpy``) and the CuPy fallback
(``xp=cupy``), so the GPU logic runs in the CPU test suite. Only bitwise-reproducible
operations are used: gathers, one float64 multiply per value, one cast to float32.
"""
from __future__ import annotations

from typing import Any

SAMPLE_COLUMNS = ("symbol", "idx", "date", "equity", "position", "action", "forward_return")
# Rows per sub-batch of the generic gather: bounds the (rows, lookback) int64/float64
# temporaries to a few MB whatever the number of samples.
GATHER_ROWS = 8192


def sample_columns(xp: Any, tables: dict, draws: dict) -> dict:
    """The samples table columns of the drawn keys (a gather from the per-key tables)."""
    key = draws["key"]
    cols = {"symbol": xp.take(tables["key_symbol"], key),
            "idx": xp.take(tables["key_idx"], key),
            "date": xp.take(tables["key_date"], key)}
    for name in ("equity", "position", "action"):  # absent when building the windows table
        if name in draws:
            cols[name] = draws[name]
    cols["forward_return"] = xp.take(tables["key_label"], key)
    return cols


def gather_scale(xp: Any, prices: Any, key_start: Any, key_scale: Any, key: Any, out: Any,
                 rows: int = GATHER_ROWS) -> Any:
    """The scaled OHLCV windows of ``key`` into ``out`` (5, m, lookback) float32, the
    arithmetic of ``nb.gather_scale_nb`` in sub-batches of ``rows`` samples."""
    m = int(key.shape[0])
    lookback = int(out.shape[2])
    offs = xp.arange(lookback, dtype=xp.int64)
    for a in range(0, m, rows):
        b = min(m, a + rows)
        k = key[a:b]
        pos = xp.take(key_start, k)[:, None] + offs[None, :]
        sc = xp.take(key_scale, k, axis=1)          # (2, rows): 1/last close, 1/mean volume
        for f in range(5):
            g = xp.take(prices[f], pos)             # (rows, lookback) float64
            g *= sc[0 if f < 4 else 1][:, None]
            out[f, a:b] = g                         # cast to float32 on assignment
    return out


def gather_rows(xp: Any, windows: Any, rows: Any, out: Any) -> Any:
    """The loader's gather of whole pre-scaled windows: (5, m, L) from a field-major
    (5, W, L) table (the layout kept in device memory: one coalesced take)."""
    xp.take(windows, rows, axis=1, out=out)
    return out
