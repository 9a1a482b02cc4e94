"""A walk-forward run's results: :class:`WalkForwardResult` (DataFrames), its headline and
``metrics.json``, its Parquet files."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import paths
from ..data import write_parquet_tables
from ..metrics import Result
from ..metrics import write_metrics as _write_metrics
from .config import BARS_PER_YEAR, FEATURES, METRICS, WalkForwardConfig

OUTPUT_FILES = ("fold_metrics.parquet", "oos_bars.parquet")


@dataclasses.dataclass
class WalkForwardResult(Result):
    """``folds``: the fold timeline per (fold, asset); ``fold_metrics``: per-fold metrics;
    ``aggregate``: mean and std across folds per asset; ``bars``: every traded test bar
    (prediction, position, return, pnl); ``equity``: the out-of-sample equity curve per asset
    stitched from the test windows; ``oos``: that curve's metrics; ``importances``: per
    (fold, asset) feature importances (random forest) or coefficients (ridge), else None.

    ``frame()`` is ``fold_metrics``; ``headline(timing)``/``metrics(timing)`` add the figures
    of a :func:`~qbt_lib.walkforward.before_after` table when given one."""
    config: WalkForwardConfig
    folds: pd.DataFrame
    fold_metrics: pd.DataFrame
    aggregate: pd.DataFrame
    bars: pd.DataFrame
    equity: pd.DataFrame
    oos: pd.DataFrame
    importances: pd.DataFrame | None
    timings: dict

    workload = "walkforward"

    @property
    def params(self) -> dict:
        """The run's parameters as plain JSON values (``config.params()``)."""
        return self.config.params()

    @property
    def n_folds(self) -> int:
        return int(self.folds["fold"].nunique())

    def positions_hash(self) -> str:
        """A short hash of every position in task order (equal runs, equal hash)."""
        h = hashlib.blake2b(digest_size=8)
        h.update(self.bars["position"].to_numpy(np.int8).tobytes())
        return h.hexdigest()

    def save(self, output_dir) -> list[Path]:
        """Write ``fold_metrics.parquet`` (timeline + metrics per fold and asset) and
        ``oos_bars.parquet`` (every test bar). Each file is written to a temp name and renamed,
        so an interrupted save leaves no partial file."""
        tables = {"fold_metrics.parquet": self.folds.merge(self.fold_metrics,
                                                           on=["fold", "asset"]),
                  "oos_bars.parquet": self.bars}
        return list(write_parquet_tables(output_dir, tables).values())

    # ------------------------------------------------------------------ the Result face
    def frame(self) -> pd.DataFrame:
        """The main table: one row of metrics per (fold, asset) test window."""
        return self.fold_metrics

    def headline_figures(self, timing: pd.DataFrame | None = None) -> dict[str, str]:
        """The report's headline keys (throughput, speedup_vs_reference, parallel_efficiency,
        gpu): from a :func:`~qbt_lib.walkforward.before_after` table when given, else this
        run's own throughput."""
        if timing is not None:
            return headline(timing)
        t = self.timings
        s = t.get("total_s") or float("nan")
        return {"throughput": f"{len(self.fold_metrics) / s:.0f} fold-assets/s "
                              f"({self.config.impl}, n_jobs={self.config.n_jobs})",
                "speedup_vs_reference": "-", "parallel_efficiency": "-",
                "gpu": "n/a (CPU workload)"}

    def headline(self, timing: pd.DataFrame | None = None) -> str:
        """One line: the run (assets, folds, model, engine, time, out-of-sample Sharpe);
        with a :func:`~qbt_lib.walkforward.before_after` table, its headline figures."""
        if timing is not None:
            return "; ".join(f"{k}: {v}" for k, v in headline(timing).items())
        c = self.config
        return (f"{len(c.assets)} assets x {self.n_folds} folds, {c.model}, {c.impl} "
                f"(n_jobs={c.n_jobs}): {len(self.fold_metrics)} fold-assets in "
                f"{self.timings.get('total_s', float('nan')):.2f} s; out-of-sample Sharpe "
                f"{self.oos['sharpe'].mean():+.2f} (mean over assets); positions "
                f"{self.positions_hash()}")

    def metrics(self, timing: pd.DataFrame | None = None) -> dict:
        """``metrics.json``'s figures: folds, tasks, positions hash, the per-asset aggregate
        and out-of-sample metrics, timings and the headline (with a
        :func:`~qbt_lib.walkforward.before_after` table, that table too)."""
        out = {"headline": self.headline_figures(timing), "n_folds": self.n_folds,
               "n_tasks": len(self.fold_metrics), "positions_hash": self.positions_hash(),
               "aggregate": {a: {f"{m}_{s}": v for (m, s), v in row.items()}
                             for a, row in self.aggregate.iterrows()},
               "oos": self.oos.to_dict(orient="index"), "timings": self.timings}
        if timing is not None:
            out["timing"] = timing.to_dict(orient="records")
        return out

    def write_metrics(self, output_dir: str | os.PathLike | None = None, *,
                      timing: pd.DataFrame | None = None, **extra: Any) -> Path:
        """``metrics.json`` of :meth:`metrics` (``extra`` values added or overriding)."""
        if output_dir is None:
            raise ValueError("output_dir: pass write_metrics(output_dir=...)")
        return _write_metrics(output_dir, self.workload, self.params,
                              **{**self.metrics(timing), **extra})


