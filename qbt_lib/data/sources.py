"""Where prices come from: one :func:`load` for every workload.

``source`` is, in every workload and notebook, one of

- ``"synthetic"``: the seeded GARCH market (its size parameters stay per workload, which passes
  its own generator as ``synthetic=``);
- ``"sp500"``: the real S&P 500 daily bars 1999-2018 shipped with ``arch``, one symbol named
  ``SP500`` everywhere;
- a path: a CSV or Parquet file (one symbol, or a long table with a ``symbol``/``ticker``/
  ``asset`` column), a directory of one file per symbol (the file stem is the symbol), or a
  Hive-partitioned Parquet dataset (``symbol=AAPL/part-0.parquet``, as pyarrow, DuckDB and
  polars write it);
- an in-memory pandas DataFrame (one symbol with a ``DatetimeIndex`` or a date column, or a
  long table) or a ``{symbol: DataFrame}`` dict;
- a name registered with :func:`register_source` (the way papermill registers engines).

What a run gets back is ``{symbol: DataFrame}`` with a ``DatetimeIndex`` named ``date``, the
float64 price columns it asked for and nothing it did not check. Steps, in order, for each
selected symbol:

1. **Dates.** A series whose dates run strictly newest-first is reversed, with one logged
   notice (what backtesting.py does); any other unsorted or duplicate date is a
   ``ValueError`` naming the symbol, the row and both dates.
2. **Cut.** Only the bars a run uses are kept: ``[start, end]`` plus ``warmup`` bars before
   ``start`` (the history a run's features need), or the last ``tail`` bars up to ``end``.
3. **Numbers.** The used rows' price columns must be numeric (a non-numeric cell names the
   symbol, row, date and column).
4. **Adjusted prices.** With an adjusted-close column (``Adj Close``, ``adj_close``, ...),
   ``adjust=True`` scales open/high/low/close by ``adj_close / close`` and volume by the
   inverse, so a split is not a -50% return; ``adjust=False`` keeps the raw prices.
5. **Validation**, always, on the used rows (:func:`qbt_lib.data.validate_ohlcv`): NaN or
   inf, price <= 0, high < max(open, close), low > min(open, close), volume < 0. A bad row
   only before the used range is not an error: the run never reads it.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import paths
from ..params import as_bool, as_int
from .synthetic import synthetic_market
from .validate import OHLCV, validate_ohlcv

log = logging.getLogger("qbt")

SP500 = "SP500"                       # the S&P 500 sample's one name, in every workload
SYMBOL_COLUMNS = ("symbol", "ticker", "asset", "name")
DATE_COLUMNS = ("date", "datetime", "timestamp", "time", "day")
ADJ_COLUMNS = ("adj_close", "adjclose", "adj_close_price", "adjusted_close")
FILE_SUFFIXES = (".csv", ".parquet", ".pq", ".txt")
_HIVE_DIR = re.compile(r"^[^=/]+=[^/]*$")


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class SourceKind:
    """A registered source: ``loader(**options)`` returns frames (a DataFrame or a dict).

    ``generates=True``: the loader makes the symbols it is asked for (it gets ``symbols=``
    normalized by :func:`generator_symbols`: ``None`` for its default set, a count or a list
    of names) instead of offering a set to select from."""
    name: str
    loader: Callable[..., Any]
    generates: bool = False
    doc: str = ""


_REGISTRY: dict[str, SourceKind] = {}


def register_source(name: str, loader: Callable[..., Any], *, generates: bool = False,
                    doc: str = "", replace: bool = False) -> None:
    """Make ``source=name`` load through ``loader(**options)`` in every workload.

    The loader returns a DataFrame (one symbol, or long with a symbol column) or a
    ``{symbol: DataFrame}`` dict; :func:`load` selects, cuts and validates it like any other
    source. A name that reads like a path (with a ``/`` or a file suffix) is refused."""
    if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name \
            or Path(name).suffix.lower() in FILE_SUFFIXES:
        raise ValueError(f"source name must be a plain word, got {name!r}")
    key = name.strip().lower()
    if key in _REGISTRY and not replace:
        raise ValueError(f"source {key!r} is already registered (pass replace=True)")
    if not callable(loader):
        raise ValueError(f"the loader of source {key!r} must be callable, got {loader!r}")
    _REGISTRY[key] = SourceKind(key, loader, generates, doc)


def registered_sources() -> list[str]:
    """The names ``source=`` accepts besides paths and in-memory frames."""
    return sorted(_REGISTRY)


def _sp500(**_: Any) -> dict[str, pd.DataFrame]:
    try:
        import arch.data.sp500
    except ImportError:  # arch is a core dependency; this only helps a broken install
        raise ImportError("source='sp500' needs the 'arch' package (pip install arch)") from None
    return {SP500: arch.data.sp500.load()}


def _synthetic(symbols: Any = None, n_bars: int = 2520, seed: int = 0,
               start: str = "2000-01-03", **_: Any) -> dict[str, pd.DataFrame]:
    return synthetic_market(10 if symbols is None else symbols, n_bars=n_bars, seed=seed,
                            start=start)


register_source("synthetic", _synthetic, generates=True,
                doc="the seeded GARCH(1,1)-t market (size parameters per workload)")
register_source("sp500", _sp500, doc=f"the S&P 500 1999-2018 from arch, one symbol {SP500!r}")


def vix() -> pd.Series:
    """The VIX close 2014-2019 (``arch``), in percent points, indexed by date."""
    import arch.data.vix
    v = arch.data.vix.load()["vix"].astype(np.float64)
    v.index = pd.DatetimeIndex(v.index).astype("datetime64[ns]").rename("date")
    return v


# --------------------------------------------------------------------------- symbols
def _listify(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


def _every(symbols: Any) -> bool:
    """Whether a selection means every symbol (a generating source: its default set):
    ``None``, ``"all"`` or an empty string."""
    return symbols is None or (isinstance(symbols, str) and symbols.strip().lower() in ("all", ""))


def select_symbols(available: Sequence[str], symbols: Any, param: str = "symbols",
                   source: str = "the source") -> list[str]:
    """The symbols a run uses: ``None`` or ``"all"`` (every symbol of the source), an integer
    count (the first N; papermill's integral floats accepted), a list of names or a
    comma-separated string. Errors name ``param``, the parameter the user typed."""
    have = list(available)
    shown = f"{have[:12]}{' ...' if len(have) > 12 else ''}"
    if _every(symbols):
        return have
    count = _as_count(symbols, param)
    if count is not None:
        if count > len(have):
            raise ValueError(f"{param}={count} but {source} has only {len(have)} symbol(s): "
                             f"{shown}")
        return have[:count]
    names = _as_names(symbols, param)
    unknown = [s for s in names if s not in have]
    if unknown:
        raise ValueError(f"{param}: unknown symbol(s) {unknown}; {source} has {shown}")
    return names


def _as_count(symbols: Any, param: str) -> int | None:
    """An integer count, or ``None`` when ``symbols`` is a name list."""
    if isinstance(symbols, bool):
        raise ValueError(f"{param} must be a count, a list of names or 'all', got {symbols!r}")
    if isinstance(symbols, str) and re.fullmatch(r"\s*[-+]?\d+(\.0*)?\s*", symbols):
        symbols = float(symbols)
    if isinstance(symbols, (int, float, np.integer, np.floating)):
        return as_int(param, symbols, min=1)
    return None


def _as_names(symbols: Any, param: str) -> list[str]:
    if isinstance(symbols, str):
        names = _listify(symbols)
    elif isinstance(symbols, (list, tuple, pd.Index, np.ndarray)):
        names = [str(s).strip() for s in symbols]
    else:
        raise ValueError(f"{param} must be a count, a list of names or 'all', got {symbols!r}")
    if not names or any(not s for s in names):
        raise ValueError(f"{param} has an empty name: {symbols!r}")
    dup = sorted({s for s in names if names.count(s) > 1})
    if dup:
        raise ValueError(f"{param} has duplicates: {dup}")
    return names


def generator_symbols(symbols: Any, default: int | None,
                      param: str = "symbols") -> int | list[str] | None:
    """What a generating source (``synthetic``) makes: ``None``/``"all"`` -> ``default``
    symbols, a count (``"3"`` and papermill's ``3.0`` too), or the given names (a list or a
    comma-separated string). Idempotent: a workload's generator may apply it again with its
    own default to what :func:`load` passes it (``default=None`` there)."""
    if _every(symbols):
        return default
    count = _as_count(symbols, param)
    return count if count is not None else _as_names(symbols, param)


# --------------------------------------------------------------------------- raw frames
def _read_file(p: Path, shown: str) -> pd.DataFrame:
    if p.stat().st_size == 0:
        raise ValueError(f"{shown}: the file is empty")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            raw = pd.read_parquet(p)
        elif suffix in (".csv", ".txt") or p.name.lower().endswith(".csv.gz"):
            raw = pd.read_csv(p)
        else:
            raise ValueError(f"{shown}: unknown file type {suffix!r} (use .csv or .parquet)")
    except pd.errors.EmptyDataError:
        raise ValueError(f"{shown}: the file is empty") from None
    except (OSError, ValueError) as e:
        if str(e).startswith(shown):
            raise
        raise ValueError(f"{shown}: cannot read the file: {e}") from None
    if len(raw) == 0:
        raise ValueError(f"{shown}: the file has a header but no rows")
    return raw


def _hive_partitioned(d: Path) -> bool:
    return any(c.is_dir() and _HIVE_DIR.match(c.name) for c in d.iterdir())


def _read_dataset(d: Path, shown: str) -> pd.DataFrame:
    import pyarrow.dataset as ds
    try:
        t = ds.dataset(d, format="parquet", partitioning="hive").to_table()
    except Exception as e:  # pyarrow raises its own error types
        raise ValueError(f"{shown}: cannot read the Parquet dataset: {e}") from None
    if t.num_rows == 0:
        raise ValueError(f"{shown}: the dataset has no rows")
    df = t.to_pandas()
    for c in df.columns:  # hive partition keys come back as categoricals
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(str)
    return df


def _path_frames(p: Path, shown: str, symbols: Any = None) -> dict[str, pd.DataFrame]:
    """``{symbol: raw frame}`` of a file or a directory (long tables split by symbol). In a
    directory of one file per symbol only the files a selection needs are read: the named
    ones, or the first files up to a count."""
    if p.is_file():
        return _named(_read_file(p, shown), p.name.split(".")[0], shown)
    if _hive_partitioned(p):
        df = _read_dataset(p, shown)
        if _symbol_column(df) is None:
            raise ValueError(f"{shown}: the partitioned dataset has no symbol column "
                             f"(partition by one of {list(SYMBOL_COLUMNS)}, e.g. symbol=AAPL)")
        return _named(df, None, shown)
    files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                   and (f.suffix.lower() in FILE_SUFFIXES or f.name.lower().endswith(".csv.gz")))
    if not files:
        raise ValueError(f"{shown}: the directory has no .csv or .parquet files")
    stem = {f.name.split(".")[0]: f for f in files}
    wanted = None
    try:
        count = _as_count(symbols, "symbols") if symbols is not None else None
        if count is None and not _every(symbols):
            names = _as_names(symbols, "symbols")
            if all(n in stem for n in names):
                wanted = [stem[n] for n in names]
    except ValueError:  # a bad selection is reported by select_symbols, by its name
        count = None
    out: dict[str, pd.DataFrame] = {}
    for f in wanted or files:
        if count is not None and len(out) >= count:
            break
        for sym, df in _named(_read_file(f, f"{shown}/{f.name}"), f.name.split(".")[0],
                              f"{shown}/{f.name}").items():
            if sym in out:
                raise ValueError(f"{shown}: symbol {sym!r} appears in more than one file "
                                 f"(again in {f.name})")
            out[sym] = df
    return out


def _symbol_column(df: pd.DataFrame) -> str | None:
    cols = {str(c).strip().lower(): c for c in df.columns}
    return next((cols[c] for c in SYMBOL_COLUMNS if c in cols), None)


def _named(df: pd.DataFrame, name: str | None, shown: str) -> dict[str, pd.DataFrame]:
    """One symbol (``name``) or, with a symbol column, every symbol of a long table in the
    order it first appears; each symbol keeps its rows in file order (no sorting here)."""
    col = _symbol_column(df)
    if col is None:
        if name is None:
            raise ValueError(f"{shown}: a table of many symbols needs a symbol column "
                             f"(one of {list(SYMBOL_COLUMNS)})")
        return {str(name): df}
    keys = df[col]
    if keys.isna().any():
        i = int(np.flatnonzero(keys.isna().to_numpy())[0])
        raise ValueError(f"{shown}: row {i}: the {col!r} column is empty")
    keys = keys.astype(str).to_numpy()
    codes, uniq = pd.factorize(keys)     # codes numbered in order of first appearance
    # the rows grouped by symbol, each group in file order (one sort, not a scan per symbol)
    rows = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes))[:-1])
    body = df.drop(columns=[col])
    return {str(u): body.iloc[r] for u, r in zip(uniq, rows)}


#: the raw frames :func:`span` last read from a path, for the :func:`load` that follows it
#: with the same source and selection (a run that sets its range from the data reads its
#: files once, not twice): one entry, taken by that load, dropped when a file changed
_SPAN_READ: dict[tuple, dict[str, pd.DataFrame]] = {}


def _read_key(p: Path, symbols: Any) -> tuple | None:
    """What a path's read depends on: the path, the selection, and every file's size and
    modification time (``None``: a selection that is not a plain value, not reused)."""
    if isinstance(symbols, (list, tuple)):
        symbols = tuple(symbols)
    if not (symbols is None or isinstance(symbols, (str, int, float, tuple))):
        return None
    try:
        hash(symbols)
    except TypeError:    # a list of lists: refused later by the selection, never reused
        return None
    files = [p] if p.is_file() else sorted(Path(d) / f for d, _, fs in os.walk(p) for f in fs)
    try:
        stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    except OSError:
        return None
    return str(p.resolve()), symbols, stamp


def _raw_frames(source: Any, symbols: Any, synthetic: Callable | None,
                options: Mapping[str, Any], param: str = "symbols", keep: bool = False
                ) -> tuple[str, dict[str, pd.DataFrame], bool]:
    """``(shown name, {symbol: raw frame}, generated)`` for any kind of source. A
    generating source gets ``symbols`` normalized once here (:func:`generator_symbols`:
    ``None`` for its default set, a count or names; ``"all"`` is not a symbol name).
    ``keep``: a path's frames are kept for the next call with the same source and
    selection (:data:`_SPAN_READ`), which takes them instead of reading the files again."""
    if isinstance(source, Mapping):
        if not source:
            raise ValueError("source: the dict of frames is empty")
        out = {}
        for k, v in source.items():
            if not isinstance(v, pd.DataFrame):
                raise ValueError(f"source[{k!r}] must be a DataFrame, got {type(v).__name__}")
            out[str(k)] = v
        return "the dict of frames", out, False
    if isinstance(source, pd.DataFrame):
        name = str(source.attrs.get("symbol", "data"))
        return "the DataFrame", _named(source, name, "source"), False
    if not isinstance(source, (str, os.PathLike)) or not str(source).strip():
        raise ValueError(f"source must be {_kinds()}, got {source!r}")
    s = str(source).strip()
    kind = _REGISTRY.get(s.lower())
    if kind is not None:
        if kind.generates:
            which = generator_symbols(symbols, None, param)
            if synthetic is not None and kind.name == "synthetic":
                got = synthetic(which)          # the workload's own generator and sizes
            else:
                got = kind.loader(symbols=which, **options)
            return f"source {kind.name!r}", _as_frames(got, kind.name), True
        return f"source {kind.name!r}", _as_frames(kind.loader(**options), kind.name), False
    p = paths.resolve_input_path(s)
    if not p.exists():
        raise ValueError(f"source: {s!r} is neither a known source ({registered_sources()}) "
                         "nor an existing file or directory")
    key = _read_key(p, symbols)
    got = _SPAN_READ.pop(key, None) if key is not None else None
    if got is None:
        got = _path_frames(p, s, symbols)
    if keep and key is not None:
        _SPAN_READ.clear()
        _SPAN_READ[key] = got
    return s, got, False


def _kinds() -> str:
    return (f"one of {registered_sources()}, a CSV/Parquet file or directory, "
            "a DataFrame or a dict of DataFrames")


def _as_frames(got: Any, name: str) -> dict[str, pd.DataFrame]:
    if isinstance(got, pd.DataFrame):
        return _named(got, name, f"source {name!r}")
    if isinstance(got, Mapping) and got and all(isinstance(v, pd.DataFrame) for v in got.values()):
        return {str(k): v for k, v in got.items()}
    raise ValueError(f"source {name!r}: its loader returned {type(got).__name__}, not a "
                     "DataFrame or a non-empty dict of DataFrames")


# --------------------------------------------------------------------------- one symbol
def _canonical(col: Any) -> str:
    c = re.sub(r"[\s_\-]+", "_", str(col).strip().lower())
    if c in ADJ_COLUMNS or c in ("adj", "adjusted"):
        return "adj_close"
    return c


def _with_dates(df: pd.DataFrame, who: str) -> pd.DataFrame:
    """Canonical column names and a tz-naive ``DatetimeIndex`` named ``date``."""
    out = df.copy(deep=False)
    out.columns = [_canonical(c) for c in out.columns]
    if out.columns.duplicated().any():
        dup = sorted(set(out.columns[out.columns.duplicated()]))
        raise ValueError(f"{who}: duplicate column(s) {dup}")
    if "close" not in out.columns and "price" in out.columns:
        out = out.rename(columns={"price": "close"})
    if isinstance(out.index, pd.DatetimeIndex):
        idx = out.index
    else:
        col = next((c for c in out.columns if c in DATE_COLUMNS), None)
        if col is None:
            if out.index.name is not None and _canonical(out.index.name) in DATE_COLUMNS:
                values = out.index
            else:
                raise ValueError(f"{who}: no date column (looked for {list(DATE_COLUMNS)}); "
                                 f"columns are {list(out.columns)}")
        else:
            values = out.pop(col)
        try:
            idx = pd.DatetimeIndex(pd.to_datetime(values))
        except (ValueError, TypeError, OverflowError) as e:
            raise ValueError(f"{who}: cannot parse the dates: {e}") from None
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    if idx.isna().any():
        i = int(np.flatnonzero(idx.isna())[0])
        raise ValueError(f"{who}: row {i}: missing date")
    out.index = pd.DatetimeIndex(idx.astype("datetime64[ns]").to_numpy(), name="date")  # no freq
    return out


def _day(ts: Any) -> str:
    ts = pd.Timestamp(ts)
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else str(ts)


def _order_dates(df: pd.DataFrame, who: str) -> tuple[pd.DataFrame, bool]:
    """Strictly increasing dates as they are; strictly decreasing ones reversed (returns
    ``True``); anything else a ``ValueError`` naming the row and both dates."""
    t = df.index.asi8
    if len(t) < 2:
        return df, False
    d = np.diff(t)
    if (d > 0).all():
        return df, False
    if (d < 0).all():
        return df.iloc[::-1], True
    i = int(np.flatnonzero(d <= 0)[0]) + 1
    if d[i - 1] == 0:
        raise ValueError(f"{who}: row {i} ({_day(t[i])}): duplicate date, the same as row "
                         f"{i - 1} ({_day(t[i - 1])})")
    raise ValueError(f"{who}: row {i} ({_day(t[i])}): dates out of order, row {i - 1} is "
                     f"{_day(t[i - 1])} (sort the file by date)")


def _cut(df: pd.DataFrame, who: str, start: pd.Timestamp | None, end: pd.Timestamp | None,
         warmup: int, tail: int | None) -> tuple[pd.DataFrame, int]:
    """The used bars and the row of the first one in the whole series."""
    t = df.index
    hi = len(t) if end is None else int(t.searchsorted(end, side="right"))
    lo = 0 if start is None else max(0, int(t.searchsorted(start, side="left")) - warmup)
    if tail is not None:
        lo = max(lo, hi - tail)
    if hi <= lo:
        rng = f"{_day(t[0])}..{_day(t[-1])}"
        want = f"{_day(start) if start is not None else '...'}..{_day(end) if end is not None else '...'}"
        raise ValueError(f"{who}: no bars in the range {want} (the data covers {rng})")
    return df.iloc[lo:hi], lo


def _numeric(df: pd.DataFrame, cols: Iterable[str], who: str, row0: int) -> pd.DataFrame:
    out = df.copy()
    for c in cols:
        v = out[c]
        if v.dtype == np.float64:
            continue
        num = pd.to_numeric(v, errors="coerce")
        bad = num.isna().to_numpy() & v.notna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{who}: row {row0 + i} ({_day(df.index[i])}): column {c!r} "
                             f"is not a number ({v.iloc[i]!r})")
        out[c] = num.astype(np.float64)
    return out


def _adjust(df: pd.DataFrame, who: str, adjust: bool, row0: int) -> pd.DataFrame:
    if "adj_close" not in df.columns:
        return df
    if not adjust:
        return df.drop(columns=["adj_close"])
    adj, close = df["adj_close"].to_numpy(), df["close"].to_numpy()
    bad = ~(np.isfinite(adj) & (adj > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{who}: row {row0 + i} ({_day(df.index[i])}): adj_close is NaN, "
                         f"inf or <= 0 ({adj[i]!r}); pass adjust=False to use raw prices")
    with np.errstate(divide="ignore", invalid="ignore"):
        f = adj / close
    out = df.drop(columns=["adj_close"])
    for c in ("open", "high", "low", "close"):
        if c in out.columns:
            out[c] = out[c].to_numpy() * f
    if "volume" in out.columns:
        out["volume"] = out["volume"].to_numpy() / f
    return out


# --------------------------------------------------------------------------- the one entry
def _ordered(source: Any, symbols: Any, param: str, synthetic: Callable | None,
             options: Mapping[str, Any] | None, keep: bool = False
             ) -> tuple[str, dict[str, tuple[str, pd.DataFrame]]]:
    """The selected symbols' frames with canonical columns and oldest-first dates:
    ``(source as shown, {symbol: (name in messages, frame)})``; a newest-first series is
    reversed with one logged notice for the whole source. ``keep``: see :func:`_raw_frames`."""
    shown, raw, generated = _raw_frames(source, symbols, synthetic, options or {}, param,
                                        keep)
    names = list(raw) if generated else select_symbols(list(raw), symbols, param, shown)
    one_file = len(raw) == 1 and not generated and isinstance(source, (str, os.PathLike))
    out, flipped = {}, []
    for sym in names:
        who = f"{sym} ({shown})" if one_file else str(sym)
        if len(raw[sym]) == 0:
            raise ValueError(f"{who}: no rows")
        df, rev = _order_dates(_with_dates(raw[sym], who), who)
        if rev:
            flipped.append(sym)
        out[sym] = (who, df)
    if flipped:
        log.info("%s: dates ran newest-first for %s; reversed to oldest-first",
                 shown, flipped if len(flipped) <= 5 else f"{len(flipped)} symbols")
    return shown, out


def load(source: Any, symbols: Any = None, *, param: str = "symbols", start: Any = None,
         end: Any = None, warmup: int = 0, tail: int | None = None, adjust: bool = True,
         require: Sequence[str] = OHLCV, keep: Sequence[str] = (),
         synthetic: Callable[[Any], Any] | None = None,
         options: Mapping[str, Any] | None = None) -> dict[str, pd.DataFrame]:
    """``{symbol: frame}`` of the bars a run uses, each validated (see the module docstring).

    ``symbols`` (named ``param`` in messages): ``None``/``"all"`` (every symbol; a generating
    source makes its default set), a count, or names. ``start``/``end``: dates the run uses
    (inclusive); ``warmup``: bars before ``start`` the run also reads; ``tail``: keep only the
    last ``tail`` bars up to ``end``. ``require``: the price columns the run reads (the other
    OHLCV columns are checked and kept when present); ``keep``: other columns passed through
    (``vol``, ``asset_class``); ``vol`` is checked numeric too. ``synthetic``: the workload's
    generator for ``source="synthetic"`` (called with the ``symbols`` selection).
    ``options``: keyword arguments for a registered loader."""
    adjust = as_bool("adjust", adjust)
    warmup = as_int("warmup", warmup, min=0)
    tail = None if tail is None else as_int("tail", tail, min=1)
    start_ts, end_ts = as_date("start", start), as_date("end", end)
    if start_ts is not None and end_ts is not None and start_ts > end_ts:
        raise ValueError(f"start ({_day(start_ts)}) must not be after end ({_day(end_ts)})")
    _, frames = _ordered(source, symbols, param, synthetic, options)
    out: dict[str, pd.DataFrame] = {}
    for sym, (who, df) in frames.items():
        df, row0 = _cut(df, who, start_ts, end_ts, warmup, tail)
        out[sym] = _finish(df, who, require, keep, adjust, row0)
    return out


def _finish(df: pd.DataFrame, who: str, require: Sequence[str], keep: Sequence[str],
            adjust: bool, row0: int) -> pd.DataFrame:
    """Numbers, adjusted prices and the OHLCV rules on the used rows of one symbol."""
    missing = [c for c in require if c not in df.columns]
    if missing:
        raise ValueError(f"{who}: missing column(s) {missing}; has {list(df.columns)}")
    prices = [c for c in OHLCV if c in df.columns]
    numeric = prices + (["adj_close"] if "adj_close" in df.columns else []) + \
        [c for c in keep if c in df.columns and c == "vol"]
    df = _adjust(_numeric(df, numeric, who, row0), who, adjust, row0)
    cols = prices + [c for c in keep if c in df.columns and c not in prices]
    out = pd.DataFrame({c: df[c].to_numpy() for c in cols}, index=df.index)
    validate_ohlcv(out, name=who, require=require, row0=row0)
    return out


def as_date(name: str, value: Any) -> pd.Timestamp | None:
    """``None`` or a tz-naive Timestamp; ``ValueError`` naming ``name`` otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be a date like '2020-01-31', got {value!r}") from None
    if pd.isna(ts):
        raise ValueError(f"{name} must be a date like '2020-01-31', got {value!r}")
    return ts.tz_localize(None) if ts.tz is not None else ts


# --------------------------------------------------------------------------- implied vol
def parse_vol(vol: Any) -> tuple[str, int]:
    """``vol`` as ``(kind, window)``: ``"column"`` (the data's ``vol`` column, or the VIX
    for ``"sp500"``) or ``"realized", N`` for ``"realized:N"``."""
    if vol is None or (isinstance(vol, str) and vol.strip().lower() in ("", "column",
                                                                         "implied", "auto")):
        return "column", 0
    if isinstance(vol, str):
        m = re.fullmatch(r"\s*reali[sz]ed\s*:\s*(\d+)\s*", vol.lower())
        if m and int(m.group(1)) >= 2:
            return "realized", int(m.group(1))
    raise ValueError(f"vol must be 'column' (the data's vol column; the VIX for 'sp500') or "
                     f"'realized:N' with N >= 2 bars, got {vol!r}")


def realized_vol(close: np.ndarray, window: int, bars_per_year: int = 252) -> np.ndarray:
    """Annualised close-to-close volatility over the past ``window`` log returns, known at
    each bar's close (no look-ahead); NaN for the first ``window`` bars."""
    close = np.asarray(close, dtype=np.float64)
    r = np.diff(np.log(close))
    out = np.full(close.shape, np.nan)
    if len(r) >= window:
        s = pd.Series(r).rolling(window).std(ddof=1).to_numpy()
        out[1:] = s * np.sqrt(bars_per_year)
    return out


def check_vol_units(vol: np.ndarray, who: str) -> None:
    """A vol column in percent (20.0 for 20%) would be priced at 2000% vol: refuse it."""
    v = vol[np.isfinite(vol)]
    if v.size and float(np.median(v)) > 3.0:
        raise ValueError(f"{who}: the vol column looks like percent (median {np.median(v):.4g}); "
                         "vol is a decimal (0.20 for 20%): divide the column by 100")


def check_source(source: Any, param: str = "source") -> Any:
    """``source`` normalized without loading it (a registered name lower-cased, a path
    checked to exist, frames passed through); ``ValueError`` naming ``param`` otherwise."""
    if isinstance(source, (pd.DataFrame, Mapping)):
        return source
    if not isinstance(source, (str, os.PathLike)) or not str(source).strip():
        raise ValueError(f"{param} must be {_kinds()}, got {source!r}")
    s = str(source).strip()
    if s.lower() in _REGISTRY:
        return s.lower()
    if not paths.resolve_input_path(s).exists():
        raise ValueError(f"{param}: {s!r} is neither a known source ({registered_sources()}) "
                         "nor an existing file or directory")
    return s


def source_label(source: Any) -> str:
    """A short text for a source in tables and ``metrics.json`` (frames are not JSON)."""
    if isinstance(source, pd.DataFrame):
        return "DataFrame"
    if isinstance(source, Mapping):
        return f"dict of {len(source)} frame(s)"
    return str(source)


def span(source: Any, symbols: Any = None, *, param: str = "symbols",
         synthetic: Callable[[Any], Any] | None = None,
         options: Mapping[str, Any] | None = None) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """``{symbol: (first date, last date)}`` of a source's selected symbols, for a run that
    sets its range from the data (e.g. "the last three years"). The selected symbols are
    read whole (files parsed, dates checked and ordered); their prices are validated by
    :func:`load` once the range is known. A path's frames are kept for that load: the next
    :func:`load` of the same path and selection takes them instead of reading the files
    again (unless a file changed in between)."""
    _, frames = _ordered(source, symbols, param, synthetic, options, keep=True)
    return {sym: (df.index[0], df.index[-1]) for sym, (_, df) in frames.items()}
