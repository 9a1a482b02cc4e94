"""The reference: the original backtest's shape, kept as the "before" and the oracle.

Prices live in one dict keyed ``"asset|field|YYYY-MM-DD"`` (the original's ``prices_dict``);
the backtest loops over straddles in Python and runs the original's per-straddle pipeline:
the straddle's days, a price table looked up day by day in the dict, the actions, the
valuation with ``math`` (erfc, the complement of ``math.erf``, for the normal tail), and
one Python list per row. Obviously correct, and slow: every number is a
boxed Python float and every day costs string formatting and two dict lookups.
"""
from __future__ import annotations

import math

import numpy as np

from .core import ACTIONS, CALENDAR_DAYS, INV_SQRT2, INV_SQRT_2PI, ROW_COLUMNS, TRADING_DAYS

COLUMNS = [name for name, _ in ROW_COLUMNS]
SUMMARY = ["asset", "year", "month", "i", "straddle_id", "entry_date", "exit_date", "K",
           "entry_value", "exit_value", "exit_price", "pnl", "hedge_pnl", "hedged_pnl",
           "return", "hedged_return"]


def build_prices_dict(store, assets) -> dict[str, float]:
    """The original's ``prices_dict``: ``{"asset|price|2001-01-02": 123.4, ...}`` for the
    days each asset trades."""
    days = np.datetime_as_string(store.dates.values.astype("datetime64[D]"), unit="D").tolist()
    price_m, vol_m = store["price"], store["vol"]
    prices: dict[str, float] = {}
    for a in assets:
        j = store.symbol_index(a)
        p = np.asarray(price_m[:, j]).tolist()
        v = np.asarray(vol_m[:, j]).tolist()
        for d, pv, vv in zip(days, p, v):
            if pv == pv:  # NaN: the asset does not trade that day
                prices[f"{a}|price|{d}"] = pv
                prices[f"{a}|vol|{d}"] = vv
    return prices


def asset_calendar(prices: dict[str, float], asset: str) -> list[str]:
    """The asset's trading days, from the dict's keys (as the original filtered tickers)."""
    head = f"{asset}|price|"
    return sorted(k[len(head):] for k in prices if k.startswith(head))


def straddle_days(calendar, month_days, year, month, i, tenor):
    """The trading days of a straddle's life, entry .. expiry, or a skip reason."""
    days_in_month = month_days.get((year, month), [])
    if i >= len(days_in_month):
        return None, "no such trading day in the month"
    e = days_in_month[i]
    if e + tenor >= len(calendar):
        return None, "expiry beyond the data"
    return calendar[e:e + tenor + 1], None


def lookup_prices(prices, asset, days):
    """``[date, price, vol]`` per day from the prices dict."""
    return [[d, prices[f"{asset}|price|{d}"], prices[f"{asset}|vol|{d}"]] for d in days]


def actions(n_days):
    """``entry`` on the first day, ``exit`` on the last, ``hold`` between."""
    return [ACTIONS[0]] + [ACTIONS[1]] * (n_days - 2) + [ACTIONS[2]]


def valuation(table, acts, tenor, rate):
    """Black-76 value and greeks per day: ``[tau, call, put, value, delta, gamma, vega,
    theta]`` (the formulas of ``core``, term by term)."""
    K = table[0][1]
    lnK = math.log(K)
    out = []
    for k, (d, S, vol) in enumerate(table):
        tau = (tenor - k) / TRADING_DAYS
        if acts[k] != ACTIONS[2]:
            st = math.sqrt(tau)
            disc = math.exp(-rate * tau)
            sq = vol * st
            d1 = (math.log(S) - lnK + 0.5 * sq * sq) / sq
            d2 = d1 - sq
            a1 = 0.5 * math.erfc(abs(d1) * INV_SQRT2)   # N(-|d1|)
            a2 = 0.5 * math.erfc(abs(d2) * INV_SQRT2)
            nd1, nm1 = (1.0 - a1, a1) if d1 >= 0 else (a1, 1.0 - a1)
            nd2, nm2 = (1.0 - a2, a2) if d2 >= 0 else (a2, 1.0 - a2)
            pdf = math.exp(-0.5 * d1 * d1) * INV_SQRT_2PI
            call = disc * (S * nd1 - K * nd2)
            put = disc * (K * nm2 - S * nm1)
            value = call + put
            delta = disc * (nd1 - nm1)
            gamma = 2.0 * disc * pdf / (S * sq)
            vega = 2.0 * disc * S * pdf * st
            theta = (rate * value - disc * S * pdf * vol / st) / CALENDAR_DAYS
        else:
            call = max(S - K, 0.0)
            put = max(K - S, 0.0)
            value = call + put
            delta = 1.0 if S > K else (-1.0 if S < K else 0.0)
            gamma = vega = theta = 0.0
        out.append([tau, call, put, value, delta, gamma, vega, theta])
    return out


