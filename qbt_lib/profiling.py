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
["seed_figures"]`` (same fields as :data:`SEED_FIGURES`); otherwise the figures below apply.
"""
from __future__ import annotations

import contextlib
import cProfile
import dataclasses
import gc
import importlib
import importlib.util
import io
import json
import math
import pstats
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from . import paths
from .bench import WORKLOADS, Bench
from .parallel import check_scheduler
from .params import as_bool, as_float, as_int, as_list, one_of

SIZES = ("tiny", "quick", "full")
BACKENDS = ("sequential", "threads", "loky", "dask")
DEVICES = ("cpu", "gpu")
REFERENCE_IMPLS = ("reference", "ref", "before")

# --------------------------------------------------------------------------- seed figures
# where each published figure is quoted, in the repository (the original write-ups' figures)
_S000 = "docs/synth.md"
_S001 = "docs/walkforward.md"
_S002 = "docs/waves.md"
_S003 = "docs/marketsim.md"
_S004 = "docs/straddles.md"


def _t(workload, source, label, size, unit, lo, hi=None, workers=1, note=""):
    return {"workload": workload, "source": source, "label": label, "kind": "time",
            "size": float(size), "unit": unit, "seconds_lo": float(lo),
            "seconds_hi": float(hi if hi is not None else lo), "workers": workers, "note": note}


def _x(workload, source, label, lo, hi=None, workers=None, note=""):
    return {"workload": workload, "source": source, "label": label, "kind": "speedup",
            "size": None, "unit": None, "value_lo": float(lo),
            "value_hi": float(hi if hi is not None else lo), "workers": workers, "note": note}


#: The published before/after figures of the five seeds (and the specs' measured baselines),
#: each with the file it is quoted from. ``time`` figures are (size, seconds lo..hi) in the
#: seed's unit and compare with our cases of the same unit by throughput; ``speedup`` figures
#: compare with our best speed-up over the reference.
SEED_FIGURES: list[dict] = [
    _t("synth", _S000, "before: sequential loop", 1e6, "samples", 300, workers=1,
       note="1M samples in ~5 minutes"),
    _t("synth", _S000, "before: sequential loop", 1e7, "samples", 3000, workers=1,
       note="10M samples in ~50 minutes"),
    _t("synth", _S000, "after: vectorized, 1 core", 1e6, "samples", 10, 20, workers=1,
       note="1M samples in ~10-20 s"),
    _t("synth", _S000, "after: vectorized, 1 core", 4e7, "samples", 480, 720, workers=1,
       note="40M samples in ~8-12 min"),
    _t("synth", _S000, "after: vectorized + joblib, 8 cores", 1e7, "samples", 15, 25,
       workers=8, note="10M samples in ~15-25 s on 8 cores"),
    _t("synth", _S000, "after: vectorized + joblib, 8 cores", 3.2e8, "samples", 480, 720,
       workers=8, note="320M samples in ~8-12 min on 8 cores (160-320 GB RAM)"),
    _x("synth", _S000, "combined speed-up claimed", 40, 240, workers=8,
       note="40-240x depending on size and cores"),
    _t("straddles", _S004, "single thread", 2304, "straddles", 0.73, workers=1,
       note="2,304 straddles in 0.73 s (3,157 straddles/s)"),
    _t("straddles", _S004, "16 processes, pickled dict", 2304, "straddles", 72.53, workers=16,
       note="the pitfall: 31.8 straddles/s"),
    _x("walkforward", _S001, "target: wall-clock on 8 cores", 3, workers=8,
       note=">= 3x without changing results (1e-9)"),
    _x("walkforward", _S001, "expected total of the plan", 6, 12, workers=8,
       note="folds x I/O x vectorization x mmap"),
    _t("waves", _S002, "baseline: 1 symbol, 500 windows", 500, "windows", 60, workers=6,
       note="60 s with 6 workers"),
    _t("waves", _S002, "CPU-optimized: 1 symbol, 500 windows", 500, "windows", 12, workers=30,
       note="12 s with 30 workers"),
    _t("waves", _S002, "full acceleration (30 workers + GPU)", 500, "windows", 3, workers=30,
       note="3 s with 30 workers and a 140 GB GPU"),
    _t("waves", _S002, "baseline: S&P 500", 500, "symbols", 8.3 * 3600, workers=6,
       note="8.3 hours"),
    _t("waves", _S002, "full acceleration: S&P 500", 500, "symbols", 25 * 60, workers=30,
       note="25 minutes with 30 workers + GPU"),
    _t("waves", "docs/waves.md", "original find_impulsive_wave, 1 core", 579195, "tuples",
       579195 / 30e3, 579195 / 20e3, workers=1, note="20-30 thousand tuples/s"),
    _t("marketsim", _S003, "sequential analysis, 30 symbols x 70 sims", 2100, "symbol-sims",
       95, workers=1, note="~30 symbols in ~95 s, 70 simulations each"),
    _t("marketsim", _S003, "thread-parallel analysis (32 workers)", 2100, "symbol-sims", 10, 15,
       workers=32, note="~10-15 s on a 72-CPU machine"),
    _t("marketsim", _S003, "first inference: model compile", 1, "start", 40, 42, workers=1,
       note="~40 s torch.compile on first use (warm-up 35-40 s)"),
    _x("marketsim", _S003, "warm-up + parallel, subsequent runs", 15, workers=32,
       note="150 s -> 10 s"),
]


def _singular(unit: Any) -> str:
    u = str(unit or "").strip().lower()
    return u[:-1] if u.endswith("s") and not u.endswith("ss") else u


def seed_figures(workload: str | None = None, doc: dict | None = None) -> list[dict]:
    """The seed figures for ``workload``: the bench JSON's own (``notes["seed_figures"]``)
    when it states them, else :data:`SEED_FIGURES`."""
    own = (doc or {}).get("notes", {}).get("seed_figures") if doc else None
    figs = own if own else SEED_FIGURES
    return [f for f in figs if workload is None or f.get("workload", workload) == workload]


def seed_table(workloads: Iterable[str] | None = None):
    """The seed figures as a DataFrame (what the seed published, and where)."""
    import pandas as pd
    rows = []
    for f in SEED_FIGURES:
        if workloads is not None and f["workload"] not in workloads:
            continue
        if f["kind"] == "time":
            lo = f["size"] / f["seconds_hi"]
            hi = f["size"] / f["seconds_lo"]
            fig = f"{human(f['size'])} {f['unit']} in {_range(f['seconds_lo'], f['seconds_hi'])} s"
            thr = f"{_range(lo, hi)} {f['unit']}/s"
        else:
            fig = f"{_range(f['value_lo'], f['value_hi'])}x"
            thr = ""
        rows.append({"workload": f["workload"], "seed figure": f["label"], "published": fig,
                     "throughput": thr or "-",
                     "workers": "-" if f["workers"] is None else f["workers"],
                     "note": f["note"],
                     "source": f["source"]})
    return pd.DataFrame(rows)


def human(x: Any) -> str:
    """A number for people: 2,304 / 3.16k / 7.69M / 0.73 (3 significant digits)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "-"
    if not math.isfinite(x):
        return "-"
    a = abs(x)
    if x == int(x) and a < 1e4:
        return f"{int(x):,}"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def times(x: Any) -> str:
    """A speed-up for people: 3,077x / 44.4x / 1.71x / 0.075x."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "-"
    if not math.isfinite(x):
        return "-"
    if x >= 100:
        return f"{x:,.0f}x"
    return f"{x:.3g}x"


def _range(lo: float, hi: float) -> str:
    return human(lo) if math.isclose(lo, hi, rel_tol=1e-9) else f"{human(lo)}-{human(hi)}"


# --------------------------------------------------------------------------- configuration
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
        src = (f"bench JSONs read from {_rel(self.results_from)}" if self.results_from
               else f"benchmarks run at size {self.size!r}")
        return "\n".join([
            f"workloads : {', '.join(self.workloads)}",
            f"source    : {src}",
            f"GPU JSONs : {'from ' + _rel(self.gpu_from) if self.gpu_from else 'outputs/bench and this run'}",
            f"n_jobs    : {self.n_jobs}",
            f"backends  : {', '.join(self.backends)}",
            f"devices   : {', '.join(self.devices)}",
            f"profile   : {'on' if self.profile else 'off'}"
            + (f" (top {self.top} functions by cumulative time)" if self.profile else ""),
            f"repeats   : {'median of >= 5 timed calls per case (qbt_lib.bench)' if self.max_repeats is None else f'median of >= {self.max_repeats} timed call(s) per case'}",
            f"output    : {_rel(self.output_dir)}",
        ])


def _rel(p: Path | str | None) -> str:
    if p is None:
        return "-"
    p = Path(p)
    try:
        return str(p.resolve().relative_to(paths.PROJ_ROOT))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------- the bench
class ProfilingBench(Bench):
    """A :class:`Bench` that carries the requested sweep, caps repeats and profiles the
    reference and the fast path.

    Profiles are taken right after a case is timed (one more call under cProfile), because a
    workload's closures may not be callable once its ``run`` has moved on (buffers deleted,
    temp folders removed). To stay cheap only improving candidates are profiled: a reference
    case when it is larger than the last one profiled and still runs within
    ``profile_seconds``, a single-worker CPU case when it beats the best so far in its unit.
    """

    def __init__(self, workload: str, *, n_jobs_list: Sequence[int] = (1, 2, -1),
                 backends: Sequence[str] = BACKENDS, devices: Sequence[str] = DEVICES,
                 max_repeats: int | None = None, profile: bool = True,
                 profile_seconds: float = 2.0, top: int = 12,
                 scheduler: str | None = "local", **kw: Any):
        if max_repeats is not None:  # fewer timed calls per case than the bench's rule
            kw["min_repeats"] = int(max_repeats)
        super().__init__(workload, **kw)
        # hints a workload's run(bench) may read: getattr(bench, "n_jobs_list", (1, -1))
        self.n_jobs_list = tuple(n_jobs_list)
        self.backends = tuple(backends)
        self.devices = tuple(devices)
        self.scheduler = scheduler  # where a workload's dask cases run ("local": a LocalCluster)
        self.max_repeats = max_repeats
        self.profile = profile
        self.profile_seconds = profile_seconds
        self.top = top
        self._ref_profile: tuple[tuple, dict] | None = None
        self._fast_profiles: dict[str, tuple[float, dict]] = {}
        self._skipped_ref: dict | None = None

    def measure(self, name: str, fn: Callable[[], Any], **kw: Any) -> dict:
        if self.max_repeats is not None:  # the notebook's cap wins over the workload's ask
            kw["repeats"] = min(int(kw.get("repeats") or self.max_repeats), self.max_repeats)
        return super().measure(name, fn, **kw)

    def after_measure(self, case: dict, fn: Callable[[], Any]) -> None:
        if self.profile:
            self._maybe_profile(case, fn)

    def _profile(self, kind: str, case: dict, fn: Callable[[], Any]) -> dict:
        print(f"  profiling {kind}: {case['name']}", flush=True)
        try:
            prof = profile_call(fn, top=self.top)
        except Exception as e:  # a profile must never lose the timings already taken
            prof = {"error": f"{type(e).__name__}: {e}", "top": []}
        return {"kind": kind, "case": case["name"], "impl": case["impl"],
                "size": case["size"], "unit": case.get("unit"), **prof}

    def _maybe_profile(self, case: dict, fn: Callable[[], Any]) -> None:
        from .parallel import available_cores
        limit = 3 * self.profile_seconds  # cProfile slows Python code 2-3x: keep it bounded
        # a case whose seconds are scaled from capped calls states what one call takes
        secs = case.get("call_seconds", case["seconds"])
        if _is_reference(case["impl"]):
            if secs > limit:
                if self._skipped_ref is None or case["seconds"] < self._skipped_ref["seconds"]:
                    self._skipped_ref = case
                return
            within = secs <= self.profile_seconds
            key = (within, case["size"] if within else -secs)
            if self._ref_profile is None or key > self._ref_profile[0]:
                self._ref_profile = (key, self._profile("reference", case, fn))
            return
        if (case.get("device", "cpu") != "cpu" or not case.get("throughput")
                or _workers(case, available_cores()) != 1 or case["seconds"] > limit):
            return
        unit = str(case.get("unit"))
        best = self._fast_profiles.get(unit)
        if best is None or case["throughput"] > best[0]:
            self._fast_profiles[unit] = (case["throughput"],
                                         self._profile("fast path", case, fn))

    def run_profiles(self) -> list[dict]:
        """Store the chosen profiles in the JSON (``notes["profiles"]``): the reference, and
        the fastest single-worker CPU path in the reference's unit."""
        out: list[dict] = []
        if self.profile:
            unit = None
            if self._ref_profile is not None:
                out.append(self._ref_profile[1])
                unit = str(self._ref_profile[1]["unit"])
            elif self._skipped_ref is not None:
                c = self._skipped_ref
                out.append({"kind": "reference", "case": c["name"], "impl": c["impl"],
                            "size": c["size"], "unit": c.get("unit"), "top": [],
                            "error": f"not profiled: one run takes {c['seconds']:.1f} s "
                                     f"(> {3 * self.profile_seconds:g} s)"})
                unit = str(c.get("unit"))
            fast = self._fast_profiles.get(unit) if unit is not None else None
            if fast is None and self._fast_profiles:
                fast = max(self._fast_profiles.values(), key=lambda t: t[0])
            if fast is not None:
                out.append(fast[1])
            self.notes["profiles"] = out
        return out


