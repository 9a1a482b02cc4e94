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
    if reason not in _warned:  # one logged reason, not one per call
        _warned.add(reason)
        log.info("device='auto' falls back to CPU: %s", reason)
    return "cpu"


def array_module(device: str) -> Any:
    """``numpy`` for the CPU, ``cupy`` for the GPU (``device`` already resolved)."""
    if resolve_device(device) == "gpu":
        import cupy
        return cupy
    return np


def to_host(x: Any) -> np.ndarray:
    """A NumPy array from a NumPy or CuPy array."""
    if isinstance(x, np.ndarray):
        return x
    get = getattr(x, "get", None)
    return get() if get is not None else np.asarray(x)


def gpu_name() -> str | None:
    ok, name = gpu_status()
    return name if ok else None
