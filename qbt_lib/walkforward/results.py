"""A walk-forward run's results as DataFrames, and their Parquet files."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import write_parquet_tables
from .config import METRICS, WalkForwardConfig
from .portfolio import Portfolio
from .portfolio import build as build_portfolio

OUTPUT_FILES = ("fold_metrics.parquet", "oos_bars.parquet", "portfolio.parquet",
                "trades.parquet")


@dataclasses.dataclass
class WalkForwardResult:
    """``folds``: the fold timeline per (fold, asset); ``metrics``: per-fold metrics;
    ``aggregate``: mean and std across folds per asset; ``bars``: every traded test bar
    (prediction, position, return, pnl); ``equity``: the out-of-sample equity curve per asset
    stitched from the test windows (positions carried across folds, :mod:`.carry`); ``oos``:
    that curve's metrics (:data:`.portfolio.METRICS`); ``importances``: per (fold, asset)
    feature importances (random forest, an estimator's ``feature_importances_``) or
    coefficients (ridge, an estimator's ``coef_``), else None; ``portfolio``: the
    equal-weight portfolio, buy-and-hold and the trade list (:class:`.portfolio.Portfolio`);
    ``pooled``: with ``pool=True``, the same tables for one model per fold trained on every
    asset's rows."""
    config: WalkForwardConfig
    folds: pd.DataFrame
    metrics: pd.DataFrame
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
        tables = {"fold_metrics.parquet": self.folds.merge(self.metrics, on=["fold", "asset"]),
                  "oos_bars.parquet": self.bars,
                  "portfolio.parquet": self.portfolio.equity.rename_axis("date").reset_index(),
                  "trades.parquet": self.portfolio.trades}
        return list(write_parquet_tables(output_dir, tables).values())


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
    return WalkForwardResult(config=cfg, folds=folds, metrics=metrics, aggregate=aggregate,
                             bars=bars, equity=equity, oos=port.assets,
                             importances=importances, timings=timings, portfolio=port)


def agreement(a: WalkForwardResult, b: WalkForwardResult) -> dict:
    """How closely two runs agree: identical positions, and the largest metric difference."""
    same_layout = a.metrics[["fold", "asset"]].equals(b.metrics[["fold", "asset"]])
    diff = np.abs(a.metrics[list(METRICS)].to_numpy() - b.metrics[list(METRICS)].to_numpy())
    both_nan = np.isnan(a.metrics[list(METRICS)].to_numpy()) & np.isnan(
        b.metrics[list(METRICS)].to_numpy())
    same_curve = a.portfolio.equity.index.equals(b.portfolio.equity.index)
    return {"positions_identical": bool(same_layout and np.array_equal(
                a.bars["position"].to_numpy(), b.bars["position"].to_numpy())),
            "max_metric_diff": float(np.max(np.where(both_nan, 0.0, diff))) if same_layout
            else float("inf"),
            "max_portfolio_diff": float(np.max(np.abs(
                a.portfolio.equity.to_numpy() - b.portfolio.equity.to_numpy())))
            if same_curve else float("inf")}
