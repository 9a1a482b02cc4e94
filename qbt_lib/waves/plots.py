"""Charts for the waves notebook: a price chart with impulse pivots labelled 1-5, and the
score distribution. Kept here so the notebook stays a thin story."""
from __future__ import annotations

import numpy as np
import pandas as pd


def plot_impulses(frame: pd.DataFrame, patterns: pd.DataFrame, symbol: str, n: int = 3,
                  pad: int = 25):
    """One panel per pattern: the ``n`` best-scored distinct impulses of ``symbol`` (the best
    start bar of each distinct wave 1-5), drawn through their pivots over the high/low band
    and close, pivots labelled 1-5. Returns the figure."""
    import matplotlib.pyplot as plt

    p = (patterns[patterns["symbol"] == symbol].sort_values("score", ascending=False)
         .drop_duplicates([f"p{k}" for k in range(1, 6)]).head(n))
    fig, axes = plt.subplots(max(1, len(p)), 1, figsize=(11, 3.2 * max(1, len(p))),
                             squeeze=False)
    if p.empty:
        axes[0, 0].set_title(f"{symbol}: no pattern")
        return fig
    for ax, (_, row) in zip(axes[:, 0], p.iterrows()):
        xs = [int(row[f"p{k}"]) for k in range(6)]
        ys = [float(row[f"price{k}"]) for k in range(6)]
        a, b = max(0, xs[0] - pad), min(len(frame), xs[5] + pad + 1)
        seg = frame.iloc[a:b]
        x = np.arange(a, b)
        ax.fill_between(x, seg["low"], seg["high"], color="0.85", step="mid", label="low-high")
        ax.plot(x, seg["close"], color="0.45", lw=0.8, label="close")
        ax.plot(xs, ys, "-o", color="C0", lw=1.8, ms=4, label="impulse")
        up = row["direction"] == "up"
        for k in range(6):
            above = (k % 2 == 1) == up
            ax.annotate("start" if k == 0 else str(k), (xs[k], ys[k]),
                        textcoords="offset points", xytext=(0, 7 if above else -14),
                        ha="center", color="C3", fontsize=9, fontweight="bold")
        ax.set_title(f"{symbol} {row['direction']}/{row['rules']}, window {row['window_start']}, "
                     f"score {row['score']:.3f}: bars {xs[0]}-{xs[5]} "
                     f"({row['date0']:%Y-%m-%d} .. {row['date5']:%Y-%m-%d})", fontsize=10)
        ax.legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("bar (0-based position in the series as loaded)")
    fig.tight_layout()
    return fig


def plot_scores(patterns: pd.DataFrame, ax=None, bins: int = 40):
    """Histogram of the Fibonacci-proximity score, one series per direction/rule set."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    for (d, r), g in patterns.groupby(["direction", "rules"], observed=True):
        ax.hist(g["score"], bins=bins, range=(0, 1), alpha=0.6, label=f"{d}/{r} ({len(g)})")
    ax.set_xlabel("Fibonacci-proximity score")
    ax.set_ylabel("patterns")
    ax.legend(fontsize=8)
    return ax
