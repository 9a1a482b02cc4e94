"""Elliott-wave impulse scan: the original scanner's exact impulses, thousands of times faster.

The pandas-facing API. Parameters are validated here, the engines live apart:

* ``reference.py`` - the original algorithm, every skip tuple tried (the oracle, slow);
* ``nb.py``        - Numba depth-first search over the skip-tuple tree (CPU, exact);
* ``gpu.py``       - the same tree searched level by level over start bars x symbols, written
  against an array module (CuPy on the GPU, NumPy in the tests).

Semantics (``docs/waves.md``): from a start bar, five monowaves up/down/up/down/up
with skips ``(i, j, k, l, m)`` in ``0..up_to-1`` (a 0 is followed by 0s), two chain checks
and a rule set. ``rules="compat"`` is the original Impulse rule set: for the same bars, start
bar and ``up_to`` the scan returns exactly the original's impulses. ``"diagonal"`` is the
leading-diagonal variant. ``direction="down"`` finds the mirror pattern: it is the compat
search run on the reflected chart (lows, highs = -highs, -lows), quirks included.

Scan shape (the original system): each symbol's bars are cut into windows of ``window`` bars
overlapping by ``overlap`` (``window=None``: one window, the whole series); in each window
the search starts from every bar or from the ``max_start_points`` lowest lows (highest highs
for ``down``), and sees the data end at the window end, exactly as the original run on that
window. Patterns are ranked by a Fibonacci-proximity score (:func:`score_patterns`) and the
``top_k`` best are kept per symbol/direction/rule set/window (``top_k=0`` keeps all, so a
start bar's rows are its complete set).

Pivot bars ``p0..p5`` are 0-based positions in the symbol's series as loaded (its own bars).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import data as _data
from .. import parallel
from ..data import write_parquet_tables
from ..device import resolve_device
from ..params import as_float, as_int, as_list, one_of
from .enums import CHECKS, DIRECTIONS, N_CHECKS, RULE_SETS, SCORE_TERMS
from .reference import n_tuples

log = logging.getLogger("qbt")

IMPLS = ("fast", "reference")
MIN_WINDOW = 10
MAX_UP_TO = 30
CHUNK_JOBS = 1024   # start bars per parallel task: fixed, so results never depend on n_jobs

__all__ = ["find_impulses", "scan_series", "scan", "WaveScan", "load_source", "window_bounds",
           "start_points", "score_patterns", "pivot_values", "write_patterns",
           "compare_speed", "warm_up", "n_tuples", "check_prices", "PATTERN_COLUMNS", "CHECKS",
           "RULE_SETS", "DIRECTIONS", "IMPLS"]


# --------------------------------------------------------------------------- validation
def check_prices(low: Any, high: Any, name: str = "data",
                 dates: pd.Index | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` as float64 arrays, or ``ValueError`` naming the symbol and first bad
    row: NaN/inf, a non-positive price, or ``high < low``."""
    lo = np.array(low, dtype=np.float64)     # own writeable copies for the kernels
    hi = np.array(high, dtype=np.float64)
    if lo.ndim != 1 or lo.shape != hi.shape:
        raise ValueError(f"{name}: low and high must be 1-D arrays of the same length, "
                         f"got shapes {lo.shape} and {hi.shape}")
    if lo.size == 0:
        raise ValueError(f"{name}: no bars")
    rules = [("NaN or inf price", ~(np.isfinite(lo) & np.isfinite(hi))),
             ("non-positive price", (lo <= 0) | (hi <= 0)),
             ("high < low", hi < lo)]
    first = None
    for rule, mask in rules:
        hits = np.flatnonzero(mask)
        if hits.size and (first is None or hits[0] < first[0]):
            first = (int(hits[0]), rule)
    if first is not None:
        i, rule = first
        when = f" ({dates[i]:%Y-%m-%d})" if dates is not None else ""
        raise ValueError(f"{name}: row {i}{when}: {rule} [low={lo[i]!r}, high={hi[i]!r}]")
    return lo, hi


