"""Straddle market data: per asset an underlying price and an annualised implied vol.

Three sources give the same thing, ``{asset: DataFrame[price, vol]}`` on the asset's own
trading days, which :func:`clean_frames` checks and :func:`build_store` puts into the shared
:class:`qbt_lib.data.PriceStore` (fields ``price`` and ``vol``, dates x assets, memory-mapped
by every worker):

- ``synthetic``: :func:`qbt_lib.data.synthetic_market` (GARCH(1,1) prices with volatility
  clustering); the implied vol is the model's conditional vol plus a premium, the way
  option-implied vol tracks realised vol and sits above it on average.
- ``file``: a long CSV/Parquet table ``date, asset, price, vol`` (vol in decimal, 0.2 = 20%).
- ``sp500``: the real S&P 500 close with VIX/100 as its vol, over the years both exist in
  the ``arch`` package (2014-2018).

Data rules (``ValueError`` naming the asset and the date): price finite and > 0, vol > 0;
a missing (NaN) vol is carried forward from the last quote for up to ``MAX_VOL_GAP`` trading
days, a longer gap (or a missing first quote) is an error.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import data
from ..params import as_float, as_int

FIELDS = ("price", "vol")
MAX_VOL_GAP = 5
SOURCES = ("synthetic", "file", "sp500")
SP500_ASSET = "SPX"
TRADING_DAYS = 252


def _day(ts) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- sources
def synthetic_frames(assets: int | Sequence[str] = 8, start_year: int = 2001,
                     end_year: int = 2024, tenor: int = 63, seed: int = 0,
                     vol_premium: float = 0.02) -> dict[str, pd.DataFrame]:
    """A synthetic market covering ``start_year`` .. ``end_year`` plus ``tenor`` trading
    days (and a few spare), so every straddle of the last month can expire inside the data."""
    names = data.symbol_names(assets, prefix="SYN")
    start_year = as_int("start_year", start_year, min=1900, max=2200)
    end_year = as_int("end_year", end_year, min=1900, max=2200)
    if start_year > end_year:
        raise ValueError(f"empty date range: start_year {start_year} > end_year {end_year}")
    tenor = as_int("tenor", tenor, min=1, max=10_000)
    vol_premium = as_float("vol_premium", vol_premium, min=0.0, max=5.0)
    start = pd.Timestamp(f"{start_year}-01-01")
    n_bars = len(pd.bdate_range(start, f"{end_year}-12-31")) + tenor + 5
    frames = data.synthetic_market(names, n_bars=n_bars, seed=seed, start=str(start.date()),
                                   with_vol=True)
    return {a: pd.DataFrame({"price": f["close"].to_numpy(),
                             "vol": f["vol"].to_numpy() + vol_premium}, index=f.index)
            for a, f in frames.items()}


def file_frames(path: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """A long table ``date, asset, price, vol`` (CSV or Parquet) as ``{asset: frame}``."""
    raw, src = data.read_table(path)
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c for c in ("date", "asset", "price", "vol") if c not in raw.columns]
    if missing:
        raise ValueError(f"{src}: missing column(s) {missing}; has {list(raw.columns)} "
                         "(expected date, asset, price, vol)")
    try:
        dates = pd.to_datetime(raw["date"])
    except (ValueError, TypeError) as e:
        raise ValueError(f"{src}: cannot parse column 'date' as dates: {e}") from None
    out: dict[str, pd.DataFrame] = {}
    for c in ("price", "vol"):
        num = pd.to_numeric(raw[c], errors="coerce")
        bad = num.isna() & raw[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{src}: row {i}: column {c!r} is not numeric ({raw[c].iloc[i]!r})")
        raw[c] = num.astype(np.float64)
    frame = pd.DataFrame({"asset": raw["asset"].astype(str).to_numpy(),
                          "price": raw["price"].to_numpy(), "vol": raw["vol"].to_numpy()},
                         index=pd.DatetimeIndex(dates, name="date").tz_localize(None)
                         if getattr(dates.dt, "tz", None) is not None
                         else pd.DatetimeIndex(dates, name="date"))
    for asset, g in frame.groupby("asset", sort=False):
        g = g.drop(columns=["asset"]).sort_index(kind="stable")
        g.index = g.index.astype("datetime64[ns]")
        out[str(asset)] = g
    return out


def sp500_frames() -> dict[str, pd.DataFrame]:
    """The real S&P 500 close with VIX/100 as its implied vol (``arch`` sample data), on the
    S&P trading days where both series exist (2014-2018); a day without a VIX print is a
    missing vol (carried forward by :func:`clean_frames`)."""
    spx = data.sample_data("sp500")["close"]
    vix = data.sample_data("vix")["vix"] / 100.0
    lo, hi = max(spx.index[0], vix.index[0]), min(spx.index[-1], vix.index[-1])
    spx = spx[(spx.index >= lo) & (spx.index <= hi)]
    vol = vix.reindex(spx.index)
    return {SP500_ASSET: pd.DataFrame({"price": spx.to_numpy(), "vol": vol.to_numpy()},
                                      index=spx.index)}


# --------------------------------------------------------------------------- cleaning
def clean_frames(frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Check every asset's data and carry a missing vol forward (<= ``MAX_VOL_GAP`` days).

    Raises ``ValueError`` naming the asset and the date of the first bad row."""
    if not frames:
        raise ValueError("no assets in the data")
    out = {}
    for asset, f in frames.items():
        who = f"asset {asset!r}"
        missing = [c for c in FIELDS if c not in f.columns]
        if missing:
            raise ValueError(f"{who}: missing column(s) {missing}")
        if len(f) == 0:
            raise ValueError(f"{who}: no rows")
        idx = pd.DatetimeIndex(f.index)
        if len(idx) > 1:
            bad = np.flatnonzero(np.diff(idx.asi8) <= 0)
            if bad.size:
                j = int(bad[0]) + 1
                kind = "duplicate date" if idx[j] == idx[j - 1] else "dates not increasing"
                raise ValueError(f"{who} on {_day(idx[j])}: {kind}")
        price = f["price"].to_numpy(dtype=np.float64)
        vol = f["vol"].to_numpy(dtype=np.float64)
        for rule, mask in (("price is NaN or inf", ~np.isfinite(price)),
                           ("price <= 0", price <= 0),
                           ("vol is inf", np.isinf(vol)),
                           ("vol <= 0", vol <= 0)):
            hits = np.flatnonzero(mask)
            if hits.size:
                k = int(hits[0])
                raise ValueError(f"{who} on {_day(idx[k])}: {rule} "
                                 f"(price={price[k]!r}, vol={vol[k]!r})")
        vol = carry_vol_forward(vol, idx, asset)
        out[str(asset)] = pd.DataFrame({"price": price, "vol": vol},
                                       index=idx.astype("datetime64[ns]").rename("date"))
    return out


