"""What an analysis returns: :class:`MarketSimResult` (tables over the raw arrays), its
headline and ``metrics.json``, its Parquet files, and the seed's timing table."""
from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import paths
from ..data import write_parquet_tables
from ..metrics import Result
from ..metrics import write_metrics as _write_metrics
from .enums import ARRAYS_EXACT, ATOL, METRICS, RTOL, SERIES

#: the Parquet tables :meth:`MarketSimResult.save` writes
TABLES = ("summary", "picks", "ranking", "simulations", "forecasts")


@dataclass
class MarketSimResult(Result):
    """The tables of one analysis (pandas at the edges) over the raw per-symbol arrays.

    ``arrays``: ``point/lo/hi/actual`` ``(symbols, simulations, eval_days, 3)`` forecasts and
    actual returns (close, high, low), ``metrics`` ``(symbols, simulations, strategies, 5)``,
    ``pos``/``net`` ``(..., strategies, eval_days - 1)`` positions and net daily returns,
    ``mult`` ``(symbols, simulations, 2)`` the maxdiff offsets (m_h, m_l).
    ``simulations`` and ``forecasts`` are long tables built on first access.

    ``frame()`` is the ranking; ``headline(timing)``/``metrics(timing)`` add the figures of
    a :func:`~qbt_lib.marketsim.compare_impls` table when given one.
    """
    table: pd.DataFrame        # per symbol x strategy: metrics averaged over simulations
    picks: pd.DataFrame        # per symbol: the chosen strategy and its figures
    ranking: pd.DataFrame      # picks ranked by mean total return, then Sharpe
    arrays: dict = field(repr=False)
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    dates: list = field(default_factory=list, repr=False)  # per symbol, its analysed bars
    oos: Any = None            # oos.OOSResult: the out-of-sample walk (oos_days/forecast_next)
    next_session: Any = None   # per symbol: tomorrow's pick and order (forecast_next=True)

    workload = "marketsim"

    @property
    def symbols(self) -> list[str]:
        return list(self.params["symbols"])

    @property
    def strategies(self) -> list[str]:
        return list(self.params["strategies"])

    @functools.cached_property
    def simulations(self) -> pd.DataFrame:
        """Per symbol x simulation x strategy metrics (+ the maxdiff offsets)."""
        names, strategies = self.symbols, self.strategies
        metrics = self.arrays["metrics"]
        grid = np.indices(metrics.shape[:3])
        sims = pd.DataFrame({"symbol": _cat(grid[0], names),
                             "strategy": _cat(grid[2], strategies),
                             "simulation": grid[1].ravel(),
                             **{m: metrics[..., i].ravel() for i, m in enumerate(METRICS)}})
        if "maxdiff" in strategies:
            is_md = (grid[2] == strategies.index("maxdiff")).ravel()
            for c, col in enumerate(("m_high", "m_low")):
                v = np.full(len(sims), np.nan)
                v[is_md] = self.arrays["mult"][:, :, c].ravel()
                sims[col] = v
        return sims

    @functools.cached_property
    def forecasts(self) -> pd.DataFrame:
        """Per symbol x simulation x window day x series: forecast, band and actual."""
        S, N, E, _ = self.arrays["point"].shape
        # day j of simulation k is bar n - 1 - k - (E - 1) + j of the symbol's n bars
        bars = -np.arange(N)[:, None] - (E - 1) + np.arange(E)
        day_dates = np.stack([np.asarray(d)[len(d) - 1 + bars] for d in self.dates])
        g = np.indices((S, N, E, 3))
        fc = pd.DataFrame({
            "symbol": _cat(g[0], self.symbols), "simulation": g[1].ravel(),
            "day": g[2].ravel(), "date": np.repeat(day_dates.ravel(), 3),
            "series": _cat(g[3], SERIES), "point": self.arrays["point"].ravel(),
            "band_lo": self.arrays["lo"].ravel(), "band_hi": self.arrays["hi"].ravel(),
            "actual": self.arrays["actual"].ravel()})
        fc["band"] = fc["band_hi"] - fc["band_lo"]
        fc["traded"] = g[2].ravel() < E - 1  # the last day is the "next day" forecast
        return fc

    def returns_pivot(self, metric: str = "total_return") -> pd.DataFrame:
        """symbol x strategy table of one metric (mean over simulations)."""
        return self.table.pivot(index="symbol", columns="strategy", values=metric)

    def strategy_summary(self) -> pd.DataFrame:
        """Per strategy (in-sample): metrics averaged over symbols and simulations, how many
        symbols pick it, and ``never_traded``: it held no position in any symbol and
        simulation of this run (its figures are those of staying flat)."""
        t = self.table.groupby("strategy", observed=True, sort=False)
        out = t[list(METRICS)].mean()
        out["picked_by"] = self.picks["strategy"].value_counts().reindex(out.index) \
            .fillna(0).astype(int)
        out["never_traded"] = t["never_traded"].all()
        return out

    @property
    def never_traded(self) -> list[str]:
        """Strategies that held no position in any symbol and simulation of this run."""
        s = self.strategy_summary()
        return list(s.index[s["never_traded"]])

    # ------------------------------------------------------------------ the Result face
    @property
    def work(self) -> int:
        """Symbol-simulations analysed (the unit of every throughput)."""
        return len(self.symbols) * int(self.params["simulations"])

    def frame(self) -> pd.DataFrame:
        """The main table: the symbols ranked, each with its picked strategy."""
        return self.ranking

    def digest(self, decimals: int = 8) -> str:
        """A short hash of the picks, ranking and rounded metrics (stable across machines)."""
        return digest(self, decimals)

    def headline_figures(self, timing: pd.DataFrame | None = None) -> dict[str, str]:
        """The report's headline keys (throughput, speedup_vs_reference, parallel_efficiency,
        gpu): from a :func:`~qbt_lib.marketsim.compare_impls` table when given, else this
        run's own throughput (the other keys then say what would measure them)."""
        if timing is None:
            t = self.timings
            s = t.get("analysis_s") or float("nan")
            return {"throughput": f"{self.work / s:.0f} symbol-sims/s ({t.get('impl')} on "
                                  f"{t.get('device')}, {t.get('backend')}, "
                                  f"n_jobs={t.get('n_jobs')})",
                    "speedup_vs_reference": "-", "parallel_efficiency": "-",
                    "gpu": "-" if t.get("device") != "gpu" else f"{s:.2f} s"}
        return headline_figures(timing)

    def headline(self, timing: pd.DataFrame | None = None) -> str:
        """One line: the run (universe, engine, throughput, top pick); with a
        :func:`~qbt_lib.marketsim.compare_impls` table, its headline figures."""
        if timing is not None:
            return "; ".join(f"{k}: {v}" for k, v in headline_figures(timing).items())
        t = self.timings
        top = self.ranking.iloc[0]
        return (f"{len(self.symbols)} symbols x {self.params['simulations']} simulations, "
                f"{len(self.strategies)} strategies: {t.get('impl')} on {t.get('device')} "
                f"({t.get('backend')}, n_jobs={t.get('n_jobs')}) in "
                f"{t.get('analysis_s', float('nan')):.2f} s "
                f"({self.headline_figures()['throughput'].split(' (')[0]}); top pick "
                f"{top['symbol']} {top['strategy']} ({top['total_return']:+.3%})")

    def metrics(self, timing: pd.DataFrame | None = None,
                startup: Mapping[str, Any] | None = None) -> dict:
        """``metrics.json``'s figures: picks, ranking, timings, digest and the headline;
        with a :func:`~qbt_lib.marketsim.compare_impls` table (and ``startup_times``) the
        comparison and the seed's timing table too."""
        out = {"picks": {s: r["strategy"] for s, r in self.picks.iterrows()},
               "ranking": list(self.ranking["symbol"]), "ranking_selection": "in-sample",
               "timings": self.timings, "digest": self.digest(),
               "headline": self.headline_figures(timing)}
        if self.oos is not None and self.oos.days:
            out["oos"] = self.oos.headline()
        if self.next_session is not None:
            out["next_session"] = {s: {"strategy": r["strategy"], "position": int(r["position"])}
                                   for s, r in self.next_session.iterrows()}
        if timing is not None:
            out["compare_impls"] = timing.reset_index().to_dict(orient="records")
            out["timing_table"] = timing_table(startup, timing).reset_index().to_dict(
                orient="records")
        if startup is not None:
            out["startup"] = dict(startup)
        return out

    def write_metrics(self, output_dir: str | os.PathLike | None = None, *,
                      timing: pd.DataFrame | None = None,
                      startup: Mapping[str, Any] | None = None, **extra: Any) -> Path:
        """``metrics.json`` of :meth:`metrics` (``extra`` values added or overriding)."""
        out = output_dir if output_dir is not None else self.params.get("output_dir")
        if out is None:
            raise ValueError("output_dir: this run has none; pass write_metrics(output_dir=...)")
        return _write_metrics(out, self.workload, self.params,
                             **{**self.metrics(timing, startup), **extra})

    def save(self, output_dir: str | os.PathLike) -> dict[str, Path]:
        """The tables as Parquet (``summary, picks, ranking, simulations, forecasts``, and
        ``oos_daily, oos_metrics, next_session`` when the run has them), each written under
        a temporary name and renamed when all are complete."""
        frames = {"summary": self.table, "picks": self.picks.reset_index(),
                  "ranking": self.ranking, "simulations": self.simulations,
                  "forecasts": self.forecasts}
        if self.oos is not None and self.oos.days:
            frames["oos_daily"] = self.oos.daily
            frames["oos_metrics"] = self.oos.metrics.reset_index()
        if self.next_session is not None:
            frames["next_session"] = self.next_session.reset_index()
        written = write_parquet_tables(paths.resolve_output_dir(output_dir),
                                       {f"{k}.parquet": v for k, v in frames.items()})
        return {name: written[f"{name}.parquet"] for name in frames}