def _is_reference(impl: Any) -> bool:
    s = str(impl or "").lower()
    return s in REFERENCE_IMPLS or s.startswith("reference")


def _workers(case: dict, cores: int) -> int:
    if isinstance(case.get("workers"), (int, float)) and case["workers"] >= 1:
        return int(case["workers"])
    if str(case.get("backend", "sequential")) == "sequential":
        return 1
    try:
        n = int(case.get("n_jobs", 1))
    except (TypeError, ValueError):
        return 1
    if n < 0:
        return max(1, cores + 1 + n)
    return max(1, n)


def _short_path(filename: str) -> str:
    if filename in ("~", ""):
        return ""
    f = filename.replace("\\", "/")
    for marker in ("site-packages/", "dist-packages/"):  # before the root: .venv is in it
        if marker in f:
            return f.split(marker, 1)[1]
    root = str(paths.PROJ_ROOT).replace("\\", "/") + "/"
    if f.startswith(root):
        return f[len(root):]
    m = re.search(r"/lib/python3\.\d+/(.*)$", f)
    if m:
        return m.group(1)
    return Path(f).name


def profile_call(fn: Callable[[], Any], top: int = 12) -> dict:
    """Run ``fn`` once under cProfile; the ``top`` functions by cumulative time and the
    process's peak RSS during the call (``VmHWM`` reset first)."""
    from .machine import peak_rss_mb, peak_rss_reset
    prof = cProfile.Profile()
    peak_rss_reset()
    t = time.perf_counter()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    wall = time.perf_counter() - t
    peak = peak_rss_mb()
    st = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _callers) in st.stats.items():
        if func in ("<method 'disable' of '_lsprof.Profiler' objects>",):
            continue
        where = _short_path(file)
        label = f"{where}:{line}({func})" if where else func
        rows.append({"function": label, "ncalls": int(nc), "tottime": float(tt),
                     "cumtime": float(ct)})
    rows.sort(key=lambda r: (-r["cumtime"], r["function"]))
    return {"wall_seconds": wall, "total_calls": int(st.total_calls), "peak_rss_mb": peak,
            "top": rows[:top]}


