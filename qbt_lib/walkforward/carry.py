"""Positions carry across fold boundaries; every position change pays the cost.

Each asset's out-of-sample bars form one stitched timeline: the bars from its first test bar
to its last, each traded by the newest fold whose test window covers it. Fold ``k`` enters
its test window from the position the timeline held on the bar before it (``start``), not
flat: a position that does not change at a boundary pays nothing there, one that does pays
``cost * |change|``. Bars that no test window covers (``step_size > test_length``) are
flat: the first of them pays the exit of the position held before. The position still held
on the last bar stays open (marked to market, no exit charged), as in vectorbt.

The fast path and the reference each implement this their own way:
:func:`carry_fast` walks bar positions with the Numba backtest kernel; the reference
(``reference.py``) looks the previous position up by date in a pandas Series of what it has
traded so far and stitches with :func:`stitch_reference`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .config import METRICS, WalkForwardConfig
from .nb import backtest_nb


def _by_asset(results: Sequence[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in results:                       # results come in task order: fold, then asset
        out.setdefault(r["asset"], []).append(r)
    return out


def carry_fast(results: Sequence[dict], cfg: WalkForwardConfig,
               frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Trade every (fold, asset) result's predictions with the carried position (fills its
    ``position``, ``pnl`` and ``metrics``) and return each asset's stitched timeline
    (``position``, ``ret``, ``pnl`` by date)."""
    stitched = {}
    for asset, rs in _by_asset(results).items():
        close = frames[asset]["close"].to_numpy(np.float64)
        lo = min(r["window"][2] for r in rs)
        hi = max(r["window"][3] for r in rs)
        pos = np.zeros(hi - lo)
        pnl = np.zeros(hi - lo)
        covered = np.zeros(hi - lo, dtype=np.bool_)
        for r in sorted(rs, key=lambda r: r["fold"]):
            te_lo, te_hi = r["window"][2] - lo, r["window"][3] - lo
            b = te_lo - 1
            start = pos[b] if b >= 0 and covered[b] else 0.0
            T = te_hi - te_lo
            position, p, m = np.empty(T), np.empty(T), np.empty(len(METRICS))
            backtest_nb(r["prediction"], r["ret"], cfg.threshold, cfg.long_only, cfg.cost,
                        start, position, p, m)
            r["position"] = position.astype(np.int8)
            r["pnl"] = p
            r["metrics"] = dict(zip(METRICS, m.tolist()))
            pos[te_lo:te_hi] = position
            pnl[te_lo:te_hi] = p
            covered[te_lo:te_hi] = True
        exits = np.flatnonzero(~covered[1:] & covered[:-1]) + 1   # first bar of each hole
        pnl[exits] = -cfg.cost * np.abs(pos[exits - 1])
        ret = close[lo:hi] / close[lo - 1:hi - 1] - 1.0
        stitched[asset] = pd.DataFrame({"position": pos, "ret": ret, "pnl": pnl},
                                       index=frames[asset].index[lo:hi])
    return stitched


def stitch_reference(held: pd.Series, earned: pd.Series, frame: pd.DataFrame,
                     cost: float) -> pd.DataFrame:
    """The reference's stitched timeline of one asset from the positions and pnl it traded
    (by date, the newest fold's), the bars no window covers flat."""
    calendar = frame.index
    span = calendar[(calendar >= held.index.min()) & (calendar <= held.index.max())]
    position = held.reindex(span)
    covered = position.notna()
    position = position.fillna(0.0)
    pnl = earned.reindex(span).fillna(0.0)
    leaving = ~covered & covered.shift(1, fill_value=False)
    pnl[leaving] = -cost * position.shift(1)[leaving].abs()
    close = frame["close"]
    ret = (close / close.shift(1) - 1).reindex(span)
    return pd.DataFrame({"position": position.astype(float), "ret": ret, "pnl": pnl},
                        index=span)
