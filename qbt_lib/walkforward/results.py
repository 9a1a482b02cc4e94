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
from .config import METRICS, WalkForwardConfig
from .portfolio import Portfolio
from .portfolio import build as build_portfolio

OUTPUT_FILES = ("fold_metrics.parquet", "oos_bars.parquet", "portfolio.parquet",
                "trades.parquet")


@dataclasses.dataclass
class WalkForwardResult(Result):
    """``folds``: the fold timeline per (fold, asset); ``fold_metrics``: per-fold metrics;
    ``aggregate``: mean and std across folds per asset; ``bars``: every traded test bar
    (prediction, position, return, pnl); ``equity``: the out-of-sample equity curve per asset
    stitched from the test windows (positions carried across folds, :mod:`.carry`); ``oos``:
    that curve's metrics (:data:`.portfolio.METRICS`); ``importances``: per (fold, asset)
    feature importances (random forest, an estimator's ``feature_importances_``) or
    coefficients (ridge, an estimator's ``coef_``), else None; ``portfolio``: the
    equal-weight portfolio, buy-and-hold and the trade list (:class:`.portfolio.Portfolio`);
    ``pooled``: with ``pool=True``, the same tables for one model per fold trained on every
    asset's rows.

    ``frame()`` is ``fold_metrics``; ``headline(timing)``/``metrics(timing)`` add the figures
    of a :func:`~qbt_lib.walkforward.before_after` table when given one; ``summary()`` puts
    the portfolios side by side."""
    config: WalkForwardConfig
    folds: pd.DataFrame
    fold_metrics: pd.DataFrame
    aggregate: pd.DataFrame
    bars: pd.DataFrame
    equity: pd.DataFrame
    oos: pd.DataFrame
    importances: pd.DataFrame | None
    timings: dict
    portfolio: Portfolio | None = None
    pooled: "WalkForwardResult | None" = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.config.feature_names

    def summary(self) -> pd.DataFrame:
        """The portfolio metrics side by side: the per-asset models, the pooled model (with
        ``pool=True``) and buy-and-hold of the same assets."""
        rows = {"per-asset models": self.portfolio.metrics.loc["strategy"]}
        if self.pooled is not None:
            rows["pooled model"] = self.pooled.portfolio.metrics.loc["strategy"]
        rows["buy and hold"] = self.portfolio.metrics.loc["buy_and_hold"]
        table = pd.DataFrame(rows).T
        return table.astype({c: self.portfolio.metrics[c].dtype for c in table.columns})

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
        """Write ``fold_metrics.parquet`` (timeline + metrics per fold and asset),
        ``oos_bars.parquet`` (every test bar), ``portfolio.parquet`` (the portfolio's and
        buy-and-hold's growth of 1) and ``trades.parquet`` (the trade list). Each file is
        written to a temp name and renamed, so an interrupted save leaves no partial file."""
        tables = {"fold_metrics.parquet": self.folds.merge(self.fold_metrics,
                                                           on=["fold", "asset"]),
                  "oos_bars.parquet": self.bars,
                  "portfolio.parquet": self.portfolio.equity.rename_axis("date").reset_index(),
                  "trades.parquet": self.portfolio.trades}
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
        return (f"{len(c.assets)} assets x {self.n_folds} folds, {c.model_label}, {c.impl} "
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
               "oos": self.oos.to_dict(orient="index"),
               "portfolio": self.summary().to_dict(orient="index"),
               "n_trades": len(self.portfolio.trades), "timings": self.timings}
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


def assemble(outcome: dict, cfg: WalkForwardConfig, timings: dict) -> WalkForwardResult:
    """Tables from a path's outcome: the per-(fold, asset) results in task order (fold, then
    asset), each asset's stitched timeline, and the same for the pooled model (``pool``)."""
    res = _tables(outcome["results"], outcome["stitched"], cfg, timings)
    if outcome.get("pooled"):
        res.pooled = _tables(outcome["pooled"], outcome["pooled_stitched"], cfg, {})
    return res


def _tables(results: list[dict], stitched: dict, cfg: WalkForwardConfig,
            timings: dict) -> WalkForwardResult:
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
    # Each asset's stitched timeline (positions carried across folds, a bar covered by two
    # folds traded by the newer model, bars no test window covers flat): :mod:`.carry`.
    port = build_portfolio(stitched, cfg.frames, cfg.cost, cfg.impl)
    equity = pd.DataFrame({a: (1 + s["pnl"]).cumprod() for a, s in stitched.items()})
    importances = None
    if all(r["importance"] is not None for r in results):
        importances = pd.DataFrame([r["importance"] for r in results],
                                   columns=list(cfg.feature_names),
                                   index=pd.MultiIndex.from_frame(metrics[["fold", "asset"]]))
    return WalkForwardResult(config=cfg, folds=folds, fold_metrics=metrics,
                             aggregate=aggregate, bars=bars, equity=equity, oos=port.assets,
                             importances=importances, timings=timings, portfolio=port)


def agreement(a: WalkForwardResult, b: WalkForwardResult) -> dict:
    """How closely two runs agree: identical positions, and the largest metric difference."""
    am, bm = a.fold_metrics, b.fold_metrics
    same_layout = am[["fold", "asset"]].equals(bm[["fold", "asset"]])
    diff = np.abs(am[list(METRICS)].to_numpy() - bm[list(METRICS)].to_numpy())
    both_nan = np.isnan(am[list(METRICS)].to_numpy()) & np.isnan(bm[list(METRICS)].to_numpy())
    same_curve = a.portfolio.equity.index.equals(b.portfolio.equity.index)
    return {"positions_identical": bool(same_layout and np.array_equal(
                a.bars["position"].to_numpy(), b.bars["position"].to_numpy())),
            "max_metric_diff": float(np.max(np.where(both_nan, 0.0, diff))) if same_layout
            else float("inf"),
            "max_portfolio_diff": float(np.max(np.abs(
                a.portfolio.equity.to_numpy() - b.portfolio.equity.to_numpy())))
            if same_curve else float("inf")}


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
