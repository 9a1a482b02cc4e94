"""The book: daily mark-to-market P&L of all open positions, netted by date.

Every straddle is one position, sized to one unit of its premium (``normalize="premium"``:
each row's P&L divided by the structure's mid value at entry) or of its notional
(``"notional"``: divided by the entry price ``K``, i.e. per 1 of underlying); a short position
is sized by the premium it received. The book's P&L on a date is the sum, over every
position with a row that date, of the day's net P&L (option P&L, plus the delta hedge's when
``hedge``; costs included): overlapping straddles are netted by date instead of being booked
at their exit dates. ``equity`` is the running sum, ``drawdown`` the distance below its
running peak (the peak starting at 0). Units: premiums (or notionals) of one straddle.

Determinism: the per-date sums are accumulated row by row in straddle order (``np.add.at``,
unbuffered and in order), so the book depends only on the rows, which are the same for any
``n_jobs``, backend and chunk size; a dataset is read part after part in the same order.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from ..params import one_of

NORMALIZE = ("premium", "notional")
TRADING_DAYS = 252


def _np(t, name: str) -> np.ndarray:
    if isinstance(t, pa.Table):
        col = t[name]
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        return col.to_numpy()
    a = t[name]
    if pd.api.types.is_datetime64_any_dtype(a):
        return a.to_numpy().astype("datetime64[ns]").view(np.int64)
    return a.to_numpy()


def contributions(t, hedge: bool, normalize: str) -> tuple[np.ndarray, np.ndarray]:
    """``(date ns, normalized P&L)`` of every row of a table of whole straddles."""
    day = _np(t, "day").astype(np.int64)
    pnl = _np(t, "pnl")
    if hedge:
        pnl = pnl + _np(t, "hedge_pnl")
    if normalize == "premium":
        value = _np(t, "value")
        norm = value[np.arange(len(day)) - day]   # the straddle's entry row
    else:
        norm = _np(t, "K")
    return _np(t, "date"), pnl / norm


def daily_book(parts: Iterable, calendar: np.ndarray, hedge: bool = True,
               normalize: str = "premium") -> pd.DataFrame:
    """The book over ``calendar`` (int64 ns trading days, sorted) from row tables of whole
    straddles in straddle order (Arrow tables or DataFrames): one row per date from the
    first to the last date any position has a row, with ``pnl``, ``open`` (positions with a
    row that date, entry and exit days included), ``equity`` and ``drawdown``."""
    normalize = one_of("normalize", normalize, NORMALIZE)
    calendar = np.asarray(calendar, np.int64)
    acc = np.zeros(calendar.shape[0])
    cnt = np.zeros(calendar.shape[0], np.int64)
    for t in parts:
        date, contrib = contributions(t, hedge, normalize)
        ix = np.searchsorted(calendar, date)
        if ix.size and (ix.max() >= calendar.shape[0] or (calendar[ix] != date).any()):
            raise ValueError("row dates outside the calendar of the run")
        np.add.at(acc, ix, contrib)    # in row order: the same sums for any chunking
        cnt += np.bincount(ix, minlength=calendar.shape[0])
    used = np.flatnonzero(cnt)
    if used.size == 0:
        raise ValueError("no rows: the book is empty")
    sl = slice(int(used[0]), int(used[-1]) + 1)
    pnl = acc[sl]
    equity = np.cumsum(pnl)
    peak = np.maximum.accumulate(np.maximum(equity, 0.0))
    return pd.DataFrame({"pnl": pnl, "open": cnt[sl], "equity": equity,
                         "drawdown": equity - peak},
                        index=pd.DatetimeIndex(calendar[sl].view("datetime64[ns]"),
                                               name="date"))


def max_drawdown(pnl: np.ndarray) -> float:
    """The deepest fall of the running sum of ``pnl`` below its running peak (from 0)."""
    equity = np.cumsum(pnl)
    return float((equity - np.maximum.accumulate(np.maximum(equity, 0.0))).min()) \
        if equity.size else 0.0


def per_year(book: pd.DataFrame) -> pd.DataFrame:
    """Per calendar year of a :func:`daily_book`: P&L, days, annualized volatility and
    Sharpe ratio of the daily P&L (``sqrt(252)``, no risk-free rate: the P&L is already an
    excess over financing), the year's own maximum drawdown, the worst day and the mean
    number of open positions; last row ``"all"``, the whole book."""
    rows = {}
    groups = [(str(y), g) for y, g in book.groupby(book.index.year)] + [("all", book)]
    for name, g in groups:
        p = g["pnl"].to_numpy()
        sd = float(np.std(p, ddof=1)) if p.size > 1 else float("nan")
        rows[name] = {"pnl": float(p.sum()), "days": int(p.size),
                      "ann_vol": sd * np.sqrt(TRADING_DAYS),
                      "sharpe": float(p.mean()) / sd * np.sqrt(TRADING_DAYS)
                      if sd > 0 else float("nan"),
                      "max_drawdown": max_drawdown(p), "worst_day": float(p.min()),
                      "mean_open": float(g["open"].mean())}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "year"
    return out


def structure_table(runs: dict, normalize: str = "premium") -> pd.DataFrame:
    """One row per backtest of ``runs`` (``{label: Backtest}`` with rows kept), side by
    side: per straddle the mean premium, returns (plain and delta-hedged, net of costs),
    win rate, costs as a share of the premium and days held; for the book (normalized by
    ``normalize``) its P&L, annualized Sharpe ratio and maximum drawdown."""
    out = {}
    for label, bt in runs.items():
        s = bt.summary
        costs = (s["cost"] + s["hedge_cost"]) if "cost" in s.columns else 0.0 * s["pnl"]
        days = s["exit_day"] if "exit_day" in s.columns else \
            pd.Series(float(bt.schedule.tenor), index=s.index)
        whole = per_year(bt.portfolio(normalize)).loc["all"]
        out[label] = {"straddles": len(s), "mean_premium": float(s["entry_value"].mean()),
                      "mean_return": float(s["return"].mean()),
                      "mean_hedged_return": float(s["hedged_return"].mean()),
                      "win_rate": float((s["pnl"] > 0).mean()),
                      "cost_of_premium": float((costs / s["entry_value"]).mean()),
                      "mean_days_held": float(days.mean()), "book_pnl": whole["pnl"],
                      "book_sharpe": whole["sharpe"],
                      "book_max_drawdown": whole["max_drawdown"]}
    df = pd.DataFrame.from_dict(out, orient="index")
    df.index.name = "structure"
    return df
