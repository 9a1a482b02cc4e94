"""The walk-forward fold layout as a scikit-learn cross-validation splitter.

>>> from sklearn.linear_model import Ridge
>>> from sklearn.model_selection import cross_val_score
>>> cv = WalkForwardSplit(fold_length=252, step_size=126, gap=5)
>>> cross_val_score(Ridge(), X, y, cv=cv)                 # doctest: +SKIP

The workload lays out its folds with this very object (``config.fold_windows``), so a
layout tried here is the layout :func:`qbt_lib.walkforward.run` trades.

**Bars and samples.** A fold is a window of bars: fold ``k`` trains on ``fold_length`` bars
starting ``k * step_size`` bars after the first (from the first bar when ``anchored``: an
expanding window), skips ``gap`` bars (an embargo) and tests on the next ``test_length`` bars
(:meth:`WalkForwardSplit.windows` gives these bar positions). Sample ``t`` (row ``t`` of
``X``) is the decision taken at the close of bar ``t``; its label is realised ``horizon`` bars
later (the workload's target, the next bar's return: ``horizon=1``). So :meth:`split` yields

- train: the samples whose features *and* label lie inside the training window,
  ``[train_start, train_end - horizon)``;
- test: the decisions that trade the test bars, ``[test_start - horizon, test_end - horizon)``.

With ``horizon=0`` a sample is its own bar (the plain layout of scikit-learn's
``TimeSeriesSplit``): ``WalkForwardSplit(L, T, T, gap=g, horizon=0)`` on ``L + g + n*T``
samples gives the splits of ``TimeSeriesSplit(n, max_train_size=L, test_size=T, gap=g)``,
and with ``anchored=True`` those without ``max_train_size`` (tested). Folds run forwards from
the first sample while a whole test window fits; samples after the last one are not used.
Like ``TimeSeriesSplit`` it only reads ``len(X)``; ``y`` and ``groups`` are ignored.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..params import as_bool, as_int


class WalkForwardSplit:
    """Rolling (or anchored) walk-forward folds: train ``fold_length`` bars, skip ``gap``,
    test ``test_length`` (default ``step_size``), move on ``step_size`` bars.

    Usable wherever scikit-learn takes ``cv=`` (``cross_val_score``, ``GridSearchCV``, ...):
    ``split(X)`` yields ``(train, test)`` index arrays and ``get_n_splits(X)`` counts them.
    """

    def __init__(self, fold_length: int = 252, step_size: int = 126,
                 test_length: int | None = None, gap: int = 0, anchored: bool = False,
                 horizon: int = 1):
        self.fold_length = as_int("fold_length", fold_length, min=1)
        self.step_size = as_int("step_size", step_size, min=1)
        self.test_length = (self.step_size if test_length is None
                            else as_int("test_length", test_length, min=1))
        self.gap = as_int("gap", gap, min=0)
        self.anchored = as_bool("anchored", anchored)
        self.horizon = as_int("horizon", horizon, min=0)
        if self.horizon >= self.fold_length:
            raise ValueError(f"horizon ({self.horizon}) must be below fold_length "
                             f"({self.fold_length}): no training label would be realised "
                             "inside the training window")

    def __repr__(self) -> str:
        return (f"WalkForwardSplit(fold_length={self.fold_length}, step_size={self.step_size}, "
                f"test_length={self.test_length}, gap={self.gap}, anchored={self.anchored}, "
                f"horizon={self.horizon})")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("fold_length", "step_size", "test_length",
                                              "gap", "anchored", "horizon")}

    @property
    def span(self) -> int:
        """Bars one fold covers: ``fold_length + gap + test_length``."""
        return self.fold_length + self.gap + self.test_length

    def windows(self, stop: int, first: int = 0) -> list[tuple[int, int, int, int]]:
        """``(train_start, train_end, test_start, test_end)`` bar positions (end exclusive)
        of every fold that fits in ``[first, stop)``."""
        out = []
        k = 0
        while True:
            s = first + k * self.step_size
            tr_lo = first if self.anchored else s
            tr_hi = s + self.fold_length
            te_lo = tr_hi + self.gap
            te_hi = te_lo + self.test_length
            if te_hi > stop:
                return out
            out.append((tr_lo, tr_hi, te_lo, te_hi))
            k += 1

    def rows(self, window: tuple[int, int, int, int]) -> tuple[slice, slice]:
        """A fold window's training samples and test decisions (see the module docstring)."""
        tr_lo, tr_hi, te_lo, te_hi = window
        h = self.horizon
        return slice(tr_lo, tr_hi - h), slice(te_lo - h, te_hi - h)

    def _n(self, X) -> int:
        if X is None:
            raise ValueError("WalkForwardSplit needs X (the number of folds depends on its "
                             "length)")
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        if n < self.span:
            raise ValueError(f"X has {n} samples, fewer than one fold needs (fold_length "
                             f"{self.fold_length} + gap {self.gap} + test_length "
                             f"{self.test_length} = {self.span})")
        return int(n)

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return len(self.windows(self._n(X)))

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train, test)`` sample indices per fold, oldest fold first."""
        for w in self.windows(self._n(X)):
            train, test = self.rows(w)
            yield (np.arange(train.start, train.stop), np.arange(test.start, test.stop))
