"""Benchmark history with asv (airspeed velocity): what the asv suite (``benchmarks/``) runs and
what the report and the README read back.

- :func:`tracked_figures` runs a workload's own benchmark once and returns the figures its
  module names in ``TRACKED`` (ratio and figure ``key``s), for the asv suite's ``track_*``.
- :func:`newest_results` finds the newest committed asv results file under
  ``benchmarks/results/`` for a machine; :func:`read_results` reads its figures;
  :func:`regressions` runs ``asv compare`` between the two newest result files of the machine
  and returns the figures that fell beyond its factor (every tracked figure is
  higher-is-better, so a fall -- asv's ``-`` mark -- or a new failure is a regression).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import paths
from . import WORKLOADS, Bench

ASV_CONF = paths.PROJ_ROOT / "asv.conf.json"
RESULTS_DIR = paths.PROJ_ROOT / "benchmarks" / "results"
HTML_DIR = paths.PROJ_ROOT / "benchmarks" / "html"
FACTOR = 1.1  # asv compare's default: a change beyond 10% is flagged


def tracked_figures(workload: str, size: str = "full",
                    write: bool | None = None) -> dict[str, Any]:
    """Run ``qbt_lib.<workload>.bench.run`` once at ``size`` and return ``{key: value}`` for
    every ratio and figure with a ``key`` (what the asv suite tracks). At full size (``write``
    None) the bench JSON is written to ``outputs/bench/`` as by ``python -m qbt_lib.bench``; a
    reduced size (``make bench-check``'s tiny) writes none, so it never replaces a full-size
    JSON of the workload there."""
    mod = importlib.import_module(f"qbt_lib.{workload}.bench")
    b = Bench(workload, size=size)
    mod.run(b)
    with contextlib.redirect_stdout(io.StringIO()):
        b.finish(write=size == "full" if write is None else write)
    out = {r["key"]: r.get("value") for r in b.ratios if r.get("key")}
    out.update({f["key"]: f.get("value") for f in b.figures})
    return {k: (None if v is None else float(v)) for k, v in out.items()
            if k in getattr(mod, "TRACKED", out)}


def machine_name() -> str:
    """asv's machine name here: ``~/.asv-machine.json``'s entry, else the host name."""
    p = Path.home() / ".asv-machine.json"
    try:
        names = [k for k in json.loads(p.read_text()) if k != "version"]
        if names:
            return names[0]
    except (OSError, ValueError):
        pass
    return socket.gethostname()


def result_files(machine: str | None = None, results_dir: Path | None = None) -> list[Path]:
    """asv result files (not ``machine.json``) of ``machine`` (all machines when None),
    oldest first by the date asv recorded in each."""
    root = Path(results_dir or RESULTS_DIR)
    dirs = [root / machine] if machine else [d for d in root.glob("*") if d.is_dir()]
    files = [p for d in dirs for p in d.glob("*.json") if p.name != "machine.json"]

    def date(p: Path) -> float:
        try:
            return float(json.loads(p.read_text()).get("date") or 0)
        except (OSError, ValueError):
            return 0.0
    return sorted(files, key=lambda p: (date(p), p.name))


def newest_results(machine: str | None = None, results_dir: Path | None = None
                   ) -> Path | None:
    """The newest committed results for ``machine`` (default: this one), else the newest of
    any machine; None when there are none."""
    machine = machine or machine_name()
    files = result_files(machine, results_dir) or result_files(None, results_dir)
    return files[-1] if files else None


def read_results(path: str | Path) -> dict:
    """An asv results file as ``{"path", "machine", "commit", "date", "figures": {workload:
    {key: (value, unit)}}}``."""
    path = Path(path)
    d = json.loads(path.read_text())
    cols = d.get("result_columns") or ["result"]
    figs: dict[str, dict[str, tuple]] = {}
    units = _units()
    for name, row in (d.get("results") or {}).items():
        m = re.match(r"(?:benchmarks\.)?(\w+)\.track_(\w+)$", name)
        if not m:
            continue
        wl, key = m.group(1).lower(), m.group(2)
        res = dict(zip(cols, row)).get("result") if isinstance(row, list) else row
        val = res[0] if isinstance(res, list) and res else res
        figs.setdefault(wl, {})[key] = (None if val is None else float(val),
                                        units.get(wl, {}).get(key, ""))
    return {"path": path, "machine": (d.get("params") or {}).get("machine") or path.parent.name,
            "commit": d.get("commit_hash"), "date": d.get("date"), "figures": figs}


def _units() -> dict[str, dict[str, str]]:
    out = {}
    for wl in WORKLOADS:
        try:
            out[wl] = dict(importlib.import_module(f"qbt_lib.{wl}.bench").TRACKED)
        except (ImportError, AttributeError):
            out[wl] = {}
    return out


def regressions(machine: str | None = None, factor: float = FACTOR,
                results_dir: Path | None = None) -> dict:
    """``asv compare`` of the two newest results of ``machine``: ``{"against", "newest",
    "regressions": [lines], "output"}``; ``regressions`` is empty when nothing fell beyond
    ``factor`` (or there is no earlier result to compare with: ``against`` is None)."""
    machine = machine or machine_name()
    files = result_files(machine, results_dir)
    if not files:
        files = result_files(None, results_dir)
        machine = files[-1].parent.name if files else machine
        files = result_files(machine, results_dir)
    out = {"machine": machine, "against": None, "newest": files[-1] if files else None,
           "regressions": [], "output": ""}
    if len(files) < 2:
        return out
    old, new = (json.loads(p.read_text()) for p in files[-2:])
    out["against"] = files[-2]
    asv = str(Path(sys.executable).with_name("asv"))
    if not Path(asv).exists():
        asv = shutil.which("asv") or asv
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # asv.conf.json (JSON with // comments) with this results folder
            conf = json.loads("\n".join(ln for ln in ASV_CONF.read_text().splitlines()
                                        if not ln.strip().startswith("//")))
            conf["results_dir"] = str(Path(results_dir or RESULTS_DIR).resolve())
            conf["repo"] = str(paths.PROJ_ROOT)
            cpath = Path(tmp) / "asv.conf.json"
            cpath.write_text(json.dumps(conf))
            cmd = [asv, "--config", str(cpath), "compare", "--factor", str(factor),
                   "--machine", machine, old["commit_hash"], new["commit_hash"]]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                               cwd=str(paths.PROJ_ROOT))
        text = r.stdout + r.stderr
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        out["output"] = f"asv compare could not run: {e}"
        return out
    out["output"] = text
    # higher is better for every tracked figure: asv's '-' (fell beyond the factor) and '!'
    # (now failing) are regressions
    # (asv prints a table, "| - | before | after | ratio | benchmark |", or plain columns)
    regs = []
    for ln in text.splitlines():
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0] in ("-", "!") and "track_" in cells[-1]:
            regs.append(f"{cells[-1]}: {cells[1]} -> {cells[2]} (ratio {cells[3]})")
        elif re.match(r"^\s*[-!]\s+\S", ln) and "track_" in ln and "|" not in ln:
            regs.append(ln.strip())
    out["regressions"] = regs
    return out
