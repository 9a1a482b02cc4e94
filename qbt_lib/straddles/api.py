"""The straddles entry points: :func:`run` (the notebook's one call: validate -> load the
market through ``qbt_lib.data`` -> build the schedule -> dispatch -> wrap in a
:class:`~qbt_lib.straddles.results.Backtest`), :func:`backtest` (the domain verb: a store
and a schedule already in hand), :func:`value_path`, :func:`warm_up` and
:func:`compare_impls`.

The dispatch table is :data:`ENGINES` (resolved by :func:`qbt_lib.device.dispatch`): the
reference values the whole schedule in one piece from its own dict (the "before"; no chunks,
no streaming), the others are the chunk kernels of :mod:`~qbt_lib.straddles.chunks`.
"""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import bench as qbench
from .. import data
from ..device import dispatch
from ..params import Interval
from . import core, layout, reference, structures, structures_ref
from .chunks import KERNELS, value_in_memory, value_to_parquet
from .core import RTOL, SIDES, rows_table
from .gpu import kernels as gpu_kernels
from .market import check_store, data_years, load_market
from .params import (AUTO_GPU, DEFAULT_CHUNK, GPU_CHUNK, WHY_CPU, WORKLOAD, check_backtest,
                     check_run)
from .results import Backtest
from .schedule import Schedule, build_schedule
from .spec import SEED, Spec
from .spec import parse as parse_spec

#: what is traded and how it is closed (issue #16, ``spec.py``)
OPTIONS = ("structure", "wing", "spread", "hedge_cost_bps", "exit")


# --------------------------------------------------------------------------- the reference
def reference_backtest(store: data.PriceStore, schedule: Schedule, *, rate: float = 0.0,
                       side: str = "long", hedge: bool = True, prices: dict | None = None,
                       spec: Spec = SEED) -> tuple[pa.Table, pa.Table]:
    """Run the reference over the schedule's assets and years and return its rows and
    summary as tables (the same layout as the fast paths); ``spec`` other than the seed's:
    the structures' reference (``structures_ref``)."""
    if prices is None:
        prices = reference.build_prices_dict(store, schedule.assets)
    res = _reference(spec, prices, schedule.assets, schedule.start_year, schedule.end_year,
                     schedule.per_month, schedule.tenor, rate, SIDES[side], hedge)
    return reference_tables(res, schedule.assets, spec)


def _reference(spec: Spec, *grid) -> dict:
    """The reference's lists over ``grid`` (``reference.run``'s arguments): the seed's
    reference, or ``structures_ref`` for another ``spec``."""
    return reference.run(*grid) if spec.is_seed else structures_ref.run(*grid, spec)


def reference_tables(res: dict, assets: list[str],
                     spec: Spec = SEED) -> tuple[pa.Table, pa.Table]:
    """The reference's list-of-lists rows and summary as Arrow tables: the seed's layout,
    or for another ``spec`` the structures' (``layout.py``)."""
    return (core.reference_tables if spec.is_seed else layout.reference_tables)(res, assets)


#: The dispatch table: impl -> what values the straddles (see the module docstring).
ENGINES = {"reference": reference_backtest, **KERNELS}


def resolve(impl: str = "auto", device: str = "auto") -> tuple[str, str, Any]:
    """``(impl, device, engine)`` that will run for a requested ``impl`` x ``device``
    (``impl="auto"``: Numba on the CPU, see ``params.AUTO_GPU``)."""
    return dispatch(WORKLOAD, ENGINES, impl, device, auto_gpu=AUTO_GPU, why_cpu=WHY_CPU)


