"""Rendering ``outputs/report/index.html``: the summary table, the benchmark history, the bench
JSONs every figure comes from (copied next to the page), then each executed notebook as HTML
with its inputs hidden."""
from __future__ import annotations

import datetime as _dt
import html
import re
import shutil
from pathlib import Path
from typing import Any

from .. import paths
from ..bench import history
from ..bench.jsons import bench_dirs, size_of
from ..fmt import human, rel, times
from ..machine import machine_info
from ..profiling.tables import ratios_table
from .notebooks import NOTEBOOKS
from .summary import HEADLINE_KEYS, asv_summary, bench_docs, machine_short, summary_rows


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
                        f'({html.escape(machine_short(r["metrics"].get("machine")))})</span>')
        for d in [r["bench"], *r["gpu_benches"]]:
            if d:
                href = _copy_source(d["_path"], data_dir)
                srcs.append(f'<a href="{href}">{html.escape(Path(d["_path"]).name)}</a> '
                            f'<span class="src">({html.escape(machine_short(d.get("machine")))}'
                            f'{"" if size_of(d) == "full" else ", " + size_of(d)})</span>')
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
            f"<p>{html.escape(machine_short(d.get('machine')))}; copy bandwidth "
            f"{human(d.get('copy_GBps'))} GB/s; {size_of(d)} size; "
            f"created {html.escape(str(d.get('created', '?')))}</p>"
            + (f'<table class="ratios"><tr><th>ratio</th><th>value</th><th>target</th>'
               f"<th>status</th></tr>{rows}</table>" if rows else "")
            + f"<details><summary>{len(d['cases'])} cases</summary><table class=\"cases\">"
            "<tr><th>case</th><th>impl</th><th>size</th><th>n_jobs</th><th>device</th>"
            "<th>median [min-max, runs]</th><th>throughput</th><th>% copy bw</th><th>peak RSS MiB</th></tr>"
            f"{cases}</table></details>")
    return "".join(parts)


def _history_section(report_dir: Path, data_dir: Path, hist: dict | None,
                     results_dir: Path | None, html_dir: Path | None) -> str:
    """Where the summary comes from (``hist``: :func:`asv_summary` of the asv results, None
    when none are committed), a link to asv's history pages and the regressions
    ``asv compare`` flags against the previous results of the machine."""
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
                     f'{history.FACTOR:g}) since {html.escape(rel(reg["against"]))}:</p>'
                     f"<ul>{items}</ul></div>")
    else:
        parts.append(f'<p class="ok" id="regressions">No tracked figure fell beyond asv '
                     f"compare's factor {history.FACTOR:g} since "
                     f"{html.escape(rel(reg['against']))}.</p>")
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
    hist = asv_summary(results_dir)  # read once: the summary rows and the history section
    rows = summary_rows(outputs, docs, hist=hist)
    history_html = _history_section(report_dir, data_dir, hist, results_dir, html_dir)
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
    prof_line = ('<p>The <a href="profiling.html">profiling notebook</a> sweeps sizes, workers '
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
<p>Rendered {_dt.datetime.now():%Y-%m-%d %H:%M} on {html.escape(machine_short(m))},
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
made on a GPU machine: committed in <code>benchmarks/gpu/&lt;tag&gt;/</code> or dropped into
<code>outputs/bench/</code>.</p>
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
    print(f"wrote {rel(index)}")
    return index

