"""marketsim: daily multi-symbol forecast + strategy analysis (seed 003, ``docs/marketsim.md``).

For every symbol, walk back over the last ``simulations`` days; in each simulation forecast
every day of an ``eval_days`` window from the bars before it (AR(p) + residual bootstrap by
default, or a plug-in :class:`Forecaster`), trade the seven strategies on the first
``eval_days - 1`` days, score them, pick the best strategy per symbol and rank the symbols.

Engines (``impl`` / ``device``):

* ``impl="reference"``: per symbol, per simulation, per day in Python/pandas (``reference.py``);
* ``impl="fast"`` on the CPU: the Numba kernels of ``nb.py`` per symbol (``fast.py``), symbols
  in a thread pool sharing the compiled kernels (``backend="threads"``, the GIL is released
  in the kernels), or in processes (``"loky"``) or on a Dask cluster (``"dask"``);
* ``impl="fast"`` on the GPU: one batched CuPy pass over symbols x simulations x days
  (``gpu.py``; the same code runs with NumPy in the tests).

All engines give the same picks; metrics agree to ``RTOL``/``ATOL`` (the AR fit is solved by
``lstsq`` in the reference and by normal equations in the kernels); the CPU fast path gives
bitwise identical results for every backend and ``n_jobs``.

``warmup()`` compiles (or loads from the on-disk cache) every kernel before the timed loop.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import paths
from ..data import (generator_symbols, load, symbol_names, synthetic_market,
                    write_parquet_tables)
from ..params import as_bool, as_float, as_int, as_list, one_of
from .enums import (BARS_PER_YEAR, DEFAULT_FEES, DEFAULTS, METRICS, SERIES, STRATEGIES,
                    STRATEGY_ID, SYNTHETIC_YEARS, TRADING_DAYS)
from .models import ARBootstrap, EmpiricalBootstrap, Forecaster, symbol_key

__all__ = ["analyze", "warmup", "synthetic_universe", "load_source", "is_crypto",
           "asset_classes", "bars_needed",
           "MarketSimResult", "Forecaster", "ARBootstrap", "EmpiricalBootstrap", "STRATEGIES",
           "write_results", "startup_times", "compare_engines", "timing_table", "RTOL", "ATOL"]


IMPLS = ("reference", "fast")
# fast vs reference tolerance of forecasts and metrics (normal equations vs lstsq, and a
# different summation order in the trimmed mean)
RTOL = 1e-7
ATOL = 1e-9

# Crypto symbols are marked by name, as in the original (BTCUSD, ETHUSD): a name ending in
# "USD" or "USDT" (optionally after "-" or "/") is crypto: long-only, fee 0.008, sqrt(365).
_CRYPTO_SUFFIXES = ("USD", "USDT")
CRYPTO_NAMES = ("BTCUSD", "ETHUSD", "SOLUSD", "LTCUSD", "LINKUSD", "UNIUSD", "AVAXUSD",
                "DOTUSD", "XRPUSD", "DOGEUSD")


def is_crypto(symbol: str) -> bool:
    """Whether ``symbol`` is marked crypto (its name ends in USD/USDT, e.g. ``BTCUSD``)."""
    s = str(symbol).upper().replace("-", "").replace("/", "")
    return s.endswith(_CRYPTO_SUFFIXES)


# --------------------------------------------------------------------------- data
def synthetic_names(n: int) -> list[str]:
    """``n`` names: equities ``SYM000 ...`` then about one in ten crypto (``BTCUSD`` ...)."""
    n = as_int("symbols", n, min=1, max=100_000)
    n_crypto = max(1, round(n / 10)) if n >= 2 else 0
    width = max(3, len(str(n - 1)))
    eq = [f"SYM{i:0{width}d}" for i in range(n - n_crypto)]
    cr = [CRYPTO_NAMES[i] if i < len(CRYPTO_NAMES) else f"C{i:0{width}d}USD"
          for i in range(n_crypto)]
    return eq + cr


def synthetic_universe(symbols: Any = 30, years: float = SYNTHETIC_YEARS,
                       seed: int = 0) -> dict[str, pd.DataFrame]:
    """The default source: GARCH(1,1)-t daily OHLC of ``symbols`` (a count or names) over
    ``years`` years of business days; a few names are crypto (see :func:`is_crypto`)."""
    which = generator_symbols(symbols, 30)
    names = synthetic_names(which) if isinstance(which, int) else symbol_names(which)
    n_bars = int(round(as_float("years", years, min=0.01) * BARS_PER_YEAR))
    return synthetic_market(names, n_bars=n_bars, seed=seed)


def load_source(source: Any = "synthetic", symbols: Any = None, seed: int = 0, *,
                start: Any = None, end: Any = None, tail: int | None = None,
                adjust: bool = True) -> dict[str, pd.DataFrame]:
    """``{symbol: OHLC frame}`` through ``qbt_lib.data.load``: ``"synthetic"`` (4 years of
    generated bars, 30 symbols by default), ``"sp500"`` (the S&P 500 sample shipped with
    ``arch``, symbol ``SP500``), a CSV/Parquet file, a directory, a Hive-partitioned
    dataset, a DataFrame or a dict of frames. ``symbols``: a count (the first n), a list of
    names or ``None``/``"all"``. ``tail``: only the last ``tail`` bars up to ``end`` are
    used (and validated). An ``asset_class`` column is kept (see :func:`asset_classes`)."""
    return load(source, symbols, start=start, end=end, tail=tail, adjust=adjust,
                require=SERIES, keep=("asset_class",),
                synthetic=lambda sy: synthetic_universe(sy, seed=seed))


def bars_needed(simulations: Any = DEFAULTS["simulations"], eval_days: Any = DEFAULTS["eval_days"],
                context: Any = DEFAULTS["context"], oos_days: Any = 0) -> int:
    """Bars per symbol an analysis reads: its ``tail`` (``context + simulations + eval_days``,
    or ``context + simulations + oos_days + eval_days - 1`` for a longer walk)."""
    n = (as_int("context", context, min=1) + as_int("simulations", simulations, min=1)
         + as_int("eval_days", eval_days, min=2))
    return max(n, n + as_int("oos_days", oos_days, min=0) - 1)


ASSET_CLASSES = ("equity", "crypto")


def asset_classes(frames: Mapping[str, pd.DataFrame], mapping: Any = None) -> dict[str, str]:
    """Each symbol's class (fees, long-only rule): ``mapping`` (``{symbol: "crypto" |
    "equity"}``) first, then the data's ``asset_class`` column, else the name guess of
    :func:`is_crypto`."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise ValueError(f"asset_classes must be a dict {{symbol: 'crypto' | 'equity'}}, "
                         f"got {mapping!r}")
    unknown = [s for s in mapping if s not in frames]
    if unknown:
        raise ValueError(f"asset_classes: unknown symbol(s) {unknown}; the run has "
                         f"{list(frames)[:10]}")
    out = {}
    for sym, df in frames.items():
        if sym in mapping:
            cls = one_of(f"asset_classes[{sym!r}]", mapping[sym], ASSET_CLASSES)
        elif "asset_class" in df.columns:
            vals = df["asset_class"].dropna().astype(str).str.strip().str.lower().unique()
            if len(vals) != 1 or vals[0] not in ASSET_CLASSES:
                raise ValueError(f"{sym}: the asset_class column must hold one of "
                                 f"{list(ASSET_CLASSES)} for every bar, got {list(vals)[:5]}")
            cls = vals[0]
        else:
            cls = "crypto" if is_crypto(sym) else "equity"
        out[sym] = cls
    return out


