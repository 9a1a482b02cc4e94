"""The data layer: the only place qbt loads prices.

:func:`load` (``sources.py``) turns any ``source`` (``"synthetic"``, ``"sp500"``, a CSV/Parquet
file, a directory, a Hive-partitioned dataset, a DataFrame, a dict of frames, or a registered
name) into ``{symbol: frame}`` of the bars a run uses, ordered, cut, adjusted and validated.

The OHLCV contract: a ``DatetimeIndex`` strictly increasing and unique, float64 columns
``open high low close volume`` (extra columns are allowed and kept), every row finite with
prices > 0, ``high >= max(open, close)``, ``low <= min(open, close)`` and ``volume >= 0``.
``validate_ohlcv`` raises a ``ValueError`` naming the first bad row and the rule it breaks.

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
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import paths
from ..params import as_int
from .sources import (OHLCV, SP500, as_date, check_source, check_vol_units,
                      generator_symbols, load, parse_vol, realized_vol, register_source,
                      registered_sources, select_symbols, source_label, span, vix)

PRICE_FIELDS = ("open", "high", "low", "close")



# --------------------------------------------------------------------------- validation
def _row_label(index: pd.Index, i: int) -> str:
    v = index[i]
    return v.strftime("%Y-%m-%d") if isinstance(v, pd.Timestamp) else str(v)


def validate_ohlcv(df: pd.DataFrame, name: str | None = None, require: Sequence[str] = OHLCV,
                   row0: int = 0) -> pd.DataFrame:
    """Check ``df`` against the OHLCV contract; return it unchanged or raise ``ValueError``.

    ``require``: the columns that must be there; the other OHLCV columns are checked when
    present (a close-only series is fine for a workload that reads only closes). The message
    names the symbol (``name``), the first offending row (``row0`` + position, and date) and
    the rule, e.g. ``SPX: row 17 (2020-01-24): high < max(open, close)``.
    """
    who = f"{name}: " if name else ""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{who}OHLCV data must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in require if c not in df.columns]
    if missing:
        raise ValueError(f"{who}OHLCV data is missing column(s) {missing}; has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError(f"{who}OHLCV data is empty")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise ValueError(f"{who}OHLCV index must be a DatetimeIndex, got {type(df.index).__name__}")
    cols = [c for c in OHLCV if c in df.columns]
    for c in cols:
        if df[c].dtype != np.float64:
            raise ValueError(f"{who}column {c!r} must be float64, got {df[c].dtype}")

    idx = df.index.asi8
    if len(idx) > 1:
        bad = np.flatnonzero(np.diff(idx) <= 0)
        date_bad = int(bad[0]) + 1 if bad.size else None
    else:
        date_bad = None

    a = {c: df[c].to_numpy() for c in cols}
    prices = [a[c] for c in PRICE_FIELDS if c in a]
    rules = [(f"{c} is NaN or inf", ~np.isfinite(v)) for c, v in a.items()]
    if prices:
        rules.append(("price <= 0", (np.stack(prices) <= 0).any(axis=0)))
    oc = [a[c] for c in ("open", "close") if c in a]
    if "high" in a and oc:
        rules.append(("high < max(open, close)", a["high"] < np.maximum.reduce(oc)))
    if "low" in a and oc:
        rules.append(("low > min(open, close)", a["low"] > np.minimum.reduce(oc)))
    if "high" in a and "low" in a and not oc:
        rules.append(("high < low", a["high"] < a["low"]))
    if "volume" in a:
        rules.append(("volume < 0", a["volume"] < 0))
    first: tuple[int, str] | None = None
    for rule, mask in rules:
        hits = np.flatnonzero(mask)
        if hits.size and (first is None or hits[0] < first[0]):
            first = (int(hits[0]), rule)
    if date_bad is not None and (first is None or date_bad < first[0]):
        prev = _row_label(df.index, date_bad - 1)
        kind = "duplicate date" if idx[date_bad] == idx[date_bad - 1] else "dates not increasing"
        first = (date_bad, f"{kind} (previous row {prev})")
    if first is not None:
        i, rule = first
        row = ", ".join(f"{k}={float(a[k][i])!r}" for k in cols)
        raise ValueError(f"{who}row {row0 + i} ({_row_label(df.index, i)}): {rule} [{row}]")
    return df


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


# --------------------------------------------------------------------------- synthetic market
def symbol_names(symbols: int | Sequence[str], prefix: str = "SYM") -> list[str]:
    """``symbols`` as names: a count gives ``SYM000, SYM001, ...``; a list is checked."""
    if isinstance(symbols, str):
        symbols = [s.strip() for s in symbols.split(",") if s.strip()]
    if isinstance(symbols, (list, tuple)):
        names = [str(s) for s in symbols]
        if not names:
            raise ValueError("symbols must not be empty")
        if len(set(names)) != len(names):
            raise ValueError(f"symbols has duplicates: {names}")
        return names
    n = as_int("symbols", symbols, min=1, max=100_000)
    width = max(3, len(str(n - 1)))
    return [f"{prefix}{i:0{width}d}" for i in range(n)]


def synthetic_market(symbols: int | Sequence[str] = 10, n_bars: int = 2520, seed: int = 0,
                     start: str = "2000-01-03", with_vol: bool = False,
                     ) -> dict[str, pd.DataFrame]:
    """Deterministic multi-symbol daily OHLCV on a business-day calendar.

    Each symbol follows a GARCH(1,1) with Student-t(5) shocks (volatility clustering and fat
    tails); its parameters and shocks come from ``SeedSequence(seed)`` spawned per symbol
    position, so symbol i's path does not depend on how many symbols are asked for.
    ``with_vol=True`` adds ``vol``: the annualised conditional volatility (decimal).
    """
    names = symbol_names(symbols)
    n_bars = as_int("n_bars", n_bars, min=2, max=10_000_000)
    seed = as_int("seed", seed, min=0)
    dates = pd.bdate_range(start=start, periods=n_bars, name="date").astype("datetime64[ns]")
    children = np.random.SeedSequence(seed).spawn(len(names))
    draws = [_garch_draws(np.random.default_rng(ss), n_bars) for ss in children]
    params = {k: np.array([d[0][k] for d in draws]) for k in draws[0][0]}
    shocks = np.stack([d[1] for d in draws], axis=2)  # (5, n_bars, n_symbols)
    z, gap_z, hi_z, lo_z, vol_z = shocks
    mu, omega, alpha, beta = params["mu"], params["omega"], params["alpha"], params["beta"]
    var = np.empty((n_bars, len(names)))
    ret = np.empty((n_bars, len(names)))
    v = params["var_lr"].copy()
    for t in range(n_bars):  # the GARCH recursion is sequential in time, vectorized over symbols
        var[t] = v
        ret[t] = mu - 0.5 * v + np.sqrt(v) * z[t]
        v = omega + alpha * (ret[t] - mu) ** 2 + beta * v
    sig = np.sqrt(var)
    p0 = params["p0"]
    close = p0 * np.exp(np.cumsum(ret, axis=0))
    prev = np.vstack([p0[None, :], close[:-1]])
    open_ = prev * np.exp(0.25 * sig * gap_z)
    high = np.maximum(open_, close) * np.exp(0.5 * sig * np.abs(hi_z))
    low = np.minimum(open_, close) * np.exp(-0.5 * sig * np.abs(lo_z))
    volume = np.exp(np.log(1e6) + 0.3 * vol_z + 0.5 * np.abs(z)).round()
    out: dict[str, pd.DataFrame] = {}
    for j, name in enumerate(names):
        df = pd.DataFrame({"open": open_[:, j], "high": high[:, j], "low": low[:, j],
                           "close": close[:, j], "volume": volume[:, j]}, index=dates)
        if with_vol:
            df["vol"] = sig[:, j] * np.sqrt(252.0)
        out[name] = df
    return out


def _garch_draws(rng: np.random.Generator, n: int) -> tuple[dict, np.ndarray]:
    """One symbol's GARCH parameters and shocks, all from its own generator."""
    ann_vol = rng.uniform(0.12, 0.45)
    alpha = rng.uniform(0.06, 0.12)
    beta = 0.98 - alpha - rng.uniform(0.0, 0.015)  # persistence 0.965-0.98, as in equities
    nu = 5.0
    var_lr = (ann_vol / np.sqrt(252.0)) ** 2
    params = dict(var_lr=var_lr, omega=var_lr * (1.0 - alpha - beta), alpha=alpha, beta=beta,
                  mu=rng.uniform(-0.02, 0.12) / 252.0, p0=100.0 * np.exp(rng.uniform(-1.0, 1.0)))
    z = rng.standard_t(nu, size=n) * np.sqrt((nu - 2.0) / nu)
    return params, np.vstack([z[None, :], rng.standard_normal((4, n))])


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
