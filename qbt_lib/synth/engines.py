"""The one step every synth path runs, in each implementation, and its dispatch table.

The step: the samples columns and the (5, m, lookback) float32 windows of some draws (at least
their ``key``; without equity/position/action, as for the windows table, only the per-key
columns are built). :data:`ENGINES` maps each ``impl`` to a function
``(space, draws, with_windows=True, out=None) -> (columns, windows or None)``:
``reference`` (:mod:`.reference`, one Python iteration per sample), ``numpy``
(:mod:`.xp` on NumPy), ``numba`` (:mod:`.nb`'s fused gather+scale) and ``cupy``
(:mod:`.gpu`). ``out`` is a preallocated (5, >= m, lookback) float32 buffer to fill (its
first m rows are returned), so a streaming writer reuses memory instead of faulting in fresh
pages for every batch; the reference and CuPy engines allocate their own.

``impl="auto"`` and the device are resolved by :func:`qbt_lib.device.dispatch` over this
table (:func:`resolve_impl`, with synth's GPU policy ``params.AUTO_GPU``); the engines
take a resolved name, which is what travels to the workers.

:data:`WHOLE_RANGE` holds the engines that build a whole range of samples at once in this
process with ``n_jobs`` threads (Numba's ``prange`` kernel), which :func:`.api.generate`
uses instead of chunks when the backend runs in-process.
"""
from __future__ import annotations

from typing import Any, Callable

import numba
import numpy as np

from ..device import dispatch
from . import gpu, reference
from . import params as synth_params
from . import xp as xpk
from .nb import gather_scale_nb, gather_scale_par_nb
from .space import Draws, DrawConfig, SampleSpace

Built = tuple[dict, Any]


def _windows_buffer(space: SampleSpace, m: int, out: np.ndarray | None) -> np.ndarray:
    return (out[:, :m] if out is not None and out.shape[1] >= m
            else np.empty((5, m, space.lookback), np.float32))


def build_reference(space: SampleSpace, draws: dict, with_windows: bool = True,
                    out: np.ndarray | None = None) -> Built:
    return reference.build_samples(space, draws, with_windows)


def build_numpy(space: SampleSpace, draws: dict, with_windows: bool = True,
                out: np.ndarray | None = None) -> Built:
    tables = space.tables()
    key = np.asarray(draws["key"], np.int64)
    cols = xpk.sample_columns(np, tables, draws)
    if not with_windows:
        return cols, None
    ohlcv = _windows_buffer(space, len(key), out)
    xpk.gather_scale(np, tables["prices"], tables["key_start"], tables["key_scale"], key,
                     ohlcv)
    return cols, ohlcv


def build_numba(space: SampleSpace, draws: dict, with_windows: bool = True,
                out: np.ndarray | None = None) -> Built:
    tables = space.tables()
    key = np.asarray(draws["key"], np.int64)
    cols = xpk.sample_columns(np, tables, draws)
    if not with_windows:
        return cols, None
    ohlcv = _windows_buffer(space, len(key), out)
    gather_scale_nb(tables["prices"], tables["key_start"], tables["key_scale"], key, ohlcv)
    return cols, ohlcv


def build_cupy(space: SampleSpace, draws: dict, with_windows: bool = True,
               out: np.ndarray | None = None) -> Built:
    return gpu.build_samples(space, draws, with_windows)


#: impl -> the function building the samples of some draws (the one dispatch table)
ENGINES: dict[str, Callable[..., Built]] = {
    "reference": build_reference, "numpy": build_numpy, "numba": build_numba,
    "cupy": build_cupy}


def numba_range(space: SampleSpace, cfg: DrawConfig, start: int, stop: int,
                threads: int) -> Built:
    """Samples ``[start, stop)`` at once: draws, columns, and the windows by the fused
    ``prange`` kernel on ``threads`` threads."""
    draws = Draws(cfg, space.n_keys).take(start, stop)
    tables = space.tables()
    cols = xpk.sample_columns(np, tables, draws)
    ohlcv = np.empty((5, stop - start, space.lookback), np.float32)
    prev = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        gather_scale_par_nb(tables["prices"], tables["key_start"], tables["key_scale"],
                            draws["key"], ohlcv)
    finally:
        numba.set_num_threads(prev)
    return cols, ohlcv


#: impl -> a whole-range builder ``(space, cfg, start, stop, threads)`` for in-process backends
WHOLE_RANGE: dict[str, Callable[..., Built]] = {"numba": numba_range}


def resolve_impl(impl: str = "auto", device: str = "auto") -> tuple[str, str]:
    """The implementation and device that will run (:func:`qbt_lib.device.dispatch` over
    :data:`ENGINES`): ``auto`` picks CuPy on a usable GPU, else Numba; ``impl="cupy"`` with
    ``device="auto"`` and no GPU runs the same array code on NumPy, with one logged note."""
    impl, device, _ = dispatch("synth", ENGINES, impl, device,
                               auto_gpu=synth_params.AUTO_GPU, why_cpu=synth_params.WHY_CPU)
    return impl, device


def build_samples(impl: str, space: SampleSpace, draws: dict, with_windows: bool = True,
                  out: np.ndarray | None = None) -> Built:
    """The samples columns and windows of ``draws`` built by ``impl``, a resolved
    implementation (see the module docstring)."""
    engine = ENGINES.get(impl)
    if engine is None:
        raise ValueError(f"impl must be one of {list(ENGINES)} (resolved), got {impl!r}")
    return engine(space, draws, with_windows, out)
