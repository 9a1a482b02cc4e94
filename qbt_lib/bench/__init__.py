"""The benchmark harness behind ``python -m qbt_lib.bench <workload> [--quick]``.

A workload provides ``qbt_lib.<workload>.bench.run(bench: Bench)``; it calls
``bench.measure`` for every implementation/size/n_jobs/backend/device it compares, in one
process and one run, and ``bench.ratio`` for the speed-ups it claims.

Honest figures, in one place (here, not in each workload):

- **repeats**: every case timed by ``measure`` is the median of at least
  :data:`MIN_REPEATS` timed calls after the warm-up, and of more when the calls are short
  (until :data:`FILL_SECONDS` of timed calls); the case keeps ``times``, ``min``, ``max`` and
  ``repeats``, so the tables and plots show the spread (error bars);
- **like with like**: a ratio's two sides must do the same work; ``ratio(..., same=...)``
  names what is the same on both sides (outputs kept, writers, batch size, layout) and the
  label carries it;
- **one named headline**: ``ratio(..., key=..., headline=True)`` marks the workload's main job
  at its reference size (a rule, never a maximum over cases); ``figure(key, ...)`` records a
  headline figure that is not a ratio. Both carry a stable ``key`` (the names asv tracks:
  ``benchmarks/benchmarks.py`` reads each workload module's ``TRACKED``);
- **parallel efficiency**: ``efficiency(...)`` re-measures a figure above 100% (the two cases
  again, alternately) and keeps it only with the workload's stated reason, else the figure
  is not printed (``value`` null, what was measured in ``dropped``).

``Bench.finish`` prints the table and writes ``outputs/bench/<workload>[-<tag>].json`` with
the machine, the library versions and the measured copy bandwidth, so every figure can be traced to where it was
measured. A JSON made on another machine (a GPU run) can be dropped into ``outputs/bench/``.

JSON schema (``schema: 2``)::

    {"workload", "quick", "size", "tag", "created", "machine", "versions", "copy_GBps",
     "min_repeats", "fill_seconds",
     "cases": [{"name", "impl", "size", "unit", "n_jobs", "backend", "device", "seconds",
                "min", "max", "repeats", "times", "throughput", "GBps", "bw_fraction",
                "peak_rss_mb", ...extra}],
     "ratios": [{"name", "value", "lo", "hi", "num", "den", "target", "ok", "key",
                 "headline", "same", "kind"}],
     "figures": [{"key", "value", "unit", "label", "case"}],
     "headline": {...}, "notes": {...}}
"""
from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import paths
from ..fmt import _finite
from ..parallel import available_cores, resolve_n_jobs
from ..machine import copy_bandwidth, machine_info, peak_rss_mb, peak_rss_reset, versions
from .jsons import load_results  # noqa: F401  (the bench JSONs read back: bench.jsons)

WORKLOADS = ("synth", "straddles", "walkforward", "waves", "marketsim")
#: bench sizes: ``tiny`` (seconds per workload: the profiling golden notebook, asv quick
#: checks), ``quick`` (the report), ``full`` (the issues' targets, ``make bench``)
SIZES = ("tiny", "quick", "full")
#: every case timed by ``Bench.measure`` is a median of at least this many timed calls ...
MIN_REPEATS = 5
#: ... and of as many more as fill this many seconds when the calls are short (full size;
#: the reduced sizes, which guard CI and the report, fill less)
FILL_SECONDS = 2.0
FILL_BY_SIZE = {"tiny": 0.0, "quick": 0.5, "full": FILL_SECONDS}
#: never more timed calls than this for one case
MAX_REPEATS = 200


def time_call(fn: Callable[[], Any], repeats: int = MIN_REPEATS, warmup: int = 1,
              max_seconds: float | None = None,
              fill_seconds: float = 0.0) -> tuple[list[float], Any]:
    """Wall times of at least ``repeats`` calls after ``warmup`` calls, and of more (up to
    :data:`MAX_REPEATS`) until ``fill_seconds`` of timed calls have been spent; once
    ``max_seconds`` have been spent no further call is started (at least one is made)."""
    result = None
    for _ in range(warmup):
        result = fn()
    times: list[float] = []
    spent = 0.0
    gc.collect()  # once: a collection before every short call would cost more than the call
    while True:
        if spent > 0.5 * len(times) and len(times) % 5 == 0:  # long calls: collect now and then
            gc.collect()
        t = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t
        times.append(dt)
        spent += dt
        n = len(times)
        if max_seconds is not None and spent >= max_seconds:
            break
        if n >= max(1, repeats) and (spent >= fill_seconds or n >= MAX_REPEATS):
            break
    return times, result


