"""Run the notebooks and render ``outputs/report/index.html`` and README.md's results block.

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
``python -m qbt_lib.report readme``  rewrites README.md's results block.

Where a figure comes from: a workload's headline comes from the newest committed asv results
(``benchmarks/results``), else its bench JSON (the benchmark's own ``headline`` strings, else
computed from its cases by :func:`qbt_lib.profiling.summarize`); without a bench JSON, from
the ``headline`` of the ``metrics.json`` its notebook wrote (:mod:`qbt_lib.metrics`), which is
also shown beneath as the notebook's figure. GPU figures come from GPU runs' JSONs: dropped
into ``outputs/bench`` or committed in ``benchmarks/gpu/<tag>/``. Every JSON used is copied
next to the page (``outputs/report/data/``) and linked from its row with the machine it was
measured on.

The package (this module only re-exports): :mod:`.notebooks` runs notebooks (papermill),
:mod:`.summary` gathers the rows, :mod:`.page` renders the HTML, :mod:`.readme` the README
block, :mod:`.cli` is ``python -m qbt_lib.report``.
"""
from ..bench.jsons import bench_dirs
from ..metrics import read_metrics, write_metrics  # report.write_metrics: the older name
from . import notebooks
from .cli import main
from .notebooks import (KERNEL, NOTEBOOKS, available_notebooks, default_size, execute, golden,
                        run_notebooks)
from .page import notebook_html, render
from .readme import RESULTS_END, RESULTS_START, readme_results, write_readme
from .summary import (HEADLINE_KEYS, asv_summary, bench_docs, machine_short, notebook_failed,
                      summary_rows, workload_docs)

__all__ = [
    "NOTEBOOKS", "KERNEL", "HEADLINE_KEYS", "RESULTS_START", "RESULTS_END", "notebooks",
    "available_notebooks", "default_size", "execute", "run_notebooks", "golden", "bench_dirs",
    "bench_docs", "workload_docs", "machine_short", "asv_summary", "summary_rows",
    "notebook_failed", "notebook_html", "render", "readme_results", "write_readme", "main",
    "read_metrics", "write_metrics",
]
