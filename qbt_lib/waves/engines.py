"""The engines, one per ``impl``: the dispatch tables ``api`` resolves through
:func:`qbt_lib.device.dispatch` (``params.AUTO_GPU`` says what ``"auto"`` picks).

Two tables, one per size of work, with the same four impls:

* :data:`SEARCH` - one series, many start bars: ``search(L, H, starts, ends, up_to,
  rule_set) -> (job, pivots, rejects, built, kept)`` (``scan_series``, ``compare_impls``,
  ``warm_up``, and the scan's chunks);
* :data:`ENGINES` - a whole scan (many symbols, directions and rule sets) over a price store:
  ``reference`` and ``numba`` cut every symbol's start bars into fixed chunks of
  :data:`CHUNK_JOBS` and run them through the parallel layer (each worker memory-maps the
  store); ``numpy`` and ``cupy`` run ``gpu.search`` once over all symbols (batched).

Every engine returns the same raw outputs, so ``results.assemble`` builds the same table
from any of them: ``{(symbol index, direction): [chunk, ...]}``, a chunk being a list over
the rule sets of ``(job, pivots, rejects, built, kept)`` with ``job`` indexing the symbol's
job list for that direction.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from .. import parallel
from . import gpu, nb, reference
from .enums import N_CHECKS, RULE_SETS
from .prices import oriented, symbol_bars
from .score import score_patterns, top_k_rows

#: start bars per parallel task: fixed, so results never depend on n_jobs or backend
CHUNK_JOBS = 1024


# --------------------------------------------------------------------------- one series
def search_reference(L, H, starts, ends, up_to, rule_set):
    """The original algorithm on each job's own data (the bars up to its end); it counts
    nothing, so its rejects/built/kept are zeros."""
    jobs, pivs = [], []
    for j, (s, e) in enumerate(zip(np.asarray(starts).tolist(), np.asarray(ends).tolist())):
        found, _ = reference.find_impulses(L[:e], H[:e], s, up_to, RULE_SETS[rule_set])
        jobs += [j] * len(found)
        pivs += found
    piv = np.array(pivs, dtype=np.int64).reshape(-1, 6)
    return (np.array(jobs, dtype=np.int64), piv, np.zeros(N_CHECKS, np.int64),
            np.zeros(5, np.int64), np.zeros(5, np.int64))


def search_numba(L, H, starts, ends, up_to, rule_set):
    """The depth-first tree search of ``nb.py`` (lookup tables included)."""
    job, piv, (rej, built, kept) = nb.search(L, H, starts, ends, up_to, rule_set)
    return job, piv, rej, built, kept


def search_array(L, H, starts, ends, up_to, rule_set, xp=None,
                 batch_jobs: int = gpu.DEFAULT_BATCH_JOBS):
    """The batched level-by-level search of ``gpu.py`` on one series (``xp=None``: CuPy)."""
    _, job, piv, rej, built, kept = gpu.search([(L, H)], [(starts, ends)], up_to, rule_set,
                                               xp=xp, batch_jobs=batch_jobs)
    return job, piv, rej[0], built[0], kept[0]


SEARCH = {"reference": search_reference, "numba": search_numba,
          "numpy": partial(search_array, xp=np), "cupy": search_array}


# --------------------------------------------------------------------------- a whole scan
def scan_chunked(impl: str, store: Any, plan: list[dict], directions: list[str],
                 rule_sets: list[int], up_to: int, top_k: int, *, n_jobs: int = 1,
                 backend: str = "loky", scheduler: Any = "local", progress: Any = None,
                 batch_jobs: Any = None) -> tuple[dict, str]:
    """Fixed chunks of start bars through the parallel layer, each searched by
    ``SEARCH[impl]`` in a worker. Returns ``(results, backend used)``."""
    tasks, keys = [], []
    for i, info in enumerate(plan):
        for d in directions:
            st, en, wi = info["jobs"][d]
            for a, b in parallel.chunk_bounds(len(st), CHUNK_JOBS):
                tasks.append(dict(sym=info["j"], direction=d, rule_sets=rule_sets,
                                  starts=st[a:b], ends=en[a:b], windows=wi[a:b],
                                  up_to=up_to, impl=impl, top_k=top_k))
                keys.append((i, d, a))
    backend_used, _ = parallel.effective_backend(backend, n_jobs, len(tasks))
    outs = parallel.pmap(run_chunk, tasks, backend=backend, n_jobs=n_jobs,
                         scheduler=scheduler, progress=progress, desc="waves", unit="chunk",
                         shared=(store,))
    results: dict[tuple[int, str], list] = {}
    for (i, d, a), out in zip(keys, outs):
        # job indices are local to the chunk: shift them back to the symbol's job list
        shifted = [(job + a, piv, rej, built, kept) for job, piv, rej, built, kept in out]
        results.setdefault((i, d), []).append(shifted)
    return results, backend_used


def run_chunk(task: dict, store: Any) -> list[tuple]:
    """One parallel task: a chunk of one symbol's jobs, every rule set (runs in a worker,
    which memory-maps the store, or on Dask holds the copy scattered to it once per run)."""
    lo, hi, _ = symbol_bars(store, task["sym"])
    L, H = oriented(lo, hi, task["direction"])
    search = SEARCH[task["impl"]]
    out = []
    for rs in task["rule_sets"]:
        job, piv, rej, built, kept = search(L, H, task["starts"], task["ends"], task["up_to"],
                                            rs)
        if task["top_k"]:
            # the k best of each window in this chunk: the final top-k of a window is the
            # top-k of its chunks' top-k, so a worker never ships more (bounded memory)
            keep = top_k_rows(task["windows"][job], score_patterns(L, H, piv), piv,
                              task["top_k"])
            job, piv = job[keep], piv[keep]
        out.append((job, piv, rej, built, kept))
    return out


def scan_batched(xp: Any, store: Any, plan: list[dict], directions: list[str],
                 rule_sets: list[int], up_to: int, top_k: int, *, n_jobs: int = 1,
                 backend: str = "loky", scheduler: Any = "local", progress: Any = None,
                 batch_jobs: Any = None) -> tuple[dict, str]:
    """One batched ``gpu.search`` per direction and rule set over every symbol (``xp``:
    NumPy, or ``None`` for CuPy on the GPU); ``n_jobs``/``backend`` do not apply."""
    results: dict[tuple[int, str], list] = {}
    for d in directions:
        series = [oriented(*symbol_bars(store, info["j"])[:2], d) for info in plan]
        jobs = [(info["jobs"][d][0], info["jobs"][d][1]) for info in plan]
        wins = [info["jobs"][d][2] for info in plan]
        per_rules = []
        for rs in rule_sets:
            s_of, job, piv, rej, built, kept = gpu.search(
                series, jobs, up_to, rs, xp=xp, batch_jobs=batch_jobs, windows=wins,
                top_k=top_k)
            # rows come sorted by series: one slice per symbol (a mask per symbol would
            # scan every row once per symbol)
            bounds = np.searchsorted(s_of, np.arange(len(plan) + 1))
            per_rules.append((bounds, job, piv, rej, built, kept))
        for i in range(len(plan)):
            res = []
            for bounds, job, piv, rej, built, kept in per_rules:
                z = slice(bounds[i], bounds[i + 1])
                res.append((job[z], piv[z], rej[i], built[i], kept[i]))
            results[(i, d)] = [res]
    return results, "sequential" if xp is np else "device"


ENGINES = {"reference": partial(scan_chunked, "reference"),
           "numba": partial(scan_chunked, "numba"),
           "numpy": partial(scan_batched, np), "cupy": partial(scan_batched, None)}
