"""walkforward's parameters: their defaults, their declared constraints, one check.

:func:`check_params` validates a call's parameters with :func:`qbt_lib.params.check` (a
``ValueError`` names the parameter, an unknown name included; papermill's integral floats
accepted); :func:`make_config` then resolves what depends on the data (the default range,
the symbols) and loads the run's bars once into a :class:`~.config.WalkForwardConfig`.

``impl`` uses the vocabulary of every workload (``qbt_lib.device.IMPLS``): walkforward has a
``reference`` and a ``numba`` engine (``auto`` is ``numba``: scikit-learn fits on the CPU, so
there is no GPU engine). The old name ``"fast"`` is accepted and means ``"numba"``.
``assets`` is the older name of ``symbols`` (errors then name ``assets``).
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..data import as_date, check_source
from ..data import span as data_span
from ..device import IMPLS as VOCABULARY
from ..parallel import BACKENDS, resolve_n_jobs
from ..params import AnyOf, Boolean, Check, Interval, Options, check
from . import estimators
from .config import (DEFAULT_YEARS, MIN_FOLD_LENGTH, MODELS, SYNTHETIC_DEFAULT,
                     WalkForwardConfig, data_source, load_frames)
from .featureset import resolve

#: the engines walkforward has (``impl`` takes the whole vocabulary, ``qbt_lib.device.IMPLS``:
#: the dispatch names these when asked for one it lacks)
IMPLS = ("auto", "reference", "numba")
#: old names still accepted (papermill parameter files of earlier runs)
IMPL_ALIASES = {"fast": "numba"}

DEFAULTS: dict[str, Any] = dict(
    symbols=None,          # None: 5 (synthetic) or all; a count (the first N); names; "all"
    assets=None,           # the older name of symbols
    start=None,            # None: DEFAULT_YEARS years before end
    end=None,              # None: the last date all the assets have
    fold_length=252,       # training bars per fold
    step_size=126,         # bars between fold starts
    test_length=None,      # test bars per fold (None: step_size)
    gap=0,                 # embargo bars between training and test
    anchored=False,        # expanding training window
    model="ridge",         # a built-in name or a scikit-learn estimator / Pipeline
    features=None,         # None: the ten built-ins; or built-in names and functions
    pool=False,            # also one model per fold trained on every asset's rows
    threshold=0.0,         # |prediction| needed to take a position
    long_only=False,
    cost_bps=1.0,          # cost per unit of position change
    source="synthetic",    # anything qbt_lib.data.load takes
    adjust=True,           # apply an adjusted-close column
    impl="auto",
    n_jobs=1,
    backend="loky",
    scheduler="local",     # backend="dask": "local" or an address / scheduler file
    seed=0,                # the folds' random_state seed
    n_estimators=100,      # random forest trees / boosting rounds
    alpha=1.0,             # ridge penalty
    progress=None,
    output_dir=None,       # if given, the per-fold Parquet files are written there
)


def _model(name: str, value: Any) -> Any:
    """A built-in name (case-insensitive) or a scikit-learn estimator (:mod:`.estimators`)."""
    if isinstance(value, str) or not estimators.is_estimator(value):
        try:
            return Options(*MODELS)(name, value)
        except ValueError:
            raise ValueError(f"{name} must be one of {list(MODELS)} or a scikit-learn "
                             f"estimator or Pipeline (with fit, predict and get_params), got "
                             f"{value!r}") from None
    return value


CONSTRAINTS: dict[str, Any] = dict(
    symbols=None, assets=None,            # checked by qbt_lib.data against the source
    start=Check(as_date, "None or a date"),
    end=Check(as_date, "None or a date"),
    fold_length=Interval(int, MIN_FOLD_LENGTH, None),
    step_size=Interval(int, 1, None),
    test_length=AnyOf(None, Interval(int, 1, None)),
    gap=Interval(int, 0, None),
    anchored=Boolean(),
    model=Check(_model, f"one of {list(MODELS)} or a scikit-learn estimator or Pipeline"),
    features=Check(lambda n, v: resolve(None if isinstance(v, str) and v.strip().lower()
                                         == "none" else v), "None or a list of built-in names and functions "
                   "f(open, high, low, close, volume) -> array"),
    pool=Boolean(),
    threshold=Interval(float, 0.0, None),
    long_only=Boolean(),
    cost_bps=Interval(float, 0.0, None),
    source=Check(lambda n, v: check_source(v, n), "a source qbt_lib.data.load takes"),
    adjust=Boolean(),
    impl=Options(*VOCABULARY, aliases=IMPL_ALIASES),
    n_jobs=Check(lambda n, v: resolve_n_jobs(v), "-1 (all cores), -2, ..., 1, 2, ..."),
    backend=Options(*BACKENDS),
    scheduler=None,
    seed=Interval(int, 0, None),
    n_estimators=Interval(int, 1, 100_000),
    alpha=Interval(float, 0.0, None, closed="right"),
    progress=AnyOf(None, Boolean()),
    output_dir=None,
)


def check_params(**params: Any) -> dict:
    """The full, normalized parameters (defaults filled in); ``ValueError`` names the
    parameter. Nothing is loaded: :func:`make_config` does that."""
    p = check(params, CONSTRAINTS, DEFAULTS, workload="walkforward")
    if p["symbols"] is not None and p["assets"] is not None:
        raise ValueError("give symbols or assets (its older name), not both")
    if p["test_length"] is None:
        p["test_length"] = p["step_size"]
    return p


def make_config(**params: Any) -> WalkForwardConfig:
    """Validate every parameter (``ValueError`` naming it) and load the run's data once.

    ``symbols`` (or its older name ``assets``): ``None`` (5 synthetic assets, or every
    symbol of a real source), a count (the source's first N), names, or ``"all"``.
    ``end=None``: the last date all the assets have; ``start=None``: ``DEFAULT_YEARS``
    years before ``end``. Every parameter and its default: :data:`DEFAULTS`."""
    return config_from(check_params(**params))


def config_from(p: dict) -> WalkForwardConfig:
    """The :class:`~.config.WalkForwardConfig` of parameters :func:`check_params` returned
    (resolves what depends on the data and loads the run's bars once)."""
    param = "assets" if p["assets"] is not None else "symbols"
    selection = p["assets"] if p["assets"] is not None else p["symbols"]
    src = p["source"]
    if selection is None and isinstance(src, str) and src == "synthetic":
        selection = SYNTHETIC_DEFAULT        # a real source's default: all its symbols
    start, end = p["start"], p["end"]
    if start is None or end is None:
        spans = data_span(data_source(src), selection, param=param)
        if end is None:
            end = min(last for _, last in spans.values())
        if start is None:
            start = end - pd.DateOffset(years=DEFAULT_YEARS)
    if start >= end:
        raise ValueError(f"start ({start:%Y-%m-%d}) must be before end ({end:%Y-%m-%d})")
    frames = load_frames(src, selection, start, end, p["adjust"], param)
    return WalkForwardConfig(
        assets=tuple(frames), source=src, start=start, end=end,
        fold_length=p["fold_length"], step_size=p["step_size"], test_length=p["test_length"],
        gap=p["gap"], anchored=p["anchored"], model=p["model"], threshold=p["threshold"],
        long_only=p["long_only"], cost_bps=p["cost_bps"], adjust=p["adjust"],
        impl=p["impl"], n_jobs=p["n_jobs"], backend=p["backend"], scheduler=p["scheduler"],
        seed=p["seed"], n_estimators=p["n_estimators"], alpha=p["alpha"], frames=frames,
        features=p["features"], pool=p["pool"])
