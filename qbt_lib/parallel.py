"""One ordered ``map`` over tasks for every backend: sequential, threads, loky, dask.

Determinism rule: work is cut into fixed-size chunks that do not depend on the number of
workers, and chunk ``c`` draws its random numbers from ``chunk_rng(seed, c)`` (the c-th child
of ``SeedSequence(seed)``). Results are returned in task order, so outputs are bitwise
identical for any ``n_jobs`` and backend.

``backend="dask"`` runs through joblib's Dask backend against a ``dask.distributed``
scheduler: ``scheduler="local"`` starts a ``LocalCluster`` (``n_jobs`` single-threaded worker
processes) for the call, an address such as ``"tcp://10.0.0.5:8786"`` connects to an
existing scheduler, and ``None`` uses the current default ``distributed.Client``.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .params import as_int, one_of

log = logging.getLogger("qbt")

BACKENDS = ("sequential", "threads", "loky", "dask")
# No work-size threshold: a caller that knows its job is too small for a pool passes
# n_jobs=1 (the "small jobs run sequentially" cost threshold was never set above 0 by any
# workload, so it was removed; one task, or n_jobs=1, still runs in this process).


class Interrupted(KeyboardInterrupt):
    """A qbt run stopped by Ctrl-C or a Jupyter kernel interrupt.

    It is a ``KeyboardInterrupt`` (so ``except KeyboardInterrupt`` and scripts behave as
    before), raised ``from None`` with a message saying what was stopped; IPython/Jupyter
    render it as that one line (``_render_traceback_``) instead of a traceback through the
    pool's internals, and the kernel stays usable.
    """

    def __str__(self) -> str:
        msg = super().__str__() or "qbt run stopped"
        return f"{msg}; no partial output was kept"

    def _render_traceback_(self) -> list[str]:
        return [f"Interrupted: {self}"]


def as_interrupted(exc: BaseException, tb: Any = None) -> "Interrupted | None":
    """The one-line form of a ``KeyboardInterrupt`` that stopped qbt code: ``exc`` itself if
    it is already an :class:`Interrupted`, else ``Interrupted("<qbt function> stopped")``
    naming the outermost ``qbt_lib`` function in ``tb``; ``None`` when no qbt code was
    running (the interrupt is the user's own: IPython shows it as usual). qbt writes every
    output to a temp path renamed when complete, so nothing partial was kept."""
    if isinstance(exc, Interrupted):
        return exc
    if not isinstance(exc, KeyboardInterrupt):
        return None
    while tb is not None:
        f = tb.tb_frame
        mod = f.f_globals.get("__name__", "")
        if mod == "qbt_lib" or mod.startswith("qbt_lib."):
            return Interrupted(f"{mod}.{f.f_code.co_qualname} stopped")
        tb = tb.tb_next
    return None


def _ipython_interrupt_handler(shell, etype, value, tb, tb_offset=None):
    """IPython custom exception handler (registered by ``qbt_lib`` in a Jupyter kernel) for
    ``KeyboardInterrupt``: one line when qbt code was interrupted, else IPython's usual
    traceback."""
    short = as_interrupted(value, tb)
    if short is None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    else:
        shell.showtraceback((type(short), short, None))
    return None


class _Count:
    """The bar when none is shown: counts the finished tasks for the interrupt message."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, k: int = 1) -> None:
        self.n += k

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str = "task", show: bool = True):
    """A tqdm bar for ``total`` tasks (``update(k)``, ``close()``, ``n``).

    In Jupyter it is an ipywidgets bar while the work runs; on ``close()`` the widget is
    replaced by one plain-text summary line (``desc: 20/20 chunks in 3.2 s``), so a saved and
    reopened notebook shows that line instead of "Error displaying widget: model not found"
    (a closed widget has no saved state). In a terminal it is tqdm's text bar on stderr,
    removed when done.
    """
    if not show:
        return _Count()
    from tqdm.auto import tqdm
    from tqdm.notebook import tqdm_notebook

    if not issubclass(tqdm, tqdm_notebook):
        return tqdm(total=total, desc=desc, unit=unit, leave=False)
    return _summary_bar(tqdm)(total=total, desc=desc, unit=unit, leave=True, display=False)


def _summary_bar(base):
    class SummaryBar(base):
        def __init__(self, *a, **k):
            from IPython.display import display
            super().__init__(*a, **k)
            self._handle = display(self.container, display_id=True)
            self.displayed = True

        def close(self):
            if self.disable or getattr(self, "_summarized", False):
                return
            self._summarized = True
            super().close()
            d = self.format_dict
            el = d["elapsed"]
            took = f"{el:.1f} s" if el < 60 else self.format_interval(el)
            what = f"{self.n}/{self.total} {d['unit']}s"
            line = (f"{d['prefix']}: {what} in {took}" if self.total and self.n >= self.total
                    else f"{d['prefix']}: stopped at {what} after {took}")
            try:
                self._handle.update({"text/plain": line}, raw=True)
                self.container.close()
            except Exception:  # pragma: no cover - the front end went away
                pass

    return SummaryBar