# --------------------------------------------------------------------------- running
@dataclasses.dataclass
class WorkloadResult:
    """One workload's outcome: ``status`` is ``ok``, ``missing`` (no benchmark module / no
    JSON yet) or ``error``; ``doc`` is its bench JSON and ``path`` where it was written."""
    workload: str
    status: str
    message: str = ""
    doc: dict | None = None
    path: str | None = None
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.doc is not None


def bench_module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):
        return False


def run_benchmark(workload: str, cfg: ProfilingConfig, module: str | None = None,
                  log: bool = True) -> WorkloadResult:
    """Run ``qbt_lib.<workload>.bench.run`` (or ``module``'s) through a
    :class:`ProfilingBench`, profile it and write ``<output_dir>/bench/<workload>.json``.

    With ``log`` the benchmark's own printed table (and any traceback) goes to
    ``<workload>.log`` beside the JSON, so the notebook shows one line per workload. Never
    raises for a workload's failure: the result says what happened."""
    module = module or f"qbt_lib.{workload}.bench"
    if not bench_module_exists(module):
        return WorkloadResult(workload, "missing",
                              f"{module} does not exist yet: not benchmarked")
    out_dir = cfg.output_dir / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / f"{workload}.log"
    print(f"== {workload} ({cfg.size})" + (f": log in {_rel(log_path)}" if log else ""),
          flush=True)
    t = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if log:
            f = stack.enter_context(open(log_path, "w"))
            stack.enter_context(contextlib.redirect_stdout(f))
            stack.enter_context(contextlib.redirect_stderr(f))
        try:
            mod = importlib.import_module(module)
            gc.collect()  # what earlier workloads left behind is not this one's memory
            rss0 = _rss_mb()
            b = ProfilingBench(workload, size=cfg.size, out_dir=out_dir,
                               n_jobs_list=cfg.n_jobs, backends=cfg.backends,
                               devices=cfg.devices, max_repeats=cfg.max_repeats,
                               profile=cfg.profile, profile_seconds=cfg.profile_seconds,
                               top=cfg.top, scheduler=cfg.scheduler)
            mod.run(b)
            b.run_profiles()
            b.note("rss_at_start_mb", rss0)
            b.note("profiling_config", {"size": cfg.size, "n_jobs": cfg.n_jobs,
                                        "backends": cfg.backends, "devices": cfg.devices,
                                        "max_repeats": cfg.max_repeats})
            p = b.finish()
            doc = json.loads(Path(p).read_text())
            doc["_path"] = str(p)
        except Exception as e:
            tb = traceback.format_exception(type(e), e, e.__traceback__)
            print("".join(x if len(x) <= 4000 else x[:4000] + " ...\n" for x in tb),
                  file=sys.stderr, flush=True)  # the whole story, once
            res = WorkloadResult(workload, "error", _short_error(e),
                                 seconds=time.perf_counter() - t)
        else:
            res = WorkloadResult(workload, "ok", f"{len(doc['cases'])} cases", doc, str(p),
                                 seconds=time.perf_counter() - t)
    print(f"   {res.status} after {res.seconds:.1f} s"
          + (f": {res.message}" if res.status != "ok" else ""), flush=True)
    return res


def _rss_mb() -> float | None:
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2**20
    except Exception:
        return None


