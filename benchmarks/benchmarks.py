"""The asv suite: every figure each workload's benchmark names as tracked.

One class per workload. Its ``setup_cache`` runs the workload's own benchmark
(``qbt_lib.<workload>.bench.run``: the same case functions, repeats and ratios as
``python -m qbt_lib.bench``) once, at ``QBT_BENCH_SIZE`` (default ``full``; ``tiny`` for a quick
check), writes its bench JSON to ``outputs/bench/`` as usual at full size only (a tiny check
leaves the full-size JSONs there alone), and returns the tracked figures;
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


def _tracks(cls: type) -> type:
    """Add one ``track_<key>`` per figure the workload's module tracks (with its ``unit``)."""
    tracked = importlib.import_module(f"qbt_lib.{cls.workload}.bench").TRACKED
    for key, unit in tracked.items():
        def track(self, figures, key=key):
            return figures.get(key)
        track.unit = unit
        track.__name__ = f"track_{key}"
        track.__doc__ = f"{cls.workload} {key} ({unit})"
        setattr(cls, f"track_{key}", track)
    return cls


# one class per workload, each with its own setup_cache (asv keys the cache by the function's
# source line: a shared function would run one workload for all)
@_tracks
class Synth:
    workload, timeout = "synth", 1800

    def setup_cache(self):
        return tracked_figures("synth", SIZE)


@_tracks
class Straddles:
    workload, timeout = "straddles", 1800

    def setup_cache(self):
        return tracked_figures("straddles", SIZE)


@_tracks
class Walkforward:
    workload, timeout = "walkforward", 1800

    def setup_cache(self):
        return tracked_figures("walkforward", SIZE)


@_tracks
class Waves:
    workload, timeout = "waves", 1800

    def setup_cache(self):
        return tracked_figures("waves", SIZE)


@_tracks
class Marketsim:
    workload, timeout = "marketsim", 1800

    def setup_cache(self):
        return tracked_figures("marketsim", SIZE)


assert sorted(c.workload for c in (Synth, Straddles, Walkforward, Waves, Marketsim)) == \
    sorted(WORKLOADS)