def straddle_rows(prices, asset, year, month, i, sid, calendar, month_days, tenor, rate,
                  side, hedge):
    """The rows of one straddle (list of lists) and its summary row, or a skip reason:
    days -> prices -> actions -> valuation -> P&L, as the original's pipeline."""
    days, why = straddle_days(calendar, month_days, year, month, i, tenor)
    if why is not None:
        return None, None, why
    table = lookup_prices(prices, asset, days)
    acts = actions(len(table))
    vals = valuation(table, acts, tenor, rate)
    K = table[0][1]
    rows = []
    cum_plain = cum_hedge = 0.0
    for k, ((d, S, vol), act, v) in enumerate(zip(table, acts, vals)):
        tau, call, put, value, delta, gamma, vega, theta = v
        if k == 0:
            pnl = hpnl = 0.0
        else:
            pnl = side * (value - vals[k - 1][3])
            hpnl = -vals[k - 1][4] * (S - table[k - 1][1]) * side
        cum_plain += pnl
        cum_hedge += hpnl
        rows.append([asset, year, month, i, sid, d, k, S, K, vol, tau, call, put, value,
                     delta, gamma, vega, theta, act, pnl, hpnl,
                     cum_plain + cum_hedge if hedge else cum_plain])
    entry_value, exit_value = rows[0][13], rows[-1][13]
    hedged = cum_plain + cum_hedge
    summary = [asset, year, month, i, sid, rows[0][5], rows[-1][5], K, entry_value,
               exit_value, rows[-1][7], cum_plain, cum_hedge, hedged,
               cum_plain / entry_value, hedged / entry_value]
    return rows, summary, None


def run(prices: dict[str, float], assets: list[str], start_year: int, end_year: int,
        per_month: int = 8, tenor: int = 63, rate: float = 0.0, side: float = 1.0,
        hedge: bool = True) -> dict:
    """Value every straddle, one at a time. Returns the original's table shape:
    ``{"columns", "rows", "summary_columns", "summary", "skipped"}`` (lists)."""
    return run_grid(prices, assets, start_year, end_year, per_month,
                    lambda *key: straddle_rows(*key, tenor, rate, side, hedge),
                    COLUMNS, SUMMARY)


def run_grid(prices: dict[str, float], assets: list[str], start_year: int, end_year: int,
             per_month: int, value, columns: list[str], summary_columns: list[str]) -> dict:
    """The schedule's grid (asset, year, month, i), one position at a time: ``value(prices,
    asset, y, m, i, sid, calendar, month_days)`` returns its ``(rows, summary, skipped
    reason)``. Shared by :func:`run` and the structures' reference."""
    n_years = end_year - start_year + 1
    rows, summary, skipped = [], [], []
    for code, asset in enumerate(assets):
        calendar = asset_calendar(prices, asset)
        month_days: dict[tuple[int, int], list[int]] = {}
        for pos, d in enumerate(calendar):
            month_days.setdefault((int(d[:4]), int(d[5:7])), []).append(pos)
        for y in range(start_year, end_year + 1):
            for m in range(1, 13):
                for i in range(per_month):
                    sid = ((code * n_years + (y - start_year)) * 12 + (m - 1)) * per_month + i
                    r, s, why = value(prices, asset, y, m, i, sid, calendar, month_days)
                    if why is not None:
                        skipped.append([asset, y, m, i, sid, why])
                        continue
                    rows.extend(r)
                    summary.append(s)
    return {"columns": columns, "rows": rows, "summary_columns": summary_columns,
            "summary": summary, "skipped": skipped}
