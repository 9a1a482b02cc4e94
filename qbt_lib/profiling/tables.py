"""Tables from a bench JSON (its cases, speed-ups, ratios, parallel efficiency, bandwidth,
memory, profiles, GPU vs CPU, machines), each a DataFrame computed from the JSON alone, so a
JSON made on another machine is shown exactly like one made here."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from ..fmt import human, times
from ..parallel import available_cores
from .config import BACKENDS, ProfilingConfig

REFERENCE_IMPLS = ("reference", "ref", "before")


def is_reference(impl: Any) -> bool:
    s = str(impl or "").lower()
    return s in REFERENCE_IMPLS or s.startswith("reference")


def workers_of(case: dict, cores: int) -> int:
    if isinstance(case.get("workers"), (int, float)) and case["workers"] >= 1:
        return int(case["workers"])
    if str(case.get("backend", "sequential")) == "sequential":
        return 1
    try:
        n = int(case.get("n_jobs", 1))
    except (TypeError, ValueError):
        return 1
    if n < 0:
        return max(1, cores + 1 + n)
    return max(1, n)



_CASE_COLS = ["workload", "name", "impl", "size", "unit", "n_jobs", "workers", "backend",
              "device", "seconds", "min", "max", "repeats", "throughput", "GBps",
              "bw_fraction", "peak_rss_mb"]


def cases_frame(doc: dict | None):
    """The cases of a bench JSON as a DataFrame, with ``workers`` resolved against the
    machine the JSON was made on (``n_jobs=-1`` there means all of *its* cores)."""
    import pandas as pd
    if not doc:
        return pd.DataFrame(columns=_CASE_COLS + ["source"])
    cores = int((doc.get("machine") or {}).get("cores") or 1)
    rows = []
    for c in doc.get("cases", []):
        r = {k: c.get(k) for k in _CASE_COLS if k != "workload"}
        r["workload"] = doc.get("workload")
        r["workers"] = workers_of(c, cores)
        r["backend"] = c.get("backend") or "sequential"
        r["device"] = c.get("device") or "cpu"
        r["unit"] = c.get("unit") or "items"
        r["source"] = Path(doc.get("_path", "")).name
        ts = c.get("times") or []
        if r["min"] is None:  # a JSON from before min/max were kept
            r["min"] = min(ts) if ts else c.get("seconds")
            r["max"] = max(ts) if ts else c.get("seconds")
        if r["repeats"] is None:
            r["repeats"] = len(ts) or 1
        rows.append(r)
    df = pd.DataFrame(rows, columns=_CASE_COLS + ["source"])
    for k in ("size", "seconds", "min", "max", "throughput", "GBps", "bw_fraction",
              "peak_rss_mb"):
        df[k] = pd.to_numeric(df[k], errors="coerce").astype(float)
    df["workers"] = df["workers"].astype(int)
    df["is_reference"] = df["impl"].map(is_reference).astype(bool)
    return df


def filter_cases(df, cfg: ProfilingConfig, cores: int | None = None):
    """Keep the cases the notebook asked to see: single-worker baselines always, parallel
    cases whose worker count and backend were requested, and the requested devices."""
    if df.empty:
        return df
    cores = cores or available_cores()
    want = {max(1, cores + 1 + j) if j < 0 else j for j in cfg.n_jobs}
    # backends outside the parallel layer's (a workload's "numba-threads", "mp-spawn") are
    # not the notebook's to filter
    backend_ok = df["backend"].isin(cfg.backends) | ~df["backend"].isin(BACKENDS)
    keep = (df["device"].isin(cfg.devices)) & (
        (df["workers"] == 1) | (df["workers"].isin(want) & backend_ok))
    return df[keep]


def primary_unit(df) -> str | None:
    """The unit the workload is measured in: its reference's, else the most common."""
    if df.empty:
        return None
    refs = df[df["is_reference"]]
    src = refs if not refs.empty else df
    return str(src["unit"].value_counts().index[0])


def series_label(row) -> str:
    lab = str(row["impl"])
    if row["device"] != "cpu":
        lab += f" [{row['device']}]"
    if row["workers"] > 1:
        lab += f" x{row['workers']} {row['backend']}"
    return lab


