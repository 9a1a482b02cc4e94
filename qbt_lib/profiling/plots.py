"""Plots from a bench JSON (matplotlib, imported when a plot is drawn): time vs size with the
seeds' figures, speed-ups, parallel efficiency, bandwidth, GPU vs CPU, peak memory; each
names the JSON and machine it comes from. :func:`show` displays one (or a table)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..fmt import human, span, times
from .config import ProfilingConfig
from .seeds import seed_comparison, seed_figures, singular
from .sweep import WorkloadResult
from .tables import (FASTEST_CPU, cases_frame, filter_cases, memory_table, parallel_table,
                     series_label, speedup_table)


def _plt():
    import matplotlib.pyplot as plt
    return plt


def _seed_note(figs: list[dict]) -> str:
    srcs = sorted({f["source"] for f in figs})
    return "seed figures: " + ", ".join(srcs) if srcs else ""


def plot_time_vs_size(doc: dict, cfg: ProfilingConfig | None = None, seeds: bool = True):
    """Time vs problem size (log-log) per implementation, one panel per unit; the reference
    dashed black; the seed's published figures as grey ranges annotated with their file."""
    plt = _plt()
    df = cases_frame(doc)
    if cfg is not None:
        df = filter_cases(df, cfg, int((doc.get("machine") or {}).get("cores") or 1))
    df = df[df["seconds"].notna() & (df["seconds"] > 0) & (df["size"] > 0)]
    units = list(dict.fromkeys(df["unit"]))
    if not units:
        return None
    fig, axes = plt.subplots(1, len(units), figsize=(max(8.0, 6.4 * len(units)), 4.6),
                             squeeze=False)
    for ax, unit in zip(axes[0], units):
        g = df[df["unit"] == unit].copy()
        g["series"] = g.apply(series_label, axis=1)
        for lab, s in g.groupby("series", sort=False):
            ref = bool(s["is_reference"].iloc[0])
            # one implementation may have several cases at a size (different kernels or
            # stages): the line joins its fastest case per size, every case is a marker
            best = s.loc[s.groupby("size", sort=True)["seconds"].idxmin()].sort_values("size")
            # error bars: the min-max of the repeated timings behind each median
            yerr = [(best["seconds"] - best["min"].fillna(best["seconds"])).clip(lower=0),
                    (best["max"].fillna(best["seconds"]) - best["seconds"]).clip(lower=0)]
            line = ax.errorbar(best["size"], best["seconds"], yerr=yerr,
                               fmt="o" + ("--" if ref else "-"), label=lab, capsize=2,
                               color="black" if ref else None, lw=2.2 if ref else 1.4,
                               alpha=1.0 if ref or s["workers"].iloc[0] == 1 else 0.6).lines[0]
            if len(s) > len(best):
                ax.plot(s["size"], s["seconds"], "o", color=line.get_color(), alpha=0.35,
                        ms=4)
        used = []
        if seeds:
            for f in seed_figures(doc["workload"], doc):
                if f["kind"] != "time" or singular(f["unit"]) != singular(unit):
                    continue
                mid = math.sqrt(f["seconds_lo"] * f["seconds_hi"])
                ax.errorbar([f["size"]], [mid], yerr=[[mid - f["seconds_lo"]],
                                                      [f["seconds_hi"] - mid]],
                            fmt="s", mfc="none", color="grey", capsize=3)
                if f["label"] not in {u["label"] for u in used}:  # one label per figure
                    ax.annotate(f"seed: {f['label']}", (f["size"], mid), fontsize=7,
                                color="dimgrey", xytext=(5, -3), textcoords="offset points")
                used.append(f)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"problem size ({unit})")
        ax.set_ylabel("median seconds (bars: min-max of repeats)")
        ax.set_title(f"{doc['workload']}: time vs size", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="best")
        if used:
            ax.text(0.0, -0.2, _seed_note(used), transform=ax.transAxes, fontsize=7,
                    color="dimgrey", va="top")
    fig.text(0.99, 0.01, _source_note(doc), ha="right", va="bottom", fontsize=6,
             color="grey")
    fig.tight_layout()
    return fig