def spread(times: Sequence[float]) -> dict:
    """``seconds`` (median), ``min``, ``max`` and ``repeats`` of a list of timings."""
    ts = [float(t) for t in times]
    return {"seconds": statistics.median(ts), "min": min(ts), "max": max(ts),
            "repeats": len(ts)}


def budget(name: str, value: float, floor: float, *, config: dict | None = None,
           written_for: dict | None = None) -> bool:
    """A notebook's budget cell: a guard for CI, never a failure of a user's legitimate run.

    ``written_for`` maps parameter names to the values the budget was written for (a set of
    allowed values); a run whose ``config`` differs in any of them gets the figure reported
    instead of checked (returns False). Otherwise ``value >= floor`` is asserted. The value
    must compare like with like (e.g. one core on both sides, no pool start-up on one side
    only): the budget cannot make an unfair figure fair."""
    config = config or {}
    differs = {k: config.get(k) for k, ok in (written_for or {}).items()
               if config.get(k) not in ok}
    if differs:
        print(f"budget not applied ({name}): written for "
              + ", ".join(f"{k} in {sorted(map(str, ok))}" for k, ok in written_for.items())
              + "; this run has " + ", ".join(f"{k}={v!r}" for k, v in differs.items())
              + f". Figure: {value:.3g}x (floor {floor:g}x)")
        return False
    assert value >= floor, f"{name}: only {value:.2f}x (budget >= {floor:g}x)"
    return True  # silent when it holds: the golden notebooks' outputs stay deterministic


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if abs(x) >= 1e9:
        return f"{x / 1e9:.2f}G"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.2f}M"
    if abs(x) >= 1e4:
        return f"{x / 1e3:.1f}k"
    return f"{x:.{digits}g}"


