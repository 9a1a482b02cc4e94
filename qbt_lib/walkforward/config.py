"""The run's configuration, data sources, folds and the checks every walk-forward run shares
(the parameters themselves are declared and checked in ``params.py``).

Folds are index-based on each asset's own trading days within ``[start, end]``: fold ``k``
trains on ``fold_length`` bars starting ``k * step_size`` bars after the first day (from the
first day when ``anchored``), skips ``gap`` bars (embargo) and tests on the next
``test_length`` bars. The ``WARMUP_BARS`` bars before ``start`` serve only as feature
warm-up; earlier bars are not read (nor validated) at all.

Data: every source ``qbt_lib.data.load`` takes (``"synthetic"``, ``"sp500"``, a CSV/Parquet
file or directory, a Hive-partitioned dataset, a DataFrame, a dict of frames). The synthetic
source is a fixed universe written once as CSV files, so the reference re-reads files every
fold like the seed's CSV pipeline.

Inside a fold, row ``t`` (features of bar ``t``) predicts the return of bar ``t + 1``:

- training rows are ``t`` in ``[train_start, train_end - 1)``, so every label is realised
  inside the training window (warm-up rows with an undefined feature are dropped);
- the test window's bars ``[test_start, test_end)`` are traded by the decisions of rows
  ``[test_start - 1, test_end - 1)``, so a fold reads no bar after its test window (the
  no-look-ahead test perturbs those bars and checks that nothing in the fold changes).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import paths
from ..data import load, source_label, symbol_names, synthetic_market
from ..parallel import chunk_seed
from . import estimators
from .features import FEATURES, LOOKBACK
from .featureset import BUILTIN, Feature
from .splitter import WalkForwardSplit

MODELS = ("ridge", "random_forest", "hist_gb")
METRICS = ("total_return", "annual_return", "annual_vol", "sharpe", "max_drawdown",
           "hit_rate", "trades", "turnover")
BARS_PER_YEAR = 252
MIN_FOLD_LENGTH = 50       # = LOOKBACK: a test row always has every feature defined
MIN_TRAIN_ROWS = 20        # complete training rows a fold needs after the warm-up
MAX_GAP_DAYS = 7           # calendar days between bars beyond which the data has a gap
DEFAULT_YEARS = 3          # start=None: this many years before end
WARMUP_BARS = 250          # bars before start the features read (5 x LOOKBACK: the recursive
                           # ones, EMA/RSI/ATR, forget their first value to < 1e-10)

# The synthetic source: a fixed universe of GARCH(1,1) assets written once as CSV files
# (the reference path re-reads them every fold, like the seed's CSV-based pipeline).
SYNTHETIC_SYMBOLS = tuple(symbol_names(10))
SYNTHETIC_DEFAULT = 5      # symbols=None on the synthetic source
SYNTHETIC_SEED = 2024
SYNTHETIC_START = "2000-01-03"
SYNTHETIC_BARS = 6800      # business days to 2026-01


@dataclasses.dataclass(frozen=True)
class WalkForwardConfig:
    assets: tuple[str, ...]
    source: Any                     # what the data layer loads (a name, path or frames)
    start: pd.Timestamp
    end: pd.Timestamp
    fold_length: int
    step_size: int
    test_length: int
    gap: int
    anchored: bool
    model: Any                      # a built-in name or a scikit-learn estimator
    threshold: float
    long_only: bool
    cost_bps: float
    adjust: bool
    impl: str
    n_jobs: int
    backend: str
    scheduler: str | None
    seed: int
    n_estimators: int
    alpha: float
    frames: dict = dataclasses.field(default=None, compare=False, repr=False)  # loaded once
    features: tuple[Feature, ...] = BUILTIN     # the model's columns (built-ins, functions)
    pool: bool = False                          # also one pooled model per fold

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def splitter(self) -> WalkForwardSplit:
        """The fold layout (the scikit-learn splitter; a sample's label is the next bar's
        return, so ``horizon=1``)."""
        return WalkForwardSplit(self.fold_length, self.step_size, self.test_length, self.gap,
                                self.anchored, horizon=1)

    @property
    def model_label(self) -> str:
        return estimators.label(self.model)

    @property
    def cost(self) -> float:
        return self.cost_bps / 1e4

    def load(self, assets: Any = None) -> dict[str, pd.DataFrame]:
        """The run's bars (``WARMUP_BARS`` before ``start`` to ``end``), loaded and
        validated anew from the source (the reference re-reads them every fold)."""
        return load_frames(self.source, list(self.assets) if assets is None else assets,
                           self.start, self.end, self.adjust)

    def params(self) -> dict[str, Any]:
        """The run's parameters as plain JSON values (for ``metrics.json``)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name != "frames"}
        d["model"] = self.model_label
        d["features"] = list(self.feature_names)
        d["source"] = source_label(self.source)
        d["assets"] = list(self.assets)
        d["start"] = self.start.strftime("%Y-%m-%d")
        d["end"] = self.end.strftime("%Y-%m-%d")
        return d


# --------------------------------------------------------------------------- data sources
def data_source(source: Any) -> Any:
    """What ``qbt_lib.data`` reads for ``source``: the synthetic CSV folder for ``"synthetic"``."""
    return str(synthetic_source_dir()) if isinstance(source, str) and source == "synthetic" \
        else source