def carry_vol_forward(vol: np.ndarray, dates: pd.DatetimeIndex, asset: str,
                      max_gap: int = MAX_VOL_GAP) -> np.ndarray:
    """Fill NaN vols with the last quote when the gap is at most ``max_gap`` trading days."""
    nan = np.isnan(vol)
    if not nan.any():
        return vol
    if nan[0]:
        raise ValueError(f"asset {asset!r} on {_day(dates[0])}: vol is missing and there is "
                         "no earlier quote to carry forward")
    # run lengths of consecutive NaNs: the first day of a run longer than max_gap names it
    pos = np.arange(len(vol))
    last_quote = np.maximum.accumulate(np.where(nan, 0, pos))
    gap = pos - last_quote
    too_long = np.flatnonzero(gap > max_gap)
    if too_long.size:
        k = int(too_long[0])
        first = int(last_quote[k]) + 1
        run = int(np.argmax(~nan[first:])) if (~nan[first:]).any() else len(vol) - first
        raise ValueError(f"asset {asset!r} on {_day(dates[first])}: vol gap of {run} trading "
                         f"days (missing vol is carried forward for at most {max_gap} days)")
    return vol[last_quote]


# --------------------------------------------------------------------------- store
def build_store(frames: Mapping[str, pd.DataFrame]) -> data.PriceStore:
    """Clean the frames and put them in the shared memory-mapped price store."""
    return data.PriceStore.build(clean_frames(frames), fields=FIELDS)


