"""The forecaster interface, the default AR(p)-bootstrap model and a plug-in example.

A forecaster turns a batch of context series (percent returns, oldest first) into
``num_samples`` draws of the next value of each series::

    draws = forecaster.sample(contexts, streams, num_samples)  # (B, L), (B,) -> (B, S)

``streams`` holds one uint64 key per row, derived from (seed, symbol, simulation, day, series):
a stochastic model draws its randomness from it (``bootstrap_indices`` does so for resampling
models) so results never depend on batching, threads or processes. The engine summarises the
draws: the point forecast is their 10%-trimmed mean, the band their 40th-60th percentile width.

Plugging in another model: subclass :class:`Forecaster`, implement ``sample`` and pass an
instance as ``marketsim.analyze(..., forecaster=MyModel())``. The fast CPU engine calls
``sample`` once per symbol with every (simulation, day, series) context of that symbol in one
batch, from a thread pool where all threads share the one instance (so a model loaded once, e.g.
a torch network on a GPU, serves every symbol); the reference calls it one row at a time.
:class:`EmpiricalBootstrap` below is a complete, tested example (no model: it resamples the
recent returns themselves). A torch model would look like::

    class TorchForecaster(Forecaster):
        name = "torch"
        def __init__(self, net, min_context=64):
            self.net, self.min_context = net.eval(), min_context
        def sample(self, contexts, streams, num_samples):
            import torch
            with torch.inference_mode():  # releases the GIL inside its kernels
                x = torch.as_tensor(contexts, dtype=torch.float32, device="cuda")
                g = torch.Generator(device="cuda").manual_seed(int(streams[0]) >> 1)
                out = self.net.sample(x, num_samples, generator=g)  # (B, S)
            return out.double().cpu().numpy()

(seeding one generator per batch from the first stream is deterministic as long as the batch is
the same; it is, since the engine batches per symbol.)
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..params import as_int
from . import nb

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


# --------------------------------------------------------------------------- keys and indices
def _mix_int(z: int) -> int:
    """SplitMix64 finaliser on a Python int (used once per symbol, so plain ints suffice)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * _M1) & MASK64
    z = ((z ^ (z >> 27)) * _M2) & MASK64
    return z ^ (z >> 31)


def symbol_key(seed: int, symbol: str) -> int:
    """The uint64 key of a symbol: a hash of its name and the seed, so a symbol's draws depend
    only on its name and the seed, not on its position in the universe or on scheduling."""
    h = int.from_bytes(hashlib.blake2b(str(symbol).encode(), digest_size=8).digest(), "little")
    return _mix_int(_mix_int(int(seed) + GOLDEN) ^ h)


def _mix(xp: Any, z):
    # uint64 arithmetic wraps modulo 2**64 by design (callers silence NumPy's overflow warning)
    z = (z ^ (z >> xp.uint64(30))) * xp.uint64(_M1)
    z = (z ^ (z >> xp.uint64(27))) * xp.uint64(_M2)
    return z ^ (z >> xp.uint64(31))


def stream_keys(symbol_keys, sims, days, series, xp: Any = np):
    """uint64 stream keys of (symbol, simulation, day-in-window, series), broadcast together.

    The same integer arithmetic as ``nb.stream_key_nb`` (tested bitwise)."""
    g = xp.uint64(GOLDEN)
    sk = xp.asarray(symbol_keys, dtype=xp.uint64)
    k = xp.asarray(sims).astype(xp.uint64)
    j = xp.asarray(days).astype(xp.uint64)
    s = xp.asarray(series).astype(xp.uint64)
    with np.errstate(over="ignore"):
        z = _mix(xp, sk + (k + xp.uint64(1)) * g)
        z = _mix(xp, z + (j + xp.uint64(1)) * g)
        return _mix(xp, z + (s + xp.uint64(1)) * g)


def bootstrap_indices(streams, num_samples: int, m: int, xp: Any = np):
    """``(..., num_samples)`` int64 resampling indices in ``[0, m)``, drawn from each stream
    by a counter-based generator (SplitMix64 of stream + sample counter, multiply-shift)."""
    st = xp.asarray(streams, dtype=xp.uint64)[..., None]
    i = xp.arange(1, num_samples + 1, dtype=xp.uint64)
    with np.errstate(over="ignore"):
        u = _mix(xp, st + i * xp.uint64(GOLDEN))
    return (((u >> xp.uint64(32)) * xp.uint64(m)) >> xp.uint64(32)).astype(xp.int64)


