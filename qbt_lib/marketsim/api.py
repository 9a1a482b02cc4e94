"""marketsim's entry points: :func:`run` (alias :func:`analyze`), :func:`warm_up`,
:func:`compare_impls`, and the start-up measurement of the seed's timing table.

``run`` checks the parameters (``params.py``), loads the last ``context + simulations +
eval_days`` bars of every symbol through ``qbt_lib.data`` (``market.py``), picks the engine
from one dispatch table through :func:`qbt_lib.device.dispatch`, runs it and wraps the
arrays in a :class:`~.results.MarketSimResult`. With ``oos_days``/``forecast_next`` the same
engine runs once more on the extended data of ``oos.py`` and the walk is added
(``result.oos``, ``result.next_session``); ``user_strategies`` (``user.py``) are checked for
look-ahead first and scored beside the built-ins on the CPU engines.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import paths
from ..bench import compare_impls as time_impls
from ..device import dispatch, gpu_available
from ..parallel import effective_backend, pmap, resolve_n_jobs
from . import fast, gpu, oos, reference, reference_research, user
from .enums import STRATEGIES, STRATEGY_ID, TRADING_DAYS
from .market import asset_classes, load_source, price_matrix
from .models import ARBootstrap, EmpiricalBootstrap, Forecaster, symbol_key
from .params import AUTO_GPU, WHY_CPU, Config, bars_needed, check_params
from .results import MarketSimResult, same_answers, summary_tables, write_results


# --------------------------------------------------------------------------- engines
def symbol_tasks(frames: Mapping[str, pd.DataFrame], cfg: Config, forecaster: Forecaster,
                 classes: Mapping[str, str], own: Sequence = ()) -> list[dict]:
    """One task per symbol: its last ``cfg.bars_needed`` bars and its class's fee/annualiser
    (and the user strategies ``own``, scored after the built-ins)."""
    ids = np.array([STRATEGY_ID[s] for s in cfg.strategies], dtype=np.int64)
    need = cfg.bars_needed
    tasks = []
    for sym, df in frames.items():
        a = price_matrix(sym, df, need)
        cls = classes[sym]
        tasks.append(dict(
            prices=np.ascontiguousarray(a[:, -need:]), symbol_key=symbol_key(cfg.seed, sym),
            simulations=cfg.simulations, eval_days=cfg.eval_days, context=cfg.context,
            num_samples=cfg.num_samples, strategy_ids=ids, fee=cfg.fees[cls],
            ann=float(np.sqrt(TRADING_DAYS[cls])), long_only=cls == "crypto",
            forecaster=forecaster))
        if own:
            tasks[-1]["user"] = tuple(own)
    return tasks


def _stack(results: list[dict]) -> dict:
    return {k: np.stack([r[k] for r in results]) for k in results[0]}


def _user_inputs(out: dict, eval_days: int) -> tuple:
    """Forecast, band width and actual returns of the traded days of every window."""
    D = eval_days - 1
    return (np.ascontiguousarray(out["point"][:, :D]),
            np.ascontiguousarray(out["hi"][:, :D] - out["lo"][:, :D]),
            np.ascontiguousarray(out["actual"][:, :D]))


def _run_reference(frames, tasks, cfg, p) -> tuple[dict, dict]:
    """Per symbol, per simulation, per day in Python/pandas, sequentially."""
    out = []
    for df, t in zip(frames.values(), tasks):
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
    return _stack(out), {"backend": "sequential", "n_jobs": 1}


def _run_fast_task(task: dict) -> dict:
    task = dict(task)
    own = task.pop("user", ())
    out = fast.analyze_symbol(**task)
    if own:
        out = user.append(out, user.evaluate_windows(
            own, *_user_inputs(out, task["eval_days"]), task["fee"], task["ann"],
            task["long_only"]))
    return out


def _run_numba(frames, tasks, cfg, p) -> tuple[dict, dict]:
    """The Numba kernels per symbol; symbols through ``qbt_lib.parallel.pmap``."""
    eff, n = effective_backend(p["backend"], p["n_jobs"], len(tasks))
    out = pmap(_run_fast_task, tasks, backend=p["backend"], n_jobs=p["n_jobs"],
               scheduler=p["scheduler"], progress=p["progress"], desc="marketsim",
               unit="symbol")
    return _stack(out), {"backend": eff, "n_jobs": n}


def _run_numpy(frames, tasks, cfg, p) -> tuple[dict, dict]:
    """The batched array code of ``gpu.py`` run by NumPy on the CPU."""
    return gpu.analyze_batch(tasks, chunk=p["gpu_chunk"], xp=np), {"backend": "numpy",
                                                                    "n_jobs": 1}


def _run_cupy(frames, tasks, cfg, p) -> tuple[dict, dict]:
    """One batched CuPy pass over symbols x simulations x days."""
    return gpu.analyze_batch(tasks, chunk=p["gpu_chunk"]), {"backend": "cupy", "n_jobs": 1}


#: the dispatch table: impl -> engine ``(frames, tasks, cfg, params) -> (arrays, timings)``
ENGINES = {"reference": _run_reference, "numpy": _run_numpy, "numba": _run_numba,
           "cupy": _run_cupy}
#: a plug-in forecaster or own strategies: the batched array engines run the built-in AR
#: model and the seven built-in strategies only
PLUGIN_ENGINES = {k: ENGINES[k] for k in ("reference", "numba")}


def _warm_up_cupy(forecaster: Forecaster, research: bool = False) -> float:
    t = time.perf_counter()
    gpu.warmup()
    if research:  # the walk itself runs on the CPU
        oos.warmup()
    return time.perf_counter() - t


#: what each engine compiles or loads before the timed analysis
WARM_UPS = {"numba": lambda forecaster, research=False: warm_up(forecaster, research),
            "cupy": _warm_up_cupy}


def engines_for(forecaster: Forecaster, own: Sequence = ()) -> tuple[str, dict]:
    """The dispatch table for a forecaster (and own strategies), with the name its errors
    use."""
    if type(forecaster) is not ARBootstrap:
        return f"marketsim with the plug-in forecaster {forecaster!r}", PLUGIN_ENGINES
    if own:
        return f"marketsim with own strategies {[u.name for u in own]}", PLUGIN_ENGINES
    return "marketsim", ENGINES


def _out_of_sample(frames, cfg: Config, p: dict, forecaster, classes, own, impl: str,
                   engine) -> oos.OOSResult:
    """The extended run (one placeholder bar, ``simulations + oos_days`` simulations) by the
    same engine, then the walk of every symbol (``oos.py``)."""
    days = p["oos_days"]
    ext = oos.extended_frames(frames, cfg.context, cfg.simulations, cfg.eval_days, days)
    cfg_ext = replace(cfg, simulations=cfg.simulations + days)
    tasks = symbol_tasks(ext, cfg_ext, forecaster, classes, own)
    arrays, _ = engine(ext, tasks, cfg_ext, p)
    walk = reference_research.walk_symbol if impl == "reference" else oos.walk_symbol
    return oos.assemble(frames, arrays, tasks, list(cfg.strategies) + [u.name for u in own],
                        own, cfg.simulations, days, p["forecast_next"], walk)


# --------------------------------------------------------------------------- run
def run(source: Any = "synthetic", symbols: Any = None, **params: Any) -> MarketSimResult:
    """Run the analysis over a universe and return its tables (:class:`MarketSimResult`).

    ``source``/``symbols``/``start``/``end``/``adjust``: see :func:`~.market.load_source`;
    only the last ``context + simulations + eval_days`` bars up to ``end`` are read (and
    validated). ``asset_classes``: ``{symbol: "crypto" | "equity"}`` (fees and the
    long-only rule; else the data's ``asset_class`` column, else the name guess of
    :func:`~.market.is_crypto`). ``forecaster``: a :class:`Forecaster` (default
    ``ARBootstrap(ar_order)``). ``impl``: ``auto`` (CuPy on a usable GPU, else Numba),
    ``reference`` (sequential, Python/pandas), ``numba``, ``cupy`` or ``numpy`` (the CuPy
    code on NumPy); ``n_jobs``, ``backend`` and ``scheduler`` (the Dask scheduler of
    ``backend="dask"``) apply to ``numba``; ``gpu_chunk`` bounds the symbols per GPU batch.
    ``warm_up``: compile the kernels before the timed analysis. ``seed`` keys the bootstrap
    draws. ``output_dir``: if given, the tables and ``metrics.json`` are written there.
    Every parameter and its default: :data:`~.params.DEFAULTS`. Raises ``ValueError``
    naming the parameter, or the symbol and row, on bad input.
    """
    p, cfg = check_params(source=source, symbols=symbols, **params)
    forecaster, own = p["forecaster"], p["user_strategies"]
    if type(forecaster) is not ARBootstrap and p["device"] == "gpu":
        raise ValueError("device='gpu' runs the built-in AR forecaster only; "
                         f"{forecaster!r} runs on the CPU (device='cpu')")
    if own and p["device"] == "gpu":
        raise ValueError("device='gpu' runs the built-in strategies only; user strategies "
                         f"{[u.name for u in own]} run on the CPU (device='cpu')")
    name, table = engines_for(forecaster, own)
    impl, dev, engine = dispatch(name, table, p["impl"], p["device"], auto_gpu=AUTO_GPU,
                                 why_cpu=WHY_CPU)
    t_guard = time.perf_counter()
    for u in own:  # before any data is read: a peeking strategy stops the run here
        user.check_lookahead(u)
    guard_s = time.perf_counter() - t_guard
    extended = p["oos_days"] > 0 or p["forecast_next"]
    frames = load_source(p["source"], p["symbols"], start=p["start"], end=p["end"],
                         tail=bars_needed(cfg.simulations, cfg.eval_days, cfg.context,
                                          p["oos_days"] if extended else 0),
                         adjust=p["adjust"])
    classes = asset_classes(frames, p["asset_classes"])
    if not frames:
        raise ValueError("symbols: the universe is empty")
    names = list(frames)
    timings: dict[str, Any] = {"impl": impl, "device": dev}
    if own:
        timings["guard_s"] = guard_s
    if p["warm_up"] and impl in WARM_UPS:
        timings["warm_up_s"] = WARM_UPS[impl](forecaster, extended or bool(own))
    t0 = time.perf_counter()  # the analysis: validation, per-symbol work, tables
    tasks = symbol_tasks(frames, cfg, forecaster, classes, own)
    arrays, how = engine(frames, tasks, cfg, p)
    timings.update(how)
    crypto = np.array([t["long_only"] for t in tasks])
    strategies = list(cfg.strategies) + [u.name for u in own]
    tables = summary_tables(names, arrays, strategies, crypto)
    timings["analysis_s"] = time.perf_counter() - t0
    walk = None
    if extended:
        t1 = time.perf_counter()
        walk = _out_of_sample(frames, cfg, p, forecaster, classes, own, impl, engine)
        timings["oos_s"] = time.perf_counter() - t1
    recorded = dict(symbols=names, simulations=cfg.simulations, eval_days=cfg.eval_days,
                    context=cfg.context, ar_order=cfg.ar_order, num_samples=cfg.num_samples,
                    strategies=strategies, fees=cfg.fees, seed=cfg.seed,
                    forecaster=repr(forecaster), impl=impl, device=dev,
                    oos_days=p["oos_days"], forecast_next=p["forecast_next"],
                    user_strategies=[repr(u) for u in own])
    if p["output_dir"] is not None:
        recorded["output_dir"] = str(p["output_dir"])
    res = MarketSimResult(*tables, arrays, recorded, timings,
                          [frames[n].index[-cfg.bars_needed:] for n in names], walk,
                          None if walk is None else walk.next_session)
    if p["output_dir"] is not None:
        write_results(res, p["output_dir"])
    return res


#: the domain verb: ``analyze`` reads better in the notebook
analyze = run


# --------------------------------------------------------------------------- warm-up
def warm_up(forecaster: Forecaster | None = None, research: bool = False) -> float:
    """Compile (cold cache) or load (warm cache) every Numba kernel before the timed loop,
    by running each code path once on a tiny input with the dtypes of the real calls
    (``research``: also the kernels of the out-of-sample walk and own strategies, which
    :func:`run` asks for when an option needs them). Returns the seconds it took. (The GPU
    engine's is ``gpu.warmup``; :func:`run` calls the engine's own when ``warm_up=True``.)"""
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
        oos.warmup()
    return time.perf_counter() - t


def warmup(forecaster: Forecaster | None = None, research: bool = False) -> float:
    """Deprecated name of :func:`warm_up`."""
    return warm_up(forecaster, research)


# --------------------------------------------------------------------------- timing
_LABELS = {"sequential": "numba sequential", "threads": "numba threads ({n})",
           "loky": "numba processes (loky, {n})", "dask": "numba dask ({n} workers)"}


def compare_impls(frames: Mapping[str, pd.DataFrame], *, n_jobs: Any = -1,
                  backends: Sequence[str] = ("sequential", "threads", "loky"),
                  include_gpu: bool = True, reference_symbols: int = 1, repeats: int = 3,
                  scheduler: Any = "local", **params: Any) -> pd.DataFrame:
    """Time marketsim's engines, each table block on the same work (warm kernels, the
    pools started by a first untimed call):

    * ``work="reference subset"``: the reference and numba on one core on the first
      ``reference_symbols`` symbols (the reference's cost is linear in symbols x
      simulations; the universe would take minutes) -- the one named speed-up;
    * ``work="universe"``: numba on every backend of ``backends`` (``n_jobs`` workers) and
      CuPy when a GPU is usable (``include_gpu``), against numba sequential.

    ``params``: the analysis parameters (``simulations``, ``context``, ...). Returns the
    :func:`qbt_lib.bench.compare_impls` table (median/min/max seconds of ``repeats``,
    throughput in symbol-sims/s, speed-up, same answers) with columns ``work``,
    ``impl_name``, ``n_jobs`` and ``symbols``."""
    params = {k: v for k, v in params.items() if k not in ("impl", "output_dir")}
    params.update(progress=False, warm_up=False)
    n = resolve_n_jobs(n_jobs)
    sims = check_params(**params)[1].simulations
    names = list(frames)
    sub = {s: frames[s] for s in names[:max(1, int(reference_symbols))]}

    def call(data, impl, **kw):
        return lambda: run(data, impl=impl, **params, **kw)

    cpu1 = dict(device="cpu", backend="sequential", n_jobs=1)
    blocks = [("reference subset", sub, {
        "reference": ("reference", 1, call(sub, "reference", device="cpu")),
        f"numba, one core ({len(sub)} symbol{'s' * (len(sub) > 1)})":
            ("numba", 1, call(sub, "numba", **cpu1))})]
    uni = {}
    for b in backends:
        jobs = 1 if b == "sequential" else n
        uni[_LABELS[b].format(n=jobs)] = ("numba", jobs, call(
            frames, "numba", device="cpu", backend=b, n_jobs=jobs, scheduler=scheduler))
    if include_gpu and gpu_available():   # CuPy compiles in time_impls' untimed first call
        uni["cupy (GPU)"] = ("cupy", 1, call(frames, "cupy", device="gpu"))
    blocks.append(("universe", frames, uni))
    tables = []
    for work, data, runs in blocks:
        t = time_impls({k: fn for k, (_, _, fn) in runs.items()}, size=len(data) * sims,
                       unit="symbol-sims", same=same_answers, repeats=repeats)
        t.insert(0, "work", work)
        t["impl_name"] = [runs[k][0] for k in t.index]
        t["n_jobs"] = [runs[k][1] for k in t.index]
        t["symbols"] = len(data)
        tables.append(t)
    return pd.concat(tables)


def compare_engines(frames: Mapping[str, pd.DataFrame], *, n_jobs: Any = -1,
                    backends: Sequence[str] = ("sequential", "threads", "loky"),
                    include_gpu: bool = True, **params: Any) -> dict:
    """Deprecated: ``{configuration: seconds}`` of the universe block of
    :func:`compare_impls`."""
    t = compare_impls(frames, n_jobs=n_jobs, backends=backends, include_gpu=include_gpu,
                      **params)
    return t.loc[t["work"] == "universe", "seconds"].to_dict()


_STARTUP_PROBE = """
import json, time
t0 = time.perf_counter()
from qbt_lib import marketsim
t1 = time.perf_counter()
w = marketsim.warm_up()
print(json.dumps({"import_s": t1 - t0, "warm_up_s": w, "total_s": time.perf_counter() - t0}))
"""


def startup_times(cache_dir: str | os.PathLike | None = None, cold: bool = True) -> dict:
    """Start-up measured in fresh processes: import the workload (NumPy, pandas, Numba),
    then :func:`warm_up` (every kernel compiled or loaded); ``total_s`` is both.
    ``cold``: with an empty ``NUMBA_CACHE_DIR``; ``cached``: again with the same directory,
    now filled (or with ``cache_dir`` if given, in which case ``cold=False`` skips the cold
    run). ``process_s`` adds the interpreter's start."""
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
