"""Running the sweep: every workload's own benchmark through a :class:`ProfilingBench`
(the requested sweep as hints, repeats capped, the reference and the fast path profiled under
cProfile), one :class:`WorkloadResult` per workload, written to ``<output_dir>/bench``; or
the bench JSONs of a folder read back instead (:func:`load_all`)."""
from __future__ import annotations

import contextlib
import cProfile
import dataclasses
import gc
import importlib
import importlib.util
import io
import pstats
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import paths
from ..bench import Bench
from ..bench.jsons import (find_jsons, gpu_result_dirs, has_gpu, load_json, pick_primary,
                           unique_names)
from ..fmt import rel
from ..machine import peak_rss_mb, peak_rss_reset
from ..parallel import available_cores
from .config import BACKENDS, DEVICES, ProfilingConfig
from .tables import is_reference, workers_of


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
        limit = 3 * self.profile_seconds  # cProfile slows Python code 2-3x: keep it bounded
        # a case whose seconds are scaled from capped calls states what one call takes
        secs = case.get("call_seconds", case["seconds"])
        if is_reference(case["impl"]):
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
                or workers_of(case, available_cores()) != 1 or case["seconds"] > limit):
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
    print(f"== {workload} ({cfg.size})" + (f": log in {rel(log_path)}" if log else ""),
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
            doc = load_json(p)
            if doc is None:
                raise ValueError(f"{rel(p)}: not a readable bench JSON")
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



def load_all(cfg: ProfilingConfig) -> dict[str, WorkloadResult]:
    """Results read from ``cfg.results_from`` instead of running (one line per workload)."""
    docs = find_jsons([cfg.results_from])
    out = {}
    for wl in cfg.workloads:
        d = pick_primary(docs, wl)
        if d is None:
            out[wl] = WorkloadResult(wl, "missing",
                                     f"no bench JSON for {wl} in {rel(cfg.results_from)}")
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
        src = f" ({rel(r.path)})" if r.ok and r.path else ""
        lines.append(f"{wl:<12s} {r.status:<8s} {r.message}{src}")
    return "\n".join(lines)


def gpu_docs(cfg: ProfilingConfig) -> list[dict]:
    """GPU bench JSONs: dropped into ``outputs/bench`` (``<wl>-<tag>.json`` from a device
    run), committed in ``benchmarks/gpu/<tag>/`` (one per file name, the dropped-in one
    first) and made by this notebook; only ``results_from`` when showing saved results."""
    if cfg.gpu_from is not None:  # e.g. the golden notebook: only the test-data GPU JSON
        dirs = [cfg.gpu_from, cfg.output_dir / "bench"]
    elif cfg.results_from is not None:
        dirs = [cfg.results_from]
    else:
        dirs = [paths.BENCH_DIR, *gpu_result_dirs(), cfg.output_dir / "bench"]
    return unique_names(d for d in find_jsons(dirs)
                        if has_gpu(d) and d["workload"] in cfg.workloads)

