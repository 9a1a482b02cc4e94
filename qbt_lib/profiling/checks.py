"""The profiling notebook's checks: every figure traceable to a JSON and its machine, the
benchmarks run here complete (tracked figures, one headline, min-max, profiles), and each
workload's headline speed-up above a floor."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Iterable

from .config import ProfilingConfig
from .summary import headline_ratio
from .sweep import WorkloadResult
from .tables import speedup_table


def check_traceable(results: dict[str, WorkloadResult], gdocs: Iterable[dict] = ()) -> list[str]:
    """Problems that would make a shown figure untraceable (empty when all is well): every
    workload accounted for, every JSON with its path, machine and cases."""
    problems = []
    for wl, r in results.items():
        if r.status not in ("ok", "missing", "error"):
            problems.append(f"{wl}: unknown status {r.status!r}")
        if r.status == "error":  # a benchmark that crashed is a failure, not a footnote
            problems.append(f"{wl}: benchmark failed: {r.message}")
        if r.status != "ok" and not r.message:
            problems.append(f"{wl}: {r.status} without a reason")
    for d in [r.doc for r in results.values() if r.ok] + list(gdocs):
        name = Path(d.get("_path", "?")).name
        m = d.get("machine") or {}
        if not d.get("_path"):
            problems.append(f"{d.get('workload')}: JSON without a path")
        if not m.get("cores") or not m.get("cpu"):
            problems.append(f"{name}: machine not recorded")
        if not d.get("versions"):
            problems.append(f"{name}: versions not recorded")
    return problems


def check_real_runs(results: dict[str, WorkloadResult], cfg: ProfilingConfig) -> list[str]:
    """Problems with benchmarks run by this notebook (empty when all is well): every figure
    the workload's module says asv tracks (``TRACKED``) is in its JSON, the fast paths gave the
    reference's answers where the benchmark compared them, exactly one headline
    ratio (the figure the module's ``SUMMARY`` shows as the speed-up), every case with the
    min-max of its repeats, and,
    when profiling, the reference profiled (top functions and peak RSS)."""
    problems = []
    if cfg.results_from is not None:
        return problems
    for wl, r in results.items():
        if not r.ok:
            continue
        d = r.doc
        keys = {x.get("key") for x in d.get("ratios", []) + d.get("figures", [])}
        try:
            mod = importlib.import_module(f"qbt_lib.{wl}.bench")
        except ImportError:
            mod = None
        tracked = getattr(mod, "TRACKED", {})
        summary_key = getattr(mod, "SUMMARY", {}).get("speedup_vs_reference")
        cores = int((d.get("machine") or {}).get("cores") or 1)
        for k in tracked:
            if k not in keys and not (cores < 2 and "efficiency" in k):
                problems.append(f"{wl}: tracked figure {k!r} missing from the bench JSON")
        for a in (d.get("notes") or {}).get("same_answers", []) or []:
            if not a.get("ok"):
                problems.append(f"{wl}: different answers: {a.get('what')} ({a.get('detail')})")
        heads = [x for x in d.get("ratios", []) if x.get("headline")]
        if len(heads) != 1:
            problems.append(f"{wl}: {len(heads)} headline ratios (one named case expected)")
        elif summary_key and heads[0].get("key") != summary_key:
            # the report's speed-up (asv's tracked figure) and the JSON's headline must agree
            problems.append(f"{wl}: headline ratio {heads[0].get('key')!r} is not the "
                            f"summary's speed-up {summary_key!r}")
        for c in d.get("cases", []):
            if "min" not in c or "max" not in c:
                problems.append(f"{wl}: case {c['name']!r} without min-max")
        if cfg.profile:
            refs = [p for p in (d.get("notes") or {}).get("profiles", [])
                    if p.get("kind") == "reference"]
            if not refs or refs[0].get("error") or not refs[0].get("top"):
                problems.append(f"{wl}: reference not profiled"
                                + (f" ({refs[0]['error']})" if refs and refs[0].get("error")
                                   else ""))
            elif not refs[0].get("peak_rss_mb"):
                problems.append(f"{wl}: reference profile without peak RSS")
    return problems


def speedup_floor_failures(results: dict[str, WorkloadResult], floor: float) -> list[str]:
    """Workloads whose fast path is below ``floor`` times their reference: the headline ratio
    the benchmark names (its main job, the same work on both sides) when it marks one, else
    (an older JSON) the best CPU speed-up over the reference."""
    bad = []
    for wl, r in results.items():
        if not r.ok:
            continue
        head = headline_ratio(r.doc)
        if head is not None:
            if head["value"] < floor:
                bad.append(f"{wl}: headline speed-up {head['value']:.2f}x < {floor}x "
                           f"({head['name']})")
            continue
        sp = speedup_table(r.doc)
        sp = sp[sp["device"] == "cpu"]
        if not sp.empty and sp["speedup"].max() < floor:
            bad.append(f"{wl}: best speed-up {sp['speedup'].max():.2f}x < {floor}x")
    return bad
