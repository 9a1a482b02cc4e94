"""marketsim: daily multi-symbol forecast + strategy analysis (seed 003, ``docs/marketsim.md``).

For every symbol, walk back over the last ``simulations`` days; in each simulation forecast
every day of an ``eval_days`` window from the bars before it (AR(p) + residual bootstrap by
default, or a plug-in :class:`Forecaster`), trade the seven strategies on the first
``eval_days - 1`` days, score them, pick the best strategy per symbol and rank the symbols.

>>> from qbt_lib import marketsim as ms
>>> res = ms.run("synthetic", 30, simulations=70)          # doctest: +SKIP
>>> res.headline(), res.frame(), res.metrics()             # doctest: +SKIP

Where things are (the anatomy every workload shares):

* ``params.py``   -- DEFAULTS and the declared constraints, checked in one place;
* ``api.py``      -- :func:`run` (alias :func:`analyze`): check -> load -> dispatch -> wrap;
  :func:`warm_up`; :func:`compare_impls`; the start-up probe;
* ``market.py``   -- the universe: synthetic default, ``qbt_lib.data`` loading, asset classes;
* ``reference.py`` (the "before"), ``nb.py`` (Numba kernels) with ``fast.py`` (one symbol
  through them), ``gpu.py`` (the batched CuPy pass), ``models.py`` (the forecasters);
* ``results.py``  -- :class:`MarketSimResult`: tables, headline, ``metrics.json``, Parquet;
* research (``docs/marketsim.md``): ``oos.py`` -- the out-of-sample walk (``oos_days``) and
  tomorrow's signal (``forecast_next``); ``user.py`` -- own strategies (``user_strategies``)
  and their look-ahead guard, ``examples.py`` a few; ``oos_nb.py`` their Numba kernels and
  ``reference_research.py`` their plain-Python reference.

Engines (``impl`` / ``device``, one dispatch table resolved by ``qbt_lib.device``):

* ``impl="reference"``: per symbol, per simulation, per day in Python/pandas;
* ``impl="numba"``: the Numba kernels per symbol, symbols in a thread pool sharing the
  compiled kernels (``backend="threads"``, the GIL is released in the kernels), or in
  processes (``"loky"``) or on a Dask cluster (``"dask"``);
* ``impl="cupy"``: one batched CuPy pass over symbols x simulations x days; ``impl="numpy"``
  runs the same array code with NumPy on the CPU;
* ``impl="auto"`` (the default): CuPy on a usable GPU (``params.AUTO_GPU``), else Numba.
  ``"fast"``, the old name of the fast paths, is accepted and means ``"auto"``.

All engines give the same picks; metrics agree to ``RTOL``/``ATOL`` (the AR fit is solved by
``lstsq`` in the reference and by normal equations in the kernels); the Numba path gives
bitwise identical results for every backend and ``n_jobs``.

:func:`warm_up` (old name ``warmup``) compiles (or loads from the on-disk cache) every kernel
before the timed loop.
"""
from __future__ import annotations

from . import enums
from .api import (ENGINES, analyze, compare_engines, compare_impls, run, startup_times,
                  symbol_tasks, warm_up, warmup)
from .enums import ATOL, METRICS, RTOL, STRATEGIES
from .market import (ASSET_CLASSES, CRYPTO_NAMES, asset_classes, is_crypto, load_source,
                     synthetic_names, synthetic_universe)
from .models import ARBootstrap, EmpiricalBootstrap, Forecaster, symbol_key
from .oos import OOSResult, next_order
from .params import (AUTO_GPU, CONSTRAINTS, DEFAULTS, IMPL_ALIASES, Config, bars_needed,
                     check_params, make_config, resolve_fees)
from .results import (MarketSimResult, digest, headline_figures, same_answers,
                      speedup_vs_reference, timing_table, write_results)
from .user import UserStrategy, check_lookahead

__all__ = ["run", "analyze", "warm_up", "warmup", "compare_impls", "compare_engines",
           "startup_times", "timing_table", "headline_figures", "speedup_vs_reference",
           "same_answers",
           "write_results", "digest", "MarketSimResult", "ENGINES", "symbol_tasks",
           "synthetic_universe", "synthetic_names", "load_source", "is_crypto",
           "asset_classes", "ASSET_CLASSES", "CRYPTO_NAMES", "bars_needed", "check_params",
           "make_config", "resolve_fees", "Config", "DEFAULTS", "CONSTRAINTS", "AUTO_GPU",
           "IMPL_ALIASES", "Forecaster", "ARBootstrap", "EmpiricalBootstrap", "symbol_key",
           "STRATEGIES", "METRICS", "RTOL", "ATOL", "enums", "OOSResult", "next_order",
           "UserStrategy", "check_lookahead"]
