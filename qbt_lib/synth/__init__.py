"""synth: synthetic training samples for a trading agent, at 1e7-1e10 scale.

The original system, its published figures and the exact semantics: ``docs/synth.md``.

A **sample** is a decision bar ``idx`` of a symbol (uniform in ``[lookback, T - horizon]``)
with a random trade state (``equity`` ~ U[1e4, 1e6], ``position`` ~ U[-1, 1]), a random
``action`` (0 hold, 1 buy, 2 sell), the **window** of the ``lookback`` bars before ``idx``
(OHLC divided by the window's last close, volume by the window's mean volume, float32) and
the label ``forward_return = log(close[idx-1+horizon] / close[idx-1])``.

With n far above the number of bars, windows repeat: a window depends only on (symbol,
idx). The default **normalized** dataset stores a ~41-byte row per sample plus one window per
distinct (symbol, idx), and a :class:`BatchLoader` materializes batches on read (NumPy, or
CuPy into device memory). ``materialize=True`` streams fully materialized rows instead.

Implementations (``impl``): ``reference`` (one Python iteration per sample), ``numpy``
(vectorized, array-module generic), ``numba`` (fused gather+scale), ``cupy`` (the GPU gathers
and scales); ``auto`` picks CuPy on a usable GPU, else Numba. All draw their random numbers on
the CPU from fixed blocks of 65536 samples seeded by block index (``parallel.chunk_rng``), so
every implementation, ``n_jobs``, backend and ``chunk_size`` gives bitwise the same samples.

Where things are (the shape every workload shares):

- ``params.py``     :data:`DEFAULTS` + declared constraints, :func:`check_params`
- ``api.py``        :func:`run` (the notebook's), :func:`warm_up`, :func:`compare_impls`,
  :func:`before_after`; :func:`market`, :func:`sample_space`, :func:`draw_config`,
  :func:`generate` (in memory)
- ``engines.py``    the one step (build the samples of some draws) per implementation: the
  dispatch table ``ENGINES`` and :func:`resolve_impl` (``qbt_lib.device.dispatch``)
- ``reference.py``  the per-sample "before"; ``nb.py`` Numba kernels; ``gpu.py`` CuPy;
  ``xp.py`` the array-generic code (NumPy engine, CuPy fallback)
- ``space.py``      the sample space of a market and the random draws
- ``dataset.py``    :func:`write_dataset`, :func:`open_dataset`, :func:`dataset_digest`;
  ``store.py`` the on-disk layout, part writer and :class:`BatchLoader`; ``batch.py`` a batch
- ``results.py``    :class:`RunResult` (frame, metrics, headline) and :class:`SampleSet`;
  ``plots.py`` the notebook's figures; ``bench.py`` the benchmark cases
"""
from .api import (before_after, compare_impls, draw_config, generate, market, run,
                  sample_space, warm_up)
from .batch import Batch
from .dataset import WriteResult, dataset_digest, open_dataset, write_dataset
from .engines import ENGINES, build_samples, resolve_impl
from .params import (CHUNK, DASK_CHUNK, DEFAULTS, IMPLS, N_BARS, N_MAX, check_params,
                     default_chunk_size)
from .results import RunResult, SampleSet, samples_frame
from .space import BLOCK, DrawConfig, SampleSpace
from .store import BatchLoader, SynthDataset
from .xp import SAMPLE_COLUMNS

__all__ = ["run", "warm_up", "compare_impls", "before_after", "check_params", "market",
           "sample_space", "draw_config", "generate", "write_dataset", "open_dataset",
           "dataset_digest", "build_samples", "resolve_impl", "ENGINES", "SampleSpace",
           "SampleSet", "samples_frame", "SynthDataset", "BatchLoader", "Batch",
           "DrawConfig", "RunResult", "WriteResult", "IMPLS", "DEFAULTS", "BLOCK", "CHUNK",
           "DASK_CHUNK", "N_BARS", "N_MAX", "SAMPLE_COLUMNS", "default_chunk_size"]
