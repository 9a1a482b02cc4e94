"""Run the notebooks, write ``metrics.json`` files and render ``outputs/report/index.html``.

``python -m qbt_lib.report run``     executes every workload notebook that exists at its small
                                     default (``params/<workload>/small.yaml``) and the
                                     profiling notebook at ``quick`` into
                                     ``outputs/<name>/<name>.ipynb``;
``python -m qbt_lib.report render``  renders ``outputs/report/index.html``: a summary table
                                     (one row per workload), the bench JSONs every figure
                                     comes from, then each executed notebook as HTML with
                                     its inputs hidden;
``python -m qbt_lib.report all``     run, then render;
``python -m qbt_lib.report golden``  executes the notebooks at ``params/<name>/tiny.yaml``
                                     into ``tests/golden/`` for nbval;
``python -m qbt_lib.report readme``  rewrites README.md's results block from the bench JSON.

Where a figure comes from: a workload's headline comes from its bench JSON (the benchmark's
own ``headline`` strings, else computed from its cases by
:func:`qbt_lib.profiling.summarize`); without a bench JSON, from the ``headline`` of the
``metrics.json`` its notebook wrote, which is also shown beneath as the notebook's figure.
Every JSON used is copied next to the page (``outputs/report/data/``) and linked from its
row with the machine it was measured on.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import html
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from . import paths
from .bench import WORKLOADS
from .machine import machine_info
from .metrics import read_metrics, write_metrics  # noqa: F401  (report.write_metrics: older name)

NOTEBOOKS = (*WORKLOADS, "profiling")
KERNEL = "qbt"
HEADLINE_KEYS = ("throughput", "speedup_vs_reference", "parallel_efficiency", "gpu")
RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"


# --------------------------------------------------------------------------- metrics.json
# --------------------------------------------------------------------------- execution
def available_notebooks(names: Iterable[str] = NOTEBOOKS) -> list[str]:
    return [n for n in names if (paths.NOTEBOOKS / f"{n}.ipynb").exists()]


def default_size(name: str) -> str:
    """``quick`` for the profiling notebook (when it has one), else ``small``."""
    if name == "profiling" and (paths.PARAMS / name / "quick.yaml").exists():
        return "quick"
    return "small"


def execute(name: str, size: str = "small", out: Path | None = None,
            extra: dict | None = None) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with ``params/<name>/<size>.yaml`` via papermill."""
    import papermill as pm
    import yaml

    src = paths.NOTEBOOKS / f"{name}.ipynb"
    pfile = paths.PARAMS / name / f"{size}.yaml"
    params = yaml.safe_load(pfile.read_text()) if pfile.exists() else {}
    params = {**(params or {}), **(extra or {})}
    out = out or paths.OUTPUTS / name / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    print(f"[{name}] executing at {size} ({params}) -> {_rel(out)}", flush=True)
    # headless: no progress bars in the saved notebook (the kernel inherits the environment)
    os.environ["QBT_PROGRESS"] = "0"
    pm.execute_notebook(str(src), str(out), parameters=params, kernel_name=KERNEL,
                        cwd=str(paths.NOTEBOOKS), progress_bar=False)
    print(f"[{name}] done in {time.perf_counter() - t:.1f} s", flush=True)
    return out


def run_notebooks(names: Iterable[str], size: str | None = None) -> dict[str, str]:
    """Execute each notebook; a failing one is reported and the others still run (its
    partly executed copy, with the error, is what the report then shows)."""
    status = {}
    for n in names:
        try:
            execute(n, size or default_size(n))
            status[n] = "ok"
        except Exception as e:  # papermill raises PapermillExecutionError with the cell
            msg = str(e).strip().splitlines()
            print(f"[{n}] FAILED: {msg[-1] if msg else type(e).__name__}", file=sys.stderr,
                  flush=True)
            status[n] = "failed"
    return status


def _rel(p: Path | str) -> str:
    try:
        return str(Path(p).resolve().relative_to(paths.PROJ_ROOT))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------- bench JSONs
