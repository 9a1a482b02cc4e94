"""The obviously-correct "before": one Python iteration per sample, from the raw prices.

:func:`build_samples` takes the same random draws as every other implementation (a sample's
key, equity, position and action) and recomputes everything else per sample from the price
series, without the per-key tables: which symbol and bar the key names, the date, the label
and the scaled window. Same arithmetic as the fast paths (one float64 multiply by the
reciprocal of the last close / of the mean volume summed left to right, then a cast to
float32), so the results agree bitwise.

:func:`seed_vectorized` is the seed's own "after" (its vectorized code, faithfully
re-implemented from the write-up) for the benchmark's baseline; it is not used otherwise.
"""
from __future__ import annotations

import bisect

import numpy as np
import pandas as pd

from .labels import DEFAULT as DEFAULT_LABEL
from .labels import LabelSpec, label_one
from .space import SampleSpace


def build_samples(space: SampleSpace, draws: dict, with_windows: bool = True,
                  label: LabelSpec = DEFAULT_LABEL) -> tuple[dict, np.ndarray | None]:
    """Samples columns (and (5, m, lookback) float32 windows) of ``draws``, per sample."""
    lookback, horizon = space.lookback, space.horizon
    prices = np.asarray(space.prices)
    dates = np.asarray(space.dates)
    key_offsets = [int(v) for v in space.key_offsets]
    offsets = [int(v) for v in space.offsets]
    close, volume = prices[3], prices[4]
    keys = draws["key"]
    m = len(keys)
    cols = {"symbol": np.empty(m, np.int32), "idx": np.empty(m, np.int32),
            "date": np.empty(m, np.int64)}
    for name, dt in (("equity", np.float64), ("position", np.float64), ("action", np.int8)):
        if name in draws:  # absent when building the windows table
            cols[name] = np.array(draws[name], dt)
    cols["forward_return"] = np.empty(m, np.float64)
    with_label = label.has_column and "equity" in draws
    if with_label:
        cols["label"] = np.empty(m, np.int8)
    windows = np.empty((5, m, lookback), np.float32) if with_windows else None
    for i in range(m):
        k = int(keys[i])
        s = bisect.bisect_right(key_offsets, k) - 1       # the symbol whose keys hold k
        idx = lookback + k - key_offsets[s]               # its decision bar
        bar = offsets[s] + idx                            # ... in the flat price arrays
        cols["symbol"][i] = s
        cols["idx"][i] = idx
        cols["date"][i] = dates[bar]
        cols["forward_return"][i] = np.log(close[bar - 1 + horizon] / close[bar - 1])
        if with_label:
            cols["label"][i] = label_one(close, bar, horizon, label)
        if windows is None:
            continue
        inv_close = 1.0 / float(close[bar - 1])
        vsum = 0.0
        for v in volume[bar - lookback:bar].tolist():
            vsum += v
        inv_volume = 1.0 / (vsum / lookback) if vsum > 0 else 0.0
        for f in range(4):
            windows[f, i] = prices[f, bar - lookback:bar] * inv_close
        windows[4, i] = volume[bar - lookback:bar] * inv_volume
    return cols, windows


# --------------------------------------------------------------------------- the seed's "after"
def seed_vectorized(df: pd.DataFrame, n: int, lookback: int, horizon: int,
                    rng: np.random.Generator, equity_min: float = 1e4,
                    equity_max: float = 1e6, position_min: float = -1.0,
                    position_max: float = 1.0, iloc: bool = False) -> pd.DataFrame:
    """The seed's optimized code (its Phase 1 + Phase 2), one symbol, as a timing baseline.

    Phase 1 draws all random values at once and copies each sample's window, one sample at
    a time, into preallocated float32 arrays; Phase 2 rebuilds 2-D arrays from the per-row
    lists kept in DataFrame cells and scales them with list comprehensions, as written.
    The write-up's snippet copies with ``df[col].iloc[a:b].values`` (``iloc=True``: ~20x
    slower under pandas 3); the default reads the column's NumPy array once and slices it,
    which runs at the ~1e5 samples/s the seed reported, so the baseline is not a straw man.
    """
    max_idx = len(df) - horizon + 1
    indices = rng.integers(lookback, max_idx, size=n)
    equity = rng.uniform(equity_min, equity_max, size=n)
    position = rng.uniform(position_min, position_max, size=n)
    action = rng.integers(0, 3, size=n)
    windows = {}
    for col in ("open", "high", "low", "close", "volume"):
        w = np.zeros((n, lookback), dtype=np.float32)
        if iloc:
            for i in range(n):
                w[i] = df[col].iloc[indices[i] - lookback: indices[i]].values
        else:
            values = df[col].values
            for i in range(n):
                w[i] = values[indices[i] - lookback: indices[i]]
        windows[col] = w
    close = df["close"].to_numpy()
    label = np.log(close[indices - 1 + horizon] / close[indices - 1])
    samples = pd.DataFrame({"idx": indices, "equity": equity, "position": position,
                            "action": action, "forward_return": label,
                            **{c: list(w) for c, w in windows.items()}})
    # Phase 2: "vectorized" OHLCV scaling
    close_arrays = np.array([arr for arr in samples["close"].values])
    last_close = close_arrays[:, -1]
    scaled = {}
    for col in ("open", "high", "low", "close"):
        arrays = np.array([arr for arr in samples[col].values])
        scaled[f"{col}_scaled"] = [arrays[i] / last_close[i] for i in range(n)]
    vol = np.array([arr for arr in samples["volume"].values])
    mean_vol = vol.mean(axis=1)
    scaled["volume_scaled"] = [vol[i] / mean_vol[i] for i in range(n)]
    return pd.concat([samples.drop(columns=list(windows)), pd.DataFrame(scaled)], axis=1)
