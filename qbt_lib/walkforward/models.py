"""The models of a fold: ridge (closed form), random forest, histogram gradient boosting.

Features are standardized with the training rows' mean and population std (scikit-learn's
``StandardScaler`` rule: a constant feature keeps scale 1). Ridge (``alpha``, with
intercept) is solved in closed form ``(Z'Z + alpha I) b = Z'(y - mean(y))`` on centred
training features; the reference path fits scikit-learn's ``Ridge`` instead, which solves
the same system. Random forests get ``random_state`` from the fold's seed and ``n_jobs=1``:
the parallelism is across (fold, asset) tasks, and one BLAS/OpenMP thread per worker avoids
oversubscription (:func:`limit_threads_in_worker`).
"""
from __future__ import annotations

import os

import numpy as np

from . import estimators

MAX_DEPTH = 10  # random forest depth (the seed's setting)

_limited_pid: int | None = None


def limit_threads_in_worker(main_pid: int) -> None:
    """In a worker process (not the caller's), pin BLAS/OpenMP pools to one thread, once.

    The caller's own process is limited by a ``threadpool_limits(1)`` context around the
    whole run instead, so its settings are restored afterwards."""
    global _limited_pid
    pid = os.getpid()
    if pid != main_pid and _limited_pid != pid:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
        _limited_pid = pid


def standardize(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale both by the training mean and population std (constant features: scale 1)."""
    n = X_train.shape[0]
    mean = X_train.mean(axis=0)
    var = X_train.var(axis=0)
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2   # scikit-learn's test
    scale = np.where(constant, 1.0, np.sqrt(var))
    return (X_train - mean) / scale, (X_test - mean) / scale


def ridge_closed_form(Z_train: np.ndarray, y_train: np.ndarray, Z_test: np.ndarray,
                      alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge with intercept in closed form; returns the test predictions and coefficients."""
    z_mean = Z_train.mean(axis=0)
    y_mean = y_train.mean()
    Zc = Z_train - z_mean
    A = Zc.T @ Zc
    A[np.diag_indices_from(A)] += alpha
    coef = np.linalg.solve(A, Zc.T @ (y_train - y_mean))
    return (Z_test - z_mean) @ coef + y_mean, coef


def make_estimator(model: str, seed: int, n_estimators: int, alpha: float):
    """The scikit-learn estimator of ``model`` (ridge: the reference path's solver)."""
    if model == "ridge":
        from sklearn.linear_model import Ridge
        return Ridge(alpha=alpha)
    if model == "random_forest":
        from sklearn.ensemble import RandomForestRegressor
        return RandomForestRegressor(n_estimators=n_estimators, max_depth=MAX_DEPTH,
                                     random_state=seed, n_jobs=1)
    if model == "hist_gb":
        from sklearn.ensemble import HistGradientBoostingRegressor
        return HistGradientBoostingRegressor(max_iter=n_estimators, random_state=seed)
    raise ValueError(f"unknown model {model!r}")


def importance_of(model: str, estimator) -> np.ndarray | None:
    """Feature importances: impurity importances (random forest), coefficients on the
    standardized features (ridge); hist_gb has none."""
    if model == "random_forest":
        return np.asarray(estimator.feature_importances_, dtype=np.float64)
    if model == "ridge":
        return np.asarray(estimator.coef_, dtype=np.float64)
    return None


def fit_predict(model, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, *,
                seed: int, n_estimators: int, alpha: float
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """The fast path's model step: standardize, fit, predict; returns (prediction, importance).
    An estimator (not a built-in name) is fitted on the raw features (:mod:`.estimators`)."""
    if not isinstance(model, str):
        return estimators.fit_predict(model, X_train, y_train, X_test, seed)
    Z_train, Z_test = standardize(X_train, X_test)
    if model == "ridge":
        return ridge_closed_form(Z_train, y_train, Z_test, alpha)
    est = make_estimator(model, seed, n_estimators, alpha)
    est.fit(Z_train, y_train)
    return np.asarray(est.predict(Z_test), dtype=np.float64), importance_of(model, est)
