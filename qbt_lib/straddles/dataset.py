"""Straddle datasets on disk: the row layout and the normalized layout, and their reader.

``output="parquet"`` writes a directory (under a temp name, renamed when complete)::

    meta.json                   the run's parameters, layout, parts, row counts
    summary/part-000000.parquet one row per straddle (the straddles table): ids, dates,
                                strike(s), entry/exit values, P&L, costs, exit day
    rows/part-NNNNNN.parquet    layout="rows": every row column, one part per chunk
    days/part-NNNNNN.parquet    layout="normalized": only what the valuation adds per day:
                                call, put, delta, gamma, vega, theta (+ cost, hedge_cost
                                when the spec has costs), one part per chunk
    market/part-000000.parquet  layout="normalized": asset, date, S, vol of every trading
                                day of the assets, once (not once per straddle-day)

The normalized layout writes 48 bytes per straddle-day instead of ~83 (Parquet's encoder,
not the valuation, is the limit of the row layout: 2.9M straddle-days/s per core against
~15M for the six day columns, measured on the project's 2-core machine). Everything else in
a row is either constant per straddle (asset .. straddle_id, K, K_call, K_put: in the
summary), market data (date, S, vol: in ``market``), a function of the day (day, tau,
action) or an exact function of the stored columns, evaluated as the kernels evaluate it:
``value = call + put``, ``pnl = side (value_k - value_{k-1}) - cost``,
``hedge_pnl = -delta_{k-1} (S_k - S_{k-1}) side - hedge_cost``, ``cum_pnl`` their running
sums in day order. :func:`open_dataset` reads either layout back as the full rows, equal
to the in-memory rows of the same run bit for bit (tested).
"""
from __future__ import annotations

import json
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import core
from .layout import X_ROW_COLUMNS, row_offsets
from .layout import rows_table as x_rows_table
from .schedule import Schedule
from .spec import SEED, Spec
from .structures_nb import running_sums_nb

LAYOUTS = ("rows", "normalized")
DAY_COLUMNS = ("call", "put", "delta", "gamma", "vega", "theta")
COST_COLUMNS = ("cost", "hedge_cost")
# the day columns are unique floats: no dictionary (it would be built and thrown away), no
# compression (random mantissas do not compress: snappy measured 48.0 -> 48.0 B/row), no
# min/max statistics (~30% of the encode time, no use on these columns); the cost columns
# are mostly zeros: dictionary (run-length) encoded
DAY_PARQUET_OPTIONS = {"compression": "none", "use_dictionary": list(COST_COLUMNS),
                       "write_statistics": False}
# the row layout (and the raw-write comparison in the benchmark): dictionary-encode only the
# columns that repeat; the unique floats would build a dictionary just to throw it away
PARQUET_DICT_COLUMNS = ["asset", "year", "month", "i", "straddle_id", "date", "day", "S",
                        "K", "vol", "tau", "action"]
PARQUET_OPTIONS: dict[str, Any] = {"compression": "snappy",
                                   "use_dictionary": PARQUET_DICT_COLUMNS}
# the structures' row layout: the same, and the strikes and costs (constant, mostly zeros)
X_ROWS_PARQUET_OPTIONS = {**PARQUET_OPTIONS, "use_dictionary": [
    n for n, _ in X_ROW_COLUMNS
    if n in (*PARQUET_DICT_COLUMNS, "K_call", "K_put", *COST_COLUMNS)]}


def day_columns(spec: Spec | None) -> tuple[str, ...]:
    """The stored day columns of the normalized layout for ``spec``."""
    return DAY_COLUMNS + (COST_COLUMNS if spec is not None and spec.has_costs else ())


def day_table(rows: dict, columns=DAY_COLUMNS) -> pa.Table:
    """The day columns of a chunk's rows (no copy)."""
    return pa.Table.from_arrays([pa.array(rows[c]) for c in columns], names=list(columns))