def _short_error(e: BaseException, limit: int = 240) -> str:
    """``Type: first line of the message`` (Numba typing errors run to pages)."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    msg = f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return msg if len(msg) <= limit else msg[:limit - 3] + "..."


def load_json(path: str | Path) -> dict | None:
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not (isinstance(d, dict) and "workload" in d and "cases" in d):
        return None
    d["_path"] = str(path)
    return d


def find_jsons(dirs: Iterable[str | Path | None]) -> list[dict]:
    """Every bench JSON in ``dirs`` (missing folders are skipped), deduplicated by path."""
    seen, out = set(), []
    for rank, d in enumerate(dirs):
        if d is None or not Path(d).is_dir():
            continue
        for p in sorted(Path(d).glob("*.json")):
            rp = str(p.resolve())
            if rp in seen:
                continue
            seen.add(rp)
            doc = load_json(p)
            if doc is not None:
                doc["_dir_rank"] = rank  # earlier folders are preferred (pick_primary)
                out.append(doc)
    return out


def has_gpu(doc: dict) -> bool:
    """A bench JSON made on a machine with a GPU (or holding GPU cases)."""
    return bool((doc.get("machine") or {}).get("gpu")) or any(
        c.get("device") == "gpu" for c in doc.get("cases", []))


def pick_primary(docs: list[dict], workload: str) -> dict | None:
    """The CPU bench JSON to show for a workload: untagged before tagged, full before quick,
    from the first folder searched (``outputs/bench`` before the profiling notebook's), then
    newest; a GPU JSON only when there is nothing else."""
    mine = [d for d in docs if d.get("workload") == workload]
    if not mine:
        return None
    cpu = [d for d in mine if not has_gpu(d)] or mine
    return sorted(cpu, key=lambda d: (d.get("tag") is None, not d.get("quick", False),
                                      -d.get("_dir_rank", 0), str(d.get("created", ""))),
                  reverse=True)[0]


def load_all(cfg: ProfilingConfig) -> dict[str, WorkloadResult]:
    """Results read from ``cfg.results_from`` instead of running (one line per workload)."""
    docs = find_jsons([cfg.results_from])
    out = {}
    for wl in cfg.workloads:
        d = pick_primary(docs, wl)
        if d is None:
            out[wl] = WorkloadResult(wl, "missing",
                                     f"no bench JSON for {wl} in {_rel(cfg.results_from)}")
        else:
            out[wl] = WorkloadResult(wl, "ok", f"{len(d['cases'])} cases", d, d["_path"])
    return out


def run_all(cfg: ProfilingConfig) -> dict[str, WorkloadResult]:
    """Run (or load) every requested workload; prints one clear line per workload."""
    if cfg.results_from is not None:
        res = load_all(cfg)
    else:
        res = {wl: run_benchmark(wl, cfg) for wl in cfg.workloads}
    return res


def status_lines(results: dict[str, WorkloadResult]) -> str:
    lines = []
    for wl, r in results.items():
        src = f" ({_rel(r.path)})" if r.ok and r.path else ""
        lines.append(f"{wl:<12s} {r.status:<8s} {r.message}{src}")
    return "\n".join(lines)


def gpu_docs(cfg: ProfilingConfig) -> list[dict]:
    """GPU bench JSONs: dropped into ``outputs/bench`` (``<wl>-<tag>.json`` from a device
    run) and made by this notebook; only ``results_from`` when showing saved results."""
    if cfg.gpu_from is not None:  # e.g. the golden notebook: only the test-data GPU JSON
        dirs = [cfg.gpu_from, cfg.output_dir / "bench"]
    elif cfg.results_from is not None:
        dirs = [cfg.results_from]
    else:
        dirs = [paths.BENCH_DIR, cfg.output_dir / "bench"]
    return [d for d in find_jsons(dirs) if has_gpu(d) and d["workload"] in cfg.workloads]


# --------------------------------------------------------------------------- tables
_CASE_COLS = ["workload", "name", "impl", "size", "unit", "n_jobs", "workers", "backend",
              "device", "seconds", "min", "max", "repeats", "throughput", "GBps",
              "bw_fraction", "peak_rss_mb"]


def cases_frame(doc: dict | None):
    """The cases of a bench JSON as a DataFrame, with ``workers`` resolved against the
    machine the JSON was made on (``n_jobs=-1`` there means all of *its* cores)."""
    import pandas as pd
    if not doc:
        return pd.DataFrame(columns=_CASE_COLS + ["source"])
    cores = int((doc.get("machine") or {}).get("cores") or 1)
    rows = []
    for c in doc.get("cases", []):
        r = {k: c.get(k) for k in _CASE_COLS if k != "workload"}
        r["workload"] = doc.get("workload")
        r["workers"] = _workers(c, cores)
        r["backend"] = c.get("backend") or "sequential"
        r["device"] = c.get("device") or "cpu"
        r["unit"] = c.get("unit") or "items"
        r["source"] = Path(doc.get("_path", "")).name
        ts = c.get("times") or []
        if r["min"] is None:  # a JSON from before min/max were kept
            r["min"] = min(ts) if ts else c.get("seconds")
            r["max"] = max(ts) if ts else c.get("seconds")
        if r["repeats"] is None:
            r["repeats"] = len(ts) or 1
        rows.append(r)
    df = pd.DataFrame(rows, columns=_CASE_COLS + ["source"])
    for k in ("size", "seconds", "min", "max", "throughput", "GBps", "bw_fraction",
              "peak_rss_mb"):
        df[k] = pd.to_numeric(df[k], errors="coerce").astype(float)
    df["workers"] = df["workers"].astype(int)
    df["is_reference"] = df["impl"].map(_is_reference).astype(bool)
    return df


def filter_cases(df, cfg: ProfilingConfig, cores: int | None = None):
    """Keep the cases the notebook asked to see: single-worker baselines always, parallel
    cases whose worker count and backend were requested, and the requested devices."""
    if df.empty:
        return df
    from .parallel import available_cores
    cores = cores or available_cores()
    want = {max(1, cores + 1 + j) if j < 0 else j for j in cfg.n_jobs}
    # backends outside the parallel layer's (a workload's "numba-threads", "mp-spawn") are
    # not the notebook's to filter
    backend_ok = df["backend"].isin(cfg.backends) | ~df["backend"].isin(BACKENDS)
    keep = (df["device"].isin(cfg.devices)) & (
        (df["workers"] == 1) | (df["workers"].isin(want) & backend_ok))
    return df[keep]


def primary_unit(df) -> str | None:
    """The unit the workload is measured in: its reference's, else the most common."""
    if df.empty:
        return None
    refs = df[df["is_reference"]]
    src = refs if not refs.empty else df
    return str(src["unit"].value_counts().index[0])


def series_label(row) -> str:
    lab = str(row["impl"])
    if row["device"] != "cpu":
        lab += f" [{row['device']}]"
    if row["workers"] > 1:
        lab += f" x{row['workers']} {row['backend']}"
    return lab


def speedup_table(doc: dict):
    """Each non-reference case's throughput over the reference's (same unit; same size when
    the reference ran at it, else the reference size nearest in log scale)."""
    import pandas as pd
    df = cases_frame(doc)
    rows = []
    for unit, g in df.groupby("unit", sort=False):
        refs = g[g["is_reference"] & g["throughput"].notna()]
        if refs.empty:
            continue
        for _, c in g[~g["is_reference"] & g["throughput"].notna()].iterrows():
            same = refs[refs["size"] == c["size"]]
            r = (same if not same.empty else refs.iloc[
                [int((refs["size"].map(math.log) - math.log(c["size"])).abs().argmin())]]
                 ).iloc[0]
            sp = c["throughput"] / r["throughput"]
            # the range: slowest run of the case against the fastest of the reference, and
            # the other way round
            lo = sp * (c["seconds"] / c["max"]) * (r["min"] / r["seconds"]) \
                if c["max"] and r["seconds"] else sp
            hi = sp * (c["seconds"] / c["min"]) * (r["max"] / r["seconds"]) \
                if c["min"] and r["seconds"] else sp
            rows.append({"workload": doc["workload"], "case": c["name"],
                         "impl": c["impl"], "size": c["size"], "unit": unit,
                         "workers": c["workers"], "device": c["device"],
                         "reference size": r["size"], "speedup": sp,
                         "min": min(lo, sp), "max": max(hi, sp)})
    return pd.DataFrame(rows, columns=["workload", "case", "impl", "size", "unit", "workers",
                                       "device", "reference size", "speedup", "min", "max"])


def ratios_table(doc: dict):
    """The speed-ups the workload's benchmark claims (its ``bench.ratio`` calls)."""
    import pandas as pd
    rows = []
    for r in doc.get("ratios", []):
        eff = r.get("kind") == "efficiency"
        v = r.get("value")
        rows.append({
            "workload": doc["workload"],
            "ratio": ("efficiency: " if eff else "") + str(r["name"]),
            "headline": "yes" if r.get("headline") else "",
            "value": math.nan if v is None else float(v),
            "min-max": ("not printed: above 100% on re-measurement" if eff and v is None
                        else (r.get("reason") or "") if eff
                        else "-" if r.get("lo") is None
                        else f"{times(r['lo'])}-{times(r['hi'])}"),
            "target": r.get("target"),
            "status": "-" if r.get("ok") is None else ("ok" if r["ok"] else "MISSED"),
            "of": r.get("num"), "over": r.get("den")})
    return pd.DataFrame(rows, columns=["workload", "ratio", "headline", "value", "min-max",
                                       "target", "status", "of", "over"])


def _baseline(case, ones):
    """The single-worker case a parallel case is measured against: the one it names
    (``baseline`` in the case), else the most similar name among the single-worker cases of
    the same implementation and size (``... n_jobs=2`` pairs with ``... n_jobs=1``, a
    kernel on 2 threads with the same kernel on 1), the same backend breaking ties."""
    import difflib
    named = case.get("baseline") if hasattr(case, "get") else None
    if isinstance(named, str) and (ones["name"] == named).any():
        return ones[ones["name"] == named].iloc[0]
    score = [(difflib.SequenceMatcher(None, str(case["name"]), str(o["name"])).ratio(),
              o["backend"] == case["backend"], -i) for i, (_, o) in enumerate(ones.iterrows())]
    return ones.iloc[max(range(len(score)), key=lambda i: score[i])]


def parallel_table(doc: dict, cfg: ProfilingConfig | None = None):
    """Parallel speed-up and efficiency: every case run on more than one worker against its
    single-worker baseline (see :func:`_baseline`) of the same implementation, size and
    device; each baseline is listed too (1 worker, speed-up 1)."""
    import pandas as pd
    df = cases_frame(doc)
    if cfg is not None:
        df = filter_cases(df, cfg, int((doc.get("machine") or {}).get("cores") or 1))
    extra = {c["name"]: c.get("baseline") for c in doc.get("cases", [])}
    df = df.assign(baseline=df["name"].map(extra))
    # what the benchmark's efficiency() kept for a case: a reason for a figure above 100%
    reasons = {e.get("num"): e for e in doc.get("ratios", []) or []
               if e.get("kind") == "efficiency"}
    cols = ["workload", "impl", "size", "unit", "device", "backend", "workers", "seconds",
            "speedup", "efficiency", "note", "baseline"]
    rows = []
    for key, g in df.groupby(["impl", "size", "unit", "device"], sort=False):
        ones, multi = g[g["workers"] == 1], g[g["workers"] > 1]
        if ones.empty or multi.empty:
            continue
        used = {}
        for _, c in multi.iterrows():
            b = _baseline(c, ones)
            used[b["name"]] = b
            sp = b["seconds"] / c["seconds"] if c["seconds"] > 0 else math.nan
            eff, note = sp / c["workers"], ""
            if eff > 1.0:  # above 100%: shown only with the reason the benchmark stated
                e = reasons.get(c["name"]) or {}
                if e.get("reason") and e.get("value") is not None:
                    note = f"above 100%: {e['reason']}"
                else:
                    note = (f"above 100% ({eff:.0%}) in one comparison of medians: not "
                            "printed (noise)")
                    eff = math.nan
            rows.append({"workload": doc["workload"], "impl": key[0], "size": key[1],
                         "unit": key[2], "device": key[3], "backend": c["backend"],
                         "workers": int(c["workers"]), "seconds": c["seconds"],
                         "speedup": sp, "efficiency": eff, "note": note,
                         "baseline": b["name"]})
        for name, b in used.items():
            rows.append({"workload": doc["workload"], "impl": key[0], "size": key[1],
                         "unit": key[2], "device": key[3], "backend": b["backend"],
                         "workers": 1, "seconds": b["seconds"], "speedup": 1.0,
                         "efficiency": 1.0, "note": "", "baseline": name})
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["impl", "size", "baseline", "workers", "backend"], kind="stable",
                           ignore_index=True)