# --------------------------------------------------------------------------- backtest
def backtest(store: data.PriceStore, schedule: Schedule, *, rate: float = 0.0,
             side: str = "long", hedge: bool = True, impl: str = "auto",
             device: str = "auto", n_jobs: int = 1, backend: str = "threads",
             scheduler: str | None = "local", chunk_size: int | None = None,
             output: str = "table", path: str | os.PathLike | None = None,
             progress: bool | None = None, structure: str = "straddle", wing: Any = None,
             spread: Any = None, hedge_cost_bps: float = 0.0, exit: str = "expiry",
             layout: str = "rows") -> Backtest:
    """Value every straddle of ``schedule`` on every day of its life.

    ``output``: ``"table"`` keeps all rows in memory (``Backtest.rows``, an Arrow table);
    ``"summary"`` values every row but keeps only the per-straddle summary (memory bounded
    by the chunk size); ``"parquet"`` streams the rows to a Parquet dataset at ``path``
    (``rows/`` and ``summary/`` part files, written to a temp dir renamed when complete;
    ``layout="normalized"``: ``days/`` with the day columns only and ``market/`` once, read
    back as the same rows by ``Backtest.frame()`` / ``dataset.open_dataset``).
    ``impl="reference"`` always runs in one piece, sequentially: it is the "before".

    ``structure``, ``wing``, ``spread``, ``hedge_cost_bps``, ``exit``: what is traded and
    how it is closed (``spec.py``); their defaults are the seed's straddle, valued by the
    seed's kernels with its rows unchanged; other values run ``structures.py``.
    """
    p = check_backtest(dict(rate=rate, side=side, hedge=hedge, impl=impl, device=device,
                            n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                            chunk_size=chunk_size, output=output, path=path,
                            progress=progress, structure=structure, wing=wing,
                            spread=spread, hedge_cost_bps=hedge_cost_bps, exit=exit,
                            layout=layout))
    spec = parse_spec(*(p[k] for k in OPTIONS))
    check_store(store)
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    impl, dev, _ = resolve(p["impl"], p["device"])   # device='gpu' without a GPU raises here
    if p["chunk_size"] is None:
        p["chunk_size"] = GPU_CHUNK if dev == "gpu" else DEFAULT_CHUNK
    params = {"assets": schedule.assets, "start_year": schedule.start_year,
              "end_year": schedule.end_year, "per_month": schedule.per_month,
              "tenor": schedule.tenor, "rate": p["rate"], "side": p["side"],
              "hedge": p["hedge"], "impl": impl, "device": dev, "n_jobs": p["n_jobs"],
              "backend": p["backend"], "chunk_size": p["chunk_size"], "output": p["output"],
              **spec.params()}
    if p["output"] == "parquet":
        params["layout"] = p["layout"]
    done = dict(spec=spec, layout=p["layout"], dates=store.dates.asi8)
    t0 = time.perf_counter()
    if impl == "reference":   # the "before": the whole schedule at once, from its dict
        if p["output"] == "parquet":
            raise ValueError("output='parquet' streams chunks; the reference runs in one "
                             "piece: use impl='numpy' or 'numba' to stream")
        rows, summ = reference_backtest(store, schedule, rate=p["rate"], side=p["side"],
                                        hedge=p["hedge"], spec=spec)
        return Backtest(schedule, params, rows=rows if p["output"] == "table" else None,
                        seconds=time.perf_counter() - t0, _summary=summ,
                        _n_rows=rows.num_rows, **done)
    if not spec.is_seed:   # structures, costs, exits: structures.py
        rows, summ, n_rows, final = structures.run(
            store, schedule, spec, rate=p["rate"], side=SIDES[p["side"]], hedge=p["hedge"],
            impl=impl, device=dev, n_jobs=p["n_jobs"], backend=p["backend"],
            scheduler=p["scheduler"], chunk_size=p["chunk_size"], output=p["output"],
            path=p["path"], layout=p["layout"], progress=p["progress"], params=params)
        return Backtest(schedule, params, rows=rows, path=final,
                        seconds=time.perf_counter() - t0, _summary=summ, _n_rows=n_rows,
                        **done)
    kw = dict(impl=impl, device=dev, rate=p["rate"], side=SIDES[p["side"]], hedge=p["hedge"],
              n_jobs=p["n_jobs"], backend=p["backend"], scheduler=p["scheduler"],
              chunk_size=p["chunk_size"], progress=p["progress"])
    if p["output"] == "parquet":
        final = value_to_parquet(store, schedule, p["path"], params, layout=p["layout"],
                                 **kw)
        return Backtest(schedule, params, path=final, seconds=time.perf_counter() - t0,
                        **done)
    rows, summ = value_in_memory(store, schedule, keep_rows=p["output"] == "table", **kw)
    return Backtest(schedule, params, rows=rows, seconds=time.perf_counter() - t0,
                    _summary=summ, **done)


# --------------------------------------------------------------------------- all at once
def _named(source: Any) -> Any:
    """A source as metrics.json can name it (in-memory frames by their type)."""
    return source if isinstance(source, (str, os.PathLike)) else type(source).__name__