class Bench:
    """Collects the cases and ratios of one benchmark run."""

    def __init__(self, workload: str, quick: bool = False, tag: str | None = None,
                 out_dir: str | Path | None = None, measure_bandwidth: bool = True,
                 size: str | None = None, min_repeats: int = MIN_REPEATS,
                 fill_seconds: float | None = None):
        self.workload = workload
        self.size = size or ("quick" if quick else "full")
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {self.size!r}")
        #: ``quick`` is true for every reduced size; ``tiny`` shrinks further (seconds)
        self.quick = self.size != "full"
        self.tiny = self.size == "tiny"
        self.min_repeats = int(min_repeats)
        self.fill_seconds = float(FILL_BY_SIZE[self.size] if fill_seconds is None
                                  else fill_seconds)
        self.figures: list[dict] = []
        self.tag = tag
        self.out_dir = Path(out_dir) if out_dir is not None else paths.BENCH_DIR
        self.cases: list[dict] = []
        self.ratios: list[dict] = []
        self.notes: dict[str, Any] = {}
        self.headline: dict[str, Any] = {}
        # single-threaded and all-core copy bandwidth: a case's bandwidth fraction is taken
        # against the one that matches its worker count
        self.copy_GBps = copy_bandwidth() if measure_bandwidth else None
        self.copy_GBps_all = (copy_bandwidth(threads=available_cores())
                              if measure_bandwidth else None)
        self.started = time.perf_counter()

    def measure(self, name: str, fn: Callable[[], Any], *, impl: str, size: float,
                unit: str = "items", n_jobs: int = 1, backend: str = "sequential",
                device: str = "cpu", repeats: int | None = None, warmup: int = 1,
                max_seconds: float | None = None, nbytes: float | None = None,
                **extra: Any) -> dict:
        """Time ``fn`` and record it as a case: the median of at least
        ``max(repeats, bench.min_repeats)`` timed calls after ``warmup`` calls, more while
        they fill ``bench.fill_seconds``; ``max_seconds`` (rarely needed) stops starting new
        calls once spent, and the case then says how many it got (``repeats``).

        ``size`` is the problem size in ``unit`` (throughput = size / median seconds);
        ``nbytes`` is the bytes the kernel writes, for GB/s and the fraction of the measured
        copy bandwidth. Extra keyword arguments are stored with the case.
        """
        peak_rss_reset()
        want = max(int(repeats or 0), self.min_repeats)
        times, result = time_call(fn, repeats=want, warmup=warmup, max_seconds=max_seconds,
                                  fill_seconds=self.fill_seconds)
        sp = spread(times)
        med = sp["seconds"]
        case = {"name": name, "impl": impl, "size": size, "unit": unit, "n_jobs": n_jobs,
                "backend": backend, "device": device, **sp, "times": times,
                "throughput": size / med if med > 0 else None,
                "peak_rss_mb": peak_rss_mb()}
        if nbytes is not None and med > 0:
            case["GBps"] = nbytes / med / 1e9
            frac = self.bw_fraction(case["GBps"], n_jobs)
            if frac is not None:
                case["bw_fraction"] = frac
        case.update(extra)
        self.cases.append(case)
        print(f"  {name:<44s} {med:10.4f} s  [{sp['min']:.4g}-{sp['max']:.4g}, "
              f"n={sp['repeats']}]  {_fmt(case['throughput']):>9s} {unit}/s"
              + (f"  {case['GBps']:.2f} GB/s" if "GBps" in case else ""), flush=True)
        case["_result"] = result
        case["_fn"] = fn
        self.after_measure(case, fn)
        return case

    def after_measure(self, case: dict, fn: Callable[[], Any]) -> None:
        """Hook called after every timed case (and by workloads for a case they timed
        themselves, e.g. a capped reference): :class:`qbt_lib.profiling.ProfilingBench`
        profiles it here. Nothing in a plain run."""

    def bw_fraction(self, GBps: float, n_jobs: Any = 1) -> float | None:
        """``GBps`` as a fraction of the copy bandwidth measured with as many threads as the
        case used workers (one thread, or all cores)."""
        ref_bw = self.copy_GBps if _workers(n_jobs) <= 1 else self.copy_GBps_all
        return GBps / ref_bw if ref_bw else None

    def add_case(self, name: str, seconds: float | Sequence[float], *, impl: str, size: float,
                 unit: str = "items", **extra: Any) -> dict:
        """Record a case timed elsewhere (e.g. in a fresh subprocess): ``seconds`` is one
        timing or the list of repeated ones (median, min, max and count are kept)."""
        times = [float(seconds)] if isinstance(seconds, (int, float)) else \
            [float(t) for t in seconds]
        sp = spread(times)
        seconds = sp["seconds"]
        case = {"name": name, "impl": impl, "size": size, "unit": unit, **sp,
                "times": times, "throughput": size / seconds if seconds > 0 else None}
        case.setdefault("n_jobs", extra.pop("n_jobs", 1))
        case.setdefault("backend", extra.pop("backend", "sequential"))
        case.setdefault("device", extra.pop("device", "cpu"))
        case.update(extra)
        self.cases.append(case)
        print(f"  {name:<44s} {seconds:10.4f} s", flush=True)
        return case

    def ratio(self, name: str, num: dict, den: dict, target: float | None = None,
              per_unit: bool = True, *, same: str | None = None, key: str | None = None,
              headline: bool = False) -> float:
        """Speed-up of case ``num`` over case ``den`` (throughput ratio when
        ``per_unit``, so cases of different sizes compare fairly).

        ``same`` says what work both sides share (appended to the label: "same outputs kept,
        same writers"); ``key`` is the stable name asv tracks; ``headline`` marks the
        workload's main job at its reference size (one per workload). The range
        ``lo``-``hi`` is the ratio of the slowest and fastest runs of each side."""
        def thr(c, s):
            return c["size"] / s if s and s > 0 else math.nan
        if per_unit:
            value = (num["throughput"] or 0) / den["throughput"] if den["throughput"] else math.nan
            lo = thr(num, num.get("max")) / thr(den, den.get("min")) if den.get("min") else None
            hi = thr(num, num.get("min")) / thr(den, den.get("max")) if den.get("max") else None
        else:
            value = den["seconds"] / num["seconds"]
            lo = (den.get("min") or math.nan) / (num.get("max") or math.nan)
            hi = (den.get("max") or math.nan) / (num.get("min") or math.nan)
        label = f"{name} (same {same})" if same else name
        r = {"name": label, "value": value, "num": num["name"], "den": den["name"],
             "target": target, "ok": None if target is None else bool(value >= target),
             "lo": _finite(lo), "hi": _finite(hi), "unit": "x"}
        if same:
            r["same"] = same
        if key:
            r["key"] = key
        if headline:
            if any(x.get("headline") for x in self.ratios):
                raise ValueError(f"{self.workload}: a second headline ratio {name!r}: the "
                                 "headline is one named case")
            r["headline"] = True
        self.ratios.append(r)
        tgt = "" if target is None else f"   (target >= {target:g}: {'ok' if r['ok'] else 'MISSED'})"
        rng = "" if r["lo"] is None else f" [{r['lo']:.2f}-{r['hi']:.2f}]"
        print(f"  ratio {label:<38s} {value:10.2f}x{rng}{tgt}", flush=True)
        return value

    def figure(self, key: str, value: float | None, unit: str, label: str,
               case: dict | None = None, **extra: Any) -> dict:
        """A headline figure that is not a ratio (a throughput, a time): stable ``key`` (what
        asv tracks), ``unit`` and a label saying what was measured; ``case`` names the case
        it comes from (its min-max are kept)."""
        f = {"key": key, "value": None if value is None else float(value), "unit": unit,
             "label": label, **extra}
        if case is not None:
            f["case"] = case["name"]
        self.figures.append(f)
        return f

    def efficiency(self, name: str, many: dict, one: dict, workers: int, *,
                   key: str | None = None, reason: str | None = None,
                   target: float | None = None) -> float | None:
        """Parallel efficiency of case ``many`` (on ``workers``) over its one-worker twin
        ``one``. A value above 100% is re-measured: both cases again, alternately, (their
        functions kept by ``measure``); if it still exceeds 100% it is kept only with the
        workload's ``reason`` (e.g. write-mostly kernel, cache effects), else it is dropped
        (``value`` None, with what was measured in ``dropped``). Returns the value kept."""
        def eff(a, b):
            return (a["throughput"] / (workers * b["throughput"])
                    if a.get("throughput") and b.get("throughput") else math.nan)
        value = eff(many, one)
        r = {"name": name, "kind": "efficiency", "value": value, "num": many["name"],
             "den": one["name"], "workers": workers, "target": target,
             "ok": None if target is None else bool(value >= target), "unit": "fraction"}
        if key:
            r["key"] = key
        if value > 1.0 and many.get("_fn") and one.get("_fn"):
            first = value
            ta, tb = [], []
            for _ in range(max(self.min_repeats, 3)):
                for fn, ts in ((one["_fn"], tb), (many["_fn"], ta)):
                    gc.collect()
                    t = time.perf_counter()
                    fn()
                    ts.append(time.perf_counter() - t)
            a = {"throughput": many["size"] / statistics.median(ta)}
            b = {"throughput": one["size"] / statistics.median(tb)}
            value = eff(a, b)
            r["remeasured"] = {"first": first, "again": value, "times_many": ta,
                               "times_one": tb}
        if value > 1.0:
            if reason:
                r["reason"] = reason
            else:
                r["dropped"] = value
                value = None
        r["value"] = value
        r["ok"] = None if target is None or value is None else bool(value >= target)
        self.ratios.append(r)
        shown = "not printed (above 100% without a reason)" if value is None else \
            f"{value:.0%}" + (f" ({reason})" if r.get("reason") else "")
        print(f"  efficiency {name:<33s} {shown}", flush=True)
        return value

    def same_answers(self, what: str, ok: bool, detail: Any = None) -> bool:
        """Record whether a fast path gave the reference's answers in this run
        (``notes["same_answers"]``); the profiling notebook's checks fail on a False."""
        self.notes.setdefault("same_answers", []).append(
            {"what": what, "ok": bool(ok), "detail": detail})
        if not ok:
            print(f"  DIFFERENT ANSWERS: {what}: {detail}", flush=True)
        return bool(ok)

    def note(self, key: str, value: Any) -> None:
        self.notes[key] = value

    def path(self) -> Path:
        return self.out_dir / (f"{self.workload}-{self.tag}.json" if self.tag
                               else f"{self.workload}.json")

    def to_dict(self) -> dict:
        return {
            "schema": 2, "workload": self.workload, "quick": self.quick, "tag": self.tag,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": time.perf_counter() - self.started,
            "machine": machine_info(), "versions": versions(), "copy_GBps": self.copy_GBps,
            "copy_GBps_all": self.copy_GBps_all,
            "size": self.size, "min_repeats": self.min_repeats,
            "fill_seconds": self.fill_seconds,
            "cases": [{k: v for k, v in c.items() if not k.startswith("_")} for c in self.cases],
            "ratios": self.ratios, "figures": self.figures, "headline": self.headline,
            "notes": self.notes,
        }

    def finish(self, write: bool = True) -> Path | None:
        d = self.to_dict()
        m = d["machine"]
        print(f"\n{self.workload}: {m['cores']} cores, {m['cpu']}, GPU: {m['gpu'] or 'none'}; "
              f"copy bandwidth {self.copy_GBps or 0:.1f} GB/s (1 thread), "
              f"{self.copy_GBps_all or 0:.1f} GB/s ({m['cores']} threads)")
        print(format_table(d))
        if not write:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        p = self.path()
        tmp = p.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(d, indent=1, default=_json_default))
        tmp.replace(p)
        print(f"wrote {p}")
        return p


