"""The sample space of a market and the random draws of the samples.

A sample's decision bar ``idx`` of symbol ``s`` is uniform in ``[lookback, T_s - horizon]``
(so the window ``idx-lookback .. idx-1`` and the label bar ``idx-1+horizon`` exist). Every
valid ``(symbol, idx)`` pair gets a **key** ``k`` in ``[0, K)``, symbol by symbol; drawing a
sample's bar is drawing one integer ``k`` uniform in ``[0, K)`` (every bar of every symbol is
equally likely; with equal histories that is "symbol uniform, then idx uniform").

Everything about a key that does not depend on the random draws is computed **once per key**
with NumPy, on the CPU, here: the window's first bar, the date, the forward-return label and
the two scale factors (1 / last close, 1 / mean volume). Every implementation (NumPy, Numba,
CuPy) gathers from these tables, so all of them give bitwise the same samples; the reference
recomputes them per sample from the raw prices with the same arithmetic.

The space is written once under ``paths.cache_dir()/synth/<content hash>`` and always used
through read-only memory maps: pickling it (to loky or Dask workers) sends only the path.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from .. import paths
from ..data import OHLCV
from ..parallel import chunk_rng

# Random draws come in fixed blocks of BLOCK samples; block b is drawn from
# chunk_rng(seed, BLOCK_STREAM + b). Blocks never depend on n, chunk_size, n_jobs or the
# backend, so neither do the samples. (Children 0 .. n_symbols-1 of SeedSequence(seed) seed
# the synthetic market's symbols: the sample blocks use children from 2**32 on.)
BLOCK = 1 << 16
BLOCK_STREAM = 1 << 32
FIELDS = OHLCV  # open high low close volume: axis 0 of every window array
N_ACTIONS = 3   # 0 hold, 1 buy, 2 sell
ACTIONS = ("hold", "buy", "sell")


@dataclasses.dataclass(frozen=True)
class DrawConfig:
    """What the random draws depend on (and nothing else)."""
    seed: int
    equity_min: float = 1e4
    equity_max: float = 1e6
    position_min: float = -1.0
    position_max: float = 1.0


_ARRAYS = ("prices", "offsets", "dates", "key_offsets", "key_start", "key_symbol",
           "key_idx", "key_date", "key_label", "key_scale")


class SampleSpace:
    """Every valid (symbol, decision bar) pair of a market, numbered by a key.

    Arrays (read-only memory maps):
      ``prices``      (5, total_bars) float64: open high low close volume, symbols end to end
      ``offsets``     (S+1,) int64: symbol s's bars are ``offsets[s]:offsets[s+1]``
      ``dates``       (total_bars,) int64 ns
      ``key_offsets`` (S+1,) int64: symbol s's keys are ``key_offsets[s]:key_offsets[s+1]``
      ``key_start``   (K,) int64: flat position of the window's first bar (idx - lookback)
      ``key_symbol``  (K,) int32, ``key_idx`` (K,) int32, ``key_date`` (K,) int64 ns
      ``key_label``   (K,) float64: log(close[idx-1+horizon] / close[idx-1])
      ``key_scale``   (2, K) float64: 1 / close[idx-1] and 1 / mean(volume of the window)
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta = json.loads((self.path / "meta.json").read_text())
        self.symbols: list[str] = list(meta["symbols"])
        self.lookback: int = int(meta["lookback"])
        self.horizon: int = int(meta["horizon"])
        self.key: str = meta["key"]
        for name in _ARRAYS:
            setattr(self, name, np.load(self.path / f"{name}.npy", mmap_mode="r"))
        self._tables: dict[str, np.ndarray] | None = None

    def tables(self) -> dict[str, np.ndarray]:
        """The arrays as plain (read-only) ndarray views, the form the kernels take."""
        if self._tables is None:
            self._tables = {name: np.asarray(getattr(self, name)) for name in _ARRAYS}
        return self._tables

    def __reduce__(self):  # workers re-open the memory maps instead of receiving copies
        if self.path is None:  # ... unless it is the in-memory copy sent to Dask workers
            return (_space_from_arrays, (self._meta(), {n: getattr(self, n) for n in _ARRAYS}))
        return (SampleSpace, (str(self.path),))

    def __dask_tokenize__(self):
        return ("qbt.SampleSpace", self.key)

    def _meta(self) -> dict:
        return {"symbols": self.symbols, "lookback": self.lookback, "horizon": self.horizon,
                "key": self.key}

    def in_memory(self) -> "SampleSpace":
        """A copy whose tables live in memory and that pickles by value (``path`` None):
        what Dask workers receive, so they need not see this machine's cache."""
        if self.path is None:
            return self
        return _space_from_arrays(self._meta(), {n: np.array(getattr(self, n))
                                                 for n in _ARRAYS})

    def __repr__(self) -> str:
        return (f"SampleSpace({len(self.symbols)} symbols, {self.n_bars_total} bars, "
                f"{self.n_keys} keys, lookback={self.lookback}, horizon={self.horizon})")

    @property
    def n_keys(self) -> int:
        return int(self.key_start.shape[0])

    @property
    def n_bars_total(self) -> int:
        return int(self.dates.shape[0])

    def bars(self) -> dict[str, int]:
        return {s: int(self.offsets[i + 1] - self.offsets[i]) for i, s in enumerate(self.symbols)}

    def keys_of(self, symbol_code: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """The key of each (symbol code, idx) pair (the inverse of key_symbol/key_idx)."""
        return (np.asarray(self.key_offsets)[symbol_code] + np.asarray(idx, np.int64)
                - self.lookback)

    # ----------------------------------------------------------------- building
    @classmethod
    def build(cls, frames: Mapping[str, pd.DataFrame], lookback: int, horizon: int,
              root: str | os.PathLike | None = None) -> "SampleSpace":
        """The space of ``{symbol: OHLCV frame}`` (validated frames), cached by content."""
        symbols = [str(s) for s in frames]
        lens = np.array([len(f) for f in frames.values()], dtype=np.int64)
        n_valid = lens - horizon - lookback + 1
        short = [(s, int(t)) for s, t, v in zip(symbols, lens, n_valid) if v < 1]
        if short:
            s, t = short[0]
            raise ValueError(f"lookback + horizon = {lookback} + {horizon} needs more bars than "
                             f"symbol {s!r} has ({t}); lower lookback or horizon")
        prices = np.ascontiguousarray(np.concatenate(
            [np.stack([f[c].to_numpy(np.float64) for c in FIELDS]) for f in frames.values()],
            axis=1))
        dates = np.concatenate([f.index.asi8 for f in frames.values()]).astype(np.int64)
        h = hashlib.blake2b(digest_size=12)
        h.update(json.dumps([symbols, lens.tolist(), lookback, horizon, 1]).encode())
        h.update(prices.tobytes())
        h.update(dates.tobytes())
        key = h.hexdigest()
        root = Path(root) if root is not None else paths.cache_dir() / "synth"
        root.mkdir(parents=True, exist_ok=True)
        final = root / key
        with paths.atomic_dir(final) as tmp:
            if tmp is not None:
                arrays = _key_tables(prices, lens, dates, lookback, horizon)
                for name in _ARRAYS:
                    np.save(tmp / f"{name}.npy", arrays[name])
                (tmp / "meta.json").write_text(json.dumps(
                    {"symbols": symbols, "lookback": lookback, "horizon": horizon,
                     "key": key}))
        return cls(final)


def _space_from_arrays(meta: dict, arrays: dict) -> SampleSpace:
    sp = SampleSpace.__new__(SampleSpace)
    sp.path = None
    sp.symbols, sp.lookback = list(meta["symbols"]), int(meta["lookback"])
    sp.horizon, sp.key = int(meta["horizon"]), meta["key"]
    for name in _ARRAYS:
        a = np.asarray(arrays[name])
        a.setflags(write=False)  # the same (read-only) array types as the memory maps
        setattr(sp, name, a)
    sp._tables = None
    return sp


def _key_tables(prices: np.ndarray, lens: np.ndarray, dates: np.ndarray, lookback: int,
                horizon: int) -> dict[str, np.ndarray]:
    """The per-key tables (see :class:`SampleSpace`), vectorized over keys."""
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    n_valid = lens - horizon - lookback + 1
    key_offsets = np.concatenate([[0], np.cumsum(n_valid)]).astype(np.int64)
    key_symbol = np.repeat(np.arange(len(lens), dtype=np.int32), n_valid)
    key_idx = (np.arange(key_offsets[-1], dtype=np.int64)
               - np.repeat(key_offsets[:-1], n_valid) + lookback)
    bar = offsets[key_symbol] + key_idx            # flat position of the decision bar
    key_start = bar - lookback
    close, volume = prices[3], prices[4]
    last = close[bar - 1]
    key_label = np.log(close[bar - 1 + horizon] / last)
    inv_close = 1.0 / last
    # The window's volume sum, added left to right (bar idx-lookback first) in float64:
    # the order every implementation uses, so the scale factors agree to the last bit.
    vsum = np.zeros(len(bar))
    for j in range(lookback):
        vsum += volume[key_start + j]
    mean = vsum / lookback
    inv_volume = np.zeros(len(bar))
    np.divide(1.0, mean, out=inv_volume, where=vsum > 0)  # an all-zero-volume window scales to 0
    return {"prices": prices, "offsets": offsets, "dates": dates, "key_offsets": key_offsets,
            "key_start": key_start, "key_symbol": key_symbol,
            "key_idx": key_idx.astype(np.int32), "key_date": dates[bar],
            "key_label": key_label, "key_scale": np.stack([inv_close, inv_volume])}


# --------------------------------------------------------------------------- draws
def draw_block(cfg: DrawConfig, n_keys: int, b: int) -> dict[str, np.ndarray]:
    """The BLOCK random draws of block ``b``: key, equity, position, action.

    ``key`` is exactly uniform (``Generator.integers``); equity, position and action come
    from one ``(3, BLOCK)`` array of uniform doubles u: ``lo + (hi - lo) * u`` and
    ``floor(3 u)`` (half the cost of ``Generator.uniform`` + ``integers`` per column here).
    """
    rng = chunk_rng(cfg.seed, BLOCK_STREAM + b)
    key = rng.integers(0, n_keys, size=BLOCK, dtype=np.int64)
    u = rng.random((3, BLOCK))
    equity = u[0]
    equity *= cfg.equity_max - cfg.equity_min
    equity += cfg.equity_min
    position = u[1]
    position *= cfg.position_max - cfg.position_min
    position += cfg.position_min
    u[2] *= N_ACTIONS
    return {"key": key, "equity": equity, "position": position,
            "action": u[2].astype(np.int8)}  # truncation = floor for u >= 0


class Draws:
    """The draws of samples ``[start, stop)`` for any range, cut from the fixed blocks.

    Keeps the last block drawn, so consecutive ranges inside one block draw it once.
    """

    def __init__(self, cfg: DrawConfig, n_keys: int):
        self.cfg, self.n_keys = cfg, int(n_keys)
        self._b: int | None = None
        self._block: dict[str, np.ndarray] | None = None

    def _get(self, b: int) -> dict[str, np.ndarray]:
        if self._b != b:
            self._block, self._b = draw_block(self.cfg, self.n_keys, b), b
        return self._block

    def take(self, start: int, stop: int) -> dict[str, np.ndarray]:
        parts: list[dict[str, np.ndarray]] = []
        s = start
        while s < stop:
            b = s // BLOCK
            e = min(stop, (b + 1) * BLOCK)
            blk = self._get(b)
            parts.append({k: v[s - b * BLOCK:e - b * BLOCK] for k, v in blk.items()})
            s = e
        if len(parts) == 1:  # a view into the cached block: callers only read the draws
            return parts[0]
        if not parts:
            return {k: np.empty(0, v) for k, v in
                    (("key", np.int64), ("equity", np.float64), ("position", np.float64),
                     ("action", np.int8))}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