def _check_frame(sym: str, df: Any, need: int) -> np.ndarray:
    """close/high/low of one symbol (validated by ``qbt_lib.data.load``) as ``(3, n)``."""
    a = np.stack([df[c].to_numpy(dtype=np.float64) for c in SERIES])
    if len(df) < need:
        raise ValueError(f"{sym}: history too short: {len(df)} bars, needs context + "
                         f"simulations + eval_days = {need}")
    return a


def resolve_fees(fees: Any) -> dict[str, float]:
    """``None`` -> the defaults; a number -> every class; a dict -> {equity, crypto}."""
    if fees is None or (isinstance(fees, str) and fees.strip().lower() == "default"):
        return dict(DEFAULT_FEES)
    if isinstance(fees, Mapping):
        unknown = [k for k in fees if k not in DEFAULT_FEES]
        if unknown:
            raise ValueError(f"fees: unknown symbol class(es) {unknown}; use {list(DEFAULT_FEES)}")
        out = dict(DEFAULT_FEES)
        out.update({k: as_float(f"fees[{k}]", v, min=0.0, max=1.0) for k, v in fees.items()})
        return out
    f = as_float("fees", fees, min=0.0, max=1.0)
    return {"equity": f, "crypto": f}


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Config:
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


def make_config(simulations=DEFAULTS["simulations"], eval_days=DEFAULTS["eval_days"],
                context=DEFAULTS["context"], ar_order=DEFAULTS["ar_order"],
                num_samples=DEFAULTS["num_samples"], strategies="all", fees=None, seed=0,
                forecaster: Forecaster | None = None) -> Config:
    simulations = as_int("simulations", simulations, min=1, max=100_000)
    eval_days = as_int("eval_days", eval_days, min=2, max=10_000)
    ar_order = as_int("ar_order", ar_order, min=1, max=100)
    context = as_int("context", context, min=1, max=1_000_000)
    if context < ar_order + 10:
        raise ValueError(f"context ({context}) must be >= ar_order + 10 ({ar_order + 10}): "
                         "the AR fit needs more bars than coefficients")
    if forecaster is not None:
        forecaster.check_context(context)
    num_samples = as_int("num_samples", num_samples, min=10, max=1_000_000)
    if strategies is None or (isinstance(strategies, str) and strategies.strip() == "all"):
        strategies = STRATEGIES
    chosen = set(as_list("strategies", strategies, options=STRATEGIES))
    strategies = tuple(s for s in STRATEGIES if s in chosen)  # selection order
    return Config(simulations, eval_days, context, ar_order, num_samples, strategies,
                  resolve_fees(fees), as_int("seed", seed, min=0))


