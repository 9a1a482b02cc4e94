"""The entry points: :func:`run` (alias :func:`scan`) validates, loads, dispatches and wraps;
:func:`scan_series` / :func:`find_impulses` search one series; :func:`warm_up` loads the
kernels; :func:`compare_impls` times the engines on the same start bar."""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import bench as _bench
from ..device import dispatch
from ..params import Interval, as_list, check
from . import reference
from .engines import ENGINES, SEARCH
from .enums import RULE_SETS
from .params import (AUTO_GPU, CONSTRAINTS, DEFAULTS, SERIES_CONSTRAINTS, WHY_CPU)
from .prices import as_store, check_prices, describe_source, oriented
from .reference import n_tuples
from .results import WaveScan, assemble
from .shape import plan


def _resolve(table: dict, impl: str, device: str) -> tuple[str, str, Any]:
    """``(impl, device, engine)`` that will run: the one dispatch rule of qbt
    (:func:`qbt_lib.device.dispatch`) with waves' GPU policy."""
    return dispatch("waves", table, impl, device, auto_gpu=AUTO_GPU, why_cpu=WHY_CPU)


# --------------------------------------------------------------------------- the scan
def run(source: Any = "synthetic", **params: Any) -> WaveScan:
    """Scan many symbols for impulses; returns a :class:`WaveScan`.

    ``source``: any source ``qbt_lib.data.load`` takes (a frame or ``{symbol: frame}`` with
    ``high``/``low`` columns and a DatetimeIndex, a CSV/Parquet path, ``"sp500"``,
    ``"synthetic"`` with ``n_bars``/``seed``) or a ``PriceStore``; ``symbols``/``start``/
    ``end``/``adjust`` select and cut it (every used bar is validated).
    ``window``/``overlap``/``max_start_points``: the scan shape (package doc).
    ``up_to``: skips 0..up_to-1 per wave. ``rules``: "compat", "diagonal" or both;
    ``directions``: "up", "down" or both; ``top_k``: best patterns kept per window (0: all).
    ``impl``: "auto" (numba on the CPU: see ``params.AUTO_GPU``), "numba" (symbols x
    start-bar chunks over the parallel layer, ``n_jobs``/``backend``/``scheduler``, each
    worker memory-mapping the price store), "cupy" (one batched search over all symbols on
    the GPU, ``gpu_batch_jobs`` start bars per batch), "numpy" (the same batched search on
    NumPy), "reference" (the original algorithm: slow, for small checks); the old name
    "fast" is resolved like "auto". ``device``: "cpu", "gpu" or "auto".
    Defaults: ``params.DEFAULTS``; an unknown or bad parameter is an error naming it.
    """
    t_start = time.perf_counter()
    p = check({"source": source, **params}, CONSTRAINTS, DEFAULTS, workload="waves")
    impl, device, engine = _resolve(ENGINES, p["impl"], p["device"])
    store = as_store(p["source"], p["symbols"], p["start"], p["end"], p["adjust"],
                     p["n_bars"], p["seed"])
    dirs, rules = p["directions"], p["rules"]
    jobs = plan(store, p["window"], p["overlap"], p["max_start_points"], dirs)
    results, backend_used = engine(
        store, jobs, dirs, [RULE_SETS.index(r) for r in rules], p["up_to"], p["top_k"],
        n_jobs=p["n_jobs"], backend=p["backend"], scheduler=p["scheduler"],
        progress=p["progress"], batch_jobs=p["gpu_batch_jobs"])
    patterns, rejects, built, kept = assemble(store, jobs, dirs, rules, results, p["top_k"])
    searches = sum(len(info["jobs"][d][0]) for info in jobs for d in dirs) * len(rules)
    seconds = time.perf_counter() - t_start
    tuples = searches * n_tuples(p["up_to"])
    summary = dict(symbols=[info["sym"] for info in jobs], start_bars=searches,
                   patterns=len(patterns), seconds=seconds, tuples=tuples,
                   tuples_per_second=tuples / seconds if seconds else None,
                   monowaves_built=int(built.sum()), chains_kept=kept.tolist(),
                   backend=backend_used, device=device, n_jobs=p["n_jobs"])
    return WaveScan(patterns=patterns, rejects=rejects, summary=summary,
                    params={**p, "source": describe_source(p["source"]), "impl": impl,
                            "device": device})


#: the domain verb: what the notebook and older code call the run
scan = run


