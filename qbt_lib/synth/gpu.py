"""The CuPy path: the random draws stay on the CPU, the GPU gathers and scales.

Imported lazily (only when ``impl="cupy"`` / ``device="gpu"`` is asked for). The per-key
tables of the sample space (window start, scale factors, label, date) are computed once on
the CPU with NumPy and uploaded once, so GPU samples are bitwise the CPU ones: the device
only gathers and does the same float64 multiply + float32 cast.

The gather+scale is one small ``ElementwiseKernel`` per field (one thread per output value,
the lookback compiled in as a constant so ``i / L`` is a multiply-shift), writing the
(5, m, L) float32 windows once; :func:`qbt_lib.synth.xp.gather_scale` is the array-module
generic fallback (``use_kernel=False``), the same code the CPU test suite runs with NumPy.

Host <-> device copies go through ``qbt_lib.pinned`` (double-buffered pinned staging, the
host side copied by several threads): the DMA runs at full PCIe speed and no pageable copy is
ever made (those ran at ~2-3 GB/s on an H200 machine).
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..pinned import to_device, to_host
from . import xp as xpk
from .batch import Batch, list_values as _list_values
from .space import FIELDS, Draws, SampleSpace


def _cp():
    import cupy
    return cupy


# --------------------------------------------------------------------------- device tables
class DeviceSpace:
    """The sample space's prices and per-key tables in device memory (uploaded once)."""

    def __init__(self, space: SampleSpace):
        self.lookback = space.lookback
        self.prices = to_device(np.asarray(space.prices))
        self.tables = {name: to_device(np.asarray(getattr(space, name)))
                       for name in ("key_start", "key_scale", "key_symbol", "key_idx",
                                    "key_date", "key_label")}


@functools.lru_cache(maxsize=2)
def _device_space(path: str) -> DeviceSpace:
    return DeviceSpace(SampleSpace(path))


_MEMORY_SPACES: dict[str, DeviceSpace] = {}


def device_space(space: SampleSpace) -> DeviceSpace:
    if space.path is None:  # the in-memory copy a Dask worker received: keyed by content
        if space.key not in _MEMORY_SPACES:
            _MEMORY_SPACES.clear()
            _MEMORY_SPACES[space.key] = DeviceSpace(space)
        return _MEMORY_SPACES[space.key]
    return _device_space(str(space.path))


@functools.lru_cache(maxsize=None)
def _scale_kernel(lookback: int) -> Any:
    """out[s, j] = float32(price[start[key[s]] + j] * scale[key[s]]) for one field."""
    cp = _cp()
    return cp.ElementwiseKernel(
        "raw float64 price, raw int64 start, raw float64 scale, raw int64 key",
        "float32 out",
        f"""
        const long long L = {int(lookback)}LL;
        const long long e = (long long)i;
        const long long s = e / L;
        const long long k = key[s];
        out = (float)(price[start[k] + (e - s * L)] * scale[k]);
        """,
        f"qbt_synth_gather_scale_L{int(lookback)}")


def gather_scale_device(ds: DeviceSpace, key: Any, out: Any = None,
                        use_kernel: bool = True) -> Any:
    """The (5, m, lookback) float32 scaled windows of device keys ``key`` (int64), in
    device memory."""
    cp = _cp()
    key = cp.ascontiguousarray(key, dtype=cp.int64)
    m = int(key.shape[0])
    if out is None:
        out = cp.empty((5, m, ds.lookback), cp.float32)
    if not use_kernel:
        return xpk.gather_scale(cp, ds.prices, ds.tables["key_start"],
                                ds.tables["key_scale"], key, out)
    if m:
        kern = _scale_kernel(ds.lookback)
        scale = ds.tables["key_scale"]
        for f in range(5):
            kern(ds.prices[f], ds.tables["key_start"], scale[0 if f < 4 else 1], key, out[f])
    return out


def build_samples(space: SampleSpace, draws: dict, with_windows: bool = True
                  ) -> tuple[dict, np.ndarray | None]:
    """Host draws in, host (pinned) columns and windows out; the gathers run on the GPU."""
    ds = device_space(space)
    key = to_device(np.asarray(draws["key"], np.int64))
    dcols = xpk.sample_columns(_cp(), ds.tables, {"key": key})
    cols = {k: to_host(v) for k, v in dcols.items()}
    for name in ("equity", "position", "action"):
        if name in draws:
            cols[name] = draws[name]
    cols = {name: cols[name] for name in xpk.SAMPLE_COLUMNS if name in cols}
    ohlcv = to_host(gather_scale_device(ds, key)) if with_windows else None
    return cols, ohlcv


def materialize_device(space: SampleSpace, cfg: Any, start: int, stop: int
                       ) -> tuple[dict, Any]:
    """Samples ``[start, stop)`` materialized in device memory: the draws are made on the
    CPU (the same blocks as every implementation) and uploaded through pinned buffers; the
    columns are gathered and the windows scaled on the GPU. Returns CuPy arrays."""
    cp = _cp()
    ds = device_space(space)
    draws = Draws(cfg, space.n_keys).take(start, stop)
    d = {k: to_device(np.asarray(v)) for k, v in draws.items()}
    cols = xpk.sample_columns(cp, ds.tables, d)
    return cols, gather_scale_device(ds, d["key"])


# --------------------------------------------------------------------------- loader
class DeviceLoader:
    """The GPU side of :class:`qbt_lib.synth.store.BatchLoader`: the windows table lives in
    device memory; each batch's columns go up through pinned staging buffers and its
    windows are gathered on the device."""

    def __init__(self, dataset: Any):
        cp = _cp()
        self.ds = dataset
        self.stream = cp.cuda.Stream(non_blocking=True)
        if dataset.kind == "normalized":
            windows, row_of_key = dataset.window_rows()
            # field-major (5, W, L) on the device: the gather is one take along axis 1,
            # each sample's 5 runs of L floats read coalesced
            self.windows = cp.ascontiguousarray(
                to_device(windows, stream=self.stream).transpose(1, 0, 2))
            self.row_of_key = to_device(row_of_key, stream=self.stream)
            self.key_offsets = to_device(dataset.key_offsets, stream=self.stream)

    def batch(self, rb: Any, cols: dict) -> Any:
        cp = _cp()
        ds = self.ds
        m = rb.num_rows
        with self.stream:
            dcols = {k: to_device(v, stream=self.stream) for k, v in cols.items()}
            if ds.kind == "normalized":
                k = (self.key_offsets[dcols["symbol"]] + dcols["idx"].astype(cp.int64)
                     - ds.lookback)
                rows = self.row_of_key[k]
                ohlcv = xpk.gather_rows(cp, self.windows, rows,
                                        cp.empty((5, m, ds.lookback), cp.float32))
            else:
                ohlcv = cp.empty((5, m, ds.lookback), cp.float32)
                for f, name in enumerate(FIELDS):
                    to_device(_list_values(rb.column(name), ds.lookback), out=ohlcv[f],
                              stream=self.stream)
        self.stream.synchronize()
        return Batch(dcols, ohlcv, ds.symbols)
