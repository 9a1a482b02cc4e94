"""A training-ready loader over a synth dataset: :func:`loader`.

``loader(dataset, batch_size, shuffle=True, seed=0, epoch=0, drop_last=False, rank=0,
world_size=1, prefetch=2)`` yields dicts of NumPy arrays, one batch at a time:

* ``window``: (m, 5, lookback) float32, batch-first (PyTorch ``Conv1d``'s (N, C, L));
  fields open, high, low, close, volume, scaled as in the dataset;
* the samples columns: ``symbol`` (int32 codes into ``loader.symbols``), ``idx``,
  ``date`` (int64 ns), ``equity``, ``position``, ``action``, ``forward_return`` and, for a
  class label, ``label`` (int8); ``target`` is the dataset's label (``label``, else
  ``forward_return``): the same array, not a copy.

**Order.** ``shuffle=True``: a permutation of all n samples drawn from
``SeedSequence([seed, epoch])`` -- a different one each epoch, the same on every rank and
every run; ``set_epoch(e)`` as with PyTorch's ``DistributedSampler``. ``shuffle=False``:
file order (the samples were drawn i.i.d., so it is a random order too, but the same every
epoch).

**Shards.** Rank ``r`` of ``world_size`` takes the r-th of ``world_size`` contiguous,
near-equal slices of the epoch's order: the shards do not overlap and together cover every
sample. ``drop_last=True`` gives every rank the same number of full batches
(``(n // world_size) // batch_size``, the few samples beyond are left out of that epoch),
which data-parallel training needs to keep the ranks in step; ``drop_last=False`` keeps
every sample and a rank's last batch may be short.

**Prefetch.** A background thread builds up to ``prefetch`` batches ahead (the gathers are
NumPy takes, which release the GIL) while the caller trains on the current one.

**Zero-copy hand-off.** Every array is a fresh, C-contiguous, writable NumPy array owned by
the batch (never a view of the loader's tables, never reused), so ``torch.from_dlpack(a)``,
``jax.dlpack.from_dlpack(a)`` or ``np.from_dlpack(a)`` take it over without a copy and the
loader never writes to it again.

Memory: the samples table is held in memory (~41 B a sample, normalized) with the windows
table; a materialized dataset's rows (~1.3 kB a sample at lookback 64) too. The epoch's
permutation is 8 B a sample.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Iterator

import numpy as np

from ..params import as_bool, as_int
from .batch import batch_columns, list_values
from .space import FIELDS
from .store import SynthDataset


class Loader:
    """See the module docstring; build with :func:`loader`."""

    def __init__(self, dataset: SynthDataset, batch_size: int = 4096, shuffle: bool = True,
                 seed: int = 0, epoch: int = 0, drop_last: bool = False, rank: int = 0,
                 world_size: int = 1, prefetch: int = 2):
        self.ds = dataset
        self.batch_size = as_int("batch_size", batch_size, min=1)
        self.shuffle = as_bool("shuffle", shuffle)
        self.seed = as_int("seed", seed, min=0)
        self.epoch = as_int("epoch", epoch, min=0)
        self.drop_last = as_bool("drop_last", drop_last)
        self.world_size = as_int("world_size", world_size, min=1)
        self.rank = as_int("rank", rank, min=0)
        if self.rank >= self.world_size:
            raise ValueError(f"rank must be < world_size={self.world_size}, got {self.rank}")
        self.prefetch = as_int("prefetch", prefetch, min=1)
        self.symbols = dataset.symbols
        self._cols: dict | None = None
        self._win: tuple | None = None

    def set_epoch(self, epoch: int) -> None:
        """The next iteration's epoch (its permutation)."""
        self.epoch = as_int("epoch", epoch, min=0)

    # ----------------------------------------------------------------- the order
    def order(self, epoch: int | None = None) -> np.ndarray:
        """The sample indices this rank reads in ``epoch`` (default: the loader's)."""
        n = self.ds.n
        e = self.epoch if epoch is None else as_int("epoch", epoch, min=0)
        if self.shuffle:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, e]))
            perm = rng.permutation(n)
        else:
            perm = np.arange(n, dtype=np.int64)
        lo, hi = self._bounds()
        return perm[lo:hi]

    def __len__(self) -> int:
        lo, hi = self._bounds()
        return -(-(hi - lo) // self.batch_size)

    def _bounds(self) -> tuple[int, int]:
        """This rank's slice ``[lo, hi)`` of an epoch's order: the r-th of ``world_size``
        near-equal slices, or with ``drop_last`` the r-th of ``n // world_size`` samples
        each, cut to whole batches."""
        n = self.ds.n
        if self.drop_last:
            per = n // self.world_size
            lo = self.rank * per
            return lo, lo + per // self.batch_size * self.batch_size
        bounds = np.linspace(0, n, self.world_size + 1).round().astype(np.int64)
        return int(bounds[self.rank]), int(bounds[self.rank + 1])

    # ----------------------------------------------------------------- the data
    def _load(self) -> None:
        if self._cols is not None:
            return
        ds = self.ds
        table = ds.read_table()
        self._cols = {k: np.ascontiguousarray(v) for k, v in batch_columns(table,
                                                                          ds.symbols).items()}
        if ds.kind == "normalized":
            windows, row_of_key = ds.window_rows()
            k = (ds.key_offsets[self._cols["symbol"]] + self._cols["idx"].astype(np.int64)
                 - ds.lookback)
            self._win = (windows, row_of_key[k])          # sample -> row of the table
        else:
            w = np.empty((ds.n, 5, ds.lookback), np.float32)
            for f, name in enumerate(FIELDS):
                w[:, f] = list_values(table.column(name), ds.lookback)
            self._win = (w, None)
        del table

    def batch(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """The batch of samples ``idx`` (fresh arrays, see the module docstring)."""
        self._load()
        windows, rows = self._win
        out = {"window": np.take(windows, idx if rows is None else np.take(rows, idx),
                                 axis=0)}
        for k, v in self._cols.items():
            out[k] = np.take(v, idx)
        out["target"] = out["label"] if "label" in out else out["forward_return"]
        return out

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        order = self.order()
        bs = self.batch_size
        starts = list(range(0, len(order), bs))   # drop_last: order() holds whole batches
        self._load()
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        done = object()

        def produce() -> None:
            try:
                for a in starts:
                    if stop.is_set():
                        return
                    item = self.batch(order[a:a + bs])
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                q.put(done)
            except BaseException as e:  # handed to the consumer, raised there
                q.put(e)

        th = threading.Thread(target=produce, name="synth-loader", daemon=True)
        th.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while th.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    pass
                th.join(timeout=0.05)


def loader(dataset: Any, batch_size: int = 4096, shuffle: bool = True, seed: int = 0,
           epoch: int = 0, drop_last: bool = False, rank: int = 0, world_size: int = 1,
           prefetch: int = 2) -> Loader:
    """A training loader over ``dataset`` (a :class:`~.store.SynthDataset` or its path); see
    the module docstring."""
    if not isinstance(dataset, SynthDataset):
        dataset = SynthDataset(dataset)
    return Loader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                  drop_last=drop_last, rank=rank, world_size=world_size, prefetch=prefetch)