# --------------------------------------------------------------------------- warm-up
def warmup(forecaster: Forecaster | None = None, research: bool = False) -> float:
    """Compile (cold cache) or load (warm cache) every kernel before the timed loop, by
    running each code path once on a tiny input with the dtypes of the real calls
    (``research``: also the kernels of the out-of-sample walk and own strategies).
    Returns the seconds it took."""
    from . import fast
    t = time.perf_counter()
    rng = np.random.default_rng(0)
    plugin = forecaster if forecaster is not None and type(forecaster) is not ARBootstrap \
        else EmpiricalBootstrap(8)
    context = max(16, int(getattr(plugin, "min_context", 1)))
    n = context + 5
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    prices = np.stack([close, close * 1.01, close * 0.99])
    ids = np.arange(len(STRATEGIES), dtype=np.int64)
    kw = dict(symbol_key=symbol_key(0, "WARMUP"), simulations=2, eval_days=3,
              num_samples=16, strategy_ids=ids, fee=0.001, ann=float(np.sqrt(252.0)),
              long_only=False)
    fast.analyze_symbol(prices[:, -21:], forecaster=ARBootstrap(2), context=16, **kw)
    fast.analyze_symbol(prices, forecaster=plugin, context=context, **kw)
    ARBootstrap(2).sample(rng.normal(size=(2, 16)), np.arange(2, dtype=np.uint64), 8)
    if research:
        from . import oos
        oos.warmup()
    return time.perf_counter() - t


_warmup_kernels = warmup  # ``analyze`` has a parameter of the same name
_asset_classes = asset_classes  # and another one