def run(**params: Any) -> Backtest:
    """Load the market, build the schedule and run the backtest (the one call a script or
    papermill makes). Parameters (``params.DEFAULTS``): the market (``source``, ``assets``,
    ``start_year``/``end_year``: None for 2001-2024 on the synthetic market, else the years
    the data covers; ``seed``, ``vol_premium``, ``vol``, ``adjust``), the schedule
    (``per_month``, ``tenor``) and :func:`backtest`'s (``output_path`` is its ``path``)."""
    p = check_run(params)
    store, names = load_market(p["source"], p["assets"], p["start_year"], p["end_year"],
                               p["tenor"], p["seed"], p["vol_premium"], p["vol"],
                               p["adjust"])
    y0, y1 = data_years(store, names, p["start_year"], p["end_year"], p["source"])
    sched = build_schedule(store, names, y0, y1, p["per_month"], p["tenor"])
    bt = backtest(store, sched, rate=p["rate"], side=p["side"], hedge=p["hedge"],
                  impl=p["impl"], device=p["device"], n_jobs=p["n_jobs"],
                  backend=p["backend"], scheduler=p["scheduler"], chunk_size=p["chunk_size"],
                  output=p["output"], path=p["output_path"], progress=p["progress"],
                  layout=p["layout"], **{k: p[k] for k in OPTIONS})
    bt.params = {"source": _named(p["source"]), "vol": p["vol"], "adjust": p["adjust"],
                 "seed": p["seed"], "vol_premium": p["vol_premium"], **bt.params}
    return bt


# --------------------------------------------------------------------------- one straddle
def value_path(price, vol, *, rate: float = 0.0, side: str = "long", hedge: bool = True,
               impl: str = "auto", **options) -> pd.DataFrame:
    """The rows of one straddle over a given life: ``price[0]`` is the entry (and the
    strike), ``price[tenor]`` the expiry; ``vol`` the implied vol of each day. For checks
    (put-call parity, finite differences of the greeks) and what-ifs. ``options``:
    ``structure``, ``wing``, ``spread``, ``hedge_cost_bps``, ``exit`` (``spec.py``)."""
    price = np.ascontiguousarray(price, dtype=np.float64)
    vol = np.ascontiguousarray(vol, dtype=np.float64)
    if price.ndim != 1 or price.shape != vol.shape or price.shape[0] < 2:
        raise ValueError("price and vol must be 1-d arrays of the same length >= 2")
    if not (np.isfinite(price).all() and (price > 0).all()):
        raise ValueError("price must be finite and > 0")
    if not (np.isfinite(vol).all() and (vol > 0).all()):
        raise ValueError("vol must be finite and > 0")
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"value_path: unknown option(s) {sorted(unknown)}; known: "
                         f"{list(OPTIONS)}")
    p = check_backtest(dict(rate=rate, side=side, hedge=hedge, impl=impl, **options))
    spec = parse_spec(*(p[k] for k in OPTIONS))
    impl, dev, engine = resolve(p["impl"], "auto")
    rate, side_v, hedge = p["rate"], SIDES[p["side"]], p["hedge"]
    tenor = price.shape[0] - 1
    dates = pd.bdate_range("2000-01-03", periods=tenor + 1).as_unit("ns").asi8
    if impl == "reference":   # the reference reads its dict: the path as the original's
        days = [str(d.date()) for d in pd.DatetimeIndex(dates)]
        prices = {f"path|price|{d}": float(x) for d, x in zip(days, price)}
        prices.update({f"path|vol|{d}": float(v) for d, v in zip(days, vol)})
        res = _reference(spec, prices, ["path"], 2000, 2000, 1, tenor, rate, side_v, hedge)
        return reference_tables(res, ["path"], spec)[0].to_pandas()
    one = lambda v, t: np.array([v], t)  # noqa: E731
    sched = Schedule(["path"], np.array([0]), 2000, 2000, 1, tenor, one(0, np.int32),
                     one(2000, np.int16), one(1, np.int8), one(0, np.int8), one(0, np.int64),
                     one(0, np.int64))
    if not spec.is_seed:
        rows, _ = structures.value_chunk(structures.check_device(impl, dev), price, vol,
                                         dates, np.array([0], np.int64), sched, rate, side_v,
                                         hedge, spec, core.day_tables(tenor, rate))
        return layout.rows_table(rows, ["path"]).to_pandas()
    out = core.empty_rows(tenor + 1)
    engine(price, vol, dates, np.array([0], np.int64), sched, rate, side_v, hedge,
           core.day_tables(tenor, rate), out, False)
    return rows_table(out, ["path"]).to_pandas()


# --------------------------------------------------------------------------- warm-up
def _warm_numba() -> None:
    value_path(np.array([100.0, 101.0, 99.0]), np.full(3, 0.2), impl="numba")


#: what loads (or compiles) each engine's kernels; the reference and NumPy have none
_WARM = {"numba": _warm_numba, "cupy": gpu_kernels}


