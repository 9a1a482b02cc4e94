"""qbt_lib.pinned's staging logic (chunking, double buffering, threaded host copies) run
against a stand-in for CuPy's CUDA API: device memory is host memory, a DMA is a memmove, so
every byte's path through the staging buffers is checked without a GPU."""
from __future__ import annotations

import ctypes
import sys
import types

import numpy as np
import pytest

from qbt_lib import pinned


class _Ptr:
    def __init__(self, arr: np.ndarray, off: int = 0):
        self.arr, self.off = arr, off

    def __add__(self, k: int) -> "_Ptr":
        return _Ptr(self.arr, self.off + int(k))

    def copy_from_host_async(self, src: ctypes.c_void_p, n: int, stream) -> None:
        stream.log.append(("h2d", self.off, n))
        ctypes.memmove(self.arr.ctypes.data + self.off, src, n)

    def copy_to_host_async(self, dst: ctypes.c_void_p, n: int, stream) -> None:
        stream.log.append(("d2h", self.off, n))
        ctypes.memmove(dst, self.arr.ctypes.data + self.off, n)


class _DevArray(np.ndarray):
    @property
    def data(self):
        return _Ptr(np.asarray(self).view(np.uint8).reshape(-1))


class _Stream:
    def __init__(self):
        self.log = []

    def record(self):
        return types.SimpleNamespace(synchronize=lambda: None)

    def synchronize(self):
        pass


@pytest.fixture
def fake_cupy(monkeypatch):
    stream = _Stream()
    cp = types.ModuleType("cupy")
    cp.empty = lambda shape, dtype=np.float64: np.empty(shape, dtype).view(_DevArray)
    cp.ascontiguousarray = lambda a: a
    cp.cuda = types.SimpleNamespace(
        alloc_pinned_memory=lambda n: bytearray(n),
        get_current_stream=lambda: stream)
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setattr(pinned, "STAGING_BYTES", 1 << 20)      # several chunks
    monkeypatch.setattr(pinned, "_tls", types.SimpleNamespace())
    return cp, stream


@pytest.mark.parametrize("nbytes", [0, 8, (1 << 20) - 8, 1 << 20, 5 * (1 << 20) + 24,
                                    9 * (1 << 20)])
def test_round_trip_through_the_staging_buffers(fake_cupy, nbytes):
    cp, stream = fake_cupy
    host = np.random.default_rng(nbytes).random(nbytes // 8)
    chunks = len(range(0, nbytes, 1 << 20))
    dev = pinned.to_device(host)
    np.testing.assert_array_equal(np.asarray(dev), host)
    back = np.full_like(host, np.nan)
    assert pinned.to_host_into(dev, back) is back
    np.testing.assert_array_equal(back, host)
    # every byte crossed once each way, in staging-sized pieces, in order
    for kind in ("h2d", "d2h"):
        pieces = [(o, n) for k, o, n in stream.log if k == kind]
        assert len(pieces) == chunks
        assert [o for o, _ in pieces] == list(range(0, nbytes, 1 << 20))
        assert sum(n for _, n in pieces) == nbytes and all(n <= 1 << 20 for _, n in pieces)
    np.testing.assert_array_equal(pinned.to_host(dev), host)   # one DMA into pinned memory


def test_threaded_copy_equals_copyto(monkeypatch):
    monkeypatch.setattr(pinned, "COPY_THREADS", 3)
    src = np.random.default_rng(1).integers(0, 255, (7 << 20) + 5, dtype=np.uint8)
    dst = np.zeros_like(src)
    pinned._copy(dst, src)
    np.testing.assert_array_equal(dst, src)


def test_sizes_must_match(fake_cupy):
    cp, _ = fake_cupy
    dev = cp.empty(4)
    with pytest.raises(ValueError, match="same size"):
        pinned.to_host_into(dev, np.empty(5))
    with pytest.raises(ValueError, match="same size"):
        pinned.to_device(np.empty(5), out=dev)