def _source_note(doc: dict) -> str:
    m = doc.get("machine") or {}
    return (f"{Path(doc.get('_path', '?')).name}: {m.get('cores')} cores {m.get('cpu', '')}"
            f"{', GPU ' + m['gpu'] if m.get('gpu') else ''}")


def plot_speedups(doc: dict):
    """Speed-up over the reference (best per implementation) and over the seed figures."""
    plt = _plt()
    sp = speedup_table(doc)
    sc = seed_comparison(doc)
    sc = sc[sc["x seed"].notna()]
    if sp.empty and sc.empty:
        return None
    best = sp
    if not sp.empty:
        backend = cases_frame(doc).drop_duplicates("name").set_index("name")["backend"]
        sp = sp.assign(backend=sp["case"].map(backend).fillna(""))
        best = sp.loc[sp.groupby(["impl", "workers", "device"], sort=False)["speedup"].idxmax()]
    rows = max(len(best), len(sc), 2)
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.42 * rows + 1.3))
    ax = axes[0]
    if not sp.empty:
        labels = [f"{r.impl}" + (f" x{r.workers} {r.backend}" if r.workers > 1 else "")
                  + (f" [{r.device}]" if r.device != "cpu" else "") for r in best.itertuples()]
        ax.barh(labels, best["speedup"], color="tab:blue", capsize=2,
                xerr=[(best["speedup"] - best["min"]).clip(lower=0),
                      (best["max"] - best["speedup"]).clip(lower=0)])
        for i, v in enumerate(best["speedup"]):
            ax.text(v, i, f" {times(v)}", va="center", fontsize=8)
        ax.axvline(1, color="black", lw=1)
        ax.set_xscale("log")
    ax.set_title(f"{doc['workload']}: speed-up over the reference", fontsize=10)
    ax.set_xlabel("throughput / reference throughput")
    ax = axes[1]
    if not sc.empty:
        labels = [f"vs {r['seed figure']}" for _, r in sc.iterrows()]
        mid = [math.sqrt(a * b) for a, b in zip(sc["x seed"], sc["x seed (hi)"])]
        err = [[m - min(a, b) for m, a, b in zip(mid, sc["x seed"], sc["x seed (hi)"])],
               [max(a, b) - m for m, a, b in zip(mid, sc["x seed"], sc["x seed (hi)"])]]
        ax.barh(labels, mid, xerr=err, color="tab:orange", capsize=3)
        for i, (_, r) in enumerate(sc.iterrows()):
            hi = max(r["x seed"], r["x seed (hi)"])
            ax.text(hi, i, f"  {span(min(r['x seed'], r['x seed (hi)']), hi)}x  "
                    f"[{Path(r['source']).name}]", va="center", fontsize=7)
        ax.axvline(1, color="black", lw=1)
        ax.set_xscale("log")
    ax.set_title(f"{doc['workload']}: ours over the seed's published figures", fontsize=10)
    ax.set_xlabel("our best throughput / seed throughput (range of the seed's figure)")
    fig.text(0.99, 0.01, _source_note(doc), ha="right", va="bottom", fontsize=6,
             color="grey")
    fig.tight_layout()
    return fig


def plot_parallel(doc: dict, cfg: ProfilingConfig | None = None):
    """Parallel speed-up (with the ideal line) and efficiency vs workers: one line per
    backend from each single-worker baseline."""
    import pandas as pd
    plt = _plt()
    par = parallel_table(doc, cfg)
    if par.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for base, grp in par.groupby("baseline", sort=False):
        one = grp[grp["workers"] == 1].iloc[:1]
        for backend, g in grp[grp["workers"] > 1].groupby("backend", sort=False):
            g = pd.concat([one, g], ignore_index=True).sort_values("workers")
            lab = f"{backend}: {base}" if len(base) <= 44 else f"{backend}: {base[:41]}..."
            axes[0].plot(g["workers"], g["speedup"], "o-", label=lab)
            axes[1].plot(g["workers"], g["efficiency"], "o-", label=lab)
    w = sorted(par["workers"].unique())
    axes[0].plot(w, w, ":", color="grey", label="ideal")
    axes[1].axhline(1.0, ls=":", color="grey")
    axes[0].set_ylabel("speed-up over 1 worker")
    axes[1].set_ylabel("efficiency (speed-up / workers)")
    for ax in axes:
        ax.set_xlabel("workers")
        ax.set_xticks(w)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=7)
    axes[0].set_title(f"{doc['workload']}: parallel speed-up", fontsize=10)
    axes[1].set_title(f"{doc['workload']}: parallel efficiency", fontsize=10)
    fig.text(0.99, 0.01, _source_note(doc), ha="right", va="bottom", fontsize=6,
             color="grey")
    fig.tight_layout()
    return fig


