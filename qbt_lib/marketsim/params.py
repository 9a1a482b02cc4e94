"""marketsim's parameters: their defaults, their declared constraints, one check.

:func:`check_params` validates a call's parameters with :func:`qbt_lib.params.check` (a
``ValueError`` names the parameter; papermill's integral floats such as ``70.0`` are
accepted), applies the rules that tie two parameters together (``context >= ar_order + 10``,
the forecaster's own minimum context) and returns the normalized dict and the
:class:`Config` the engines read.

``impl`` uses the vocabulary of every workload (``qbt_lib.device.IMPLS``); marketsim has a
``reference``, a ``numba``, a ``cupy`` and a ``numpy`` engine (the CuPy pass run by NumPy).
The old name ``"fast"`` is accepted and means ``"auto"``: in marketsim it always meant "the
fast path on the device that ``device`` gives" (the GPU when one is usable). The old
parameter name ``warmup`` is accepted for ``warm_up`` (deprecated).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..device import DEVICES, IMPLS
from ..params import (AnyOf, Boolean, Check, Interval, Options, as_float, as_int, as_list,
                      check)
from ..parallel import BACKENDS
from .enums import DEFAULT_FEES, STRATEGIES
from .models import ARBootstrap, Forecaster
from .oos import extension_bars
from .user import resolve as _user_strategies

#: ``impl="auto"`` on a usable GPU: one batched CuPy pass measured 1.3x faster than the same
#: machine's 16 CPU cores on an H200 (500 symbols x 70 simulations), so auto takes the GPU
AUTO_GPU = True
WHY_CPU = ""

#: old names still accepted (papermill parameter files of earlier runs)
IMPL_ALIASES = {"fast": "auto"}
PARAM_ALIASES = {"warmup": "warm_up"}

DEFAULTS: dict[str, Any] = dict(
    source="synthetic",   # anything qbt_lib.data.load takes
    symbols=None,         # None/"all", a count (the first N) or names
    start=None, end=None,  # the range the bars are read from (only the tail is used)
    adjust=True,          # apply an adjusted-close column
    asset_classes=None,   # {symbol: "crypto" | "equity"}
    simulations=70,       # days walked back per symbol
    eval_days=7,          # window per simulation: eval_days - 1 traded days + the next day
    context=512,          # bars the model sees
    ar_order=5,
    num_samples=256,      # bootstrap draws per forecast
    strategies="all",
    fees=None,            # None: the defaults; a number; {"equity": .., "crypto": ..}
    impl="auto",
    device="auto",
    n_jobs=-1,
    backend="threads",
    scheduler="local",    # backend="dask": "local" or an address / scheduler file
    warm_up=True,         # compile every kernel before the timed analysis
    seed=0,
    forecaster=None,      # a Forecaster; None: ARBootstrap(ar_order)
    progress=None,
    gpu_chunk=None,       # symbols per GPU batch; None: all that a quarter of the free
                          # device memory holds (gpu.chunk_for)
    output_dir=None,      # if given, the tables and metrics.json are written there
    oos_days=0,           # out-of-sample walk over the last N bars (0: off); oos.py
    forecast_next=False,  # tomorrow's pick and order per symbol; oos.py
    user_strategies=None,  # own strategies: functions or "module:function" paths; user.py
)


def _strategies(name: str, value: Any) -> tuple[str, ...]:
    """``"all"``/None or a list of :data:`~.enums.STRATEGIES` (kept in selection order)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return STRATEGIES
    chosen = set(as_list(name, value, options=STRATEGIES))
    return tuple(s for s in STRATEGIES if s in chosen)


def resolve_fees(fees: Any, name: str = "fees") -> dict[str, float]:
    """``None`` -> the defaults; a number -> every class; a dict -> {equity, crypto}."""
    if fees is None or (isinstance(fees, str) and fees.strip().lower() == "default"):
        return dict(DEFAULT_FEES)
    if isinstance(fees, Mapping):
        unknown = [k for k in fees if k not in DEFAULT_FEES]
        if unknown:
            raise ValueError(f"{name}: unknown symbol class(es) {unknown}; use "
                             f"{list(DEFAULT_FEES)}")
        out = dict(DEFAULT_FEES)
        out.update({k: as_float(f"{name}[{k}]", v, min=0.0, max=1.0) for k, v in fees.items()})
        return out
    f = as_float(name, fees, min=0.0, max=1.0)
    return {"equity": f, "crypto": f}


def _forecaster(name: str, value: Any) -> Forecaster | None:
    if value is not None and not isinstance(value, Forecaster):
        raise ValueError(f"{name} must be a marketsim.Forecaster, got {value!r}")
    return value


