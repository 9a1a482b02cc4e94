"""The benchmark harness behind ``python -m qbt_lib.bench <workload> [--quick]``.

A workload provides ``qbt_lib.<workload>.bench.run(bench: Bench)``; it calls
``bench.measure`` for every implementation/size/n_jobs/backend/device it compares, in one
process and one run, and ``bench.ratio`` for the speed-ups it claims. ``Bench.finish`` prints
the table and writes ``outputs/bench/<workload>[-<tag>].json`` with the machine, the library
versions and the measured copy bandwidth, so every figure can be traced to where it was
measured. A JSON made on another machine (a GPU run) can be dropped into ``outputs/bench/``.

JSON schema (``schema: 1``)::

    {"workload", "quick", "tag", "created", "machine", "versions", "copy_GBps",
     "cases": [{"name", "impl", "size", "unit", "n_jobs", "backend", "device", "seconds",
                "times", "throughput", "GBps", "bw_fraction", "peak_rss_mb", ...extra}],
     "ratios": [{"name", "value", "num", "den", "target", "ok"}],
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
from typing import Any, Callable

from .. import paths
from ..parallel import available_cores, resolve_n_jobs
from ..machine import copy_bandwidth, machine_info, peak_rss_mb, peak_rss_reset, versions

WORKLOADS = ("synth", "straddles", "walkforward", "waves", "marketsim")


def time_call(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1,
              max_seconds: float | None = None) -> tuple[list[float], Any]:
    """Wall times of ``repeats`` calls after ``warmup`` calls; stops repeating early once
    ``max_seconds`` of timed calls have been spent (at least one timed call is made)."""
    result = None
    for _ in range(warmup):
        result = fn()
    times: list[float] = []
    spent = 0.0
    for _ in range(max(1, repeats)):
        gc.collect()
        t = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t
        times.append(dt)
        spent += dt
        if max_seconds is not None and spent >= max_seconds:
            break
    return times, result


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
                 out_dir: str | Path | None = None, measure_bandwidth: bool = True):
        self.workload = workload
        self.quick = quick
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
                device: str = "cpu", repeats: int = 3, warmup: int = 1,
                max_seconds: float | None = 30.0, nbytes: float | None = None,
                **extra: Any) -> dict:
        """Time ``fn`` (median of repeats after warm-up) and record it as a case.

        ``size`` is the problem size in ``unit`` (throughput = size / median seconds);
        ``nbytes`` is the bytes the kernel writes, for GB/s and the fraction of the measured
        copy bandwidth. Extra keyword arguments are stored with the case.
        """
        peak_rss_reset()
        times, result = time_call(fn, repeats=repeats, warmup=warmup, max_seconds=max_seconds)
        med = statistics.median(times)
        case = {"name": name, "impl": impl, "size": size, "unit": unit, "n_jobs": n_jobs,
                "backend": backend, "device": device, "seconds": med, "times": times,
                "throughput": size / med if med > 0 else None,
                "peak_rss_mb": peak_rss_mb()}
        if nbytes is not None and med > 0:
            case["GBps"] = nbytes / med / 1e9
            frac = self.bw_fraction(case["GBps"], n_jobs)
            if frac is not None:
                case["bw_fraction"] = frac
        case.update(extra)
        self.cases.append(case)
        print(f"  {name:<44s} {med:10.4f} s  {_fmt(case['throughput']):>9s} {unit}/s"
              + (f"  {case['GBps']:.2f} GB/s" if "GBps" in case else ""), flush=True)
        case["_result"] = result
        return case

    def bw_fraction(self, GBps: float, n_jobs: Any = 1) -> float | None:
        """``GBps`` as a fraction of the copy bandwidth measured with as many threads as the
        case used workers (one thread, or all cores)."""
        ref_bw = self.copy_GBps if _workers(n_jobs) <= 1 else self.copy_GBps_all
        return GBps / ref_bw if ref_bw else None

    def add_case(self, name: str, seconds: float, *, impl: str, size: float,
                 unit: str = "items", **extra: Any) -> dict:
        """Record a case timed elsewhere (e.g. in a fresh subprocess)."""
        case = {"name": name, "impl": impl, "size": size, "unit": unit, "seconds": seconds,
                "times": [seconds], "throughput": size / seconds if seconds > 0 else None}
        case.setdefault("n_jobs", extra.pop("n_jobs", 1))
        case.setdefault("backend", extra.pop("backend", "sequential"))
        case.setdefault("device", extra.pop("device", "cpu"))
        case.update(extra)
        self.cases.append(case)
        print(f"  {name:<44s} {seconds:10.4f} s", flush=True)
        return case

    def ratio(self, name: str, num: dict, den: dict, target: float | None = None,
              per_unit: bool = True) -> float:
        """Speed-up of case ``num`` over case ``den`` (throughput ratio when
        ``per_unit``, so cases of different sizes compare fairly)."""
        if per_unit:
            value = (num["throughput"] or 0) / den["throughput"] if den["throughput"] else math.nan
        else:
            value = den["seconds"] / num["seconds"]
        r = {"name": name, "value": value, "num": num["name"], "den": den["name"],
             "target": target, "ok": None if target is None else bool(value >= target)}
        self.ratios.append(r)
        tgt = "" if target is None else f"   (target >= {target:g}: {'ok' if r['ok'] else 'MISSED'})"
        print(f"  ratio {name:<38s} {value:10.2f}x{tgt}", flush=True)
        return value

    def note(self, key: str, value: Any) -> None:
        self.notes[key] = value

    def path(self) -> Path:
        return self.out_dir / (f"{self.workload}-{self.tag}.json" if self.tag
                               else f"{self.workload}.json")

    def to_dict(self) -> dict:
        return {
            "schema": 1, "workload": self.workload, "quick": self.quick, "tag": self.tag,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": time.perf_counter() - self.started,
            "machine": machine_info(), "versions": versions(), "copy_GBps": self.copy_GBps,
            "copy_GBps_all": self.copy_GBps_all,
            "cases": [{k: v for k, v in c.items() if not k.startswith("_")} for c in self.cases],
            "ratios": self.ratios, "headline": self.headline, "notes": self.notes,
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
          f"{'median s':>10s} {'thru/s':>9s} {'GB/s':>6s} {'%bw':>5s}"
    lines = [hdr, "-" * len(hdr)]
    for c in d["cases"]:
        bw = c.get("bw_fraction")
        lines.append(
            f"{c['name'][:44]:<44s} {str(c['impl'])[:10]:<10s} {_fmt(c['size']):>9s} "
            f"{str(c.get('n_jobs', '')):>4s} {str(c.get('backend', ''))[:10]:<10s} "
            f"{str(c.get('device', ''))[:4]:<4s} {c['seconds']:10.4f} "
            f"{_fmt(c.get('throughput')):>9s} "
            f"{(format(c['GBps'], '.2f') if 'GBps' in c else '-'):>6s} "
            f"{(format(100 * bw, '.0f') if bw else '-'):>5s}")
    if d["ratios"]:
        lines.append("")
        for r in d["ratios"]:
            t = "" if r["target"] is None else \
                f"  target >= {r['target']:g}: {'ok' if r['ok'] else 'MISSED'}"
            lines.append(f"ratio {r['name']:<40s} {r['value']:9.2f}x{t}")
    return "\n".join(lines)


def load_results(bench_dir: str | Path | None = None) -> list[dict]:
    """Every bench JSON under ``outputs/bench`` (CPU runs and dropped-in GPU runs)."""
    d = Path(bench_dir) if bench_dir is not None else paths.BENCH_DIR
    out = []
    for p in sorted(d.glob("*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(r, dict) and "workload" in r and "cases" in r:
            r["_path"] = str(p)
            out.append(r)
    return out