def speedup_table(doc: dict):
    """Each non-reference case's throughput over the reference's (same unit; same size when
    the reference ran at it, else the reference size nearest in log scale)."""
    import pandas as pd
    df = cases_frame(doc)
    rows = []
    for unit, g in df.groupby("unit", sort=False):
        refs = g[g["is_reference"] & g["throughput"].notna()]
        if refs.empty:
            continue
        for _, c in g[~g["is_reference"] & g["throughput"].notna()].iterrows():
            same = refs[refs["size"] == c["size"]]
            r = (same if not same.empty else refs.iloc[
                [int((refs["size"].map(math.log) - math.log(c["size"])).abs().argmin())]]
                 ).iloc[0]
            sp = c["throughput"] / r["throughput"]
            # the range: slowest run of the case against the fastest of the reference, and
            # the other way round
            lo = sp * (c["seconds"] / c["max"]) * (r["min"] / r["seconds"]) \
                if c["max"] and r["seconds"] else sp
            hi = sp * (c["seconds"] / c["min"]) * (r["max"] / r["seconds"]) \
                if c["min"] and r["seconds"] else sp
            rows.append({"workload": doc["workload"], "case": c["name"],
                         "impl": c["impl"], "size": c["size"], "unit": unit,
                         "workers": c["workers"], "device": c["device"],
                         "reference size": r["size"], "speedup": sp,
                         "min": min(lo, sp), "max": max(hi, sp)})
    return pd.DataFrame(rows, columns=["workload", "case", "impl", "size", "unit", "workers",
                                       "device", "reference size", "speedup", "min", "max"])


def ratios_table(doc: dict):
    """The speed-ups the workload's benchmark claims (its ``bench.ratio`` calls)."""
    import pandas as pd
    rows = []
    for r in doc.get("ratios", []):
        eff = r.get("kind") == "efficiency"
        v = r.get("value")
        rows.append({
            "workload": doc["workload"],
            "ratio": ("efficiency: " if eff else "") + str(r["name"]),
            "headline": "yes" if r.get("headline") else "",
            "value": math.nan if v is None else float(v),
            "min-max": ("not printed: above 100% on re-measurement" if eff and v is None
                        else (r.get("reason") or "") if eff
                        else "-" if r.get("lo") is None
                        else f"{times(r['lo'])}-{times(r['hi'])}"),
            "target": r.get("target"),
            "status": "-" if r.get("ok") is None else ("ok" if r["ok"] else "MISSED"),
            "of": r.get("num"), "over": r.get("den")})
    return pd.DataFrame(rows, columns=["workload", "ratio", "headline", "value", "min-max",
                                       "target", "status", "of", "over"])


def _baseline(case, ones):
    """The single-worker case a parallel case is measured against: the one it names
    (``baseline`` in the case), else the most similar name among the single-worker cases of
    the same implementation and size (``... n_jobs=2`` pairs with ``... n_jobs=1``, a
    kernel on 2 threads with the same kernel on 1), the same backend breaking ties."""
    import difflib
    named = case.get("baseline") if hasattr(case, "get") else None
    if isinstance(named, str) and (ones["name"] == named).any():
        return ones[ones["name"] == named].iloc[0]
    score = [(difflib.SequenceMatcher(None, str(case["name"]), str(o["name"])).ratio(),
              o["backend"] == case["backend"], -i) for i, (_, o) in enumerate(ones.iterrows())]
    return ones.iloc[max(range(len(score)), key=lambda i: score[i])]


