"""What a figure was measured on: cores, CPU, memory, GPU, library versions, copy bandwidth."""
from __future__ import annotations

import functools
import importlib
import platform
import time

import numpy as np

from .device import gpu_name, gpu_status
from .parallel import available_cores

_LIBS = ("numpy", "numba", "pandas", "pyarrow", "scipy", "sklearn", "joblib", "dask",
         "distributed", "cupy", "papermill")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_DISTS = {"sklearn": "scikit-learn"}


def _version_of(name: str) -> str:
    """The installed version without importing the package when it is not loaded yet
    (importing scikit-learn, pandas, numba, papermill for their ``__version__`` took ~6 s)."""
    import sys
    mod = sys.modules.get(name)
    if mod is not None and getattr(mod, "__version__", None):
        return mod.__version__
    try:
        from importlib.metadata import version
        return version(_DISTS.get(name, name))
    except Exception:
        return importlib.import_module(name).__version__


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _LIBS:
        if name == "cupy":  # importing cupy is slow and may fail: only report when usable
            if not gpu_status()[0]:
                continue
        try:
            out[name] = _version_of(name)
        except Exception:
            continue
    return out


@functools.lru_cache(maxsize=1)
def machine_info() -> dict:
    import psutil

    return {
        "hostname": platform.node(),
        "cores": available_cores(),
        "cpu": cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": gpu_name(),
        "platform": platform.platform(),
    }


@functools.lru_cache(maxsize=2)
def copy_bandwidth(nbytes: int = 256 * 2**20, repeats: int = 5, threads: int = 1) -> float:
    """The machine's measured memory-copy bandwidth in GB/s (bytes copied per second; each
    byte is read once and written once), best of ``repeats`` ``np.copyto`` calls, the array
    split into ``threads`` slices copied concurrently (``np.copyto`` releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    bounds = np.linspace(0, src.size, threads + 1).astype(int)
    parts = [(dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    with ThreadPoolExecutor(threads) as ex:
        def copy_all() -> None:
            list(ex.map(lambda p: np.copyto(*p), parts))
        copy_all()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            copy_all()
            best = min(best, time.perf_counter() - t)
    return nbytes / best / 1e9


def peak_rss_reset() -> None:
    """Reset this process's peak RSS (Linux ``/proc/self/clear_refs``); no-op elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process since start or the last reset, in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except Exception:
        return None
