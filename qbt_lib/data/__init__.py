"""The data layer: the only place qbt loads prices.

:func:`load` (``sources.py``) turns any ``source`` (``"synthetic"``, ``"sp500"``, a CSV/Parquet
file, a directory, a Hive-partitioned dataset, a DataFrame, a dict of frames, or a registered
name) into ``{symbol: frame}`` of the bars a run uses, ordered, cut, adjusted and validated.

The OHLCV contract: a ``DatetimeIndex`` strictly increasing and unique, float64 columns
``open high low close volume`` (extra columns are allowed and kept), every row finite with
prices > 0, ``high >= max(open, close)``, ``low <= min(open, close)`` and ``volume >= 0``.
``validate_ohlcv`` (``validate.py``) raises a ``ValueError`` naming the first bad row and the
rule it breaks. ``synthetic_market`` (``synthetic.py``) is the seeded ``source="synthetic"``.

The price store keeps many symbols as ``dates x symbols`` float64 matrices, one per field,
NaN where a symbol has no bar. It is saved as ``.npy`` files under a content-hash directory
and opened by memory map; pickling a store sends only its path, so worker processes map the
same pages instead of receiving a copy (the seed-004 pitfall).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .. import paths
from .sources import (OHLCV, SP500, as_date, check_source, check_vol_units,
                      generator_symbols, load, parse_vol, realized_vol, register_source,
                      registered_sources, select_symbols, source_label, span, vix)
from .synthetic import symbol_names, synthetic_market
from .validate import PRICE_FIELDS, validate_ohlcv


# --------------------------------------------------------------------------- loading
def load_ohlcv(path: str | os.PathLike, **kw) -> pd.DataFrame:
    """One symbol's validated daily OHLCV from a CSV (Yahoo-style headers, any case) or
    Parquet file: :func:`load` of a one-symbol source."""
    frames = load(path, **kw)
    if len(frames) != 1:
        raise ValueError(f"{path}: holds {len(frames)} symbols, expected one "
                         f"({list(frames)[:10]})")
    return next(iter(frames.values()))


def load_universe(path: str | os.PathLike, **kw) -> dict[str, pd.DataFrame]:
    """Many symbols, validated: :func:`load` (a long table, a directory of one file per
    symbol, or a Hive-partitioned dataset)."""
    return load(path, **kw)


def sample_data(name: str = "sp500") -> pd.DataFrame:
    """Real market data shipped inside the ``arch`` package.

    ``"sp500"``: daily S&P 500 OHLCV 1999-2018 (validated OHLCV frame);
    ``"vix"``: the VIX index close 2014-2019 (one column ``vix``, percent points).
    """
    key = str(name).strip().lower()
    if key == "sp500":
        return load("sp500")[SP500]
    if key == "vix":
        return vix().to_frame("vix")
    raise ValueError(f"sample data name must be 'sp500' or 'vix', got {name!r}")


# --------------------------------------------------------------------------- writing
def write_parquet_tables(out_dir: str | os.PathLike, tables: Mapping[str, pd.DataFrame]
                         ) -> dict[str, Path]:
    """Write ``{file name: frame}`` into ``out_dir`` as Parquet (index dropped): every file
    goes to a temp name first and all are renamed only once all are written, so a failed or
    interrupted write leaves no partial file. Returns ``{file name: path}``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = paths.resolve_output_dir(out_dir)
    tmps: dict[str, Path] = {}
    try:
        for name, df in tables.items():
            tmps[name] = out / f".{name}.tmp-{os.getpid()}"
            pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmps[name])
        written = {}
        for name, tmp in tmps.items():
            os.replace(tmp, out / name)
            written[name] = out / name
        return written
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- price store
def _store_from_arrays(symbols, fields, key, dates_ns, arrays) -> "PriceStore":
    """A :class:`PriceStore` held in memory (read-only arrays, like the memory maps)."""
    st = PriceStore.__new__(PriceStore)
    st.path = None
    st.symbols, st.fields, st.key = list(symbols), tuple(fields), key
    st.dates = pd.DatetimeIndex(np.asarray(dates_ns, np.int64).view("datetime64[ns]"),
                                name="date")
    st._arrays = {}
    for f in st.fields:
        a = np.asarray(arrays[f])
        a.setflags(write=False)
        st._arrays[f] = a
    st._sym_pos = {s: i for i, s in enumerate(st.symbols)}
    return st