# --------------------------------------------------------------------------- results
@dataclass
class MarketSimResult:
    """The tables of one analysis (pandas at the edges) over the raw per-symbol arrays.

    ``arrays``: ``point/lo/hi/actual`` ``(symbols, simulations, eval_days, 3)`` forecasts and
    actual returns (close, high, low), ``metrics`` ``(symbols, simulations, strategies, 5)``,
    ``pos``/``net`` ``(..., strategies, eval_days - 1)`` positions and net daily returns,
    ``mult`` ``(symbols, simulations, 2)`` the maxdiff offsets (m_h, m_l).
    ``simulations`` and ``forecasts`` are long tables built on first access.
    """
    table: pd.DataFrame        # per symbol x strategy: metrics averaged over simulations
    picks: pd.DataFrame        # per symbol: the chosen strategy and its figures
    ranking: pd.DataFrame      # picks ranked by mean total return, then Sharpe
    arrays: dict = field(repr=False)
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    dates: list = field(default_factory=list, repr=False)  # per symbol, its analysed bars
    oos: Any = None            # oos.OOSResult: the out-of-sample walk (oos_days/forecast_next)
    next_session: Any = None   # per symbol: tomorrow's pick and order (forecast_next=True)

    @property
    def symbols(self) -> list[str]:
        return list(self.params["symbols"])

    @property
    def strategies(self) -> list[str]:
        return list(self.params["strategies"])

    @functools.cached_property
    def simulations(self) -> pd.DataFrame:
        """Per symbol x simulation x strategy metrics (+ the maxdiff offsets)."""
        names, strategies = self.symbols, self.strategies
        metrics = self.arrays["metrics"]
        grid = np.indices(metrics.shape[:3])
        sims = pd.DataFrame({"symbol": _cat(grid[0], names),
                             "strategy": _cat(grid[2], strategies),
                             "simulation": grid[1].ravel(),
                             **{m: metrics[..., i].ravel() for i, m in enumerate(METRICS)}})
        if "maxdiff" in strategies:
            is_md = (grid[2] == strategies.index("maxdiff")).ravel()
            for c, col in enumerate(("m_high", "m_low")):
                v = np.full(len(sims), np.nan)
                v[is_md] = self.arrays["mult"][:, :, c].ravel()
                sims[col] = v
        return sims

    @functools.cached_property
    def forecasts(self) -> pd.DataFrame:
        """Per symbol x simulation x window day x series: forecast, band and actual."""
        S, N, E, _ = self.arrays["point"].shape
        # day j of simulation k is bar n - 1 - k - (E - 1) + j of the symbol's n bars
        bars = -np.arange(N)[:, None] - (E - 1) + np.arange(E)
        day_dates = np.stack([np.asarray(d)[len(d) - 1 + bars] for d in self.dates])
        g = np.indices((S, N, E, 3))
        fc = pd.DataFrame({
            "symbol": _cat(g[0], self.symbols), "simulation": g[1].ravel(),
            "day": g[2].ravel(), "date": np.repeat(day_dates.ravel(), 3),
            "series": _cat(g[3], SERIES), "point": self.arrays["point"].ravel(),
            "band_lo": self.arrays["lo"].ravel(), "band_hi": self.arrays["hi"].ravel(),
            "actual": self.arrays["actual"].ravel()})
        fc["band"] = fc["band_hi"] - fc["band_lo"]
        fc["traded"] = g[2].ravel() < E - 1  # the last day is the "next day" forecast
        return fc

    def returns_pivot(self, metric: str = "total_return") -> pd.DataFrame:
        """symbol x strategy table of one metric (mean over simulations)."""
        return self.table.pivot(index="symbol", columns="strategy", values=metric)

    def strategy_summary(self) -> pd.DataFrame:
        """Per strategy (in-sample): metrics averaged over symbols and simulations, how many
        symbols pick it, and ``never_traded``: it held no position in any symbol and
        simulation of this run (its figures are those of staying flat)."""
        t = self.table.groupby("strategy", observed=True, sort=False)
        out = t[list(METRICS)].mean()
        out["picked_by"] = self.picks["strategy"].value_counts().reindex(out.index).fillna(0) \
            .astype(int)
        out["never_traded"] = t["never_traded"].all()
        return out

    @property
    def never_traded(self) -> list[str]:
        """Strategies that held no position in any symbol and simulation of this run."""
        s = self.strategy_summary()
        return list(s.index[s["never_traded"]])


def _cat(codes: np.ndarray, categories: Sequence[str]) -> pd.Categorical:
    """A categorical column from integer codes (building string columns costs more than the
    analysis of a symbol with pandas 3's Arrow strings)."""
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int32).ravel(),
                                     categories=list(categories))


def _summary_tables(names: list[str], arrays: dict, strategies: list[str],
                    crypto: np.ndarray) -> tuple:
    """symbol x strategy means, the picks and the ranking."""
    S, K = len(names), len(strategies)
    mean = arrays["metrics"].mean(axis=1)  # (S, K, 5), summed in simulation order everywhere
    sym_k = np.repeat(np.arange(S), K)
    table = pd.DataFrame({"symbol": _cat(sym_k, names),
                          "strategy": _cat(np.tile(np.arange(K), S), strategies),
                          **{m: mean[:, :, i].ravel() for i, m in enumerate(METRICS)},
                          "crypto": crypto[sym_k]})
    idle = ~(arrays["pos"] != 0).any(axis=(1, 3))  # (S, K): never held a position
    table["never_traded"] = idle.ravel()
    best = np.argmax(mean[:, :, 0], axis=1)  # first max: ties go to the earlier strategy
    picks = pd.DataFrame({"symbol": names, "strategy": [strategies[b] for b in best],
                          **{m: mean[np.arange(S), best, i] for i, m in enumerate(METRICS)},
                          "crypto": crypto, "never_traded": idle[np.arange(S), best]})
    order = np.lexsort((np.array(names, dtype=str), -picks["sharpe"].to_numpy(),
                        -picks["total_return"].to_numpy()))
    ranking = picks.iloc[order].reset_index(drop=True)
    ranking.insert(0, "rank", np.arange(1, S + 1))
    return table, picks.set_index("symbol"), ranking