def bandwidth_table(doc: dict):
    """Cases that recorded the bytes they write: achieved GB/s and the fraction of the copy
    bandwidth measured on the same machine in the same run."""
    import pandas as pd
    df = cases_frame(doc)
    df = df[df["GBps"].notna()]
    copy = doc.get("copy_GBps")
    out = pd.DataFrame({"workload": df["workload"], "case": df["name"], "impl": df["impl"],
                        "size": df["size"], "workers": df["workers"], "device": df["device"],
                        "GB/s": df["GBps"], "copy GB/s": copy,
                        "fraction of copy": df["bw_fraction"]})
    return out.reset_index(drop=True)


def memory_table(doc: dict):
    """Peak resident memory per case (``VmHWM`` reset before each case). When the JSON
    records the process's RSS before the workload started (``notes["rss_at_start_mb"]``,
    written by :func:`run_benchmark`, where one kernel runs every workload), the peak above it
    is shown too."""
    import pandas as pd
    df = cases_frame(doc)
    out = pd.DataFrame({"workload": df["workload"], "case": df["name"], "impl": df["impl"],
                        "size": df["size"], "workers": df["workers"],
                        "peak RSS MiB": df["peak_rss_mb"]})
    rss0 = (doc.get("notes") or {}).get("rss_at_start_mb")
    if isinstance(rss0, (int, float)):
        out["above start MiB"] = (df["peak_rss_mb"] - rss0).clip(lower=0)
    return out.reset_index(drop=True)


def profile_tables(doc: dict) -> list[tuple[dict, Any]]:
    """``[(header, DataFrame of the top functions)]`` for each profile stored in the JSON."""
    import pandas as pd
    out = []
    for p in (doc.get("notes") or {}).get("profiles", []) or []:
        df = pd.DataFrame(p.get("top", []), columns=["function", "ncalls", "tottime",
                                                     "cumtime"])
        out.append(({k: p.get(k) for k in ("kind", "case", "impl", "size", "unit",
                                            "wall_seconds", "total_calls", "peak_rss_mb",
                                            "error")}, df))
    return out


def seed_comparison(doc: dict):
    """Our best figure against each published seed figure that has a comparable case.

    ``time`` figures compare by throughput in the same unit: a single-worker seed figure
    against our best single-worker CPU case, a multi-worker one against our best CPU case
    (whatever this machine's cores allowed; both worker counts are shown). Points of one
    figure at several sizes are merged into one throughput range. ``speedup`` figures compare
    with our best speed-up over the reference.
    """
    import pandas as pd
    df = cases_frame(doc)
    df = df[~df["is_reference"] & (df["device"] == "cpu") & df["throughput"].notna()]
    raw = {c["name"]: c for c in doc.get("cases", [])}
    rows = []
    sp = speedup_table(doc)
    sp = sp[sp["device"] == "cpu"]
    merged: dict[tuple, dict] = {}
    for f in seed_figures(doc["workload"], doc):
        key = (f["label"], f["kind"], f.get("unit"))
        if key not in merged:
            merged[key] = dict(f, lo=math.inf, hi=0.0)
        m = merged[key]
        if f["kind"] == "time":
            m["lo"] = min(m["lo"], f["size"] / f["seconds_hi"])
            m["hi"] = max(m["hi"], f["size"] / f["seconds_lo"])
        else:
            m["lo"], m["hi"] = f["value_lo"], f["value_hi"]
    for f in merged.values():
        base = {"workload": doc["workload"], "seed figure": f["label"],
                "source": f["source"]}
        if f["kind"] == "time":
            seed = f"{_range(f['lo'], f['hi'])} {f['unit']}/s ({f['workers']} workers)"
            # a case measured in another unit may state its rate in this one, e.g. a case in
            # straddle-days carrying "straddles_per_s"
            per = f"{_singular(f['unit'])}s_per_s"
            alt = df["name"].map(lambda n: (raw.get(n) or {}).get(per))
            same = df["unit"].map(_singular) == _singular(f["unit"])
            g = df.assign(throughput=alt.where(~same & alt.notna(), df["throughput"]))
            g = g[same | alt.notna()]
            g = g.assign(unit=f["unit"])
            if f["workers"] == 1:
                g = g[g["workers"] == 1]
            if g.empty:
                rows.append({**base, "seed": seed, "ours": f"no comparable case in {f['unit']}",
                             "our case": "", "x seed": math.nan, "x seed (hi)": math.nan})
                continue
            best = g.loc[g["throughput"].idxmax()]
            rows.append({**base, "seed": seed,
                         "ours": f"{human(best['throughput'])} {best['unit']}/s "
                                 f"({best['workers']} workers)",
                         "our case": best["name"], "x seed": best["throughput"] / f["hi"],
                         "x seed (hi)": best["throughput"] / f["lo"]})
        else:
            seed = f"{_range(f['lo'], f['hi'])}x" + (f" ({f['workers']} workers)"
                                                     if f["workers"] else "")
            if sp.empty:
                rows.append({**base, "seed": seed, "ours": "no reference case", "our case": "",
                             "x seed": math.nan, "x seed (hi)": math.nan})
                continue
            b = sp.loc[sp["speedup"].idxmax()]
            rows.append({**base, "seed": seed,
                         "ours": f"{times(b['speedup'])} over reference ({b['workers']} workers)",
                         "our case": b["case"], "x seed": b["speedup"] / f["hi"],
                         "x seed (hi)": b["speedup"] / f["lo"]})
    return pd.DataFrame(rows, columns=["workload", "seed figure", "seed", "ours", "our case",
                                       "x seed", "x seed (hi)", "source"])


