"""The OHLCV contract and its check, :func:`validate_ohlcv` (every loaded frame passes here)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

OHLCV = ("open", "high", "low", "close", "volume")
PRICE_FIELDS = ("open", "high", "low", "close")


def _row_label(index: pd.Index, i: int) -> str:
    v = index[i]
    return v.strftime("%Y-%m-%d") if isinstance(v, pd.Timestamp) else str(v)


def validate_ohlcv(df: pd.DataFrame, name: str | None = None, require: Sequence[str] = OHLCV,
                   row0: int = 0) -> pd.DataFrame:
    """Check ``df`` against the OHLCV contract; return it unchanged or raise ``ValueError``.

    ``require``: the columns that must be there; the other OHLCV columns are checked when
    present (a close-only series is fine for a workload that reads only closes). The message
    names the symbol (``name``), the first offending row (``row0`` + position, and date) and
    the rule, e.g. ``SPX: row 17 (2020-01-24): high < max(open, close)``.
    """
    who = f"{name}: " if name else ""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{who}OHLCV data must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in require if c not in df.columns]
    if missing:
        raise ValueError(f"{who}OHLCV data is missing column(s) {missing}; has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError(f"{who}OHLCV data is empty")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise ValueError(f"{who}OHLCV index must be a DatetimeIndex, got {type(df.index).__name__}")
    cols = [c for c in OHLCV if c in df.columns]
    for c in cols:
        if df[c].dtype != np.float64:
            raise ValueError(f"{who}column {c!r} must be float64, got {df[c].dtype}")

    idx = df.index.asi8
    if len(idx) > 1:
        bad = np.flatnonzero(np.diff(idx) <= 0)
        date_bad = int(bad[0]) + 1 if bad.size else None
    else:
        date_bad = None

    a = {c: df[c].to_numpy() for c in cols}
    prices = [a[c] for c in PRICE_FIELDS if c in a]
    rules = [(f"{c} is NaN or inf", ~np.isfinite(v)) for c, v in a.items()]
    if prices:
        rules.append(("price <= 0", (np.stack(prices) <= 0).any(axis=0)))
    oc = [a[c] for c in ("open", "close") if c in a]
    if "high" in a and oc:
        rules.append(("high < max(open, close)", a["high"] < np.maximum.reduce(oc)))
    if "low" in a and oc:
        rules.append(("low > min(open, close)", a["low"] > np.minimum.reduce(oc)))
    if "high" in a and "low" in a and not oc:
        rules.append(("high < low", a["high"] < a["low"]))
    if "volume" in a:
        rules.append(("volume < 0", a["volume"] < 0))
    first: tuple[int, str] | None = None
    for rule, mask in rules:
        hits = np.flatnonzero(mask)
        if hits.size and (first is None or hits[0] < first[0]):
            first = (int(hits[0]), rule)
    if date_bad is not None and (first is None or date_bad < first[0]):
        prev = _row_label(df.index, date_bad - 1)
        kind = "duplicate date" if idx[date_bad] == idx[date_bad - 1] else "dates not increasing"
        first = (date_bad, f"{kind} (previous row {prev})")
    if first is not None:
        i, rule = first
        row = ", ".join(f"{k}={float(a[k][i])!r}" for k in cols)
        raise ValueError(f"{who}row {row0 + i} ({_row_label(df.index, i)}): {rule} [{row}]")
    return df
