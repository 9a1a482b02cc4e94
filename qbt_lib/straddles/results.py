"""What a straddles run returns: :class:`Backtest`, the rows (in memory or a Parquet
dataset), the per-straddle summary, and the figures the notebook and the report show."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .. import metrics as qmetrics
from ..device import gpu_available
from ..metrics import Result
from ..params import as_int
from . import portfolio
from .dataset import Dataset, open_dataset
from .layout import row_offsets
from .params import WORKLOAD
from .schedule import Schedule
from .spec import SEED, Spec


@dataclass
class Backtest(Result):
    """What :func:`~qbt_lib.straddles.api.backtest` and :func:`~qbt_lib.straddles.api.run`
    return: the rows (in memory, or a Parquet dataset) and the per-straddle summary.

    ``params``: the checked parameters, with the ``impl``/``device`` that ran and the
    schedule's (assets, years, per_month, tenor). ``timing``/``scaling``: the tables of
    :func:`~qbt_lib.straddles.api.compare_impls` when :meth:`with_timings` attached them
    (the report's speed-up and parallel efficiency come from there)."""

    schedule: Schedule
    params: dict
    rows: pa.Table | None = None
    path: Path | None = None
    seconds: float = 0.0
    _summary: pa.Table | None = field(default=None, repr=False)
    timing: pd.DataFrame | None = field(default=None, repr=False)
    scaling: pd.DataFrame | None = field(default=None, repr=False)
    spec: Spec = SEED               # structure, costs, exit (``spec.py``)
    layout: str = "rows"            # output="parquet": "rows" | "normalized" (``dataset.py``)
    dates: np.ndarray | None = field(default=None, repr=False)  # the store's days (int64 ns)
    _n_rows: int | None = field(default=None, repr=False)

    workload = WORKLOAD

    # ------------------------------------------------------------------ the data
    @property
    def n_straddles(self) -> int:
        return len(self.schedule)

    @property
    def n_rows(self) -> int:
        """Straddle-days valued and kept (fewer than the schedule's when exits close
        straddles before expiry)."""
        return self.schedule.straddle_days if self._n_rows is None else self._n_rows

    @property
    def summary(self) -> pd.DataFrame:
        """One row per straddle: entry/exit dates and values, pnl, hedged pnl, returns."""
        if self._summary is None and self.path is not None:
            self._summary = pq.read_table(self.path / "summary")
        return self._summary.to_pandas()

    @property
    def skipped(self) -> pd.DataFrame:
        """The straddles that could not be valued, with the reason."""
        return self.schedule.skipped

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (reads the dataset back when they were streamed)."""
        if self.rows is not None:
            return self.rows.to_pandas()
        if self.path is not None:
            return self.dataset().read().to_pandas()
        raise ValueError("the rows were not kept (output='summary')")

    def dataset(self) -> Dataset:
        """The Parquet dataset of ``output="parquet"`` (either layout), for reading back."""
        if self.path is None:
            raise ValueError("no dataset: output='parquet' writes one")
        return open_dataset(self.path)

    def portfolio(self, normalize: str = "premium") -> pd.DataFrame:
        """The daily mark-to-market book of all open positions (``portfolio.daily_book``):
        P&L netted by date, each straddle sized to one premium or one unit of notional."""
        if self.rows is not None:
            parts = [self.rows]
        elif self.path is not None:
            parts = self.dataset().iter_parts()
        else:
            raise ValueError("the daily book needs the rows: output='table' or 'parquet' "
                             "(output='summary' keeps only one row per straddle)")
        if self.dates is None:
            raise ValueError("the daily book needs the run's trading days (Backtest.dates, "
                             "set by backtest/run)")
        return portfolio.daily_book(parts, self.dates, hedge=self.params["hedge"],
                                    normalize=normalize)

    def straddle(self, straddle_id: int) -> pd.DataFrame:
        """The rows of one straddle: its greeks and P&L through its life."""
        sid = as_int("straddle_id", straddle_id, min=0)
        pos = np.searchsorted(self.schedule.straddle_id, sid)
        if pos >= len(self.schedule) or self.schedule.straddle_id[pos] != sid:
            raise ValueError(f"straddle_id {sid} was not valued (skipped or not scheduled)")
        n1 = self.schedule.days
        if self.rows is not None and not self.spec.is_seed:  # rows up to each exit day
            off = row_offsets(self._summary["exit_day"].to_numpy(), len(self.schedule),
                              self.schedule.tenor, True)
            return self.rows.slice(int(off[pos]), int(off[pos + 1] - off[pos])).to_pandas()
        if self.rows is not None:
            return self.rows.slice(pos * n1, n1).to_pandas()
        if self.path is None:
            raise ValueError("the rows were not kept (output='summary')")
        if self.layout == "normalized":
            return self.dataset().straddle(sid)
        t = ds.dataset(self.path / "rows", format="parquet").to_table(
            filter=ds.field("straddle_id") == sid)
        return t.to_pandas()

    def by_asset(self) -> pd.DataFrame:
        """Per asset: straddles, mean premium, mean P&L plain and hedged, the share of
        winners, mean return on premium plain and hedged."""
        return self.summary.groupby("asset", observed=True).agg(
            straddles=("pnl", "size"), mean_premium=("entry_value", "mean"),
            mean_pnl=("pnl", "mean"), mean_hedged_pnl=("hedged_pnl", "mean"),
            win_rate=("pnl", lambda x: (x > 0).mean()), mean_return=("return", "mean"),
            mean_hedged_return=("hedged_return", "mean"))

    # ------------------------------------------------------------------ the figures
    @property
    def straddle_days_per_s(self) -> float:
        return self.n_rows / self.seconds if self.seconds > 0 else float("nan")

    def with_timings(self, timing: pd.DataFrame | None = None,
                     scaling: pd.DataFrame | None = None) -> "Backtest":
        """Attach :func:`compare_impls` tables: ``timing`` (the impls on the seed's
        straddles, one core) and ``scaling`` (one impl at 1 .. N workers); returns self."""
        self.timing, self.scaling = timing, scaling
        return self

    def headline(self) -> str:
        """This run in one line: what ran, rows, seconds, straddle-days/s, straddles/s."""
        p = self.params
        on = " on the GPU" if p.get("device") == "gpu" else ""
        rate = (f"{self.straddle_days_per_s / 1e6:.1f}M straddle-days/s, "
                f"{self.n_straddles / self.seconds:,.0f} straddles/s" if self.seconds > 0
                else "no time measured")
        what = "" if self.spec.is_seed else f"{self.spec.label()}: "
        return (f"{what}impl={p.get('impl')}{on}, n_jobs={p.get('n_jobs')}, "
                f"backend={p.get('backend')}: {self.n_rows:,} rows in {self.seconds:.3f} s "
                f"= {rate}")

    def report_headline(self) -> dict:
        """The report's summary strings (throughput, speed-up vs the reference, parallel
        efficiency, GPU), from the attached :meth:`with_timings` tables, else this run's."""
        t, s = self.timing, self.scaling
        if s is not None and len(s):
            best = s.iloc[-1]
            throughput = (f"{best.throughput / 1e6:.1f}M straddle-days/s "
                          f"({best.straddles_per_s:,.0f} straddles/s), {best.impl}, "
                          f"{int(best.n_jobs)} cores")
            n = int(s["n_jobs"].max())
            eff = (f"{float(best.efficiency):.0%} at {int(best.n_jobs)} workers" if n > 1
                   else "n/a (1 core)")
        else:
            throughput = (f"{self.straddle_days_per_s / 1e6:.1f}M straddle-days/s, this run "
                          f"({self.params.get('impl')}, n_jobs={self.params.get('n_jobs')})")
            eff = "not measured (compare_impls over n_jobs)"
        speedup, gpu = "not measured (compare_impls)", "n/a (no GPU)"
        if t is not None:
            one = t[(t["impl"] == "numba") & (t["n_jobs"] == 1)]
            if len(one) and "speedup" in t:
                speedup = (f"{float(one['speedup'].iloc[0]):.0f}x "
                           f"({int(one['straddles'].iloc[0]):,} straddles, one core)")
            cupy = t[t["impl"] == "cupy"]
            if len(cupy):
                gpu = (f"{float(cupy['throughput'].iloc[0]) / 1e6:.0f}M "
                       "straddle-days/s (rows to host)")
        if gpu.startswith("n/a") and gpu_available():
            gpu = "not measured"
        return {"throughput": throughput, "speedup_vs_reference": speedup,
                "parallel_efficiency": eff, "gpu": gpu}

    def metrics(self) -> dict:
        summ = self.summary
        m = {"n_straddles": self.n_straddles, "n_rows": self.n_rows,
             "backtest_seconds": self.seconds, "skipped": len(self.schedule.skipped),
             "straddle_days_per_s": self.straddle_days_per_s,
             "mean_return": float(summ["return"].mean()),
             "mean_hedged_return": float(summ["hedged_return"].mean()),
             "headline": self.report_headline()}
        if self.timing is not None:
            m["timing"] = self.timing.reset_index().to_dict("records")
        if self.scaling is not None:
            m["parallel"] = self.scaling.reset_index().to_dict("records")
        return m

    def write_metrics(self, output_dir: str | os.PathLike | None = None, *,
                      params: dict | None = None, **extra) -> Path:
        """Write ``metrics.json``: :meth:`metrics`, the parameters (``params``: what the
        notebook loaded the market with, added to the backtest's) and ``extra`` values."""
        out = output_dir if output_dir is not None else self.params.get("output_dir")
        if out is None:
            raise ValueError("output_dir: this run has none; pass write_metrics(output_dir=...)")
        return qmetrics.write_metrics(out, self.workload, {**self.params, **(params or {})},
                                      **self.metrics(), **extra)