# --------------------------------------------------------------------------- analysis
def _symbol_tasks(frames: Mapping[str, pd.DataFrame], cfg: Config, forecaster: Forecaster,
                  classes: Mapping[str, str], user: Sequence = ()):
    ids = np.array([STRATEGY_ID[s] for s in cfg.strategies], dtype=np.int64)
    need = cfg.bars_needed
    tasks = []
    for sym, df in frames.items():
        a = _check_frame(sym, df, need)
        cls = classes[sym]
        crypto = cls == "crypto"
        tasks.append(dict(
            prices=np.ascontiguousarray(a[:, -need:]), symbol_key=symbol_key(cfg.seed, sym),
            simulations=cfg.simulations, eval_days=cfg.eval_days, context=cfg.context,
            num_samples=cfg.num_samples, strategy_ids=ids, fee=cfg.fees[cls],
            ann=float(np.sqrt(TRADING_DAYS[cls])), long_only=crypto, forecaster=forecaster))
        if user:
            tasks[-1]["user"] = tuple(user)
    return tasks


def _user_inputs(out: dict, eval_days: int) -> tuple:
    """Forecast, band and actual returns of the traded days of every window."""
    D = eval_days - 1
    return (np.ascontiguousarray(out["point"][:, :D]),
            np.ascontiguousarray(out["hi"][:, :D] - out["lo"][:, :D]),
            np.ascontiguousarray(out["actual"][:, :D]))


def _run_fast_task(task: dict) -> dict:
    from . import fast, user
    task = dict(task)
    strategies = task.pop("user", ())
    out = fast.analyze_symbol(**task)
    if strategies:
        extra = user.evaluate_windows(strategies, *_user_inputs(out, task["eval_days"]),
                                      task["fee"], task["ann"], task["long_only"])
        out = user.append(out, extra)
    return out


def _run_reference(frames, tasks, cfg: Config) -> list[dict]:
    from . import reference, reference_research, user
    out = []
    for (sym, df), t in zip(frames.items(), tasks):
        r = reference.analyze_symbol(
            df, symbol_key=t["symbol_key"], simulations=cfg.simulations,
            eval_days=cfg.eval_days, context=cfg.context, num_samples=cfg.num_samples,
            strategies=list(cfg.strategies), fee=t["fee"], ann=t["ann"],
            long_only=t["long_only"], forecaster=t["forecaster"])
        if t.get("user"):
            r = user.append(r, reference_research.user_windows(
                t["user"], *_user_inputs(r, cfg.eval_days), t["fee"], t["ann"],
                t["long_only"]))
        out.append(r)
    return out


def _run_engine(frames, tasks, cfg: Config, impl: str, dev: str, *, backend: str, n_jobs: int,
                scheduler, progress, gpu_chunk: int, desc: str) -> tuple[dict, dict]:
    """Every symbol's arrays, stacked, by the chosen engine, and how it ran."""
    from ..parallel import effective_backend, pmap
    if impl == "reference":
        results = _run_reference(frames, tasks, cfg)
        how = dict(backend="sequential", n_jobs=1)
    elif dev == "gpu":
        from . import gpu
        return gpu.analyze_batch(tasks, chunk=gpu_chunk), dict(backend="cupy", n_jobs=1)
    else:
        eff, n = effective_backend(backend, n_jobs, len(tasks))
        results = pmap(_run_fast_task, tasks, backend=backend, n_jobs=n_jobs,
                       scheduler=scheduler, progress=progress, desc=desc, unit="symbol")
        how = dict(backend=eff, n_jobs=n)
    return {k: np.stack([r[k] for r in results]) for k in results[0]}, how


