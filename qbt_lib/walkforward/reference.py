"""The reference ("before") walk-forward: the seed's pipeline, kept obviously correct.

Sequential and single-threaded (one BLAS/OpenMP thread, like every fast-path task, so the
before/after comparison is per core); every fold re-reads each asset's data file and
recomputes the features with pandas rolling/ewm operations on the full history, then fits
scikit-learn's scaler and model and computes the metrics with pandas. Each fold is traded
from the position its asset held on the bar before (looked up by date in what the reference
has traded so far: positions carry across fold boundaries, :mod:`.carry`). The fast path must
reproduce its metrics within 1e-9 with identical positions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import estimators
from .carry import stitch_reference
from .config import (FEATURES, WalkForwardConfig, check_history, check_test_rows,
                     check_train_rows, fold_rows, fold_seed, fold_windows, n_folds_of)
from .featureset import call
from .nb import TA_EPSILON
from .models import importance_of, make_estimator

BARS_PER_YEAR = 252


def _wilder(x: pd.Series, n: int, first: int) -> pd.Series:
    """Wilder smoothing seeded with the mean of ``x[first-n+1 .. first]`` (TA-Lib's seed)."""
    seeded = x.copy()
    seeded.iloc[:first] = np.nan
    seeded.iloc[first] = x.iloc[first - n + 1:first + 1].mean()
    return seeded.ewm(alpha=1.0 / n, adjust=False).mean()


def features_pandas(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The walk-forward features and target of one asset, with pandas (see
    :mod:`qbt_lib.walkforward.features` for the definitions)."""
    close, high, low, volume = df["close"], df["high"], df["low"], df["volume"]
    ret_1 = close / close.shift(1) - 1
    delta = close.diff()
    gain = _wilder(delta.clip(lower=0), 14, 14)
    loss = _wilder((-delta).clip(lower=0), 14, 14)
    rs_den = gain + loss
    rsi = (100 * gain / rs_den).where(rs_den.abs() >= TA_EPSILON, 0.0).where(rs_den.notna())
    prev_close = close.shift(1)
    true_range = (pd.concat([high, prev_close], axis=1).max(axis=1, skipna=False)
                  - pd.concat([low, prev_close], axis=1).min(axis=1, skipna=False))
    atr = _wilder(true_range, 14, 14)
    mean20 = close.rolling(20).mean()
    std20 = close.rolling(20).std(ddof=0)
    zscore = ((close - mean20) / std20).mask(std20 == 0, 0.0)
    vol_mean = volume.rolling(20).mean()
    feats = pd.DataFrame({
        "ret_1": ret_1,
        "ret_5": close / close.shift(5) - 1,
        "sma_20_50": mean20 / close.rolling(50).mean() - 1,
        "rsi_14": rsi,
        "vol_20": ret_1.rolling(20).std(ddof=0),
        "zscore_20": zscore,
        "mom_5": close.diff(5),
        "mom_20": close.diff(20),
        "volume_ratio_20": (volume / vol_mean).mask(vol_mean == 0, 1.0),
        "atr_14_close": atr / close,
    }, index=df.index)
    assert tuple(feats.columns) == FEATURES
    target = (close.shift(-1) / close - 1).rename("target")
    return feats, target


def backtest_pandas(prediction: pd.Series, ret: pd.Series, cfg: WalkForwardConfig,
                    start: float = 0.0) -> tuple[pd.Series, pd.Series, dict]:
    """Positions, pnl and metrics of one fold's test window, entered from position ``start``
    (see ``nb.backtest_nb``)."""
    pos = pd.Series(0.0, index=prediction.index)
    pos[prediction > cfg.threshold] = 1.0
    if not cfg.long_only:
        pos[prediction < -cfg.threshold] = -1.0
    change = pos.diff()
    change.iloc[0] = pos.iloc[0] - start     # the position carries across fold boundaries
    pnl = pos * ret - cfg.cost * change.abs()
    equity = (1 + pnl).cumprod()
    total = equity.iloc[-1] - 1
    T = len(pnl)
    sd = pnl.std()
    drawdown = equity / equity.cummax().clip(lower=1.0) - 1   # the start (1.0) is a peak
    exposed = pos != 0
    metrics = {
        "total_return": total,
        "annual_return": (1 + total) ** (BARS_PER_YEAR / T) - 1 if total > -1 else -1.0,
        "annual_vol": sd * np.sqrt(BARS_PER_YEAR),
        "sharpe": pnl.mean() / sd * np.sqrt(BARS_PER_YEAR) if sd > 0 else 0.0,
        "max_drawdown": min(drawdown.min(), 0.0),
        "hit_rate": (pos * ret > 0)[exposed].mean() if exposed.any() else np.nan,
        "trades": float((change != 0).sum()),
        "turnover": change.abs().sum(),
    }
    return pos, pnl, {k: float(v) for k, v in metrics.items()}


def _read(cfg: WalkForwardConfig, j: int) -> pd.DataFrame:
    asset = cfg.assets[j]
    return cfg.load([asset])[asset]


def features_of(df: pd.DataFrame, cfg: WalkForwardConfig) -> tuple[pd.DataFrame, pd.Series]:
    """The run's feature columns (``features=``: built-ins from :func:`features_pandas`, user
    functions called on the bars) and the target."""
    X, y = features_pandas(df)
    arrays = [df[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")]
    cols = {f.name: X[f.name] if f.builtin else pd.Series(call(f, *arrays), index=df.index)
            for f in cfg.features}
    return pd.DataFrame(cols, index=df.index), y


def _fit_predict(cfg: WalkForwardConfig, X_train: pd.DataFrame, y_train: pd.Series,
                 X_test: pd.DataFrame, fold: int, asset: str | None):
    """scikit-learn's scaler and model (built-in names), or a clone of the user's estimator
    on the raw features; returns (prediction, importance)."""
    from sklearn.preprocessing import StandardScaler

    if isinstance(cfg.model, str):
        scaler = StandardScaler().fit(X_train.to_numpy())
        est = make_estimator(cfg.model, fold_seed(cfg.seed, fold), cfg.n_estimators, cfg.alpha)
        est.fit(scaler.transform(X_train.to_numpy()), y_train.to_numpy())
        pred = est.predict(scaler.transform(X_test.to_numpy()))
        return np.asarray(pred, dtype=np.float64), importance_of(cfg.model, est)
    return estimators.fit_predict(cfg.model, X_train.to_numpy(), y_train.to_numpy(),
                                  X_test.to_numpy(), estimators.task_seed(cfg.seed, fold, asset))


class _Book:
    """What the reference has traded so far, per asset, by the date of the traded bar (the
    newest fold's): the position to carry into the next fold, and the stitched timeline."""

    def __init__(self, assets):
        self.held = {a: pd.Series(dtype=float) for a in assets}
        self.earned = {a: pd.Series(dtype=float) for a in assets}

    def trade(self, asset: str, df: pd.DataFrame, window, pred: np.ndarray, ret: pd.Series,
              cfg: WalkForwardConfig) -> tuple[pd.Series, pd.Series, dict]:
        tr_lo, tr_hi, te_lo, te_hi = window
        start = float(self.held[asset].get(df.index[te_lo - 1], 0.0))
        pos, pnl, metrics = backtest_pandas(pd.Series(pred, index=ret.index), ret, cfg, start)
        traded = df.index[te_lo:te_hi]
        self.held[asset] = pd.Series(pos.to_numpy(), index=traded).combine_first(
            self.held[asset])
        self.earned[asset] = pd.Series(pnl.to_numpy(), index=traded).combine_first(
            self.earned[asset])
        return pos, pnl, metrics

    def stitched(self, frames: dict[str, pd.DataFrame], cost: float) -> dict[str, pd.DataFrame]:
        return {a: stitch_reference(self.held[a], self.earned[a], frames[a], cost)
                for a in self.held}


def run_reference(cfg: WalkForwardConfig) -> dict:
    """Every (fold, asset) result, fold by fold, re-reading the data for each fold."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _run_reference(cfg)


def _record(cfg, k, asset, df, window, n_train, pred, ret, book, importance, pooled) -> dict:
    pos, pnl, metrics = book.trade(asset, df, window, pred, ret, cfg)
    tr_lo, tr_hi, te_lo, te_hi = window
    return {"fold": k, "asset": asset,
            "train_start": df.index[tr_lo], "train_end": df.index[tr_hi - 1],
            "test_start": df.index[te_lo], "test_end": df.index[te_hi - 1],
            "n_train": n_train, "window": tuple(window),
            "dates": df.index[te_lo:te_hi].asi8.copy(),   # the bars whose returns are traded
            "prediction": pred, "position": pos.to_numpy().astype(np.int8),
            "ret": ret.to_numpy(), "pnl": pnl.to_numpy(), "metrics": metrics,
            "importance": importance, "pooled": pooled}


def _run_reference(cfg: WalkForwardConfig) -> dict:
    windows = {}
    for j, asset in enumerate(cfg.assets):       # a first pass to lay out the folds
        df = _read(cfg, j)
        windows[asset] = fold_windows(*check_history(df, asset, cfg), cfg)
    results, pooled = [], []
    book, pool_book = _Book(cfg.assets), _Book(cfg.assets)
    frames = {}
    names = cfg.feature_names
    for k in range(n_folds_of(windows)):
        parts = []
        for j, asset in enumerate(cfg.assets):
            df = _read(cfg, j)                    # the seed re-read its CSVs every fold
            frames[asset] = df
            check_history(df, asset, cfg)
            X, y = features_of(df, cfg)
            window = windows[asset][k]
            train, test = fold_rows(window)
            X_train = X.iloc[train]
            X_train = X_train[np.isfinite(X_train.to_numpy()).all(axis=1)]
            check_train_rows(len(X_train), k, asset)
            y_train = y.loc[X_train.index]
            X_test = X.iloc[test]
            check_test_rows(X_test.to_numpy(), names, k, asset,
                            df.index[window[2]:window[3]].asi8)
            ret = y.iloc[test]
            pred, imp = _fit_predict(cfg, X_train, y_train, X_test, k, asset)
            results.append(_record(cfg, k, asset, df, window, len(X_train), pred, ret, book,
                                   imp, False))
            parts.append((asset, df, window, X_train, y_train, X_test, ret))
        if cfg.pool:                              # one model on every asset's training rows
            X_train = pd.concat([p[3] for p in parts], ignore_index=True)
            y_train = pd.concat([p[4] for p in parts], ignore_index=True)
            X_test = pd.concat([p[5] for p in parts], ignore_index=True)
            pred, imp = _fit_predict(cfg, X_train, y_train, X_test, k, None)
            at = 0
            for asset, df, window, _, _, X_t, ret in parts:
                T = len(X_t)
                pooled.append(_record(cfg, k, asset, df, window, len(X_train),
                                      pred[at:at + T], ret, pool_book, imp, True))
                at += T
    return {"results": results, "stitched": book.stitched(frames, cfg.cost),
            "pooled": pooled or None,
            "pooled_stitched": pool_book.stitched(frames, cfg.cost) if cfg.pool else None}
