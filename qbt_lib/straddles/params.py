"""The straddles parameters: defaults and declared constraints, checked by
:func:`qbt_lib.params.check` (one place, errors naming the parameter the user typed;
papermill's integral floats such as ``2.0`` accepted).

Two sets: :data:`BACKTEST` for :func:`~qbt_lib.straddles.api.backtest` (a price store and a
schedule already in hand) and :data:`DEFAULTS` / :data:`CONSTRAINTS` for
:func:`~qbt_lib.straddles.api.run` (the notebook's one call: the market and the schedule
too). The market's own checks (the source, the asset selection, ``vol``) stay in
``qbt_lib.data``, which every source goes through.
"""
from __future__ import annotations

from .. import parallel
from ..device import DEVICES, IMPLS
from ..params import AnyOf, Boolean, Check, Interval, Options, check
from .core import SIDES
from .dataset import LAYOUTS
from .schedule import MAX_PER_MONTH
from .spec import STRUCTURES, parse_exit, parse_spread, parse_wing

WORKLOAD = "straddles"

#: ``impl="auto"`` stays on the CPU (Numba) even with a GPU: on an H200 the rows kept as a
#: host table ran at 0.14x of 16 CPU cores (the device->host copy of every row bounds it).
#: The integrator may flip this after another GPU run; it is the one switch.
AUTO_GPU = False
WHY_CPU = ("on an H200 the rows kept as a host table ran at 0.14x of 16 CPU cores "
           "(device->host copy bound; benchmarks/gpu/h200/straddles-h200.json)")

OUTPUTS = ("table", "summary", "parquet")
DEFAULT_CHUNK = 4096
#: straddles per chunk on the GPU (``chunk_size=None``): every chunk costs kernel launches
#: and copies, so the GPU takes large ones (2^18 straddles at tenor 63: ~2 GB of device rows)
GPU_CHUNK = 1 << 18
MAX_CHUNK = 10_000_000



def _wing(name, value):
    parse_wing("strangle", value)      # the form; a straddle with a wing: spec.parse says so
    return value


def _spread(name, value):
    parse_spread(value)
    return value


def _exit(name, value):
    parse_exit(value)
    return value


#: :func:`backtest`'s parameters (the store and the schedule are its positional arguments);
#: ``structure`` .. ``exit`` (issue #16, ``spec.py``): their defaults are the seed's straddle
BACKTEST_DEFAULTS = {"rate": 0.0, "side": "long", "hedge": True, "impl": "auto",
                     "device": "auto", "n_jobs": 1, "backend": "threads",
                     "scheduler": "local", "chunk_size": None, "output": "table",
                     "path": None, "progress": None, "structure": "straddle", "wing": None,
                     "spread": None, "hedge_cost_bps": 0.0, "exit": "expiry",
                     "layout": "rows"}
BACKTEST = {
    "rate": Interval(float, -1.0, 1.0),
    "side": Options(*SIDES),
    "hedge": Boolean(),
    "impl": Options(*IMPLS),
    "device": Options(*DEVICES),
    "n_jobs": Check(lambda name, v: parallel.resolve_n_jobs(v),
                    "an integer: -1 all cores, -2 all but one, N exactly N"),
    "backend": Options(*parallel.BACKENDS),
    "scheduler": None,        # parallel.check_scheduler, where a pool starts
    # None: DEFAULT_CHUNK on the CPU, GPU_CHUNK on the GPU
    "chunk_size": AnyOf(None, Interval(int, 1, MAX_CHUNK)),
    "output": Options(*OUTPUTS),
    "path": None,             # paths.local_path, where output="parquet" writes
    "progress": None,
    "structure": Options(*STRUCTURES),
    "wing": Check(_wing, "None (at the money), 'delta:D' or 'moneyness:M'"),
    "spread": Check(_spread, "0/None, 'vol:P' (vol points) or 'premium:F'"),
    "hedge_cost_bps": Interval(float, 0.0, 10_000.0),
    "exit": Check(_exit, "'expiry', 'days:N', 'profit:X', 'loss:Y' or a mix"),
    "layout": Options(*LAYOUTS),  # output="parquet": every column, or dataset.py's
}

#: :func:`run`'s parameters: the market and the schedule, then the backtest's
DEFAULTS = {"source": "synthetic", "assets": None, "start_year": None, "end_year": None,
            "per_month": 8, "tenor": 63, "seed": 0, "vol_premium": 0.02, "vol": "column",
            "adjust": True, "output_path": None,
            **{k: v for k, v in BACKTEST_DEFAULTS.items() if k != "path"}}
CONSTRAINTS = {
    "source": None,           # qbt_lib.data.check_source (a name, a path, frames)
    "assets": None,           # qbt_lib.data.select_symbols (None/"all", a count, names)
    "start_year": AnyOf(None, Interval(int, 1900, 2200)),
    "end_year": AnyOf(None, Interval(int, 1900, 2200)),
    "per_month": Interval(int, 1, MAX_PER_MONTH),
    "tenor": Interval(int, 1, 10_000),
    "seed": Interval(int, 0, None),
    "vol_premium": Interval(float, 0.0, 5.0),
    "vol": None,              # qbt_lib.data.parse_vol ("column" or "realized:N")
    "adjust": Boolean(),
    "output_path": None,
    **{k: c for k, c in BACKTEST.items() if k != "path"},
}


def check_backtest(params: dict) -> dict:
    """:func:`backtest`'s parameters, checked and completed with the defaults."""
    return check(params, BACKTEST, BACKTEST_DEFAULTS, workload=WORKLOAD)


def check_run(params: dict) -> dict:
    """:func:`run`'s parameters, checked and completed with the defaults."""
    return check(params, CONSTRAINTS, DEFAULTS, workload=WORKLOAD)
