"""The profiling notebook's parameters, validated in one place (:class:`ProfilingConfig`)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .. import paths
from ..bench import MIN_REPEATS, SIZES, WORKLOADS
from ..fmt import rel
from ..parallel import check_scheduler
from ..params import as_bool, as_float, as_int, as_list, one_of

BACKENDS = ("sequential", "threads", "loky", "dask")
DEVICES = ("cpu", "gpu")


@dataclasses.dataclass
class ProfilingConfig:
    """The profiling notebook's parameters, validated in one place."""
    workloads: list[str]
    size: str = "quick"
    n_jobs: list[int] = dataclasses.field(default_factory=lambda: [1, 2, -1])
    backends: list[str] = dataclasses.field(default_factory=lambda: list(BACKENDS))
    devices: list[str] = dataclasses.field(default_factory=lambda: list(DEVICES))
    profile: bool = True
    output_dir: Path = dataclasses.field(default_factory=lambda: paths.OUTPUTS / "profiling")
    results_from: Path | None = None
    gpu_from: Path | None = None
    max_repeats: int | None = None
    profile_seconds: float = 2.0
    top: int = 12
    scheduler: str | None = "local"   # the dask cases' cluster (a hint: bench.scheduler)

    @classmethod
    def from_params(cls, workloads: Any = "all", size: Any = "quick",
                    n_jobs: Any = (1, 2, -1), backends: Any = BACKENDS,
                    devices: Any = DEVICES, profile: Any = True,
                    output_dir: Any = "outputs/profiling", results_from: Any = None,
                    max_repeats: Any = None, profile_seconds: Any = 2.0,
                    top: Any = 12, gpu_from: Any = None,
                    scheduler: Any = "local") -> "ProfilingConfig":
        if workloads is None or (isinstance(workloads, str) and workloads.strip().lower() == "all"):
            wls = list(WORKLOADS)
        else:
            wls = as_list("workloads", workloads, options=WORKLOADS)
            wls = list(dict.fromkeys(wls))
        jobs = [as_int("n_jobs", j) for j in as_list("n_jobs", n_jobs)]
        if any(j == 0 for j in jobs):
            raise ValueError("n_jobs must not contain 0 (1 sequential, -1 all cores)")
        src = None
        if results_from not in (None, "", "none", "None"):
            src = paths.resolve_input_path(str(results_from))
            if not src.is_dir():
                raise ValueError(f"results_from must be a folder of bench JSONs, got "
                                 f"{results_from!r}")
        gsrc = None
        if gpu_from not in (None, "", "none", "None"):
            gsrc = paths.resolve_input_path(str(gpu_from))
            if not gsrc.is_dir():
                raise ValueError(f"gpu_from must be a folder of bench JSONs, got {gpu_from!r}")
        return cls(
            gpu_from=gsrc,
            workloads=wls,
            size=one_of("size", size, SIZES),
            n_jobs=list(dict.fromkeys(jobs)),
            backends=list(dict.fromkeys(as_list("backends", backends, options=BACKENDS))),
            devices=list(dict.fromkeys(as_list("devices", devices, options=DEVICES))),
            profile=as_bool("profile", profile),
            output_dir=paths.resolve_output_dir(output_dir),
            results_from=src,
            max_repeats=None if max_repeats is None else as_int("max_repeats", max_repeats,
                                                                 min=1),
            profile_seconds=as_float("profile_seconds", profile_seconds, min=0.0),
            top=as_int("top", top, min=1, max=200),
            scheduler=check_scheduler(scheduler),
        )

    def describe(self) -> str:
        """The configuration in words (no machine-dependent values: safe to compare)."""
        src = (f"bench JSONs read from {rel(self.results_from)}" if self.results_from
               else f"benchmarks run at size {self.size!r}")
        reps = (f"median of >= {MIN_REPEATS} timed calls per case (qbt_lib.bench)"
                if self.max_repeats is None
                else f"median of >= {self.max_repeats} timed call(s) per case")
        return "\n".join([
            f"workloads : {', '.join(self.workloads)}",
            f"source    : {src}",
            f"GPU JSONs : {'from ' + rel(self.gpu_from) if self.gpu_from else 'outputs/bench, benchmarks/gpu/*/ and this run'}",
            f"n_jobs    : {self.n_jobs}",
            f"backends  : {', '.join(self.backends)}",
            f"devices   : {', '.join(self.devices)}",
            f"profile   : {'on' if self.profile else 'off'}"
            + (f" (top {self.top} functions by cumulative time)" if self.profile else ""),
            f"repeats   : {reps}",
            f"output    : {rel(self.output_dir)}",
        ])

