"""Host <-> device copies through pinned (page-locked) memory, for every GPU path.

A copy from or to pageable host memory runs at ~2-3 GB/s on the GPU machines we measured (the
driver stages it through its own small pinned buffer); the DMA engine itself moves ~50 GB/s
on an H200's PCIe 5 link. So every large copy goes through pinned staging buffers here:

- :func:`to_device`: the host array is copied into one of two pinned staging buffers (by
  several threads: one core's memcpy, ~10 GB/s, would be the wall) while the DMA of the other
  buffer runs;
- :func:`to_host_into`: the mirror, DMA into a pinned buffer, then a threaded memcpy into
  the caller's (pageable) array, double-buffered the same way;
- :func:`to_host`: a new pinned host array, DMA straight into it.

CuPy is imported lazily (only a GPU path calls these). The staging buffers are per thread.
"""
from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

#: bytes per staging buffer (two per thread)
STAGING_BYTES = 64 << 20
#: threads for the host-side memcpy into / out of the staging buffers
COPY_THREADS = 4
_tls = threading.local()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _cp():
    import cupy
    return cupy


def pinned_empty(shape: tuple, dtype: Any) -> np.ndarray:
    """A NumPy array in page-locked host memory (from CuPy's pinned memory pool)."""
    cp = _cp()
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    mem = cp.cuda.alloc_pinned_memory(max(1, count * dtype.itemsize))
    return np.frombuffer(mem, dtype, count).reshape(shape)


def _staging(i: int, nbytes: int) -> np.ndarray:
    bufs = getattr(_tls, "staging", None)
    if bufs is None or bufs[0].size < nbytes:
        bufs = [pinned_empty((nbytes,), np.uint8) for _ in range(2)]
        _tls.staging = bufs
    return bufs[i]


def _copy(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[:] = src`` (flat uint8 views) split over :data:`COPY_THREADS` threads
    (``np.copyto`` releases the GIL)."""
    global _pool
    n = src.size
    if n < (4 << 20) or COPY_THREADS < 2:
        np.copyto(dst, src)
        return
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="qbt-pinned")
    bounds = np.linspace(0, n, COPY_THREADS + 1).astype(np.int64)
    futs = [_pool.submit(np.copyto, dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    for f in futs:
        f.result()


def to_device(a: np.ndarray, out: Any = None, stream: Any = None) -> Any:
    """Copy a host array to the device through two pinned staging buffers (the host copy
    into one overlaps the DMA from the other). Returns when the copy is complete."""
    cp = _cp()
    a = np.ascontiguousarray(a)
    if out is None:
        out = cp.empty(a.shape, a.dtype)
    if not out.flags.c_contiguous or out.nbytes != a.nbytes:
        raise ValueError("to_device needs a C-contiguous destination of the same size")
    src = a.reshape(-1).view(np.uint8)
    n = src.size
    stream = stream if stream is not None else cp.cuda.get_current_stream()
    step = min(max(n, 1), STAGING_BYTES)
    events: list[Any] = [None, None]
    for c, off in enumerate(range(0, n, step)):
        i = c % 2
        if events[i] is not None:      # the DMA that last read this buffer is done
            events[i].synchronize()
        m = min(step, n - off)
        buf = _staging(i, step)
        _copy(buf[:m], src[off:off + m])
        (out.data + off).copy_from_host_async(ctypes.c_void_p(buf.ctypes.data), m, stream)
        events[i] = stream.record()
    stream.synchronize()
    return out


def to_host_into(d: Any, out: np.ndarray, stream: Any = None) -> np.ndarray:
    """Copy the device array ``d`` into the host array ``out`` (any memory) through two
    pinned staging buffers: the DMA into one overlaps the threaded memcpy out of the
    other. Returns ``out`` when the copy is complete."""
    cp = _cp()
    d = cp.ascontiguousarray(d)
    if not out.flags.c_contiguous or out.nbytes != d.nbytes:
        raise ValueError("to_host_into needs a C-contiguous destination of the same size")
    dst = out.reshape(-1).view(np.uint8)
    n = dst.size
    stream = stream if stream is not None else cp.cuda.get_current_stream()
    step = min(max(n, 1), STAGING_BYTES)
    chunks = list(range(0, n, step))
    events: list[Any] = [None, None]

    def start(c: int) -> None:
        off = chunks[c]
        m = min(step, n - off)
        buf = _staging(c % 2, step)
        (d.data + off).copy_to_host_async(ctypes.c_void_p(buf.ctypes.data), m, stream)
        events[c % 2] = stream.record()

    if chunks:
        start(0)
    for c, off in enumerate(chunks):
        if c + 1 < len(chunks):
            start(c + 1)               # the next DMA runs while this chunk is copied out
        events[c % 2].synchronize()
        m = min(step, n - off)
        _copy(dst[off:off + m], _staging(c % 2, step)[:m])
    return out


def to_host(d: Any, stream: Any = None) -> np.ndarray:
    """Copy a device array into a new pinned host array (DMA straight into it)."""
    cp = _cp()
    d = cp.ascontiguousarray(d)
    out = pinned_empty(d.shape, d.dtype)
    stream = stream if stream is not None else cp.cuda.get_current_stream()
    if d.nbytes:
        d.data.copy_to_host_async(ctypes.c_void_p(out.ctypes.data), d.nbytes, stream)
    stream.synchronize()
    return out
