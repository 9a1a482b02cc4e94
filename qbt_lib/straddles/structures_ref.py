"""The reference for structures, costs and exits: one straddle at a time, in plain Python.

The seed's reference (``reference.py``: the prices dict, the calendar, the straddle's days)
with a valuation of two legs struck apart (``spec.strikes_scalar``), the costs and the exit
rule of ``spec`` applied close by close. Every expression is written in the order the fast
paths evaluate it (``structures.py``, ``structures_nb.py``); with the seed's spec the
numbers are the seed reference's bit for bit (tested): the straddle's ``2 phi`` is here
``phi_call + phi_put``, which is the same float.

Per straddle, day ``k = 0 .. e`` (``e``: the exit day, ``T`` = tenor at expiry):

- legs: call ``C = D (S N(d1c) - Kc N(d2c))``, put ``P = D (Kp N(-d2p) - S N(-d1p))``,
  ``value = C + P``, ``delta = D (N(d1c) - N(-d1p))``, ``gamma = D (phi_c + phi_p) / (S sq)``,
  ``vega = D S (phi_c + phi_p) sqrt(tau)``, ``theta = (r value - D S (phi_c + phi_p) sigma /
  (2 sqrt(tau))) / 365`` (a missing leg contributes 0); at expiry intrinsic values;
- costs: ``cost_0`` = one crossing of the spread at entry, ``cost_e`` = one at an exit
  before expiry; ``hedge_cost_k = c S_k |h_k - h_{k-1}|`` with the hedge ``h_k = delta_k``
  for ``k < e``, ``h_e = 0`` (unwound), ``c = bps / 1e4``;
- P&L: ``pnl_k = side (value_k - value_{k-1}) - cost_k`` (``0 - cost_0`` on entry),
  ``hedge_pnl_k = -delta_{k-1} (S_k - S_{k-1}) side - hedge_cost_k``; ``cum_pnl`` their
  running sums (the hedge's when ``hedge``);
- exit at close ``k`` (1 <= k < T) when ``k`` = the days of ``days:N``, or the mark
  ``cum_pnl_{k-1} + side (value_k - value_{k-1})`` (+ the hedge's day, when ``hedge``)
  reaches ``+X`` or ``-Y`` x premium (``value_0``); else at expiry.
"""
from __future__ import annotations

import math

from .core import ACTIONS, CALENDAR_DAYS, INV_SQRT2, INV_SQRT_2PI, TRADING_DAYS
from .layout import X_ROW_COLUMNS, X_SUMMARY_COLUMNS
from .reference import lookup_prices, run_grid, straddle_days
from .spec import EXIT_REASONS, Spec, strikes_scalar

COLUMNS = [name for name, _ in X_ROW_COLUMNS]
SUMMARY = list(X_SUMMARY_COLUMNS)


def legs(S, vol, k, tenor, rate, Kc, Kp, lnKc, lnKp, has_call, has_put):
    """``[tau, call, put, value, delta, gamma, vega, theta]`` of the structure on day k."""
    tau = (tenor - k) / TRADING_DAYS
    if k < tenor:
        st = math.sqrt(tau)
        disc = math.exp(-rate * tau)
        sq = vol * st
        lnS = math.log(S)
        call = dlc = pc = 0.0
        put = dlp = pp = 0.0
        if has_call:
            d1 = (lnS - lnKc + 0.5 * sq * sq) / sq
            d2 = d1 - sq
            a1 = 0.5 * math.erfc(abs(d1) * INV_SQRT2)   # N(-|d1|)
            a2 = 0.5 * math.erfc(abs(d2) * INV_SQRT2)
            nd1 = 1.0 - a1 if d1 >= 0 else a1
            nd2 = 1.0 - a2 if d2 >= 0 else a2
            pc = math.exp(-0.5 * d1 * d1) * INV_SQRT_2PI
            call = disc * (S * nd1 - Kc * nd2)
            dlc = nd1
        if has_put:
            d1 = (lnS - lnKp + 0.5 * sq * sq) / sq
            d2 = d1 - sq
            a1 = 0.5 * math.erfc(abs(d1) * INV_SQRT2)
            a2 = 0.5 * math.erfc(abs(d2) * INV_SQRT2)
            nm1 = a1 if d1 >= 0 else 1.0 - a1
            nm2 = a2 if d2 >= 0 else 1.0 - a2
            pp = math.exp(-0.5 * d1 * d1) * INV_SQRT_2PI
            put = disc * (Kp * nm2 - S * nm1)
            dlp = nm1
        value = call + put
        psum = pc + pp
        delta = disc * (dlc - dlp)
        gamma = disc * psum / (S * sq)
        vega = disc * S * psum * st
        theta = (rate * value - disc * S * psum * vol / (2.0 * st)) / CALENDAR_DAYS
    else:
        call = max(S - Kc, 0.0) if has_call else 0.0
        put = max(Kp - S, 0.0) if has_put else 0.0
        value = call + put
        delta = ((1.0 if has_call and S > Kc else 0.0)
                 + (-1.0 if has_put and S < Kp else 0.0))
        gamma = vega = theta = 0.0
    return [tau, call, put, value, delta, gamma, vega, theta]


