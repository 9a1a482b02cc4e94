"""Profiling sweeps over every workload's benchmark, and the tables and plots built from them.

The profiling notebook is thin: it calls :func:`run_all` (or :func:`load_all` to show bench
JSONs made elsewhere) and then the table and plot helpers below, which read **only** the bench
JSON schema of :mod:`qbt_lib.bench` (cases, ratios, machine, versions, copy bandwidth), so a
JSON made on another machine (a GPU run dropped into ``outputs/bench/``) is shown exactly like
one made here, and every figure can be traced to the JSON and the machine it came from.

What a workload's ``run(bench)`` sees when run from here is a :class:`ProfilingBench`: a
:class:`~qbt_lib.bench.Bench` that also

- carries the sweep the notebook asked for as hints (``bench.n_jobs_list``, ``bench.backends``,
  ``bench.devices``; a workload may read them with ``getattr`` and a default),
- may lower the bench's minimum repeats per case (``max_repeats``; by default every case is
  the median of at least 5 timed calls, :data:`qbt_lib.bench.MIN_REPEATS`),
- profiles, after the run, the reference and the fastest single-worker path once each under
  cProfile and stores the top functions in the JSON (``notes["profiles"]``).

A workload can state the published figures of its seed itself in ``bench.notes
["seed_figures"]`` (same fields as :data:`SEED_FIGURES`); otherwise the seeds' figures apply.

The package, by concern (this module only re-exports):

- :mod:`.config`  ``ProfilingConfig``: the notebook's parameters, validated;
- :mod:`.sweep`   ``ProfilingBench``, ``run_benchmark``/``run_all``/``load_all``,
  ``profile_call``, ``gpu_docs``: running (or reading back) every workload's benchmark;
- :mod:`.tables`  DataFrames from a bench JSON (cases, speed-ups, ratios, parallel, bandwidth,
  memory, profiles, GPU vs CPU, machines) and ``rounded`` for display;
- :mod:`.seeds`   the seeds' published figures and ours against them;
- :mod:`.summary` ``summarize``: a workload's headline from its JSON(s) (the report's too);
  ``headline``: the notebook's own metrics.json headline;
- :mod:`.plots`   the figures, and ``each``/``show`` for the notebook's loops;
- :mod:`.checks`  what the notebook asserts before it writes its metrics.

Reading bench JSONs back (``find_jsons``, ``pick_primary``, ``has_gpu``) is
:mod:`qbt_lib.bench.jsons`; number formatting (``human``, ``times``, ``rel``) is
:mod:`qbt_lib.fmt`, shared with the report; both re-exported here for the notebook.
"""
from ..bench.jsons import find_jsons, has_gpu, load_json, pick_primary
from ..fmt import human, rel, span, times
from .checks import check_real_runs, check_traceable, speedup_floor_failures
from .config import BACKENDS, DEVICES, SIZES, ProfilingConfig
from .plots import (each, plot_bandwidth, plot_gpu, plot_memory, plot_parallel, plot_speedups,
                    plot_time_vs_size, show)
from .seeds import SEED_FIGURES, seed_comparison, seed_figures, seed_table
from .summary import gpu_figure, headline, headline_ratio, summarize
from .sweep import (ProfilingBench, WorkloadResult, bench_module_exists, gpu_docs, load_all,
                    profile_call, run_all, run_benchmark, status_lines)
from .tables import (FASTEST_CPU, bandwidth_table, cases_frame, filter_cases, gpu_table,
                     machine_table, memory_table, parallel_table, primary_unit, profile_tables,
                     ratios_table, rounded, series_label, speedup_table)

__all__ = [
    "SEED_FIGURES", "SIZES", "BACKENDS", "DEVICES", "ProfilingConfig", "ProfilingBench",
    "WorkloadResult", "run_all", "run_benchmark", "load_all", "bench_module_exists",
    "find_jsons", "load_json", "gpu_docs", "cases_frame", "speedup_table", "ratios_table",
    "parallel_table", "bandwidth_table", "memory_table", "profile_tables", "seed_comparison",
    "seed_figures", "seed_table", "gpu_table", "machine_table", "summarize",
    "plot_time_vs_size", "plot_speedups", "plot_parallel", "plot_bandwidth", "plot_gpu",
    "plot_memory", "check_traceable", "check_real_runs", "speedup_floor_failures",
    "gpu_figure", "headline_ratio", "status_lines", "rounded", "pick_primary", "has_gpu",
    "profile_call", "each", "show", "headline", "human", "times", "span", "rel", "filter_cases",
    "primary_unit", "series_label", "FASTEST_CPU",
]
