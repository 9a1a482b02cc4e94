"""The seeds' published figures (each quoted from the docs page of its workload), and ours
against them: :data:`SEED_FIGURES`, :func:`seed_table`, :func:`seed_comparison`."""
from __future__ import annotations

import math
from typing import Any, Iterable

from ..fmt import human, span, times
from .summary import headline_ratio
from .tables import cases_frame, speedup_table

# where each published figure is quoted, in the repository (the original write-ups' figures)
_S000 = "docs/synth.md"
_S001 = "docs/walkforward.md"
_S002 = "docs/waves.md"
_S003 = "docs/marketsim.md"
_S004 = "docs/straddles.md"


def _t(workload, source, label, size, unit, lo, hi=None, workers=1, note=""):
    return {"workload": workload, "source": source, "label": label, "kind": "time",
            "size": float(size), "unit": unit, "seconds_lo": float(lo),
            "seconds_hi": float(hi if hi is not None else lo), "workers": workers, "note": note}


def _x(workload, source, label, lo, hi=None, workers=None, note=""):
    return {"workload": workload, "source": source, "label": label, "kind": "speedup",
            "size": None, "unit": None, "value_lo": float(lo),
            "value_hi": float(hi if hi is not None else lo), "workers": workers, "note": note}


#: The published before/after figures of the five seeds (and the specs' measured baselines),
#: each with the file it is quoted from. ``time`` figures are (size, seconds lo..hi) in the
#: seed's unit and compare with our cases of the same unit by throughput; ``speedup`` figures
#: compare with our best speed-up over the reference.
SEED_FIGURES: list[dict] = [
    _t("synth", _S000, "before: sequential loop", 1e6, "samples", 300, workers=1,
       note="1M samples in ~5 minutes"),
    _t("synth", _S000, "before: sequential loop", 1e7, "samples", 3000, workers=1,
       note="10M samples in ~50 minutes"),
    _t("synth", _S000, "after: vectorized, 1 core", 1e6, "samples", 10, 20, workers=1,
       note="1M samples in ~10-20 s"),
    _t("synth", _S000, "after: vectorized, 1 core", 4e7, "samples", 480, 720, workers=1,
       note="40M samples in ~8-12 min"),
    _t("synth", _S000, "after: vectorized + joblib, 8 cores", 1e7, "samples", 15, 25,
       workers=8, note="10M samples in ~15-25 s on 8 cores"),
    _t("synth", _S000, "after: vectorized + joblib, 8 cores", 3.2e8, "samples", 480, 720,
       workers=8, note="320M samples in ~8-12 min on 8 cores (160-320 GB RAM)"),
    _x("synth", _S000, "combined speed-up claimed", 40, 240, workers=8,
       note="40-240x depending on size and cores"),
    _t("straddles", _S004, "single thread", 2304, "straddles", 0.73, workers=1,
       note="2,304 straddles in 0.73 s (3,157 straddles/s)"),
    _t("straddles", _S004, "16 processes, pickled dict", 2304, "straddles", 72.53, workers=16,
       note="the pitfall: 31.8 straddles/s"),
    _x("walkforward", _S001, "target: wall-clock on 8 cores", 3, workers=8,
       note=">= 3x without changing results (1e-9)"),
    _x("walkforward", _S001, "expected total of the plan", 6, 12, workers=8,
       note="folds x I/O x vectorization x mmap"),
    _t("waves", _S002, "baseline: 1 symbol, 500 windows", 500, "windows", 60, workers=6,
       note="60 s with 6 workers"),
    _t("waves", _S002, "CPU-optimized: 1 symbol, 500 windows", 500, "windows", 12, workers=30,
       note="12 s with 30 workers"),
    _t("waves", _S002, "full acceleration (30 workers + GPU)", 500, "windows", 3, workers=30,
       note="3 s with 30 workers and a 140 GB GPU"),
    _t("waves", _S002, "baseline: S&P 500", 500, "symbols", 8.3 * 3600, workers=6,
       note="8.3 hours"),
    _t("waves", _S002, "full acceleration: S&P 500", 500, "symbols", 25 * 60, workers=30,
       note="25 minutes with 30 workers + GPU"),
    _t("waves", "docs/waves.md", "original find_impulsive_wave, 1 core", 579195, "tuples",
       579195 / 30e3, 579195 / 20e3, workers=1, note="20-30 thousand tuples/s"),
    _t("marketsim", _S003, "sequential analysis, 30 symbols x 70 sims", 2100, "symbol-sims",
       95, workers=1, note="~30 symbols in ~95 s, 70 simulations each"),
    _t("marketsim", _S003, "thread-parallel analysis (32 workers)", 2100, "symbol-sims", 10, 15,
       workers=32, note="~10-15 s on a 72-CPU machine"),
    _t("marketsim", _S003, "first inference: model compile", 1, "start", 40, 42, workers=1,
       note="~40 s torch.compile on first use (warm-up 35-40 s)"),
    _x("marketsim", _S003, "warm-up + parallel, subsequent runs", 15, workers=32,
       note="150 s -> 10 s"),
]


def singular(unit: Any) -> str:
    u = str(unit or "").strip().lower()
    return u[:-1] if u.endswith("s") and not u.endswith("ss") else u


