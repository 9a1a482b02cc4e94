"""Run the notebooks, write ``metrics.json`` files and render ``outputs/report/index.html``.

``python -m qbt_lib.report run``     executes every workload notebook that exists at its small
                                     default (``params/<workload>/small.yaml``) into
                                     ``outputs/<workload>/<workload>.ipynb``;
``python -m qbt_lib.report render``  renders those notebooks as HTML with inputs hidden and an
                                     index that tabulates each workload's ``metrics.json``;
``python -m qbt_lib.report golden``  executes them at ``params/<workload>/tiny.yaml`` into
                                     ``tests/golden/`` for nbval.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import html
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from . import paths
from .bench import WORKLOADS
from .machine import machine_info, versions

NOTEBOOKS = (*WORKLOADS, "profiling")
KERNEL = "qbt"


# --------------------------------------------------------------------------- metrics.json
def write_metrics(output_dir: str | os.PathLike, workload: str, params: dict,
                  **values: Any) -> Path:
    """Write ``metrics.json`` (parameters, results, machine, versions) atomically."""
    out = paths.resolve_output_dir(output_dir)
    doc = {"workload": workload,
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "params": params, **values, "machine": machine_info(), "versions": versions()}
    p = out / "metrics.json"
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    tmp.replace(p)
    return p


def read_metrics(workload: str) -> dict | None:
    p = paths.OUTPUTS / workload / "metrics.json"
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# --------------------------------------------------------------------------- execution
def available_notebooks(names: Iterable[str] = NOTEBOOKS) -> list[str]:
    return [n for n in names if (paths.NOTEBOOKS / f"{n}.ipynb").exists()]


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
    print(f"[{name}] executing at {size} ({params}) -> {out.relative_to(paths.PROJ_ROOT)}",
          flush=True)
    pm.execute_notebook(str(src), str(out), parameters=params, kernel_name=KERNEL,
                        cwd=str(paths.NOTEBOOKS), progress_bar=False)
    print(f"[{name}] done in {time.perf_counter() - t:.1f} s", flush=True)
    return out


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


def summary_rows() -> list[dict]:
    """One row per workload notebook: its headline figures from metrics.json."""
    rows = []
    for name in NOTEBOOKS:
        if not (paths.NOTEBOOKS / f"{name}.ipynb").exists():
            continue
        m = read_metrics(name) or {}
        head = m.get("headline", {})
        rows.append({"workload": name, "link": f"{name}.html",
                     "executed": (paths.OUTPUTS / name / f"{name}.ipynb").exists(),
                     "headline": head, "wall_seconds": m.get("wall_seconds"),
                     "machine": m.get("machine", {})})
    return rows


def _headline_cells(h: dict) -> list[str]:
    keys = ("throughput", "speedup_vs_reference", "parallel_efficiency", "gpu")
    return [html.escape(str(h.get(k, "-"))) for k in keys]


def render(report_dir: Path | None = None) -> Path:
    """Render every executed notebook and the index page; returns the index path."""
    report_dir = report_dir or paths.REPORT_DIR
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = summary_rows()
    for r in rows:
        nb = paths.OUTPUTS / r["workload"] / f"{r['workload']}.ipynb"
        if nb.exists():
            (report_dir / r["link"]).write_text(notebook_html(nb))
    m = machine_info()
    trs = []
    for r in rows:
        link = (f'<a href="{r["link"]}">{r["workload"]}</a>' if r["executed"]
                else f'{r["workload"]} (not executed)')
        trs.append("<tr><td>" + link + "</td>" + "".join(
            f"<td>{c}</td>" for c in _headline_cells(r["headline"])) + "</tr>")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>qbt report</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head>
<body><h1>qbt benchmark report</h1>
<p>Machine: {m['cores']} cores, {html.escape(m['cpu'])}, {m['memory_gb']} GB,
GPU: {html.escape(str(m['gpu'] or 'none'))}. Generated {_dt.datetime.now():%Y-%m-%d %H:%M}.</p>
<table id="summary"><tr><th>workload</th><th>headline throughput</th>
<th>speed-up vs reference</th><th>parallel efficiency</th><th>GPU</th></tr>
{''.join(trs)}
</table></body></html>"""
    index = report_dir / "index.html"
    index.write_text(page)
    print(f"wrote {index}")
    return index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qbt_lib.report")
    ap.add_argument("action", choices=["run", "render", "golden", "all"])
    ap.add_argument("--only", nargs="*", default=None, help="notebooks to execute")
    args = ap.parse_args(argv)
    names = available_notebooks(args.only or NOTEBOOKS)
    if args.action in ("run", "all"):
        for n in names:
            execute(n, "quick" if n == "profiling" and
                    (paths.PARAMS / n / "quick.yaml").exists() else "small")
    if args.action == "golden":
        paths.GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        for n in names:
            execute(n, "tiny", out=paths.GOLDEN_DIR / f"{n}.ipynb")
    if args.action in ("render", "all"):
        render()
    return 0


if __name__ == "__main__":
    sys.exit(main())