class PriceStore:
    """Columnar store of many symbols: one ``dates x symbols`` float64 matrix per field.

    ``PriceStore.build(frames)`` writes it once under ``paths.cache_dir()`` in a directory
    named by the content hash (written to a temp dir, renamed when complete) and returns it
    opened by memory map. Pickling sends only the path: workers re-open the same files.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.exists():
            raise FileNotFoundError(f"no price store at {self.path}")
        meta = json.loads(meta_file.read_text())
        self.symbols: list[str] = list(meta["symbols"])
        self.fields: tuple[str, ...] = tuple(meta["fields"])
        self.key: str = meta["key"]
        self.dates = pd.DatetimeIndex(np.load(self.path / "dates.npy").view("datetime64[ns]"),
                                      name="date")
        self._arrays: dict[str, np.ndarray] = {}
        self._sym_pos = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def open(cls, path: str | os.PathLike) -> "PriceStore":
        return cls(path)

    def __reduce__(self):
        if self.path is None:  # an in-memory store travels with its arrays
            return (_store_from_arrays, (self.symbols, self.fields, self.key,
                                         self.dates.asi8, self._arrays))
        return (PriceStore, (str(self.path),))

    def __dask_tokenize__(self):
        return ("qbt.PriceStore", self.key)

    def in_memory(self) -> "PriceStore":
        """A copy whose matrices live in memory and that pickles by value: what goes to
        Dask workers, which need not see this machine's cache (``path`` is ``None``)."""
        if self.path is None:
            return self
        return _store_from_arrays(self.symbols, self.fields, self.key, self.dates.asi8,
                                  {f: np.array(self[f]) for f in self.fields})

    def __repr__(self) -> str:
        return (f"PriceStore({len(self.dates)} dates x {len(self.symbols)} symbols, "
                f"fields={list(self.fields)}, path={str(self.path)!r})")

    def __getitem__(self, field: str) -> np.ndarray:
        """The read-only memory-mapped ``dates x symbols`` matrix of ``field``."""
        if field not in self.fields:
            raise KeyError(f"field {field!r} not in store (has {list(self.fields)})")
        if field not in self._arrays:
            self._arrays[field] = np.load(self.path / f"{field}.npy", mmap_mode="r")
        return self._arrays[field]

    def symbol_index(self, symbol: str) -> int:
        try:
            return self._sym_pos[symbol]
        except KeyError:
            raise ValueError(f"unknown symbol {symbol!r}; the store has "
                             f"{self.symbols[:10]}{' ...' if len(self.symbols) > 10 else ''}") from None

    def series(self, field: str, symbol: str) -> np.ndarray:
        """One symbol's column of ``field`` (contiguous copy, NaN where it has no bar)."""
        return np.ascontiguousarray(self[field][:, self.symbol_index(symbol)])

    def frame(self, symbol: str) -> pd.DataFrame:
        """One symbol as a DataFrame of its own bars (dates where it has no bar dropped)."""
        j = self.symbol_index(symbol)
        df = pd.DataFrame({f: np.asarray(self[f][:, j]) for f in self.fields}, index=self.dates)
        return df[~df[list(self.fields)].isna().all(axis=1)]

    @classmethod
    def build(cls, frames: Mapping[str, pd.DataFrame], fields: Iterable[str] = OHLCV,
              root: str | os.PathLike | None = None) -> "PriceStore":
        """Align ``{symbol: frame}`` on the union of dates and store it (idempotent)."""
        fields = tuple(fields)
        if not frames:
            raise ValueError("no symbols to store")
        symbols = [str(s) for s in frames]
        for s, f in frames.items():
            missing = [c for c in fields if c not in f.columns]
            if missing:
                raise ValueError(f"{s}: missing column(s) {missing} for the price store")
        dates = frames[next(iter(frames))].index
        for f in list(frames.values())[1:]:
            if not f.index.equals(dates):
                dates = dates.union(f.index)
        dates = pd.DatetimeIndex(dates).astype("datetime64[ns]")
        mats = {}
        for fld in fields:
            m = np.full((len(dates), len(symbols)), np.nan)
            for j, f in enumerate(frames.values()):
                col = f[fld].to_numpy(dtype=np.float64)
                if f.index.equals(dates):
                    m[:, j] = col
                else:
                    m[dates.get_indexer(f.index), j] = col
            mats[fld] = m
        h = hashlib.blake2b(digest_size=12)
        h.update(json.dumps([symbols, list(fields)]).encode())
        h.update(dates.asi8.tobytes())
        for fld in fields:
            h.update(mats[fld].tobytes())
        key = h.hexdigest()
        root = Path(root) if root is not None else paths.cache_dir() / "pricestore"
        root.mkdir(parents=True, exist_ok=True)
        final = root / key
        with paths.atomic_dir(final) as tmp:
            if tmp is not None:
                np.save(tmp / "dates.npy", dates.asi8)
                for fld in fields:
                    np.save(tmp / f"{fld}.npy", mats[fld])
                (tmp / "meta.json").write_text(json.dumps(
                    {"symbols": symbols, "fields": list(fields), "key": key}))
        return cls(final)