def _cat(codes: np.ndarray, categories: Sequence[str]) -> pd.Categorical:
    """A categorical column from integer codes (building string columns costs more than the
    analysis of a symbol with pandas 3's Arrow strings)."""
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int32).ravel(),
                                     categories=list(categories))


def summary_tables(names: list[str], arrays: dict, strategies: list[str],
                   crypto: np.ndarray) -> tuple:
    """symbol x strategy means, the picks and the ranking; ``never_traded``: the strategy
    held no position for the symbol in any simulation (the table; the ranking for its pick)."""
    S, K = len(names), len(strategies)
    mean = arrays["metrics"].mean(axis=1)  # (S, K, 5), summed in simulation order everywhere
    sym_k = np.repeat(np.arange(S), K)
    table = pd.DataFrame({"symbol": _cat(sym_k, names),
                          "strategy": _cat(np.tile(np.arange(K), S), strategies),
                          **{m: mean[:, :, i].ravel() for i, m in enumerate(METRICS)},
                          "crypto": crypto[sym_k]})
    idle = ~(arrays["pos"] != 0).any(axis=(1, 3))  # (S, K): never held a position
    table["never_traded"] = idle.ravel()
    best = np.argmax(mean[:, :, 0], axis=1)  # first max: ties go to the earlier strategy
    picks = pd.DataFrame({"symbol": names, "strategy": [strategies[b] for b in best],
                          **{m: mean[np.arange(S), best, i] for i, m in enumerate(METRICS)},
                          "crypto": crypto, "never_traded": idle[np.arange(S), best]})
    order = np.lexsort((np.array(names, dtype=str), -picks["sharpe"].to_numpy(),
                        -picks["total_return"].to_numpy()))
    ranking = picks.iloc[order].reset_index(drop=True)
    ranking.insert(0, "rank", np.arange(1, S + 1))
    return table, picks.set_index("symbol"), ranking


