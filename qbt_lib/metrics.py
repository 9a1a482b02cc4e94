"""A run's ``metrics.json`` and the ``Result`` every workload returns.

Below the workloads and the report: a workload's ``Result.write_metrics`` writes here, the
report (``qbt_lib.report``) reads here. Every workload's ``run(**params)`` returns a
:class:`Result`; its notebook only displays ``frame()``, ``metrics()`` and ``headline()``.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import os
from pathlib import Path
from typing import Any

from . import paths
from .machine import machine_info, versions


def write_metrics(output_dir: str | os.PathLike, workload: str, params: dict,
                  **values: Any) -> Path:
    """Write ``metrics.json`` (parameters, results, machine, versions) atomically."""
    out = paths.resolve_output_dir(output_dir)
    doc = {"workload": workload,
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "params": params, **values, "machine": machine_info(), "versions": versions()}
    p = out / "metrics.json"
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=_json_value))
    tmp.replace(p)
    return p


def _json_value(v: Any) -> Any:
    """Non-JSON values: NumPy scalars as numbers, an in-memory source named, not dumped."""
    item = getattr(v, "item", None)
    if callable(item) and getattr(v, "ndim", None) == 0:
        return item()
    if type(v).__name__ in ("DataFrame", "Series"):
        return type(v).__name__
    return str(v)


def read_metrics(workload: str, outputs: Path | None = None) -> dict | None:
    p = (outputs or paths.OUTPUTS) / workload / "metrics.json"
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


class Result:
    """What a workload's ``run`` returns (each workload's ``results.py`` subclasses it).

    ``workload`` and ``params`` (the checked parameters) are set by the subclass;
    ``frame()`` is the main table, ``metrics()`` a JSON-able dict of the figures,
    ``headline()`` the summary the notebook prints (one line, or the report's headline
    figures as a dict; built here, not in the notebook). ``write_metrics(output_dir)`` writes ``metrics.json``."""

    workload: str = ""
    params: dict

    def frame(self) -> Any:
        raise NotImplementedError

    def metrics(self) -> dict:
        raise NotImplementedError

    def headline(self) -> str:
        raise NotImplementedError

    def write_metrics(self, output_dir: str | os.PathLike | None = None, **extra: Any) -> Path:
        out = output_dir if output_dir is not None else self.params.get("output_dir")
        if out is None:
            raise ValueError("output_dir: this run has none; pass write_metrics(output_dir=...)")
        return write_metrics(out, self.workload, self.params, **{**self.metrics(), **extra})

    def _repr_html_(self) -> str:   # a Result shown in a notebook: its headline
        h = self.headline()
        if isinstance(h, dict):       # a workload whose headline is the report's figures
            rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td>"
                           f"</tr>" for k, v in h.items())
            return f"<p><b>{html.escape(self.workload)}</b></p><table>{rows}</table>"
        return f"<p><b>{html.escape(self.workload)}</b>: {html.escape(str(h))}</p>"