_CHECKED: set[str] = set()  # content keys of stores already checked in this process


def check_store(store: data.PriceStore) -> data.PriceStore:
    """A store handed in directly must carry ``price`` and ``vol`` with a quote every day
    the asset trades (what :func:`build_store` guarantees). A store's content is fixed by
    its key (a content hash), so each one is checked once per process."""
    if not isinstance(store, data.PriceStore):
        raise ValueError(f"market must be a PriceStore, got {type(store).__name__}")
    if store.key in _CHECKED:
        return store
    missing = [f for f in FIELDS if f not in store.fields]
    if missing:
        raise ValueError(f"the price store lacks field(s) {missing} (has {list(store.fields)})")
    price, vol = np.asarray(store["price"]), np.asarray(store["vol"])
    trades = np.isfinite(price)
    bad = (trades & ~(np.isfinite(vol) & (vol > 0))) | (trades & (price <= 0)) | np.isinf(price)
    if bad.any():
        r, c = (int(x[0]) for x in np.nonzero(bad))
        raise ValueError(f"asset {store.symbols[c]!r} on {_day(store.dates[r])}: bad price/vol "
                         f"(price={price[r, c]!r}, vol={vol[r, c]!r}); build the store "
                         "with straddles.build_store")
    _CHECKED.add(store.key)
    return store


def select_assets(store: data.PriceStore, assets) -> list[str]:
    """The asset names to trade: ``None``/``"all"`` for every asset in the store, an int for
    the first n, or names (a list or a comma-separated string)."""
    have = list(store.symbols)
    if assets is None or (isinstance(assets, str) and assets.strip().lower() == "all"):
        return have
    if isinstance(assets, str):
        assets = [s.strip() for s in assets.split(",") if s.strip()]
    if isinstance(assets, (list, tuple)):
        names = [str(a) for a in assets]
        if not names:
            raise ValueError("assets must not be empty")
        if len(set(names)) != len(names):
            raise ValueError(f"assets has duplicates: {names}")
        for a in names:
            if a not in store.symbols:
                raise ValueError(f"unknown asset {a!r}; the data has "
                                 f"{have[:10]}{' ...' if len(have) > 10 else ''}")
        return names
    n = as_int("assets", assets, min=1)
    if n > len(have):
        raise ValueError(f"assets={n} but the data has only {len(have)} asset(s): {have[:10]}")
    return have[:n]


def load_market(source: str = "synthetic", assets=8, start_year: int = 2001,
                end_year: int = 2024, tenor: int = 63, path: str | os.PathLike | None = None,
                seed: int = 0, vol_premium: float = 0.02) -> tuple[data.PriceStore, list[str]]:
    """``(store, asset names)`` for a data source (see the module docstring)."""
    from ..params import one_of
    source = one_of("source", source, SOURCES)
    if source == "synthetic":
        store = build_store(synthetic_frames(assets, start_year, end_year, tenor, seed,
                                             vol_premium))
        return store, list(store.symbols)
    if source == "file":
        if path is None or str(path).strip() == "":
            raise ValueError("source='file' needs path= (a CSV/Parquet with date, asset, price, vol)")
        store = build_store(file_frames(path))
    else:
        store = build_store(sp500_frames())
    return store, select_assets(store, assets)
