"""The original system's scan shape: each symbol's bars cut into overlapping windows, a few
start bars per window (the lowest lows), each start bar's data ending at its window's end."""
from __future__ import annotations

from typing import Any

import numpy as np

from .params import MIN_WINDOW
from .prices import oriented, symbol_bars


def window_bounds(n_bars: int, window: int | None, overlap: float = 0.0) -> list[tuple[int, int]]:
    """``[w0, w1)`` windows of ``window`` bars, each starting ``round(window*(1-overlap))``
    bars after the previous one; a last window is aligned to the series end so the tail is
    covered. ``window=None`` (or longer than the series): one window, the whole series."""
    if window is None or window >= n_bars:
        return [(0, n_bars)]
    step = max(1, int(round(window * (1.0 - overlap))))
    starts = list(range(0, n_bars - window + 1, step))
    if starts[-1] + window < n_bars:
        starts.append(n_bars - window)
    return [(s, s + window) for s in starts]


def start_points(low_window: np.ndarray, k: int | None) -> np.ndarray:
    """Positions in the window to start from: all bars, or the ``k`` lowest lows (ties: the
    earlier bar), in bar order."""
    n = len(low_window)
    if not k or k >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.argsort(low_window, kind="stable")[:k]).astype(np.int64)


def jobs_for(L: np.ndarray, windows: list[tuple[int, int]], k: int | None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A series' jobs: ``(start bar, data end, window index)`` arrays, in window then
    start-bar order (``L``: the oriented lows the start points are picked from)."""
    st, en, wi = [], [], []
    for w, (w0, w1) in enumerate(windows):
        s = w0 + start_points(L[w0:w1], k)
        st.append(s)
        en.append(np.full(len(s), w1, np.int64))
        wi.append(np.full(len(s), w, np.int64))
    return np.concatenate(st), np.concatenate(en), np.concatenate(wi)


def plan(store: Any, window: int | None, overlap: float, k: int | None,
         directions: list[str]) -> list[dict]:
    """Per symbol of the store: its name, column ``j``, bar count, row positions, windows
    and, per direction, its jobs (:func:`jobs_for`). Raises naming a symbol with fewer bars
    than a window needs."""
    out = []
    for j, sym in enumerate(store.symbols):
        lo, hi, rows = symbol_bars(store, j)
        if len(lo) < MIN_WINDOW:
            raise ValueError(f"{sym}: {len(lo)} bars, fewer than the {MIN_WINDOW} a window needs")
        wins = window_bounds(len(lo), window, overlap)
        jobs = {d: jobs_for(oriented(lo, hi, d)[0], wins, k) for d in directions}
        out.append(dict(sym=sym, j=j, n=len(lo), rows=rows, windows=wins, jobs=jobs))
    return out
