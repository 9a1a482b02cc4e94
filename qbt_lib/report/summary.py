"""What the report and the README show: one row per workload, every figure traced to the file
it comes from (the newest committed asv results, else the workload's bench JSON, else the
``metrics.json`` its notebook wrote)."""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Iterable

from .. import paths
from ..bench import WORKLOADS, history
from ..bench.jsons import bench_dirs, find_jsons, has_gpu, pick_primary, unique_names
from ..fmt import human, rel, times
from ..metrics import read_metrics
from ..profiling.summary import gpu_figure, summarize

HEADLINE_KEYS = ("throughput", "speedup_vs_reference", "parallel_efficiency", "gpu")


def bench_docs(dirs: Iterable[Path] | None = None) -> list[dict]:
    """Every bench JSON in ``dirs`` (default :func:`~qbt_lib.bench.jsons.bench_dirs`:
    ``outputs/bench``, the committed ``benchmarks/gpu/<tag>/``, ``outputs/profiling/bench``)."""
    return find_jsons(dirs if dirs is not None else bench_dirs())


def workload_docs(docs: list[dict], workload: str) -> tuple[dict | None, list[dict]]:
    """The primary CPU bench JSON of a workload and its GPU JSONs (one per file name: a run
    dropped into ``outputs/bench`` before the committed one of the same name)."""
    primary = pick_primary(docs, workload)
    gpus = unique_names(d for d in docs if d["workload"] == workload and has_gpu(d)
                        and d is not primary)
    return primary, gpus


def machine_short(m: dict | None) -> str:
    """``16 cores, <cpu>, GPU <gpu>``: where a JSON was measured, in one line."""
    if not m:
        return "machine not recorded"
    s = f"{m.get('cores', '?')} cores, {m.get('cpu', '?')}"
    if m.get("gpu"):
        s += f", GPU {m['gpu']}"
    return s


# --------------------------------------------------------------------------- asv history
def fmt_tracked(value: float | None, unit: str) -> str:
    """An asv-tracked figure in its unit (``x``, ``fraction``, ``<unit>/s``)."""
    if value is None or value != value:
        return "n/a (not measured or not printed)"
    if unit == "x":
        return times(value)
    if unit == "fraction":
        return f"{value:.0%}"
    return f"{human(value)} {unit}"


def asv_summary(results_dir: Path | None = None) -> dict | None:
    """The summary figures from the newest committed asv results for this machine (else the
    newest of any machine): ``{"path", "rel", "machine", "commit", "rows": {workload:
    {headline key: text}}}``, None when no results are committed."""
    p = history.newest_results(results_dir=results_dir)
    if p is None:
        return None
    r = history.read_results(p)
    rows = {}
    for wl in WORKLOADS:
        figs = r["figures"].get(wl, {})
        try:
            summary = importlib.import_module(f"qbt_lib.{wl}.bench").SUMMARY
        except (ImportError, AttributeError):
            summary = {}
        row = {}
        for col, key in summary.items():
            if key in figs:
                v, unit = figs[key]
                row[col] = f"{fmt_tracked(v, unit)} ({key})"
        rows[wl] = row
    return {"path": p, "rel": rel(p), "machine": r["machine"],
            "commit": (r["commit"] or "")[:8], "rows": rows}


# --------------------------------------------------------------------------- summary rows
#: :func:`summary_rows`'s ``hist`` when the caller has not read the asv results
_READ_HIST = object()


def summary_rows(outputs: Path | None = None, docs: list[dict] | None = None,
                 results_dir: Path | None = None, *, hist: Any = _READ_HIST) -> list[dict]:
    """One row per workload (every workload, built or not): headline figures from the newest
    committed asv results for this machine (``benchmarks/results``), else from its bench
    JSON, else from its metrics.json, and where each came from. ``hist`` is
    :func:`asv_summary`'s answer when the caller has it already (None: no asv results);
    otherwise it is read from ``results_dir``."""
    outputs = outputs or paths.OUTPUTS
    docs = bench_docs(bench_dirs(outputs)) if docs is None else docs
    if hist is _READ_HIST:
        hist = asv_summary(results_dir)
    rows = []
    for name in WORKLOADS:
        built = (paths.NOTEBOOKS / f"{name}.ipynb").exists()
        nb = outputs / name / f"{name}.ipynb"
        m = read_metrics(name, outputs) or {}
        primary, gpus = workload_docs(docs, name)
        computed = summarize(primary, gpus) if (primary or gpus) else {}
        gdoc = gpu_figure(gpus)[1]
        head, source, notebook = {}, {}, {}
        hrow = (hist or {}).get("rows", {}).get(name, {})
        for k in HEADLINE_KEYS:
            v = (m.get("headline") or {}).get(k)
            v = None if v in (None, "", "-") else str(v)
            if k in hrow:  # the recorded history: the newest committed asv results
                head[k], source[k] = hrow[k], hist["rel"]
                notebook[k] = v
            elif computed.get(k, "-") != "-":  # the benchmark's figure: traceable to its JSON
                head[k] = computed[k]
                source[k] = Path((gdoc if k == "gpu" and gdoc else primary or gpus[0])
                                 ["_path"]).name
                notebook[k] = v if v != head[k] else None
            elif v is not None:
                head[k], source[k], notebook[k] = v, "metrics.json", None
            else:
                head[k], source[k], notebook[k] = "-", "", None
        if not built:
            state = "notebook not built yet"
        elif not nb.exists():
            state = "not executed"
        elif notebook_failed(nb):
            state = "failed"
        else:
            state = "executed"
        rows.append({"workload": name, "state": state, "link": f"{name}.html",
                     "notebook": nb if nb.exists() else None, "headline": head,
                     "source": source, "notebook_headline": notebook, "wall_seconds": m.get("wall_seconds"),
                     "metrics": m or None, "metrics_path": outputs / name / "metrics.json",
                     "bench": primary, "gpu_benches": gpus,
                     "machine": m.get("machine") or (primary or {}).get("machine")})
    return rows


def notebook_failed(nb: Path) -> bool:
    try:
        d = json.loads(nb.read_text())
    except (OSError, json.JSONDecodeError):
        return True
    for c in d.get("cells", []):
        if any(o.get("output_type") == "error" for o in c.get("outputs", [])):
            return True
    return bool(d.get("metadata", {}).get("papermill", {}).get("exception"))