def seed_figures(workload: str | None = None, doc: dict | None = None) -> list[dict]:
    """The seed figures for ``workload``: the bench JSON's own (``notes["seed_figures"]``)
    when it states them, else :data:`SEED_FIGURES`."""
    own = (doc or {}).get("notes", {}).get("seed_figures") if doc else None
    figs = own if own else SEED_FIGURES
    return [f for f in figs if workload is None or f.get("workload", workload) == workload]


def seed_table(workloads: Iterable[str] | None = None):
    """The seed figures as a DataFrame (what the seed published, and where)."""
    import pandas as pd
    rows = []
    for f in SEED_FIGURES:
        if workloads is not None and f["workload"] not in workloads:
            continue
        if f["kind"] == "time":
            lo = f["size"] / f["seconds_hi"]
            hi = f["size"] / f["seconds_lo"]
            fig = f"{human(f['size'])} {f['unit']} in {span(f['seconds_lo'], f['seconds_hi'])} s"
            thr = f"{span(lo, hi)} {f['unit']}/s"
        else:
            fig = f"{span(f['value_lo'], f['value_hi'])}x"
            thr = ""
        rows.append({"workload": f["workload"], "seed figure": f["label"], "published": fig,
                     "throughput": thr or "-",
                     "workers": "-" if f["workers"] is None else f["workers"],
                     "note": f["note"],
                     "source": f["source"]})
    return pd.DataFrame(rows)



def seed_comparison(doc: dict):
    """Our best figure against each published seed figure that has a comparable case.

    ``time`` figures compare by throughput in the same unit: a single-worker seed figure
    against our best single-worker CPU case, a multi-worker one against our best CPU case
    (whatever this machine's cores allowed; both worker counts are shown). Points of one
    figure at several sizes are merged into one throughput range. ``speedup`` figures compare
    with the benchmark's headline ratio (its named main job, the same work on both sides);
    only a JSON without one falls back to our best speed-up over the reference.
    """
    import pandas as pd
    df = cases_frame(doc)
    workers = dict(zip(df["name"], df["workers"]))
    df = df[~df["is_reference"] & (df["device"] == "cpu") & df["throughput"].notna()]
    raw = {c["name"]: c for c in doc.get("cases", [])}
    rows = []
    sp = speedup_table(doc)
    sp = sp[sp["device"] == "cpu"]
    head = headline_ratio(doc)
    merged: dict[tuple, dict] = {}
    for f in seed_figures(doc["workload"], doc):
        key = (f["label"], f["kind"], f.get("unit"))
        if key not in merged:
            merged[key] = dict(f, lo=math.inf, hi=0.0)
        m = merged[key]
        if f["kind"] == "time":
            m["lo"] = min(m["lo"], f["size"] / f["seconds_hi"])
            m["hi"] = max(m["hi"], f["size"] / f["seconds_lo"])
        else:
            m["lo"], m["hi"] = f["value_lo"], f["value_hi"]
    for f in merged.values():
        base = {"workload": doc["workload"], "seed figure": f["label"],
                "source": f["source"]}
        if f["kind"] == "time":
            seed = f"{span(f['lo'], f['hi'])} {f['unit']}/s ({f['workers']} workers)"
            # a case measured in another unit may state its rate in this one, e.g. a case in
            # straddle-days carrying "straddles_per_s"
            per = f"{singular(f['unit'])}s_per_s"
            alt = df["name"].map(lambda n: (raw.get(n) or {}).get(per))
            same = df["unit"].map(singular) == singular(f["unit"])
            g = df.assign(throughput=alt.where(~same & alt.notna(), df["throughput"]))
            g = g[same | alt.notna()]
            g = g.assign(unit=f["unit"])
            if f["workers"] == 1:
                g = g[g["workers"] == 1]
            if g.empty:
                rows.append({**base, "seed": seed, "ours": f"no comparable case in {f['unit']}",
                             "our case": "", "x seed": math.nan, "x seed (hi)": math.nan})
                continue
            best = g.loc[g["throughput"].idxmax()]
            rows.append({**base, "seed": seed,
                         "ours": f"{human(best['throughput'])} {best['unit']}/s "
                                 f"({best['workers']} workers)",
                         "our case": best["name"], "x seed": best["throughput"] / f["hi"],
                         "x seed (hi)": best["throughput"] / f["lo"]})
        else:
            seed = f"{span(f['lo'], f['hi'])}x" + (f" ({f['workers']} workers)"
                                                     if f["workers"] else "")
            if head is not None:
                w = workers.get(head["num"], "?")
                rows.append({**base, "seed": seed,
                             "ours": f"{times(head['value'])} over reference (headline ratio, "
                                     f"{w} workers)",
                             "our case": head["num"], "x seed": head["value"] / f["hi"],
                             "x seed (hi)": head["value"] / f["lo"]})
                continue
            if sp.empty:
                rows.append({**base, "seed": seed, "ours": "no reference case", "our case": "",
                             "x seed": math.nan, "x seed (hi)": math.nan})
                continue
            b = sp.loc[sp["speedup"].idxmax()]
            rows.append({**base, "seed": seed,
                         "ours": f"{times(b['speedup'])} over reference ({b['workers']} workers)",
                         "our case": b["case"], "x seed": b["speedup"] / f["hi"],
                         "x seed (hi)": b["speedup"] / f["lo"]})
    return pd.DataFrame(rows, columns=["workload", "seed figure", "seed", "ours", "our case",
                                       "x seed", "x seed (hi)", "source"])