# --------------------------------------------------------------------------- one series
def scan_series(low: Any, high: Any, starts: Sequence[int] | None = None, up_to: int = 15,
                rules: str = "compat", direction: str = "up", impl: str = "auto",
                device: str = "cpu", ends: Sequence[int] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Impulses of one series from many start bars (default: every bar).

    ``ends`` (default: the series length) is each start bar's data end (exclusive), so a
    window ``[w0, w1)`` is ``ends = w1``. Returns ``(job, pivots)``: for each pattern the
    index into ``starts`` and its six pivot bars, ordered by job then pivots.
    """
    lo, hi = check_prices(low, high)
    n = len(lo)
    p = check(dict(up_to=up_to, rules=rules, direction=direction, impl=impl, device=device),
              SERIES_CONSTRAINTS, workload="waves")
    st = np.arange(n, dtype=np.int64) if starts is None else np.asarray(starts, dtype=np.int64)
    if st.size and (st.min() < 0 or st.max() >= n):
        bad = int(st[(st < 0) | (st >= n)][0])
        raise ValueError(f"start bar {bad} is outside the data (0..{n - 1})")
    en = np.full(st.shape, n, np.int64) if ends is None else np.asarray(ends, dtype=np.int64)
    if en.shape != st.shape or (en.size and ((en <= st).any() or (en > n).any())):
        raise ValueError(f"ends must give each start bar a data end in (start, {n}]")
    _, _, search = _resolve(SEARCH, p["impl"], p["device"])
    L, H = oriented(lo, hi, p["direction"])
    job, piv, *_ = search(L, H, st, en, p["up_to"], RULE_SETS.index(p["rules"]))
    return job, piv


def find_impulses(low: Any, high: Any, start: int, up_to: int = 15, rules: str = "compat",
                  direction: str = "up", impl: str = "auto") -> np.ndarray:
    """Every impulse from bar ``start`` (data = the whole arrays), as an ``(n, 6)`` int64
    array of pivot bars sorted row-wise - the original's ``find_impulsive_wave`` over all
    ``WaveOptionsGenerator5(up_to)`` tuples plus the rule set."""
    lo, hi = check_prices(low, high)
    start = Interval(int, 0, len(lo) - 1)("start", start)
    return scan_series(lo, hi, starts=[start], up_to=up_to, rules=rules, direction=direction,
                       impl=impl)[1]


# --------------------------------------------------------------------------- before/after
def warm_up(impl: str = "auto", device: str = "auto", up_to: int = 15) -> float:
    """Load (or compile, the first time on a machine: ~13 s) the search kernels a scan with
    ``impl``/``device`` uses, on a toy series; returns the seconds it took. Call it before a
    timed :func:`run` so the scan measures the search, not the JIT, and report it apart
    (the reference has nothing to load)."""
    t = time.perf_counter()
    p = check(dict(impl=impl, device=device, up_to=up_to), SERIES_CONSTRAINTS,
              workload="waves")
    import tqdm.auto  # noqa: F401  (the parallel layer's progress bar: a slow first import)
    impl, _, search = _resolve(SEARCH, p["impl"], p["device"])
    if impl != "reference":
        x = np.cumsum(np.random.default_rng(0).standard_normal(64)) + 100.0
        lo, hi = x - 1.0, x + 1.0
        st = np.array([int(np.argmin(lo))], np.int64)
        en = np.array([len(lo)], np.int64)
        for rs in range(len(RULE_SETS)):
            search(lo, hi, st, en, p["up_to"], rs)
    return time.perf_counter() - t


def compare_impls(low: Any, high: Any, start: int, up_to: int = 15,
                  impls: Any = ("numba",), *, max_seconds: float = 5.0, repeats: int = 200,
                  rules: str = "compat", device: str = "auto") -> pd.DataFrame:
    """The engines timed on the same work: one start bar (the bars as given are its data),
    every skip tuple of ``up_to``, ``rules``; one row per impl, the reference first.

    The reference (the baseline) tries the tuples one by one, once, stopped after
    ``max_seconds``: its rate counts the tuples it tried (``complete``: it tried them all).
    Each of ``impls`` runs the whole search ``repeats`` times after a warm-up call
    (:func:`qbt_lib.bench.compare_impls`: median ``seconds``, ``min``, ``max``).
    ``tuples_per_s`` counts all ``n_tuples(up_to)`` tuples per start bar, as the original
    did; ``speedup``: tuples/s over the reference's; ``same_answers``: the engine's patterns
    are the reference's (a superset of them when it was stopped early).
    """
    lo, hi = check_prices(low, high)
    start = Interval(int, 0, len(lo) - 1)("start", start)
    p = check(dict(up_to=up_to, rules=rules, device=device), SERIES_CONSTRAINTS,
              workload="waves")
    max_seconds = Interval(float, 0, None, closed="neither")("max_seconds", max_seconds)
    repeats = Interval(int, 1, None)("repeats", repeats)
    names = [CONSTRAINTS["impl"]("impls", i) for i in as_list("impls", impls)]
    up_to, rs, total = p["up_to"], RULE_SETS.index(p["rules"]), n_tuples(p["up_to"])

    t = time.perf_counter()
    ref_found, tried = reference.find_impulses(lo, hi, start, up_to, p["rules"],
                                               max_seconds=max_seconds)
    t_ref = time.perf_counter() - t
    complete = tried == total
    ref = set(ref_found)
    rows = [dict(impl="reference", up_to=up_to, tuples=tried, seconds=t_ref, min=t_ref,
                 max=t_ref, repeats=1, tuples_per_s=tried / t_ref, speedup=1.0,
                 patterns=len(ref), complete=complete, same_answers=True)]

    st, en = np.array([start], np.int64), np.array([len(lo)], np.int64)
    found: dict[str, Any] = {}

    def timed(name: str, search: Any):
        def call():
            found[name] = search(lo, hi, st, en, up_to, rs)[1]
            return found[name]
        return call

    runs = {}
    for name in names:
        impl, _, search = _resolve(SEARCH, name, p["device"])
        if impl != "reference":
            runs[impl] = timed(impl, search)
    if runs:
        table = _bench.compare_impls(runs, size=total, unit="tuples", repeats=repeats)
        for impl, r in table.iterrows():
            got = {tuple(int(x) for x in row) for row in found[impl]}
            rate = total / r["seconds"]
            rows.append(dict(impl=impl, up_to=up_to, tuples=total, seconds=r["seconds"],
                             min=r["min"], max=r["max"], repeats=r["repeats"],
                             tuples_per_s=rate, speedup=rate / rows[0]["tuples_per_s"],
                             patterns=len(got), complete=True,
                             same_answers=(ref == got) if complete else ref <= got))
    return pd.DataFrame(rows).set_index("impl")
