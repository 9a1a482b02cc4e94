"""The scan's parameters: defaults and declared constraints, checked by
:func:`qbt_lib.params.check` (a bad value, or an unknown name, is an error naming it;
papermill's integral floats such as ``1e3`` are accepted for integers).

``impl`` is the one vocabulary of every workload; waves has four engines
(``engines.ENGINES``): ``reference`` (the original algorithm, slow), ``numba`` (depth-first
search, CPU), ``numpy`` and ``cupy`` (the batched level-by-level search of ``gpu.py`` on NumPy
or on the GPU). ``"fast"``, the old name of the fast path, is still accepted: it is resolved
like ``"auto"`` (numba on the CPU; cupy with ``device="gpu"``).

GPU policy for ``impl="auto"`` (:data:`AUTO_GPU`, :data:`WHY_CPU`): on an H200 the batched GPU
search measured 0.40x of 16 CPU cores on the same 500 x 2,000 universe, so ``auto`` runs
Numba on the CPU even where a GPU is usable; ``impl="cupy"`` or ``device="gpu"`` still
choose the GPU.
"""
from __future__ import annotations

from typing import Any

from ..device import DEVICES, IMPLS  # the engines waves has ("auto" picks one)
from ..params import Boolean, Check, Interval, Options, as_int, as_list
from ..parallel import BACKENDS, resolve_n_jobs
from .enums import DIRECTIONS, RULE_SETS

#: old impl names still accepted, and what they are resolved as
IMPL_ALIASES = {"fast": "auto"}
#: ``impl="auto"`` on a usable GPU: False, the GPU scan is slower than the CPU cores
AUTO_GPU = False
WHY_CPU = ("on an H200 the GPU scan measured 0.4x of 16 CPU cores "
           "(benchmarks/gpu/h200/waves-h200.json)")

MIN_WINDOW = 10
MAX_UP_TO = 30


def _window(name: str, value: Any) -> int | None:
    """Bars per window, >= MIN_WINDOW; None (or "none"/"all"): one window, the series."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "all")):
        return None
    return as_int(name, value, min=MIN_WINDOW)


def _start_points(name: str, value: Any) -> int | None:
    """The k lowest lows per window, k >= 1; None, 0 or "all": every bar."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "all")):
        return None
    k = as_int(name, value, min=0)
    return k or None


def _unique_list(options: tuple[str, ...]) -> Check:
    def check(name: str, value: Any) -> list[str]:
        return list(dict.fromkeys(as_list(name, value, options)))
    return Check(check, f"a list (or comma-separated string) of {list(options)}")


def _n_jobs(name: str, value: Any) -> int:
    """Workers: -1 all cores, -2 all but one, N exactly N."""
    return resolve_n_jobs(value)


def _optional_positive(name: str, value: Any) -> int | None:
    return None if value is None else as_int(name, value, min=1)


#: what ``run`` (alias ``scan``) takes, with its defaults
DEFAULTS: dict[str, Any] = dict(
    source="synthetic", symbols=None, n_bars=2000, seed=0, start=None, end=None, adjust=True,
    window=None, overlap=0.0, max_start_points=None, up_to=15, rules="compat",
    directions="up", top_k=0, impl="auto", n_jobs=1, backend="loky", device="cpu",
    scheduler="local", progress=None, gpu_batch_jobs=None, output_dir=None)

#: declared constraints (``None``: taken as given; the data layer checks the data selection)
CONSTRAINTS: dict[str, Any] = dict(
    source=None, symbols=None, start=None, end=None, scheduler=None, progress=None,
    output_dir=None,
    n_bars=Interval(int, MIN_WINDOW, 10_000_000),
    seed=Interval(int, 0, None),
    adjust=Boolean(),
    window=Check(_window, f"None or an integer >= {MIN_WINDOW}"),
    overlap=Interval(float, 0, 1, closed="left"),
    max_start_points=Check(_start_points, "None/0 (every bar) or an integer >= 1"),
    up_to=Interval(int, 1, MAX_UP_TO),
    rules=_unique_list(RULE_SETS),
    directions=_unique_list(DIRECTIONS),
    top_k=Interval(int, 0, None),
    impl=Options(*IMPLS, aliases=IMPL_ALIASES),
    n_jobs=Check(_n_jobs, "-1 (all cores), -2 (all but one) or a worker count"),
    backend=Options(*BACKENDS),
    device=Options(*DEVICES),
    gpu_batch_jobs=Check(_optional_positive, "None or start bars per device batch (>= 1)"),
)

#: one series (``scan_series``, ``find_impulses``, ``compare_impls``, ``warm_up``)
SERIES_CONSTRAINTS: dict[str, Any] = dict(
    up_to=CONSTRAINTS["up_to"], rules=Options(*RULE_SETS), direction=Options(*DIRECTIONS),
    impl=CONSTRAINTS["impl"], device=CONSTRAINTS["device"])