def gpu_table(gdocs: list[dict]):
    """GPU vs CPU: each GPU case against the best CPU case of the same unit measured on the
    same machine in the same run; GB/s, and the fraction of the device's copy bandwidth when
    the JSON records it (``notes["gpu_copy_GBps"]``)."""
    import pandas as pd
    rows = []
    for d in gdocs:
        df = cases_frame(d)
        gpu = df[(df["device"] == "gpu") & df["throughput"].notna()]
        # the harness measures the *host* copy bandwidth; a GPU case is compared with the
        # device's own copy bandwidth only when the workload recorded it
        gcopy = (d.get("notes") or {}).get("gpu_copy_GBps")
        for _, c in gpu.iterrows():
            cpu = df[(df["device"] == "cpu") & (df["unit"] == c["unit"]) &
                     df["throughput"].notna()]
            same = cpu[cpu["size"] == c["size"]]
            cpu = same if not same.empty else cpu
            b = cpu.loc[cpu["throughput"].idxmax()] if not cpu.empty else None
            rows.append({"workload": d["workload"], "json": Path(d["_path"]).name,
                         "gpu": (d.get("machine") or {}).get("gpu") or "?",
                         "case": c["name"], "size": c["size"], "unit": c["unit"],
                         "gpu throughput": c["throughput"],
                         "best cpu case": b["name"] if b is not None else "-",
                         "cpu throughput": b["throughput"] if b is not None else math.nan,
                         "gpu / cpu": (c["throughput"] / b["throughput"]
                                       if b is not None else math.nan),
                         "GB/s": c["GBps"],
                         "fraction of device copy": (c["GBps"] / gcopy if gcopy else math.nan)})
    return pd.DataFrame(rows, columns=["workload", "json", "gpu", "case", "size", "unit",
                                       "gpu throughput", "best cpu case", "cpu throughput",
                                       "gpu / cpu", "GB/s", "fraction of device copy"])


def machine_table(docs: Iterable[dict]):
    """Where each bench JSON was measured: machine, copy bandwidth, versions."""
    import pandas as pd
    rows = []
    for d in docs:
        m = d.get("machine") or {}
        v = d.get("versions") or {}
        rows.append({"json": Path(d.get("_path", "?")).name, "workload": d.get("workload"),
                     "quick": d.get("quick"), "created": d.get("created"),
                     "cores": m.get("cores"), "cpu": m.get("cpu"),
                     "memory GB": m.get("memory_gb"), "gpu": m.get("gpu") or "none",
                     "copy GB/s": d.get("copy_GBps"),
                     "versions": ", ".join(f"{k} {val}" for k, val in v.items())})
    return pd.DataFrame(rows)


def rounded(df):
    """A copy for display (stable text output): float columns holding only whole numbers
    (sizes, counts) as integers, other floats as text with 3 significant digits; a missing
    value (None, NaN) reads "-", never "None" or "NaN"."""
    import pandas as pd
    out = df.copy()
    for c in out.columns:
        col = out[c]
        if not pd.api.types.is_float_dtype(col):
            if col.isna().any():
                out[c] = col.astype(object).where(col.notna(), "-")
            continue
        whole = col.dropna()
        if (len(whole) == len(col) and len(whole) and (whole == whole.round()).all()
                and (whole.abs() < 2**53).all()):
            out[c] = col.round().astype("Int64")
        elif len(whole) and (whole == whole.round()).all() and (whole.abs() < 2**53).all():
            out[c] = col.map(lambda x: "-" if pd.isna(x) else f"{int(round(x)):d}")
        else:  # as text: 3 significant digits, k/M/G for large values
            out[c] = col.map(lambda x: "-" if pd.isna(x) else human(x))
    return out


# --------------------------------------------------------------------------- summary
def summarize(doc: dict | None, gdocs: Iterable[dict] = ()) -> dict[str, str]:
    """The report's headline for one workload from its bench JSON(s): the benchmark's own
    ``headline`` strings where it states them, else computed from the cases (best CPU
    throughput in the reference's unit, best speed-up over the reference, efficiency at the
    most workers), and the GPU figure from a GPU run's JSON when there is one."""
    out = {"throughput": "-", "speedup_vs_reference": "-", "parallel_efficiency": "-",
           "gpu": "-"}
    if doc:
        out.update(_computed_headline(doc))
    g = gpu_table([d for d in gdocs if doc is None or d["workload"] == doc["workload"]])
    if not g.empty:
        b = g.loc[g["gpu throughput"].idxmax()]
        ratio = "" if not math.isfinite(b["gpu / cpu"]) else f", {times(b['gpu / cpu'])} its CPU"
        out["gpu"] = (f"{human(b['gpu throughput'])} {b['unit']}/s on {b['gpu']}{ratio} "
                      f"({b['json']})")
    if doc:  # what the workload's benchmark states itself wins over what is computed here
        for k, v in (doc.get("headline") or {}).items():
            if k in out and isinstance(v, str) and v.strip() and not (
                    k == "gpu" and not g.empty):
                out[k] = v
    return out


def headline_ratio(doc: dict | None) -> dict | None:
    """The workload's headline ratio: the one its benchmark marked (``headline``: its main job
    at its reference size), never a maximum over cases; None when it marks none."""
    for r in (doc or {}).get("ratios", []) or []:
        if r.get("headline") and r.get("value") is not None:
            return r
    return None


def _computed_headline(doc: dict) -> dict[str, str]:
    """Headline figures by rule: the speed-up is the benchmark's headline ratio (one named
    case) and the throughput that of its numerator case; the parallel efficiency is the one
    the benchmark measured with ``Bench.efficiency`` (a figure above 100% is shown only with
    its stated reason). Nothing is a maximum over heterogeneous cases."""
    out = {}
    if not doc:
        return out
    r = headline_ratio(doc)
    if r is not None:
        rng = "" if r.get("lo") is None else f" [{times(r['lo'])}-{times(r['hi'])}]"
        out["speedup_vs_reference"] = f"{times(r['value'])}{rng} ({r['name']})"
        num = next((c for c in doc.get("cases", []) if c.get("name") == r.get("num")), None)
        if num is not None and num.get("throughput"):
            out["throughput"] = (f"{human(num['throughput'])} {num.get('unit', 'items')}/s "
                                 f"({num['name']})")
    effs = sorted((e for e in doc.get("ratios", []) or [] if e.get("kind") == "efficiency"),
                  key=lambda e: not e.get("key"))  # the tracked one first
    if effs:
        e = effs[0]
        if e.get("value") is None:
            out["parallel_efficiency"] = (f"not printed: above 100% on re-measurement "
                                          f"({e['name']})")
        else:
            why = f"; {e['reason']}" if e.get("reason") else ""
            out["parallel_efficiency"] = f"{e['value']:.0%} ({e['name']}{why})"
    return out


# --------------------------------------------------------------------------- plots
def _plt():
    import matplotlib.pyplot as plt
    return plt


def _seed_note(figs: list[dict]) -> str:
    srcs = sorted({f["source"] for f in figs})
    return "seed figures: " + ", ".join(srcs) if srcs else ""