def _workers(n_jobs: Any) -> int:
    try:
        return resolve_n_jobs(n_jobs)
    except (ValueError, TypeError):
        return 1


def _json_default(o: Any) -> Any:
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def format_table(d: dict) -> str:
    """The cases and ratios of a bench JSON as a plain-text table."""
    hdr = f"{'case':<44s} {'impl':<10s} {'size':>9s} {'jobs':>4s} {'backend':<10s} {'dev':<4s} " \
          f"{'median s':>10s} {'min-max s':>17s} {'n':>3s} {'thru/s':>9s} {'GB/s':>6s} {'%bw':>5s}"
    lines = [hdr, "-" * len(hdr)]
    for c in d["cases"]:
        bw = c.get("bw_fraction")
        lines.append(
            f"{c['name'][:44]:<44s} {str(c['impl'])[:10]:<10s} {_fmt(c['size']):>9s} "
            f"{str(c.get('n_jobs', '')):>4s} {str(c.get('backend', ''))[:10]:<10s} "
            f"{str(c.get('device', ''))[:4]:<4s} {c['seconds']:10.4f} "
            f"{_fmt(c.get('min', c['seconds'])):>8s}-{_fmt(c.get('max', c['seconds'])):<8s} "
            f"{c.get('repeats', len(c.get('times') or [1])):>3d} "
            f"{_fmt(c.get('throughput')):>9s} "
            f"{(format(c['GBps'], '.2f') if 'GBps' in c else '-'):>6s} "
            f"{(format(100 * bw, '.0f') if bw else '-'):>5s}")
    if d["ratios"]:
        lines.append("")
        for r in d["ratios"]:
            t = "" if r["target"] is None else \
                f"  target >= {r['target']:g}: {'ok' if r['ok'] else 'MISSED'}"
            if r.get("kind") == "efficiency":
                v = ("not printed (above 100% without a reason)" if r["value"] is None
                     else f"{r['value']:.0%}" + (f" ({r['reason']})" if r.get("reason") else ""))
                lines.append(f"efficiency {r['name']:<35s} {v}{t}")
                continue
            rng = "" if r.get("lo") is None else f" [{r['lo']:.2f}-{r['hi']:.2f}]"
            lines.append(f"ratio {r['name']:<40s} {r['value']:9.2f}x{rng}{t}")
    return "\n".join(lines)