def parallel_table(doc: dict, cfg: ProfilingConfig | None = None):
    """Parallel speed-up and efficiency: every case run on more than one worker against its
    single-worker baseline (see :func:`_baseline`) of the same implementation, size and
    device; each baseline is listed too (1 worker, speed-up 1)."""
    import pandas as pd
    df = cases_frame(doc)
    if cfg is not None:
        df = filter_cases(df, cfg, int((doc.get("machine") or {}).get("cores") or 1))
    extra = {c["name"]: c.get("baseline") for c in doc.get("cases", [])}
    df = df.assign(baseline=df["name"].map(extra))
    # what the benchmark's efficiency() kept for a case: a reason for a figure above 100%
    reasons = {e.get("num"): e for e in doc.get("ratios", []) or []
               if e.get("kind") == "efficiency"}
    cols = ["workload", "impl", "size", "unit", "device", "backend", "workers", "seconds",
            "speedup", "efficiency", "note", "baseline"]
    rows = []
    for key, g in df.groupby(["impl", "size", "unit", "device"], sort=False):
        ones, multi = g[g["workers"] == 1], g[g["workers"] > 1]
        if ones.empty or multi.empty:
            continue
        used = {}
        for _, c in multi.iterrows():
            b = _baseline(c, ones)
            used[b["name"]] = b
            sp = b["seconds"] / c["seconds"] if c["seconds"] > 0 else math.nan
            eff, note = sp / c["workers"], ""
            if eff > 1.0:  # above 100%: shown only with the reason the benchmark stated
                e = reasons.get(c["name"]) or {}
                if e.get("reason") and e.get("value") is not None:
                    note = f"above 100%: {e['reason']}"
                else:
                    note = (f"above 100% ({eff:.0%}) in one comparison of medians: not "
                            "printed (noise)")
                    eff = math.nan
            rows.append({"workload": doc["workload"], "impl": key[0], "size": key[1],
                         "unit": key[2], "device": key[3], "backend": c["backend"],
                         "workers": int(c["workers"]), "seconds": c["seconds"],
                         "speedup": sp, "efficiency": eff, "note": note,
                         "baseline": b["name"]})
        for name, b in used.items():
            rows.append({"workload": doc["workload"], "impl": key[0], "size": key[1],
                         "unit": key[2], "device": key[3], "backend": b["backend"],
                         "workers": 1, "seconds": b["seconds"], "speedup": 1.0,
                         "efficiency": 1.0, "note": "", "baseline": name})
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["impl", "size", "baseline", "workers", "backend"], kind="stable",
                           ignore_index=True)


def bandwidth_table(doc: dict):
    """Cases that recorded the bytes they write: achieved GB/s and the fraction of the copy
    bandwidth measured on the same machine in the same run."""
    import pandas as pd
    df = cases_frame(doc)
    df = df[df["GBps"].notna()]
    copy = doc.get("copy_GBps")
    out = pd.DataFrame({"workload": df["workload"], "case": df["name"], "impl": df["impl"],
                        "size": df["size"], "workers": df["workers"], "device": df["device"],
                        "GB/s": df["GBps"], "copy GB/s": copy,
                        "fraction of copy": df["bw_fraction"]})
    return out.reset_index(drop=True)


def memory_table(doc: dict):
    """Peak resident memory per case (``VmHWM`` reset before each case). When the JSON
    records the process's RSS before the workload started (``notes["rss_at_start_mb"]``,
    written by :func:`run_benchmark`, where one kernel runs every workload), the peak above it
    is shown too."""
    import pandas as pd
    df = cases_frame(doc)
    out = pd.DataFrame({"workload": df["workload"], "case": df["name"], "impl": df["impl"],
                        "size": df["size"], "workers": df["workers"],
                        "peak RSS MiB": df["peak_rss_mb"]})
    rss0 = (doc.get("notes") or {}).get("rss_at_start_mb")
    if isinstance(rss0, (int, float)):
        out["above start MiB"] = (df["peak_rss_mb"] - rss0).clip(lower=0)
    return out.reset_index(drop=True)


def profile_tables(doc: dict) -> list[tuple[dict, Any]]:
    """``[(header, DataFrame of the top functions)]`` for each profile stored in the JSON."""
    import pandas as pd
    out = []
    for p in (doc.get("notes") or {}).get("profiles", []) or []:
        df = pd.DataFrame(p.get("top", []), columns=["function", "ncalls", "tottime",
                                                     "cumtime"])
        out.append(({k: p.get(k) for k in ("kind", "case", "impl", "size", "unit",
                                            "wall_seconds", "total_calls", "peak_rss_mb",
                                            "error")}, df))
    return out


#: :func:`gpu_table`'s ``same work`` for a GPU case of a JSON that states no GPU ratio
FASTEST_CPU = "not stated: the fastest CPU case of the unit, which may do other work"