def _curve_metrics(pnl: pd.Series) -> dict:
    equity = (1 + pnl).cumprod()
    total = float(equity.iloc[-1] - 1)
    sd = float(pnl.std())
    years = len(pnl) / BARS_PER_YEAR
    return {"total_return": total,
            "annual_return": (1 + total) ** (1 / years) - 1 if total > -1 else -1.0,
            "annual_vol": sd * np.sqrt(BARS_PER_YEAR),
            "sharpe": float(pnl.mean()) / sd * np.sqrt(BARS_PER_YEAR) if sd > 0 else 0.0,
            "max_drawdown": float(min((equity / equity.cummax().clip(lower=1.0) - 1).min(), 0.0)),
            "bars": len(pnl)}


def assemble(results: list[dict], cfg: WalkForwardConfig, timings: dict) -> WalkForwardResult:
    """Tables from the per-(fold, asset) results (in task order: fold, then asset)."""
    folds = pd.DataFrame({k: [r[k] for r in results] for k in
                          ("fold", "asset", "train_start", "train_end", "test_start",
                           "test_end", "n_train")})
    lengths = np.array([len(r["dates"]) for r in results])
    folds["n_test"] = lengths
    metrics = pd.DataFrame({"fold": folds["fold"], "asset": folds["asset"],
                            **{m: [r["metrics"][m] for r in results] for m in METRICS}})
    metrics["trades"] = metrics["trades"].astype(np.int64)
    cat = lambda key: np.concatenate([r[key] for r in results])  # noqa: E731
    bars = pd.DataFrame({
        "fold": np.repeat(folds["fold"].to_numpy(np.int32), lengths),
        "asset": np.repeat(folds["asset"].to_numpy(object), lengths),
        "date": pd.DatetimeIndex(cat("dates").view("datetime64[ns]")),
        "prediction": cat("prediction"), "position": cat("position").astype(np.int8),
        "ret": cat("ret"), "pnl": cat("pnl")})
    agg = metrics.groupby("asset", sort=False)[list(METRICS)].agg(["mean", "std"])
    overall = metrics[list(METRICS)].agg(["mean", "std"]).unstack().to_frame().T
    overall.index = ["all assets"]
    aggregate = pd.concat([agg, overall])
    # Stitch each asset's test windows: a bar covered by two folds (test_length > step_size)
    # is traded by the newer model.
    curves, oos = {}, {}
    asset_col, date_col, pnl_col = (bars[c].to_numpy() for c in ("asset", "date", "pnl"))
    for asset in cfg.assets:
        idx = np.flatnonzero(asset_col == asset)
        # rows are in fold order: the last occurrence of a date is the newest fold's
        dates, first_rev = np.unique(date_col[idx][::-1], return_index=True)
        pnl = pd.Series(pnl_col[idx][len(idx) - 1 - first_rev], index=pd.DatetimeIndex(dates))
        curves[asset] = (1 + pnl).cumprod()
        oos[asset] = _curve_metrics(pnl)
    equity = pd.DataFrame(curves)
    importances = None
    if all(r["importance"] is not None for r in results):
        importances = pd.DataFrame([r["importance"] for r in results], columns=list(FEATURES),
                                   index=pd.MultiIndex.from_frame(metrics[["fold", "asset"]]))
    return WalkForwardResult(config=cfg, folds=folds, fold_metrics=metrics,
                             aggregate=aggregate, bars=bars, equity=equity,
                             oos=pd.DataFrame(oos).T, importances=importances, timings=timings)


def agreement(a: WalkForwardResult, b: WalkForwardResult) -> dict:
    """How closely two runs agree: identical positions, and the largest metric difference."""
    am, bm = a.fold_metrics, b.fold_metrics
    same_layout = am[["fold", "asset"]].equals(bm[["fold", "asset"]])
    diff = np.abs(am[list(METRICS)].to_numpy() - bm[list(METRICS)].to_numpy())
    both_nan = np.isnan(am[list(METRICS)].to_numpy()) & np.isnan(bm[list(METRICS)].to_numpy())
    return {"positions_identical": bool(same_layout and np.array_equal(
                a.bars["position"].to_numpy(), b.bars["position"].to_numpy())),
            "max_metric_diff": float(np.max(np.where(both_nan, 0.0, diff))) if same_layout
            else float("inf")}


def same_answers(a: WalkForwardResult, b: WalkForwardResult, atol: float = 1e-9) -> bool:
    """Identical positions and every metric within ``atol`` (the fast path's promise)."""
    agree = agreement(a, b)
    return agree["positions_identical"] and agree["max_metric_diff"] <= atol


def headline(table: pd.DataFrame, workload: str = "walkforward") -> dict:
    """The report's headline figures from a :func:`~qbt_lib.walkforward.before_after` table
    (the parallel efficiency comes from the benchmark JSON, where random-forest tasks
    measure it)."""
    # one named case: the fast path on one core (warm cache) against the one-core reference
    warm = table[table["run"] == "numba, warm cache"]
    fast = warm[warm["n_jobs"] == 1].iloc[0] if (warm["n_jobs"] == 1).any() else warm.iloc[0]
    eff = "run python -m qbt_lib.bench walkforward"
    try:
        bench = json.loads((paths.BENCH_DIR / f"{workload}.json").read_text())
        eff = bench.get("headline", {}).get("parallel_efficiency", eff)
    except (OSError, ValueError):
        pass
    return {"throughput": f"{fast['fold-assets/s']:.0f} fold-assets/s (warm cache, "
                          f"n_jobs={fast['n_jobs']})",
            "speedup_vs_reference": f"{fast['speedup']:.1f}x (n_jobs={fast['n_jobs']}, one "
                                    "core both sides)",
            "parallel_efficiency": eff, "gpu": "n/a (CPU workload)"}
