"""Straddle market data: per asset an underlying price and an annualised implied vol.

Every source goes through :func:`qbt_lib.data.load` (``source`` is ``"synthetic"``,
``"sp500"``, a CSV/Parquet file, a directory, a Hive-partitioned dataset, a DataFrame or a
dict of frames; ``assets`` selects the symbols with the same rules as ``symbols`` elsewhere)
and gives ``{asset: DataFrame[price, vol]}`` on the asset's own trading days, which
:func:`clean_frames` checks and :func:`build_store` puts into the shared
:class:`qbt_lib.data.PriceStore` (fields ``price`` and ``vol``, dates x assets, memory-mapped
by every worker). The price is the (adjusted) close.

The implied vol (``vol``):

- ``"column"`` (default): the data's ``vol`` column (decimal: 0.2 = 20%; a column that looks
  like percent, median > 3, is refused); for ``"sp500"`` the VIX / 100 (``arch`` ships both),
  over the years both exist (2014-2018); ``synthetic``: the GARCH model's conditional vol plus
  a premium, the way option-implied vol tracks realised vol and sits above it on average;
- ``"realized:N"``: annualised close-to-close vol over the past N bars, known at each close
  (no look-ahead); the N bars before the first vol serve as warm-up.

Data rules (``ValueError`` naming the asset and the date): prices are validated by the data
layer; vol > 0; a missing (NaN) vol is carried forward from the last quote for up to
``MAX_VOL_GAP`` trading days, a longer gap (or a missing first quote) is an error.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import data
from ..params import as_float, as_int

FIELDS = ("price", "vol")
MAX_VOL_GAP = 5
SP500_ASSET = data.SP500
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


SYNTHETIC_YEARS = (2001, 2024)   # start_year/end_year=None on the synthetic source


def market_frames(source: Any = "synthetic", assets: Any = None, start_year: Any = None,
                  end_year: Any = None, tenor: int = 63, seed: int = 0,
                  vol_premium: float = 0.02, vol: Any = "column",
                  adjust: bool = True) -> dict[str, pd.DataFrame]:
    """``{asset: DataFrame[price, vol]}`` of any source (see the module docstring).
    ``start_year=None``: the synthetic market's 2001, or a real source's first bar."""
    kind, window = data.parse_vol(vol)
    if start_year is not None:
        start_year = as_int("start_year", start_year, min=1900, max=2200)
    src = data.check_source(source)
    syn_years = (SYNTHETIC_YEARS[0] if start_year is None else start_year,
                 SYNTHETIC_YEARS[1] if end_year is None else end_year)
    frames = data.load(
        src, assets, param="assets", start=None if start_year is None else f"{start_year}-01-01",
        warmup=window, adjust=adjust, require=("close",), keep=("vol",),
        synthetic=lambda sy: synthetic_frames(data.generator_symbols(sy, 8, "assets"),
                                              *syn_years, tenor, seed, vol_premium))
    if kind == "column" and isinstance(src, str) and src == "sp500":
        frames = _with_vix(frames)
    out = {}
    for asset, f in frames.items():
        close = f["close"].to_numpy()
        if kind == "realized":
            v = data.realized_vol(close, window)
            keep = np.isfinite(v)
            out[asset] = pd.DataFrame({"price": close[keep], "vol": v[keep]},
                                      index=f.index[keep])
            continue
        if "vol" not in f.columns:
            raise ValueError(f"asset {asset!r}: the data has no vol column; add one (decimal, "
                             "0.2 = 20%) or pass vol='realized:20' for realised vol")
        data.check_vol_units(f["vol"].to_numpy(), f"asset {asset!r}")
        out[asset] = pd.DataFrame({"price": close, "vol": f["vol"].to_numpy()}, index=f.index)
    return out


def _with_vix(frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The S&P 500 with VIX/100 as its vol, on the days both series cover; a day without a
    VIX print is a missing vol (carried forward by :func:`clean_frames`)."""
    vix = data.vix() / 100.0
    out = {}
    for asset, f in frames.items():
        f = f[(f.index >= vix.index[0]) & (f.index <= vix.index[-1])]
        if len(f) == 0:
            raise ValueError(f"asset {asset!r}: no bars in the VIX's range "
                             f"{vix.index[0]:%Y-%m-%d}..{vix.index[-1]:%Y-%m-%d}")
        out[asset] = f.assign(vol=vix.reindex(f.index).to_numpy())
    return out


def sp500_frames() -> dict[str, pd.DataFrame]:
    """The real S&P 500 close with VIX/100 as its implied vol (``arch`` sample data)."""
    return market_frames("sp500", start_year=1999)


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
    """The asset names to trade from a store: ``None``/``"all"`` for every asset, an int for
    the first n, or names (the rules of ``qbt_lib.data.select_symbols``)."""
    return data.select_symbols(store.symbols, assets, param="assets", source="the data")


def load_market(source: Any = "synthetic", assets: Any = None, start_year: Any = None,
                end_year: Any = None, tenor: int = 63, seed: int = 0,
                vol_premium: float = 0.02, vol: Any = "column",
                adjust: bool = True) -> tuple[data.PriceStore, list[str]]:
    """``(store, asset names)`` for any source (see the module docstring). ``assets``:
    ``None``/``"all"`` (8 synthetic assets, or every asset of the data), a count (the first
    N) or names."""
    frames = market_frames(source, assets, start_year, end_year, tenor, seed, vol_premium,
                           vol, adjust)
    store = build_store(frames)
    return store, list(frames)


def data_years(store: data.PriceStore, assets: Sequence[str], start_year: Any = None,
               end_year: Any = None, source: Any = None) -> tuple[int, int]:
    """The schedule's years: as given, else 2001-2024 on the synthetic market (its data runs
    a tenor past the end), else the first and last year the assets trade."""
    if isinstance(source, str) and source.strip().lower() == "synthetic":
        return (SYNTHETIC_YEARS[0] if start_year is None else start_year,
                SYNTHETIC_YEARS[1] if end_year is None else end_year)
    price = store["price"]
    cols = [store.symbol_index(a) for a in assets]
    trades = np.isfinite(np.asarray(price[:, cols])).any(axis=1)
    days = store.dates[trades]
    if len(days) == 0:
        raise ValueError("the selected assets have no prices")
    return (days[0].year if start_year is None else start_year,
            days[-1].year if end_year is None else end_year)
