"""The synth notebook's figures (matplotlib; data in, figure out)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..device import to_host
from .space import ACTIONS


def plot_market(frames: Mapping[str, pd.DataFrame], k: int = 6) -> Any:
    """Close prices of the first ``k`` symbols, rebased to 1."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 3.2))
    for s, f in list(frames.items())[:k]:
        ax.plot(f.index, f["close"] / f["close"].iloc[0], lw=0.8, label=s)
    ax.set_yscale("log")
    ax.set_ylabel("close / first close")
    ax.set_title(f"the market: {len(frames)} symbol(s), {len(next(iter(frames.values()))):,} bars")
    ax.legend(fontsize=7, ncol=min(k, 6))
    fig.tight_layout()
    return fig


def plot_windows(batch: Any, symbols: list[str], k: int = 4) -> Any:
    """``k`` scaled windows of a loader batch: OHLC (close line, high-low band, open dots)
    divided by the last close, and volume / mean volume as bars below."""
    import matplotlib.pyplot as plt
    ohlcv = to_host(batch.ohlcv)
    cols = {c: to_host(v) for c, v in batch.columns.items()}
    fig, axes = plt.subplots(2, k, figsize=(3.2 * k, 4.2), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1]})
    lookback = ohlcv.shape[2]
    x = np.arange(-lookback, 0)
    for j in range(min(k, ohlcv.shape[1])):
        top, bottom = axes[0, j], axes[1, j]
        o, h, l, c, v = ohlcv[:, j]
        top.fill_between(x, l, h, color="tab:blue", alpha=0.25, lw=0)
        top.plot(x, c, color="tab:blue", lw=1)
        top.plot(x, o, ".", color="tab:gray", ms=2)
        top.axhline(1.0, color="k", lw=0.5, ls=":")
        date = np.datetime64(int(cols["date"][j]), "ns").astype("datetime64[D]")
        top.set_title(f"{symbols[cols['symbol'][j]]} {date}\n{ACTIONS[cols['action'][j]]}, "
                      f"fwd {cols['forward_return'][j]:+.2%}", fontsize=8)
        bottom.bar(x, v, color="tab:gray", width=1.0)
        bottom.axhline(1.0, color="k", lw=0.5, ls=":")
        bottom.set_xlabel("bar (0 = decision bar)", fontsize=7)
    axes[0, 0].set_ylabel("price / last close")
    axes[1, 0].set_ylabel("vol / mean")
    fig.tight_layout()
    return fig


def plot_distributions(result: Any) -> Any:
    """Equity, position and action distributions and the forward-return histogram, over all
    samples (exact counts gathered while writing)."""
    import matplotlib.pyplot as plt
    w, cfg = result.write, result.cfg
    fig, axes = plt.subplots(1, 4, figsize=(14, 3))
    for ax, hist, lo, hi, name in ((axes[0], w.equity_hist, cfg.equity_min, cfg.equity_max,
                                    "equity"),
                                   (axes[1], w.position_hist, cfg.position_min,
                                    cfg.position_max, "position")):
        edges = np.linspace(lo, hi, len(hist) + 1)
        ax.stairs(hist, edges, fill=True, alpha=0.6)
        ax.set_title(f"{name} (state)")
        ax.set_ylim(0, hist.max() * 1.15)
    axes[2].bar(ACTIONS, w.action_counts, color=["tab:gray", "tab:green", "tab:red"])
    axes[2].set_title("action")
    counts, edges = result.label_histogram()
    axes[3].stairs(counts, edges, fill=True, alpha=0.6, color="tab:purple")
    axes[3].set_yscale("log")
    axes[3].set_title(f"forward_return (horizon {result.space.horizon})")
    fig.tight_layout()
    return fig