def same_answers(a: MarketSimResult, b: MarketSimResult) -> bool:
    """Whether two analyses agree: the same picks and ranking, positions, actual returns and
    maxdiff offsets equal, forecasts and metrics within :data:`~.enums.RTOL`/``ATOL``."""
    if list(a.picks["strategy"]) != list(b.picks["strategy"]) or \
            list(a.ranking["symbol"]) != list(b.ranking["symbol"]):
        return False
    for k, x in a.arrays.items():
        y = b.arrays[k]
        if x.shape != y.shape:
            return False
        if k in ARRAYS_EXACT:
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif not np.allclose(x, y, rtol=RTOL, atol=ATOL, equal_nan=True):
            return False
    return True


def digest(result: MarketSimResult, decimals: int = 8) -> str:
    """A short hash of the picks, ranking and rounded metrics (stable across machines)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(json.dumps([list(result.picks["strategy"]), list(result.ranking["symbol"])])
             .encode())
    h.update(np.round(result.table[list(METRICS)].to_numpy(), decimals).tobytes())
    return h.hexdigest()


def write_results(result: MarketSimResult, output_dir: Any, *,
                  timing: pd.DataFrame | None = None, startup: Mapping[str, Any] | None = None,
                  **extra: Any) -> dict[str, Path]:
    """Write the tables as Parquet (:meth:`MarketSimResult.save`) and then ``metrics.json``
    into ``output_dir``: an interrupted run leaves no partial dataset."""
    final = result.save(output_dir)
    final["metrics"] = result.write_metrics(output_dir, timing=timing, startup=startup,
                                            **extra)
    return final


# --------------------------------------------------------------------------- timings
def speedup_vs_reference(timing: pd.DataFrame) -> float:
    """The one named speed-up of a :func:`~qbt_lib.marketsim.compare_impls` table: numba on
    one core against the reference on one core, on the same symbols."""
    sub = timing[(timing["work"] == "reference subset") & (timing["impl_name"] == "numba")]
    return float(sub["speedup"].iloc[0]) if len(sub) else float("nan")


def headline_figures(timing: pd.DataFrame) -> dict[str, str]:
    """The report's headline keys from a :func:`~qbt_lib.marketsim.compare_impls` table:
    the throughput of one named case on the universe (numba on one thread; the first
    universe row where the table has none), never the fastest of the rows; the one named
    speed-up (numba on one core against the reference on one core, on the same symbols);
    threads and processes against one thread; the GPU's time."""
    uni = timing[timing["work"] == "universe"]
    sub = timing[timing["work"] == "reference subset"]
    one = uni[(uni["impl_name"] == "numba") & (uni["n_jobs"] == 1)]
    named = (one if len(one) else uni).index[0]
    out = {"throughput": f"{uni.loc[named, 'throughput']:.0f} symbol-sims/s ({named})"}
    fast = sub[sub["impl_name"] == "numba"]
    out["speedup_vs_reference"] = (
        f"{speedup_vs_reference(timing):.0f}x (numba vs reference, one core each, "
        f"{fast['symbols'].iloc[0]} symbol(s))" if len(fast) else "-")
    par = uni[(uni["impl_name"] == "numba") & (uni["n_jobs"] > 1)]
    out["parallel_efficiency"] = ", ".join(
        f"{label}: {row['speedup']:.2f}x one thread" for label, row in par.iterrows()) or "-"
    gpu = uni[uni["impl_name"] == "cupy"]
    out["gpu"] = (f"{gpu['seconds'].iloc[0]:.2f} s ({gpu['speedup'].iloc[0]:.1f}x one "
                  f"CPU thread)" if len(gpu) else "no GPU")
    return out


