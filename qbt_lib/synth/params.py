"""synth's parameters: :data:`DEFAULTS` and their declared :data:`CONSTRAINTS`, checked in one
place by :func:`qbt_lib.params.check` (papermill's ``-p n 1e7`` float accepted as an integer;
every bad value raises a ``ValueError`` naming the parameter; an unknown name is an error).

Also the sizes the rest of the workload shares (:data:`N_MAX`, :data:`CHUNK`, ...) and the GPU
policy of ``impl="auto"`` (:data:`AUTO_GPU`).
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

import yaml

from .. import data as _data
from .. import parallel
from ..device import DEVICES, IMPLS
from ..params import AnyOf, Boolean, Check, Interval, Options, check
from .labels import LABELS, label_spec

N_MAX = 10**10
N_BARS = 5000          # synthetic history per symbol: ~20 years, like the S&P 500 sample
SYMBOLS_SYNTHETIC = 10
FORMATS = ("parquet", "ipc")   # file_format: Parquet or Arrow IPC files (store.SUFFIX)
CHUNK = 1 << 19          # samples per chunk (one part file each): ~0.1 s of work per task
DASK_CHUNK = 1 << 21     # on Dask: ~0.3 s tasks keep the scheduler and result traffic small
                         # (1e9 on 2 workers: 0.78 of the threads backend with 512k-sample
                         # chunks, 0.80 with 2M; the samples are the same either way)

#: ``impl="auto"`` on a usable GPU runs CuPy: on an H200 the GPU gather+scale measured 18x
#: the same machine's 16 CPU cores (benchmarks/gpu/h200/synth-h200.json)
AUTO_GPU = True
WHY_CPU = ""

DEFAULTS = dict(n=10_000_000, lookback=64, horizon=1, seed=0, source="synthetic",
                symbols=None, start=None, end=None, adjust=True, n_jobs=-1, backend="threads",
                device="auto", impl="auto", materialize=False, chunk_size=None,
                output_dir="outputs/synth", file_format="parquet",
                label="forward_return", label_threshold=0.0, take_profit=1.0, stop_loss=1.0,
                vol_window=20, splits=None, embargo=None)


def default_chunk_size(backend: Any) -> int:
    """``chunk_size=None``: :data:`DASK_CHUNK` samples on Dask, else :data:`CHUNK`."""
    return DASK_CHUNK if str(backend).strip().lower() == "dask" else CHUNK


def _source(name: str, value: Any) -> Any:
    return _data.check_source(value, name)


def _symbols(name: str, value: Any) -> int | list[str] | None:
    """``None``/``"all"`` -> ``None`` (all; 10 synthetic), a count, or names."""
    return _data.generator_symbols(value, default=None, param=name)


def _date_text(name: str, value: Any) -> str | None:
    ts = _data.as_date(name, value)
    return None if ts is None else ts.strftime("%Y-%m-%d")


def _n_jobs(name: str, value: Any) -> int:
    v = Interval(int, -64, 1024)(name, value)
    parallel.resolve_n_jobs(v)  # n_jobs=0 is rejected there, by name
    return v


def _output_dir(name: str, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ValueError(f"{name} must be a non-empty path, got {value!r}")
    return str(value)


def _splits(name: str, value: Any) -> dict[str, tuple[str | None, str | None]] | None:
    """``None`` (one dataset), or ``{split name: (start, end)}`` as a dict or its JSON/YAML
    text (papermill's ``-p splits '{"train": [...]}'`` is a string); dates as text or
    None (the data's first/last bar). Returned in date order, dates as ``YYYY-MM-DD``."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "none", "null"):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise ValueError(f"{name} is neither JSON nor YAML: {e}") from None
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{name} must be a dict {{name: [start, end]}} (or its JSON/YAML "
                         f"text), got {value!r}")
    out = {}
    for key, rng in value.items():
        split = str(key)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", split):
            raise ValueError(f"{name}: split name {key!r} must be a plain folder name "
                             "(letters, digits, _ . -)")
        if not isinstance(rng, (list, tuple)) or len(rng) != 2:
            raise ValueError(f"{name}[{split!r}] must be [start, end], got {rng!r}")
        a, b = (_date_text(f"{name}[{split!r}] {w}", v) for w, v in zip(("start", "end"), rng))
        if a is not None and b is not None and a > b:
            raise ValueError(f"{name}[{split!r}]: start {a} is after end {b}")
        out[split] = (a, b)
    order = sorted(out, key=lambda s: out[s][0] or "")
    for prev, nxt in zip(order, order[1:]):
        pa_, pb = out[prev]
        na, _ = out[nxt]
        if pb is None or na is None or na <= pb:
            raise ValueError(f"{name}: splits {prev!r} ({pa_} .. {pb}) and {nxt!r} ({na} .. "
                             f"{out[nxt][1]}) overlap; give date ranges that do not")
    return {s: out[s] for s in order}


CONSTRAINTS = {
    "n": Interval(int, 1, N_MAX),
    "lookback": Interval(int, 1, 4096),
    "horizon": Interval(int, 1, 100_000),
    "seed": Interval(int, 0, 2**63 - 1),
    "source": Check(_source, "synthetic, sp500, a file, a folder or frames"),
    "symbols": Check(_symbols, "None/'all', a count or a list of names"),
    "start": Check(_date_text, "None or a date"),
    "end": Check(_date_text, "None or a date"),
    "adjust": Boolean(),
    "n_jobs": Check(_n_jobs, "an int in [-64, 1024], not 0"),
    "backend": Options(parallel.BACKENDS),
    "device": Options(DEVICES),
    "impl": Options(IMPLS),
    "materialize": Boolean(),
    "chunk_size": AnyOf(None, Interval(int, 1, 1 << 30)),
    "output_dir": Check(_output_dir, "a non-empty path"),
    "file_format": Options(FORMATS),
    "label": Options(LABELS),
    "label_threshold": Interval(float, 0, 1e6),
    "take_profit": Interval(float, 0, 1e6),
    "stop_loss": Interval(float, 0, 1e6),
    "vol_window": Interval(int, 2, 4095),
    "splits": Check(_splits, "None, or {name: [start, end]} as a dict or JSON/YAML text"),
    "embargo": AnyOf(None, Interval(int, 0, 1_000_000)),
}


def label_of(p: dict):
    """The :class:`~.labels.LabelSpec` of checked parameters."""
    return label_spec(p["label"], p["label_threshold"], p["take_profit"], p["stop_loss"],
                      p["vol_window"], lookback=p["lookback"])


def check_params(**params: Any) -> dict:
    """Validate the notebook parameters (missing ones take :data:`DEFAULTS`); return them
    normalized (``chunk_size=None`` -> :func:`default_chunk_size`). Every bad value raises a
    ``ValueError`` naming the parameter."""
    out = check(params, CONSTRAINTS, DEFAULTS, workload="synth")
    if out["chunk_size"] is None:
        out["chunk_size"] = default_chunk_size(out["backend"])
    if out["embargo"] is None and out["splits"] is not None:
        out["embargo"] = out["lookback"] + out["horizon"]
    label_of(out)  # vol_window against lookback, both barriers off: named here
    # impl='cupy' with device='cpu' could mean either the NumPy twin (what the dispatch
    # would run) or a mistake: refused here, before any work (a CPU impl with device='gpu'
    # is refused by the dispatch, qbt_lib.device.dispatch, which run calls next)
    if out["impl"] == "cupy" and out["device"] == "cpu":
        raise ValueError("impl='cupy' runs on the GPU: use device='gpu' or 'auto' "
                         "(got device='cpu')")
    return out