# --------------------------------------------------------------------------- interface
class Forecaster:
    """Base class of forecasters (see the module docstring for the contract)."""

    name = "forecaster"
    #: the shortest context (in bars) the model accepts
    min_context = 1

    def sample(self, contexts: np.ndarray, streams: np.ndarray, num_samples: int) -> np.ndarray:
        """``(B, num_samples)`` draws of the next value of each context row."""
        raise NotImplementedError

    def reference_sample(self, context: np.ndarray, stream: int, num_samples: int) -> np.ndarray:
        """Draws for one context (the reference's per-day call); defaults to ``sample``."""
        return self.sample(context[None, :], np.array([stream], dtype=np.uint64),
                           num_samples)[0]

    def check_context(self, context: int) -> None:
        if context < self.min_context:
            raise ValueError(f"context ({context}) is shorter than {self.name} needs "
                             f"({self.min_context})")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ARBootstrap(Forecaster):
    """AR(p) with intercept fitted by least squares on the context, residual bootstrap draws.

    ``draw_i = (b0 + sum_k b_k y[-k]) + e[idx_i]`` with ``e`` the in-sample residuals in
    ascending order (resampling a sorted pool is the same bootstrap, and lets the fast engine
    produce sorted draws without sorting) and ``idx_i`` from the row's stream. The fast engine does not use ``sample``: it fits once per
    (series, day) and draws per simulation (``nb.ar_fit_nb`` + ``nb.ar_bootstrap_windows_nb``)
    and the GPU engine does the same batched over symbols (``gpu.py``).
    """

    name = "ar_bootstrap"

    def __init__(self, order: int = 5):
        self.order = as_int("ar_order", order, min=1, max=100)
        self.min_context = self.order + 10

    def __repr__(self) -> str:
        return f"ARBootstrap(order={self.order})"

    def sample(self, contexts, streams, num_samples):
        contexts = np.ascontiguousarray(contexts, dtype=np.float64)
        B, n = contexts.shape
        mean = np.empty((B, 1))
        pool = np.empty((B, 1, n - self.order))
        nb.ar_fit_nb(contexts, n, n, self.order, mean, pool)  # each row: one day after it
        pool = np.sort(pool[:, 0], axis=1)
        idx = bootstrap_indices(streams, int(num_samples), n - self.order)
        return mean + np.take_along_axis(pool, idx, axis=1)

    def reference_sample(self, context, stream, num_samples):
        """Plain NumPy: build the lagged design matrix, ``np.linalg.lstsq``, resample."""
        p = self.order
        n = len(context)
        X = np.column_stack([np.ones(n - p)] + [context[p - i:n - i] for i in range(1, p + 1)])
        target = context[p:]
        beta = np.linalg.lstsq(X, target, rcond=None)[0]
        resid = np.sort(target - X @ beta)
        mean = beta[0] + sum(beta[i] * context[n - i] for i in range(1, p + 1))
        idx = bootstrap_indices(np.array([stream], dtype=np.uint64), num_samples, n - p)[0]
        return mean + resid[idx]


class EmpiricalBootstrap(Forecaster):
    """Plug-in example: no model at all, the draws are the last ``window`` returns resampled
    (a random-walk forecaster). Shows the whole contract in a few lines."""

    name = "empirical_bootstrap"

    def __init__(self, window: int = 64):
        self.window = as_int("window", window, min=2)
        self.min_context = self.window

    def __repr__(self) -> str:
        return f"EmpiricalBootstrap(window={self.window})"

    def sample(self, contexts, streams, num_samples):
        recent = np.asarray(contexts)[:, -self.window:]
        idx = bootstrap_indices(streams, int(num_samples), self.window)
        return np.take_along_axis(recent, idx, axis=1)


def default_forecaster(ar_order: int = 5) -> ARBootstrap:
    return ARBootstrap(ar_order)