def bench_dirs(outputs: Path | None = None) -> list[Path]:
    """Where bench JSONs are looked for: ``outputs/bench`` (``python -m qbt_lib.bench``,
    dropped-in GPU runs) then ``outputs/profiling/bench`` (the profiling notebook's runs)."""
    o = outputs or paths.OUTPUTS
    return [o / "bench", o / "profiling" / "bench"]


def bench_docs(dirs: Iterable[Path] | None = None) -> list[dict]:
    from .profiling import find_jsons
    return find_jsons(dirs if dirs is not None else bench_dirs())


def workload_docs(docs: list[dict], workload: str) -> tuple[dict | None, list[dict]]:
    """The primary CPU bench JSON of a workload and its GPU JSONs."""
    from .profiling import has_gpu, pick_primary
    primary = pick_primary(docs, workload)
    gpus = [d for d in docs if d["workload"] == workload and has_gpu(d) and d is not primary]
    return primary, gpus


def _machine_short(m: dict | None) -> str:
    if not m:
        return "machine not recorded"
    s = f"{m.get('cores', '?')} cores, {m.get('cpu', '?')}"
    if m.get("gpu"):
        s += f", GPU {m['gpu']}"
    return s


# --------------------------------------------------------------------------- asv history
def _fmt_tracked(value: float | None, unit: str) -> str:
    from .profiling import human, times
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
    import importlib

    from .bench import history
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
                row[col] = f"{_fmt_tracked(v, unit)} ({key})"
        rows[wl] = row
    return {"path": p, "rel": _rel(p), "machine": r["machine"],
            "commit": (r["commit"] or "")[:8], "rows": rows}