def compare_impls(runs: dict[str, Callable[[], Any]], *, size: float, unit: str,
                  same: Callable[[Any, Any], bool] | None = None, repeats: int = 3,
                  warmup: int = 1, baseline: str | None = None):
    """Time several implementations **on the same work** in one run: the table every
    workload's ``compare_impls`` returns (one row per impl: median seconds of ``repeats``
    timed calls after ``warmup``, min, max, throughput in ``unit``/s, the speed-up over
    ``baseline`` (default: the first run, usually the reference) and, with ``same(a, b)``,
    whether its answers equal the baseline's). ``runs`` maps an impl name (a label such as
    ``"numba, 2 threads"`` is fine) to a no-argument callable doing the whole work."""
    import pandas as pd
    rows, results = [], {}
    for name, fn in runs.items():
        times, res = time_call(fn, repeats=repeats, warmup=warmup)
        results[name] = res
        sp = spread(times)
        rows.append({"impl": name, **sp, "throughput": size / sp["seconds"]
                     if sp["seconds"] > 0 else None, "unit": f"{unit}/s"})
    base = baseline if baseline is not None else next(iter(runs))
    t0 = next(r["seconds"] for r in rows if r["impl"] == base)
    for r in rows:
        r["speedup"] = t0 / r["seconds"] if r["seconds"] > 0 else None
        if same is not None:
            r["same_answers"] = bool(same(results[base], results[r["impl"]]))
    return pd.DataFrame(rows).set_index("impl")