def plot_time_vs_size(doc: dict, cfg: ProfilingConfig | None = None, seeds: bool = True):
    """Time vs problem size (log-log) per implementation, one panel per unit; the reference
    dashed black; the seed's published figures as grey ranges annotated with their file."""
    plt = _plt()
    df = cases_frame(doc)
    if cfg is not None:
        df = filter_cases(df, cfg, int((doc.get("machine") or {}).get("cores") or 1))
    df = df[df["seconds"].notna() & (df["seconds"] > 0) & (df["size"] > 0)]
    units = list(dict.fromkeys(df["unit"]))
    if not units:
        return None
    fig, axes = plt.subplots(1, len(units), figsize=(max(8.0, 6.4 * len(units)), 4.6),
                             squeeze=False)
    for ax, unit in zip(axes[0], units):
        g = df[df["unit"] == unit].copy()
        g["series"] = g.apply(series_label, axis=1)
        for lab, s in g.groupby("series", sort=False):
            ref = bool(s["is_reference"].iloc[0])
            # one implementation may have several cases at a size (different kernels or
            # stages): the line joins its fastest case per size, every case is a marker
            best = s.loc[s.groupby("size", sort=True)["seconds"].idxmin()].sort_values("size")
            # error bars: the min-max of the repeated timings behind each median
            yerr = [(best["seconds"] - best["min"].fillna(best["seconds"])).clip(lower=0),
                    (best["max"].fillna(best["seconds"]) - best["seconds"]).clip(lower=0)]
            line = ax.errorbar(best["size"], best["seconds"], yerr=yerr,
                               fmt="o" + ("--" if ref else "-"), label=lab, capsize=2,
                               color="black" if ref else None, lw=2.2 if ref else 1.4,
                               alpha=1.0 if ref or s["workers"].iloc[0] == 1 else 0.6).lines[0]
            if len(s) > len(best):
                ax.plot(s["size"], s["seconds"], "o", color=line.get_color(), alpha=0.35,
                        ms=4)
        used = []
        if seeds:
            for f in seed_figures(doc["workload"], doc):
                if f["kind"] != "time" or _singular(f["unit"]) != _singular(unit):
                    continue
                mid = math.sqrt(f["seconds_lo"] * f["seconds_hi"])
                ax.errorbar([f["size"]], [mid], yerr=[[mid - f["seconds_lo"]],
                                                      [f["seconds_hi"] - mid]],
                            fmt="s", mfc="none", color="grey", capsize=3)
                if f["label"] not in {u["label"] for u in used}:  # one label per figure
                    ax.annotate(f"seed: {f['label']}", (f["size"], mid), fontsize=7,
                                color="dimgrey", xytext=(5, -3), textcoords="offset points")
                used.append(f)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"problem size ({unit})")
        ax.set_ylabel("median seconds (bars: min-max of repeats)")
        ax.set_title(f"{doc['workload']}: time vs size", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="best")
        if used:
            ax.text(0.0, -0.2, _seed_note(used), transform=ax.transAxes, fontsize=7,
                    color="dimgrey", va="top")
    fig.text(0.99, 0.01, _source_note(doc), ha="right", va="bottom", fontsize=6,
             color="grey")
    fig.tight_layout()
    return fig


def _source_note(doc: dict) -> str:
    m = doc.get("machine") or {}
    return (f"{Path(doc.get('_path', '?')).name}: {m.get('cores')} cores {m.get('cpu', '')}"
            f"{', GPU ' + m['gpu'] if m.get('gpu') else ''}")


def plot_speedups(doc: dict):
    """Speed-up over the reference (best per implementation) and over the seed figures."""
    plt = _plt()
    sp = speedup_table(doc)
    sc = seed_comparison(doc)
    sc = sc[sc["x seed"].notna()]
    if sp.empty and sc.empty:
        return None
    best = sp
    if not sp.empty:
        backend = cases_frame(doc).drop_duplicates("name").set_index("name")["backend"]
        sp = sp.assign(backend=sp["case"].map(backend).fillna(""))
        best = sp.loc[sp.groupby(["impl", "workers", "device"], sort=False)["speedup"].idxmax()]
    rows = max(len(best), len(sc), 2)
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.42 * rows + 1.3))
    ax = axes[0]
    if not sp.empty:
        labels = [f"{r.impl}" + (f" x{r.workers} {r.backend}" if r.workers > 1 else "")
                  + (f" [{r.device}]" if r.device != "cpu" else "") for r in best.itertuples()]
        ax.barh(labels, best["speedup"], color="tab:blue", capsize=2,
                xerr=[(best["speedup"] - best["min"]).clip(lower=0),
                      (best["max"] - best["speedup"]).clip(lower=0)])
        for i, v in enumerate(best["speedup"]):
            ax.text(v, i, f" {times(v)}", va="center", fontsize=8)
        ax.axvline(1, color="black", lw=1)
        ax.set_xscale("log")
    ax.set_title(f"{doc['workload']}: speed-up over the reference", fontsize=10)
    ax.set_xlabel("throughput / reference throughput")
    ax = axes[1]
    if not sc.empty:
        labels = [f"vs {r['seed figure']}" for _, r in sc.iterrows()]
        mid = [math.sqrt(a * b) for a, b in zip(sc["x seed"], sc["x seed (hi)"])]
        err = [[m - min(a, b) for m, a, b in zip(mid, sc["x seed"], sc["x seed (hi)"])],
               [max(a, b) - m for m, a, b in zip(mid, sc["x seed"], sc["x seed (hi)"])]]
        ax.barh(labels, mid, xerr=err, color="tab:orange", capsize=3)
        for i, (_, r) in enumerate(sc.iterrows()):
            hi = max(r["x seed"], r["x seed (hi)"])
            ax.text(hi, i, f"  {_range(min(r['x seed'], r['x seed (hi)']), hi)}x  "
                    f"[{Path(r['source']).name}]", va="center", fontsize=7)
        ax.axvline(1, color="black", lw=1)
        ax.set_xscale("log")
    ax.set_title(f"{doc['workload']}: ours over the seed's published figures", fontsize=10)
    ax.set_xlabel("our best throughput / seed throughput (range of the seed's figure)")
    fig.text(0.99, 0.01, _source_note(doc), ha="right", va="bottom", fontsize=6,
             color="grey")
    fig.tight_layout()
    return fig


def plot_parallel(doc: dict, cfg: ProfilingConfig | None = None):
    """Parallel speed-up (with the ideal line) and efficiency vs workers: one line per
    backend from each single-worker baseline."""
    import pandas as pd
    plt = _plt()
    par = parallel_table(doc, cfg)
    if par.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for base, grp in par.groupby("baseline", sort=False):
        one = grp[grp["workers"] == 1].iloc[:1]
        for backend, g in grp[grp["workers"] > 1].groupby("backend", sort=False):
            g = pd.concat([one, g], ignore_index=True).sort_values("workers")
            lab = f"{backend}: {base}" if len(base) <= 44 else f"{backend}: {base[:41]}..."
            axes[0].plot(g["workers"], g["speedup"], "o-", label=lab)
            axes[1].plot(g["workers"], g["efficiency"], "o-", label=lab)
    w = sorted(par["workers"].unique())
    axes[0].plot(w, w, ":", color="grey", label="ideal")
    axes[1].axhline(1.0, ls=":", color="grey")
    axes[0].set_ylabel("speed-up over 1 worker")
    axes[1].set_ylabel("efficiency (speed-up / workers)")
    for ax in axes:
        ax.set_xlabel("workers")
        ax.set_xticks(w)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=7)
    axes[0].set_title(f"{doc['workload']}: parallel speed-up", fontsize=10)
    axes[1].set_title(f"{doc['workload']}: parallel efficiency", fontsize=10)
    fig.text(0.99, 0.01, _source_note(doc), ha="right", va="bottom", fontsize=6,
             color="grey")
    fig.tight_layout()
    return fig


def plot_bandwidth(tables: list):
    """Achieved GB/s as a fraction of the measured copy bandwidth (1.0 = copy speed)."""
    import pandas as pd
    plt = _plt()
    bw = pd.concat([t for t in tables if not t.empty], ignore_index=True) if any(
        not t.empty for t in tables) else None
    if bw is None:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(bw) + 1.4))
    labels = [f"{r['workload']}: {r['case']}" for _, r in bw.iterrows()]
    ax.barh(labels, bw["fraction of copy"], color="tab:green")
    for i, (_, r) in enumerate(bw.iterrows()):
        ax.text(r["fraction of copy"], i, f" {r['fraction of copy']:.0%} "
                f"({r['GB/s']:.1f} of {r['copy GB/s']:.1f} GB/s)", va="center", fontsize=7)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xlabel("achieved bandwidth / measured copy bandwidth")
    ax.set_title("memory-bound kernels against the copy bandwidth", fontsize=10)
    fig.tight_layout()
    return fig