def timing_table(startup: Mapping[str, Any] | None, analysis: Any,
                 reference_s: float | None = None) -> pd.DataFrame:
    """The seed's table: start-up (cold, cached) + analysis = first and subsequent run.

    ``startup``: :func:`~qbt_lib.marketsim.startup_times` (its ``total_s``: a fresh process's
    import + warm-up); ``analysis``: ``{configuration: seconds}`` (a GPU configuration, named
    ``gpu``/``cupy``, has no Numba start-up) with ``reference_s``, or a
    :func:`~qbt_lib.marketsim.compare_impls` table (the reference's time on the universe is
    then extrapolated from its throughput on its subset)."""
    if isinstance(analysis, pd.DataFrame):
        uni = analysis[analysis["work"] == "universe"]
        ref = analysis[analysis["impl_name"] == "reference"]
        size = float((uni["throughput"] * uni["seconds"]).iloc[0])
        if reference_s is None and len(ref):
            reference_s = size / float(ref["throughput"].iloc[0])
        analysis = uni["seconds"].to_dict()
    cold = (startup or {}).get("cold", {}).get("total_s", np.nan)
    cached = (startup or {}).get("cached", {}).get("total_s", np.nan)
    rows = []
    if reference_s is not None:
        rows.append({"configuration": "reference (Python/pandas)", "cold start s": 0.0,
                     "cached start s": 0.0, "analysis s": reference_s,
                     "first run s": reference_s, "subsequent run s": reference_s})
    for label, a in analysis.items():
        gpu = "gpu" in label.lower() or "cupy" in label.lower()
        c, w = (np.nan, np.nan) if gpu else (cold, cached)
        rows.append({"configuration": label, "cold start s": c, "cached start s": w,
                     "analysis s": a, "first run s": c + a, "subsequent run s": w + a})
    return pd.DataFrame(rows).set_index("configuration")