CONSTRAINTS: dict[str, Any] = dict(
    source=None, symbols=None, start=None, end=None,   # checked by qbt_lib.data.load
    adjust=Boolean(),
    asset_classes=None,                                 # checked against the loaded symbols
    simulations=Interval(int, 1, 100_000),
    eval_days=Interval(int, 2, 10_000),
    context=Interval(int, 1, 1_000_000),
    ar_order=Interval(int, 1, 100),
    num_samples=Interval(int, 10, 1_000_000),
    strategies=Check(_strategies, f"'all' or a list of {list(STRATEGIES)}"),
    fees=Check(lambda n, v: resolve_fees(v, n), "None, a fee, or {equity: .., crypto: ..}"),
    impl=Options(*IMPLS, aliases=IMPL_ALIASES),
    device=Options(*DEVICES),
    n_jobs=Interval(int),                               # -1: all cores (qbt_lib.parallel)
    backend=Options(*BACKENDS),
    scheduler=None,
    warm_up=Boolean(),
    seed=Interval(int, 0, None),
    forecaster=Check(_forecaster, "a marketsim.Forecaster or None"),
    progress=AnyOf(None, Boolean()),
    gpu_chunk=AnyOf(None, Interval(int, 1, None)),
    output_dir=None,
    oos_days=Interval(int, 0, 100_000),
    forecast_next=Boolean(),
    user_strategies=Check(lambda n, v: _user_strategies(v),
                          "a function, a 'module:function' path, a list or {name: function}"),
)


@dataclass(frozen=True)
class Config:
    """The checked analysis parameters the engines read."""
    simulations: int
    eval_days: int
    context: int
    ar_order: int
    num_samples: int
    strategies: tuple[str, ...]
    fees: dict
    seed: int

    @property
    def bars_needed(self) -> int:
        """Bars a symbol needs: a context before the oldest forecast day, plus the days."""
        return self.context + self.simulations + self.eval_days


def _renamed(params: dict) -> dict:
    """Old parameter names (``warmup``) under their new names."""
    out = dict(params)
    for old, new in PARAM_ALIASES.items():
        if old in out:
            if new in out:
                raise ValueError(f"give {new} or {old} (its older name), not both")
            out[new] = out.pop(old)
    return out


def check_params(**params: Any) -> tuple[dict, Config]:
    """The full, normalized parameters (defaults filled in) and the :class:`Config`.

    ``ValueError`` names the parameter (an unknown name included); the forecaster defaults
    to ``ARBootstrap(ar_order)``."""
    p = check(_renamed(params), CONSTRAINTS, DEFAULTS, workload="marketsim")
    if p["context"] < p["ar_order"] + 10:
        raise ValueError(f"context ({p['context']}) must be >= ar_order + 10 "
                         f"({p['ar_order'] + 10}): the AR fit needs more bars than "
                         "coefficients")
    if p["forecaster"] is None:
        p["forecaster"] = ARBootstrap(p["ar_order"])
    else:
        p["forecaster"].check_context(p["context"])
    cfg = Config(p["simulations"], p["eval_days"], p["context"], p["ar_order"],
                 p["num_samples"], p["strategies"], p["fees"], p["seed"])
    return p, cfg


def make_config(simulations=DEFAULTS["simulations"], eval_days=DEFAULTS["eval_days"],
                context=DEFAULTS["context"], ar_order=DEFAULTS["ar_order"],
                num_samples=DEFAULTS["num_samples"], strategies="all", fees=None, seed=0,
                forecaster: Forecaster | None = None) -> Config:
    """The :class:`Config` of the analysis parameters alone (see :func:`check_params`)."""
    return check_params(simulations=simulations, eval_days=eval_days, context=context,
                        ar_order=ar_order, num_samples=num_samples, strategies=strategies,
                        fees=fees, seed=seed, forecaster=forecaster)[1]


def bars_needed(simulations: Any = DEFAULTS["simulations"],
                eval_days: Any = DEFAULTS["eval_days"], context: Any = DEFAULTS["context"],
                oos_days: Any = 0) -> int:
    """Bars per symbol an analysis reads: its ``tail`` (``context + simulations + eval_days``,
    or ``context + simulations + oos_days + eval_days - 1`` for a longer out-of-sample walk)."""
    c, s, e = (as_int("context", context, min=1), as_int("simulations", simulations, min=1),
               as_int("eval_days", eval_days, min=2))
    return max(c + s + e, extension_bars(c, s, e, as_int("oos_days", oos_days, min=0)))
