"""Numba kernels of the synth workload: arrays and explicit sizes only, preallocated outputs.

The fused gather+scale reads a sample's window straight from the price matrix and writes the
scaled float32 window once (no float64 temporaries): per field a contiguous run of
``lookback`` prices times the key's scale factor. ``*_par_nb`` split the samples over Numba
threads (``prange``); the serial ``*_nb`` run inside chunk tasks, where the parallel layer
already runs one task per core (and nested thread pools would oversubscribe it).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _scale_one_nb(prices, start, inv_close, inv_volume, out, i):
    lookback = out.shape[2]
    for f in range(5):
        sc = inv_close if f < 4 else inv_volume
        src = prices[f, start:start + lookback]
        dst = out[f, i]
        for j in range(lookback):
            dst[j] = np.float32(src[j] * sc)


@njit(cache=True, nogil=True)
def gather_scale_nb(prices, key_start, key_scale, key, out):
    """``out[f, i, :] = float32(prices[f, start_k : start_k + L] * scale_f[k])``, k = key[i]
    (scale: 1 / last close for OHLC, 1 / mean volume for volume); ``out`` is (5, m, L)."""
    for i in range(key.shape[0]):
        k = key[i]
        _scale_one_nb(prices, key_start[k], key_scale[0, k], key_scale[1, k], out, i)
    return out


@njit(cache=True, nogil=True, parallel=True)
def gather_scale_par_nb(prices, key_start, key_scale, key, out):
    """:func:`gather_scale_nb` with the samples split over Numba threads."""
    for i in prange(key.shape[0]):
        k = key[i]
        _scale_one_nb(prices, key_start[k], key_scale[0, k], key_scale[1, k], out, i)
    return out


@njit(cache=True, nogil=True, parallel=True)
def gather_rows_par_nb(windows, rows, out):
    """The loader's gather: ``out[f, i, :] = windows[rows[i], f, :]``, a copy of whole
    pre-scaled windows from the (n_windows, 5, L) table into a (5, m, L) batch."""
    lookback = out.shape[2]
    for i in prange(rows.shape[0]):
        r = rows[i]
        for f in range(5):
            src = windows[r, f]
            dst = out[f, i]
            for j in range(lookback):
                dst[j] = src[j]
    return out


@njit(cache=True, nogil=True)
def _bin_nb(x, lo, scale, nbins):
    b = int((x - lo) * scale)
    return 0 if b < 0 else (nbins - 1 if b >= nbins else b)


@njit(cache=True, nogil=True)
def tally_nb(key, action, equity, position, eq_lo, eq_hi, pos_lo, pos_hi, counts, actions,
             eq_hist, pos_hist):
    """One pass of a written batch's summary statistics: samples per key, per action,
    equity / position histograms over [lo, hi]; returns (sum of equity, sum of position)."""
    nbins = eq_hist.shape[0]
    eq_scale = nbins / (eq_hi - eq_lo)
    pos_scale = nbins / (pos_hi - pos_lo)
    eq_sum = 0.0
    pos_sum = 0.0
    for i in range(key.shape[0]):
        counts[key[i]] += 1
        actions[action[i]] += 1
        eq_hist[_bin_nb(equity[i], eq_lo, eq_scale, nbins)] += 1
        pos_hist[_bin_nb(position[i], pos_lo, pos_scale, nbins)] += 1
        eq_sum += equity[i]
        pos_sum += position[i]
    return eq_sum, pos_sum


# --------------------------------------------------------------------------- labels (per key)
@njit(cache=True, nogil=True)
def sign_label_nb(forward_return, threshold, out):
    """``out[k] = +1 if fr > threshold, -1 if fr < -threshold, else 0`` (the dead zone)."""
    for k in range(forward_return.shape[0]):
        r = forward_return[k]
        out[k] = 1 if r > threshold else (-1 if r < -threshold else 0)
    return out


@njit(cache=True, nogil=True)
def triple_barrier_nb(close, bar, horizon, vol_window, take_profit, stop_loss, out):
    """The triple-barrier label of each key (decision bar ``bar[k]``, flat position).

    Entry at ``e = bar - 1`` (the window's last close); ``sigma`` = the sample standard
    deviation (ddof 1) of the ``vol_window`` simple returns ``close[t]/close[t-1] - 1``,
    t = e-vol_window+1 .. e (inside the window), summed left to right; then for j = 1 ..
    horizon, ``ret = close[e+j]/close[e] - 1``: +1 when ``ret >= take_profit*sigma`` (and
    > 0), -1 when ``ret <= -stop_loss*sigma`` (and < 0), the first touch wins; 0 when the
    time barrier (j = horizon) comes first. A multiplier of 0 disables that barrier."""
    for k in range(bar.shape[0]):
        e = bar[k] - 1
        s = 0.0
        for t in range(e - vol_window + 1, e + 1):
            s += close[t] / close[t - 1] - 1.0
        mean = s / vol_window
        ss = 0.0
        for t in range(e - vol_window + 1, e + 1):
            d = (close[t] / close[t - 1] - 1.0) - mean
            ss += d * d
        sigma = np.sqrt(ss / (vol_window - 1))
        upper = take_profit * sigma
        lower = -(stop_loss * sigma)
        lab = 0
        c0 = close[e]
        for j in range(1, horizon + 1):
            ret = close[e + j] / c0 - 1.0
            if take_profit > 0.0 and ret > 0.0 and ret >= upper:
                lab = 1
                break
            if stop_loss > 0.0 and ret < 0.0 and ret <= lower:
                lab = -1
                break
        out[k] = lab
    return out
