"""Your own scikit-learn model: any estimator or Pipeline as ``model=``.

``run(model=make_pipeline(StandardScaler(), Lasso(alpha=1e-4)))`` fits a fresh clone of it
in every (fold, asset) task (``sklearn.base.clone``: the object you pass is never fitted).
Every ``random_state`` parameter it has, its Pipeline steps' included, is set from
``(seed, fold, asset)`` (:func:`task_seed`), so a run gives the same numbers for any
``n_jobs``, backend or order of the tasks; a ``random_state`` you set yourself is replaced
(change ``seed=`` instead). The pooled model of a fold (``pool=True``) gets the seed of
``(seed, fold, "pool")``.

The estimator sees the raw feature matrix (float64, the columns in the order of
``features=``; rows with an undefined feature, the warm-up, are dropped): put a
``StandardScaler`` in a Pipeline to standardize as the built-in names do.
``make_pipeline(StandardScaler(), Ridge(alpha=1.0))`` gives the built-in ``"ridge"``'s
positions (tested). Feature importances are the final step's ``feature_importances_`` or
``coef_`` when it has one per feature, else none.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

POOL_KEY = 2 ** 32          # the pooled model's key in place of an asset's (never a hash)


def is_estimator(model: Any) -> bool:
    """A scikit-learn-style estimator: ``fit``, ``predict`` and ``get_params``."""
    return all(callable(getattr(model, m, None)) for m in ("fit", "predict", "get_params"))


def label(model: Any) -> str:
    """A short name: the built-in name, or the class (a Pipeline lists its steps)."""
    if isinstance(model, str):
        return model
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        return "Pipeline(" + ", ".join(type(s).__name__ for _, s in steps) + ")"
    return type(model).__name__


def asset_key(asset: str | None) -> int:
    """A stable integer of an asset's name (its seed does not depend on the selection)."""
    if asset is None:
        return POOL_KEY
    return int.from_bytes(hashlib.blake2b(str(asset).encode(), digest_size=4).digest(), "little")


def task_seed(seed: int, fold: int, asset: str | None) -> int:
    """The ``random_state`` of fold ``fold`` and ``asset`` (``None``: the pooled model):
    ``SeedSequence(seed, spawn_key=(fold, key(asset)))``, whichever worker fits it."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(int(fold), asset_key(asset)))
    return int(ss.generate_state(1)[0])


def prepare(model: Any, seed: int):
    """A fresh unfitted clone of ``model`` with every ``random_state`` set to ``seed``."""
    from sklearn.base import clone
    est = clone(model)
    keys = [k for k in est.get_params(deep=True)
            if k == "random_state" or k.endswith("__random_state")]
    if keys:
        est.set_params(**{k: seed for k in keys})
    return est


def importance(est: Any, n_features: int) -> np.ndarray | None:
    """The final step's ``feature_importances_`` or ``coef_`` (one per feature), else None."""
    steps = getattr(est, "steps", None)
    final = steps[-1][1] if isinstance(steps, list) and steps else est
    for attr in ("feature_importances_", "coef_"):
        v = getattr(final, attr, None)
        if v is not None:
            v = np.asarray(v, dtype=np.float64).ravel()
            if v.shape[0] == n_features:
                return v
    return None


def fit_predict(model: Any, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Fit a clone of ``model`` on the raw training rows, predict the test rows."""
    est = prepare(model, seed)
    est.fit(X_train, y_train)
    pred = np.asarray(est.predict(X_test), dtype=np.float64).reshape(-1)
    if pred.shape[0] != X_test.shape[0]:
        raise ValueError(f"model {label(model)}: predict returned {pred.shape[0]} values for "
                         f"{X_test.shape[0]} rows")
    return pred, importance(est, X_train.shape[1])