class PartFile:
    """One Parquet part file written table by table under a temp name, renamed to its final
    name when complete (a chunk recomputed after its worker was lost is harmless); on an
    error the temp file is removed."""

    def __init__(self, final: os.PathLike):
        self.final = Path(final)
        self.tmp = self.final.with_name(
            f"{self.final.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        self.writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table, options: dict | None = None) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema, **(options or {}))
        self.writer.write_table(table)

    def __enter__(self) -> "PartFile":
        return self

    def __exit__(self, etype, exc, tb) -> None:
        if self.writer is not None:
            self.writer.close()
        if etype is None and self.writer is not None:
            os.replace(self.tmp, self.final)
        else:
            self.tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- market
def market_arrays(store, schedule: Schedule) -> dict[str, np.ndarray]:
    """Every trading day of the schedule's assets, asset after asset (code order): the
    arrays ``asset_days`` hands the kernels."""
    codes = np.unique(schedule.asset)
    price_m, vol_m = store["price"], store["vol"]
    dates = store.dates.asi8
    out = {"asset": [], "date": [], "S": [], "vol": []}
    for code in codes:
        col = int(schedule.columns[code])
        p = np.asarray(price_m[:, col])
        trades = np.isfinite(p)
        out["asset"].append(np.full(int(trades.sum()), code, np.int32))
        out["date"].append(dates[trades])
        out["S"].append(p[trades])
        out["vol"].append(np.asarray(vol_m[:, col])[trades])
    return {k: np.concatenate(v) for k, v in out.items()}


def write_market(root: Path, store, schedule: Schedule) -> None:
    m = market_arrays(store, schedule)
    assets = pa.array(list(schedule.assets), type=pa.string())
    t = pa.table({"asset": pa.DictionaryArray.from_arrays(pa.array(m["asset"]), assets),
                  "date": pa.array(m["date"]).view(pa.timestamp("ns")),
                  "S": m["S"], "vol": m["vol"]})
    (root / "market").mkdir()
    pq.write_table(t, root / "market" / "part-000000.parquet")


# --------------------------------------------------------------------------- reader
class Dataset:
    """A straddle dataset written by ``backtest(output="parquet")``, either layout."""

    def __init__(self, path: os.PathLike):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise ValueError(f"{self.path}: not a straddles dataset (no meta.json)")
        self.meta = json.loads(meta_path.read_text())
        self.layout = self.meta.get("layout", "rows")
        self.spec = Spec.from_json(self.meta["spec"]) if self.meta.get("spec") else SEED
        self.extended = not self.spec.is_seed
        self.tenor = int(self.meta["tenor"])
        self.assets = list(self.meta["assets"])
        self.side = core.SIDES[self.meta["side"]]
        self.hedge = bool(self.meta["hedge"])
        self.rate = float(self.meta["rate"])

    @property
    def parts(self) -> list[tuple[int, int]]:
        """Straddle index ranges ``[lo, hi)`` of the part files."""
        if "parts" in self.meta:
            return [tuple(p) for p in self.meta["parts"]]
        # a row-layout dataset written before parts were recorded: one chunk per file
        files = sorted((self.path / "rows").glob("*.parquet"))
        n1 = self.tenor + 1
        bounds, lo = [], 0
        for f in files:
            hi = lo + pq.ParquetFile(f).metadata.num_rows // n1
            bounds.append((lo, hi))
            lo = hi
        return bounds

    @cached_property
    def summary(self) -> pa.Table:
        return pq.read_table(self.path / "summary")

    @cached_property
    def _offsets(self) -> np.ndarray:
        s = self.summary
        return row_offsets(s["exit_day"].to_numpy() if self.extended else None, s.num_rows,
                           self.tenor, self.extended)

    @cached_property
    def _market(self) -> dict[str, np.ndarray]:
        t = pq.read_table(self.path / "market")
        m = {"asset": t["asset"].combine_chunks().indices.to_numpy(),
             "date": t["date"].combine_chunks().cast(pa.int64()).to_numpy(),
             "S": t["S"].to_numpy(), "vol": t["vol"].to_numpy()}
        codes = m["asset"]
        m["first"] = np.searchsorted(codes, np.arange(len(self.assets) + 1))
        return m

    def _part_file(self, p: int) -> Path:
        sub = "days" if self.layout == "normalized" else "rows"
        return self.path / sub / f"part-{p:06d}.parquet"

    def read_part(self, p: int) -> pa.Table:
        """The full rows of part ``p`` (its straddles' rows, in straddle order)."""
        if self.layout != "normalized":
            return pq.read_table(self._part_file(p))
        lo, hi = self.parts[p]
        return self._rows(lo, hi, pq.read_table(self._part_file(p)))

    def iter_parts(self) -> Iterator[pa.Table]:
        """The rows part by part, in straddle order (memory: one part)."""
        for p in range(len(self.parts)):
            yield self.read_part(p)

    def read(self) -> pa.Table:
        """All rows (as the in-memory ``Backtest.rows`` of the same run)."""
        if self.layout != "normalized":
            return pq.read_table(self.path / "rows")
        parts = [self.read_part(p) for p in range(len(self.parts))]
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def straddle(self, straddle_id: int) -> pd.DataFrame:
        """The rows of one straddle."""
        sids = self.summary["straddle_id"].to_numpy()
        pos = int(np.searchsorted(sids, straddle_id))
        if pos >= len(sids) or sids[pos] != straddle_id:
            raise ValueError(f"straddle_id {straddle_id} was not valued (skipped or not "
                             "scheduled)")
        p = int(np.searchsorted([hi for _, hi in self.parts], pos, side="right"))
        lo = self.parts[p][0]
        off = self._offsets
        t = self.read_part(p)
        return t.slice(int(off[pos] - off[lo]), int(off[pos + 1] - off[pos])).to_pandas()

    def _rows(self, lo: int, hi: int, days: pa.Table) -> pa.Table:
        """Rebuild the full rows of straddles ``[lo, hi)`` from their day columns."""
        s = self.summary.slice(lo, hi - lo)
        off = self._offsets[lo:hi + 1] - self._offsets[lo]
        counts = np.diff(off)
        n = int(off[-1])
        if days.num_rows != n:
            raise ValueError(f"{self.path}: part of straddles {lo}..{hi} has {days.num_rows} "
                             f"day rows, the summary says {n}")
        m = self._market
        code = s["asset"].combine_chunks().indices.to_numpy()
        entry = s["entry_date"].combine_chunks().cast(pa.int64()).to_numpy()
        b = np.empty(len(code), np.int64)
        for c in np.unique(code):   # entry positions in the asset's trading days
            a0, a1 = m["first"][c], m["first"][c + 1]
            sel = code == c
            b[sel] = a0 + np.searchsorted(m["date"][a0:a1], entry[sel])
        starts = off[:-1]
        day = (np.arange(n, dtype=np.int64) - np.repeat(starts, counts))
        pos = np.repeat(b, counts) + day
        S = m["S"][pos]
        cols = {"asset": np.repeat(code, counts)}
        for c in ("year", "month", "i", "straddle_id"):
            cols[c] = np.repeat(s[c].to_numpy(), counts)
        cols["date"] = m["date"][pos]
        cols["day"] = day.astype(np.int16)
        cols["S"] = S
        cols["K"] = np.repeat(m["S"][b], counts)
        cols["vol"] = m["vol"][pos]
        cols["tau"] = core.day_tables(self.tenor, self.rate)[0][day]
        for c in days.column_names:
            cols[c] = days[c].to_numpy()
        zeros = np.zeros(n)
        cost, hcost = cols.get("cost", zeros), cols.get("hedge_cost", zeros)
        value = cols["call"] + cols["put"]
        g = np.empty(n)
        g[1:] = self.side * (value[1:] - value[:-1])
        g[starts] = 0.0
        hg = np.empty(n)
        hg[1:] = -cols["delta"][:-1] * (S[1:] - S[:-1]) * self.side
        hg[starts] = 0.0
        cols["value"] = value
        cols["pnl"] = g - cost if self.extended else g
        cols["hedge_pnl"] = hg - hcost if self.extended else hg
        cols["cum_pnl"] = running_sums_nb(cols["pnl"], cols["hedge_pnl"], counts, self.hedge,
                                          np.empty(n))
        act = np.ones(n, np.int8)
        act[starts] = 0
        act[off[1:] - 1] = 2
        cols["action"] = act
        if not self.extended:
            return core.rows_table(cols, self.assets)
        for c in ("K_call", "K_put"):
            cols[c] = np.repeat(s[c].to_numpy(), counts)
        cols["cost"], cols["hedge_cost"] = cost, hcost
        return x_rows_table(cols, self.assets)


def open_dataset(path: os.PathLike) -> Dataset:
    """A straddle dataset (either layout) for reading its rows back."""
    return Dataset(path)