def gpu_table(gdocs: list[dict]):
    """GPU vs CPU: each GPU case against the CPU case it is compared with on the same work,
    measured on the same machine in the same run; GB/s, and the fraction of the device's copy
    bandwidth when the JSON records it (``notes["gpu_copy_GBps"]``).

    The CPU side of a GPU case is the ``den`` of the bench ratio whose ``num`` is that case
    (its ``same`` -- what both sides do -- in the ``same work`` column). A JSON stating such
    ratios leaves a GPU case none of them names without a CPU side ("-"). Only a JSON stating
    none (an older run) falls back to the fastest CPU case of the same unit (same size when
    there is one), and says so: that case may do other work."""
    import pandas as pd
    rows = []
    for d in gdocs:
        df = cases_frame(d)
        gpu = df[(df["device"] == "gpu") & df["throughput"].notna()]
        device = dict(zip(df["name"], df["device"]))
        # the GPU-vs-CPU ratios the benchmark states, by their GPU case
        paired = {r["num"]: r for r in d.get("ratios", []) or []
                  if r.get("kind") != "efficiency" and device.get(r.get("num")) == "gpu"
                  and device.get(r.get("den")) == "cpu"}
        # the harness measures the *host* copy bandwidth; a GPU case is compared with the
        # device's own copy bandwidth only when the workload recorded it
        gcopy = (d.get("notes") or {}).get("gpu_copy_GBps")
        for _, c in gpu.iterrows():
            b, ratio, same = None, math.nan, "-"
            if c["name"] in paired:
                r = paired[c["name"]]
                b = df[df["name"] == r["den"]].iloc[0]
                ratio = (float(r["value"]) if r.get("value") is not None
                         else c["throughput"] / b["throughput"])
                same = r.get("same") or r["name"]
            elif not paired:
                cpu = df[(df["device"] == "cpu") & (df["unit"] == c["unit"]) &
                         df["throughput"].notna()]
                at = cpu[cpu["size"] == c["size"]]
                cpu = at if not at.empty else cpu
                if not cpu.empty:
                    b = cpu.loc[cpu["throughput"].idxmax()]
                    ratio = c["throughput"] / b["throughput"]
                    same = FASTEST_CPU
            rows.append({"workload": d["workload"], "json": Path(d["_path"]).name,
                         "gpu": (d.get("machine") or {}).get("gpu") or "?",
                         "case": c["name"], "size": c["size"], "unit": c["unit"],
                         "gpu throughput": c["throughput"],
                         "cpu case": b["name"] if b is not None else "-",
                         "cpu throughput": b["throughput"] if b is not None else math.nan,
                         "gpu / cpu": ratio, "same work": same,
                         "GB/s": c["GBps"],
                         "fraction of device copy": (c["GBps"] / gcopy if gcopy else math.nan)})
    return pd.DataFrame(rows, columns=["workload", "json", "gpu", "case", "size", "unit",
                                       "gpu throughput", "cpu case", "cpu throughput",
                                       "gpu / cpu", "same work", "GB/s",
                                       "fraction of device copy"])


def machine_table(docs: Iterable[dict]):
    """Where each bench JSON was measured: machine, copy bandwidth, versions."""
    import pandas as pd
    rows = []
    for d in docs:
        m = d.get("machine") or {}
        v = d.get("versions") or {}
        rows.append({"json": Path(d.get("_path", "?")).name, "workload": d.get("workload"),
                     "quick": d.get("quick"), "created": d.get("created"),
                     "cores": m.get("cores"), "cpu": m.get("cpu"),
                     "memory GB": m.get("memory_gb"), "gpu": m.get("gpu") or "none",
                     "copy GB/s": d.get("copy_GBps"),
                     "versions": ", ".join(f"{k} {val}" for k, val in v.items())})
    return pd.DataFrame(rows)


def rounded(df):
    """A copy for display (stable text output): float columns holding only whole numbers
    (sizes, counts) as integers, other floats as text with 3 significant digits; a missing
    value (None, NaN) reads "-", never "None" or "NaN"."""
    import pandas as pd
    out = df.copy()
    for c in out.columns:
        col = out[c]
        if not pd.api.types.is_float_dtype(col):
            if col.isna().any():
                out[c] = col.astype(object).where(col.notna(), "-")
            continue
        whole = col.dropna()
        if (len(whole) == len(col) and len(whole) and (whole == whole.round()).all()
                and (whole.abs() < 2**53).all()):
            out[c] = col.round().astype("Int64")
        elif len(whole) and (whole == whole.round()).all() and (whole.abs() < 2**53).all():
            out[c] = col.map(lambda x: "-" if pd.isna(x) else f"{int(round(x)):d}")
        else:  # as text: 3 significant digits, k/M/G for large values
            out[c] = col.map(lambda x: "-" if pd.isna(x) else human(x))
    return out

