"""What a scan returns: :class:`WaveScan`, a :class:`qbt_lib.metrics.Result` - the patterns
table, the rejection counts, the summary, and the headline and metrics the notebook only
displays - and :func:`assemble`, which builds the table from any engine's raw outputs."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import write_parquet_tables
from ..metrics import Result
from .enums import CHECKS, N_CHECKS
from .prices import oriented, symbol_bars
from .score import pivot_values, score_patterns, top_k_rows

PIVOTS = [f"p{k}" for k in range(6)]
PATTERN_COLUMNS = (["symbol", "direction", "rules", "window_start"] + PIVOTS
                   + [f"date{k}" for k in range(6)] + [f"price{k}" for k in range(6)]
                   + ["score"])
#: the original system's one-core throughput (docs/waves.md: 20-30 thousand tuples/s)
ORIGINAL_TUPLES_PER_S = 25_000.0


@dataclass
class WaveScan(Result):
    """What :func:`qbt_lib.waves.run` found: one row per pattern (:meth:`frame`), rejection
    counts and a summary; ``params`` are the checked parameters (``impl``/``device``: what
    ran). :meth:`add_timings` attaches the JIT warm-up and a :func:`compare_impls` table
    measured around the scan, for :meth:`headline` and :meth:`metrics`."""
    patterns: pd.DataFrame
    rejects: pd.DataFrame
    summary: dict
    params: dict = field(default_factory=dict)
    warm_up_seconds: float | None = None
    comparison: pd.DataFrame | None = None

    workload = "waves"

    # ------------------------------------------------------------------ tables
    def frame(self) -> pd.DataFrame:
        """The patterns: symbol, direction, rules, window_start, ``p0..p5`` (0-based bar
        positions in the symbol's series as loaded), ``date0..date5``, ``price0..price5``,
        score."""
        return self.patterns

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

    # ------------------------------------------------------------------ figures
    def add_timings(self, *, warm_up_seconds: float | None = None,
                    comparison: pd.DataFrame | None = None) -> "WaveScan":
        """Attach what was timed around the scan: the JIT warm-up (:func:`warm_up`) and the
        engines on one start bar (:func:`compare_impls`). Returns the result."""
        if warm_up_seconds is not None:
            self.warm_up_seconds = float(warm_up_seconds)
        if comparison is not None:
            self.comparison = comparison
        return self

    def speedup(self) -> float | None:
        """The named case of the comparison: tuples/s of the engine the scan ran (numba when
        it ran another) over the reference's, on one start bar; None when not measured."""
        c, impl = self.comparison, self._speedup_impl()
        if c is None or "reference" not in c.index or impl not in c.index:
            return None
        return float(c.loc[impl, "speedup"])

    def _speedup_impl(self) -> str:
        impl, c = self.params.get("impl"), self.comparison
        return impl if c is not None and impl in c.index and impl != "reference" else "numba"

    def overview(self) -> str:
        """How much was searched and kept (deterministic: no timing)."""
        s = self.summary
        return (f"{s['start_bars']:,} start-bar searches ({s['tuples']:,} skip tuples in the "
                f"original's terms), {len(self.patterns):,} patterns kept")

    def headline(self) -> str:
        """The scan's speed in one line, plus the before/after once :meth:`add_timings`
        has the comparison."""
        s = self.summary
        tps = s["tuples_per_second"] or 0.0
        line = (f"scan: {s['seconds']:.2f} s, {self.params.get('impl')} on {s['device']} "
                f"(backend {s['backend']}, n_jobs {s['n_jobs']}), {tps / 1e9:.2f}G tuples/s "
                f"equivalent, {s['monowaves_built'] / max(s['start_bars'], 1):.0f} monowaves "
                "built per start bar")
        if self.warm_up_seconds is not None:
            line += f"; JIT warm-up {self.warm_up_seconds:.2f} s not included"
        if self.speedup() is not None:
            line += "; " + self.speedup_line()
        return line

    def speedup_line(self) -> str:
        """The before/after in one line: the named case of the comparison (one start bar,
        tuples/s over the reference's) and the same rate against the original's figure."""
        sp, impl = self.speedup(), self._speedup_impl()
        if sp is None:
            return "one start bar: not measured (add_timings(comparison=compare_impls(...)))"
        fast = float(self.comparison.loc[impl, "tuples_per_s"])
        return (f"one start bar: {impl} / reference {sp:,.0f}x tuples/s "
                f"({fast / ORIGINAL_TUPLES_PER_S:,.0f}x the original's ~25k tuples/s)")

    def headline_figures(self) -> dict:
        """The report's four headline figures (metrics.json ``headline``)."""
        s = self.summary
        sp = self.speedup()
        tps = s["tuples_per_second"] or 0.0
        up_to = self.comparison["up_to"].iloc[0] if sp is not None else None
        return {"throughput": f"{tps / 1e9:.2f}G tuples/s (scan)",
                "speedup_vs_reference": (f"{sp:,.0f}x (one start bar, up_to={up_to})"
                                         if sp is not None else "not measured"),
                "parallel_efficiency": f"n_jobs={s['n_jobs']} ({s['backend']})",
                "gpu": s["device"]}

    def metrics(self) -> dict:
        """The figures of metrics.json: counts, scan time and rate, warm-up, each compared
        engine's tuples/s on one start bar, and the report's headline."""
        s = self.summary
        m = dict(patterns=len(self.patterns), start_bars=s["start_bars"],
                 scan_seconds=s["seconds"], warm_up_seconds=self.warm_up_seconds,
                 tuples_per_second=s["tuples_per_second"], impl=self.params.get("impl"),
                 device=s["device"])
        if self.comparison is not None:
            for impl, row in self.comparison.iterrows():
                m[f"{impl}_tuples_per_second"] = float(row["tuples_per_s"])
        m["headline"] = self.headline_figures()
        return m

    # ------------------------------------------------------------------ output
    def digest(self) -> str:
        """Rows, a hash of the pivots and the score sum: equal digests, equal patterns."""
        p = self.patterns
        h = hashlib.sha256(np.ascontiguousarray(p[PIVOTS].to_numpy(np.int64)).tobytes())
        return (f"{len(p):,} rows, pivots sha256 {h.hexdigest()[:16]}, "
                f"score sum {p['score'].sum():.6f}")

    def write_patterns(self, path: str | os.PathLike) -> Path:
        """The patterns as Parquet at ``path``, atomically (:func:`write_patterns`)."""
        return write_patterns(self.patterns, path)


def write_patterns(patterns: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the patterns as Parquet, atomically: a temp file renamed when complete, so a
    failed or interrupted write leaves no partial file."""
    p = Path(path)
    return write_parquet_tables(p.parent, {p.name: patterns})[p.name]


# --------------------------------------------------------------------------- assembly
def assemble(store, plan, dirs, rules_l, results, top_k=0):
    """One frame from the per-symbol engine outputs, scored and cut to the ``top_k`` best
    per window before any column is built. Rows come out ordered by symbol (as loaded),
    direction, rule set, window and pivots: jobs are in window then start-bar order and each
    job's patterns are sorted, so no sort is needed. Returns ``(patterns, rejects,
    monowaves built, chains kept)``."""
    cols: dict[str, list] = {c: [] for c in PATTERN_COLUMNS}
    codes = {"symbol": [], "direction": [], "rules": []}
    rej_rows = []
    built_tot = np.zeros(5, np.int64)
    kept_tot = np.zeros(5, np.int64)
    for i, info in enumerate(plan):
        lo, hi, rows = symbol_bars(store, info["j"])
        dates = store.dates[rows].values
        wstart = np.array([w0 for w0, _ in info["windows"]], dtype=np.int64)
        for d_i, d in enumerate(dirs):
            L, H = oriented(lo, hi, d)
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
                    keep = top_k_rows(win, score, piv, top_k)
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
    cats = {"symbol": [x["sym"] for x in plan], "direction": dirs, "rules": rules_l}
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
