"""Elliott-wave impulse scan: the original scanner's exact impulses, thousands of times faster.

>>> from qbt_lib import waves
>>> res = waves.run("sp500", window=500, overlap=0.5, max_start_points=8, up_to=15,
...                 rules="compat,diagonal", directions="up,down", top_k=5)  # doctest: +SKIP
>>> res.frame(), res.counts(), res.headline(), res.metrics()               # doctest: +SKIP

The original (seed 002, ``docs/waves.md``: what it did, its published figures and the exact
semantics qbt keeps): from a start bar, five monowaves up/down/up/down/up with skips
``(i, j, k, l, m)`` in ``0..up_to-1`` (a 0 is followed by 0s), two chain checks and a rule
set, every one of the 579,195 skip tuples tried (``up_to=15``). ``rules="compat"`` is the
original Impulse rule set: for the same bars, start bar and ``up_to`` the scan returns exactly
the original's impulses. ``"diagonal"`` is the leading-diagonal variant.
``direction="down"`` finds the mirror pattern: it is the compat search run on the reflected
chart (lows, highs = -highs, -lows), quirks included.

Scan shape (the original system): each symbol's bars are cut into windows of ``window`` bars
overlapping by ``overlap`` (``window=None``: one window, the whole series); in each window
the search starts from every bar or from the ``max_start_points`` lowest lows (highest highs
for ``down``), and sees the data end at the window end, exactly as the original run on that
window. Patterns are ranked by a Fibonacci-proximity score (:func:`score_patterns`) and the
``top_k`` best are kept per symbol/direction/rule set/window (``top_k=0`` keeps all, so a
start bar's rows are its complete set). Pivot bars ``p0..p5`` are 0-based positions in the
symbol's series as loaded (its own bars).

Where things are (the shape every qbt workload has):

* ``params.py``    - ``DEFAULTS`` and declared ``CONSTRAINTS``; the GPU policy of ``"auto"``;
* ``api.py``       - :func:`run` (alias :func:`scan`): validate -> load (``qbt_lib.data``)
  -> dispatch -> wrap; :func:`scan_series`, :func:`find_impulses`, :func:`warm_up`,
  :func:`compare_impls`;
* ``engines.py``   - the dispatch tables, one engine per ``impl``: ``reference``, ``numba``,
  ``numpy``, ``cupy`` (chunks over the parallel layer, or one batched device search);
* ``reference.py`` - the original algorithm, every skip tuple tried (the oracle, slow);
* ``nb.py``        - Numba depth-first search over the skip-tuple tree (CPU, exact);
* ``gpu.py``       - the same tree searched level by level over start bars x symbols,
  written against an array module (CuPy on the GPU, NumPy as the ``numpy`` engine);
* ``results.py``   - :class:`WaveScan`, the Result: ``frame()``, ``counts()``,
  ``rejects_by_check()``, ``headline()``, ``metrics()``, ``write_metrics()``; ``plots.py``;
* domain modules   - ``prices.py`` (bars in, checked, oriented), ``shape.py`` (windows and
  start points), ``score.py`` (score, top-k), ``enums.py`` (rule sets, checks);
* ``bench.py``     - ``python -m qbt_lib.bench waves``.

waves keeps two dispatch tables (one series, a whole scan) instead of one: a whole scan on
the CPU runs the one-series search in chunks over the parallel layer, while on the device it
runs one batched search over all symbols, so the two sizes of work are different calls.
"""
from __future__ import annotations

from .api import compare_impls, find_impulses, run, scan, scan_series, warm_up
from .enums import CHECKS, DIRECTIONS, RULE_SETS
from .params import AUTO_GPU, CONSTRAINTS, DEFAULTS, IMPLS, WHY_CPU
from .prices import as_store, check_prices, load_source
from .reference import n_tuples
from .results import PATTERN_COLUMNS, WaveScan, write_patterns
from .score import pivot_values, score_patterns
from .shape import start_points, window_bounds

__all__ = ["run", "scan", "scan_series", "find_impulses", "warm_up", "compare_impls",
           "WaveScan", "load_source", "as_store", "check_prices", "window_bounds",
           "start_points", "score_patterns", "pivot_values", "write_patterns", "n_tuples",
           "PATTERN_COLUMNS", "CHECKS", "RULE_SETS", "DIRECTIONS", "IMPLS", "DEFAULTS",
           "CONSTRAINTS", "AUTO_GPU", "WHY_CPU"]