def warm_up(impl: str = "auto", device: str = "auto", **options) -> None:
    """Load (or compile, the first time on a machine) the kernels ``impl`` resolves to on a
    toy straddle, so that a timed run that follows measures the valuation, not the JIT.
    ``options`` (``structure`` .. ``exit``): the run's; other than the seed's, the Numba
    kernel of ``structures_nb`` is loaded too."""
    import tqdm.auto  # noqa: F401  (the parallel layer's progress bar: a slow first import)
    p = check_backtest(dict(impl=impl, device=device, **options))
    spec = parse_spec(*(p[k] for k in OPTIONS))
    impl, _, _ = resolve(p["impl"], p["device"])
    _WARM.get(impl, lambda: None)()
    if impl == "numba" and not spec.is_seed:
        value_path(np.array([100.0, 101.0, 99.0]), np.full(3, 0.2), impl="numba",
                   **spec.params())


# --------------------------------------------------------------------------- timings
def _answers(res: Any, assets: list[str], spec: Spec) -> tuple[pa.Table | None, Any]:
    """(rows, summary) of a timed call: a Backtest, or the reference's own lists."""
    if isinstance(res, Backtest):
        return res.rows, res.summary
    return reference_tables(res, assets, spec)


def _same_answers(assets: list[str], spec: Spec):
    def same(a, b) -> bool:
        (ra, sa), (rb, sb) = _answers(a, assets, spec), _answers(b, assets, spec)
        try:
            if ra is not None and rb is not None:
                core.compare_rows(rb, ra, rtol=RTOL)
            core.compare_rows(sb, sa, rtol=RTOL)
        except AssertionError:
            return False
        return True
    return same


def compare_impls(store: data.PriceStore, schedule: Schedule,
                  impls=("reference", "numpy", "numba"), n_jobs=(1,), repeats: int = 3,
                  rate: float = 0.0, side: str = "long", hedge: bool = True,
                  backend: str = "threads", output: str = "table",
                  device: str = "auto", **options) -> pd.DataFrame:
    """The impls timed on the same straddles, from the price store to the rows delivered
    (the reference: its Python row lists, as the original; the fast paths: an Arrow table),
    in one run (:func:`qbt_lib.bench.compare_impls`: median of ``repeats`` after a warm-up,
    min, max, ``throughput`` in straddle-days/s, speed-up over the first row, answers equal
    to the first row's within ``core.RTOL``), one row per impl (and worker count).

    The reference's price dict is built once, outside the timing (the original loaded it
    before its backtest too). ``n_jobs``: the fast paths at each worker count (rows labelled
    ``"numba, n_jobs=4"``; ``efficiency`` against the impl's ``n_jobs=1``).
    ``output="summary"`` values every row but keeps only the summary (for schedules too
    large to hold as a table). ``options`` (``structure`` .. ``exit``, ``spec.py``): the same
    on every side (the reference: ``structures_ref``)."""
    p = check_backtest(dict(rate=rate, side=side, hedge=hedge, backend=backend,
                            output=output, device=device, **options))
    spec = parse_spec(*(p[k] for k in OPTIONS))
    repeats = Interval(int, 1, None)("repeats", repeats)
    jobs = [check_backtest(dict(n_jobs=nj))["n_jobs"] for nj in n_jobs]
    runs, meta = {}, {}
    for impl in impls:
        impl = check_backtest(dict(impl=impl))["impl"]
        if impl == "reference":
            prices = reference.build_prices_dict(store, schedule.assets)
            grid = (prices, schedule.assets, schedule.start_year, schedule.end_year,
                    schedule.per_month, schedule.tenor, p["rate"], SIDES[p["side"]],
                    p["hedge"])
            runs[impl] = lambda grid=grid: _reference(spec, *grid)
            meta[impl] = (impl, 1)
            continue
        for nj in jobs:
            label = impl if len(jobs) == 1 else f"{impl}, n_jobs={nj}"
            runs[label] = lambda impl=impl, nj=nj: backtest(
                store, schedule, rate=p["rate"], side=p["side"], hedge=p["hedge"], impl=impl,
                device=p["device"], n_jobs=nj, backend=p["backend"], output=p["output"],
                progress=False, **spec.params())
            meta[label] = (impl, nj)
    df = qbench.compare_impls(runs, size=schedule.straddle_days, unit="straddle-days",
                              same=_same_answers(schedule.assets, spec), repeats=repeats)
    df.index.name = "run"
    df.insert(0, "impl", [meta[k][0] for k in df.index])
    df.insert(1, "n_jobs", [meta[k][1] for k in df.index])
    df["straddles"] = len(schedule)
    df["straddles_per_s"] = len(schedule) / df["seconds"]
    if (df["n_jobs"] > 1).any():
        one = df[df["n_jobs"] == 1].groupby("impl")["throughput"].first()
        df["efficiency"] = df["throughput"] / (df["n_jobs"] * df["impl"].map(one))
    return df
