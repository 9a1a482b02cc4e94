"""Walk-forward ML backtests, parallel and exact (seed 001, ``docs/walkforward.md``).

>>> from qbt_lib import walkforward as wf
>>> res = wf.run(symbols=5, start="2018-01-01", end="2020-12-31", model="ridge", n_jobs=-1)
>>> res.headline(), res.frame(), res.aggregate, res.equity     # doctest: +SKIP

Where things are (the anatomy every workload shares):

* ``params.py``    -- DEFAULTS and the declared constraints, checked in one place;
  ``make_config`` checks them and loads the run's bars once;
* ``api.py``       -- :func:`run`: check -> load -> dispatch -> wrap; :func:`warm_up`;
  :func:`compare_impls`; :func:`before_after` (the seed's cold/warm-cache table);
* ``config.py``    -- the run's configuration, data sources, folds and their checks;
* ``reference.py`` (the "before"), ``nb.py`` (every Numba kernel: indicators and the fold
  backtest), ``features.py`` (the feature set and pandas-facing indicators), ``fast.py``
  (the cache, the columnar store and the parallel tasks), ``models.py`` (the estimators);
* ``results.py``   -- :class:`WalkForwardResult`: tables, headline, ``metrics.json``, Parquet.

``impl="reference"`` is the seed's pipeline (sequential, re-reads the CSV files and
recomputes pandas features every fold); ``impl="numba"`` (also ``"auto"``, and ``"fast"``,
its old name) reads the data once through a content-hash Parquet cache into a columnar
store, computes the features with Numba kernels and runs the (fold, asset) tasks through
:func:`qbt_lib.parallel.pmap`. Both give the same positions and metrics (within 1e-9); the
numba path gives bitwise identical results for every ``n_jobs`` and backend. There is no
GPU engine (scikit-learn fits on the CPU).

Ctrl-C stops the workers (joblib terminates them) and re-raises ``KeyboardInterrupt``;
nothing is written until the run has finished (``output_dir``), and caches are written to a
temp folder and renamed, so no partial output is left behind.
"""
from __future__ import annotations

from . import features
from .api import ENGINES, before_after, compare_impls, fresh_cache_dir, run, warm_up
from .config import FEATURES, METRICS, MODELS, WalkForwardConfig
from .params import CONSTRAINTS, DEFAULTS, IMPL_ALIASES, IMPLS, check_params, make_config
from .results import OUTPUT_FILES, WalkForwardResult, agreement, headline, same_answers

__all__ = ["run", "warm_up", "compare_impls", "before_after", "agreement", "same_answers",
           "headline", "fresh_cache_dir", "make_config", "check_params", "features",
           "WalkForwardResult", "WalkForwardConfig", "ENGINES", "DEFAULTS", "CONSTRAINTS",
           "FEATURES", "METRICS", "MODELS", "IMPLS", "IMPL_ALIASES", "OUTPUT_FILES"]
