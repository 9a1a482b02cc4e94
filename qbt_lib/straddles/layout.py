"""The rows and summary of structures, costs and exits (``X_*``), as Arrow tables.

The seed's columns plus ``K_call``, ``K_put`` (the legs' strikes; ``K`` stays the entry
price, the at-the-money strike), ``cost`` (the spread paid that day) and ``hedge_cost`` (the
hedge trades' cost that day), ``pnl`` and ``hedge_pnl`` net of them; a straddle closed early
has rows up to its exit day only. The summary adds the strikes, the costs, the exit day and
the exit reason.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import core
from .schedule import Schedule
from .spec import EXIT_REASONS
from .structures_nb import F_COLUMNS

f8 = np.float64
X_ROW_COLUMNS = (
    ("asset", np.int32), ("year", np.int16), ("month", np.int8), ("i", np.int8),
    ("straddle_id", np.int64), ("date", "datetime64[ns]"), ("day", np.int16),
    ("S", f8), ("K", f8), ("K_call", f8), ("K_put", f8), ("vol", f8), ("tau", f8),
    ("call", f8), ("put", f8), ("value", f8), ("delta", f8), ("gamma", f8), ("vega", f8),
    ("theta", f8), ("action", np.int8), ("pnl", f8), ("hedge_pnl", f8), ("cost", f8),
    ("hedge_cost", f8), ("cum_pnl", f8))
X_FLOAT_COLUMNS = tuple(n for n, t in X_ROW_COLUMNS if t is f8)
X_INT_COLUMNS = tuple((n, t) for n, t in X_ROW_COLUMNS if t is not f8)
X_SUMMARY_COLUMNS = core.SUMMARY_COLUMNS + ("K_call", "K_put", "cost", "hedge_cost",
                                            "exit_day", "exit_reason")
X_SUMMARY_DTYPES = {**core.SUMMARY_DTYPES, "exit_day": np.int16, "exit_reason": np.int8}
assert set(F_COLUMNS) == set(X_FLOAT_COLUMNS)

#: the categorical columns beyond the seed's ``asset`` and ``action``
LABELS = {"exit_reason": EXIT_REASONS}


# --------------------------------------------------------------------------- tables
def _int_dtype(dt) -> np.dtype:
    return np.dtype(np.int64 if dt == "datetime64[ns]" else dt)


def empty_rows(n_rows: int) -> dict[str, np.ndarray]:
    """Row columns for ``n_rows`` rows, cut from one buffer: the floats as the rows of one
    ``(18, n)`` array (what the Numba kernel writes), the integers after them.

    Every column starts 192 bytes further along a 4 KiB page than the previous one (the
    reason of ``core.empty_rows``: 26 streams written together at the same page offset
    thrash the same L1 sets; measured here 150 -> 40 ns per row)."""
    n = max(int(n_rows), 1)
    page = 4096
    f_stride = -(-n * 8 // page) * page + 192         # float rows 192 B apart in a page
    at = len(F_COLUMNS) * f_stride
    offsets = []
    for j, (_, dt) in enumerate(X_INT_COLUMNS):
        at = -(-at // page) * page + 192 * (len(F_COLUMNS) + j) % page
        offsets.append(at)
        at += n * _int_dtype(dt).itemsize
    buf = np.empty(at + 64, np.uint8)
    base = (-buf.ctypes.data) % 64                    # 64-byte aligned, as Arrow likes
    F = np.ndarray((len(F_COLUMNS), n_rows), np.float64, buffer=buf, offset=base,
                   strides=(f_stride, 8))
    out = {name: F[j] for j, name in enumerate(F_COLUMNS)}
    for (name, dt), off in zip(X_INT_COLUMNS, offsets):
        out[name] = np.ndarray(n_rows, _int_dtype(dt), buffer=buf, offset=base + off)
    out["_F"] = F
    return out


def rows_table(cols: dict, assets: list[str]) -> pa.Table:
    """The rows (``X_ROW_COLUMNS``) as an Arrow table, numeric buffers not copied."""
    return core.rows_table(cols, assets, X_ROW_COLUMNS, LABELS)


def summary_table(cols: dict, assets: list[str]) -> pa.Table:
    return core.summary_table(cols, assets, X_SUMMARY_COLUMNS, LABELS)


def empty_summary(n: int) -> dict[str, np.ndarray]:
    return core.empty_summary(n, X_SUMMARY_COLUMNS, X_SUMMARY_DTYPES)


def reference_tables(res: dict, assets: list[str]) -> tuple[pa.Table, pa.Table]:
    """The reference's list rows and summary as Arrow tables (the fast paths' layout)."""
    return core.reference_tables(res, assets, X_ROW_COLUMNS, X_SUMMARY_COLUMNS,
                                 X_SUMMARY_DTYPES, LABELS)


def summary_arrays(sched: Schedule, dates_ns, price, start, kc, kp, SF, exit_date, exit_day,
                   reason) -> dict[str, np.ndarray]:
    """A chunk's summary from the kernels' per-straddle results."""
    entry, pnl, hp = SF[0], SF[3], SF[4]
    hedged = pnl + hp
    return {"asset": sched.asset, "year": sched.year, "month": sched.month, "i": sched.i,
            "straddle_id": sched.straddle_id, "entry_date": dates_ns[start],
            "exit_date": exit_date, "K": price[start], "entry_value": entry,
            "exit_value": SF[1], "exit_price": SF[2], "pnl": pnl, "hedge_pnl": hp,
            "hedged_pnl": hedged, "return": pnl / entry, "hedged_return": hedged / entry,
            "K_call": kc, "K_put": kp, "cost": SF[5], "hedge_cost": SF[6],
            "exit_day": exit_day, "exit_reason": reason}


def row_offsets(exit_day, n: int, tenor: int, extended: bool) -> np.ndarray:
    """Where each straddle's rows start (and, last, the row count): rows up to the exit
    day for extended rows, ``tenor + 1`` each for the seed's."""
    if not extended:
        return np.arange(n + 1, dtype=np.int64) * (tenor + 1)
    counts = np.asarray(exit_day, np.int64) + 1
    return np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)])