# --------------------------------------------------------------------------- summary rows
def summary_rows(outputs: Path | None = None, docs: list[dict] | None = None,
                 results_dir: Path | None = None) -> list[dict]:
    """One row per workload (every workload, built or not): headline figures from the newest
    committed asv results for this machine (``benchmarks/results``), else from its bench
    JSON, else from its metrics.json, and where each came from."""
    from .profiling import summarize
    outputs = outputs or paths.OUTPUTS
    docs = bench_docs(bench_dirs(outputs)) if docs is None else docs
    hist = asv_summary(results_dir)
    rows = []
    for name in WORKLOADS:
        built = (paths.NOTEBOOKS / f"{name}.ipynb").exists()
        nb = outputs / name / f"{name}.ipynb"
        m = read_metrics(name, outputs) or {}
        primary, gpus = workload_docs(docs, name)
        computed = summarize(primary, gpus) if (primary or gpus) else {}
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
                source[k] = Path((gpus[0] if k == "gpu" and gpus else primary or gpus[0])
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
        elif _notebook_failed(nb):
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


def _notebook_failed(nb: Path) -> bool:
    try:
        d = json.loads(nb.read_text())
    except (OSError, json.JSONDecodeError):
        return True
    for c in d.get("cells", []):
        if any(o.get("output_type") == "error" for o in c.get("outputs", [])):
            return True
    return bool(d.get("metadata", {}).get("papermill", {}).get("exception"))


# --------------------------------------------------------------------------- rendering
def notebook_html(nb_path: Path) -> str:
    """A notebook as standalone HTML with the code inputs hidden."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(nb_path), as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    return body


def _split_page(page: str) -> tuple[str, str]:
    """(head contents, main contents) of an nbconvert lab-template page."""
    head = re.search(r"<head>(.*?)</head>", page, re.S)
    main = re.search(r"<main>(.*)</main>", page, re.S)
    body = re.search(r"<body[^>]*>(.*)</body>", page, re.S)
    inner = main.group(1) if main else (body.group(1) if body else page)
    return (head.group(1) if head else ""), inner


_CSS = """
.qbt{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:90em;
  margin:1.5em auto;padding:0 1.5em}
.qbt table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:13px}
.qbt td,.qbt th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.qbt th{background:#f3f3f3}
.qbt .missing{color:#a33}.qbt .src{color:#666;font-size:11px}
.qbt .nbfig{color:#335;font-size:11px;font-style:italic}
.qbt .ok{color:#161}.qbt .bad{color:#a11;font-weight:bold}
section.notebook{border-top:3px solid #446;margin-top:2.5em;padding-top:.5em}
section.notebook>h2{font-family:system-ui,sans-serif;max-width:90em;margin:0 auto;
  padding:0 1.5em}
"""


def _cell(v: Any, src: str = "", notebook: str | None = None) -> str:
    s = html.escape(str(v))
    if src:
        s += f'<br><span class="src">from {html.escape(src)}</span>'
    if notebook:
        s += f'<br><span class="nbfig">notebook run: {html.escape(notebook)}</span>'
    return f"<td>{s}</td>"


def _copy_source(p: str | Path, data_dir: Path, name: str | None = None) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    dst = data_dir / (name or Path(p).name)
    shutil.copyfile(p, dst)
    return f"data/{dst.name}"


def _summary_table(rows: list[dict], data_dir: Path) -> str:
    trs = []
    for r in rows:
        wl = html.escape(r["workload"])
        if r["notebook"] is not None:
            link = (f'<a href="{r["link"]}">{wl}</a> '
                    f'<a class="src" href="#nb-{wl}">(below)</a>')
        else:
            link = wl
        if r["state"] != "executed":
            link += f'<br><span class="missing">{html.escape(r["state"])}</span>'
        srcs = []
        if r["metrics"]:
            href = _copy_source(r["metrics_path"], data_dir, f"{r['workload']}.metrics.json")
            srcs.append(f'<a href="{href}">metrics.json</a> <span class="src">'
                        f'({html.escape(_machine_short(r["metrics"].get("machine")))})</span>')
        for d in [r["bench"], *r["gpu_benches"]]:
            if d:
                href = _copy_source(d["_path"], data_dir)
                srcs.append(f'<a href="{href}">{html.escape(Path(d["_path"]).name)}</a> '
                            f'<span class="src">({html.escape(_machine_short(d.get("machine")))}'
                            f'{", quick" if d.get("quick") else ""})</span>')
        if not srcs:
            srcs.append('<span class="missing">no metrics.json or bench JSON yet</span>')
        wall = r["wall_seconds"]
        trs.append("<tr><td>" + link + "</td>"
                   + "".join(_cell(r["headline"][k], r["source"][k],
                                   r["notebook_headline"][k]) for k in HEADLINE_KEYS)
                   + _cell("-" if wall is None else f"{float(wall):.1f} s")
                   + "<td>" + "<br>".join(srcs) + "</td></tr>")
    return ('<table id="summary"><thead><tr><th>workload</th><th>headline throughput</th>'
            "<th>speed-up vs reference</th><th>parallel efficiency</th><th>GPU</th>"
            "<th>notebook wall time</th><th>sources (machine)</th></tr></thead><tbody>"
            + "".join(trs) + "</tbody></table>")


def _bench_section(docs: list[dict], data_dir: Path) -> str:
    from .profiling import human, ratios_table, times
    if not docs:
        return ('<p class="missing">No bench JSON yet: run <code>make bench-quick</code> or '
                "the profiling notebook.</p>")
    parts = []
    for d in docs:
        name = Path(d["_path"]).name
        href = _copy_source(d["_path"], data_dir)
        rt = ratios_table(d)
        def _val(r):
            if str(r["ratio"]).startswith("efficiency: "):
                return ("not printed: above 100% on re-measurement" if r["value"] != r["value"]
                        else f"{r['value']:.0%}" + (f" ({html.escape(str(r['min-max']))})"
                                                    if r["min-max"] else ""))
            return f"{times(r['value'])} [{html.escape(str(r['min-max']))}]"
        rows = "".join(
            f"<tr><td>{html.escape(str(r['ratio']))}"
            f"{' <b>(headline)</b>' if r['headline'] else ''}</td><td>{_val(r)}</td>"
            f"<td>{'-' if r['target'] is None or r['target'] != r['target'] else '>= ' + times(r['target'])}</td>"
            f"<td class=\"{'bad' if r['status'] == 'MISSED' else 'ok'}\">{r['status']}</td></tr>"
            for _, r in rt.iterrows())
        cases = "".join(
            f"<tr><td>{html.escape(str(c['name']))}</td><td>{html.escape(str(c['impl']))}</td>"
            f"<td>{human(c['size'])} {html.escape(str(c.get('unit', '')))}</td>"
            f"<td>{c.get('n_jobs', '')} {html.escape(str(c.get('backend', '')))}</td>"
            f"<td>{html.escape(str(c.get('device', '')))}</td><td>{human(c['seconds'])} s "
            f"[{human(c.get('min', c['seconds']))}-{human(c.get('max', c['seconds']))}, "
            f"n={c.get('repeats', len(c.get('times') or [1]))}]</td>"
            f"<td>{human(c.get('throughput'))}/s</td>"
            f"<td>{'-' if c.get('bw_fraction') is None else format(c['bw_fraction'], '.0%')}</td>"
            f"<td>{human(c.get('peak_rss_mb'))}</td></tr>" for c in d["cases"])
        parts.append(
            f'<h3 id="bench-{html.escape(name)}"><a href="{href}">{html.escape(name)}</a></h3>'
            f"<p>{html.escape(_machine_short(d.get('machine')))}; copy bandwidth "
            f"{human(d.get('copy_GBps'))} GB/s; {'quick' if d.get('quick') else 'full'} size; "
            f"created {html.escape(str(d.get('created', '?')))}</p>"
            + (f'<table class="ratios"><tr><th>ratio</th><th>value</th><th>target</th>'
               f"<th>status</th></tr>{rows}</table>" if rows else "")
            + f"<details><summary>{len(d['cases'])} cases</summary><table class=\"cases\">"
            "<tr><th>case</th><th>impl</th><th>size</th><th>n_jobs</th><th>device</th>"
            "<th>median [min-max, runs]</th><th>throughput</th><th>% copy bw</th><th>peak RSS MiB</th></tr>"
            f"{cases}</table></details>")
    return "".join(parts)


def _history_section(report_dir: Path, data_dir: Path, results_dir: Path | None,
                     html_dir: Path | None) -> str:
    """Where the summary comes from (the asv results file), a link to asv's history pages
    and the regressions ``asv compare`` flags against the previous results of the machine."""
    from .bench import history
    hist = asv_summary(results_dir)
    if hist is None:
        return ('<p class="missing">No asv results committed yet: <code>make bench</code> records '
                "them in <code>benchmarks/results/</code>; the summary comes from the bench "
                "JSONs meanwhile.</p>")
    href = _copy_source(hist["path"], data_dir,
                        f"asv-{hist['machine']}-{Path(hist['path']).name}")
    parts = [f'<p>Summary figures: the newest asv results for machine '
             f'<code>{html.escape(str(hist["machine"]))}</code>, <a href="{href}">'
             f'{html.escape(hist["rel"])}</a> (commit <code>{html.escape(hist["commit"])}'
             "</code>).</p>"]
    src = Path(html_dir or history.HTML_DIR)
    if (src / "index.html").exists():
        dst = report_dir / "history"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
        parts.append('<p><a id="asv-history" href="history/index.html">History of every tracked '
                     "figure (asv publish)</a></p>")
    else:
        parts.append('<p class="missing">asv history pages not rendered: '
                     "<code>make bench-publish</code>.</p>")
    reg = history.regressions(hist["machine"], results_dir=results_dir)
    if reg["against"] is None:
        parts.append("<p>No earlier results of this machine to compare with.</p>")
    elif reg["regressions"]:
        items = "".join(f"<li><code>{html.escape(x)}</code></li>" for x in reg["regressions"])
        parts.append(f'<div id="regressions" class="bad"><p>Regressions (asv compare, factor '
                     f'{history.FACTOR:g}) since {html.escape(_rel(reg["against"]))}:</p>'
                     f"<ul>{items}</ul></div>")
    else:
        parts.append(f'<p class="ok" id="regressions">No tracked figure fell beyond asv '
                     f"compare's factor {history.FACTOR:g} since "
                     f"{html.escape(_rel(reg['against']))}.</p>")
    return "".join(parts)


def render(report_dir: Path | None = None, outputs: Path | None = None,
           docs: list[dict] | None = None, results_dir: Path | None = None,
           html_dir: Path | None = None) -> Path:
    """Render every executed notebook and the index page; returns the index path."""
    report_dir = Path(report_dir or paths.REPORT_DIR)
    outputs = Path(outputs or paths.OUTPUTS)
    report_dir.mkdir(parents=True, exist_ok=True)
    data_dir = report_dir / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    docs = bench_docs(bench_dirs(outputs)) if docs is None else docs
    rows = summary_rows(outputs, docs, results_dir)
    history_html = _history_section(report_dir, data_dir, results_dir, html_dir)
    used = []
    for r in rows:
        used += [d for d in [r["bench"], *r["gpu_benches"]] if d]

    head, sections, nav = "", [], []
    for name in NOTEBOOKS:
        nb = outputs / name / f"{name}.ipynb"
        if not nb.exists():
            continue
        page = notebook_html(nb)
        (report_dir / f"{name}.html").write_text(page)
        h, main = _split_page(page)
        head = head or h
        nav.append(f'<a href="#nb-{name}">{name}</a>')
        sections.append(f'<section class="notebook" id="nb-{name}"><h2>{name} '
                        f'<a class="src" href="{name}.html">(standalone page)</a></h2>'
                        f"<main>{main}</main></section>")
    m = machine_info()
    prof = outputs / "profiling" / "profiling.ipynb"
    prof_line = (f'<p>The <a href="profiling.html">profiling notebook</a> sweeps sizes, workers '
                 "and devices over every workload's benchmark, and shows profiles, "
                 "bandwidth and memory.</p>" if prof.exists() else
                 '<p class="missing">The profiling notebook has not been executed.</p>')
    title = re.sub(r"<title>.*?</title>", "", head, flags=re.S)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>qbt report</title>
{title}
<style>{_CSS}</style></head>
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
<div class="qbt">
<h1>qbt benchmark report</h1>
<p>Rendered {_dt.datetime.now():%Y-%m-%d %H:%M} on {html.escape(_machine_short(m))},
{m['memory_gb']} GB.</p>
<h2>Summary</h2>
{_summary_table(rows, data_dir)}
<h3 id="history">Benchmark history</h3>
{history_html}
<p class="src">Each figure names the file it comes from: the newest committed asv results of
this machine (<code>benchmarks/results/</code>), else the workload's bench JSON (its own
headline, else by rule: the benchmark's named headline ratio -- its main job at its reference
size, both sides doing the same work -- and the parallel efficiency it measured), or,
where there is no bench JSON yet, the <code>metrics.json</code> its notebook wrote; the
notebook's own figure at its small default is shown in italics beneath. Every JSON records the
machine it was measured on and is linked in the last column. GPU figures come from bench JSONs
made on a GPU machine and dropped into <code>outputs/bench/</code>.</p>
{prof_line}
<h2 id="benchmarks">Bench JSONs</h2>
{_bench_section(used, data_dir)}
<h2>Notebooks</h2>
<p>{' | '.join(nav) if nav else '<span class="missing">no executed notebook</span>'}</p>
</div>
{''.join(sections)}
</body></html>"""
    index = report_dir / "index.html"
    tmp = index.with_suffix(".html.tmp")
    tmp.write_text(page)
    tmp.replace(index)
    print(f"wrote {_rel(index)}")
    return index


# --------------------------------------------------------------------------- README
def readme_results(docs: list[dict] | None = None, results_dir: Path | None = None) -> str:
    """The README's results block (Markdown): the newest committed asv results for this
    machine (each row naming the file), else the bench JSONs."""
    hist = asv_summary(results_dir) if docs is None or results_dir is not None else None
    if hist is not None:
        lines = ["| workload | headline throughput | speed-up vs reference | parallel "
                 "efficiency | asv results (machine, commit) |", "|---|---|---|---|---|"]
        for wl in WORKLOADS:
            r = hist["rows"].get(wl, {})
            cells = [r.get(k, "-").replace("|", "/") for k in HEADLINE_KEYS if k != "gpu"]
            lines.append(f"| {wl} | " + " | ".join(cells)
                         + f" | `{hist['rel']}` ({hist['machine']}, {hist['commit']}) |")
        return "\n".join([
            "Generated by `make readme-results` from the newest asv results committed in "
            "`benchmarks/results/` (`make bench` records them; every figure is a median of "
            "repeats, each ratio compares the same work on both sides); do not edit by hand.",
            "", *lines])
    return _readme_from_jsons(docs)


def _readme_from_jsons(docs: list[dict] | None = None) -> str:
    """The README's results block (Markdown) from the bench JSONs."""
    from .profiling import ratios_table, summarize, times
    docs = bench_docs() if docs is None else docs
    lines = ["| workload | headline throughput | speed-up vs reference | parallel efficiency "
             "| GPU | bench JSON (machine) |", "|---|---|---|---|---|---|"]
    claims = []
    for wl in WORKLOADS:
        primary, gpus = workload_docs(docs, wl)
        if primary is None and not gpus:
            lines.append(f"| {wl} | no bench JSON yet | | | | |")
            continue
        s = summarize(primary, gpus)
        srcs = "; ".join(f"`{Path(d['_path']).name}` ({_machine_short(d.get('machine'))}"
                         f"{', quick' if d.get('quick') else ''})"
                         for d in [primary, *gpus] if d)
        cells = [s[k].replace("|", "/") for k in HEADLINE_KEYS]
        lines.append(f"| {wl} | " + " | ".join(cells) + f" | {srcs} |")
        for d in [primary, *gpus]:
            if not d:
                continue
            for _, r in ratios_table(d).iterrows():
                if r["target"] is None or r["target"] != r["target"]:
                    continue  # the table lists the ratios with a target (the issues')
                claims.append(f"| {wl} | {r['ratio']} | {times(r['value'])} | "
                              f"≥ {times(r['target'])} | {r['status']} | "
                              f"`{Path(d['_path']).name}` |")
    out = ["Generated by `make readme-results` from the bench JSONs in `outputs/bench/` "
           "(else the profiling notebook's, `outputs/profiling/bench/`); do not edit by hand.",
           "", *lines]
    if claims:
        out += ["", "Targets the benchmarks check, each ratio measured in one run (every ratio "
                "is in the JSON and in `outputs/report/index.html`):",
                "", "| workload | ratio | value | target | status | bench JSON |",
                "|---|---|---|---|---|---|", *claims]
    return "\n".join(out)


def write_readme(readme: Path | None = None, docs: list[dict] | None = None) -> Path:
    """Rewrite the block between the results markers of README.md."""
    readme = Path(readme or paths.PROJ_ROOT / "README.md")
    text = readme.read_text()
    i, j = text.find(RESULTS_START), text.find(RESULTS_END)
    if i < 0 or j < i:
        raise ValueError(f"{readme.name} has no {RESULTS_START} ... {RESULTS_END} block")
    new = (text[:i + len(RESULTS_START)] + "\n" + readme_results(docs) + "\n"
           + text[j:])
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(new)
    tmp.replace(readme)
    print(f"wrote the results block of {_rel(readme)}")
    return readme


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qbt_lib.report")
    ap.add_argument("action", choices=["run", "render", "golden", "all", "readme"])
    ap.add_argument("--only", nargs="*", default=None, help="notebooks to execute")
    args = ap.parse_args(argv)
    names = available_notebooks(args.only or NOTEBOOKS)
    rc = 0
    if args.action in ("run", "all"):
        status = run_notebooks(names)
        rc = int(any(s != "ok" for s in status.values()))
    if args.action == "golden":
        paths.GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        for n in names:
            execute(n, "tiny", out=paths.GOLDEN_DIR / f"{n}.ipynb")
    if args.action in ("render", "all"):
        render()
    if args.action == "readme":
        write_readme()
    return rc


if __name__ == "__main__":
    sys.exit(main())
