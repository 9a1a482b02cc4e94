"""The reference ("before") walk-forward: the seed's pipeline, kept obviously correct.

Sequential and single-threaded (one BLAS/OpenMP thread, like every fast-path task, so the
before/after comparison is per core); every fold re-reads each asset's data file and
recomputes the features with pandas rolling/ewm operations on the full history, then fits
scikit-learn's scaler and model and computes the metrics with pandas. The fast path must
reproduce its metrics within 1e-9 with identical positions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .config import (FEATURES, WalkForwardConfig, check_history, check_train_rows,
                     fold_rows, fold_seed, fold_windows, n_folds_of)
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


def backtest_pandas(prediction: pd.Series, ret: pd.Series, cfg: WalkForwardConfig
                    ) -> tuple[pd.Series, pd.Series, dict]:
    """Positions, pnl and metrics of one fold's test window (see ``nb.backtest_nb``)."""
    pos = pd.Series(0.0, index=prediction.index)
    pos[prediction > cfg.threshold] = 1.0
    if not cfg.long_only:
        pos[prediction < -cfg.threshold] = -1.0
    change = pos.diff()
    change.iloc[0] = pos.iloc[0]             # each fold starts flat
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


def run_reference(cfg: WalkForwardConfig) -> list[dict]:
    """Every (fold, asset) result, fold by fold, re-reading the data for each fold."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _run_reference(cfg)


def _run_reference(cfg: WalkForwardConfig) -> list[dict]:
    from sklearn.preprocessing import StandardScaler

    windows = {}
    for j, asset in enumerate(cfg.assets):       # a first pass to lay out the folds
        df = _read(cfg, j)
        windows[asset] = fold_windows(*check_history(df, asset, cfg), cfg)
    results = []
    for k in range(n_folds_of(windows)):
        for j, asset in enumerate(cfg.assets):
            df = _read(cfg, j)                    # the seed re-read its CSVs every fold
            check_history(df, asset, cfg)
            X, y = features_pandas(df)
            window = windows[asset][k]
            train, test = fold_rows(window)
            X_train = X.iloc[train].dropna()
            check_train_rows(len(X_train), k, asset)
            y_train = y.loc[X_train.index]
            X_test = X.iloc[test]
            scaler = StandardScaler().fit(X_train.to_numpy())
            est = make_estimator(cfg.model, fold_seed(cfg.seed, k), cfg.n_estimators, cfg.alpha)
            est.fit(scaler.transform(X_train.to_numpy()), y_train.to_numpy())
            pred = pd.Series(est.predict(scaler.transform(X_test.to_numpy())),
                             index=X_test.index)
            ret = y.iloc[test]
            pos, pnl, metrics = backtest_pandas(pred, ret, cfg)
            tr_lo, tr_hi, te_lo, te_hi = window
            results.append({
                "fold": k, "asset": asset,
                "train_start": df.index[tr_lo], "train_end": df.index[tr_hi - 1],
                "test_start": df.index[te_lo], "test_end": df.index[te_hi - 1],
                "n_train": len(X_train),
                "dates": df.index[te_lo:te_hi].asi8.copy(),   # the bars whose returns are traded
                "prediction": pred.to_numpy(), "position": pos.to_numpy().astype(np.int8),
                "ret": ret.to_numpy(), "pnl": pnl.to_numpy(), "metrics": metrics,
                "importance": importance_of(cfg.model, est),
            })
    return results
