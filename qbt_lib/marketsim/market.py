"""marketsim's universe: the synthetic default, loading through ``qbt_lib.data``, asset classes.

Crypto symbols are marked by name, as in the original (BTCUSD, ETHUSD): a name ending in
"USD" or "USDT" (optionally after "-" or "/") is crypto: long-only, fee 0.008, sqrt(365).
An ``asset_classes`` mapping or an ``asset_class`` column in the data overrides the guess.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..data import generator_symbols, load, symbol_names, synthetic_market
from ..params import as_float, as_int, one_of
from .enums import BARS_PER_YEAR, SERIES, SYNTHETIC_YEARS

_CRYPTO_SUFFIXES = ("USD", "USDT")
CRYPTO_NAMES = ("BTCUSD", "ETHUSD", "SOLUSD", "LTCUSD", "LINKUSD", "UNIUSD", "AVAXUSD",
                "DOTUSD", "XRPUSD", "DOGEUSD")
ASSET_CLASSES = ("equity", "crypto")


def is_crypto(symbol: str) -> bool:
    """Whether ``symbol`` is marked crypto (its name ends in USD/USDT, e.g. ``BTCUSD``)."""
    s = str(symbol).upper().replace("-", "").replace("/", "")
    return s.endswith(_CRYPTO_SUFFIXES)


def synthetic_names(n: int) -> list[str]:
    """``n`` names: equities ``SYM000 ...`` then about one in ten crypto (``BTCUSD`` ...)."""
    n = as_int("symbols", n, min=1, max=100_000)
    n_crypto = max(1, round(n / 10)) if n >= 2 else 0
    width = max(3, len(str(n - 1)))
    eq = [f"SYM{i:0{width}d}" for i in range(n - n_crypto)]
    cr = [CRYPTO_NAMES[i] if i < len(CRYPTO_NAMES) else f"C{i:0{width}d}USD"
          for i in range(n_crypto)]
    return eq + cr


def synthetic_universe(symbols: Any = 30, years: float = SYNTHETIC_YEARS,
                       seed: int = 0) -> dict[str, pd.DataFrame]:
    """The default source: GARCH(1,1)-t daily OHLC of ``symbols`` (a count or names) over
    ``years`` years of business days; a few names are crypto (see :func:`is_crypto`)."""
    which = generator_symbols(symbols, 30)
    names = synthetic_names(which) if isinstance(which, int) else symbol_names(which)
    n_bars = int(round(as_float("years", years, min=0.01) * BARS_PER_YEAR))
    return synthetic_market(names, n_bars=n_bars, seed=seed)


def load_source(source: Any = "synthetic", symbols: Any = None, seed: int = 0, *,
                start: Any = None, end: Any = None, tail: int | None = None,
                adjust: bool = True) -> dict[str, pd.DataFrame]:
    """``{symbol: OHLC frame}`` through ``qbt_lib.data.load``: ``"synthetic"`` (4 years of
    generated bars, 30 symbols by default), ``"sp500"`` (the S&P 500 sample shipped with
    ``arch``, symbol ``SP500``), a CSV/Parquet file, a directory, a Hive-partitioned
    dataset, a DataFrame or a dict of frames. ``symbols``: a count (the first n), a list of
    names or ``None``/``"all"``. ``tail``: only the last ``tail`` bars up to ``end`` are
    used (and validated). An ``asset_class`` column is kept (see :func:`asset_classes`)."""
    return load(source, symbols, start=start, end=end, tail=tail, adjust=adjust,
                require=SERIES, keep=("asset_class",),
                synthetic=lambda sy: synthetic_universe(sy, seed=seed))


def asset_classes(frames: Mapping[str, pd.DataFrame], mapping: Any = None) -> dict[str, str]:
    """Each symbol's class (fees, long-only rule): ``mapping`` (``{symbol: "crypto" |
    "equity"}``) first, then the data's ``asset_class`` column, else the name guess of
    :func:`is_crypto`."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise ValueError(f"asset_classes must be a dict {{symbol: 'crypto' | 'equity'}}, "
                         f"got {mapping!r}")
    unknown = [s for s in mapping if s not in frames]
    if unknown:
        raise ValueError(f"asset_classes: unknown symbol(s) {unknown}; the run has "
                         f"{list(frames)[:10]}")
    out = {}
    for sym, df in frames.items():
        if sym in mapping:
            cls = one_of(f"asset_classes[{sym!r}]", mapping[sym], ASSET_CLASSES)
        elif "asset_class" in df.columns:
            vals = df["asset_class"].dropna().astype(str).str.strip().str.lower().unique()
            if len(vals) != 1 or vals[0] not in ASSET_CLASSES:
                raise ValueError(f"{sym}: the asset_class column must hold one of "
                                 f"{list(ASSET_CLASSES)} for every bar, got {list(vals)[:5]}")
            cls = vals[0]
        else:
            cls = "crypto" if is_crypto(sym) else "equity"
        out[sym] = cls
    return out


def price_matrix(sym: str, df: Any, need: int) -> np.ndarray:
    """close/high/low of one symbol (validated by ``qbt_lib.data.load``) as ``(3, n)``."""
    a = np.stack([df[c].to_numpy(dtype=np.float64) for c in SERIES])
    if len(df) < need:
        raise ValueError(f"{sym}: history too short: {len(df)} bars, needs context + "
                         f"simulations + eval_days = {need}")
    return a
