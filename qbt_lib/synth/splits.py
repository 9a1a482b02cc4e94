"""Leakage-free train/valid/test splits by date (``splits=``, ``embargo=``).

A split ``name: (start, end)`` owns the bars dated ``start .. end`` (``None``: the data's
first/last bar); its samples are drawn from a sample space built on those bars alone, so a
sample's whole footprint -- its window ``idx-lookback .. idx-1`` and its label's bars
``idx .. idx-1+horizon`` (the triple barrier's path included) -- lies inside its split.
Between two splits (in date order), per symbol, ``embargo`` bars (default ``lookback +
horizon``) belong to neither: the first bars of the later split are dropped until at least
``embargo`` bars separate it from the earlier one's last bar (López de Prado's embargo,
which also keeps serially dependent neighbours, e.g. volatility clusters, apart).

A symbol with fewer than ``lookback + horizon`` bars left in a split is left out of that
split (listed in the split table); a split with no symbol left is an error naming it.

``n`` samples are shared among the splits in proportion to their number of valid (symbol,
idx) keys (largest remainder, at least 1 each), so every bar is equally likely to be a
decision bar whatever split it is in; each split's draws come from their own seed,
``SeedSequence([seed, crc32(name)])``, so a split's samples do not depend on the others.
"""
from __future__ import annotations

import zlib
from typing import Mapping

import numpy as np
import pandas as pd


def split_frames(frames: Mapping[str, pd.DataFrame],
                 splits: Mapping[str, tuple[str | None, str | None]], lookback: int,
                 horizon: int, embargo: int
                 ) -> tuple[dict[str, dict[str, pd.DataFrame]], pd.DataFrame]:
    """``{split: {symbol: frame}}`` (in date order) and a table of what each split holds
    per symbol (first/last bar, bars, bars embargoed, left out)."""
    need = lookback + horizon
    out: dict[str, dict[str, pd.DataFrame]] = {s: {} for s in splits}
    rows = []
    for sym, f in frames.items():
        idx = f.index
        last_prev = None          # position of the previous split's last bar (this symbol)
        for name, (a, b) in splits.items():
            lo = 0 if a is None else int(idx.searchsorted(pd.Timestamp(a), "left"))
            hi = len(idx) if b is None else int(idx.searchsorted(
                pd.Timestamp(b) + pd.Timedelta(days=1), "left"))
            first = lo
            if last_prev is not None:
                first = max(lo, last_prev + embargo + 1)
            bars = max(0, hi - first)
            used = bars >= need
            rows.append({"split": name, "symbol": sym, "start": a, "end": b,
                         "first_bar": idx[first] if used else pd.NaT,
                         "last_bar": idx[hi - 1] if used else pd.NaT, "bars": bars,
                         "embargoed": max(0, min(first, hi) - lo), "used": used})
            if used:
                out[name][sym] = f.iloc[first:hi]
                last_prev = hi - 1
    for name, fr in out.items():
        if not fr:
            a, b = splits[name]
            raise ValueError(f"splits[{name!r}] ({a} .. {b}): no symbol has the "
                             f"lookback + horizon = {need} bars it needs there after the "
                             f"embargo of {embargo} bars; widen the range or lower embargo")
    return out, pd.DataFrame(rows)


def allocate(n: int, keys: Mapping[str, int]) -> dict[str, int]:
    """``n`` samples shared in proportion to ``keys`` (largest remainder; >= 1 each)."""
    names = list(keys)
    if n < len(names):
        raise ValueError(f"n={n} is fewer samples than splits ({len(names)})")
    k = np.array([keys[s] for s in names], np.float64)
    exact = n * k / k.sum()
    got = np.maximum(1, np.floor(exact).astype(np.int64))
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    i = 0
    while got.sum() < n:
        got[order[i % len(names)]] += 1
        i += 1
    while got.sum() > n:  # only after the >= 1 floor: take from the largest
        got[int(np.argmax(got))] -= 1
    return {s: int(v) for s, v in zip(names, got)}


def split_seed(seed: int, name: str) -> int:
    """The draws' seed of split ``name``: from ``SeedSequence([seed, crc32(name)])``."""
    state = np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]).generate_state(
        2, np.uint64)
    return int(state[0] >> np.uint64(1))