def _out_of_sample(frames, cfg: Config, forecaster, classes, user_strategies, oos_days: int,
                   impl: str, dev: str, engine_kw: dict, forecast_next: bool):
    """The extended run (one placeholder bar, ``simulations + oos_days`` simulations) through
    the same engine, then the walk of every symbol (see ``oos.py``)."""
    from . import oos, reference_research
    G = cfg.simulations + oos_days
    need = oos.extension_bars(cfg.context, cfg.simulations, cfg.eval_days, oos_days)
    for sym, df in frames.items():
        if len(df) < need:
            raise ValueError(f"{sym}: history too short for oos_days={oos_days}: {len(df)} "
                             f"bars, needs context + simulations + oos_days + eval_days - 1 "
                             f"= {need}")
    ext = {sym: oos.placeholder_frame(df.iloc[-need:]) for sym, df in frames.items()}
    cfg_ext = Config(G, cfg.eval_days, cfg.context, cfg.ar_order, cfg.num_samples,
                     cfg.strategies, cfg.fees, cfg.seed)
    tasks = _symbol_tasks(ext, cfg_ext, forecaster, classes, user_strategies)
    arrays, _ = _run_engine(ext, tasks, cfg_ext, impl, dev, desc="marketsim oos", **engine_kw)
    names = list(cfg.strategies) + [u.name for u in user_strategies]
    walk = reference_research.walk_symbol if impl == "reference" else oos.walk_symbol
    walks = [walk({k: arrays[k][s] for k in ("point", "lo", "hi", "actual", "metrics", "mult")},
                  strategies=names, user=user_strategies, lookback=cfg.simulations,
                  days=oos_days, fee=t["fee"], ann=t["ann"], long_only=t["long_only"])
             for s, t in enumerate(tasks)]
    syms = list(frames)
    crypto = [t["long_only"] for t in tasks]
    nxt = None
    if forecast_next:
        nxt = oos.next_session_table(syms, walks, names,
                                     [frames[s].index[-1] for s in syms],
                                     [float(frames[s]["close"].iloc[-1]) for s in syms], crypto)
    dates = [list(frames[s].index[len(frames[s]) - oos_days:]) if oos_days else [] for s in syms]
    return oos.OOSResult(syms, names, walks[0]["curves"], cfg.simulations, oos_days, dates,
                         walks, crypto, nxt)