def plot_gpu(g):
    """GPU vs best CPU throughput per GPU case."""
    plt = _plt()
    if g.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(g) + 1.4))
    labels = [f"{r.workload}: {r.case}" for r in g.itertuples()]
    y = range(len(g))
    ax.barh([i + 0.2 for i in y], g["gpu throughput"], height=0.4, label="GPU",
            color="tab:purple")
    ax.barh([i - 0.2 for i in y], g["cpu throughput"], height=0.4, label="best CPU",
            color="tab:gray")
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("throughput (units/s, same machine and run)")
    ax.legend(fontsize=8)
    ax.set_title("GPU vs CPU (from GPU bench JSONs)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_memory(doc: dict):
    """Peak RSS per case of one bench JSON."""
    plt = _plt()
    t = memory_table(doc)
    t = t[t["peak RSS MiB"].notna()]
    if t.empty:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(t) + 1.2))
    ax.barh([str(c)[:48] for c in t["case"]], t["peak RSS MiB"], color="tab:red")
    for i, v in enumerate(t["peak RSS MiB"]):
        ax.text(v, i, f" {human(v)}", va="center", fontsize=7)
    ax.set_title(f"{doc['workload']}: peak RSS per case", fontsize=10)
    ax.set_xlabel("MiB")
    ax.tick_params(axis="y", labelsize=7)
    fig.text(0.99, 0.01, _source_note(doc), ha="right", va="bottom", fontsize=6,
             color="grey")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- notebook helpers
def each(results: dict[str, WorkloadResult]):
    """Yield ``(workload, bench JSON)`` for the workloads that have one, and print a clear
    line for every other one (a workload is never skipped silently)."""
    for wl, r in results.items():
        if r.ok:
            yield wl, r.doc
        else:
            print(f"{wl}: {r.status}: {r.message}")


def show(obj: Any, missing: str) -> None:
    """Display a figure (then close it) or a table; print ``missing`` when there is none."""
    if obj is None or getattr(obj, "empty", False):
        print(missing)
        return
    from IPython.display import display
    display(obj)
    if hasattr(obj, "savefig"):
        _plt().close(obj)


def headline(results: dict[str, WorkloadResult], gdocs: Iterable[dict] = ()) -> dict:
    """The profiling notebook's own metrics.json headline: the workloads it covered and each
    workload's summary figures (computed from the bench JSONs it shows)."""
    ok = [wl for wl, r in results.items() if r.ok]
    gdocs = list(gdocs)
    per = {wl: summarize(r.doc, gdocs) for wl, r in results.items() if r.ok}
    return {"throughput": f"{len(ok)} of {len(results)} workloads benchmarked",
            "speedup_vs_reference": "; ".join(f"{wl} {s['speedup_vs_reference']}"
                                              for wl, s in per.items()) or "-",
            "parallel_efficiency": "; ".join(f"{wl} {s['parallel_efficiency']}"
                                             for wl, s in per.items()) or "-",
            "gpu": f"{len(gdocs)} GPU bench JSON(s)" if gdocs else "-",
            "workloads": per}


# --------------------------------------------------------------------------- checks
def check_traceable(results: dict[str, WorkloadResult], gdocs: Iterable[dict] = ()) -> list[str]:
    """Problems that would make a shown figure untraceable (empty when all is well): every
    workload accounted for, every JSON with its path, machine and cases."""
    problems = []
    for wl, r in results.items():
        if r.status not in ("ok", "missing", "error"):
            problems.append(f"{wl}: unknown status {r.status!r}")
        if r.status == "error":  # a benchmark that crashed is a failure, not a footnote
            problems.append(f"{wl}: benchmark failed: {r.message}")
        if r.status != "ok" and not r.message:
            problems.append(f"{wl}: {r.status} without a reason")
    for d in [r.doc for r in results.values() if r.ok] + list(gdocs):
        name = Path(d.get("_path", "?")).name
        m = d.get("machine") or {}
        if not d.get("_path"):
            problems.append(f"{d.get('workload')}: JSON without a path")
        if not m.get("cores") or not m.get("cpu"):
            problems.append(f"{name}: machine not recorded")
        if not d.get("versions"):
            problems.append(f"{name}: versions not recorded")
    return problems


def check_real_runs(results: dict[str, WorkloadResult], cfg: ProfilingConfig) -> list[str]:
    """Problems with benchmarks run by this notebook (empty when all is well): every figure
    the workload's module says asv tracks (``TRACKED``) is in its JSON, the fast paths gave the
    reference's answers where the benchmark compared them, exactly one headline
    ratio, every case with the min-max of its repeats, and,
    when profiling, the reference profiled (top functions and peak RSS)."""
    problems = []
    if cfg.results_from is not None:
        return problems
    for wl, r in results.items():
        if not r.ok:
            continue
        d = r.doc
        keys = {x.get("key") for x in d.get("ratios", []) + d.get("figures", [])}
        try:
            tracked = importlib.import_module(f"qbt_lib.{wl}.bench").TRACKED
        except (ImportError, AttributeError):
            tracked = {}
        cores = int((d.get("machine") or {}).get("cores") or 1)
        for k in tracked:
            if k not in keys and not (cores < 2 and "efficiency" in k):
                problems.append(f"{wl}: tracked figure {k!r} missing from the bench JSON")
        for a in (d.get("notes") or {}).get("same_answers", []) or []:
            if not a.get("ok"):
                problems.append(f"{wl}: different answers: {a.get('what')} ({a.get('detail')})")
        heads = [x for x in d.get("ratios", []) if x.get("headline")]
        if len(heads) != 1:
            problems.append(f"{wl}: {len(heads)} headline ratios (one named case expected)")
        for c in d.get("cases", []):
            if "min" not in c or "max" not in c:
                problems.append(f"{wl}: case {c['name']!r} without min-max")
        if cfg.profile:
            refs = [p for p in (d.get("notes") or {}).get("profiles", [])
                    if p.get("kind") == "reference"]
            if not refs or refs[0].get("error") or not refs[0].get("top"):
                problems.append(f"{wl}: reference not profiled"
                                + (f" ({refs[0]['error']})" if refs and refs[0].get("error")
                                   else ""))
            elif not refs[0].get("peak_rss_mb"):
                problems.append(f"{wl}: reference profile without peak RSS")
    return problems


def speedup_floor_failures(results: dict[str, WorkloadResult], floor: float) -> list[str]:
    """Workloads whose best CPU speed-up over their reference is below ``floor``."""
    bad = []
    for wl, r in results.items():
        if not r.ok:
            continue
        sp = speedup_table(r.doc)
        sp = sp[sp["device"] == "cpu"]
        if not sp.empty and sp["speedup"].max() < floor:
            bad.append(f"{wl}: best speed-up {sp['speedup'].max():.2f}x < {floor}x")
    return bad


__all__ = [
    "SEED_FIGURES", "ProfilingConfig", "ProfilingBench", "WorkloadResult", "run_all",
    "run_benchmark", "load_all", "find_jsons", "gpu_docs", "cases_frame", "speedup_table",
    "ratios_table", "parallel_table", "bandwidth_table", "memory_table", "profile_tables",
    "seed_comparison", "seed_table", "gpu_table", "machine_table", "summarize",
    "plot_time_vs_size", "plot_speedups", "plot_parallel", "plot_bandwidth", "plot_gpu",
    "plot_memory", "check_traceable", "check_real_runs", "speedup_floor_failures",
    "headline_ratio", "status_lines", "rounded",
    "pick_primary", "has_gpu", "profile_call", "each", "show",
    "headline", "human", "times", "filter_cases",
]