def crossing(spec: Spec, value: float, vega: float) -> float:
    """What one crossing of the bid-ask spread costs."""
    if spec.spread_kind == "vol":
        return spec.half_spread * vega
    if spec.spread_kind == "premium":
        return spec.half_spread * value
    return 0.0


def straddle_rows(prices, asset, year, month, i, sid, calendar, month_days, tenor, rate,
                  side, hedge, spec: Spec):
    """The rows (lists) and the summary row of one structure, or a skip reason."""
    days, why = straddle_days(calendar, month_days, year, month, i, tenor)
    if why is not None:
        return None, None, why
    table = lookup_prices(prices, asset, days)
    S0, vol0 = table[0][1], table[0][2]
    tau0 = tenor / TRADING_DAYS
    Kc, Kp = strikes_scalar(spec, S0, vol0, math.sqrt(tau0), math.exp(-rate * tau0))
    lnKc, lnKp = math.log(Kc), math.log(Kp)
    c = spec.hedge_cost
    vals = []
    rows = []
    cp = ch = csum = hsum = 0.0
    reason = 0
    for k, (d, S, vol) in enumerate(table):
        v = legs(S, vol, k, tenor, rate, Kc, Kp, lnKc, lnKp, spec.has_call, spec.has_put)
        vals.append(v)
        tau, call, put, value, delta, gamma, vega, theta = v
        if k == 0:
            cost = crossing(spec, value, vega)
            hcost = c * S * abs(delta)
            pnl = 0.0 - cost
            hpnl = 0.0 - hcost
            done = False
        else:
            S_prev, value_prev, delta_prev = table[k - 1][1], vals[k - 1][3], vals[k - 1][4]
            g = side * (value - value_prev)
            hg = -delta_prev * (S - S_prev) * side
            mark = (cp + g) + (ch + hg) if hedge else cp + g
            premium = vals[0][3]
            if k == tenor:
                done, reason = True, 0
            elif mark >= spec.exit_profit * premium:
                done, reason = True, 2
            elif mark <= -(spec.exit_loss * premium):
                done, reason = True, 3
            elif k == spec.exit_days:
                done, reason = True, 1
            else:
                done = False
            if done:
                cost = crossing(spec, value, vega) if k < tenor else 0.0
                hcost = c * S * abs(delta_prev)
            else:
                cost = 0.0
                hcost = c * S * abs(delta - delta_prev)
            pnl = g - cost
            hpnl = hg - hcost
        cp += pnl
        ch += hpnl
        csum += cost
        hsum += hcost
        act = ACTIONS[0] if k == 0 else (ACTIONS[2] if done else ACTIONS[1])
        rows.append([asset, year, month, i, sid, d, k, S, S0, Kc, Kp, vol, tau, call, put,
                     value, delta, gamma, vega, theta, act, pnl, hpnl, cost, hcost,
                     cp + ch if hedge else cp])
        if done:
            break
    entry_value, exit_value = rows[0][15], rows[-1][15]
    hedged = cp + ch
    summary = [asset, year, month, i, sid, rows[0][5], rows[-1][5], S0, entry_value,
               exit_value, rows[-1][7], cp, ch, hedged, cp / entry_value,
               hedged / entry_value, Kc, Kp, csum, hsum, len(rows) - 1, EXIT_REASONS[reason]]
    return rows, summary, None


def run(prices: dict[str, float], assets: list[str], start_year: int, end_year: int,
        per_month: int, tenor: int, rate: float, side: float, hedge: bool,
        spec: Spec) -> dict:
    """Every structure of the grid, one at a time (``reference.run``'s grid)."""
    return run_grid(prices, assets, start_year, end_year, per_month,
                    lambda *key: straddle_rows(*key, tenor, rate, side, hedge, spec),
                    COLUMNS, SUMMARY)
