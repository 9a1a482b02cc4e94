"""CPU/GPU dispatch in one place. CuPy is imported lazily, only when a GPU path is asked for.

``device="auto"`` uses the GPU when CuPy and a CUDA device work, else falls back to the CPU
and logs the reason once; ``device="gpu"`` without a usable GPU raises a clear error.
"""
from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np

from .params import one_of

log = logging.getLogger("qbt")
DEVICES = ("auto", "cpu", "gpu")


@functools.lru_cache(maxsize=1)
def gpu_status() -> tuple[bool, str]:
    """``(usable, reason)``: whether CuPy imports and can run a kernel on a CUDA device."""
    try:
        import cupy as cp
    except ImportError:
        return False, "CuPy is not installed (pip install -e .[gpu])"
    except Exception as e:  # broken CUDA install
        return False, f"CuPy failed to import: {e}"
    try:
        n = cp.cuda.runtime.getDeviceCount()
        if n < 1:
            return False, "no CUDA device found"
        x = cp.arange(4, dtype=cp.float64)
        float((x * 2).sum())
        props = cp.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return True, name
    except Exception as e:
        return False, f"CUDA device not usable: {e}"


def gpu_available() -> bool:
    return gpu_status()[0]


_warned: set[str] = set()


def resolve_device(device: str = "auto") -> str:
    """``"cpu"`` or ``"gpu"`` for a requested ``device`` in {auto, cpu, gpu}."""
    device = one_of("device", device, DEVICES)
    if device == "cpu":
        return "cpu"
    ok, reason = gpu_status()
    if ok:
        return "gpu"
    if device == "gpu":
        raise RuntimeError(f"device='gpu' was requested but no GPU is usable: {reason}")
    _note_once(f"device='auto' falls back to CPU: {reason}")  # once, not once per call
    return "cpu"


def array_module(device: str) -> Any:
    """``numpy`` for the CPU, ``cupy`` for the GPU (``device`` already resolved)."""
    if resolve_device(device) == "gpu":
        import cupy
        return cupy
    return np


def is_cupy(xp: Any) -> bool:
    """Whether the array module ``xp`` is CuPy (the GPU code also runs on NumPy)."""
    return getattr(xp, "__name__", "") == "cupy"


def items_in_free_memory(xp: Any, item_bytes: int, *, default: int, lo: int = 1,
                         hi: int | None = None) -> int:
    """How many items of ``item_bytes`` a quarter of the device's free memory holds,
    within ``[lo, hi]``: the batch size of a GPU path that sizes its batches from the
    device; ``default`` when ``xp`` is not CuPy (the same code on NumPy)."""
    if not is_cupy(xp):
        return default
    free, _ = xp.cuda.runtime.memGetInfo()
    n = max(lo, free // 4 // max(int(item_bytes), 1))
    return int(n if hi is None else min(hi, n))


def to_host(x: Any) -> np.ndarray:
    """A NumPy array from a NumPy or CuPy array."""
    if isinstance(x, np.ndarray):
        return x
    get = getattr(x, "get", None)
    return get() if get is not None else np.asarray(x)


def gpu_name() -> str | None:
    ok, name = gpu_status()
    return name if ok else None


# --------------------------------------------------------------------------- impl dispatch
#: the one implementation vocabulary of every workload
IMPLS = ("auto", "reference", "numpy", "numba", "cupy")


def dispatch(workload: str, table: dict[str, Any], impl: str = "auto", device: str = "auto",
             *, auto_gpu: bool = True, why_cpu: str = "") -> tuple[str, str, Any]:
    """``(impl, device, callable)`` that will run, from a workload's dispatch table
    ``{impl: callable}`` (a subset of :data:`IMPLS` without ``"auto"``).

    - ``impl="auto"``: ``cupy`` when ``device`` resolves to the GPU, the table has it and
      ``auto_gpu`` is true (a workload whose GPU path measured slower than the same
      machine's CPU cores passes ``auto_gpu=False`` and ``why_cpu``, logged once), else
      ``numba``, else ``numpy``;
    - ``impl="cupy"`` without a usable GPU and ``device="auto"``: the same array code on
      NumPy where the table has ``numpy`` (one logged note), else an error;
    - a CPU impl with ``device="gpu"``: an error (only ``cupy``/``auto`` run on the GPU);
    - an impl the workload does not have: an error naming the ones it has.
    """
    impl = one_of("impl", impl, IMPLS)
    device = one_of("device", device, DEVICES)
    have = [i for i in IMPLS if i in table]
    if impl != "auto" and impl not in table:
        raise ValueError(f"impl={impl!r}: {workload} has no {impl} engine; it has "
                         f"{['auto', *have]}")
    if impl == "auto":
        dev = resolve_device(device)
        if dev == "gpu" and "cupy" in table and (auto_gpu or device == "gpu"):
            return "cupy", "gpu", table["cupy"]
        if dev == "gpu" and device == "auto" and "cupy" in table and why_cpu:
            _note_once(f"{workload}: impl='auto' runs on the CPU: {why_cpu}")
        if device == "gpu":
            raise ValueError(f"device='gpu': {workload} has no GPU engine")
        for cpu_impl in ("numba", "numpy", "reference"):
            if cpu_impl in table:
                return cpu_impl, "cpu", table[cpu_impl]
    if impl == "cupy":
        if device == "cpu":
            if "numpy" in table:
                _note_once(f"{workload}: impl='cupy' with device='cpu' runs its array code "
                           "on NumPy")
                return "numpy", "cpu", table["numpy"]
            raise ValueError(f"impl='cupy' runs on the GPU; device='cpu' needs one of "
                             f"{[i for i in have if i != 'cupy']}")
        dev = resolve_device(device)   # device='gpu' without a GPU raises here
        if dev == "gpu":
            return "cupy", "gpu", table["cupy"]
        if "numpy" in table:
            _note_once(f"{workload}: impl='cupy' without a usable GPU runs its array code on "
                       "NumPy")
            return "numpy", "cpu", table["numpy"]
        raise ValueError(f"impl='cupy' needs a usable GPU: {gpu_status()[1]}")
    if device == "gpu":
        raise ValueError(f"impl={impl!r} runs on the CPU; device='gpu' needs impl='cupy' or "
                         "'auto'")
    return impl, "cpu", table[impl]


def _note_once(msg: str) -> None:
    if msg not in _warned:
        _warned.add(msg)
        log.info(msg)