def load_frames(source: Any, symbols: Any, start: pd.Timestamp, end: pd.Timestamp,
                adjust: bool = True, param: str = "symbols") -> dict[str, pd.DataFrame]:
    """``{asset: OHLCV frame}`` of the bars a run reads, validated by the data layer;
    ``"synthetic"`` is the folder of its CSV files (written once)."""
    return load(data_source(source), symbols, param=param, start=start, end=end, warmup=WARMUP_BARS,
                adjust=adjust)


def synthetic_source_dir() -> Path:
    """Write the synthetic universe's CSV files once (atomic rename) and return the folder."""
    root = paths.OUTPUTS / "data" / "walkforward"
    final = root / f"synthetic-{SYNTHETIC_SEED}-{SYNTHETIC_BARS}"
    with paths.atomic_dir(final) as tmp:
        if tmp is not None:
            frames = synthetic_market(list(SYNTHETIC_SYMBOLS), n_bars=SYNTHETIC_BARS,
                                      seed=SYNTHETIC_SEED, start=SYNTHETIC_START)
            for sym, df in frames.items():
                df.to_csv(tmp / f"{sym}.csv", index_label="date", float_format="%.10g")
            (tmp / ".complete").write_text("ok")
    return final


# --------------------------------------------------------------------------- checks, folds
def check_history(df: pd.DataFrame, asset: str, cfg: WalkForwardConfig) -> tuple[int, int]:
    """Check the calendar of the bars a run uses (loaded and validated by the data layer:
    the warm-up bars and ``[start, end]``) and return ``(first, last + 1)``: the positions of
    the bars in ``[start, end]``. ``ValueError`` names the asset and the row for gaps and a
    range too short for one fold."""
    used = df.loc[:cfg.end]
    if len(used):
        days = np.diff(used.index.asi8) / 86_400e9
        bad = np.flatnonzero(days > MAX_GAP_DAYS)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{asset}: gap in the data: {days[i]:.0f} calendar days between row {i} "
                f"({used.index[i]:%Y-%m-%d}) and row {i + 1} ({used.index[i + 1]:%Y-%m-%d}); "
                f"more than {MAX_GAP_DAYS} days without a bar in the used range")
    first = int(df.index.searchsorted(cfg.start, side="left"))
    stop = int(df.index.searchsorted(cfg.end, side="right"))
    need = cfg.fold_length + cfg.gap + cfg.test_length
    if stop - first < need:
        raise ValueError(
            f"the range {cfg.start:%Y-%m-%d}..{cfg.end:%Y-%m-%d} has {max(stop - first, 0)} "
            f"trading days for {asset}, shorter than one fold (fold_length {cfg.fold_length} "
            f"+ gap {cfg.gap} + test_length {cfg.test_length} = {need})")
    return first, stop


def fold_windows(first: int, stop: int, cfg: WalkForwardConfig) -> list[tuple[int, int, int, int]]:
    """``(train_start, train_end, test_start, test_end)`` bar positions of every fold that
    fits in ``[first, stop)`` (``cfg.splitter.windows``)."""
    return cfg.splitter.windows(stop, first)


_ROWS = WalkForwardSplit(fold_length=2, step_size=1, horizon=1)


def fold_rows(window: tuple[int, int, int, int]) -> tuple[slice, slice]:
    """Training rows and test decision rows of a fold (see the module docstring;
    ``WalkForwardSplit.rows`` with ``horizon=1``)."""
    return _ROWS.rows(window)


def fold_seed(seed: int, fold: int) -> int:
    """The fold's ``random_state``: from ``SeedSequence(seed)``'s child ``fold``, so it does
    not depend on which worker runs the fold."""
    return int(chunk_seed(seed, fold).generate_state(1)[0])


def n_folds_of(windows: dict[str, list]) -> int:
    """Folds common to every asset (assets on different calendars may fit different counts)."""
    return min(len(w) for w in windows.values())


def check_test_rows(X_test: np.ndarray, names, fold: int, asset: str, dates) -> None:
    """A test row needs every feature: a NaN there means a feature's look-back is longer
    than the warm-up (``ValueError`` naming the feature, the asset and the bar)."""
    bad = ~np.isfinite(X_test)
    if bad.any():
        i, j = (int(v[0]) for v in np.nonzero(bad))
        raise ValueError(
            f"feature {names[j]!r} is {X_test[i, j]} for {asset} in fold {fold}'s test window "
            f"(the decision for the bar of {pd.Timestamp(int(dates[i])):%Y-%m-%d}): a test row "
            f"needs every feature (a look-back longer than the {WARMUP_BARS} warm-up bars "
            f"before start plus the training window leaves NaN there: start later)")


def check_train_rows(n_train: int, fold: int, asset: str) -> None:
    if n_train < MIN_TRAIN_ROWS:
        raise ValueError(
            f"fold {fold} of {asset} has {n_train} complete training rows (< {MIN_TRAIN_ROWS}): "
            f"the features need {LOOKBACK} bars of warm-up; start later or give more history "
            f"before start")


__all__ = ["FEATURES", "MODELS", "METRICS", "WalkForwardConfig", "load_frames", "data_source",
           "check_history", "fold_windows", "fold_rows", "fold_seed"]
