"""straddles: value monthly option straddles day by day over many assets (seed 004).

The original system, its published figures and the exact semantics: ``docs/straddles.md``.

The story in four calls::

    from qbt_lib import straddles
    store, assets = straddles.load_market("synthetic", assets=8)  # "sp500", a path, frames
    sched = straddles.build_schedule(store, assets, 2001, 2024, per_month=8, tenor=63)
    bt = straddles.backtest(store, sched, impl="numba", n_jobs=-1)   # rows + summary
    bt.rows            # pyarrow.Table, one row per straddle-day (numeric + categorical)
    bt.summary         # DataFrame, one row per straddle: entry/exit, pnl, hedged pnl, return
    bt.headline()      # the run in one line; bt.metrics(), bt.write_metrics(output_dir)

or all at once: ``straddles.run(source="synthetic", assets=8, ...)`` (the same
:class:`Backtest`). ``compare_impls`` times the implementations on the same straddles.

Where things are: ``params.py`` (defaults, declared constraints, the GPU policy),
``api.py`` (``run``, ``backtest``, ``value_path``, ``warm_up``, ``compare_impls`` and the
dispatch table ``ENGINES``), ``chunks.py`` (the chunk kernels' table, one chunk's work,
in-memory placement and Parquet streaming), ``results.py`` (``Backtest``: rows, summary,
headline, metrics), ``market.py`` (the data), ``schedule.py`` (which straddles), ``core.py``
(the xp-generic valuation, the row layout, comparisons), ``reference.py``, ``nb.py``,
``gpu.py`` (the implementations), ``bench.py`` (``python -m qbt_lib.bench straddles``).

Implementations (``impl``, resolved by ``qbt_lib.device.dispatch``), all giving the same
rows for the same inputs:

- ``auto`` (default): ``numba`` on the CPU; it stays on the CPU even with a GPU, because
  the rows kept as a host table measured slower on an H200 than on 16 CPU cores
  (``params.AUTO_GPU``, ``params.WHY_CPU``).
- ``reference``: the original's shape (``reference.py``): a dict keyed
  ``asset|field|YYYY-MM-DD``, a Python loop per straddle and per day, ``math``.
- ``numpy``: all straddle-days of a chunk at once: index arithmetic + gathers from the
  asset's price/vol arrays + one vectorized Black-76 pass (``core.value_rows_xp``).
- ``numba``: blocks of rows, one SIMD-vectorized loop per quantity with branch-free exp
  and normal tail (``nb.py``), ~15-20 ns per straddle-day on one core.
- ``cupy``: on a GPU, two small fused kernels per chunk (``gpu.py``). ``device="auto"``
  without a GPU (or ``device="cpu"``) runs the NumPy code (the same xp-generic function).

The fast paths use different log/exp/normal-CDF implementations (C library, NumPy SIMD,
Cephes, CUDA), so their rows equal the reference's within ``core.RTOL`` = 1e-12 (money
columns relative to the strike; measured <= 1e-13), not bit for bit; see ``core``.

Straddles are cut into fixed-size chunks (``chunk_size``, independent of ``n_jobs``) that
run over ``sequential``/``threads``/``loky``/``dask`` workers; each worker reads only the
assets its chunk needs from the memory-mapped price store, never a pickled copy of the
prices (the original's pitfall). Chunk results are placed in straddle order, so the output
is bitwise identical for any ``n_jobs`` and backend. ``output="parquet"`` streams the chunks
to a Parquet dataset (workers write their own part files into a temp directory that is
renamed when complete), with memory bounded by ``n_jobs x chunk_size``;
``layout="normalized"`` writes only the day columns and reads back the same rows
(``dataset.py``).

Beyond the seed's straddle (issue #16, ``docs/straddles.md``): ``structure`` (a strangle
with wings by delta or moneyness, a call, a put), ``spread`` and ``hedge_cost_bps``, an
``exit`` before expiry (``spec.py``; valued by ``structures.py``, ``structures_nb.py``,
``structures_ref.py``), and the book of all open positions netted by date,
``Backtest.portfolio(normalize)`` (``portfolio.py``: ``per_year``, ``structure_table``).
"""
from .api import (ENGINES, backtest, compare_impls, reference_backtest, reference_tables,
                  resolve, run, value_path, warm_up)
from .chunks import KERNELS, value_chunk
from . import portfolio
from .core import compare_rows
from .dataset import LAYOUTS, PARQUET_OPTIONS, Dataset, open_dataset
from .market import (build_store, clean_frames, data_years, load_market, market_frames,
                     select_assets, sp500_frames, synthetic_frames)
from .params import AUTO_GPU, DEFAULT_CHUNK, DEFAULTS, IMPLS, OUTPUTS, WHY_CPU
from .results import Backtest
from .schedule import Schedule, asset_days, build_schedule
from .spec import EXIT_REASONS, STRUCTURES, Spec
from .spec import parse as parse_spec

__all__ = ["AUTO_GPU", "Backtest", "DEFAULTS", "DEFAULT_CHUNK", "ENGINES", "IMPLS", "KERNELS",
           "OUTPUTS", "PARQUET_OPTIONS", "Schedule", "WHY_CPU", "asset_days", "backtest",
           "build_schedule", "build_store", "clean_frames", "compare_impls", "compare_rows",
           "data_years", "load_market", "market_frames", "reference_backtest",
           "reference_tables", "resolve", "run", "select_assets", "sp500_frames",
           "synthetic_frames", "value_chunk", "value_path", "warm_up", "Dataset",
           "EXIT_REASONS", "LAYOUTS", "STRUCTURES", "Spec", "open_dataset", "parse_spec",
           "portfolio"]
