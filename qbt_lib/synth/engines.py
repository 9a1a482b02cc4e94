"""The one step every synth path runs, in each implementation, and its dispatch table.

The step: the samples columns and the (5, m, lookback) float32 windows of some draws (at least
their ``key``; without equity/position/action, as for the windows table, only the per-key
columns are built). :data:`ENGINES` maps each ``impl`` to a function
``(space, draws, with_windows=True, out=None, label=DEFAULT) -> (columns, windows or None)``
(``label``: a class label adds an int8 ``label`` column, see :mod:`.labels`):
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

import functools
from typing import Any, Callable

import numba
import numpy as np

from ..device import dispatch
from . import gpu, reference
from . import params as synth_params
from . import xp as xpk
from .labels import DEFAULT as DEFAULT_LABEL
from .labels import LabelSpec, key_classes
from .nb import gather_scale_nb, gather_scale_par_nb
from .space import Draws, DrawConfig, SampleSpace

Built = tuple[dict, Any]


def _windows_buffer(space: SampleSpace, m: int, out: np.ndarray | None) -> np.ndarray:
    return (out[:, :m] if out is not None and out.shape[1] >= m
            else np.empty((5, m, space.lookback), np.float32))


def _add_label(cols: dict, space: SampleSpace, draws: dict, label: LabelSpec,
               impl: str) -> dict:
    """A class label (``label`` column, int8) gathered from the per-key table that
    ``impl``'s kernel computed (:func:`.labels.key_classes`); samples only, not windows."""
    if label.has_column and "equity" in draws:
        cols["label"] = np.take(key_classes(space, label, impl), np.asarray(draws["key"]))
    return cols


def build_reference(space: SampleSpace, draws: dict, with_windows: bool = True,
                    out: np.ndarray | None = None, label: LabelSpec = DEFAULT_LABEL) -> Built:
    return reference.build_samples(space, draws, with_windows, label)


def _build_host(impl: str, gather: Callable[..., Any], space: SampleSpace, draws: dict,
                with_windows: bool, out: np.ndarray | None, label: LabelSpec) -> Built:
    """The NumPy and Numba engines: the same columns, the windows by ``gather(prices,
    key_start, key_scale, key, ohlcv)``."""
    tables = space.tables()
    key = np.asarray(draws["key"], np.int64)
    cols = _add_label(xpk.sample_columns(np, tables, draws), space, draws, label, impl)
    if not with_windows:
        return cols, None
    ohlcv = _windows_buffer(space, len(key), out)
    gather(tables["prices"], tables["key_start"], tables["key_scale"], key, ohlcv)
    return cols, ohlcv


def build_numpy(space: SampleSpace, draws: dict, with_windows: bool = True,
                out: np.ndarray | None = None, label: LabelSpec = DEFAULT_LABEL) -> Built:
    return _build_host("numpy", functools.partial(xpk.gather_scale, np), space, draws,
                       with_windows, out, label)


def build_numba(space: SampleSpace, draws: dict, with_windows: bool = True,
                out: np.ndarray | None = None, label: LabelSpec = DEFAULT_LABEL) -> Built:
    return _build_host("numba", gather_scale_nb, space, draws, with_windows, out, label)


def build_cupy(space: SampleSpace, draws: dict, with_windows: bool = True,
               out: np.ndarray | None = None, label: LabelSpec = DEFAULT_LABEL) -> Built:
    cols, ohlcv = gpu.build_samples(space, draws, with_windows)
    return _add_label(cols, space, draws, label, "cupy"), ohlcv


#: impl -> the function building the samples of some draws (the one dispatch table)
ENGINES: dict[str, Callable[..., Built]] = {
    "reference": build_reference, "numpy": build_numpy, "numba": build_numba,
    "cupy": build_cupy}


def numba_range(space: SampleSpace, cfg: DrawConfig, start: int, stop: int,
                threads: int, label: LabelSpec = DEFAULT_LABEL) -> Built:
    """Samples ``[start, stop)`` at once: draws, columns, and the windows by the fused
    ``prange`` kernel on ``threads`` threads."""
    draws = Draws(cfg, space.n_keys).take(start, stop)
    tables = space.tables()
    cols = _add_label(xpk.sample_columns(np, tables, draws), space, draws, label, "numba")
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
                  out: np.ndarray | None = None, label: LabelSpec = DEFAULT_LABEL) -> Built:
    """The samples columns and windows of ``draws`` built by ``impl``, a resolved
    implementation (see the module docstring)."""
    engine = ENGINES.get(impl)
    if engine is None:
        raise ValueError(f"impl must be one of {list(ENGINES)} (resolved), got {impl!r}")
    return engine(space, draws, with_windows, out, label)