def analyze(source: Any = "synthetic", symbols: Any = None, *, start: Any = None,
            end: Any = None, adjust: bool = True, asset_classes: Any = None,
            simulations: int = DEFAULTS["simulations"], eval_days: int = DEFAULTS["eval_days"],
            context: int = DEFAULTS["context"], ar_order: int = DEFAULTS["ar_order"],
            num_samples: int = DEFAULTS["num_samples"], strategies: Any = "all",
            fees: Any = None, impl: str = "fast", n_jobs: int = -1, backend: str = "threads",
            device: str = "auto", warmup: bool = True, seed: int = 0,
            forecaster: Forecaster | None = None, scheduler: str | None = "local",
            progress: bool | None = None, gpu_chunk: int = 128, oos_days: int = 0,
            forecast_next: bool = False, user_strategies: Any = None) -> MarketSimResult:
    """Run the analysis over a universe and return its tables.

    ``source``/``symbols``/``start``/``end``/``adjust``: see :func:`load_source`; only the
    last ``context + simulations + eval_days`` bars up to ``end`` are read (and validated).
    ``asset_classes``: ``{symbol: "crypto" | "equity"}`` (fees and the long-only rule; else
    the data's ``asset_class`` column, else the name guess of :func:`is_crypto`).
    ``forecaster``: a :class:`Forecaster` (default ``ARBootstrap(ar_order)``).
    ``impl="reference"`` always runs sequentially on the CPU (``n_jobs``, ``backend`` and
    ``device`` apply to ``impl="fast"``); ``scheduler`` is the Dask scheduler of
    ``backend="dask"`` (``"local"`` starts a LocalCluster, or an address); ``gpu_chunk``
    bounds the symbols per GPU batch (device memory). ``seed`` keys the bootstrap draws.

    Research options (``docs/marketsim.md``): ``oos_days``: walk the last ``oos_days`` bars
    out of sample (the pick of the windows ending before each day, traded that day; reads
    ``oos_days - 1`` more bars) -> ``result.oos``; ``forecast_next``: tomorrow's pick and
    order per symbol -> ``result.next_session``; ``user_strategies``: own strategies
    (``marketsim.user``), run after the built-ins with the same fee, metrics and ranking,
    each checked for look-ahead first (CPU engines only).
    Raises ``ValueError`` naming the parameter, or the symbol and row, on bad input.
    """
    from ..device import resolve_device
    from ..parallel import BACKENDS
    from . import user

    impl = one_of("impl", impl, IMPLS)
    backend = one_of("backend", backend, BACKENDS)
    device = one_of("device", device, ("auto", "cpu", "gpu"))
    warm = as_bool("warmup", warmup)
    oos_days = as_int("oos_days", oos_days, min=0, max=100_000)
    forecast_next = as_bool("forecast_next", forecast_next)
    own = user.resolve(user_strategies)
    if forecaster is None:
        forecaster = ARBootstrap(as_int("ar_order", ar_order, min=1, max=100))
    elif not isinstance(forecaster, Forecaster):
        raise ValueError(f"forecaster must be a marketsim.Forecaster, got {forecaster!r}")
    cfg = make_config(simulations, eval_days, context, ar_order, num_samples, strategies, fees,
                      seed, forecaster)
    if own and impl == "fast" and device == "gpu":
        raise ValueError("device='gpu' runs the built-in strategies only; user strategies "
                         f"{[u.name for u in own]} run on the CPU (device='cpu')")
    t_guard = time.perf_counter()
    for u in own:  # before any data is read: a peeking strategy stops the run here
        user.check_lookahead(u)
    guard_s = time.perf_counter() - t_guard
    extended = oos_days > 0 or forecast_next
    need = cfg.bars_needed
    if extended:
        need = max(need, cfg.context + cfg.simulations + oos_days + cfg.eval_days - 1)
    frames = load_source(source, symbols, start=start, end=end, tail=need, adjust=adjust)
    classes = _asset_classes(frames, asset_classes)
    if not frames:
        raise ValueError("symbols: the universe is empty")
    names = list(frames)
    dev = "cpu"
    if impl == "fast":
        if type(forecaster) is not ARBootstrap:
            if device == "gpu":
                raise ValueError("device='gpu' runs the built-in AR forecaster only; "
                                 f"{forecaster!r} runs on the CPU (device='cpu')")
        elif not own:
            dev = resolve_device(device)
    timings: dict[str, Any] = {"impl": impl, "device": dev}
    if own:
        timings["guard_s"] = guard_s
    if warm and impl == "fast":
        if dev == "gpu":
            from . import gpu, oos
            tw = time.perf_counter()
            gpu.warmup()
            if extended:  # the walk itself runs on the CPU
                oos.warmup()
            timings["warmup_s"] = time.perf_counter() - tw
        else:
            timings["warmup_s"] = _warmup_kernels(forecaster, research=extended or bool(own))
    t0 = time.perf_counter()  # the analysis: validation, per-symbol work, tables
    tasks = _symbol_tasks(frames, cfg, forecaster, classes, own)
    engine_kw = dict(backend=backend, n_jobs=n_jobs, scheduler=scheduler, progress=progress,
                     gpu_chunk=gpu_chunk)
    arrays, how = _run_engine(frames, tasks, cfg, impl, dev, desc="marketsim", **engine_kw)
    timings.update(how)
    crypto = np.array([t["long_only"] for t in tasks])
    all_names = list(cfg.strategies) + [u.name for u in own]
    table, picks, ranking = _summary_tables(names, arrays, all_names, crypto)
    timings["analysis_s"] = time.perf_counter() - t0
    oos_result = None
    if extended:
        t1 = time.perf_counter()
        oos_result = _out_of_sample(frames, cfg, forecaster, classes, own, oos_days, impl, dev,
                                    engine_kw, forecast_next)
        timings["oos_s"] = time.perf_counter() - t1
    params = dict(symbols=names, simulations=cfg.simulations, eval_days=cfg.eval_days,
                  context=cfg.context, ar_order=cfg.ar_order, num_samples=cfg.num_samples,
                  strategies=all_names, fees=cfg.fees, seed=cfg.seed,
                  forecaster=repr(forecaster), impl=impl, device=dev, oos_days=oos_days,
                  forecast_next=forecast_next, user_strategies=[repr(u) for u in own])
    return MarketSimResult(table, picks, ranking, arrays, params, timings,
                           [frames[n].index[-cfg.bars_needed:] for n in names], oos_result,
                           None if oos_result is None else oos_result.next_session)


# --------------------------------------------------------------------------- outputs
def write_results(result: MarketSimResult, output_dir: Any, **metrics: Any) -> dict[str, Path]:
    """Write the tables as Parquet and ``metrics.json`` into ``output_dir``.

    Every file is written under a temporary name and renamed only when all are complete, so
    an interrupted run leaves no partial dataset."""
    from ..report import write_metrics
    out = paths.resolve_output_dir(output_dir)
    frames = {"summary": result.table, "picks": result.picks.reset_index(),
              "ranking": result.ranking, "simulations": result.simulations,
              "forecasts": result.forecasts}
    extra: dict[str, Any] = {"ranking_selection": "in-sample"}
    if result.oos is not None and result.oos.days:
        frames["oos_daily"] = result.oos.daily
        frames["oos_metrics"] = result.oos.metrics.reset_index()
        extra["oos"] = result.oos.headline()
    if result.next_session is not None:
        frames["next_session"] = result.next_session.reset_index()
        extra["next_session"] = {s: {"strategy": r["strategy"], "position": int(r["position"])}
                                 for s, r in result.next_session.iterrows()}
    written = write_parquet_tables(out, {f"{k}.parquet": v for k, v in frames.items()})
    final = {name: written[f"{name}.parquet"] for name in frames}
    picks = {s: r["strategy"] for s, r in result.picks.iterrows()}
    final["metrics"] = write_metrics(out, "marketsim", result.params, picks=picks,
                                     ranking=list(result.ranking["symbol"]),
                                     timings=result.timings, **{**extra, **metrics})
    return final


