"""The bars a scan searches: loaded through ``qbt_lib.data`` (the only place prices are
loaded), kept as a (high, low) price store every worker memory-maps, checked row by row, and
oriented for the search (as is for ``up``, the reflected chart for ``down``)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from .. import data as _data
from .params import CONSTRAINTS


def check_prices(low: Any, high: Any, name: str = "data",
                 dates: pd.Index | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` as float64 arrays, or ``ValueError`` naming the symbol and first bad
    row: NaN/inf, a non-positive price, or ``high < low``."""
    lo = np.array(low, dtype=np.float64)     # own writeable copies for the kernels
    hi = np.array(high, dtype=np.float64)
    if lo.ndim != 1 or lo.shape != hi.shape:
        raise ValueError(f"{name}: low and high must be 1-D arrays of the same length, "
                         f"got shapes {lo.shape} and {hi.shape}")
    if lo.size == 0:
        raise ValueError(f"{name}: no bars")
    rules = [("NaN or inf price", ~(np.isfinite(lo) & np.isfinite(hi))),
             ("non-positive price", (lo <= 0) | (hi <= 0)),
             ("high < low", hi < lo)]
    first = None
    for rule, mask in rules:
        hits = np.flatnonzero(mask)
        if hits.size and (first is None or hits[0] < first[0]):
            first = (int(hits[0]), rule)
    if first is not None:
        i, rule = first
        when = f" ({dates[i]:%Y-%m-%d})" if dates is not None else ""
        raise ValueError(f"{name}: row {i}{when}: {rule} [low={lo[i]!r}, high={hi[i]!r}]")
    return lo, hi


def oriented(lo: np.ndarray, hi: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """The series the search runs on: as is for ``up``, the reflected chart for ``down``."""
    if direction == "down":
        return np.ascontiguousarray(-hi), np.ascontiguousarray(-lo)
    return np.require(lo, np.float64, ("C", "W")), np.require(hi, np.float64, ("C", "W"))


def load_source(source: Any = "synthetic", symbols: Any = None, n_bars: int = 2000,
                seed: int = 0, *, start: Any = None, end: Any = None,
                adjust: bool = True) -> dict[str, pd.DataFrame]:
    """``{symbol: OHLCV frame}`` through ``qbt_lib.data.load``: ``"synthetic"`` (``symbols``
    x ``n_bars`` GARCH bars; ``symbols=None``: 10), ``"sp500"`` (the real S&P 500 daily bars
    shipped with ``arch``, symbol ``SP500``), a CSV/Parquet file, a directory, a
    Hive-partitioned dataset, a DataFrame or a dict of frames (``symbols``: None/"all", a
    count of the first symbols, or a list of names); ``start``/``end`` cut the bars."""
    def generate(sy: Any) -> dict[str, pd.DataFrame]:
        bars = CONSTRAINTS["n_bars"]("n_bars", n_bars)
        return _data.synthetic_market(_data.generator_symbols(sy, 10), n_bars=bars, seed=seed)

    return _data.load(source, symbols, start=start, end=end, adjust=adjust,
                      require=("high", "low"), synthetic=generate)


def as_store(data: Any, symbols: Any = None, start: Any = None, end: Any = None,
             adjust: bool = True, n_bars: int = 2000, seed: int = 0) -> _data.PriceStore:
    """A price store (high, low) from a ``PriceStore`` (checked) or any source
    ``qbt_lib.data.load`` takes (a frame, ``{symbol: frame}``, a path, "sp500", ...)."""
    if isinstance(data, _data.PriceStore):
        store = data
        for j, sym in enumerate(store.symbols):
            lo = np.asarray(store["low"][:, j])
            hi = np.asarray(store["high"][:, j])
            gone = np.isnan(lo) & np.isnan(hi)
            check_prices(lo[~gone], hi[~gone], name=sym, dates=store.dates[~gone])
        return store
    if data is None or (isinstance(data, Mapping) and not data):
        raise ValueError("data must be a DataFrame, a non-empty {symbol: DataFrame} mapping, "
                         "a source (path, 'sp500', 'synthetic') or a PriceStore")
    frames = load_source(data, symbols, n_bars, seed, start=start, end=end, adjust=adjust)
    return _data.PriceStore.build(frames, fields=("high", "low"))


def symbol_bars(store: _data.PriceStore, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One symbol's own bars (rows where it has none dropped): low, high, row positions."""
    lo = np.asarray(store["low"][:, j], dtype=np.float64)
    hi = np.asarray(store["high"][:, j], dtype=np.float64)
    rows = np.flatnonzero(~np.isnan(lo))
    return np.ascontiguousarray(lo[rows]), np.ascontiguousarray(hi[rows]), rows


def describe_source(source: Any) -> Any:
    """What a run records as its ``source``: a name or path as given; in-memory data named
    by its kind (a frame is not dumped into metrics.json)."""
    if source is None or isinstance(source, (str, int, float, bool)):
        return source
    if hasattr(source, "__fspath__"):
        return str(source)
    if isinstance(source, _data.PriceStore):
        return f"PriceStore ({len(source.symbols)} symbols)"
    if isinstance(source, Mapping):
        return f"{{symbol: {type(next(iter(source.values()), None)).__name__}}} " \
               f"({len(source)} symbols)"
    return type(source).__name__