def plot_bandwidth(tables: list):
    """Achieved GB/s as a fraction of the measured copy bandwidth (1.0 = copy speed)."""
    import pandas as pd
    plt = _plt()
    bw = pd.concat([t for t in tables if not t.empty], ignore_index=True) if any(
        not t.empty for t in tables) else None
    if bw is None:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(bw) + 1.4))
    labels = [f"{r['workload']}: {r['case']}" for _, r in bw.iterrows()]
    ax.barh(labels, bw["fraction of copy"], color="tab:green")
    for i, (_, r) in enumerate(bw.iterrows()):
        ax.text(r["fraction of copy"], i, f" {r['fraction of copy']:.0%} "
                f"({r['GB/s']:.1f} of {r['copy GB/s']:.1f} GB/s)", va="center", fontsize=7)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xlabel("achieved bandwidth / measured copy bandwidth")
    ax.set_title("memory-bound kernels against the copy bandwidth", fontsize=10)
    fig.tight_layout()
    return fig


def plot_gpu(g):
    """GPU vs CPU throughput per GPU case of :func:`gpu_table`: the CPU bar is the case the
    benchmark compares it with on the same work (grey), or, for a JSON stating no GPU ratio,
    the fastest CPU case of the unit (hatched: possibly other work); no CPU bar when the case
    is compared with none."""
    plt = _plt()
    if g.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(g) + 1.4))
    labels = [f"{r.workload}: {r.case}" for r in g.itertuples()]
    y = list(range(len(g)))
    ax.barh([i + 0.2 for i in y], g["gpu throughput"], height=0.4, label="GPU",
            color="tab:purple")
    stated = g["same work"] != FASTEST_CPU
    for mask, kw in ((stated, {"label": "CPU, same work (the bench's ratio)",
                               "color": "tab:gray"}),
                     (~stated, {"label": "fastest CPU case (work not stated as the same)",
                                "color": "white", "edgecolor": "tab:gray", "hatch": "//"})):
        m = mask & g["cpu throughput"].notna()
        if m.any():
            ax.barh([i - 0.2 for i, k in zip(y, m) if k], g.loc[m, "cpu throughput"],
                    height=0.4, **kw)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("throughput (units/s, same machine and run)")
    ax.legend(fontsize=8)
    ax.set_title("GPU vs CPU (from GPU bench JSONs)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_memory(doc: dict):
    """Peak RSS per case of one bench JSON."""
    plt = _plt()
    t = memory_table(doc)
    t = t[t["peak RSS MiB"].notna()]
    if t.empty:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(t) + 1.2))
    ax.barh([str(c)[:48] for c in t["case"]], t["peak RSS MiB"], color="tab:red")
    for i, v in enumerate(t["peak RSS MiB"]):
        ax.text(v, i, f" {human(v)}", va="center", fontsize=7)
    ax.set_title(f"{doc['workload']}: peak RSS per case", fontsize=10)
    ax.set_xlabel("MiB")
    ax.tick_params(axis="y", labelsize=7)
    fig.text(0.99, 0.01, _source_note(doc), ha="right", va="bottom", fontsize=6,
             color="grey")
    fig.tight_layout()
    return fig



def each(results: dict[str, WorkloadResult]):
    """Yield ``(workload, bench JSON)`` for the workloads that have one, and print a clear
    line for every other one (a workload is never skipped silently)."""
    for wl, r in results.items():
        if r.ok:
            yield wl, r.doc
        else:
            print(f"{wl}: {r.status}: {r.message}")


def show(obj: Any, missing: str) -> None:
    """Display a figure (then close it) or a table; print ``missing`` when there is none."""
    if obj is None or getattr(obj, "empty", False):
        print(missing)
        return
    from IPython.display import display
    display(obj)
    if hasattr(obj, "savefig"):
        _plt().close(obj)
