"""One workload's headline figures from its bench JSON(s) (:func:`summarize`, what the report
and the README show), and the profiling notebook's own ``metrics.json`` headline."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..fmt import human, times
from .sweep import WorkloadResult


def summarize(doc: dict | None, gdocs: Iterable[dict] = ()) -> dict[str, str]:
    """The report's headline for one workload from its bench JSON(s): the benchmark's own
    ``headline`` strings where it states them, else computed by rule
    (:func:`_computed_headline`: the named headline ratio and its numerator case's
    throughput, the parallel efficiency the benchmark measured -- never a maximum over
    cases), and the GPU figure a GPU run's JSON states when there is one
    (:func:`gpu_figure`)."""
    out = {"throughput": "-", "speedup_vs_reference": "-", "parallel_efficiency": "-",
           "gpu": "-"}
    if doc:
        out.update(_computed_headline(doc))
    gpu, gdoc = gpu_figure(d for d in gdocs if doc is None or d["workload"] == doc["workload"])
    if gdoc is not None:
        out["gpu"] = f"{gpu} ({Path(gdoc['_path']).name})"
    if doc:  # what the workload's benchmark states itself wins over what is computed here
        for k, v in (doc.get("headline") or {}).items():
            if k in out and isinstance(v, str) and v.strip() and not (
                    k == "gpu" and gdoc is not None):
                out[k] = v
    return out


def gpu_figure(gdocs: Iterable[dict]) -> tuple[str, dict | None]:
    """A workload's GPU figure from its GPU runs' JSONs, and the JSON it comes from (the
    caller names it): the headline a GPU run states itself (``headline["gpu"]``: one named
    case; the newest run's); ``("-", None)`` without one -- never the fastest GPU case
    against the best CPU case, which would be a maximum over different work."""
    gdocs = list(gdocs)
    stated = [d for d in gdocs if isinstance((d.get("headline") or {}).get("gpu"), str)
              and d["headline"]["gpu"].strip()]
    if stated:
        d = max(stated, key=lambda d: str(d.get("created", "")))
        return d["headline"]["gpu"].strip(), d
    return "-", None


def headline_ratio(doc: dict | None) -> dict | None:
    """The workload's headline ratio: the one its benchmark marked (``headline``: its main job
    at its reference size), never a maximum over cases; None when it marks none."""
    for r in (doc or {}).get("ratios", []) or []:
        if r.get("headline") and r.get("value") is not None:
            return r
    return None


def _computed_headline(doc: dict) -> dict[str, str]:
    """Headline figures by rule: the speed-up is the benchmark's headline ratio (one named
    case) and the throughput that of its numerator case; the parallel efficiency is the one
    the benchmark measured with ``Bench.efficiency`` (a figure above 100% is shown only with
    its stated reason). Nothing is a maximum over heterogeneous cases."""
    out = {}
    if not doc:
        return out
    r = headline_ratio(doc)
    if r is not None:
        rng = "" if r.get("lo") is None else f" [{times(r['lo'])}-{times(r['hi'])}]"
        out["speedup_vs_reference"] = f"{times(r['value'])}{rng} ({r['name']})"
        num = next((c for c in doc.get("cases", []) if c.get("name") == r.get("num")), None)
        if num is not None and num.get("throughput"):
            out["throughput"] = (f"{human(num['throughput'])} {num.get('unit', 'items')}/s "
                                 f"({num['name']})")
    effs = sorted((e for e in doc.get("ratios", []) or [] if e.get("kind") == "efficiency"),
                  key=lambda e: not e.get("key"))  # the tracked one first
    if effs:
        e = effs[0]
        if e.get("value") is None:
            out["parallel_efficiency"] = (f"not printed: above 100% on re-measurement "
                                          f"({e['name']})")
        else:
            why = f"; {e['reason']}" if e.get("reason") else ""
            out["parallel_efficiency"] = f"{e['value']:.0%} ({e['name']}{why})"
    return out



def headline(results: dict[str, WorkloadResult], gdocs: Iterable[dict] = ()) -> dict:
    """The profiling notebook's own metrics.json headline: the workloads it covered and each
    workload's summary figures (computed from the bench JSONs it shows)."""
    ok = [wl for wl, r in results.items() if r.ok]
    gdocs = list(gdocs)
    per = {wl: summarize(r.doc, gdocs) for wl, r in results.items() if r.ok}
    return {"throughput": f"{len(ok)} of {len(results)} workloads benchmarked",
            "speedup_vs_reference": "; ".join(f"{wl} {s['speedup_vs_reference']}"
                                              for wl, s in per.items()) or "-",
            "parallel_efficiency": "; ".join(f"{wl} {s['parallel_efficiency']}"
                                             for wl, s in per.items()) or "-",
            "gpu": f"{len(gdocs)} GPU bench JSON(s)" if gdocs else "-",
            "workloads": per}

