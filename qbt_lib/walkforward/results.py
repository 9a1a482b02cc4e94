"""A walk-forward run's results as DataFrames, and their Parquet files."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import write_parquet_tables
from .config import BARS_PER_YEAR, FEATURES, METRICS, WalkForwardConfig

OUTPUT_FILES = ("fold_metrics.parquet", "oos_bars.parquet")


@dataclasses.dataclass
class WalkForwardResult:
    """``folds``: the fold timeline per (fold, asset); ``metrics``: per-fold metrics;
    ``aggregate``: mean and std across folds per asset; ``bars``: every traded test bar
    (prediction, position, return, pnl); ``equity``: the out-of-sample equity curve per asset
    stitched from the test windows; ``oos``: that curve's metrics; ``importances``: per
    (fold, asset) feature importances (random forest) or coefficients (ridge), else None."""
    config: WalkForwardConfig
    folds: pd.DataFrame
    metrics: pd.DataFrame
    aggregate: pd.DataFrame
    bars: pd.DataFrame
    equity: pd.DataFrame
    oos: pd.DataFrame
    importances: pd.DataFrame | None
    timings: dict

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
        tables = {"fold_metrics.parquet": self.folds.merge(self.metrics, on=["fold", "asset"]),
                  "oos_bars.parquet": self.bars}
        return list(write_parquet_tables(output_dir, tables).values())


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
    return WalkForwardResult(config=cfg, folds=folds, metrics=metrics, aggregate=aggregate,
                             bars=bars, equity=equity, oos=pd.DataFrame(oos).T,
                             importances=importances, timings=timings)


def agreement(a: WalkForwardResult, b: WalkForwardResult) -> dict:
    """How closely two runs agree: identical positions, and the largest metric difference."""
    same_layout = a.metrics[["fold", "asset"]].equals(b.metrics[["fold", "asset"]])
    diff = np.abs(a.metrics[list(METRICS)].to_numpy() - b.metrics[list(METRICS)].to_numpy())
    both_nan = np.isnan(a.metrics[list(METRICS)].to_numpy()) & np.isnan(
        b.metrics[list(METRICS)].to_numpy())
    return {"positions_identical": bool(same_layout and np.array_equal(
                a.bars["position"].to_numpy(), b.bars["position"].to_numpy())),
            "max_metric_diff": float(np.max(np.where(both_nan, 0.0, diff))) if same_layout
            else float("inf")}