def _rule_set_id(rules: str) -> int:
    return RULE_SETS.index(one_of("rules", rules, RULE_SETS))


def _oriented(lo: np.ndarray, hi: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """The series the search runs on: as is for ``up``, the reflected chart for ``down``."""
    if direction == "down":
        return np.ascontiguousarray(-hi), np.ascontiguousarray(-lo)
    return np.require(lo, np.float64, ("C", "W")), np.require(hi, np.float64, ("C", "W"))


# --------------------------------------------------------------------------- one series
def find_impulses(low: Any, high: Any, start: int, up_to: int = 15, rules: str = "compat",
                  direction: str = "up", impl: str = "fast") -> np.ndarray:
    """Every impulse from bar ``start`` (data = the whole arrays), as an ``(n, 6)`` int64
    array of pivot bars sorted row-wise - the original's ``find_impulsive_wave`` over all
    ``WaveOptionsGenerator5(up_to)`` tuples plus the rule set."""
    lo, hi = check_prices(low, high)
    start = as_int("start", start, min=0, max=len(lo) - 1)
    piv = scan_series(lo, hi, starts=[start], up_to=up_to, rules=rules, direction=direction,
                      impl=impl)[1]
    return piv


def scan_series(low: Any, high: Any, starts: Sequence[int] | None = None, up_to: int = 15,
                rules: str = "compat", direction: str = "up", impl: str = "fast",
                device: str = "cpu", ends: Sequence[int] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Impulses of one series from many start bars (default: every bar).

    ``ends`` (default: the series length) is each start bar's data end (exclusive), so a
    window ``[w0, w1)`` is ``ends = w1``. Returns ``(job, pivots)``: for each pattern the
    index into ``starts`` and its six pivot bars, ordered by job then pivots.
    """
    lo, hi = check_prices(low, high)
    n = len(lo)
    up_to = as_int("up_to", up_to, min=1, max=MAX_UP_TO)
    rs = _rule_set_id(rules)
    direction = one_of("direction", direction, DIRECTIONS)
    impl = one_of("impl", impl, IMPLS)
    st = np.arange(n, dtype=np.int64) if starts is None else np.asarray(starts, dtype=np.int64)
    if st.size and (st.min() < 0 or st.max() >= n):
        bad = int(st[(st < 0) | (st >= n)][0])
        raise ValueError(f"start bar {bad} is outside the data (0..{n - 1})")
    en = np.full(st.shape, n, np.int64) if ends is None else np.asarray(ends, dtype=np.int64)
    if en.shape != st.shape or (en.size and ((en <= st).any() or (en > n).any())):
        raise ValueError(f"ends must give each start bar a data end in (start, {n}]")
    L, H = _oriented(lo, hi, direction)
    if impl == "reference":
        job, piv, _ = _reference_jobs(L, H, st, en, up_to, rules)
        return job, piv
    if resolve_device(device) == "gpu":
        from . import gpu
        _, job, piv, *_ = gpu.search([(L, H)], [(st, en)], up_to, rs)
        return job, piv
    from . import nb
    job, piv, _ = nb.search(L, H, st, en, up_to, rs)
    return job, piv


def _reference_jobs(L, H, starts, ends, up_to, rules):
    """The reference on each job's own data: the bars up to its window end."""
    from . import reference
    jobs, pivs = [], []
    for j, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
        found, _ = reference.find_impulses(L[:e], H[:e], s, up_to, rules)
        jobs += [j] * len(found)
        pivs += found
    piv = np.array(pivs, dtype=np.int64).reshape(-1, 6)
    return np.array(jobs, dtype=np.int64), piv, None


# --------------------------------------------------------------------------- scan shape
def window_bounds(n_bars: int, window: int | None, overlap: float = 0.0) -> list[tuple[int, int]]:
    """``[w0, w1)`` windows of ``window`` bars, each starting ``round(window*(1-overlap))``
    bars after the previous one; a last window is aligned to the series end so the tail is
    covered. ``window=None`` (or longer than the series): one window, the whole series."""
    if window is None or window >= n_bars:
        return [(0, n_bars)]
    step = max(1, int(round(window * (1.0 - overlap))))
    starts = list(range(0, n_bars - window + 1, step))
    if starts[-1] + window < n_bars:
        starts.append(n_bars - window)
    return [(s, s + window) for s in starts]


def start_points(low_window: np.ndarray, k: int | None) -> np.ndarray:
    """Positions in the window to start from: all bars, or the ``k`` lowest lows (ties: the
    earlier bar), in bar order."""
    n = len(low_window)
    if not k or k >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.argsort(low_window, kind="stable")[:k]).astype(np.int64)


# --------------------------------------------------------------------------- score
def pivot_values(L: np.ndarray, H: np.ndarray, piv: np.ndarray) -> np.ndarray:
    """The six pivot values ``P0..P5`` of each pattern on the searched series, as the
    monowaves define them (a wave whose end is its start keeps its start value)."""
    p = [piv[:, k] for k in range(6)]
    v0 = L[p[0]]
    v1 = np.where(p[1] > p[0], H[p[1]], L[p[0]])
    v2 = np.where(p[2] > p[1], L[p[2]], H[p[1]])
    v3 = np.where(p[3] > p[2], H[p[3]], L[p[2]])
    v4 = np.where(p[4] > p[3], L[p[4]], H[p[3]])
    v5 = np.where(p[5] > p[4], H[p[5]], L[p[4]])
    return np.stack([v0, v1, v2, v3, v4, v5], axis=1)


def wave_lengths(L: np.ndarray, H: np.ndarray, piv: np.ndarray) -> np.ndarray:
    """``len1..len5`` (high - low of each monowave) of each pattern, shape ``(n, 5)``."""
    v = pivot_values(L, H, piv)
    return np.stack([v[:, 1] - v[:, 0], H[piv[:, 1]] - v[:, 2], v[:, 3] - L[piv[:, 2]],
                     H[piv[:, 3]] - v[:, 4], v[:, 5] - L[piv[:, 4]]], axis=1)


def score_patterns(L: np.ndarray, H: np.ndarray, piv: np.ndarray) -> np.ndarray:
    """Fibonacci-proximity score in (0, 1]: the weighted closeness of four wave ratios to
    their Fibonacci targets (``enums.SCORE_TERMS``):

    ======================  =========  ===============  ======
    term                    ratio      targets          weight
    ======================  =========  ===============  ======
    wave-2 retracement      len2/len1  0.5 or 0.618     0.25
    wave-3 extension        len3/len1  1.618            0.35
    wave-4 retracement      len4/len3  0.382            0.20
    wave-5 length           len5/len1  1.0 or 0.618     0.20
    ======================  =========  ===============  ======

    closeness(r, t) = 1 / (1 + |r - t| / t) (1 at the target, 1/2 at 100% relative error),
    the best of a term's targets. Wave 3 weighs most: its extension is what marks an
    impulse. Ratios of reported patterns are finite (the rules make len1, len3 > 0).
    """
    if len(piv) == 0:
        return np.empty(0)
    ln = wave_lengths(L, H, piv)
    ratios = {"len2/len1": (1, 0), "len3/len1": (2, 0), "len4/len3": (3, 2),
              "len5/len1": (4, 0)}
    score = np.zeros(len(piv))
    with np.errstate(divide="ignore", invalid="ignore"):
        for _, ratio, targets, weight in SCORE_TERMS:
            a, b = ratios[ratio]
            r = ln[:, a] / ln[:, b]
            best = np.zeros(len(piv))
            for t in targets:
                best = np.maximum(best, 1.0 / (1.0 + np.abs(r - t) / t))
            score = score + weight * np.nan_to_num(best, nan=0.0)
    return score


# --------------------------------------------------------------------------- data sources
def load_source(source: Any = "synthetic", symbols: Any = None, n_bars: int = 2000,
                seed: int = 0, *, start: Any = None, end: Any = None,
                adjust: bool = True) -> dict[str, pd.DataFrame]:
    """``{symbol: OHLCV frame}`` through ``qbt_lib.data.load``: ``"synthetic"`` (``symbols``
    x ``n_bars`` GARCH bars; ``symbols=None``: 10), ``"sp500"`` (the real S&P 500 daily bars
    shipped with ``arch``, symbol ``SP500``), a CSV/Parquet file, a directory, a
    Hive-partitioned dataset, a DataFrame or a dict of frames (``symbols``: None/"all", a
    count of the first symbols, or a list of names); ``start``/``end`` cut the bars."""
    def generate(sy: Any) -> dict[str, pd.DataFrame]:
        bars = as_int("n_bars", n_bars, min=MIN_WINDOW, max=10_000_000)
        return _data.synthetic_market(_data.generator_symbols(sy, 10), n_bars=bars, seed=seed)

    return _data.load(source, symbols, start=start, end=end, adjust=adjust,
                      require=("high", "low"), synthetic=generate)


def _as_store(data: Any, symbols: Any = None, start: Any = None, end: Any = None,
              adjust: bool = True) -> _data.PriceStore:
    """A price store (high, low) from a ``PriceStore`` (checked) or any source
    ``qbt_lib.data.load`` takes (a frame, ``{symbol: frame}``, a path, "sp500", ...)."""
    if isinstance(data, _data.PriceStore):
        store = data
        for j, sym in enumerate(store.symbols):
            lo = np.asarray(store["low"][:, j])
            hi = np.asarray(store["high"][:, j])
            gone = np.isnan(lo) & np.isnan(hi)
            check_prices(lo[~gone], hi[~gone], name=sym, dates=store.dates[~gone])
        return store
    if data is None or (isinstance(data, Mapping) and not data):
        raise ValueError("data must be a DataFrame, a non-empty {symbol: DataFrame} mapping, "
                         "a source (path, 'sp500', 'synthetic') or a PriceStore")
    frames = load_source(data, symbols, start=start, end=end, adjust=adjust)
    return _data.PriceStore.build(frames, fields=("high", "low"))


def _symbol_bars(store: _data.PriceStore, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One symbol's own bars (rows where it has none dropped): low, high, row positions."""
    lo = np.asarray(store["low"][:, j], dtype=np.float64)
    hi = np.asarray(store["high"][:, j], dtype=np.float64)
    rows = np.flatnonzero(~np.isnan(lo))
    return np.ascontiguousarray(lo[rows]), np.ascontiguousarray(hi[rows]), rows


# --------------------------------------------------------------------------- the scan
@dataclass
class WaveScan:
    """What :func:`scan` found: one row per pattern, rejection counts and a summary."""
    patterns: pd.DataFrame
    rejects: pd.DataFrame
    summary: dict
    params: dict = field(default_factory=dict)

    def counts(self) -> pd.DataFrame:
        """Patterns per symbol (rows) and direction/rule set (columns)."""
        p = self.patterns
        syms = pd.Index(self.summary["symbols"], name="symbol")
        if p.empty:
            return pd.DataFrame(index=syms)
        t = p.groupby(["symbol", "direction", "rules"], observed=True).size().unstack(
            ["direction", "rules"], fill_value=0)
        t.columns = [f"{d}/{r}" for d, r in t.columns]
        return t.reindex(index=syms, columns=self._columns(), fill_value=0).astype(np.int64)

    def _columns(self) -> list[str]:
        return [f"{d}/{r}" for d in self.params["directions"] for r in self.params["rules"]]

    def rejects_by_check(self) -> pd.DataFrame:
        """Chains the search rejected at each check (first failing check), all symbols."""
        r = self.rejects
        if r.empty:
            return pd.DataFrame()
        t = r.groupby(["check", "direction", "rules"], observed=True)["count"].sum().unstack(
            ["direction", "rules"], fill_value=0)
        t.columns = [f"{d}/{r_}" for d, r_ in t.columns]
        t = t.reindex(index=[c for c in CHECKS if c in t.index], columns=self._columns())
        return t[(t != 0).any(axis=1)].astype(np.int64)


def _jobs_for(L: np.ndarray, windows: list[tuple[int, int]], k: int | None):
    st, en, wi = [], [], []
    for w, (w0, w1) in enumerate(windows):
        s = w0 + start_points(L[w0:w1], k)
        st.append(s)
        en.append(np.full(len(s), w1, np.int64))
        wi.append(np.full(len(s), w, np.int64))
    return np.concatenate(st), np.concatenate(en), np.concatenate(wi)


def _run_task(task: dict, store: _data.PriceStore) -> list[tuple]:
    """One parallel task: a chunk of one symbol's jobs, every rule set (runs in a worker,
    which memory-maps the store, or on Dask holds the copy scattered to it once per run)."""
    lo, hi, _ = _symbol_bars(store, task["sym"])
    L, H = _oriented(lo, hi, task["direction"])
    starts, ends = task["starts"], task["ends"]
    out = []
    if task["impl"] == "reference":
        for rules in task["rules"]:
            job, piv, _ = _reference_jobs(L, H, starts, ends, task["up_to"], rules)
            out.append((job, piv, np.zeros(N_CHECKS, np.int64), np.zeros(5, np.int64),
                        np.zeros(5, np.int64)))
        return out
    from . import nb
    tables = nb.tables_nb(L, H)
    for rules in task["rules"]:
        job, piv, (rej, built, kept) = nb.search(L, H, starts, ends, task["up_to"],
                                                 _rule_set_id(rules), tables=tables)
        if task["top_k"]:
            # the k best of each window in this chunk: the final top-k of a window is the
            # top-k of its chunks' top-k, so a worker never ships more (bounded memory)
            keep = _top_k_rows(task["windows"][job], score_patterns(L, H, piv), piv,
                               task["top_k"])
            job, piv = job[keep], piv[keep]
        out.append((job, piv, rej, built, kept))
    return out


def scan(data: Any, *, symbols: Any = None, start: Any = None, end: Any = None,
         adjust: bool = True, window: int | None = None, overlap: float = 0.0,
         max_start_points: int | None = None, up_to: int = 15,
         rules: Any = "compat", directions: Any = "up", top_k: int = 0,
         impl: str = "fast", n_jobs: int = 1, backend: str = "loky", device: str = "cpu",
         scheduler: str | None = "local", progress: bool | None = None,
         gpu_batch_jobs: int | None = None) -> WaveScan:
    """Scan many symbols for impulses; returns a :class:`WaveScan`.

    ``data``: any source ``qbt_lib.data.load`` takes (a frame or ``{symbol: frame}`` with
    ``high``/``low`` columns and a DatetimeIndex, a CSV/Parquet path, ``"sp500"``,
    ``"synthetic"``) or a ``PriceStore``; ``symbols``/``start``/``end``/``adjust`` select and
    cut it (every used bar is validated). ``window``/``overlap``/``max_start_points``: the scan shape (module doc).
    ``rules``: "compat", "diagonal" or both; ``directions``: "up", "down" or both.
    ``impl="fast"`` runs Numba on the CPU (symbols x start-bar chunks over the parallel layer,
    ``n_jobs``/``backend``, each worker memory-mapping the price store) or, when ``device``
    resolves to the GPU, one batched CuPy search over all symbols; ``"reference"`` runs the
    original algorithm (slow: for small checks only).
    """
    t_start = time.perf_counter()
    up_to = as_int("up_to", up_to, min=1, max=MAX_UP_TO)
    if window is not None and not (isinstance(window, str) and window.lower() in ("none", "all")):
        window = as_int("window", window, min=MIN_WINDOW)
    else:
        window = None
    overlap = as_float("overlap", overlap, min=0.0, max=1.0, max_inclusive=False)
    k = None if max_start_points in (None, 0, "all") else as_int(
        "max_start_points", max_start_points, min=1)
    rules_l = list(dict.fromkeys(as_list("rules", rules, RULE_SETS)))
    dirs = list(dict.fromkeys(as_list("directions", directions, DIRECTIONS)))
    top_k = as_int("top_k", top_k, min=0)
    impl = one_of("impl", impl, IMPLS)
    backend = one_of("backend", backend, parallel.BACKENDS)
    n_workers = parallel.resolve_n_jobs(n_jobs)
    dev = resolve_device(device) if impl == "fast" else "cpu"
    store = _as_store(data, symbols, start, end, adjust)
    params = dict(window=window, overlap=overlap, max_start_points=k, up_to=up_to,
                  rules=rules_l, directions=dirs, top_k=top_k, impl=impl, n_jobs=n_workers,
                  backend=backend, device=dev)

    # jobs: (start bar, data end, window) per symbol and direction, in the parent
    sym_info = []
    for j, sym in enumerate(store.symbols):
        lo, hi, rows = _symbol_bars(store, j)
        if len(lo) < MIN_WINDOW:
            raise ValueError(f"{sym}: {len(lo)} bars, fewer than the {MIN_WINDOW} a window needs")
        wins = window_bounds(len(lo), window, overlap)
        per_dir = {}
        for d in dirs:
            L, _ = _oriented(lo, hi, d)
            per_dir[d] = _jobs_for(L, wins, k)
        sym_info.append(dict(sym=sym, j=j, n=len(lo), rows=rows, windows=wins, jobs=per_dir))

    results: dict[tuple[int, str], list] = {}
    backend_used = "device" if dev == "gpu" else None
    if dev == "gpu":
        from . import gpu
        for d in dirs:
            series = []
            for info in sym_info:
                lo, hi, _ = _symbol_bars(store, info["j"])
                series.append(_oriented(lo, hi, d))
            jobs = [(info["jobs"][d][0], info["jobs"][d][1]) for info in sym_info]
            per_rules = []
            for rules_name in rules_l:
                s_of, job, piv, rej, built, kept = gpu.search(
                    series, jobs, up_to, _rule_set_id(rules_name),
                    batch_jobs=gpu_batch_jobs or gpu.DEFAULT_BATCH_JOBS)
                per_rules.append((s_of, job, piv, rej, built, kept))
            for i, info in enumerate(sym_info):
                res = []
                for s_of, job, piv, rej, built, kept in per_rules:
                    m = s_of == i
                    res.append((job[m], piv[m], rej[i], built[i], kept[i]))
                results[(i, d)] = [res]
    else:
        tasks, keys = [], []
        for i, info in enumerate(sym_info):
            for d in dirs:
                st, en, wi = info["jobs"][d]
                for a, b in parallel.chunk_bounds(len(st), CHUNK_JOBS):
                    tasks.append(dict(sym=info["j"], direction=d, rules=rules_l,
                                      starts=st[a:b], ends=en[a:b], windows=wi[a:b],
                                      up_to=up_to, impl=impl, top_k=top_k))
                    keys.append((i, d, a))
        backend_used, _ = parallel.effective_backend(backend, n_workers, len(tasks))
        outs = parallel.pmap(_run_task, tasks, backend=backend, n_jobs=n_workers,
                             scheduler=scheduler, progress=progress, desc="waves",
                             unit="chunk", shared=(store,))
        for (i, d, a), out in zip(keys, outs):
            # job indices are local to the chunk: shift them back to the symbol's job list
            shifted = [(job + a, piv, rej, built, kept) for job, piv, rej, built, kept in out]
            results.setdefault((i, d), []).append(shifted)

    patterns, rejects, built_tot, kept_tot = _assemble(store, sym_info, dirs, rules_l, results,
                                                       top_k)
    n_jobs_total = sum(len(info["jobs"][d][0]) for info in sym_info for d in dirs) * len(rules_l)
    seconds = time.perf_counter() - t_start
    summary = dict(symbols=[info["sym"] for info in sym_info], start_bars=n_jobs_total,
                   patterns=len(patterns), seconds=seconds,
                   tuples=n_jobs_total * n_tuples(up_to),
                   tuples_per_second=n_jobs_total * n_tuples(up_to) / seconds if seconds else None,
                   monowaves_built=int(built_tot.sum()), chains_kept=kept_tot.tolist(),
                   backend=backend_used, device=dev, n_jobs=n_workers)
    return WaveScan(patterns=patterns, rejects=rejects, summary=summary, params=params)


PATTERN_COLUMNS = (["symbol", "direction", "rules", "window_start"]
                   + [f"p{k}" for k in range(6)] + [f"date{k}" for k in range(6)]
                   + [f"price{k}" for k in range(6)] + ["score"])


def _assemble(store, sym_info, dirs, rules_l, results, top_k=0):
    """One frame from the per-symbol kernel outputs, scored and cut to the ``top_k`` best
    per window before any column is built. Rows come out ordered by symbol (as loaded),
    direction, rule set, window and pivots: jobs are in window then start-bar order and each
    job's patterns are sorted, so no sort is needed."""
    cols: dict[str, list] = {c: [] for c in PATTERN_COLUMNS}
    codes = {"symbol": [], "direction": [], "rules": []}
    rej_rows = []
    built_tot = np.zeros(5, np.int64)
    kept_tot = np.zeros(5, np.int64)
    for i, info in enumerate(sym_info):
        lo, hi, rows = _symbol_bars(store, info["j"])
        dates = store.dates[rows].values
        wstart = np.array([w0 for w0, _ in info["windows"]], dtype=np.int64)
        for d_i, d in enumerate(dirs):
            L, H = _oriented(lo, hi, d)
            win_of_job = info["jobs"][d][2]
            for r_i, rules_name in enumerate(rules_l):
                parts = [chunk[r_i] for chunk in results.get((i, d), [])]
                job = np.concatenate([p[0] for p in parts] + [np.empty(0, np.int64)])
                piv = np.concatenate([p[1] for p in parts] + [np.empty((0, 6), np.int64)])
                rej = sum((p[2] for p in parts), np.zeros(N_CHECKS, np.int64))
                built_tot += sum((p[3] for p in parts), np.zeros(5, np.int64))
                kept_tot += sum((p[4] for p in parts), np.zeros(5, np.int64))
                for c, v in zip(CHECKS, rej):
                    rej_rows.append((info["sym"], d, rules_name, c, int(v)))
                win = win_of_job[job]
                score = score_patterns(L, H, piv)
                if top_k:
                    keep = _top_k_rows(win, score, piv, top_k)
                    job, piv, win, score = job[keep], piv[keep], win[keep], score[keep]
                n = len(piv)
                vals = pivot_values(L, H, piv)
                prices = -vals if d == "down" else vals
                codes["symbol"].append(np.full(n, i, np.int32))
                codes["direction"].append(np.full(n, d_i, np.int8))
                codes["rules"].append(np.full(n, r_i, np.int8))
                cols["window_start"].append(wstart[win])
                for k in range(6):
                    cols[f"p{k}"].append(piv[:, k])
                    cols[f"date{k}"].append(dates[piv[:, k]])
                    cols[f"price{k}"].append(prices[:, k])
                cols["score"].append(score)
    cats = {"symbol": [x["sym"] for x in sym_info], "direction": dirs, "rules": rules_l}
    out = {}
    for c in PATTERN_COLUMNS:
        if c in cats:
            out[c] = pd.Categorical.from_codes(np.concatenate(codes[c]) if codes[c] else
                                               np.empty(0, np.int8), categories=cats[c])
        elif c.startswith("date"):
            out[c] = (np.concatenate(cols[c]) if cols[c] else
                      np.empty(0, "datetime64[ns]")).astype("datetime64[ns]")
        else:
            dt = np.float64 if (c.startswith("price") or c == "score") else np.int64
            out[c] = np.concatenate(cols[c]).astype(dt) if cols[c] else np.empty(0, dt)
    patterns = pd.DataFrame(out)
    rejects = pd.DataFrame(rej_rows, columns=["symbol", "direction", "rules", "check", "count"])
    return patterns, rejects, built_tot, kept_tot


def _top_k_rows(win: np.ndarray, score: np.ndarray, piv: np.ndarray, k: int) -> np.ndarray:
    """Row positions of the ``k`` best-scored patterns of each window (ties: earlier pivots
    first), in their original order."""
    if len(win) == 0:
        return np.arange(0)
    keys = [piv[:, c] for c in range(5, -1, -1)] + [-score, win]
    order = np.lexsort(keys)            # by window, best score, then pivots
    w_sorted = win[order]
    first = np.searchsorted(w_sorted, w_sorted, side="left")
    rank = np.arange(len(order)) - first
    return np.sort(order[rank < k])


# --------------------------------------------------------------------------- output
def write_patterns(patterns: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the patterns as Parquet, atomically: a temp file renamed when complete, so a
    failed or interrupted write leaves no partial file."""
    p = Path(path)
    return write_parquet_tables(p.parent, {p.name: patterns})[p.name]


# --------------------------------------------------------------------------- before/after
def warm_up(impl: str = "fast", device: str = "auto", up_to: int = 15) -> float:
    """Load (or compile, the first time on a machine: ~13 s) the search kernels a scan with
    ``impl``/``device`` uses, on a toy series; returns the seconds it took. Call it before a
    timed :func:`scan` so the scan measures the search, not the JIT, and report it apart."""
    t = time.perf_counter()
    impl = one_of("impl", impl, IMPLS)
    up_to = as_int("up_to", up_to, min=1, max=MAX_UP_TO)
    import tqdm.auto  # noqa: F401  (the parallel layer's progress bar: a slow first import)
    if impl == "fast":
        x = np.cumsum(np.random.default_rng(0).standard_normal(64)) + 100.0
        lo, hi = x - 1.0, x + 1.0
        st = np.array([int(np.argmin(lo))], np.int64)
        en = np.array([len(lo)], np.int64)
        if resolve_device(device) == "gpu":
            from . import gpu
            for rules in RULE_SETS:
                gpu.search([(lo, hi)], [(st, en)], up_to, _rule_set_id(rules))
        else:
            from . import nb
            tables = nb.tables_nb(lo, hi)
            for rules in RULE_SETS:
                nb.search(lo, hi, st, en, up_to, _rule_set_id(rules), tables=tables)
    return time.perf_counter() - t


def compare_speed(low: Any, high: Any, start: int, up_to: int = 15,
                  max_seconds: float = 5.0, repeats: int = 200,
                  rules: str = "compat") -> pd.DataFrame:
    """Time one start bar: the reference (every tuple, stopped after ``max_seconds``) and the
    fast search (median of ``repeats``). Throughput counts all ``n_tuples(up_to)`` tuples per
    start bar for the fast path, as the original did; ``agrees``: the reference's patterns
    are the fast path's (a subset of them when it was stopped early)."""
    from . import nb, reference
    lo, hi = check_prices(low, high)
    start = as_int("start", start, min=0, max=len(lo) - 1)
    up_to = as_int("up_to", up_to, min=1, max=MAX_UP_TO)
    rs = _rule_set_id(rules)
    t = time.perf_counter()
    ref_found, tried = reference.find_impulses(lo, hi, start, up_to, rules,
                                               max_seconds=max_seconds)
    t_ref = time.perf_counter() - t
    complete = tried == n_tuples(up_to)
    tables = nb.tables_nb(lo, hi)
    st = np.array([start], np.int64)
    en = np.array([len(lo)], np.int64)
    nb.search(lo, hi, st, en, up_to, rs, tables=tables)   # compile / warm
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        _, piv, _ = nb.search(lo, hi, st, en, up_to, rs, tables=tables)
        times.append(time.perf_counter() - t)
    t_fast = float(np.median(times))
    fast = {tuple(int(x) for x in r) for r in piv}
    agrees = (set(ref_found) == fast) if complete else set(ref_found) <= fast
    return pd.DataFrame([
        dict(impl="reference", up_to=up_to, tuples=tried, seconds=t_ref,
             tuples_per_s=tried / t_ref, patterns=len(ref_found), complete=complete,
             agrees=agrees),
        dict(impl="fast", up_to=up_to, tuples=n_tuples(up_to), seconds=t_fast,
             tuples_per_s=n_tuples(up_to) / t_fast, patterns=len(fast), complete=True,
             agrees=agrees),
    ]).set_index("impl")
