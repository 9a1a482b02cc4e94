"""The fast CPU engine for one symbol: a few calls into the Numba kernels of ``nb.py``.

A task carries only the symbol's last ``context + simulations + eval_days`` bars (close, high,
low), so it pickles small for process/Dask workers; in a thread pool every thread runs the same
compiled kernels with the GIL released.
"""
from __future__ import annotations

import numpy as np

from . import nb
from .enums import (BAND_QUANTILES, MAXDIFF_HALF_WIDTH, MAXDIFF_POINTS, MAXDIFF_SHRINK,
                    SHARPE_MIN_STD, TRIM)
from .models import ARBootstrap, Forecaster, stream_keys

_POINTS = np.array(MAXDIFF_POINTS, dtype=np.int64)


def percent_changes(prices: np.ndarray) -> np.ndarray:
    """``(3, n)`` close/high/low prices -> returns vs the previous close (column 0 is NaN)."""
    y = np.empty_like(prices)
    y[:, 0] = np.nan
    prev = prices[0, :-1]
    np.subtract(prices[:, 1:] / prev, 1.0, out=y[:, 1:])
    return y


def window_days(n_days: int, simulations: int, eval_days: int) -> np.ndarray:
    """``(simulations, eval_days)`` forecast-day index of simulation k, window position j."""
    k = np.arange(simulations)[:, None]
    j = np.arange(eval_days)[None, :]
    return n_days - 1 - k - (eval_days - 1) + j


def forecast_windows(y: np.ndarray, *, symbol_key: int, simulations: int, eval_days: int,
                     context: int, num_samples: int, forecaster: Forecaster):
    """Point, band-low, band-high forecasts ``(simulations, eval_days, 3)`` of one symbol."""
    N, E = simulations, eval_days
    n_days = N + E - 1
    first_day = y.shape[1] - n_days
    shape = (N, E, y.shape[0])
    point, lo, hi = np.empty(shape), np.empty(shape), np.empty(shape)
    q_lo, q_hi = BAND_QUANTILES
    if type(forecaster) is ARBootstrap:
        # one fit per (series, day) -- it does not depend on the simulation -- then the
        # per-simulation bootstrap from the sorted residual pool
        mean = np.empty((y.shape[0], n_days))
        pool = np.empty((y.shape[0], n_days, context - forecaster.order))
        nb.ar_fit_nb(y, first_day, context, forecaster.order, mean, pool)
        pool.sort(axis=2)  # NumPy's sort releases the GIL and beats a Numba sort here
        nb.ar_bootstrap_windows_nb(mean, pool, np.uint64(symbol_key), E, num_samples, TRIM,
                                   q_lo, q_hi, point, lo, hi)
        return point, lo, hi
    # a plug-in forecaster: one batch with every (simulation, day, series) context
    days = first_day + window_days(n_days, N, E)  # (N, E) bar index
    start = days[:, :, None, None] - context + np.arange(context)  # (N, E, 1, context)
    ctx = y[np.arange(y.shape[0])[None, None, :, None], start]  # (N, E, 3, context)
    streams = stream_keys(symbol_key, np.arange(N)[:, None, None], np.arange(E)[None, :, None],
                          np.arange(y.shape[0])[None, None, :])
    draws = np.asarray(forecaster.sample(ctx.reshape(-1, context), streams.reshape(-1),
                                         num_samples), dtype=np.float64)
    if draws.shape != (N * E * y.shape[0], num_samples):
        raise ValueError(f"forecaster {forecaster!r} returned draws of shape {draws.shape}, "
                         f"expected {(N * E * y.shape[0], num_samples)}")
    draws = np.sort(draws, axis=1)
    nb.summarize_sorted_rows_nb(draws, TRIM, q_lo, q_hi, point.reshape(-1), lo.reshape(-1),
                                hi.reshape(-1))
    return point, lo, hi


def analyze_symbol(prices: np.ndarray, *, symbol_key: int, simulations: int, eval_days: int,
                   context: int, num_samples: int, strategy_ids: np.ndarray, fee: float,
                   ann: float, long_only: bool, forecaster: Forecaster) -> dict:
    """Forecasts, strategy metrics, positions and net returns of one symbol.

    ``prices``: ``(3, context + simulations + eval_days)`` close, high, low (oldest first).
    """
    y = percent_changes(np.ascontiguousarray(prices, dtype=np.float64))
    N, E = simulations, eval_days
    point, lo, hi = forecast_windows(y, symbol_key=symbol_key, simulations=N, eval_days=E,
                                     context=context, num_samples=num_samples,
                                     forecaster=forecaster)
    n_days = N + E - 1
    days = y.shape[1] - n_days + window_days(n_days, N, E)
    actual = np.ascontiguousarray(y[:, days].transpose(1, 2, 0))  # (N, E, 3)
    K = len(strategy_ids)
    metrics = np.empty((N, K, 5))
    pos = np.empty((N, K, E - 1), dtype=np.int8)
    net = np.empty((N, K, E - 1))
    mult = np.empty((N, 2))
    nb.evaluate_windows_nb(np.ascontiguousarray(point[:, :E - 1]),
                           np.ascontiguousarray(actual[:, :E - 1]),
                           np.asarray(strategy_ids, dtype=np.int64), float(fee), float(ann),
                           bool(long_only), MAXDIFF_HALF_WIDTH, MAXDIFF_SHRINK, _POINTS,
                           SHARPE_MIN_STD, metrics, pos, net, mult)
    return {"point": point, "lo": lo, "hi": hi, "actual": actual, "metrics": metrics,
            "pos": pos, "net": net, "mult": mult}
