"""The reference ("before"): per symbol, per simulation, per day, in plain Python/pandas.

It does what the original did, one step at a time and with no reuse: for every simulation it
truncates the history, and for every day of the evaluation window and every series it slices
the context, refits the model (``np.linalg.lstsq``), draws the bootstrap sample and summarises
it with SciPy/NumPy (``trim_mean``, ``np.percentile``); then it walks the traded days of each
strategy in a Python loop, and grid-searches the maxdiff offsets point by point. It is slow on
purpose and is the oracle the fast engines are tested against.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import trim_mean

from .enums import (BAND_QUANTILES, MAXDIFF_HALF_WIDTH, MAXDIFF_POINTS, MAXDIFF_SHRINK,
                    SERIES, SHARPE_MIN_STD, TRIM)
from .models import Forecaster, stream_keys


def percent_changes(frame: pd.DataFrame) -> pd.DataFrame:
    """close, high, low relative to the previous close (the first row is NaN)."""
    prev = frame["close"].shift(1)
    return pd.DataFrame({"close": frame["close"] / prev - 1.0,
                         "high": frame["high"] / prev - 1.0,
                         "low": frame["low"] / prev - 1.0}, index=frame.index)


def _sign(x: float) -> int:
    return 1 if x > 0 else (-1 if x < 0 else 0)


def strategy_day(strategy: str, c: float, h: float, l: float, r: float, H: float, L: float,
                 long_only: bool, prev_wrong: bool = False, m_h: float = 0.0,
                 m_l: float = 0.0) -> tuple[int, float]:
    """(position, gross return) of one strategy on one day (see the spec for the rules)."""
    if strategy in ("simple", "unprofit_shutdown"):
        pos = _sign(c)
        if long_only and pos < 0:
            pos = 0
        if strategy == "unprofit_shutdown" and prev_wrong:
            pos = 0  # flat the day after a wrong-direction call
        return pos, pos * r
    if strategy == "all_signals":
        pos = 1 if (c > 0 and h > 0 and l > 0) else (-1 if (c < 0 and h < 0 and l < 0) else 0)
        if long_only and pos < 0:
            pos = 0
        return pos, pos * r
    if strategy == "buy_hold":
        return 1, r
    if strategy == "entry_takeprofit":
        if c > 0:
            return 1, (h if H >= h else r)  # take profit at the forecast high if reached
        if c < 0 and not long_only:
            return -1, (-l if L <= l else -r)
        return 0, 0.0
    if strategy == "highlow":
        if c > 0:  # buy at the forecast low if the day trades down to it, sell at the close
            if L <= l and 1.0 + l > 0.0:
                return 1, (1.0 + r) / (1.0 + l) - 1.0
            return 0, 0.0
        if c < 0 and not long_only:
            if H >= h and 1.0 + h > 0.0:
                return -1, 1.0 - (1.0 + r) / (1.0 + h)
            return 0, 0.0
        return 0, 0.0
    if strategy == "maxdiff":
        if abs(h) > abs(l):  # long: enter at l + m_l, exit at h + m_h or the close
            e = l + m_l
            if L <= e and 1.0 + e > 0.0:
                x = h + m_h
                if H >= x:
                    return 1, (1.0 + x) / (1.0 + e) - 1.0
                return 1, (1.0 + r) / (1.0 + e) - 1.0
            return 0, 0.0
        if long_only:
            return 0, 0.0
        e = h + m_h  # short: enter at h + m_h, cover at l + m_l or the close
        if H >= e and 1.0 + e > 0.0:
            x = l + m_l
            if L <= x:
                return -1, 1.0 - (1.0 + x) / (1.0 + e)
            return -1, 1.0 - (1.0 + r) / (1.0 + e)
        return 0, 0.0
    raise ValueError(f"unknown strategy {strategy!r}")


def strategy_window(strategy: str, pred: np.ndarray, act: np.ndarray, fee: float,
                    long_only: bool, m_h: float = 0.0, m_l: float = 0.0
                    ) -> tuple[list[int], list[float]]:
    """Positions and net returns (fee on every change of position) over the traded days."""
    positions: list[int] = []
    nets: list[float] = []
    prev_pos = 0
    prev_wrong = False
    for d in range(len(pred)):
        c, h, l = (float(v) for v in pred[d])
        r, H, L = (float(v) for v in act[d])
        pos, gross = strategy_day(strategy, c, h, l, r, H, L, long_only, prev_wrong, m_h, m_l)
        positions.append(pos)
        nets.append(gross - fee * abs(pos - prev_pos))
        prev_pos = pos
        call = _sign(c)
        if long_only and call < 0:
            call = 0
        prev_wrong = call * r < 0
    return positions, nets


def _window_pnl(nets: list[float]) -> float:
    total = 0.0
    for x in nets:  # left to right, like the kernels (no compensated sum())
        total += x
    return total


def maxdiff_offsets(pred: np.ndarray, act: np.ndarray, fee: float, long_only: bool
                    ) -> tuple[float, float]:
    """Coarse-to-fine grid (33 -> 17 -> 9 points per axis, shrink 0.6) over the offsets."""
    best, best_h, best_l = -math.inf, 0.0, 0.0
    c_h = c_l = 0.0
    w = MAXDIFF_HALF_WIDTH
    for n in MAXDIFF_POINTS:
        for ih in range(n):
            m_h = c_h + w * (2.0 * ih / (n - 1) - 1.0)
            for il in range(n):
                m_l = c_l + w * (2.0 * il / (n - 1) - 1.0)
                v = _window_pnl(strategy_window("maxdiff", pred, act, fee, long_only,
                                                m_h, m_l)[1])
                if v > best:
                    best, best_h, best_l = v, m_h, m_l
        c_h, c_l = best_h, best_l
        w = w * MAXDIFF_SHRINK
    return best_h, best_l


def window_metrics(positions: list[int], nets: list[float], ann: float) -> list[float]:
    """total return, mean daily return, Sharpe, hit rate, number of position changes."""
    n = len(nets)
    growth = 1.0
    s = 0.0
    for x in nets:
        growth *= 1.0 + x
        s += x
    mean = s / n
    var = 0.0
    for x in nets:
        var += (x - mean) * (x - mean)
    std = math.sqrt(var / (n - 1)) if n > 1 else 0.0
    sharpe = mean / std * ann if std > SHARPE_MIN_STD else 0.0
    held = [x for p, x in zip(positions, nets) if p != 0]
    hit = sum(1 for x in held if x > 0) / len(held) if held else 0.0
    trades = sum(1 for a, b in zip([0] + positions[:-1], positions) if a != b)
    return [growth - 1.0, mean, sharpe, hit, float(trades)]


def analyze_symbol(frame: pd.DataFrame, *, symbol_key: int, simulations: int, eval_days: int,
                   context: int, num_samples: int, strategies: list[str], fee: float,
                   ann: float, long_only: bool, forecaster: Forecaster) -> dict:
    """One symbol, the slow way. Returns the same arrays as the fast engines."""
    rets = percent_changes(frame)
    T = len(rets)
    N, E = simulations, eval_days
    point = np.empty((N, E, 3))
    lo = np.empty((N, E, 3))
    hi = np.empty((N, E, 3))
    actual = np.empty((N, E, 3))
    K = len(strategies)
    metrics = np.empty((N, K, 5))
    pos = np.empty((N, K, E - 1), dtype=np.int8)
    net = np.empty((N, K, E - 1))
    mult = np.zeros((N, 2))
    q_lo, q_hi = (100.0 * q for q in BAND_QUANTILES)
    for k in range(N):
        hist = rets.iloc[:T - k]  # simulation k sees the history up to k bars before the end
        n = len(hist)
        for j in range(E):
            d = n - E + j  # forecast day d from the bars before it only
            for s, col in enumerate(SERIES):
                ctx = hist[col].iloc[d - context:d].to_numpy()
                stream = int(stream_keys(symbol_key, k, j, s))
                draws = forecaster.reference_sample(ctx, stream, num_samples)
                point[k, j, s] = trim_mean(draws, TRIM)
                lo[k, j, s], hi[k, j, s] = np.percentile(draws, [q_lo, q_hi])
            actual[k, j] = hist.iloc[d][list(SERIES)].to_numpy()
        pred_k, act_k = point[k, :E - 1], actual[k, :E - 1]  # the last day is "next day"
        for a, strategy in enumerate(strategies):
            m_h = m_l = 0.0
            if strategy == "maxdiff":
                m_h, m_l = maxdiff_offsets(pred_k, act_k, fee, long_only)
                mult[k] = (m_h, m_l)
            p, x = strategy_window(strategy, pred_k, act_k, fee, long_only, m_h, m_l)
            pos[k, a] = p
            net[k, a] = x
            metrics[k, a] = window_metrics(p, x, ann)
    return {"point": point, "lo": lo, "hi": hi, "actual": actual, "metrics": metrics,
            "pos": pos, "net": net, "mult": mult}

