"""The straddle schedule: which straddles exist, and where their days sit in the data.

For each asset, year in ``[start_year, end_year]``, month 1-12 and ``i`` in
``0 .. per_month-1``: entry = the (i+1)-th trading day of that month in the asset's own data,
expiry = entry + ``tenor`` trading days, strike = the price at entry. A straddle that cannot
be entered (the month has fewer than i+1 trading days in the data) or whose expiry lies
beyond the data is skipped and counted.

``straddle_id`` numbers the full grid ``(asset, year, month, i)`` in that order, so a
straddle keeps its id whether or not its neighbours are skipped. Straddles are kept in id
order (asset-major), which is the order of the output rows.

The days of a straddle are contiguous in the asset's trading days, so a chunk of straddles
needs only each asset's ``price, vol, date`` arrays (:func:`asset_days`) and one offset per
straddle: straddle-day k of straddle s is element ``start[s] + k``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import data
from ..params import as_int

MAX_PER_MONTH = 20


@dataclass
class Schedule:
    """The straddles to value (one entry per straddle, id order) and the skipped ones."""

    assets: list[str]          # asset code -> name (the categories of the ``asset`` column)
    columns: np.ndarray        # asset code -> column in the price store
    start_year: int
    end_year: int
    per_month: int
    tenor: int
    asset: np.ndarray          # int32 code
    year: np.ndarray           # int16
    month: np.ndarray          # int8
    i: np.ndarray              # int8: 0-based straddle number within the month
    straddle_id: np.ndarray    # int64
    entry: np.ndarray          # int64: position of the entry day in the asset's trading days
    skipped_parts: list = field(default_factory=list, repr=False)

    @property
    def skipped(self) -> pd.DataFrame:
        """The straddles that cannot be valued (asset, year, month, i, straddle_id, reason),
        in id order; built on demand (most runs skip none, and pandas costs a millisecond)."""
        cols = ("asset", "year", "month", "i", "straddle_id")
        if not self.skipped_parts:
            df = pd.DataFrame({c: np.array([], np.int64) for c in cols})
            df["reason"] = pd.Series([], dtype=object)
        else:
            df = pd.DataFrame({c: np.concatenate([p[c] for p in self.skipped_parts])
                               for c in cols})
            df["reason"] = np.concatenate([np.full(len(p["year"]), p["reason"], dtype=object)
                                           for p in self.skipped_parts])
            df = df.sort_values("straddle_id", kind="stable", ignore_index=True)
        df["asset"] = pd.Categorical.from_codes(df["asset"].to_numpy(np.int64),
                                                categories=self.assets)
        return df

    def __len__(self) -> int:
        return int(self.straddle_id.shape[0])

    @property
    def days(self) -> int:
        """Rows per straddle: entry day .. expiry day inclusive."""
        return self.tenor + 1

    @property
    def straddle_days(self) -> int:
        return len(self) * self.days

    def take(self, lo: int, hi: int) -> "Schedule":
        """Straddles ``[lo, hi)`` (views, no copy); what one chunk task receives."""
        return Schedule(self.assets, self.columns, self.start_year, self.end_year,
                        self.per_month, self.tenor, self.asset[lo:hi], self.year[lo:hi],
                        self.month[lo:hi], self.i[lo:hi], self.straddle_id[lo:hi],
                        self.entry[lo:hi])

    def frame(self) -> pd.DataFrame:
        """The schedule as a table (one row per straddle to value)."""
        return pd.DataFrame({
            "asset": pd.Categorical.from_codes(self.asset, categories=self.assets),
            "year": self.year, "month": self.month, "i": self.i,
            "straddle_id": self.straddle_id, "entry": self.entry})


_MONTHS: dict[str, np.ndarray] = {}


def _store_months(store: data.PriceStore) -> np.ndarray:
    """Months since 1970-01 of every store date (cached per store content key)."""
    m = _MONTHS.get(store.key)
    if m is None:
        m = store.dates.values.astype("datetime64[M]").astype(np.int64)
        _MONTHS[store.key] = m
    return m


def build_schedule(store: data.PriceStore, assets: list[str], start_year: int = 2001,
                   end_year: int = 2024, per_month: int = 8, tenor: int = 63) -> Schedule:
    """Every straddle of ``assets`` over the years; see the module docstring."""
    start_year = as_int("start_year", start_year, min=1900, max=2200)
    end_year = as_int("end_year", end_year, min=1900, max=2200)
    per_month = as_int("per_month", per_month, min=1, max=MAX_PER_MONTH)
    tenor = as_int("tenor", tenor, min=1, max=10_000)
    if start_year > end_year:
        raise ValueError(f"empty date range: start_year {start_year} > end_year {end_year}")
    if not assets:
        raise ValueError("assets must not be empty")
    n_years = end_year - start_year + 1
    # the month grid as months since 1970-01 (what datetime64[M] counts)
    grid = (np.arange(start_year, end_year + 1)[:, None] - 1970) * 12 + np.arange(12)[None, :]
    grid = grid.ravel()
    ii = np.arange(per_month)
    price = store["price"]
    cols, parts, skipped = [], [], []
    for code, name in enumerate(assets):
        try:
            col = store.symbol_index(name)
        except ValueError:
            raise ValueError(f"unknown asset {name!r}; the data has {store.symbols[:10]}"
                             f"{' ...' if len(store.symbols) > 10 else ''}") from None
        cols.append(col)
        trades = np.isfinite(np.asarray(price[:, col]))
        months = _store_months(store)[trades]
        n_days = months.shape[0]
        first = np.searchsorted(months, grid, side="left")
        count = np.searchsorted(months, grid, side="right") - first
        entry = first[:, None] + ii[None, :]                       # (months, per_month)
        can_enter = ii[None, :] < count[:, None]
        expires = entry + tenor < n_days
        sid = (code * n_years * 12 + np.arange(n_years * 12))[:, None] * per_month + ii[None, :]
        year = (grid // 12 + 1970)[:, None].repeat(per_month, axis=1)
        month = (grid % 12 + 1)[:, None].repeat(per_month, axis=1)
        ok = can_enter & expires
        parts.append((np.full(int(ok.sum()), code, np.int32), year[ok], month[ok],
                      np.broadcast_to(ii, ok.shape)[ok], sid[ok], entry[ok]))
        for mask, reason in ((~can_enter, "no such trading day in the month"),
                             (can_enter & ~expires, "expiry beyond the data")):
            if mask.any():
                skipped.append({"asset": np.full(int(mask.sum()), code), "year": year[mask],
                                "month": month[mask],
                                "i": np.broadcast_to(ii, mask.shape)[mask],
                                "straddle_id": sid[mask], "reason": reason})
    cat = [np.concatenate([p[k] for p in parts]) for k in range(6)]
    if cat[0].size == 0:
        span = f"{store.dates[0]:%Y-%m-%d} .. {store.dates[-1]:%Y-%m-%d}"
        raise ValueError(f"empty date range: no straddle of {assets[:5]} between {start_year} "
                         f"and {end_year} can be entered and expire inside the data ({span})")
    return Schedule(list(assets), np.asarray(cols, np.int64), start_year, end_year, per_month,
                    tenor, cat[0], cat[1].astype(np.int16), cat[2].astype(np.int8),
                    cat[3].astype(np.int8), cat[4].astype(np.int64), cat[5].astype(np.int64),
                    skipped)


def asset_days(store: data.PriceStore, schedule: Schedule
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(price, vol, date_ns, start)`` for the straddles of ``schedule`` (a chunk).

    The arrays hold the trading days of the assets the chunk touches, one asset after the
    other (contiguous, read from the memory-mapped store); ``start[s]`` is the position of
    straddle s's entry day in them.
    """
    codes = np.unique(schedule.asset)
    price_m, vol_m = store["price"], store["vol"]
    dates = store.dates.asi8
    ps, vs, ds, offsets = [], [], [], np.zeros(len(schedule.assets), np.int64)
    at = 0
    for code in codes:
        col = int(schedule.columns[code])
        p = np.asarray(price_m[:, col])
        trades = np.isfinite(p)
        if trades.all():
            ps.append(np.ascontiguousarray(p))
            vs.append(np.ascontiguousarray(vol_m[:, col]))
            ds.append(dates)
        else:
            ps.append(p[trades])
            vs.append(np.asarray(vol_m[:, col])[trades])
            ds.append(dates[trades])
        offsets[code] = at
        at += ps[-1].shape[0]
    start = offsets[schedule.asset] + schedule.entry
    if len(ps) == 1:
        return ps[0], vs[0], ds[0], start
    return np.concatenate(ps), np.concatenate(vs), np.concatenate(ds), start