def digest(result: MarketSimResult, decimals: int = 8) -> str:
    """A short hash of the picks, ranking and rounded metrics (stable across machines)."""
    import hashlib
    h = hashlib.blake2b(digest_size=8)
    h.update(json.dumps([list(result.picks["strategy"]), list(result.ranking["symbol"])])
             .encode())
    h.update(np.round(result.table[list(METRICS)].to_numpy(), decimals).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- timing
_STARTUP_PROBE = """
import json, time
t0 = time.perf_counter()
from qbt_lib import marketsim
t1 = time.perf_counter()
w = marketsim.warmup()
print(json.dumps({"import_s": t1 - t0, "warmup_s": w, "total_s": time.perf_counter() - t0}))
"""


def startup_times(cache_dir: str | os.PathLike | None = None, cold: bool = True) -> dict:
    """Start-up measured in fresh processes: import the workload, then ``warmup()`` (Numba
    imported, every kernel compiled or loaded). ``cold``: with an empty ``NUMBA_CACHE_DIR``;
    ``cached``: again with the same directory, now filled (or with ``cache_dir`` if given,
    in which case ``cold=False`` skips the cold run). ``process_s`` adds interpreter start."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="qbt-numba-") as tmp:
        d = str(cache_dir) if cache_dir is not None else tmp
        for label in (("cold", "cached") if cold else ("cached",)):
            env = dict(os.environ, NUMBA_CACHE_DIR=d)
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", _STARTUP_PROBE], env=env,
                               capture_output=True, text=True, cwd=str(paths.PROJ_ROOT))
            wall = time.perf_counter() - t
            if p.returncode != 0:
                raise RuntimeError(f"start-up probe failed: {p.stderr[-2000:]}")
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r["process_s"] = wall
            out[label] = r
    return out


def compare_engines(frames: Mapping[str, pd.DataFrame], *, n_jobs: int = -1,
                    backends: Sequence[str] = ("sequential", "threads", "loky"),
                    include_gpu: bool = True, **params: Any) -> dict:
    """Analysis seconds of the fast path per backend on ``frames`` (warm kernels), plus the
    GPU when one is usable. Returns ``{label: seconds}``."""
    from ..device import gpu_available
    from ..parallel import resolve_n_jobs
    n = resolve_n_jobs(n_jobs)
    times = {}
    for b in backends:
        jobs = 1 if b == "sequential" else n
        label = {"sequential": "sequential", "threads": f"threads ({jobs})",
                 "loky": f"processes (loky, {jobs})", "dask": f"dask ({jobs} workers)"}[b]
        analyze(frames, None, impl="fast", backend=b, n_jobs=jobs, device="cpu", warmup=False,
                progress=False, **params)  # first call: start the pool / load the workers
        r = analyze(frames, None, impl="fast", backend=b, n_jobs=jobs, device="cpu",
                    warmup=False, progress=False, **params)
        times[label] = r.timings["analysis_s"]
    if include_gpu and gpu_available():
        analyze(frames, None, impl="fast", device="gpu", warmup=True, progress=False, **params)
        r = analyze(frames, None, impl="fast", device="gpu", warmup=False, progress=False,
                    **params)
        times["gpu (cupy)"] = r.timings["analysis_s"]
    return times


def timing_table(startup: Mapping[str, Any] | None, analysis: Mapping[str, float],
                 reference_s: float | None = None) -> pd.DataFrame:
    """The seed's table: start-up (cold, cached) + analysis = first and subsequent run."""
    cold = (startup or {}).get("cold", {}).get("warmup_s", np.nan)
    cached = (startup or {}).get("cached", {}).get("warmup_s", np.nan)
    rows = []
    if reference_s is not None:
        rows.append({"configuration": "reference (Python/pandas)", "cold start s": 0.0,
                     "cached start s": 0.0, "analysis s": reference_s,
                     "first run s": reference_s, "subsequent run s": reference_s})
    for label, a in analysis.items():
        c, w = (np.nan, np.nan) if label.startswith("gpu") else (cold, cached)
        rows.append({"configuration": f"fast {label}", "cold start s": c, "cached start s": w,
                     "analysis s": a, "first run s": c + a, "subsequent run s": w + a})
    return pd.DataFrame(rows).set_index("configuration")