def progress_default() -> bool:
    """Whether long jobs show a progress bar when the caller does not say: yes, unless
    ``QBT_PROGRESS=0`` (set for headless runs -- the report and the golden notebooks -- where a
    bar is only noise in the saved output)."""
    return os.environ.get("QBT_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def available_cores() -> int:
    """Cores this process may run on (affinity-aware, so it is right inside containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def resolve_n_jobs(n_jobs: Any) -> int:
    """The seed's convention: -1 all cores, -2 all but one, 1 sequential, N exactly N."""
    n = as_int("n_jobs", n_jobs)
    cores = available_cores()
    if n == 0:
        raise ValueError("n_jobs must not be 0 (use 1 for sequential, -1 for all cores)")
    if n < 0:
        return max(1, cores + 1 + n)
    return n


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """Fixed-size ``[start, stop)`` chunks covering ``range(n)`` (the last may be short)."""
    n = as_int("n", n, min=0)
    chunk_size = as_int("chunk_size", chunk_size, min=1)
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def chunk_seed(seed: int, chunk: int) -> np.random.SeedSequence:
    """``SeedSequence(seed).spawn(k)[chunk]`` for any k > chunk, built in O(1)."""
    return np.random.SeedSequence(as_int("seed", seed, min=0), spawn_key=(int(chunk),))


def chunk_rng(seed: int, chunk: int) -> np.random.Generator:
    """The random generator of fixed-size chunk ``chunk`` (independent of the worker)."""
    return np.random.default_rng(chunk_seed(seed, chunk))


@contextlib.contextmanager
def dask_client(scheduler: str | None = "local", n_workers: int = 2):
    """A ``distributed.Client``: a fresh LocalCluster, a given address, or the default one."""
    try:
        from dask.distributed import Client, LocalCluster, default_client
    except ImportError:
        raise ImportError("backend='dask' needs dask and distributed: "
                          "pip install -e .[dask]") from None
    if scheduler is None:
        try:
            yield default_client()
            return
        except ValueError:
            raise ValueError("backend='dask' with scheduler=None needs a running "
                             "distributed.Client; pass scheduler='local' or an address") from None
    if scheduler == "local":
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
                Client(cluster) as client:
            yield client
    else:
        with Client(scheduler) as client:
            yield client


def pmap(func: Callable[[Any], Any], tasks: Iterable[Any], *, backend: str = "loky",
         n_jobs: int = 1, scheduler: str | None = "local", progress: bool | None = None,
         desc: str | None = None, unit: str = "task") -> list[Any]:
    """Apply ``func`` to every task and return the results in task order.

    Runs sequentially when ``backend="sequential"``, ``n_jobs == 1`` or there is one task.
    ``progress`` shows a tqdm bar (default: on when there are more than 4 tasks, unless the
    environment says ``QBT_PROGRESS=0``).
    Ctrl-C stops the workers (joblib terminates its loky/dask tasks) and raises
    :class:`Interrupted` (a ``KeyboardInterrupt`` shown as one line in Jupyter).
    """
    return list(imap(func, tasks, backend=backend, n_jobs=n_jobs, scheduler=scheduler,
                     progress=progress, desc=desc, unit=unit))


def effective_backend(backend: str, n_jobs: int, n_tasks: int) -> tuple[str, int]:
    """The backend and worker count ``pmap`` will really use for this job."""
    backend = one_of("backend", backend, BACKENDS)
    n = resolve_n_jobs(n_jobs)
    if backend == "sequential" or n_tasks <= 1 or (n == 1 and backend != "dask"):
        return "sequential", 1
    return backend, min(n, n_tasks) if backend != "dask" else n


def imap(func: Callable[[Any], Any], tasks: Iterable[Any], *, backend: str = "loky",
         n_jobs: int = 1, scheduler: str | None = "local", progress: bool | None = None,
         desc: str | None = None, unit: str = "task") -> Iterator[Any]:
    """Like :func:`pmap` but yields results in task order as they complete, so a caller can
    stream them (e.g. write chunk c while later chunks are still being computed)."""
    tasks = list(tasks) if not isinstance(tasks, Sequence) else tasks
    backend, n = effective_backend(backend, n_jobs, len(tasks))
    show = (len(tasks) > 4 and progress_default()) if progress is None else bool(progress)
    bar = progress_bar(len(tasks), desc or "qbt", unit, show)
    try:
        if backend == "sequential":
            for t in tasks:
                yield func(t)
                bar.update(1)
            return
        if backend == "threads":
            # A plain thread pool: joblib's threading backend added ~15 ms of dispatch per
            # 30 short tasks (marketsim: 1.66x -> 1.75x on 2 cores). On an error or Ctrl-C the
            # queued tasks are cancelled; running ones finish (threads cannot be killed).
            from concurrent.futures import ThreadPoolExecutor
            ex = ThreadPoolExecutor(max_workers=n, thread_name_prefix="qbt")
            try:
                for r in ex.map(func, tasks):
                    yield r
                    bar.update(1)
            finally:
                ex.shutdown(wait=True, cancel_futures=True)
            return
        from joblib import Parallel, delayed, parallel_backend

        if backend == "dask":
            with dask_client(scheduler, n_workers=n):
                with parallel_backend("dask"):
                    for r in Parallel(return_as="generator")(delayed(func)(t) for t in tasks):
                        yield r
                        bar.update(1)
            return
        for r in Parallel(n_jobs=n, backend="loky", return_as="generator")(
                delayed(func)(t) for t in tasks):
            yield r
            bar.update(1)
    except KeyboardInterrupt as e:
        # Ctrl-C / a Jupyter kernel interrupt: the workers are already stopped (joblib
        # terminates loky/dask tasks, the thread pool cancels queued ones) and any output in
        # progress lives in a temp path the caller's ``atomic_dir`` removes. Say so in one line
        # instead of a traceback through joblib / concurrent.futures internals.
        if isinstance(e, Interrupted):
            raise
        raise Interrupted(f"{desc or 'qbt'} stopped after {bar.n} of {len(tasks)} "
                          f"{unit}s") from None
    finally:
        bar.close()
