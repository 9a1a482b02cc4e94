"""The asv suite: every figure each workload's benchmark names as tracked.

One class per workload. Its ``setup_cache`` runs the workload's own benchmark
(``qbt_lib.<workload>.bench.run``: the same case functions, repeats and ratios as
``python -m qbt_lib.bench``) once, at ``QBT_BENCH_SIZE`` (default ``full``; ``tiny`` for a quick
check), writes its bench JSON to ``outputs/bench/`` as usual, and returns the tracked figures;
each ``track_<key>`` returns one of them with its ``unit`` (the keys and units are the
workload module's ``TRACKED``). Every tracked figure is higher-is-better (a speed-up, a
throughput, an efficiency): ``asv compare`` marks a fall with ``-``, which the report flags as
a regression.
"""
from __future__ import annotations

import importlib
import os

from qbt_lib.bench import WORKLOADS
from qbt_lib.bench.history import tracked_figures

SIZE = os.environ.get("QBT_BENCH_SIZE", "full")


def _make(workload: str) -> type:
    tracked = importlib.import_module(f"qbt_lib.{workload}.bench").TRACKED

    def setup_cache(self):
        return tracked_figures(workload, SIZE)

    ns = {"timeout": 1800, "setup_cache": setup_cache,
          "__doc__": f"{workload}: the figures qbt_lib.{workload}.bench tracks"}
    for key, unit in tracked.items():
        def track(self, figures, key=key):
            return figures.get(key)
        track.unit = unit
        track.__name__ = f"track_{key}"
        track.__doc__ = f"{workload} {key} ({unit})"
        ns[f"track_{key}"] = track
    return type(workload.capitalize(), (), ns)


for _wl in WORKLOADS:
    globals()[_wl.capitalize()] = _make(_wl)
