"""Ranking: the Fibonacci-proximity score of a pattern and the ``top_k`` best per window."""
from __future__ import annotations

import numpy as np

from .enums import SCORE_TERMS


def pivot_values(L: np.ndarray, H: np.ndarray, piv: np.ndarray, xp=np) -> np.ndarray:
    """The six pivot values ``P0..P5`` of each pattern on the searched series, as the
    monowaves define them (a wave whose end is its start keeps its start value). ``xp``:
    the array module (CuPy scores on the device, :func:`qbt_lib.waves.gpu.search`)."""
    p = [piv[:, k] for k in range(6)]
    v0 = L[p[0]]
    v1 = xp.where(p[1] > p[0], H[p[1]], L[p[0]])
    v2 = xp.where(p[2] > p[1], L[p[2]], H[p[1]])
    v3 = xp.where(p[3] > p[2], H[p[3]], L[p[2]])
    v4 = xp.where(p[4] > p[3], L[p[4]], H[p[3]])
    v5 = xp.where(p[5] > p[4], H[p[5]], L[p[4]])
    return xp.stack([v0, v1, v2, v3, v4, v5], axis=1)


def wave_lengths(L: np.ndarray, H: np.ndarray, piv: np.ndarray, xp=np) -> np.ndarray:
    """``len1..len5`` (high - low of each monowave) of each pattern, shape ``(n, 5)``."""
    v = pivot_values(L, H, piv, xp)
    return xp.stack([v[:, 1] - v[:, 0], H[piv[:, 1]] - v[:, 2], v[:, 3] - L[piv[:, 2]],
                     H[piv[:, 3]] - v[:, 4], v[:, 5] - L[piv[:, 4]]], axis=1)


def score_patterns(L: np.ndarray, H: np.ndarray, piv: np.ndarray, xp=np) -> np.ndarray:
    """Fibonacci-proximity score in (0, 1]: the weighted closeness of four wave ratios to
    their Fibonacci targets (``enums.SCORE_TERMS``):

    ======================  =========  ===============  ======
    term                    ratio      targets          weight
    ======================  =========  ===============  ======
    wave-2 retracement      len2/len1  0.5 or 0.618     0.25
    wave-3 extension        len3/len1  1.618            0.35
    wave-4 retracement      len4/len3  0.382            0.20
    wave-5 length           len5/len1  1.0 or 0.618     0.20
    ======================  =========  ===============  ======

    closeness(r, t) = 1 / (1 + |r - t| / t) (1 at the target, 1/2 at 100% relative error),
    the best of a term's targets. Wave 3 weighs most: its extension is what marks an
    impulse. Ratios of reported patterns are finite (the rules make len1, len3 > 0).
    """
    n = int(piv.shape[0])
    if n == 0:
        return xp.empty(0)
    ln = wave_lengths(L, H, piv, xp)
    ratios = {"len2/len1": (1, 0), "len3/len1": (2, 0), "len4/len3": (3, 2),
              "len5/len1": (4, 0)}
    score = xp.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _, ratio, targets, weight in SCORE_TERMS:
            a, b = ratios[ratio]
            r = ln[:, a] / ln[:, b]
            best = xp.zeros(n)
            for t in targets:   # one IEEE operation per array op, on either device
                best = xp.maximum(best, 1.0 / (1.0 + xp.abs(r - t) / t))
            score = score + weight * xp.nan_to_num(best, nan=0.0)
    return score


def top_k_rows(win: np.ndarray, score: np.ndarray, piv: np.ndarray, k: int,
               xp=np) -> np.ndarray:
    """Row positions of the ``k`` best-scored patterns of each window (ties: earlier pivots
    first), in their original order."""
    if int(win.shape[0]) == 0:
        return xp.arange(0)
    keys = [piv[:, c] for c in range(5, -1, -1)] + [-score, win]
    # by window, best score, then pivots (CuPy's lexsort takes one stacked array; the int
    # keys are exact in float64)
    order = xp.lexsort(keys if xp is np else xp.stack([x.astype(xp.float64) for x in keys]))
    w_sorted = win[order]
    first = xp.searchsorted(w_sorted, w_sorted, side="left")
    rank = xp.arange(int(order.shape[0])) - first
    return xp.sort(order[rank < k])
