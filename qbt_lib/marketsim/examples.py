"""Example own strategies (``marketsim.user``): pass them as
``user_strategies=["qbt_lib.marketsim.examples:confident", ...]`` or as functions.

Each is ``f(forecast, band, history) -> positions`` over one series of days (see
``user.py``): position ``t`` may use ``forecast[:t+1]``, ``band[:t+1]`` and ``history[:t]``.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def confident(forecast, band, history):
    """The forecast close direction, only when the point forecast is further from zero than
    half the 40-60 band width (a Numba function: runs compiled)."""
    n = forecast.shape[0]
    out = np.zeros(n, np.int8)
    for t in range(n):
        c = forecast[t, 0]
        if abs(c) > 0.5 * band[t, 0]:
            out[t] = 1 if c > 0.0 else -1
    return out


def follow_hits(forecast, band, history):
    """The forecast close direction, only on the day after a right call (plain NumPy)."""
    call = np.sign(forecast[:, 0])
    right = np.zeros(len(call), dtype=bool)
    right[1:] = call[:-1] * history[:-1, 0] > 0
    return np.where(right, call, 0.0).astype(np.int8)


def peek(forecast, band, history):
    """Deliberately wrong: trades today's actual close direction (looks ahead). The guard
    stops a run that registers it."""
    return np.nan_to_num(np.sign(history[:, 0])).astype(np.int8)
